"""Training data: synthetic phantoms or a folder of real scans with label files, prepared on the
model grid exactly as inference prepares a scan (``InnerEarSegmentationLib.preprocess``).

Each scan becomes a :class:`Case` (normalised image and uint8 labels on the model grid, [z, y, x]).
The resampled arrays are cached as .npz outside the repository (default /tmp/innerear-cache);
the cache key includes the source of preprocess.py and phantom.py, so a change there re-prepares.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from InnerEarSegmentationLib import preprocess
from InnerEarSegmentationLib.slicing import view_axis
from InnerEarSegmentationLib.terminology import terminology_entry

DEFAULT_CACHE = Path(os.environ.get("INNEREAR_CACHE", "/tmp/innerear-cache"))
LIB = Path(preprocess.__file__).resolve().parent
SYNTH = Path(__file__).resolve().parent.parent / "innerear_synth"
STRUCTURE_LABELS = [
    {"value": 1, "name": "Cochlea", "color": [0.91, 0.76, 0.24],
     "terminology": terminology_entry("Cochlea"),
     "description": "Cochlea (fluid-filled bony labyrinth), all turns."},
    {"value": 2, "name": "Vestibule", "color": [0.35, 0.71, 0.89],
     "terminology": terminology_entry("Vestibule"),
     "description": "Vestibule of the bony labyrinth."},
    {"value": 3, "name": "Semicircular canals", "color": [0.85, 0.37, 0.46],
     "terminology": terminology_entry("Semicircular canals"),
     "description": "Superior, posterior and lateral semicircular canals with the common crus."},
]
LABYRINTH_LABEL = [{"value": 1, "name": "Inner ear", "color": [0.91, 0.76, 0.24],
                    "terminology": terminology_entry("Inner ear"),
                    "description": "Bony labyrinth (cochlea, vestibule, semicircular canals)."}]
LABEL_SUFFIXES = ("-label", "_label", "-labels", "_labels", "-seg", "_seg", ".label")
IMAGE_EXTENSIONS = (".nii.gz", ".seg.nrrd", ".nrrd", ".nhdr", ".nii", ".mha", ".mhd")


@dataclass
class Case:
    """One scan on the model grid: normalised image and labels, both [z, y, x]."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    spacing: float
    meta: dict[str, Any] = field(default_factory=dict)

    def bounding_box(self, margin: int = 0) -> tuple[slice, ...] | None:
        if not self.labels.any():
            return None
        box = []
        for axis in range(3):
            other = tuple(a for a in range(3) if a != axis)
            hits = np.nonzero(self.labels.any(axis=other))[0]
            box.append(slice(max(0, int(hits[0]) - margin), min(self.labels.shape[axis], int(hits[-1]) + margin + 1)))
        return tuple(box)


def _source_key() -> str:
    """Short hash of preprocess.py, phantom.py and the renderer (INNEREAR_CACHE_SOURCE_KEY overrides it, to
    reuse a cache across edits known not to change the data)."""
    if os.environ.get("INNEREAR_CACHE_SOURCE_KEY"):
        return os.environ["INNEREAR_CACHE_SOURCE_KEY"]
    digest = hashlib.sha256()
    for path in [LIB / "preprocess.py", LIB / "phantom.py", *sorted(SYNTH.glob("*.py"))]:
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _grid_to_dict(grid: sitk.Image) -> dict:
    return {"size": list(grid.GetSize()), "spacing": list(grid.GetSpacing()),
            "origin": list(grid.GetOrigin()), "direction": list(grid.GetDirection())}


def _cached(key: str, cache: Path | None, build) -> dict[str, np.ndarray]:
    """Loads ``key`` from the cache folder or builds it (a dict of arrays) and stores it."""
    if cache is not None:
        path = Path(cache) / f"{key}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as stored:
                    return {name: stored[name] for name in stored.files}
            except (OSError, ValueError, EOFError):
                path.unlink(missing_ok=True)
    arrays = build()
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        temporary = Path(cache) / f"{key}.{os.getpid()}.tmp.npz"
        np.savez(temporary, **arrays)
        temporary.replace(path)
    return arrays


@dataclass(frozen=True)
class GridRule:
    """How a training scan is put on the model grid: the whole field in a cube never narrower
    than ``min_extent_mm`` (the locator's view), or, with ``roi_extent_mm``, a cube of that size
    around the labyrinth as the locator would centre it: the truth's centroid within the field,
    shifted by a random error of ``jitter_mm`` (sd per axis, clipped at 2.5 sd)."""

    size: int
    min_extent_mm: float = 0.0
    roi_extent_mm: float = 0.0
    jitter_mm: float = 1.5

    @property
    def key(self) -> str:
        key = f"g{self.size}" + (f"-e{self.min_extent_mm:g}" if self.min_extent_mm > 0 else "")
        return key + (f"-roi{self.roi_extent_mm:g}j{self.jitter_mm:g}" if self.roi_extent_mm > 0 else "")


LOCATING_GRID = 64  # where the training finds the truth's centroid before cutting the box


def _roi_centre(image: sitk.Image, labels_for_grid, rule: GridRule, key: str) -> np.ndarray:
    """The visible labyrinth's physical centroid plus the locator-like error (seeded by ``key``)."""
    grid = preprocess.model_grid(image, LOCATING_GRID)
    labels = labels_for_grid(grid)
    labels = sitk.GetArrayFromImage(labels) if isinstance(labels, sitk.Image) else np.asarray(labels)
    visible = (labels > 0) & preprocess.scan_footprint(image, grid)
    points = np.argwhere(visible) if visible.any() else np.argwhere(np.ones_like(visible))
    centre = np.array(grid.TransformContinuousIndexToPhysicalPoint(points.mean(axis=0)[::-1].tolist()))
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    error = np.clip(rng.normal(0.0, rule.jitter_mm, 3), -2.5 * rule.jitter_mm, 2.5 * rule.jitter_mm)
    return centre + error


def _resampled(image: sitk.Image, labels_for_grid, rule: GridRule, key: str) -> dict[str, np.ndarray]:
    """preprocess.prepare() split in two so the normalisation can be applied after caching:
    the grid + resample_to_grid here, normalise in :func:`_make_case` (same calls as prepare_on)."""
    if rule.roi_extent_mm > 0:
        grid = preprocess.roi_grid(_roi_centre(image, labels_for_grid, rule, key), rule.roi_extent_mm, rule.size)
    else:
        grid = preprocess.model_grid(image, rule.size, rule.min_extent_mm)
    raw = preprocess.resample_to_grid(image, grid)
    inside = preprocess.scan_footprint(image, grid)
    labels = labels_for_grid(grid)
    if isinstance(labels, sitk.Image):
        labels = sitk.GetArrayFromImage(labels)
    labels = np.asarray(labels, dtype=np.uint8) * inside  # nothing to find outside the field of view
    return {"raw": raw.astype(np.float32), "labels": labels.astype(np.uint8), "inside": inside,
            "grid": np.frombuffer(json.dumps(_grid_to_dict(grid)).encode(), dtype=np.uint8)}


def _make_case(name: str, arrays: dict[str, np.ndarray], normalisation: dict, meta: dict) -> Case:
    grid = json.loads(bytes(arrays["grid"]).decode())
    image = preprocess.normalise(arrays["raw"], normalisation, arrays.get("inside"))
    case = Case(name, image, arrays["labels"], float(grid["spacing"][0]), dict(meta))
    case.meta["grid"] = grid
    case.meta["raw"] = arrays["raw"]  # kept for 'zscore' statistics; dropped by strip_raw()
    case.meta["inside"] = arrays.get("inside")
    return case


def strip_raw(cases: Iterable[Case]) -> None:
    for case in cases:
        case.meta.pop("raw", None)
        case.meta.pop("inside", None)


# ----------------------------------------------------------------------------- phantoms
def phantom_scan(seed: int, modality: str, **kwargs):
    """The phantom of a seed and modality (the library's generator)."""
    from InnerEarSegmentationLib.phantom import make_phantom

    return make_phantom(seed, modality, **kwargs)


def phantom_case(seed: int, modality: str, grid_size: int, normalisation: dict,
                 cache: Path | None = DEFAULT_CACHE, phantom_kwargs: dict | None = None,
                 min_extent_mm: float = 0.0, restyle: bool = False, roi_extent_mm: float = 0.0) -> Case:
    """A phantom on the model grid; ``restyle`` draws it a random appearance (seeded by ``seed``)."""
    phantom_kwargs = dict(phantom_kwargs or {})
    tag = hashlib.sha256(json.dumps(phantom_kwargs, sort_keys=True).encode()).hexdigest()[:6]
    style = "-restyled" if restyle else ""
    rule = GridRule(grid_size, min_extent_mm, roi_extent_mm)
    key = f"phantom{style}-{modality}-{seed}-{rule.key}-{tag}-{_source_key()}"

    def build():
        phantom = phantom_scan(seed, modality, **phantom_kwargs)
        image = phantom.image()
        if restyle:
            from innerear_synth.phantom_style import restyle as restyle_scan

            image = restyle_scan(image, np.random.default_rng([seed, 7]))
        arrays = _resampled(image, phantom.labels_on, rule, key)
        arrays["source_spacing"] = np.array(image.GetSpacing(), dtype=np.float64)
        arrays["source_size"] = np.array(image.GetSize(), dtype=np.int64)
        return arrays

    arrays = _cached(key, cache, build)
    meta = {"source": "phantom", "seed": seed, "modality": modality, "phantom_kwargs": phantom_kwargs,
            "restyled": restyle,
            "source_spacing_mm": [float(s) for s in arrays.get("source_spacing", [])],
            "source_size": [int(s) for s in arrays.get("source_size", [])]}
    return _make_case(f"{modality}-{seed}", arrays, normalisation, meta)


def phantom_options(modality: str, microct_max_size: int | None) -> dict:
    """Keyword arguments for make_phantom: micro-CT phantoms may be capped in size (a 512³
    phantom takes minutes to generate; the model grid is far coarser anyway)."""
    if modality == "microct" and microct_max_size:
        return {"max_size": int(microct_max_size)}
    return {}


def phantom_cases(seeds: Iterable[int], modalities: list[str], grid_size: int, normalisation: dict,
                  cache: Path | None = DEFAULT_CACHE, log=print, microct_max_size: int | None = None,
                  min_extent_mm: float = 0.0, restyle: bool = False, roi_extent_mm: float = 0.0) -> list[Case]:
    """Phantoms for each seed, the modality alternating through ``modalities``."""
    cases = []
    for index, seed in enumerate(seeds):
        modality = modalities[index % len(modalities)]
        cases.append(phantom_case(seed, modality, grid_size, normalisation, cache,
                                  phantom_options(modality, microct_max_size), min_extent_mm, restyle,
                                  roi_extent_mm))
        if log:
            log(f"  prepared {cases[-1].name} (grid spacing {cases[-1].spacing:.3f} mm, "
                f"{int((cases[-1].labels > 0).sum())} labyrinth voxels)")
    return cases


# ----------------------------------------------------------------------------- real anatomy
def rendered_case(specimen: str, index: int, seed: int, grid_size: int, normalisation: dict,
                  cache: Path | None = DEFAULT_CACHE, min_extent_mm: float = 0.0, roi_extent_mm: float = 0.0) -> Case:
    """Draw ``index`` of a real specimen (innerear_synth.render), prepared as inference prepares a scan."""
    rule = GridRule(grid_size, min_extent_mm, roi_extent_mm)
    key = f"render-{specimen}-{seed}-{index}-{rule.key}-{_source_key()}"

    def build():
        from innerear_synth.render import draw_generator, load_specimen, render_scan

        scan, labels_on, description = render_scan(load_specimen(specimen), draw_generator(seed, index, specimen))
        arrays = _resampled(scan, labels_on, rule, key)
        arrays["description"] = np.frombuffer(json.dumps(description).encode(), dtype=np.uint8)
        return arrays

    arrays = _cached(key, cache, build)
    meta = {"source": "rendered specimen", "specimen": specimen, "index": index,
            "render": json.loads(bytes(arrays["description"]).decode())}
    return _make_case(f"{specimen}-r{index}", arrays, normalisation, meta)


def rendered_cases(specimens: list[str], per_specimen: int, seed: int, grid_size: int, normalisation: dict,
                   cache: Path | None = DEFAULT_CACHE, log=print, min_extent_mm: float = 0.0,
                   roi_extent_mm: float = 0.0) -> list[Case]:
    """``per_specimen`` random renders of each specimen (half of them mirrored: the other ear)."""
    cases = []
    for index in range(per_specimen):
        for specimen in specimens:
            cases.append(rendered_case(specimen, index, seed, grid_size, normalisation, cache, min_extent_mm,
                                       roi_extent_mm))
            if log:
                render = cases[-1].meta["render"]
                log(f"  rendered {cases[-1].name}: {render['protocol']}, {render['field']} field, "
                    f"{render['voxel_mm']} mm voxels, {int((cases[-1].labels > 0).sum())} labyrinth voxels on the grid")
    return cases


# ----------------------------------------------------------------------------- real scans
def head_pair(index: int, specimens: list[str]) -> tuple[str, str]:
    """The right and left ears of head ``index``: the specimens in turn, paired with each other
    and (where both are the same) with their own mirror image."""
    count = len(specimens)
    return specimens[index % count], specimens[(index + 1 + index // count) % count]


def head_case(index: int, seed: int, specimens: list[str], grid_size: int, normalisation: dict,
              cache: Path | None = DEFAULT_CACHE, min_extent_mm: float = 0.0) -> Case:
    """Head ``index``: both temporal bones in a head-size field (innerear_synth.head), on the
    whole-field grid a locator sees."""
    right, left = head_pair(index, specimens)
    rule = GridRule(grid_size, min_extent_mm)
    key = f"head-{right}-{left}-{seed}-{index}-{rule.key}-{_source_key()}"

    def build():
        head = _render_head(index, seed, right, left)
        arrays = _resampled(head.image, head.labels_on, rule, key)
        arrays["description"] = _head_description(head)
        return arrays

    return _head_case(f"head-{index}", index, _cached(key, cache, build), normalisation)


def head_ear_cases(index: int, seed: int, specimens: list[str], grid_size: int, normalisation: dict,
                   roi_extent_mm: float, cache: Path | None = DEFAULT_CACHE) -> list[Case]:
    """Head ``index`` as the cascade sees it: one box round each ear, centred as the engine
    centres it (the ear's centroid, with the locator-like error), brain, sinuses and clinical
    slices round the bone included. The head is rendered once for both boxes."""
    right, left = head_pair(index, specimens)
    rule = GridRule(grid_size, 0.0, roi_extent_mm)
    rendered = []

    def head():
        if not rendered:
            rendered.append(_render_head(index, seed, right, left))
        return rendered[0]

    cases = []
    for side in ("right", "left"):
        key = f"head-{right}-{left}-{seed}-{index}-{side}-{rule.key}-{_source_key()}"

        def build(side=side, key=key):
            scan = head()
            centre = next(ear["labyrinth_centre_mm"] for ear in scan.ears if ear["side"] == side)
            arrays = _resampled(scan.image, lambda grid: scan.labels_on(grid) * within(grid, centre, EAR_REACH_MM),
                                rule, key)
            arrays["description"] = _head_description(scan)
            return arrays

        cases.append(_head_case(f"head-{index}-{side}", index, _cached(key, cache, build), normalisation))
    return cases


EAR_REACH_MM = 20.0  # labels within this of an ear's centre belong to that ear (the ears lie ~100 mm apart)


def within(grid: sitk.Image, centre_mm, reach_mm: float) -> np.ndarray:
    """[z, y, x] voxels of ``grid`` (identity direction: heads and boxes) whose centres lie
    within ``reach_mm`` of a physical point."""
    axes = [grid.GetOrigin()[a] + grid.GetSpacing()[a] * np.arange(grid.GetSize()[a]) - centre_mm[a]
            for a in range(3)]
    return (axes[2][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[0][None, None, :] ** 2) < reach_mm ** 2


def _render_head(index: int, seed: int, right: str, left: str):
    from innerear_synth.head import render_head
    from innerear_synth.render import draw_generator

    return render_head(draw_generator(seed, index, "head"), right, left)


def _head_description(head) -> np.ndarray:
    description = {"ears": head.ears, **{k: head.description[k] for k in ("extent_mm", "voxel_mm", "slice_mm")}}
    return np.frombuffer(json.dumps(description).encode(), dtype=np.uint8)


def _head_case(name: str, index: int, arrays: dict[str, np.ndarray], normalisation: dict) -> Case:
    meta = {"source": "head", "index": index, "render": json.loads(bytes(arrays["description"]).decode())}
    return _make_case(name, arrays, normalisation, meta)


def head_cases(count: int, seed: int, specimens: list[str], grid_size: int, normalisation: dict,
               cache: Path | None = DEFAULT_CACHE, log=print, min_extent_mm: float = 0.0,
               roi_extent_mm: float = 0.0) -> list[Case]:
    """``count`` head-size scans with both ears: whole (a locator's training) or, with
    ``roi_extent_mm``, a box round each ear (a cascade's)."""
    cases = []
    for index in range(count):
        if roi_extent_mm > 0:
            cases.extend(head_ear_cases(index, seed, specimens, grid_size, normalisation, roi_extent_mm, cache))
        else:
            cases.append(head_case(index, seed, specimens, grid_size, normalisation, cache, min_extent_mm))
        if log:
            render = cases[-1].meta["render"]
            log(f"  rendered {cases[-1].name}: {render['extent_mm']} mm field, {render['voxel_mm']} mm voxels, "
                f"{render['slice_mm']} mm slices, {int((cases[-1].labels > 0).sum())} labyrinth voxels on the grid")
    return cases


def _strip_extension(name: str) -> tuple[str, str] | None:
    lower = name.lower()
    for extension in IMAGE_EXTENSIONS:
        if lower.endswith(extension):
            return name[: -len(extension)], extension
    return None


def find_labelled_scans(folder: Path) -> list[tuple[Path, Path]]:
    """(scan, label file) pairs in ``folder``: ``case01.nrrd`` with ``case01-label.nrrd``,
    ``case01_label.nii.gz``, ``case01-seg.nrrd`` ... (any of the image extensions)."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.iterdir()):
        split = _strip_extension(path.name) if path.is_file() else None
        if split:
            files[path.name] = (split[0], path)
    labels = {}
    for stem, path in files.values():
        for suffix in LABEL_SUFFIXES:
            if stem.lower().endswith(suffix):
                labels[stem[: -len(suffix)]] = path
                break
    pairs = []
    for stem, path in files.values():
        if path in labels.values():
            continue
        if stem in labels:
            pairs.append((path, labels[stem]))
    if not pairs:
        raise SystemExit(f"No scan + label pairs in {folder} (expected e.g. case01.nrrd with "
                         "case01-label.nrrd or case01_label.nii.gz).")
    return pairs


def folder_case(scan: Path, label_file: Path, grid_size: int, normalisation: dict,
                cache: Path | None = DEFAULT_CACHE, min_extent_mm: float = 0.0, roi_extent_mm: float = 0.0) -> Case:
    stat = [scan.stat().st_mtime_ns, scan.stat().st_size, label_file.stat().st_mtime_ns]
    tag = hashlib.sha256(f"{scan.resolve()}|{label_file.resolve()}|{stat}".encode()).hexdigest()[:10]
    rule = GridRule(grid_size, min_extent_mm, roi_extent_mm)
    key = f"scan-{re.sub(r'[^A-Za-z0-9_.-]', '_', scan.name)}-{rule.key}-{tag}-{_source_key()}"

    def build():
        image = sitk.ReadImage(str(scan))
        label_image = sitk.ReadImage(str(label_file))

        def labels_on(grid):
            resampled = sitk.Resample(label_image, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                      sitk.sitkUInt8)
            return sitk.GetArrayFromImage(resampled)

        arrays = _resampled(image, labels_on, rule, key)
        arrays["source_spacing"] = np.array(image.GetSpacing(), dtype=np.float64)
        arrays["source_size"] = np.array(image.GetSize(), dtype=np.int64)
        return arrays

    arrays = _cached(key, cache, build)
    meta = {"source": "scan", "file": str(scan), "label_file": str(label_file),
            "source_spacing_mm": [float(s) for s in arrays["source_spacing"]],
            "source_size": [int(s) for s in arrays["source_size"]]}
    return _make_case(_strip_extension(scan.name)[0], arrays, normalisation, meta)


def folder_cases(folder: Path, grid_size: int, normalisation: dict, cache: Path | None = DEFAULT_CACHE,
                 log=print, min_extent_mm: float = 0.0, roi_extent_mm: float = 0.0) -> list[Case]:
    cases = []
    for scan, label_file in find_labelled_scans(folder):
        cases.append(folder_case(scan, label_file, grid_size, normalisation, cache, min_extent_mm,
                                 roi_extent_mm))
        if log:
            log(f"  prepared {cases[-1].name} from {scan.name} + {label_file.name}")
    return cases


def grow_targets(cases: list[Case], reach_mm: float) -> None:
    """Each case's labels become one class: every voxel within ``reach_mm`` of the labyrinth (in
    place). On a head's coarse grid the labyrinth is a few voxels; the region round it is what a
    locator has to find."""
    for case in cases:
        if case.labels.any():
            distance = ndimage.distance_transform_edt(case.labels == 0, sampling=case.spacing)
            case.labels = (distance <= reach_mm).astype(np.uint8)


def labels_for(cases: list[Case]) -> list[dict]:
    """The label table: three structures, or one 'inner ear' label when every file is 0/1."""
    top = max(int(case.labels.max()) for case in cases)
    if top <= 1:
        return LABYRINTH_LABEL
    if top > 3:
        raise SystemExit(f"Label values up to {top} found; expected 0/1 (labyrinth) or 0..3 "
                         "(1 cochlea, 2 vestibule, 3 semicircular canals).")
    return STRUCTURE_LABELS


def zscore_statistics(cases: list[Case]) -> dict:
    """Training-set mean and standard deviation of the resampled (un-normalised) images."""
    total = count = 0.0
    squares = 0.0
    for case in cases:
        raw = case.meta["raw"].astype(np.float64)
        total += raw.sum()
        squares += (raw ** 2).sum()
        count += raw.size
    mean = total / count
    return {"method": "zscore", "mean": float(mean), "std": float(np.sqrt(max(squares / count - mean ** 2, 1e-12)))}


# ----------------------------------------------------------------------------- slices
def select_slices(case: Case, view: str, margin: int, other_fraction: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Slice indices along ``view``: all that cut the labyrinth's bounding box (+ margin), plus a
    random ``other_fraction`` of the rest (so the network also sees empty slices)."""
    axis = view_axis(view)
    count = case.labels.shape[axis]
    box = case.bounding_box(margin)
    inside = np.zeros(count, dtype=bool)
    if box is not None:
        inside[box[axis]] = True
    others = np.nonzero(~inside)[0]
    chosen = others[rng.random(len(others)) < other_fraction]
    return np.sort(np.concatenate([np.nonzero(inside)[0], chosen]))
