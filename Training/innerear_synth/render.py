"""One training scan drawn from a real specimen: random pose, field, voxels, appearance, physics.

The scan comes out as a scanner would write it (its own voxel grid, HU or arbitrary units), so
training prepares it with the library's own preprocessing, exactly as inference prepares a scan.
The labels come from the same transform, sampled on whatever grid the caller asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
import zlib
from functools import lru_cache
from typing import Callable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import specimens as sp
from .appearance import scanner_physics, tissue_volume, to_units
from .spatial import ScanGeometry, draw_geometry, log_uniform

PROTOCOLS = ("clinical", "cbct", "microct")


@dataclass
class Specimen:
    name: str
    anatomy: sitk.Image            # derived map, patient LPS
    labels: np.ndarray             # its voxels [z, y, x]
    structures: sitk.Image         # 1 cochlea, 2 vestibule, 3 canals, same geometry
    labyrinth_distance_mm: np.ndarray
    labyrinth_centre: np.ndarray   # physical mm
    cochlea_centre: np.ndarray
    extent_mm: float


def draw_generator(seed: int, index: int, specimen: str) -> np.random.Generator:
    """The random generator of draw ``index`` of a specimen: one stream per (seed, index, name).
    The name enters through its CRC-32, not its character sum, under which RT138 and RT147
    collided and were drawn in the same poses and appearances."""
    return np.random.default_rng([seed, index, zlib.crc32(specimen.encode())])


def _physical_centroid(image: sitk.Image, mask: np.ndarray) -> np.ndarray:
    index = np.argwhere(mask).mean(axis=0)[::-1]
    return np.array(image.TransformContinuousIndexToPhysicalPoint(index.tolist()))


@lru_cache(maxsize=8)
def load_specimen(name: str) -> Specimen:
    anatomy = sp.read_anatomy(name)
    labels = sitk.GetArrayFromImage(anatomy)
    structures_array = sp.structures(labels)
    structures = sitk.GetImageFromArray(structures_array)
    structures.CopyInformation(anatomy)
    spacing = np.array(anatomy.GetSpacing())[::-1]
    distance = ndimage.distance_transform_edt(structures_array == 0, sampling=spacing).astype(np.float32)
    return Specimen(name, anatomy, labels, structures, distance,
                    _physical_centroid(anatomy, structures_array > 0),
                    _physical_centroid(anatomy, structures_array == 1),
                    float(np.min(np.array(anatomy.GetSize()) * np.array(anatomy.GetSpacing()))))


def _window(specimen: Specimen, geometry: ScanGeometry) -> tuple[slice, ...]:
    """The part of the specimen's voxels the scan can see ([z, y, x] slices): its corners through
    the pose, widened by the warp and the blur."""
    grid = geometry.grid
    size = np.array(grid.GetSize())
    corners = [grid.TransformContinuousIndexToPhysicalPoint(((np.array([i, j, k]) * (size - 1))).tolist())
               for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    anatomy = specimen.anatomy
    margin = (geometry.warp_mm + 2.0) / min(anatomy.GetSpacing())
    index = np.array([anatomy.TransformPhysicalPointToContinuousIndex(geometry.pose.TransformPoint(c))
                      for c in corners])
    low = np.maximum(np.floor(index.min(axis=0) - margin), 0).astype(int)
    high = np.minimum(np.ceil(index.max(axis=0) + margin) + 1, anatomy.GetSize()).astype(int)
    high = np.maximum(high, low + 2)
    return tuple(slice(int(low[a]), int(high[a])) for a in (2, 1, 0))


def _tissue_image(array: np.ndarray, specimen: Specimen, window: tuple[slice, ...]) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    anatomy = specimen.anatomy
    image.SetSpacing(anatomy.GetSpacing())
    image.SetDirection(anatomy.GetDirection())
    image.SetOrigin(anatomy.TransformIndexToPhysicalPoint([int(window[a].start) for a in (2, 1, 0)]))
    return image


def _acquire(tissue: sitk.Image, geometry: ScanGeometry, outside: float) -> np.ndarray:
    """Samples the blurred tissue image on the scan grid; a thick-slice axis is first sampled at
    the in-plane spacing, averaged over the slice profile, then decimated."""
    grid = geometry.grid
    spacing = np.array(grid.GetSpacing())
    axis = geometry.slice_axis
    fine = spacing.copy()
    fine[axis] = min(spacing[axis], spacing[[a for a in range(3) if a != axis]].min())
    factor = max(1, int(round(spacing[axis] / fine[axis])))
    if factor > 1:
        size = np.array(grid.GetSize())
        size[axis] *= factor
        fine[axis] = spacing[axis] / factor
        origin = np.array(grid.GetOrigin())
        origin[axis] -= (factor - 1) / 2 * fine[axis]
        target = sitk.Image(size.tolist(), sitk.sitkUInt8)
        target.SetSpacing(fine.tolist())
        target.SetOrigin(origin.tolist())
    else:
        target = grid
    sampled = sitk.GetArrayFromImage(sitk.Resample(tissue, target, geometry.to_anatomy, sitk.sitkLinear,
                                                   outside, sitk.sitkFloat32))
    if factor > 1:
        array_axis = 2 - axis
        sampled = ndimage.uniform_filter1d(sampled, factor, axis=array_axis)
        sampled = np.take(sampled, np.arange(factor // 2, sampled.shape[array_axis], factor), axis=array_axis)
    return sampled


def render_scan(specimen: Specimen, rng: np.random.Generator,
                protocol: str | None = None) -> tuple[sitk.Image, Callable[[sitk.Image], np.ndarray], dict]:
    """(scan, labels_on(grid) -> [z, y, x] uint8 structures, description) of one random draw."""
    protocol = protocol or str(rng.choice(PROTOCOLS))
    geometry = draw_geometry(rng, specimen.labyrinth_centre, specimen.cochlea_centre, specimen.extent_mm)
    rendered = float(min(geometry.grid.GetSpacing()))
    spacing = float(np.mean(specimen.anatomy.GetSpacing()))
    window = _window(specimen, geometry)
    tissue, values = tissue_volume(specimen.labels[window], specimen.labyrinth_distance_mm[window], spacing, rng)
    psf_fwhm = log_uniform(rng, 0.05, 1.0)
    sigma_mm = np.sqrt((psf_fwhm / 2.355) ** 2 + (0.4 * rendered) ** 2)
    tissue_image = sitk.SmoothingRecursiveGaussian(_tissue_image(tissue, specimen, window), float(sigma_mm))
    shrink = int(rendered / (2 * spacing))
    if shrink > 1:  # blurred below the scan's voxel already: fewer source voxels, same result
        tissue_image = sitk.BinShrink(tissue_image, [shrink] * 3)
    image = _acquire(tissue_image, geometry, values["air"])
    image = scanner_physics(image, rng, protocol)
    voxels, units = to_units(image, rng, protocol)
    scan = sitk.GetImageFromArray(voxels)
    scan.CopyInformation(geometry.grid)

    def labels_on(grid: sitk.Image) -> np.ndarray:
        return sitk.GetArrayFromImage(sitk.Resample(specimen.structures, grid, geometry.to_anatomy,
                                                    sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))

    description = {"specimen": specimen.name, "protocol": protocol, "psf_fwhm_mm": round(psf_fwhm, 3),
                   **geometry.description, **units,
                   "tissue": {k: round(float(v), 3) for k, v in values.items()}}
    return scan, labels_on, description
