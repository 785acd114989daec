"""Bring a scan onto the model's grid: an LPS-aligned cube of N³ isotropic voxels.

The cube covers the scan's whole physical extent, so oblique or anisotropic scans arrive in a
standard orientation and the result maps back exactly onto the original voxels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk


NORMALISATIONS = ("zscore", "volume-zscore", "robust-range")


@dataclass
class PreparedScan:
    """The normalised image on the model grid ([z, y, x] float32) and that grid as an image."""

    array: np.ndarray
    grid: sitk.Image


def physical_corners(image: sitk.Image) -> np.ndarray:
    """The 8 outer corners (voxel edges, not centres) of the scan in physical LPS mm."""
    size = np.array(image.GetSize(), dtype=float)
    corners = []
    for mask in range(8):
        index = np.array([(size[i] if mask >> i & 1 else 0.0) - 0.5 for i in range(3)])
        corners.append(image.TransformContinuousIndexToPhysicalPoint(index.tolist()))
    return np.array(corners)


def model_grid(image: sitk.Image, size: int, min_extent_mm: float = 0.0) -> sitk.Image:
    """An empty size³ reference image, identity direction, isotropic, centred on the scan.

    The cube is never narrower than ``min_extent_mm``: a tightly cropped scan is padded so the
    labyrinth keeps the size in voxels the model was trained on.
    """
    corners = physical_corners(image)
    low, high = corners.min(axis=0), corners.max(axis=0)
    spacing = max(float((high - low).max()), min_extent_mm) / size
    centre = (low + high) / 2
    origin = centre - spacing * (size - 1) / 2
    grid = sitk.Image([size] * 3, sitk.sitkUInt8)
    grid.SetSpacing([spacing] * 3)
    grid.SetOrigin(origin.tolist())
    return grid


def roi_grid(centre_mm: np.ndarray, extent_mm: float, size: int) -> sitk.Image:
    """An empty size³ cube of ``extent_mm`` (identity direction) centred on a physical point: the
    fixed-size box the cascade segments around a located labyrinth, whatever the scan's field."""
    spacing = float(extent_mm) / size
    grid = sitk.Image([size] * 3, sitk.sitkUInt8)
    grid.SetSpacing([spacing] * 3)
    grid.SetOrigin((np.asarray(centre_mm, dtype=float) - spacing * (size - 1) / 2).tolist())
    return grid


def box_centre(grid: sitk.Image) -> np.ndarray:
    """The physical centre of a grid (identity direction), as :func:`roi_grid` was given it."""
    size = np.array(grid.GetSize(), dtype=float)
    return np.array(grid.GetOrigin()) + np.array(grid.GetSpacing()) * (size - 1) / 2


# Source voxels the B-spline may work on: it holds them as float32 plus float64 coefficients
# (12 bytes a voxel), so 32 M voxels stay under 0.4 GB whatever the scan's size.
BSPLINE_SOURCE_VOXELS = 32_000_000


def _shrink_for(image: sitk.Image, target_spacing: float) -> sitk.Image:
    """Block-averages a much finer scan first: cheaper than B-spline on billions of voxels, and
    it removes the detail the coarse grid cannot hold instead of aliasing it. Keeps two source
    voxels per grid voxel where that fits in BSPLINE_SOURCE_VOXELS, else averages whole blocks
    down to (just under) the grid spacing."""
    ratios = [target_spacing / s for s in image.GetSpacing()]
    factors = [max(1, int(r / 2)) for r in ratios]
    if np.prod([n // f for n, f in zip(image.GetSize(), factors)], dtype=float) > BSPLINE_SOURCE_VOXELS:
        factors = [max(1, int(r)) for r in ratios]
    if max(factors) == 1:
        return image
    return sitk.BinShrink(image, factors)


# Source voxels kept round a box's footprint: the B-spline prefilter's influence decays by 0.27 a
# voxel, so at 8 voxels the crop changes a value by less than 3e-5 of the contrast.
SPLINE_MARGIN_VOXELS = 8
BSPLINE_PIECE_VOXELS = 2_000_000  # source voxels resampled at once: ~25 MB as float32 plus coefficients


def _covering_region(image: sitk.Image, grid: sitk.Image) -> tuple[np.ndarray, np.ndarray] | None:
    """Index range [low, high) of ``image`` that ``grid`` (plus the spline's margin) reaches; None
    when the grid misses the scan (all padding)."""
    index = np.array([image.TransformPhysicalPointToContinuousIndex(c) for c in physical_corners(grid)])
    low = np.maximum(np.floor(index.min(axis=0)) - SPLINE_MARGIN_VOXELS, 0).astype(int)
    high = np.minimum(np.ceil(index.max(axis=0)) + SPLINE_MARGIN_VOXELS + 1, image.GetSize()).astype(int)
    return None if np.any(high <= low) else (low, high)


def _covering(image: sitk.Image, grid: sitk.Image) -> sitk.Image:
    """The part of ``image`` that ``grid`` (plus the spline's margin) reaches: a 28 mm box in a
    head CT needs a few MB of it, not the whole scan, whose B-spline coefficients would take
    seconds to compute."""
    region = _covering_region(image, grid)
    if region is None or (np.all(region[0] == 0) and np.all(region[1] == image.GetSize())):
        return image  # the grid misses the scan (all padding) or covers all of it
    low, high = region
    return sitk.RegionOfInterest(image, (high - low).tolist(), low.tolist())


def resample_to_grid(image: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """Cubic B-spline resampling onto ``grid``; outside the scan is filled with its darkest value
    (air in CT), so the padding never looks like fluid or bone.

    A grid over a whole head is resampled in slabs, each from its own part of the scan: the
    B-spline's float64 coefficients of all of it would be the largest thing in memory."""
    source = _shrink_for(image, grid.GetSpacing()[0])
    extremes = sitk.MinimumMaximumImageFilter()
    extremes.Execute(source)
    region = _covering_region(source, grid)
    voxels = float(np.prod(region[1] - region[0])) if region is not None else 0.0
    size = grid.GetSize()
    step = max(1, int(np.ceil(size[2] / max(1.0, np.ceil(voxels / BSPLINE_PIECE_VOXELS)))))
    output = np.empty(size[::-1], dtype=np.float32)
    for k in range(0, size[2], step):
        piece = grid[:, :, k:k + step]
        covering = sitk.Cast(_covering(source, piece), sitk.sitkFloat32)
        output[k:k + step] = sitk.GetArrayFromImage(sitk.Resample(
            covering, piece, sitk.Transform(), sitk.sitkBSpline, extremes.GetMinimum(), sitk.sitkFloat32))
    return output


def scan_footprint(image: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """Which model-grid voxels ([z, y, x] bool) lie inside the scan's field of view.

    Computed from the geometry alone (no scan-sized temporary, so a 1500³ micro-CT costs
    nothing), one grid slice at a time: a grid voxel's index in the scan is an affine function
    of its own index, and a whole 128³ grid of float64 coordinates would be ~200 MB at once."""
    size = grid.GetSize()
    to_scan = np.linalg.solve(np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing()),
                              np.array(grid.GetDirection()).reshape(3, 3) * np.array(grid.GetSpacing()))
    start = np.array(image.TransformPhysicalPointToContinuousIndex(grid.GetOrigin()))
    j, i = np.meshgrid(np.arange(size[1]), np.arange(size[0]), indexing="ij")
    plane = start[:, None] + to_scan[:, :2] @ np.stack([i.ravel(), j.ravel()])
    limit = np.array(image.GetSize())[:, None] - 0.5
    inside = np.empty((size[2], size[1], size[0]), dtype=bool)
    for k in range(size[2]):
        index = plane + to_scan[:, 2:] * k
        inside[k] = np.all((index >= -0.5) & (index <= limit), axis=0).reshape(size[1], size[0])
    return inside


def normalise(array: np.ndarray, normalisation: dict[str, Any], inside: np.ndarray | None = None) -> np.ndarray:
    """Put any scanner's gray values on the scale the model was trained on.

    ``zscore``: the training set's mean and sd (one scanner's units). ``volume-zscore``: each
    volume's own mean and sd after clipping to its 0.5-99.5 percentiles. ``robust-range``: the
    0.5 and 99.5 percentiles of the voxels inside the scan (``inside``; never the padding) go to
    -1 and 1 and the rest is clipped: no HU assumed, and the share of air, soft tissue or padding
    in the field moves neither end much (the darkest and the densest tissue set them).
    """
    method = normalisation["method"]
    if method == "robust-range":
        sample = array[inside] if inside is not None and inside.any() else array
        low, high = np.percentile(sample, [0.5, 99.5])
        del sample
        scale = float(high - low) if high - low > 1e-6 else 1.0
        out = np.array(array, dtype=np.float32)  # one copy, then in place: no chain of temporaries
        out -= low
        out *= 2.0 / scale
        np.clip(out, 0.0, 2.0, out=out)
        out -= 1.0
        return out
    if method == "zscore":
        mean, std = float(normalisation["mean"]), float(normalisation["std"])
    else:
        low, high = np.percentile(array, [0.5, 99.5])
        clipped = np.clip(array, low, high)
        mean, std = float(clipped.mean()), float(clipped.std())
    std = std if std > 1e-6 else 1.0
    return ((array - mean) / std).astype(np.float32)


def prepare(image: sitk.Image, grid_size: int, normalisation: dict[str, Any],
            min_extent_mm: float = 0.0) -> PreparedScan:
    """Resample and normalise a whole scan exactly as the model saw its training data."""
    return prepare_on(image, model_grid(image, grid_size, min_extent_mm), normalisation)


def prepare_on(image: sitk.Image, grid: sitk.Image, normalisation: dict[str, Any]) -> PreparedScan:
    """Resample and normalise a scan onto a given grid (the whole-scan cube or a box in it)."""
    inside = scan_footprint(image, grid) if normalisation["method"] == "robust-range" else None
    return PreparedScan(normalise(resample_to_grid(image, grid), normalisation, inside), grid)
