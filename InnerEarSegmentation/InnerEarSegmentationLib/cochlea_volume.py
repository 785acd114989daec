"""The cochlea of a labelmap on a fine isotropic grid, ready to be measured.

Measuring a binary segmentation voxel by voxel would tie every length to the voxel size (±half a
voxel at each end of a diameter). The mask is smoothed by half a voxel and interpolated onto a
0.1 mm grid, so its 0.5 level is a smooth surface with sub-voxel edges, and the distance to that
surface (``edt``) has a ridge along the middle of the duct.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .errors import InnerEarError
from .postprocess import largest_component

WORK_SPACING_MM = 0.1
SLAB_VOXELS = 16_000_000


class CannotMeasure(InnerEarError):
    """The segmentation holds no cochlea that can be measured; the message says why."""


@dataclass
class CochleaVolume:
    """Occupancy (0..1) and distance to the cochlea's surface (mm) on a fine grid.

    Arrays are (z, y, x); ``origin`` is the physical (LPS mm) point of index 0 and ``matrix`` maps
    an (x, y, z) index step to a physical offset (direction times spacing)."""

    occupancy: np.ndarray
    edt: np.ndarray
    origin: np.ndarray
    matrix: np.ndarray
    spacing: float
    voxel_count: int
    voxel_volume_mm3: float
    basal_hint: np.ndarray | None  # where the cochlea opens into the vestibule, if it does
    surface_voxels: np.ndarray     # (N, 3) physical centres of the scan's own boundary voxels
    scan_matrix: np.ndarray        # the scan's index step -> physical offset

    def extent_along(self, direction: np.ndarray) -> tuple[float, float]:
        """Lowest and highest reach of the segmentation's own voxels along ``direction``.

        From the scan's voxels, not the smoothed surface: smoothing rounds off thin tips (the apex),
        which would shorten the extent by up to a voxel on coarse scans. Each voxel reaches half
        its size beyond its centre, so the extent is unbiased on average."""
        along = self.surface_voxels @ direction
        half = 0.5 * float(np.linalg.norm(direction @ self.scan_matrix))
        return float(along.min() - half), float(along.max() + half)

    def index_of(self, points: np.ndarray) -> np.ndarray:
        """(3, N) array (z, y, x) of continuous indices of physical points."""
        xyz = np.linalg.solve(self.matrix, (np.atleast_2d(points) - self.origin).T)
        return xyz[::-1]

    def sample(self, field: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``field`` linearly interpolated at physical points (0 outside the grid)."""
        shape = np.shape(points)[:-1]
        flat = np.reshape(points, (-1, 3))
        values = ndimage.map_coordinates(field, self.index_of(flat), order=1, mode="constant", cval=0.0)
        return values.reshape(shape)

    def inside_points(self) -> np.ndarray:
        """Physical centres of the fine voxels inside the cochlea."""
        index = np.nonzero(self.occupancy >= 0.5)
        return self.origin + np.stack(index[::-1], axis=1) @ self.matrix.T


def label_box(array: np.ndarray, value: int) -> tuple[slice, ...] | None:
    """(z, y, x) bounding box of ``value``, slab by slab (no full-size mask of a micro-CT)."""
    step = max(1, SLAB_VOXELS // max(array[0].size, 1))
    low, high = None, None
    for z0 in range(0, array.shape[0], step):
        mask = array[z0:z0 + step] == value
        if not mask.any():
            continue
        found = [np.nonzero(mask.any(axis=axes))[0] for axes in ((1, 2), (0, 2), (0, 1))]
        lo = np.array([found[0][0] + z0, found[1][0], found[2][0]])
        hi = np.array([found[0][-1] + z0, found[1][-1], found[2][-1]])
        low = lo if low is None else np.minimum(low, lo)
        high = hi if high is None else np.maximum(high, hi)
    if low is None:
        return None
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(low, high))


def cochlea_volume(labelmap: sitk.Image, cochlea: int = 1, vestibule: int | None = 2,
                   spacing: float = WORK_SPACING_MM) -> CochleaVolume:
    """The cochlea (its largest piece) of ``labelmap`` on a fine grid; refuses an absent cochlea or
    one cut by the edge of the scan."""
    array = sitk.GetArrayViewFromImage(labelmap)
    box = label_box(array, cochlea)
    if box is None:
        raise CannotMeasure("there is no cochlea in the segmentation")
    for axis, part in enumerate(box):
        if part.start == 0 or part.stop == array.shape[axis]:
            raise CannotMeasure("the cochlea touches the edge of the scan (cut by the field of view), "
                                "so its whole length cannot be seen")
    pad = 3
    box = tuple(slice(max(0, b.start - pad), min(n, b.stop + pad)) for b, n in zip(box, array.shape))
    crop = array[box]
    mask = largest_component(crop == cochlea)
    scan_spacing = np.array(labelmap.GetSpacing(), dtype=float)
    direction = np.array(labelmap.GetDirection(), dtype=float).reshape(3, 3)
    start = [b.start for b in box[::-1]]
    origin = np.array(labelmap.TransformIndexToPhysicalPoint([int(i) for i in start]), dtype=float)
    basal_hint = None
    if vestibule is not None:
        touching = mask & ndimage.binary_dilation(crop == vestibule, np.ones((3, 3, 3), dtype=bool))
        if touching.any():
            where = np.stack(np.nonzero(touching)[::-1], axis=1).mean(axis=0)
            basal_hint = origin + (direction * scan_spacing) @ where
    scan_matrix = direction * scan_spacing
    surface = mask & ~ndimage.binary_erosion(mask)
    surface_voxels = origin + np.stack(np.nonzero(surface)[::-1], axis=1) @ scan_matrix.T
    occupancy = _resample(mask, origin, scan_spacing, direction, spacing)
    inside = occupancy[0] >= 0.5
    edt = ndimage.distance_transform_edt(inside, sampling=spacing).astype(np.float32)
    return CochleaVolume(occupancy[0], edt, occupancy[1], occupancy[2], spacing, int(mask.sum()),
                         float(np.prod(scan_spacing)), basal_hint, surface_voxels, scan_matrix)


def _resample(mask: np.ndarray, origin: np.ndarray, spacing: np.ndarray, direction: np.ndarray,
              target: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mask smoothed by half a voxel and linearly interpolated onto a ``target`` mm grid with
    the scan's axes; fine scans are first averaged down to about the target spacing."""
    image = sitk.GetImageFromArray(mask.astype(np.float32))
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection([float(d) for d in direction.ravel()])
    shrink = [max(1, int(target / s)) for s in spacing]
    if max(shrink) > 1:
        image = sitk.BinShrink(image, shrink)
    sigma = [0.5 * s for s in image.GetSpacing()]
    image = sitk.SmoothingRecursiveGaussian(image, sigma) if min(image.GetSize()) >= 4 else image
    extent = (np.array(mask.shape[::-1]) - 1) * spacing
    size = [int(np.ceil(e / target)) + 1 for e in extent]
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetSpacing([target] * 3)
    reference.SetOrigin([float(o) for o in origin])
    reference.SetDirection([float(d) for d in direction.ravel()])
    fine = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(fine), origin, direction * target
