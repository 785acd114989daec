"""The whole segmentation: scan in, labelmap on the scan's own grid out, with a provenance report."""

from __future__ import annotations

import datetime
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from . import __version__
from .errors import InputError, ModelError
from .inference import CUDA, StageSession, open_session
from .labels import Label
from .model import ModelManifest, load_model, sha256_of, MANIFEST_NAME
from .capsule import lies_in_bone
from .cascade import run_cascade
from .cochlea_metrics import label_values, measurements_section
from .postprocess import structure_labels, to_original_grid
from .geometry import Geometry
from .laterality import LEFT, RIGHT, SideReading, read_side, sided, structure_values
from .locate import Probe, locate, probe
from .preprocess import PreparedScan, box_centre, prepare, prepare_on, roi_grid
from .progress import Progress
from .terminology import with_terminology
from .scanio import read_scan, scan_warnings, validate_scan

RECENTRE_STEPS = 2  # times the box may move onto what the first stage found in it
RECENTRE_TOLERANCE_MM = 1.0  # a move shorter than this ends the search
RECENTRE_REACH_MM = 8.0  # the box never moves farther than this from the locator's find
MAX_EARS = 2
# Slices per network call. On a CPU a bigger batch is no faster (1.5-1.7 s for a 128³ box at
# 2-16 slices) but its activations add to the peak memory of a head CT; a GPU wants them.
CPU_BATCH_SIZE, GPU_BATCH_SIZE = 2, 16
SECOND_EAR_SHARE = 0.25  # a second labyrinth holds at least this share of the first's (mm³)
EAR_SEPARATION_MM = 40.0  # the other ear lies at least this far away (adults: 70-110 mm)...
EAR_AXIS_SHARE = 0.7  # ...and mostly along the left-right axis (a head tilted up to ~45 degrees)
SIDES = ("both", "right", "left")
# Less labyrinth than this (a third of a cochlea) is no inner ear: what the first stage finds in a
# labyrinth filled with bone, or in a chest's spinal canal, is a few to 30 mm³; an adult bony
# labyrinth holds about 200 (the cochlea 80), and it reaches that size before birth.
MIN_EAR_MM3 = 30.0
SINGLE_EAR_SECTIONS = ("measurements", "model_grid", "located", "laterality")  # also top level for one ear

DISCLAIMER = ("Research use only. Not a medical device; accuracy on real patient scans has not been "
              "measured unless the model's manifest says so.")


@dataclass
class SegmentationSettings:
    """How to run the model; recorded in every output's report."""

    device: str = "auto"
    batch_size: int | None = None  # None: CPU_BATCH_SIZE on a CPU, GPU_BATCH_SIZE on a GPU
    keep_largest_component: bool = True
    last_stage: int | None = None  # 1 = stage 1 alone (the plain U-Net baseline)
    keep_probability: bool = False
    crop: bool = True  # later stages only on a box around the labyrinth
    threads: int = 0
    mirror_average: bool | None = None  # None: as the model's manifest asks
    measure: bool = True  # cochlea measurements in the report (cochlea_metrics)
    side: str = "both"  # "right" or "left": keep only that ear of a scan that shows both


@dataclass
class SegmentationResult:
    labelmap: sitk.Image
    labels: tuple[Label, ...]
    report: dict[str, Any]
    foreground_probability: sitk.Image | None = None


@dataclass
class Box:
    """Where the cascade looks: the scan on the model grid (the whole field, or a box round one
    located labyrinth), stage 1's look at it if already taken, and the search's record."""

    scan: PreparedScan
    first_stage: np.ndarray | None = None
    located: dict[str, Any] | None = None


@dataclass
class Prepared:
    """A scan ready for the cascade: one box per ear found (patient right first), its own grid
    and the timings so far."""

    boxes: list[Box]
    geometry: Geometry
    timings: dict[str, float]


@dataclass
class Ear:
    """One ear's result on the scan's grid, before the ears are put together."""

    labels: tuple[Label, ...]
    reading: SideReading | None
    report: dict[str, Any]
    in_bone: bool = True  # fluid inside bone (capsule.py): a scan where no ear is shows no inner ear


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
    def batch_size(self) -> int:
        """Slices per network call: the setting, else the default for the provider in use."""
        if self.settings.batch_size:
            return self.settings.batch_size
        return GPU_BATCH_SIZE if self.provider == CUDA else CPU_BATCH_SIZE

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
            return Prepared([Box(prepared)], Geometry.of(image), {"resample": time.perf_counter() - clock})
        boxes = self._boxes(image, progress, source)
        return Prepared(boxes, Geometry.of(image), {"locate": time.perf_counter() - clock})

    def _boxes(self, image: sitk.Image, progress: Progress, source: str) -> list[Box]:
        """Finds the labyrinths (locator, then the first stage in a box round each find): the
        box where the first stage finds the most labyrinth, and a second ear where another box
        far from it holds a good share of that, each box centred on what was found in it."""
        model, settings = self.model, self.settings
        progress.report(0.0, "finding the labyrinth")
        candidates, spacing = locate(image, model.locator, self._locator_session, model.normalisation,
                                     self.batch_size, progress.span(0.0, 0.1))
        checks = progress.span(0.1, self.cascade_start)
        steps = len(candidates) + MAX_EARS * RECENTRE_STEPS
        looks: list[tuple[Probe, int]] = []
        for index, candidate in enumerate(candidates):
            look = self._probe(image, candidate.centre_mm, checks.span(index / steps, (index + 1) / steps))
            candidate.box_mass = look.mass
            if look.found_mm is not None:
                looks = _heaviest_kept_whole(looks + [(look, index)])
            del look  # its arrays live on only as the heaviest find so far
        chosen = _distinct_ears(looks)
        if not chosen:
            raise self._nothing_found(source)
        boxes = []
        for number, (look, index) in enumerate(chosen):
            if look.probabilities is None:  # let go of while the other finds were checked: look again
                look = self._probe(image, candidates[index].centre_mm, Progress())
            first = len(candidates) + number * RECENTRE_STEPS
            look = self._recentred(image, look, checks.span(first / steps, (first + RECENTRE_STEPS) / steps))
            boxes.append(Box(look.prepared, look.probabilities, {
                "box_centre_mm": [round(float(c), 2) for c in box_centre(look.prepared.grid)],
                "locator_grid_spacing_mm": round(spacing, 4),
                "candidates": [c.describe() for c in candidates], "chosen": index}))
        return sorted(boxes, key=lambda box: box.located["box_centre_mm"][0])  # LPS x: patient right first

    def _recentred(self, image: sitk.Image, look: Probe, progress: Progress) -> Probe:
        """The box moved onto what the first stage found in it (a box that cut the labyrinth
        finds it off-centre), until the move is small. It stays within RECENTRE_REACH_MM of the
        locator's find: in a head, a box also holds brain and venous sinus, which the first
        stage may take for more labyrinth than the labyrinth it cut."""
        start = centre = box_centre(look.prepared.grid)
        for step in range(RECENTRE_STEPS):
            if np.linalg.norm(look.found_mm - centre) < RECENTRE_TOLERANCE_MM \
                    or np.linalg.norm(look.found_mm - start) > RECENTRE_REACH_MM:
                break
            target, look = look.found_mm, look.summary()  # its arrays go while the moved box is looked at
            moved = self._probe(image, target, progress.span(step / RECENTRE_STEPS, (step + 1) / RECENTRE_STEPS))
            if moved.found_mm is None:  # the move lost it (rare): back to the box that found it
                return self._probe(image, centre, Progress())
            look, centre = moved, target
        return look

    def _probe(self, image: sitk.Image, centre: np.ndarray, progress: Progress) -> Probe:
        """The first stage's look at a box centred on ``centre``."""
        model = self.model
        prepared = prepare_on(image, roi_grid(centre, model.roi_extent_mm, model.grid_size), model.normalisation)
        return probe(prepared, self.sessions()[0], self.stages[0].view, model.threshold, self.batch_size,
                     progress)

    @staticmethod
    def _nothing_found(source: str) -> InputError:
        return InputError(
            f"No inner ear was found in {source or 'the scan'}. Check that the scan shows a "
            "temporal bone (a crop of a few centimetres around the ear works best).")

    def _segment_prepared(self, ready: Prepared, progress: Progress, source: str) -> SegmentationResult:
        """Runs the cascade in each box and puts the ears on the scan's grid: one ear keeps the
        model's label values, two get them for the patient's right ear and the next ones for
        the left (the same order as the boxes)."""
        settings, scan = self.settings, ready.geometry
        canvas: tuple[sitk.Image, sitk.Image | None] | None = None
        ears: list[Ear] = []
        share = (1.0 - self.cascade_start) / len(ready.boxes)
        places = (RIGHT, LEFT) if len(ready.boxes) == 2 else (None,)  # boxes come patient right first
        for number, (box, place) in enumerate(zip(ready.boxes, places)):
            start = self.cascade_start + number * share
            offset = len(ears) * len(self.model.labels)
            ear, canvas = self._segment_box(box, scan, canvas, offset, ready.timings,
                                            progress.span(start, start + share), place)
            if ear is not None:
                ears.append(ear)
        labelmap, probability = canvas
        # the labelmap's max, not a comparison: no full-size temporary (1500³ micro-CT)
        if not shows_an_inner_ear(ears) or sitk.GetArrayViewFromImage(labelmap).max() == 0:
            raise self._nothing_found(source)
        if settings.side != "both":
            labelmap, probability, ears = self._one_side(labelmap, probability, ears, source)
        labels = tuple(label for ear in ears for label in ear.labels)
        report = self._report(scan, labelmap, labels, ready.timings, source)
        report["ears"] = [ear.report for ear in ears]
        if len(ears) == 1:  # a single ear's sections stay where they always were
            report.update({key: value for key, value in ears[0].report.items() if key in SINGLE_EAR_SECTIONS})
        for ear in ears:
            if ear.reading is not None and ear.reading.warning():
                report["warnings"].append(ear.reading.warning())
        progress.report(1.0, "done")
        return SegmentationResult(labelmap, labels, report, probability)

    def _segment_box(self, box: Box, scan: Geometry, canvas, offset: int, timings: dict[str, float],
                     progress: Progress, place: str | None = None) -> tuple[Ear | None, tuple]:
        """One ear: the cascade in its box, its side, its labels (values from ``offset`` + 1)
        pasted onto the scan-grid ``canvas`` (made on the first call), its report sections.
        ``place``: the ear's side by its place in a scan of both ears (the header's reading, far
        surer than the cochlea's offset from the canals in a coarse segmentation)."""
        model, settings = self.model, self.settings
        prepared = box.scan
        cascade = run_cascade(
            prepared.array, self.stages, self.sessions(), model.threshold, settings.keep_largest_component,
            settings.crop, self.batch_size, progress.span(0.0, 0.85), self.mirror_average, box.first_stage)
        _add_timings(timings, cascade.timings)
        if cascade.mask.sum() * float(np.prod(prepared.grid.GetSpacing())) < MIN_EAR_MM3:
            cascade.mask[:] = False  # too little to be an ear: nothing of it reaches the scan
        clock = time.perf_counter()
        canvas = to_original_grid(
            cascade.probabilities, cascade.mask, prepared.grid, scan, model.threshold,
            settings.keep_largest_component, settings.keep_probability, progress.span(0.85, 1.0), canvas, offset)
        _add_timings(timings, {"resample_back": time.perf_counter() - clock})
        if not cascade.mask.any():
            return None, canvas
        in_bone = lies_in_bone(prepared.array, cascade.mask, prepared.grid.GetSpacing()[0], model.normalisation)
        reading = self._side(cascade.probabilities, cascade.mask, prepared.grid, scan)
        if reading is not None and place is not None:
            reading = replace(reading, header=place, header_from_place=True)
        labels = tuple(replace(sided(with_terminology(label), reading.side if reading else None),
                               value=label.value + offset) for label in model.labels)
        report: dict[str, Any] = {"side": reading.side if reading else None, "label_values": [l.value for l in labels]}
        if settings.measure:
            clock = time.perf_counter()
            cochlea, vestibule = label_values(model.labels)
            report["measurements"] = measurements_section(
                canvas[0], *(None if value is None else value + offset for value in (cochlea, vestibule)))
            _add_timings(timings, {"measure": time.perf_counter() - clock})
        report["model_grid"] = {"size": model.grid_size, "spacing_mm": round(prepared.grid.GetSpacing()[0], 6),
                                "origin_mm": [round(o, 3) for o in prepared.grid.GetOrigin()]}
        if box.located is not None:
            report["model_grid"]["box_extent_mm"] = model.roi_extent_mm
            report["located"] = box.located
        if reading is not None:
            report["laterality"] = reading.describe()
        return Ear(labels, reading, report, in_bone), canvas

    def _one_side(self, labelmap: sitk.Image, probability: sitk.Image | None, ears: list[Ear],
                  source: str) -> tuple[sitk.Image, sitk.Image | None, list[Ear]]:
        """Only the ear of the side asked for, with the model's own label values."""
        wanted = self.settings.side
        kept = [ear for ear in ears if ear.reading is not None and ear.reading.side == wanted]
        if not kept:
            found = ", ".join(ear.reading.side if ear.reading and ear.reading.side else "side not determined"
                              for ear in ears)
            raise InputError(f"No {wanted} inner ear was found in {source or 'the scan'} (found: {found}). "
                             "Segment both sides to see what was found.")
        ear = kept[0]
        if len(ears) == 1:
            return labelmap, probability, ears
        values = ear.report["label_values"]
        lookup = np.zeros(256, dtype=np.uint8)
        lookup[values] = [label.value for label in self.model.labels]
        labelmap = _relabel(labelmap, lookup)
        if probability is not None:
            probability = sitk.Mask(probability, labelmap > 0)
        labels = tuple(replace(label, value=int(lookup[label.value])) for label in ear.labels)
        report = dict(ear.report, label_values=[label.value for label in labels])
        return labelmap, probability, [Ear(labels, ear.reading, report)]

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
            "settings": {**asdict(self.settings), "mirror_average": self.mirror_average, "batch_size": self.batch_size},
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
            "warnings": scan_warnings(scan, model.grid_size, model.locator is None),  # runs, but the result may suffer
            "timings_s": {key: round(value, 3) for key, value in timings.items()},
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "disclaimer": DISCLAIMER,
        }


def _distinct_ears(looks: list[tuple[Probe, int]]) -> list[tuple[Probe, int]]:
    """The boxes that hold an ear: the one with the most labyrinth, then another where the other
    ear can be (across the head: far off, mostly along x) with at least SECOND_EAR_SHARE of its
    labyrinth. Anything else the first stage finds in a block of one temporal bone (the internal
    auditory canal, a vessel) lies too near or in the wrong direction."""
    ordered = sorted(looks, key=lambda pair: -pair[0].mass)
    kept: list[tuple[Probe, int]] = []
    for look, index in ordered:
        if len(kept) == MAX_EARS or (kept and look.mass < SECOND_EAR_SHARE * kept[0][0].mass):
            break
        if all(_other_ear(look.found_mm - other.found_mm) for other, _ in kept):
            kept.append((look, index))
    return kept


def shows_an_inner_ear(ears: list[Ear]) -> bool:
    """Whether any find is fluid inside bone (capsule.py). One that is vouches for the other box,
    which lies where the other ear must (``_distinct_ears``) even when its segmentation is too
    poor to show the contrast; none means the scan shows no inner ear."""
    return any(ear.in_bone for ear in ears)


def _heaviest_kept_whole(looks: list[tuple[Probe, int]]) -> list[tuple[Probe, int]]:
    """The finds with the arrays of only the heaviest kept (nearly always an ear): each other
    box's image and probabilities would hold ~40 MB more of a head's peak memory; the other
    ear's box is looked at again once chosen (under a second), if recentring does not anyway."""
    heaviest = max(range(len(looks)), key=lambda i: looks[i][0].mass)
    return [(look if i == heaviest else look.summary(), index) for i, (look, index) in enumerate(looks)]


def _other_ear(offset_mm: np.ndarray) -> bool:
    """Whether a find at this offset from an ear can be the ear of the other side."""
    distance = float(np.linalg.norm(offset_mm))
    return distance >= EAR_SEPARATION_MM and abs(float(offset_mm[0])) >= EAR_AXIS_SHARE * distance


def _add_timings(timings: dict[str, float], more: dict[str, float]) -> None:
    """Adds one ear's timings to the scan's (two ears: each step's total)."""
    for key, value in more.items():
        timings[key] = timings.get(key, 0.0) + value


def _relabel(labelmap: sitk.Image, lookup: np.ndarray) -> sitk.Image:
    """The labelmap with each value v replaced by lookup[v] (in place on one copy, slab by slab)."""
    array = sitk.GetArrayFromImage(labelmap)
    for z in range(0, array.shape[0], 32):
        array[z:z + 32] = lookup[array[z:z + 32]]
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(labelmap)
    return out


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
