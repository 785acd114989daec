"""Masks between stages and the final labelmap: largest component, then back to the scan's grid."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .geometry import Geometry
from .progress import Progress

# Voxels a slab of the original grid may hold while probabilities are resampled onto it.
SLAB_VOXELS = 16_000_000


def foreground(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Labyrinth mask: 1 - p(background) >= threshold."""
    return probabilities[0] <= 1.0 - threshold


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keeps the largest 26-connected component (the labyrinth is one connected cavity)."""
    labelled, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if count <= 1:
        return mask.astype(bool, copy=True)
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled == int(sizes.argmax())


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...] | None:
    nonzero = np.nonzero(mask.any(axis=(1, 2)))[0], np.nonzero(mask.any(axis=(0, 2)))[0], np.nonzero(mask.any(axis=(0, 1)))[0]
    if any(len(axis) == 0 for axis in nonzero):
        return None
    return tuple(
        slice(max(int(axis[0]) - margin, 0), min(int(axis[-1]) + margin + 1, size))
        for axis, size in zip(nonzero, mask.shape)
    )


def _index_box(grid: sitk.Image, box: tuple[slice, ...], scan: Geometry) -> tuple[list[int], list[int]] | None:
    """The region of the scan (x, y, z index start and size) covering a [z, y, x] box of ``grid``."""
    points = []
    for corner in range(8):
        zyx = [(s.stop if corner >> i & 1 else s.start - 1) for i, s in enumerate(box)]
        points.append(grid.TransformContinuousIndexToPhysicalPoint([float(v) for v in zyx[::-1]]))
    indices = scan.to_index(np.array(points))
    size = np.array(scan.size)
    low = np.clip(np.floor(indices.min(axis=0)).astype(int), 0, size)
    high = np.clip(np.ceil(indices.max(axis=0)).astype(int) + 1, 0, size)
    if np.any(high <= low):
        return None
    return low.tolist(), (high - low).tolist()


def _as_image(array: np.ndarray, grid: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(grid)
    return image


def to_original_grid(
    probabilities: np.ndarray,
    mask: np.ndarray,
    grid: sitk.Image,
    scan: Geometry,
    threshold: float,
    keep_largest: bool,
    keep_probability: bool,
    progress: Progress,
) -> tuple[sitk.Image, sitk.Image | None]:
    """Labelmap (uint8) on the scan's own grid, plus optionally the foreground probability.

    Probabilities are interpolated linearly (sub-voxel boundaries) slab by slab and only inside
    the labyrinth's bounding box, so a 1500³ micro-CT never needs more than its uint8 output.
    """
    size_xyz = scan.size
    labels = np.zeros(size_xyz[::-1], dtype=np.uint8)
    probability = np.zeros(size_xyz[::-1], dtype=np.float32) if keep_probability else None
    box = _bounding_box(mask, margin=2)
    region = _index_box(grid, box, scan) if box is not None else None
    if region is not None:
        support = ndimage.binary_dilation(mask, iterations=1)
        fg = np.where(support, 1.0 - probabilities[0], 0.0).astype(np.float32)
        sub_grid = _crop_grid(grid, box)
        channels = [_as_image(fg[box], sub_grid)] + [_as_image(p[box], sub_grid) for p in probabilities[1:]]
        start, extent = region
        slab = max(1, SLAB_VOXELS // max(extent[0] * extent[1], 1))
        for z0 in range(start[2], start[2] + extent[2], slab):
            progress.report((z0 - start[2]) / extent[2], "mapping back to the scan's grid")
            depth = min(slab, start[2] + extent[2] - z0)
            reference = scan.region([start[0], start[1], z0], [extent[0], extent[1], depth])
            values = [
                sitk.GetArrayFromImage(sitk.Resample(c, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32))
                for c in channels
            ]
            inside = values[0] >= threshold
            structure = np.argmax(np.stack(values[1:]), axis=0).astype(np.uint8) + 1
            target = (slice(z0, z0 + depth), slice(start[1], start[1] + extent[1]), slice(start[0], start[0] + extent[0]))
            labels[target] = np.where(inside, structure, 0)
            if probability is not None:
                probability[target] = values[0]
        if keep_largest:
            region_slices = (slice(start[2], start[2] + extent[2]), slice(start[1], start[1] + extent[1]), slice(start[0], start[0] + extent[0]))
            sub = labels[region_slices]
            sub[~largest_component(sub > 0)] = 0
    progress.report(1.0, "mapped back")
    labelmap = scan.stamp(sitk.GetImageFromArray(labels))
    del labels
    if probability is None:
        return labelmap, None
    return labelmap, scan.stamp(sitk.GetImageFromArray(probability))


def _crop_grid(grid: sitk.Image, box: tuple[slice, ...]) -> sitk.Image:
    """The sub-grid of ``grid`` covering a [z, y, x] box (same spacing and direction)."""
    start = [box[2].start, box[1].start, box[0].start]
    size = [box[2].stop - box[2].start, box[1].stop - box[1].start, box[0].stop - box[0].start]
    return sitk.RegionOfInterest(grid, size, start)
