"""The auto-context cascade on the model grid: each stage sees the image plus earlier masks.

After the first stage has found the labyrinth, later stages run only on a box around it (the
rest of the cube is bone and air), which cuts their work several-fold on a typical crop. A stage
may also run at a coarser scale (``scale`` 0.5 in the manifest): enough to find the labyrinth,
at an eighth of the arithmetic. A model may ask for its cascade to run twice, on the scan and on
its left-right mirror, and for the two to be averaged (``mirror_average`` in the manifest).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .inference import StageSession, predict_volume
from .model import Stage
from .postprocess import foreground, largest_component
from .progress import Progress

# The U-Net pools three times, so every slice side must be a multiple of 8.
SIDE_MULTIPLE = 8


@dataclass
class CascadeOutput:
    probabilities: np.ndarray  # [K, Z, Y, X] of the last stage run, background outside the box
    mask: np.ndarray  # labyrinth mask of the last stage (largest component if asked)
    timings: dict[str, float] = field(default_factory=dict)
    boxes: dict[str, list[list[int]]] = field(default_factory=dict)


def stage_factor(stage: Stage) -> int:
    """The integer down-sampling factor of a stage (1 = the model grid itself)."""
    return int(round(1.0 / stage.scale))


def downsample(channels: np.ndarray, factor: int) -> np.ndarray:
    """Block mean over factor³ voxels of a [C, Z, Y, X] stack whose sides divide by factor."""
    if factor == 1:
        return channels
    c, z, y, x = channels.shape
    blocks = channels.reshape(c, z // factor, factor, y // factor, factor, x // factor, factor)
    return blocks.mean(axis=(2, 4, 6), dtype=np.float32)


def upsample(probabilities: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour expansion of [K, z, y, x] back to the model grid."""
    if factor == 1:
        return probabilities
    return probabilities.repeat(factor, axis=1).repeat(factor, axis=2).repeat(factor, axis=3)


def region_around(mask: np.ndarray, margin: int, multiple: int) -> tuple[slice, ...]:
    """A box around the mask plus ``margin``, each side grown to a multiple of ``multiple``
    (kept inside the volume); the whole volume when the mask is empty."""
    box = []
    for axis, size in enumerate(mask.shape):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.nonzero(mask.any(axis=other))[0]
        if len(hits) == 0:
            return tuple(slice(0, n) for n in mask.shape)
        low, high = max(int(hits[0]) - margin, 0), min(int(hits[-1]) + margin + 1, size)
        length = min(-(-(high - low) // multiple) * multiple, size)
        low = max(min(low, size - length), 0)
        box.append(slice(low, low + length))
    return tuple(box)


def _labyrinth(probabilities: np.ndarray, threshold: float, keep_largest: bool) -> np.ndarray:
    """The labyrinth mask of a stage's probabilities, its largest component if asked."""
    mask = foreground(probabilities, threshold)
    return largest_component(mask) if keep_largest else mask


def run_cascade(
    image: np.ndarray,
    stages: tuple[Stage, ...],
    sessions: list[StageSession],
    threshold: float,
    keep_largest: bool = True,
    crop: bool = True,
    batch_size: int = 16,
    progress: Progress | None = None,
    mirror_average: bool = False,
    first_stage: np.ndarray | None = None,
) -> CascadeOutput:
    """Runs the stages in order on a normalised [Z, Y, X] image on the model grid.

    ``mirror_average`` runs them on the image and on its left-right mirror and averages the last
    stage's probabilities. The model grid's x axis is the patient's left-right axis (identity
    direction), so the mirror of a left ear is a right ear in the same pose, which the model has
    learnt as well; averaging the two readings steadies the boundary at twice the network time.
    ``first_stage``: stage 1's probabilities on this very image when already computed (the
    locator's check of the box), so they are not computed twice.
    """
    progress = progress or Progress()
    if mirror_average:
        settings = (stages, sessions, threshold, keep_largest, crop, batch_size)
        direct = run_cascade(image, *settings, progress.span(0.0, 0.5), first_stage=first_stage)
        mirrored = run_cascade(np.ascontiguousarray(image[:, :, ::-1]), *settings, progress.span(0.5, 1.0))
        return _averaged(direct, mirrored, threshold, keep_largest)
    margin = max(8, image.shape[0] // 16)
    volumes = {"image": image}
    region = tuple(slice(0, n) for n in image.shape)
    output = CascadeOutput(np.empty(0), np.zeros(image.shape, bool))
    steps = np.linspace(0.0, 1.0, len(stages) + 1)
    for index, (stage, session) in enumerate(zip(stages, sessions)):
        clock = time.perf_counter()
        factor = stage_factor(stage)
        if crop and index > 0:
            region = region_around(output.mask, margin, SIDE_MULTIPLE * factor)
        if index == 0 and first_stage is not None:
            partial = first_stage
        else:
            channels = np.stack([volumes[name][region] for name in stage.channels])
            partial = predict_volume(session, downsample(channels, factor), stage.view, batch_size,
                                     progress.span(steps[index], steps[index + 1]))
        probabilities = np.zeros((partial.shape[0],) + image.shape, dtype=np.float32)
        probabilities[0] = 1.0
        probabilities[(slice(None),) + region] = upsample(partial, factor)
        output.timings[f"stage_{stage.name}"] = time.perf_counter() - clock
        clock = time.perf_counter()
        output.mask = _labyrinth(probabilities, threshold, keep_largest)
        output.probabilities = probabilities
        output.boxes[stage.name] = [[s.start, s.stop] for s in region]
        volumes[stage.name] = output.mask.astype(np.float32)
        output.timings[f"components_{stage.name}"] = time.perf_counter() - clock
    return output


def _averaged(direct: CascadeOutput, mirrored: CascadeOutput, threshold: float, keep_largest: bool) -> CascadeOutput:
    """The mean of a reading and the flipped-back reading of the mirror, masked afresh."""
    clock = time.perf_counter()
    probabilities = direct.probabilities
    probabilities += mirrored.probabilities[:, :, :, ::-1]
    probabilities *= 0.5
    timings = {key: direct.timings[key] + mirrored.timings[key] for key in direct.timings}
    boxes = dict(direct.boxes)
    boxes.update({f"{name}_mirrored": box for name, box in mirrored.boxes.items()})
    output = CascadeOutput(probabilities, _labyrinth(probabilities, threshold, keep_largest), timings, boxes)
    output.timings["mirror_average"] = time.perf_counter() - clock
    return output
