"""The whole segmentation: scan in, labelmap on the scan's own grid out, with a provenance report."""

from __future__ import annotations

import datetime
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from . import __version__
from .errors import InputError, ModelError
from .inference import StageSession, open_session
from .labels import Label
from .model import ModelManifest, load_model, sha256_of, MANIFEST_NAME
from .cascade import run_cascade
from .cochlea_metrics import label_values, measurements_section
from .postprocess import to_original_grid
from .geometry import Geometry
from .preprocess import PreparedScan, prepare
from .progress import Progress
from .terminology import with_terminology
from .scanio import read_scan, scan_warnings, validate_scan

DISCLAIMER = ("Research use only. Not a medical device; accuracy on real patient scans has not been "
              "measured unless the model's manifest says so.")


@dataclass
class SegmentationSettings:
    """How to run the model; recorded in every output's report."""

    device: str = "auto"
    batch_size: int = 16
    keep_largest_component: bool = True
    last_stage: int | None = None  # 1 = stage 1 alone (the plain U-Net baseline)
    keep_probability: bool = False
    crop: bool = True  # later stages only on a box around the labyrinth
    threads: int = 0
    mirror_average: bool | None = None  # None: as the model's manifest asks
    measure: bool = True  # cochlea measurements in the report (cochlea_metrics)


@dataclass
class SegmentationResult:
    labelmap: sitk.Image
    labels: tuple[Label, ...]
    report: dict[str, Any]
    foreground_probability: sitk.Image | None = None


@dataclass
class Segmenter:
    """Holds a model's onnxruntime sessions open, so a folder of scans loads them once."""

    model: ModelManifest | None = None
    settings: SegmentationSettings = field(default_factory=SegmentationSettings)

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = load_model()
        self._sessions: list[StageSession] | None = None
        self.provider_note = ""

    @property
    def mirror_average(self) -> bool:
        """Whether the cascade also runs on the left-right mirror (the setting, else the model's)."""
        if self.settings.mirror_average is None:
            return self.model.mirror_average
        return self.settings.mirror_average

    @property
    def stages(self):
        count = self.settings.last_stage or len(self.model.stages)
        return self.model.stages[:count]

    def sessions(self) -> list[StageSession]:
        if self._sessions is None:
            opened = []
            for stage in self.stages:
                session, self.provider_note = open_session(
                    self.model.stage_path(stage), self.settings.device, self.settings.threads)
                expected = len(stage.channels)
                if session.channels not in (-1, expected):
                    raise ModelError(
                        f"Model {self.model.name}: {stage.file} takes {session.channels} input "
                        f"channel(s) but the manifest gives stage {stage.name} {expected}. "
                        "The manifest does not belong to these files; re-export the model.")
                if session.classes not in (None, len(self.model.labels) + 1):
                    raise ModelError(
                        f"Model {self.model.name}: {stage.file} gives {session.classes} classes but "
                        f"the manifest lists {len(self.model.labels)} labels plus background. "
                        "Re-export the model.")
                opened.append(session)
            self._sessions = opened
        return self._sessions

    @property
    def provider(self) -> str:
        return self.sessions()[0].provider

    def segment(self, image: sitk.Image, progress: Progress | None = None, source: str = "") -> SegmentationResult:
        """Segments one scan; ``progress`` gets fractions and can cancel between batches."""
        progress = progress or Progress()
        prepared, scan, seconds = self._prepare(image, progress, source)
        return self._segment_prepared(prepared, scan, {"resample": seconds}, progress, source)

    def segment_file(self, path: str | Path, progress: Progress | None = None) -> SegmentationResult:
        """Reads and segments a scan, freeing its voxels as soon as the model grid holds them,
        so a micro-CT volume and its labelmap are never both in memory with the network's work."""
        progress = progress or Progress()
        clock = time.perf_counter()
        image = read_scan(path)
        seconds = time.perf_counter() - clock
        prepared, scan, resample_seconds = self._prepare(image, progress, str(path))
        del image
        return self._segment_prepared(prepared, scan, {"read": seconds, "resample": resample_seconds},
                                      progress, str(path))

    def _prepare(self, image: sitk.Image, progress: Progress, source: str) -> tuple[PreparedScan, Geometry, float]:
        image = validate_scan(image, source or "the scan")
        self.sessions()
        clock = time.perf_counter()
        progress.report(0.0, "resampling to the model grid")
        prepared = prepare(image, self.model.grid_size, self.model.normalisation, self.model.min_extent_mm)
        return prepared, Geometry.of(image), time.perf_counter() - clock

    def _segment_prepared(self, prepared: PreparedScan, scan: Geometry, timings: dict[str, float],
                          progress: Progress, source: str) -> SegmentationResult:
        model, settings = self.model, self.settings
        cascade = run_cascade(
            prepared.array, self.stages, self.sessions(), model.threshold, settings.keep_largest_component,
            settings.crop, settings.batch_size, progress.span(0.05, 0.9), self.mirror_average)
        timings.update(cascade.timings)
        clock = time.perf_counter()
        labelmap, probability = to_original_grid(
            cascade.probabilities, cascade.mask, prepared.grid, scan, model.threshold,
            settings.keep_largest_component, settings.keep_probability, progress.span(0.9, 1.0))
        timings["resample_back"] = time.perf_counter() - clock
        if sitk.GetArrayViewFromImage(labelmap).max() == 0:  # no full-size temporary (1500³ micro-CT)
            raise InputError(
                f"No inner ear was found in {source or 'the scan'}. Check that the scan shows a "
                "temporal bone (a crop of a few centimetres around the ear works best).")
        if settings.measure:
            clock = time.perf_counter()
            measurements = measurements_section(labelmap, *label_values(model.labels))
            timings["measure"] = time.perf_counter() - clock
        report = self._report(scan, labelmap, timings, source)
        if settings.measure:
            report["measurements"] = measurements
        report["model_grid"] = {"size": model.grid_size, "spacing_mm": round(prepared.grid.GetSpacing()[0], 6)}
        progress.report(1.0, "done")
        labels = tuple(map(with_terminology, model.labels))
        return SegmentationResult(labelmap, labels, report, probability)

    def _report(self, scan: Geometry, labelmap: sitk.Image, timings: dict, source: str) -> dict[str, Any]:
        model = self.model
        return {
            "software": {"name": "InnerEarSegmentation", "version": __version__},
            "model": {
                "id": model.id,
                "version": model.version,
                "description": model.description,
                "manifest_sha256": sha256_of(model.folder / MANIFEST_NAME),
                "stages_run": [stage.name for stage in self.stages],
            },
            "settings": {**asdict(self.settings), "mirror_average": self.mirror_average},
            "provider": self.provider,
            "provider_note": self.provider_note,
            "input": {
                "source": source,
                "size": list(scan.size),
                "spacing_mm": list(scan.spacing),
                "origin_mm": list(scan.origin),
                "direction": list(scan.direction),
            },
            "segments": segment_volumes(labelmap, model.labels),
            "warnings": scan_warnings(scan, model.grid_size),  # runs, but the result may suffer
            "timings_s": {key: round(value, 3) for key, value in timings.items()},
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "disclaimer": DISCLAIMER,
        }


def segment_volumes(labelmap: sitk.Image, labels: tuple[Label, ...]) -> list[dict[str, Any]]:
    """Voxel count and volume in mm³ of each segment.

    Counted slab by slab: np.bincount casts its input to int64, which for a whole 1500³ labelmap
    would be a 27 GB temporary."""
    array = sitk.GetArrayViewFromImage(labelmap)
    bins = len(labels) + 1
    counts = np.zeros(bins, dtype=np.int64)
    step = max(1, 16_000_000 // max(array[0].size, 1))
    for z in range(0, array.shape[0], step):
        counts += np.bincount(array[z:z + step].ravel(), minlength=bins)[:bins]
    voxel_mm3 = float(np.prod(labelmap.GetSpacing()))
    return [
        {"value": label.value, "name": label.name, "voxels": int(counts[label.value]),
         "volume_mm3": round(float(counts[label.value]) * voxel_mm3, 3)}
        for label in labels
    ]
