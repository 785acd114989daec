"""Find the labyrinth in the whole scan before the cascade looks at it closely.

A model with ``roi_extent_mm`` segments a cube of that physical size around the labyrinth at a
fixed voxel size, so the labyrinth has the same size in voxels whatever the scan's field of view
(a 10 mm cochlea crop or a 49 mm block). Its ``locator`` is a U-Net run once on a coarse cube over
the whole scan. The locator's largest find is not always the labyrinth (the internal auditory
canal and the vestibular aqueduct hold the same fluid), so its few largest finds are each
checked by the cascade's own first stage in a box round it: the box in which that finer network
finds the most labyrinth wins, and the final box is centred on what it found there. A scan of a
head shows both ears: a second box far from the first that holds a good share of its labyrinth
is the other ear (the pipeline's ``_distinct_ears``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .inference import StageSession, predict_volume
from .model import Locator
from .postprocess import foreground, largest_component
from .preprocess import PreparedScan, prepare
from .progress import Progress

MAX_CANDIDATES = 6  # both ears and the likeliest decoys (a head's sinuses, spine, orbits)
MIN_CANDIDATE_SHARE = 0.02  # a find smaller than this share of the largest is not checked


@dataclass
class Candidate:
    """One of the locator's finds: its physical centre (LPS mm), its size on the coarse grid and,
    once checked, how much labyrinth the first stage finds in a box round it."""

    centre_mm: np.ndarray
    coarse_voxels: int
    box_mass: float | None = None

    def describe(self) -> dict[str, Any]:
        return {"centre_mm": [round(float(c), 2) for c in self.centre_mm], "coarse_voxels": self.coarse_voxels,
                "box_labyrinth_mm3": None if self.box_mass is None else round(self.box_mass, 2)}


def _physical(grid: sitk.Image, index_zyx: np.ndarray) -> np.ndarray:
    return np.array(grid.TransformContinuousIndexToPhysicalPoint(np.asarray(index_zyx, float)[::-1].tolist()))


def locate(image: sitk.Image, locator: Locator, session: StageSession, normalisation: dict[str, Any],
           batch_size: int, progress: Progress | None = None) -> tuple[list[Candidate], float]:
    """The locator's largest finds over the whole scan (largest first; empty when it finds
    nothing) and the coarse grid's spacing. A find is a connected region the locator is at
    least its ``threshold`` sure of."""
    prepared = prepare(image, locator.grid_size, normalisation, locator.min_extent_mm)
    probabilities = predict_volume(session, prepared.array[None], locator.view, batch_size, progress or Progress())
    labelled, count = ndimage.label(foreground(probabilities, locator.threshold), structure=np.ones((3, 3, 3), bool))
    spacing = prepared.grid.GetSpacing()[0]
    if count == 0:
        return [], spacing
    sizes = np.bincount(labelled.ravel())[1:]
    centres = ndimage.center_of_mass(np.ones_like(labelled), labelled, range(1, count + 1))
    order = np.argsort(sizes)[::-1][:MAX_CANDIDATES]
    return [Candidate(_physical(prepared.grid, centres[i]), int(sizes[i])) for i in order
            if sizes[i] >= MIN_CANDIDATE_SHARE * sizes[order[0]]], spacing


@dataclass
class Probe:
    """What the first stage found in a box: its prepared image and probabilities, the amount of
    labyrinth (mm³, probability-weighted) and the physical centre of it (None when nothing)."""

    prepared: PreparedScan | None
    probabilities: np.ndarray | None
    mass: float
    found_mm: np.ndarray | None

    def summary(self) -> Probe:
        """The find without its arrays (~40 MB a box): what choosing the ears needs."""
        return Probe(None, None, self.mass, self.found_mm)


def probe(prepared: PreparedScan, session: StageSession, view: str, threshold: float, batch_size: int,
          progress: Progress | None = None) -> Probe:
    """Runs a first stage over a prepared box and measures the labyrinth it finds there."""
    # float16: kept for the cascade's first stage, in half the memory (5e-4 off at most)
    probabilities = predict_volume(session, prepared.array[None], view, batch_size, progress or Progress(),
                                   np.float16)
    mask = largest_component(foreground(probabilities, threshold))
    if not mask.any():
        return Probe(prepared, probabilities, 0.0, None)
    voxel_mm3 = float(np.prod(prepared.grid.GetSpacing()))
    mass = float((1.0 - probabilities[0][mask]).sum(dtype=np.float64)) * voxel_mm3
    return Probe(prepared, probabilities, mass, _physical(prepared.grid, np.argwhere(mask).mean(axis=0)))
