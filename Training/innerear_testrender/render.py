"""Renders one CT-like scan of a specimen's anatomy and its ground truth on the scan's voxels.

The chain: per-tissue attenuation (otic capsule denser than other bone) on the anatomy grid ->
trilinear sampling at sub-voxel points of the scanner grid, in the specimen's random pose ->
Gaussian PSF -> mean over each acquisition voxel (partial volume) -> cupping, bias and streaks
-> noise whose variance follows the rays' attenuation and whose texture is filtered
back-projection's -> the protocol's gray-value units.

Truth: each structure's indicator is sampled trilinearly at the same sub-voxel points and
averaged over the voxel; a voxel is labyrinth when the structures fill at least half of it
(volume-preserving partial-volume majority) and takes the structure filling most of it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

from . import physics
from .anatomy import BONE, COCHLEA, STRUCTURES, Anatomy
from .placement import Placement, grid, make_placement, random_rotation, subsampled
from .protocols import ScanParameters, draw_parameters, tissue_table

FOVS = ("whole", "crop", "tight")
SUBVOXEL_MM = 0.2  # sub-sample step: about the anatomy's own voxel (0.19 mm)
MAX_VOXELS_PER_AXIS = 256  # micro-CT crops stay at most 256³ (seconds to render and segment)
LABYRINTH_EXTENT_MM = 18.0  # a crop's random shift keeps about this much of the labyrinth inside
DTYPE_RANGE = {"int16": (-32768, 32767), "uint16": (0, 65535)}
HU_RANGE = (-1024, 3071)


@dataclass
class RenderedScan:
    """A rendered scan, its truth (1 cochlea, 2 vestibule, 3 canals) on the same voxels, the
    labyrinth's volume fraction per voxel ([z, y, x], for sub-voxel surfaces) and how it was made."""

    image: sitk.Image
    truth: sitk.Image
    fraction: np.ndarray
    placement: Placement
    parameters: ScanParameters
    fov: str
    seed: int
    seconds: float

    def describe(self) -> dict:
        size = self.image.GetSize()
        spacing = self.image.GetSpacing()
        return {"protocol": self.parameters.protocol, "fov": self.fov, "seed": self.seed,
                "mirrored": self.placement.mirrored, "size": list(size),
                "spacing_mm": [round(s, 4) for s in spacing],
                "extent_mm": [round(n * s, 1) for n, s in zip(size, spacing)],
                "parameters": {k: (round(v, 4) if isinstance(v, float) else v)
                               for k, v in asdict(self.parameters).items()}}


def _source_box(anatomy: Anatomy, points: np.ndarray, margin: int = 2) -> tuple[slice, ...]:
    """[z, y, x] index box of the anatomy holding the given anatomy-space points."""
    direction = np.array(anatomy.geometry.GetDirection()).reshape(3, 3)
    index_xyz = (points - np.array(anatomy.geometry.GetOrigin())) @ direction / np.array(anatomy.geometry.GetSpacing())
    low = np.floor(index_xyz.min(axis=0)).astype(int)[::-1] - margin
    high = np.ceil(index_xyz.max(axis=0)).astype(int)[::-1] + margin + 1
    shape = anatomy.labels.shape
    return tuple(slice(int(np.clip(a, 0, n)), int(np.clip(b, 0, n))) for a, b, n in zip(low, high, shape))


def _corners(image: sitk.Image) -> np.ndarray:
    size = np.array(image.GetSize(), dtype=float)
    return np.array([image.TransformContinuousIndexToPhysicalPoint(
        [(size[i] if m >> i & 1 else 0.0) - 0.5 for i in range(3)]) for m in range(8)])


def _as_image(array: np.ndarray, anatomy: Anatomy, box: tuple[slice, ...]) -> sitk.Image:
    image = sitk.GetImageFromArray(array, isVector=array.ndim == 4)
    image.SetSpacing(anatomy.geometry.GetSpacing())
    image.SetDirection(anatomy.geometry.GetDirection())
    start = [int(s.start) for s in box[::-1]]
    image.SetOrigin(anatomy.geometry.TransformIndexToPhysicalPoint(start))
    return image


def attenuation(anatomy: Anatomy, box: tuple[slice, ...], rng: np.random.Generator, energy_contrast: float) -> np.ndarray:
    """Relative attenuation (water = 1) on the anatomy grid inside ``box``."""
    table, capsule, texture = tissue_table(rng, energy_contrast)
    labels = anatomy.labels[box]
    mu = table[labels]
    mu += capsule * anatomy.capsule[box]
    mu += np.where(labels == BONE, texture * anatomy.texture[box], 0).astype(np.float32)
    return mu


def _truth(anatomy: Anatomy, output: sitk.Image, placement: Placement, factors: tuple[int, int, int]):
    """Structure labels and labyrinth fraction on ``output``, computed only in the voxels that
    can hold the labyrinth."""
    size_zyx = output.GetSize()[::-1]
    labels = np.zeros(size_zyx, dtype=np.uint8)
    fraction = np.zeros(size_zyx, dtype=np.float32)
    box = anatomy.labyrinth_box(margin=2)
    corners = np.array([[b.start if m >> i & 1 else b.stop - 1 for i, b in enumerate(box)] for m in range(8)], float)
    scanner = placement.to_scanner(anatomy.index_to_physical(corners))
    index = np.array([output.TransformPhysicalPointToContinuousIndex(p.tolist()) for p in scanner])
    low = np.clip(np.floor(index.min(axis=0)).astype(int) - 1, 0, output.GetSize())
    high = np.clip(np.ceil(index.max(axis=0)).astype(int) + 2, 0, output.GetSize())
    if np.any(high <= low):
        return labels, fraction
    fine = subsampled(output, factors, tuple(low.tolist()), tuple((high - low).tolist()))
    source = anatomy.labels[box]
    indicators = np.stack([(source == STRUCTURES[v]).astype(np.float32) for v in (1, 2, 3)], axis=-1)
    sampled = sitk.Resample(_as_image(indicators, anatomy, box), fine, placement.sitk_transform(),
                            sitk.sitkLinear, 0.0, sitk.sitkVectorFloat32)
    sampled = sitk.GetArrayFromImage(sampled)  # [z, y, x, 3]
    parts = np.stack([physics.block_mean(np.ascontiguousarray(sampled[..., i]), factors[::-1]) for i in range(3)])
    window = tuple(slice(int(a), int(b)) for a, b in zip(low[::-1], high[::-1]))
    total = parts.sum(axis=0)
    fraction[window] = total
    labels[window] = np.where(total >= 0.5, parts.argmax(axis=0) + 1, 0)
    return labels, fraction


def render(anatomy: Anatomy, protocol: str, seed: int, fov: str = "crop", mirror: bool = False,
           rotation: str = "default", fov_mm: float | None = None) -> RenderedScan:
    """One scan of ``anatomy`` by ``protocol`` ("microct", "clinical", "cbct"), deterministic
    from ``seed``. ``fov``: "whole" block, a random 20-40 mm "crop" around the labyrinth or a
    9-12 mm "tight" cube on the cochlea. ``mirror`` renders the other side's ear."""
    if fov not in FOVS:
        raise ValueError(f"fov must be one of {', '.join(FOVS)}, not {fov!r}")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    params = draw_parameters(protocol, rng, rotation)
    centre = anatomy.centroid(list(STRUCTURES.values()))
    placement = make_placement(rng, centre, params.max_rotation_deg, mirror)
    direction = random_rotation(rng, 30.0) if rng.random() < params.oblique_direction else np.eye(3)
    spacing = np.array(params.spacing)
    if fov == "whole":
        block = np.array(anatomy.labels.shape[::-1]) * np.array(anatomy.geometry.GetSpacing())
        middle = anatomy.index_to_physical(((np.array(anatomy.labels.shape) - 1) / 2)[None])[0]
        size = float(fov_mm or block.max())
        fov_centre = placement.to_scanner(middle[None])[0]
    elif fov == "crop":
        size = float(fov_mm or rng.uniform(20, 40))
        slack = 0.25 * max(size - LABYRINTH_EXTENT_MM, 0.0)
        fov_centre = centre + direction @ rng.uniform(-slack, slack, 3)
    else:
        size = float(fov_mm or rng.uniform(9, 12))
        cochlea = placement.to_scanner(anatomy.centroid([COCHLEA])[None])[0]
        fov_centre = cochlea + direction @ rng.uniform(-1, 1, 3)
    size_mm = np.minimum(np.full(3, size), MAX_VOXELS_PER_AXIS * spacing)
    output = grid(fov_centre, size_mm, spacing, direction)
    factors = tuple(int(max(1, np.ceil(s / SUBVOXEL_MM - 1e-6))) for s in spacing)  # x, y, z
    fine = subsampled(output, factors)

    box = _source_box(anatomy, placement.to_anatomy(_corners(fine)))
    mu = attenuation(anatomy, box, rng, params.energy_contrast)
    sampled = sitk.Resample(_as_image(mu, anatomy, box), fine, placement.sitk_transform(),
                            sitk.sitkLinear, 0.0, sitk.sitkFloat32)  # outside the block: air
    fine_spacing_zyx = np.array(fine.GetSpacing()[::-1])
    array = physics.blur(sitk.GetArrayFromImage(sampled), np.array(params.psf_fwhm[::-1]), fine_spacing_zyx)
    array = physics.block_mean(array, factors[::-1])
    del sampled, mu

    spacing_zyx = spacing[::-1]
    shape = array.shape
    array = array * physics.cupping_and_bias(shape, params.cupping, params.bias, rng)
    array += physics.streaks(array, params.streaks, rng)
    variance = physics.ray_variance(array, spacing_zyx, params.baseline_path_mm)
    array += params.noise * np.sqrt(variance) * physics.ct_noise(shape, spacing_zyx, np.array(params.psf_fwhm[::-1]), rng)

    gray = params.offset + params.scale * array
    low, high = HU_RANGE if params.units == "HU" else DTYPE_RANGE[params.dtype]
    image = sitk.GetImageFromArray(np.clip(np.rint(gray), low, high).astype(params.dtype))
    image.CopyInformation(output)
    labels, fraction = _truth(anatomy, output, placement, factors)
    truth = sitk.GetImageFromArray(labels)
    truth.CopyInformation(output)
    return RenderedScan(image, truth, fraction, placement, params, fov, seed, time.perf_counter() - started)
