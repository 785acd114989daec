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
from .postprocess import structure_labels, to_original_grid
from .geometry import Geometry
from .laterality import SideReading, read_side, sided, structure_values
from .locate import Probe, locate, probe
from .preprocess import PreparedScan, box_centre, prepare, prepare_on, roi_grid
from .progress import Progress
from .terminology import with_terminology
from .scanio import read_scan, scan_warnings, validate_scan

RECENTRE_STEPS = 2  # times the box may move onto what the first stage found in it
RECENTRE_TOLERANCE_MM = 1.0  # a move shorter than this ends the search

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
class Prepared:
    """A scan ready for the cascade: its model grid, its own grid, the timings so far, the
    search for the labyrinth (models with a locator) and stage 1's look at the box, if taken."""

    scan: PreparedScan
    geometry: Geometry
    timings: dict[str, float]
    located: dict[str, Any] | None = None
    first_stage: np.ndarray | None = None


@dataclass
class Segmenter:
    """Holds a model's onnxruntime sessions open, so a folder of scans loads them once."""

    model: ModelManifest | None = None
    settings: SegmentationSettings = field(default_factory=SegmentationSettings)

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = load_model()
        self._sessions: list[StageSession] | None = None
        self._locator_session: StageSession | None = None
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
            if self.model.locator is not None:
                self._locator_session, _ = open_session(
                    self.model.stage_path(self.model.locator.as_stage()), self.settings.device, self.settings.threads)
            self._sessions = opened
        return self._sessions

    @property
    def provider(self) -> str:
        return self.sessions()[0].provider

    def segment(self, image: sitk.Image, progress: Progress | None = None, source: str = "") -> SegmentationResult:
        """Segments one scan; ``progress`` gets fractions and can cancel between batches."""
        progress = progress or Progress()
        return self._segment_prepared(self._prepare(image, progress, source), progress, source)

    def segment_file(self, path: str | Path, progress: Progress | None = None) -> SegmentationResult:
        """Reads and segments a scan, freeing its voxels as soon as the model grid holds them,
        so a micro-CT volume and its labelmap are never both in memory with the network's work."""
        progress = progress or Progress()
        clock = time.perf_counter()
        image = read_scan(path)
        seconds = time.perf_counter() - clock
        prepared = self._prepare(image, progress, str(path))
        del image
        prepared.timings = {"read": seconds, **prepared.timings}
        return self._segment_prepared(prepared, progress, str(path))

    @property
    def cascade_start(self) -> float:
        """The share of the progress bar spent before the cascade (finding the labyrinth, if the
        model has a locator)."""
        return 0.3 if self.model.locator is not None else 0.05

    def _prepare(self, image: sitk.Image, progress: Progress, source: str) -> Prepared:
        """The scan on the model grid: the whole field, or a box round the located labyrinth."""
        image = validate_scan(image, source or "the scan")
        self.sessions()
        clock = time.perf_counter()
        if self.model.locator is None:
            progress.report(0.0, "resampling to the model grid")
            prepared = prepare(image, self.model.grid_size, self.model.normalisation, self.model.min_extent_mm)
            return Prepared(prepared, Geometry.of(image), {"resample": time.perf_counter() - clock})
        look, located = self._box(image, progress, source)
        return Prepared(look.prepared, Geometry.of(image), {"locate": time.perf_counter() - clock}, located,
                        look.probabilities)

    def _box(self, image: sitk.Image, progress: Progress, source: str) -> tuple[Probe, dict[str, Any]]:
        """Finds the labyrinth (locator, then the first stage in a box round each find) and
        returns the first stage's look at the box centred on it, with the report's record."""
        model, settings = self.model, self.settings
        progress.report(0.0, "finding the labyrinth")
        candidates, spacing = locate(image, model.locator, self._locator_session, model.normalisation,
                                     model.threshold, settings.batch_size, progress.span(0.0, 0.1))
        checks = progress.span(0.1, self.cascade_start)
        steps = len(candidates) + RECENTRE_STEPS
        best, chosen = None, None
        for index, candidate in enumerate(candidates):
            look = self._probe(image, candidate.centre_mm, checks.span(index / steps, (index + 1) / steps))
            candidate.box_mass = look.mass
            if look.found_mm is not None and (best is None or look.mass > best.mass):
                best, chosen = look, index
        if best is None:
            raise self._nothing_found(source)
        for step in range(len(candidates), steps):  # a box that cut the labyrinth finds it off-centre
            if np.linalg.norm(best.found_mm - box_centre(best.prepared.grid)) < RECENTRE_TOLERANCE_MM:
                break
            look = self._probe(image, best.found_mm, checks.span(step / steps, (step + 1) / steps))
            if look.found_mm is None:
                break
            best = look
        located = {"box_centre_mm": [round(float(c), 2) for c in box_centre(best.prepared.grid)],
                   "locator_grid_spacing_mm": round(spacing, 4),
                   "candidates": [c.describe() for c in candidates], "chosen": chosen}
        return best, located

    def _probe(self, image: sitk.Image, centre: np.ndarray, progress: Progress) -> Probe:
        """The first stage's look at a box centred on ``centre``."""
        model = self.model
        prepared = prepare_on(image, roi_grid(centre, model.roi_extent_mm, model.grid_size), model.normalisation)
        return probe(prepared, self.sessions()[0], self.stages[0].view, model.threshold, self.settings.batch_size,
                     progress)

    @staticmethod
    def _nothing_found(source: str) -> InputError:
        return InputError(
            f"No inner ear was found in {source or 'the scan'}. Check that the scan shows a "
            "temporal bone (a crop of a few centimetres around the ear works best).")

    def _segment_prepared(self, ready: Prepared, progress: Progress, source: str) -> SegmentationResult:
        model, settings = self.model, self.settings
        prepared, scan, timings = ready.scan, ready.geometry, ready.timings
        cascade = run_cascade(
            prepared.array, self.stages, self.sessions(), model.threshold, settings.keep_largest_component,
            settings.crop, settings.batch_size, progress.span(self.cascade_start, 0.9), self.mirror_average,
            ready.first_stage)
        timings.update(cascade.timings)
        clock = time.perf_counter()
        labelmap, probability = to_original_grid(
            cascade.probabilities, cascade.mask, prepared.grid, scan, model.threshold,
            settings.keep_largest_component, settings.keep_probability, progress.span(0.9, 1.0))
        timings["resample_back"] = time.perf_counter() - clock
        if sitk.GetArrayViewFromImage(labelmap).max() == 0:  # no full-size temporary (1500³ micro-CT)
            raise self._nothing_found(source)
        if settings.measure:
            clock = time.perf_counter()
            measurements = measurements_section(labelmap, *label_values(model.labels))
            timings["measure"] = time.perf_counter() - clock
        reading = self._side(cascade.probabilities, cascade.mask, prepared.grid, scan)
        labels = tuple(sided(with_terminology(label), reading.side if reading else None) for label in model.labels)
        report = self._report(scan, labelmap, labels, timings, source)
        if settings.measure:
            report["measurements"] = measurements
        report["model_grid"] = {"size": model.grid_size, "spacing_mm": round(prepared.grid.GetSpacing()[0], 6),
                                "origin_mm": [round(o, 3) for o in prepared.grid.GetOrigin()]}
        if ready.located is not None:
            report["model_grid"]["box_extent_mm"] = model.roi_extent_mm
            report["located"] = ready.located
        if reading is not None:
            report["laterality"] = reading.describe()
            if reading.warning():
                report["warnings"].append(reading.warning())
        progress.report(1.0, "done")
        return SegmentationResult(labelmap, labels, report, probability)

    def _side(self, probabilities: np.ndarray, mask: np.ndarray, grid: sitk.Image,
              scan: Geometry) -> SideReading | None:
        """Reads the side on the model grid (LPS-aligned, a few MB whatever the scan's size)."""
        values = structure_values(self.model.labels)
        if values is None:
            return None
        return read_side(structure_labels(probabilities, mask), grid, scan, *values)

    def _report(self, scan: Geometry, labelmap: sitk.Image, labels: tuple[Label, ...], timings: dict,
                source: str) -> dict[str, Any]:
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
            "segments": segment_volumes(labelmap, labels),
            "warnings": scan_warnings(scan, (model.locator or model).grid_size),  # runs, but the result may suffer
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
