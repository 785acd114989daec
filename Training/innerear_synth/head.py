"""Synthetic head CT holding both temporal bones, for a labyrinth locator that must work on any
field of view (120-250 mm) and find both ears (issue "Any field of view, both ears").

The head is a label map of simple shapes drawn on a 1 mm grid: scalp, skull vault, brain with CSF
and ventricles, a dense skull base with clivus and petrous apices, mastoids with air cells,
paranasal sinuses, nasal cavity, orbits and a neck with its spine and airway. Each ear is a real
specimen placed in it (mirrored when no specimen of that side is given) and rendered from its own
0.19 mm voxels, so the labyrinth stays as sharp as the scan's voxel allows; the head shows through
wherever the specimen's block holds open air. Both are blurred, sampled on the scan's grid and given
the clinical scanner physics and HU of ``appearance``.

Coordinates are patient LPS in mm (x to the patient's left), with the ears' nominal midpoint at
the origin. Cost, measured on two cores shared with a training run: a 180 mm field at 0.5 mm
(360³ voxels) takes 14 s of CPU (30 s wall) and peaks at 1.4 GB; the largest, 250 mm at 0.49 mm
(512³), 25 s of CPU (52 s wall) and 4.3 GB, most of it in ``scanner_physics``. Each specimen is
read and prepared once per process (a few seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

from . import specimens as sp
from .appearance import (AIR_LABELS, BONE_LABELS, FLUID_LABELS, JOINT_LABELS, NERVE_LABELS, VESSEL_LABELS,
                         draw_tissue_values, scanner_physics, smooth_noise, to_units)
from .spatial import log_uniform

HEAD_MM = np.array([150.0, 190.0, 200.0])  # LR, AP, SI lengths of the head ellipsoid, each scaled ±10 %
HEAD_VOXEL_MM = 1.0                        # the head's label map: a coarse grid...
HEAD_BLUR_VOXELS = 0.6                     # ...blurred this much more (sigma) to hide its steps
FIELD_MM = (120.0, 250.0)
VOXEL_MM = (0.3, 0.7)                      # in-plane
MAX_SLICE_MM = 1.5
MAX_VOXELS_PER_AXIS = 512                  # a CT matrix: a 250 mm field gets 0.49 mm voxels at the finest
MAX_SLICE_SAMPLES = 3                      # sub-samples averaged over a thick slice's profile
SIDE_SIGN = {"right": -1.0, "left": 1.0}   # the sign of x on each side (LPS)
OPEN_AIR_BALL_MM = 2.0                     # specimen air a ball this wide can reach from the block's faces is open
WINDOW_MARGIN_MM = 3.0                     # room round a specimen's tissue for the blur
CAPSULE_MM = 2.5                           # the otic capsule's widest reach (as tissue_volume draws it)
CUT_MM, CUT_WAVE_MM, FADE_MM = 4.0, 2.0, 2.0  # a specimen fades out 2-6 mm inside its block's faces
FIELD_MARGIN_MM = 15.0                     # every labyrinth centre lies this far inside the field
# Skull base height (z, mm) against y (mm, posterior +) relative to the ears: the anterior fossa high
# over the orbits, the middle fossa at the ear's level, the posterior fossa low behind the petrous ridge.
BASE_Y = np.array([-120.0, -55.0, -40.0, -10.0, 10.0, 30.0, 120.0])
BASE_Z = np.array([35.0, 30.0, -2.0, -5.0, -10.0, -35.0, -40.0])

# Head labels beyond the specimens' table (head bone is sp.BONE, head air sp.AIR).
SOFT, BRAIN, CSF, DENSE = 20, 21, 22, 23
FILL = 255  # a specimen's open air, where the head shows through
IS_BONE = np.isin(np.arange(256), (*BONE_LABELS, DENSE))  # by label: a table lookup is 20x np.isin
IS_AIR = np.isin(np.arange(256), AIR_LABELS)


@dataclass
class _Prepared:
    """A specimen ready to place: its open air marked FILL, the window round its tissue, how far
    its bone reaches laterally of the labyrinth (which sets how deep the ear sits in the head)."""

    name: str
    side: str                         # the side the specimen is
    anatomy: sitk.Image               # the derived map, patient LPS
    structures: sitk.Image            # 1 cochlea, 2 vestibule, 3 canals, same geometry
    labels: np.ndarray                # [z, y, x] derived labels, FILL where the air is open
    labyrinth_centre: np.ndarray      # mm
    labyrinth_distance_mm: np.ndarray  # exact up to CAPSULE_MM from the labyrinth, inf beyond
    window: tuple[slice, ...]
    lateral_reach_mm: float


@dataclass
class _Placement:
    """Where one ear's specimen sits in the head, both ways."""

    side: str
    prepared: _Prepared
    mirrored: bool
    centre: np.ndarray                 # the labyrinth centre in the head (mm)
    to_specimen: sitk.AffineTransform  # head point -> specimen point
    to_head: sitk.AffineTransform      # specimen point -> head point
    description: dict


@dataclass
class _Field:
    grid: sitk.Image   # the scan's voxels
    fine: sitk.Image   # the same with each slice sampled ``factor`` times across its thickness
    factor: int
    description: dict


@dataclass
class HeadScan:
    """A rendered head and, through the placements it was rendered with, the truth of both ears."""

    image: sitk.Image          # int16 HU, identity direction, LPS
    ears: list[dict]           # side, specimen, mirrored, labyrinth_centre_mm
    description: dict          # every random choice
    _placements: list[_Placement] = field(repr=False)

    def labels_on(self, grid: sitk.Image) -> np.ndarray:
        """Both ears' structures ([z, y, x] uint8: 1 cochlea, 2 vestibule, 3 canals) on any grid,
        nearest neighbour from the specimens through the placements the image was rendered with."""
        out = np.zeros(grid.GetSize()[::-1], dtype=np.uint8)
        for placement in self._placements:
            box = _box_in(grid, _window_corners(placement), 1)
            if box is None:
                continue
            labels = sitk.GetArrayFromImage(sitk.Resample(
                placement.prepared.structures, _sub_grid(grid, box), placement.to_specimen,
                sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))
            region = out[box]
            region[labels > 0] = labels[labels > 0]
        return out


def render_head(rng: np.random.Generator, right: str = "RT147", left: str | None = None,
                field_mm: float | None = None, voxel_mm: float | None = None) -> HeadScan:
    """One random head scan with the ``right`` specimen as its right ear and ``left`` (default: the
    right one mirrored) as its left. ``field_mm`` fixes a cubic field, ``voxel_mm`` isotropic voxels;
    every other choice is drawn from ``rng`` (the same seed gives the same scan)."""
    head = _draw_head(rng)
    placements = [_place(rng, head, side, name) for side, name in (("right", right), ("left", left or right))]
    scan = _draw_field(rng, placements, field_mm, voxel_mm)
    look = _Appearance.draw(rng)
    psf_fwhm = log_uniform(rng, 0.2, 1.0)
    sigma_mm = float(np.hypot(psf_fwhm / 2.355, 0.4 * scan.grid.GetSpacing()[0]))
    canvas = _Canvas.covering(scan.fine)
    anatomy = _draw_anatomy(canvas, head, placements, rng)
    image = _sample_head(canvas, look, float(np.hypot(sigma_mm, HEAD_BLUR_VOXELS * HEAD_VOXEL_MM)), scan.fine, rng)
    for placement in placements:
        _composite(image, scan.fine, _render_ear(placement, look, sigma_mm, rng), placement)
    image = _thick_slices(image, scan.factor)
    image = scanner_physics(image, rng, "clinical")
    voxels, units = to_units(image, rng, "clinical")
    out = sitk.GetImageFromArray(voxels)
    out.CopyInformation(scan.grid)
    ears = [{"side": p.side, "specimen": p.prepared.name, "mirrored": p.mirrored,
             "labyrinth_centre_mm": p.centre.round(3).tolist()} for p in placements]
    description = {"protocol": "clinical", "head": head, "ears": [p.description for p in placements],
                   **scan.description, "anatomy": anatomy, "psf_fwhm_mm": round(psf_fwhm, 3), **units,
                   **look.description()}
    return HeadScan(out, ears, description, placements)


# --- the specimens -------------------------------------------------------------------------------

@lru_cache(maxsize=4)
def _prepare(name: str) -> _Prepared:
    """A specimen read and marked for placing (cached: a few seconds each)."""
    anatomy = sp.read_anatomy(name)
    labels = sitk.GetArrayFromImage(anatomy)
    spacing = np.array(anatomy.GetSpacing())[::-1]  # [z, y, x]
    structures_array = sp.structures(labels)
    structures = sitk.GetImageFromArray(structures_array)
    structures.CopyInformation(anatomy)
    labyrinth = np.argwhere(structures_array > 0)
    centre = np.array(anatomy.TransformContinuousIndexToPhysicalPoint(labyrinth.mean(axis=0)[::-1].tolist()))
    labels[_open_air(labels, spacing)] = FILL
    tissue = labels != FILL
    window = _bounds(np.argwhere(tissue), int(np.ceil(WINDOW_MARGIN_MM / spacing.min())), labels.shape)
    side = sp.SPECIMENS[name][1]
    solid = tissue & (labels != sp.AIR)
    return _Prepared(name, side, anatomy, structures, labels, centre,
                     _labyrinth_distance(structures_array > 0, labyrinth, spacing), window,
                     _lateral_reach(anatomy, solid, centre, side))


def _bounds(index: np.ndarray, margin: int, shape: tuple) -> tuple[slice, ...]:
    """The [z, y, x] slices round some voxels, ``margin`` wider, inside ``shape``."""
    low = np.maximum(index.min(axis=0) - margin, 0)
    high = np.minimum(index.max(axis=0) + margin + 1, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def _labyrinth_distance(labyrinth: np.ndarray, index: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) to the labyrinth, computed only in a box CAPSULE_MM round it (the otic capsule
    reaches no further): a whole-block transform costs ~20x more."""
    box = _bounds(index, int(np.ceil(CAPSULE_MM / spacing.min())) + 1, labyrinth.shape)
    distance = np.full(labyrinth.shape, np.inf, dtype=np.float32)
    distance[box] = ndimage.distance_transform_edt(~labyrinth[box], sampling=spacing)
    return distance


def _open_air(labels: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """The specimen's air that is not its own: what a ball of OPEN_AIR_BALL_MM sweeps in from the
    block's faces. Mastoid cells, the middle ear and narrow crevices stay air; the rest becomes head.
    Swept at half resolution (a voxel counts as air if any of its eight does)."""
    air = labels == sp.AIR
    even = np.pad(air, [(0, n % 2) for n in air.shape], mode="edge")
    z, y, x = (n // 2 for n in even.shape)
    coarse = even.reshape(z, 2, y, 2, x, 2).any(axis=(1, 3, 5))
    room = _distance_outside(~coarse, 2 * spacing) > OPEN_AIR_BALL_MM
    parts, _ = ndimage.label(room)
    faces = np.unique(np.concatenate([parts[[0, -1]].ravel(), parts[:, [0, -1]].ravel(),
                                      parts[:, :, [0, -1]].ravel()]))
    reached = np.isin(parts, faces[faces > 0])
    swept = _distance_outside(reached, 2 * spacing) <= OPEN_AIR_BALL_MM
    full = swept.repeat(2, axis=0).repeat(2, axis=1).repeat(2, axis=2)[: air.shape[0], : air.shape[1], : air.shape[2]]
    return air & full


def _distance_outside(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) from each voxel outside ``mask`` to the nearest voxel in it (<= 0 inside):
    SimpleITK's threaded transform, several times faster than scipy's here."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(spacing[::-1].tolist())
    distance = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False,
                                            useImageSpacing=True)
    return sitk.GetArrayFromImage(distance)


def _lateral_reach(anatomy: sitk.Image, solid: np.ndarray, labyrinth: np.ndarray, side: str) -> float:
    """How far (mm) the specimen's solid tissue reaches laterally of its labyrinth (99th percentile)."""
    index = np.argwhere(solid[::4, ::4, ::4])[:, ::-1] * 4
    direction = np.array(anatomy.GetDirection()).reshape(3, 3)
    points = np.array(anatomy.GetOrigin()) + (index * np.array(anatomy.GetSpacing())) @ direction.T
    return float(np.percentile(SIDE_SIGN[side] * (points[:, 0] - labyrinth[0]), 99))


# --- random choices ------------------------------------------------------------------------------

def _draw_head(rng: np.random.Generator) -> dict:
    """The head's shape: its ellipsoid, the layers of the vault and the sizes of its cavities."""
    return {
        "semi_axes_mm": (HEAD_MM / 2 * rng.uniform(0.9, 1.1, 3)).round(2).tolist(),
        "centre_mm": [0.0, round(-rng.uniform(5.0, 15.0), 2), round(rng.uniform(20.0, 35.0), 2)],
        "scalp_mm": round(rng.uniform(5.0, 8.0), 2),
        "skull_mm": round(rng.uniform(5.0, 8.0), 2),
        "csf_mm": round(rng.uniform(1.0, 3.0), 2),
        "base_shift_mm": round(rng.uniform(-4.0, 4.0), 2),
        "base_mm": round(rng.uniform(6.0, 10.0), 2),
        "sinus_scale": round(rng.uniform(0.7, 1.2), 3),
        "ventricle_scale": round(rng.uniform(0.6, 1.4), 3),
    }


def _skull_half_width(head: dict) -> float:
    """Half the width of the skull's outer surface at the ears' level."""
    semi = np.array(head["semi_axes_mm"]) - head["scalp_mm"]
    _, y, z = -np.array(head["centre_mm"]) / semi
    return float(semi[0] * np.sqrt(max(1.0 - y * y - z * z, 0.25)))


def _place(rng: np.random.Generator, head: dict, side: str, name: str) -> _Placement:
    """The ear of ``side``: the labyrinth deep enough that the specimen's lateral bone meets the
    skull's outer surface, jittered by a few mm and turned up to 10 degrees."""
    prepared = _prepare(name)
    depth = prepared.lateral_reach_mm + rng.uniform(0.0, 2.0)
    lateral = _skull_half_width(head) - depth + rng.uniform(-2.0, 2.0)
    centre = np.array([SIDE_SIGN[side] * lateral, rng.uniform(-5.0, 5.0), rng.uniform(-5.0, 5.0)])
    axis = rng.standard_normal(3)
    angle = np.deg2rad(rng.uniform(0.0, 10.0))
    rotation = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()
    mirrored = prepared.side != side
    flip = np.diag([-1.0 if mirrored else 1.0, 1.0, 1.0])
    forward = rotation @ flip  # specimen offsets from its labyrinth -> head offsets from the centre
    labyrinth = prepared.labyrinth_centre
    to_head = sitk.AffineTransform(3)
    to_head.SetMatrix(forward.ravel().tolist())
    to_head.SetTranslation((centre - forward @ labyrinth).tolist())
    to_specimen = sitk.AffineTransform(3)
    to_specimen.SetMatrix(np.linalg.inv(forward).ravel().tolist())
    to_specimen.SetTranslation((labyrinth - np.linalg.inv(forward) @ centre).tolist())
    description = {"side": side, "specimen": name, "mirrored": mirrored, "centre_mm": centre.round(3).tolist(),
                   "rotation_deg": np.rad2deg(Rotation.from_matrix(rotation).as_rotvec()).round(3).tolist()}
    return _Placement(side, prepared, mirrored, centre, to_specimen, to_head, description)


def _draw_field(rng: np.random.Generator, placements: list[_Placement], field_mm: float | None,
                voxel_mm: float | None) -> _Field:
    """The scan's grid: a cube or box of 120-250 mm round the ears (shifted where it has room),
    0.3-0.7 mm in-plane voxels, axial slices up to 1.5 mm thick."""
    if field_mm is not None:
        extent = np.full(3, float(field_mm))
    elif rng.random() < 0.5:
        extent = np.full(3, rng.uniform(*FIELD_MM))
    else:
        extent = rng.uniform(*FIELD_MM, 3)
    in_plane = voxel_mm or rng.uniform(*VOXEL_MM)
    thickness = voxel_mm or (in_plane if rng.random() < 0.4 else rng.uniform(in_plane, MAX_SLICE_MM))
    spacing = np.array([in_plane, in_plane, thickness])
    spacing = np.maximum(spacing, [extent[:2].max() / MAX_VOXELS_PER_AXIS] * 2 + [extent[2] / MAX_VOXELS_PER_AXIS])
    size = np.round(extent / spacing).astype(int)
    centres = np.array([p.centre for p in placements])
    room = extent / 2 - (np.abs(centres).max(axis=0) + FIELD_MARGIN_MM)
    shift = rng.uniform(-1.0, 1.0, 3) * np.clip(room, 0.0, 30.0)
    origin = shift - (size - 1) * spacing / 2
    grid = _empty_grid(size, spacing, origin)
    factor = int(min(MAX_SLICE_SAMPLES, max(1, round(spacing[2] / spacing[0]))))
    fine_spacing = spacing.copy()
    fine_spacing[2] /= factor
    fine_origin = origin.copy()
    fine_origin[2] -= (factor - 1) / 2 * fine_spacing[2]
    fine = _empty_grid(size * [1, 1, factor], fine_spacing, fine_origin)
    description = {"extent_mm": (size * spacing).round(2).tolist(), "voxel_mm": round(float(spacing[0]), 4),
                   "slice_mm": round(float(spacing[2]), 4), "shift_mm": shift.round(2).tolist()}
    return _Field(grid, fine, factor, description)


# --- the head's label map ------------------------------------------------------------------------

@dataclass
class _Canvas:
    """The head's labels ([z, y, x], HEAD_VOXEL_MM, identity direction) being drawn."""

    labels: np.ndarray
    origin: np.ndarray  # x, y, z mm of voxel 0

    @classmethod
    def covering(cls, grid: sitk.Image) -> _Canvas:
        """A map over the scan's field, a few mm wider for the blur."""
        points = _grid_corners(grid)
        low = np.floor(points.min(axis=0)) - 4.0
        high = np.ceil(points.max(axis=0)) + 4.0
        size = np.round((high - low) / HEAD_VOXEL_MM).astype(int) + 1
        return cls(np.zeros(size[::-1], dtype=np.uint8), low)

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, y, z (mm) of the voxel centres, shaped to broadcast over [z, y, x]."""
        z, y, x = (self.origin[a] + HEAD_VOXEL_MM * np.arange(self.labels.shape[2 - a], dtype=np.float32)
                   for a in (2, 1, 0))
        return x[None, None, :], y[None, :, None], z[:, None, None]

    def ellipsoid(self, centre, semi, axes: np.ndarray | None = None) -> tuple[tuple[slice, ...], np.ndarray] | None:
        """The ellipsoid's bounding box in the map and which of its voxels lie inside; ``axes``
        (columns) turns it."""
        centre, semi = np.asarray(centre, dtype=float), np.asarray(semi, dtype=np.float32)
        axes = np.eye(3, dtype=np.float32) if axes is None else axes.astype(np.float32)  # float32 full-size terms
        reach = np.sqrt(((axes * semi) ** 2).sum(axis=1))
        shape = np.array(self.labels.shape[::-1])
        low = np.clip(np.floor((centre - reach - self.origin) / HEAD_VOXEL_MM), 0, shape).astype(int)
        high = np.clip(np.ceil((centre + reach - self.origin) / HEAD_VOXEL_MM) + 1, 0, shape).astype(int)
        if np.any(high <= low):
            return None
        x, y, z = ((self.origin[a] + HEAD_VOXEL_MM * np.arange(low[a], high[a]) - centre[a]).astype(np.float32)
                   for a in range(3))
        x, y, z = x[None, None, :], y[None, :, None], z[:, None, None]
        if np.array_equal(axes, np.eye(3)):  # upright: three 1-D terms, one full-size sum
            q = (x / semi[0]) ** 2 + (y / semi[1]) ** 2 + (z / semi[2]) ** 2
        else:
            q = sum(((axes[0, k] * x + axes[1, k] * y + axes[2, k] * z) / semi[k]) ** 2 for k in range(3))
        return tuple(slice(int(low[a]), int(high[a])) for a in (2, 1, 0)), q <= 1.0

    def paint(self, value: int, centre, semi, axes: np.ndarray | None = None,
              within: np.ndarray | None = None) -> None:
        """Sets the voxels of an ellipsoid (those also ``within``, a full-size mask, if given)."""
        found = self.ellipsoid(centre, semi, axes)
        if found is None:
            return
        box, inside = found
        if within is not None:
            inside &= within[box]
        self.labels[box][inside] = value

    def mask(self, centre, semi) -> np.ndarray:
        """A full-size mask of an upright ellipsoid."""
        out = np.zeros(self.labels.shape, dtype=bool)
        found = self.ellipsoid(centre, semi)
        if found is not None:
            out[found[0]] = found[1]
        return out


def _draw_anatomy(canvas: _Canvas, head: dict, placements: list[_Placement], rng: np.random.Generator) -> dict:
    """Paints the head, innermost last; returns the random choices made while painting."""
    _paint_neck(canvas)
    _paint_cranium(canvas, head)
    _paint_face(canvas, head)
    skull = canvas.mask(head["centre_mm"], np.array(head["semi_axes_mm"]) - head["scalp_mm"])
    canvas.paint(DENSE, [0.0, -8.0, -18.0], [10.0, 8.0, 18.0])  # clivus
    return {"mastoids": [_paint_temporal(canvas, p.centre, skull, rng) for p in placements]}


def _paint_neck(canvas: _Canvas) -> None:
    """Soft tissue with the cervical spine, the cord in its canal and the airway in front."""
    canvas.paint(SOFT, [0.0, 5.0, -150.0], [55.0, 60.0, 130.0])
    canvas.paint(sp.AIR, [0.0, -20.0, -75.0], [10.0, 7.0, 50.0])
    canvas.paint(sp.BONE, [0.0, 2.0, -115.0], [13.0, 11.0, 85.0])   # vertebral bodies
    canvas.paint(sp.BONE, [0.0, 24.0, -115.0], [14.0, 10.0, 83.0])  # posterior arches
    canvas.paint(BRAIN, [0.0, 17.0, -115.0], [7.0, 6.0, 90.0])      # the cord


def _paint_cranium(canvas: _Canvas, head: dict) -> None:
    """Scalp, vault and brain above the skull base; a dense plate along the base; soft tissue of
    the face and neck below it."""
    centre, semi = head["centre_mm"], np.array(head["semi_axes_mm"])
    _, y, z = canvas.axes()
    base = np.interp(y, BASE_Y, BASE_Z).astype(np.float32) + head["base_shift_mm"]
    above = np.broadcast_to(z > base, canvas.labels.shape)
    floor = np.broadcast_to(z > base - head["base_mm"], canvas.labels.shape)
    skull = semi - head["scalp_mm"]
    cavity = skull - head["skull_mm"]
    canvas.paint(SOFT, centre, semi)
    canvas.paint(DENSE, centre, skull, within=floor)
    canvas.paint(sp.BONE, centre, skull, within=above)
    canvas.paint(CSF, centre, cavity, within=above)
    canvas.paint(BRAIN, centre, cavity - head["csf_mm"], within=above)
    ventricle = np.array([5.0, 25.0, 9.0]) * head["ventricle_scale"]
    for side in (-1.0, 1.0):  # the lateral ventricles
        canvas.paint(CSF, [side * 9.0, centre[1] + 5.0, centre[2] + 12.0], ventricle)


def _front(head: dict, z: float) -> float:
    """y of the skull's outer surface in the midline at height z (the face's bony front)."""
    semi = np.array(head["semi_axes_mm"]) - head["scalp_mm"]
    centre = head["centre_mm"]
    return float(centre[1] - semi[1] * np.sqrt(max(1.0 - ((z - centre[2]) / semi[2]) ** 2, 0.1)))


def _paint_face(canvas: _Canvas, head: dict) -> None:
    """Nasal cavity and septum, maxillary, frontal and sphenoid sinuses (air in bone walls), orbits."""
    s = head["sinus_scale"]
    nasal = [0.0, _front(head, -12.0) + 35.0, -12.0]
    canvas.paint(sp.AIR, nasal, [12.0, 33.0, 20.0])
    canvas.paint(sp.BONE, nasal, [1.0, 30.0, 18.0])
    for side in (-1.0, 1.0):
        maxillary = [side * 25.0, _front(head, -20.0) + 30.0, -20.0]
        canvas.paint(sp.BONE, maxillary, np.array([12.0, 17.0, 15.0]) * s + 2.0)
        canvas.paint(sp.AIR, maxillary, np.array([12.0, 17.0, 15.0]) * s)
        orbit = [side * 32.0, _front(head, 15.0) + 24.0, 15.0]
        canvas.paint(sp.BONE, orbit, [18.0, 24.0, 17.0])
        canvas.paint(SOFT, orbit, [16.0, 22.0, 15.0])
    frontal = [0.0, _front(head, 42.0) + 10.0, 42.0]
    canvas.paint(sp.BONE, frontal, np.array([16.0, 8.0, 13.0]) * s + 3.0)
    canvas.paint(sp.AIR, frontal, np.array([16.0, 8.0, 13.0]) * s)
    sphenoid = [0.0, -30.0, -2.0]
    canvas.paint(DENSE, sphenoid, np.array([13.0, 11.0, 11.0]) * s + 2.5)
    canvas.paint(sp.AIR, sphenoid, np.array([13.0, 11.0, 11.0]) * s)


def _paint_temporal(canvas: _Canvas, ear: np.ndarray, skull: np.ndarray, rng: np.random.Generator) -> dict:
    """The petrous ridge (dense, from the ear to its apex beside the clivus) and the mastoid
    (bone with a random number of air cells) behind and below the ear; returns the mastoid's draw."""
    side = np.sign(ear[0])
    apex = np.array([side * 15.0, ear[1] - 0.9 * (abs(ear[0]) - 15.0), ear[2] - 5.0])
    along = apex - ear
    length = np.linalg.norm(along)
    u = along / length
    v = np.cross(u, [0.0, 0.0, 1.0])
    v /= np.linalg.norm(v)
    canvas.paint(DENSE, (ear + apex) / 2, [length / 2 + 6.0, 9.0, 8.0], np.stack([u, v, np.cross(u, v)], axis=1))
    mastoid = ear + np.array([side * 12.0, 12.0, -12.0])
    scale = rng.uniform(0.8, 1.2)
    semi = np.array([10.0, 13.0, 16.0]) * scale
    canvas.paint(sp.BONE, mastoid, semi, within=skull)
    cells = int(rng.integers(5, 60))
    for _ in range(cells):
        direction = rng.standard_normal(3)
        offset = direction / np.linalg.norm(direction) * rng.random() ** (1 / 3) * 0.85
        canvas.paint(sp.AIR, mastoid + offset * semi, [rng.uniform(1.0, 3.0)] * 3, within=skull)
    return {"scale": round(scale, 3), "air_cells": cells}


# --- tissue and sampling -------------------------------------------------------------------------

@dataclass
class _Appearance:
    """One draw of gray values and texture, shared by the head and both ears (they must match)."""

    values: dict[str, float]
    texture: dict[str, float]
    lookup: np.ndarray  # unit-scale value of every label

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _Appearance:
        values = draw_tissue_values(rng)
        if values["air"] > 0.15:  # a head is scanned in air, never immersed as a specimen may be
            values["air"] = rng.uniform(0.0, 0.15)
        values["brain"] = values["soft"] + rng.uniform(-0.03, 0.01)
        values["dense"] = values["bone"] + rng.uniform(0.2, 0.8) * (values["capsule"] - values["bone"])
        texture = {"bone": rng.uniform(0.0, 0.25) * (values["bone"] - values["soft"]),  # as tissue_volume
                   "bone_scale_mm": rng.uniform(0.3, 1.2), "soft": rng.uniform(0.0, 0.03),
                   "capsule_mm": rng.uniform(0.8, CAPSULE_MM)}
        lookup = np.full(256, values["bone"], dtype=np.float32)
        for labels, key in ((AIR_LABELS, "air"), (BONE_LABELS, "bone"), (FLUID_LABELS, "fluid"),
                            (NERVE_LABELS, "nerve"), (VESSEL_LABELS, "vessel"), (JOINT_LABELS, "joint"),
                            ((SOFT,), "soft"), ((BRAIN,), "brain"), ((CSF,), "fluid"), ((DENSE,), "dense")):
            lookup[list(labels)] = values[key]
        return cls(values, texture, lookup)

    def tissue(self, labels: np.ndarray, spacing_mm: float, rng: np.random.Generator,
               labyrinth_distance_mm: np.ndarray | None = None) -> np.ndarray:
        """The noiseless, unblurred unit-scale image of a label map ([z, y, x] float32): bone
        texture, soft-tissue mottle and, given the labyrinth distance, the dense otic capsule."""
        image = self.lookup[labels]
        bone = IS_BONE[labels]
        texture = self.texture
        image[bone] += texture["bone"] * smooth_noise(rng, labels.shape, texture["bone_scale_mm"] / spacing_mm)[bone]
        soft = ~bone & ~IS_AIR[labels]
        image[soft] += texture["soft"] * smooth_noise(rng, labels.shape, 2.0 / spacing_mm)[soft]
        if labyrinth_distance_mm is not None:
            reach = texture["capsule_mm"]
            capsule = bone & (labyrinth_distance_mm < reach)
            weight = np.clip(1.0 - labyrinth_distance_mm[capsule] / reach, 0, 1) ** 0.5
            image[capsule] = image[capsule] * (1 - weight) + self.values["capsule"] * weight
        return image

    def description(self) -> dict:
        return {"tissue": {k: round(float(v), 3) for k, v in self.values.items()},
                "texture": {k: round(float(v), 3) for k, v in self.texture.items()}}


def _sample_head(canvas: _Canvas, look: _Appearance, sigma_mm: float, fine: sitk.Image,
                 rng: np.random.Generator) -> np.ndarray:
    """The head's blurred tissue sampled (linearly) on the scan's fine grid ([z, y, x] float32)."""
    image = sitk.GetImageFromArray(look.tissue(canvas.labels, HEAD_VOXEL_MM, rng))
    image.SetSpacing([HEAD_VOXEL_MM] * 3)
    image.SetOrigin(canvas.origin.tolist())
    blurred = sitk.SmoothingRecursiveGaussian(image, sigma_mm)
    return sitk.GetArrayFromImage(sitk.Resample(blurred, fine, sitk.Transform(), sitk.sitkLinear,
                                                look.values["air"], sitk.sitkFloat32))


def _render_ear(placement: _Placement, look: _Appearance, sigma_mm: float,
                rng: np.random.Generator) -> tuple[sitk.Image, sitk.Image]:
    """The specimen's window at its own voxels, blurred, as premultiplied colour and coverage: its
    tissue times its coverage, and its coverage (0 on its open air and its sawn faces, where the
    head shows through). Blurring both alike blends the ear into the head without a seam."""
    prepared = placement.prepared
    anatomy, window = prepared.anatomy, prepared.window
    labels = prepared.labels[window]
    spacing = float(np.mean(anatomy.GetSpacing()))
    tissue = look.tissue(labels, spacing, rng, prepared.labyrinth_distance_mm[window])
    own = _fade(prepared, rng)
    own[labels == FILL] = 0.0
    tissue *= own
    return (sitk.SmoothingRecursiveGaussian(_window_image(tissue, anatomy, window), sigma_mm),
            sitk.SmoothingRecursiveGaussian(_window_image(own, anatomy, window), sigma_mm))


def _fade(prepared: _Prepared, rng: np.random.Generator) -> np.ndarray:
    """The specimen's coverage of its window ([z, y, x] float32): 1 inside, 0 at its block's faces,
    where the bone was sawn, along a wavy surface a few mm in; a flat cut round every labyrinth
    would be a cue a locator could learn in place of the ear."""
    spacing = np.array(prepared.anatomy.GetSpacing())[::-1]
    z, y, x = (np.minimum(np.arange(w.start, w.stop), n - 1 - np.arange(w.start, w.stop)).astype(np.float32)
               * float(step) for w, n, step in zip(prepared.window, prepared.labels.shape, spacing))
    depth = np.minimum(np.minimum(z[:, None, None], y[None, :, None]), x[None, None, :])  # mm to the nearest face
    cut = CUT_MM + CUT_WAVE_MM * np.clip(smooth_noise(rng, depth.shape, 2 * CUT_MM / spacing.min()), -1.0, 1.0)
    return np.clip((depth - cut) / FADE_MM + 0.5, 0.0, 1.0)


def _composite(image: np.ndarray, fine: sitk.Image, ear: tuple[sitk.Image, sitk.Image],
               placement: _Placement) -> None:
    """Lays the ear's render over the scan's fine image, in place, inside its window's box."""
    box = _box_in(fine, _window_corners(placement), 1)
    if box is None:
        return
    grid = _sub_grid(fine, box)
    colour, coverage = (sitk.GetArrayFromImage(sitk.Resample(part, grid, placement.to_specimen, sitk.sitkLinear,
                                                             0.0, sitk.sitkFloat32)) for part in ear)
    region = image[box]
    region *= 1.0 - coverage
    region += colour


def _thick_slices(image: np.ndarray, factor: int) -> np.ndarray:
    """Each slice the mean of its ``factor`` sub-samples (a box slice profile)."""
    if factor == 1:
        return image
    z, y, x = image.shape
    return image.reshape(z // factor, factor, y, x).mean(axis=1, dtype=np.float32)


# --- grids ---------------------------------------------------------------------------------------

def _empty_grid(size: np.ndarray, spacing: np.ndarray, origin: np.ndarray) -> sitk.Image:
    grid = sitk.Image([int(n) for n in size], sitk.sitkUInt8)
    grid.SetSpacing([float(s) for s in spacing])
    grid.SetOrigin([float(o) for o in origin])
    return grid


def _window_image(array: np.ndarray, anatomy: sitk.Image, window: tuple[slice, ...]) -> sitk.Image:
    """An array of a specimen's window as an image in the specimen's frame."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(anatomy.GetSpacing())
    image.SetDirection(anatomy.GetDirection())
    image.SetOrigin(anatomy.TransformIndexToPhysicalPoint([int(window[a].start) for a in (2, 1, 0)]))
    return image


def _grid_corners(grid: sitk.Image) -> np.ndarray:
    """The physical points (8 x 3) of a grid's corner voxels."""
    size = np.array(grid.GetSize()) - 1
    return np.array([grid.TransformContinuousIndexToPhysicalPoint((size * [i, j, k]).tolist())
                     for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)


def _window_corners(placement: _Placement) -> np.ndarray:
    """The corners of a specimen's window, placed in the head."""
    prepared = placement.prepared
    anatomy, window = prepared.anatomy, prepared.window
    corners = [[window[2 - a].start if pick == 0 else window[2 - a].stop - 1 for a, pick in enumerate(picks)]
               for picks in np.ndindex(2, 2, 2)]
    return np.array([placement.to_head.TransformPoint(anatomy.TransformIndexToPhysicalPoint([int(c) for c in corner]))
                     for corner in corners])


def _box_in(grid: sitk.Image, points: np.ndarray, margin: int) -> tuple[slice, ...] | None:
    """The [z, y, x] slices of ``grid`` holding ``points`` (plus ``margin`` voxels); None if outside."""
    index = np.array([grid.TransformPhysicalPointToContinuousIndex(p.tolist()) for p in points])
    size = np.array(grid.GetSize())
    low = np.clip(np.floor(index.min(axis=0)) - margin, 0, size).astype(int)
    high = np.clip(np.ceil(index.max(axis=0)) + margin + 1, 0, size).astype(int)
    if np.any(high <= low):
        return None
    return tuple(slice(int(low[a]), int(high[a])) for a in (2, 1, 0))


def _sub_grid(grid: sitk.Image, box: tuple[slice, ...]) -> sitk.Image:
    """The part of ``grid`` a box covers, as its own empty image (same spacing and direction)."""
    sub = sitk.Image([box[a].stop - box[a].start for a in (2, 1, 0)], sitk.sitkUInt8)
    sub.SetSpacing(grid.GetSpacing())
    sub.SetDirection(grid.GetDirection())
    sub.SetOrigin(grid.TransformIndexToPhysicalPoint([box[a].start for a in (2, 1, 0)]))
    return sub
