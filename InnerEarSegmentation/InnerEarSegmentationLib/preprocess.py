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


def _covering(image: sitk.Image, grid: sitk.Image) -> sitk.Image:
    """The part of ``image`` that ``grid`` (plus the spline's margin) reaches: a 28 mm box in a
    head CT needs a few MB of it, not the whole scan, whose B-spline coefficients would take
    seconds to compute."""
    index = np.array([image.TransformPhysicalPointToContinuousIndex(c) for c in physical_corners(grid)])
    low = np.maximum(np.floor(index.min(axis=0)) - SPLINE_MARGIN_VOXELS, 0).astype(int)
    high = np.minimum(np.ceil(index.max(axis=0)) + SPLINE_MARGIN_VOXELS + 1, image.GetSize()).astype(int)
    if np.any(high <= low) or (np.all(low == 0) and np.all(high == image.GetSize())):
        return image  # the grid misses the scan (all padding) or covers all of it
    return sitk.RegionOfInterest(image, (high - low).tolist(), low.tolist())


def resample_to_grid(image: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """Cubic B-spline resampling onto ``grid``; outside the scan is filled with its darkest value
    (air in CT), so the padding never looks like fluid or bone."""
    source = _shrink_for(image, grid.GetSpacing()[0])
    extremes = sitk.MinimumMaximumImageFilter()
    extremes.Execute(source)
    source = sitk.Cast(_covering(source, grid), sitk.sitkFloat32)
    resampled = sitk.Resample(source, grid, sitk.Transform(), sitk.sitkBSpline, extremes.GetMinimum(), sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)


def scan_footprint(image: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """Which model-grid voxels ([z, y, x] bool) lie inside the scan's field of view.

    Computed from the geometry alone (no scan-sized temporary, so a 1500³ micro-CT costs
    nothing): each grid voxel centre is mapped to the scan's continuous index."""
    size = grid.GetSize()
    axes = [grid.GetOrigin()[a] + grid.GetSpacing()[a] * np.arange(size[a]) for a in range(3)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    points = np.stack([x.ravel(), y.ravel(), z.ravel()]) - np.array(image.GetOrigin())[:, None]
    direction = np.array(image.GetDirection()).reshape(3, 3)
    index = np.linalg.solve(direction, points) / np.array(image.GetSpacing())[:, None]
    limit = np.array(image.GetSize())[:, None] - 0.5
    inside = np.all((index >= -0.5) & (index <= limit), axis=0)
    return inside.reshape(size[2], size[1], size[0])


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
        scale = float(high - low) if high - low > 1e-6 else 1.0
        return (np.clip((array - low) / scale, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)
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
