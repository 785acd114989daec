"""Bring a scan onto the model's grid: an LPS-aligned cube of N³ isotropic voxels.

The cube covers the scan's whole physical extent, so oblique or anisotropic scans arrive in a
standard orientation and the result maps back exactly onto the original voxels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk


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


def resample_to_grid(image: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """Cubic B-spline resampling onto ``grid``; outside the scan is filled with its darkest value
    (air in CT), so the padding never looks like fluid or bone."""
    source = _shrink_for(image, grid.GetSpacing()[0])
    source = sitk.Cast(source, sitk.sitkFloat32)
    pad = float(sitk.GetArrayViewFromImage(source).min())
    resampled = sitk.Resample(source, grid, sitk.Transform(), sitk.sitkBSpline, pad, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)


def normalise(array: np.ndarray, normalisation: dict[str, Any]) -> np.ndarray:
    """Z-score with the training set's statistics, or each volume's own (robust to scanner units)."""
    method = normalisation["method"]
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
    """Resample and normalise a scan exactly as the model saw its training data."""
    grid = model_grid(image, grid_size, min_extent_mm)
    return PreparedScan(normalise(resample_to_grid(image, grid), normalisation), grid)
