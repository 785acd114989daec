"""Segments a rendered scan with the extension's real engine and scores it against its truth.

Overlap metrics come from the library's ``metrics`` (the same definitions as the extension's
own evaluation); the HD95 is measured both between voxel centres (``metrics``, floored at the
spacing) and between sub-voxel iso-surfaces (the prediction's foreground probability against
the truth's partial-volume fraction, see ``surface_distance``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from InnerEarSegmentationLib.errors import InputError
from InnerEarSegmentationLib.metrics import compute_metrics, per_label_dice
from InnerEarSegmentationLib.model import ModelManifest, load_model
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter

from .render import RenderedScan
from .surface_distance import surface_distances

STRUCTURE_VALUES = (1, 2, 3)


@dataclass
class Method:
    """A column of the report: a model folder per held-out specimen (``"*"`` for any) and how
    many cascade stages to run (1 = the single U-Net baseline)."""

    name: str
    folders: dict[str, Path | None]
    last_stage: int | None = None

    def folder_for(self, specimen: str) -> Path | None:
        if specimen in self.folders:
            return self.folders[specimen]
        if "*" in self.folders:
            return self.folders["*"]
        raise KeyError(f"method {self.name!r} has no model for specimen {specimen}")


@dataclass
class Engines:
    """Opens each (model folder, last stage) once and keeps its onnxruntime sessions."""

    threads: int = 2
    cache: dict = field(default_factory=dict)

    def model(self, folder: Path | None) -> ModelManifest:
        key = ("model", str(folder))
        if key not in self.cache:
            self.cache[key] = load_model(folder)
        return self.cache[key]

    def segmenter(self, folder: Path | None, last_stage: int | None) -> Segmenter:
        key = (str(folder), last_stage)
        if key not in self.cache:
            settings = SegmentationSettings(device="cpu", last_stage=last_stage, keep_probability=True,
                                            threads=self.threads)
            self.cache[key] = Segmenter(self.model(folder), settings)
        return self.cache[key]


def central_slices(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """The three orthogonal [z, y, x] slices through the truth's centroid (for pictures)."""
    where = np.argwhere(truth > 0)
    z, y, x = where.mean(axis=0).round().astype(int) if where.size else np.array(image.shape) // 2
    return [tuple(np.ascontiguousarray(a[index]) for a in (image, truth, prediction))
            for index in ((z,), (slice(None), y), (slice(None), slice(None), x))]


def score(segmenter: Segmenter, scan: RenderedScan) -> tuple[dict, list]:
    """Metrics of one scan and the slices for its picture."""
    truth = sitk.GetArrayFromImage(scan.truth)
    spacing_zyx = tuple(float(s) for s in scan.image.GetSpacing()[::-1])
    started = time.perf_counter()
    try:
        result = segmenter.segment(scan.image)
        prediction = sitk.GetArrayFromImage(result.labelmap)
        probability = sitk.GetArrayFromImage(result.foreground_probability)
    except InputError:  # nothing found: an empty prediction, scored as such
        prediction = np.zeros_like(truth)
        probability = np.zeros(truth.shape, dtype=np.float32)
    seconds = time.perf_counter() - started
    metrics = compute_metrics(prediction > 0, truth > 0, spacing_zyx)
    row = {"dice": metrics["dice"], "precision": metrics["precision"], "recall": metrics["recall"],
           "hd95_voxel_mm": metrics["hd95_mm"]}
    for value, dice in per_label_dice(prediction, truth, list(STRUCTURE_VALUES)).items():
        row[f"dice_{value}"] = dice
    # The probability limited to the final labelmap (islands it dropped stay dropped), so the
    # iso-surface is the labelmap's boundary placed to a fraction of a voxel.
    kept = np.where(ndimage.binary_dilation(prediction > 0), probability, 0.0)
    distances = surface_distances(kept, scan.fraction, spacing_zyx)
    row["hd95_mm"] = distances["hd95_mm"]
    row["msd_mm"] = distances["msd_mm"]
    row["segment_s"] = seconds
    return row, central_slices(sitk.GetArrayFromImage(scan.image), truth, prediction)
