"""Masks between stages and the final labelmap: largest component, then back to the scan's grid."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .geometry import Geometry
from .progress import Progress

# Voxels a slab of the original grid may hold while probabilities are resampled onto it.
SLAB_VOXELS = 16_000_000
# Largest region (voxels) in which specks are removed on the scan's own grid.
ISLAND_CHECK_VOXELS = 300_000_000
# A piece of one structure smaller than this share of its largest piece takes its neighbours' label.
STRUCTURE_ISLAND_FRACTION = 0.05


def foreground(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Labyrinth mask: 1 - p(background) >= threshold."""
    return probabilities[0] <= 1.0 - threshold


def structure_labels(probabilities: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Structure labels ([Z, Y, X] uint8) inside the mask: the most probable foreground class."""
    labels = (np.argmax(probabilities[1:], axis=0) + 1).astype(np.uint8)
    labels[~mask] = 0
    return labels


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keeps the largest 26-connected component (the labyrinth is one connected cavity)."""
    labelled, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if count <= 1:
        return mask.astype(bool, copy=True)
    sizes = np.zeros(count + 1, dtype=np.int64)
    for z in range(0, labelled.shape[0], 16):  # slab by slab: bincount copies its input to int64
        sizes += np.bincount(labelled[z:z + 16].ravel(), minlength=count + 1)
    sizes[0] = 0
    return labelled == int(sizes.argmax())


def merge_structure_islands(structure: np.ndarray, support: np.ndarray,
                            fraction: float = STRUCTURE_ISLAND_FRACTION) -> np.ndarray:
    """Structure labels (1..K) inside ``support`` where each small stray piece of a structure is
    given the label that surrounds it: a speck of "canal" on the cochlea is cochlea.

    Only pieces under ``fraction`` of the structure's largest piece are touched, so the lateral
    canal, which meets the other two canals only through the vestibule, keeps its label.
    """
    labels = np.where(support, structure, 0).astype(np.uint8)
    result = labels.copy()
    cube = np.ones((3, 3, 3), dtype=bool)
    for value in np.unique(labels[labels > 0]):
        pieces, count = ndimage.label(labels == value, structure=cube)
        if count <= 1:
            continue
        sizes = np.bincount(pieces.ravel())
        sizes[0] = 0
        smallest_kept = fraction * sizes.max()
        for index, where in enumerate(ndimage.find_objects(pieces), start=1):
            if sizes[index] >= smallest_kept:
                continue
            window = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in where)
            piece = pieces[window] == index
            around = labels[window][ndimage.binary_dilation(piece, cube) & ~piece]
            around = around[(around > 0) & (around != value)]
            if around.size:
                result[window][piece] = np.bincount(around).argmax()
    return result


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """The [z, y, x] box of the non-zero voxels plus ``margin`` (inside the array); None if none."""
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
    canvas: tuple[sitk.Image, sitk.Image | None] | None = None,
    offset: int = 0,
) -> tuple[sitk.Image, sitk.Image | None]:
    """Labelmap (uint8) on the scan's own grid, plus optionally the foreground probability.

    The labyrinth probability is interpolated linearly (sub-voxel boundaries); which structure a
    voxel belongs to is taken from the nearest model voxel (those inner boundaries are short).
    Work goes slab by slab inside the labyrinth's box and is pasted into the output in place, so
    a 1500³ micro-CT never needs more than its uint8 labelmap and the slab. ``canvas``: the
    labelmap and probability of another ear of this scan to paste into, the labels raised by
    ``offset`` (where they meet, the other ear's voxels are kept).
    """
    if canvas is None:
        labelmap = scan.stamp(sitk.Image(list(scan.size), sitk.sitkUInt8))
        probability = scan.stamp(sitk.Image(list(scan.size), sitk.sitkFloat32)) if keep_probability else None
    else:
        labelmap, probability = canvas
    box = bounding_box(mask, margin=2)
    region = _index_box(grid, box, scan) if box is not None else None
    if region is None:
        progress.report(1.0, "mapped back")
        return labelmap, probability
    support = ndimage.binary_dilation(mask, iterations=1)
    sub_grid = _crop_grid(grid, box)
    foreground_image = _as_image(np.where(support, 1.0 - probabilities[0], 0.0).astype(np.float32)[box], sub_grid)
    structure = merge_structure_islands(np.argmax(probabilities[1:], axis=0) + 1, support)
    structure_image = _as_image(structure[box], sub_grid)
    start, extent = region
    slab = max(1, SLAB_VOXELS // max(extent[0] * extent[1], 1))
    for z0 in range(start[2], start[2] + extent[2], slab):
        progress.report((z0 - start[2]) / extent[2], "mapping back to the scan's grid")
        depth = min(slab, start[2] + extent[2] - z0)
        reference = scan.region([start[0], start[1], z0], [extent[0], extent[1], depth])
        values = sitk.Resample(foreground_image, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        structure = sitk.Resample(structure_image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        labels = sitk.Mask(structure, values >= threshold)
        target = (slice(start[0], start[0] + extent[0]), slice(start[1], start[1] + extent[1]), slice(z0, z0 + depth))
        if canvas is not None:
            earlier = labelmap[target]
            free = earlier == 0
            labels = earlier + sitk.Mask(sitk.Mask(labels + offset, labels > 0), free)
            if probability is not None:
                values = sitk.Mask(values, free) + sitk.Mask(probability[target], earlier > 0)
        labelmap[target] = labels
        if probability is not None:
            probability[target] = values
    if keep_largest:
        _drop_islands(labelmap, start, extent, offset)
    progress.report(1.0, "mapped back")
    return labelmap, probability


def _drop_islands(labelmap: sitk.Image, start: list[int], extent: list[int], offset: int = 0) -> None:
    """Removes specks that interpolation may leave apart from the labyrinth (in place); only
    labels above ``offset`` (this ear's, not another's pasted earlier) are looked at.

    The model-grid mask is already one component, so this only polishes; above the limit the
    component labels alone would outgrow the memory the scan itself takes, and it is skipped.
    """
    if int(np.prod(extent)) > ISLAND_CHECK_VOXELS:
        return
    target = tuple(slice(a, a + n) for a, n in zip(start, extent))
    labels = sitk.GetArrayFromImage(labelmap[target])
    ours = labels > offset
    labels[ours & ~largest_component(ours)] = 0
    patch = sitk.GetImageFromArray(labels)
    labelmap[target] = patch


def _crop_grid(grid: sitk.Image, box: tuple[slice, ...]) -> sitk.Image:
    """The sub-grid of ``grid`` covering a [z, y, x] box (same spacing and direction)."""
    start = [box[2].start, box[1].start, box[0].start]
    size = [box[2].stop - box[2].start, box[1].stop - box[1].start, box[0].stop - box[0].start]
    return sitk.RegionOfInterest(grid, size, start)
