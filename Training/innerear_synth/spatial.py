"""Random geometry of a training scan: pose, scale, elastic warp, field of view and voxel grid.

Specimen blocks and cone-beam volumes come in any orientation, so the pose is any 3D rotation;
a reflection makes the other ear. The field runs from a tight crop around the cochlea (which
inference pads to the model's minimum cube, as training does through the same preprocessing) to
the whole 49 mm block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

# Field-of-view modes and how often each is drawn.
FIELD_MODES = (("tight", 0.15), ("crop", 0.5), ("block", 0.35))
MAX_VOXELS_PER_AXIS = 128  # as many as the model grid: inference block-averages finer scans anyway
ELASTIC_MESH = 12  # the warp is sampled on a mesh this size and interpolated linearly (fast)


@dataclass
class ScanGeometry:
    """Where the scan's voxels lie (identity direction) and how they map into the anatomy."""

    grid: sitk.Image              # empty image: the scan's voxel grid
    to_anatomy: sitk.Transform    # scan physical point -> anatomy physical point (warp, then pose)
    pose: sitk.AffineTransform    # the pose alone
    warp_mm: float                # the warp's largest displacement
    slice_axis: int               # index (x=0, y=1, z=2) of the thick-slice axis
    description: dict


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """Scale-free draw: a voxel size of 0.02 mm is as likely as one of 0.2 mm."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _elastic(rng: np.random.Generator, grid: sitk.Image, amplitude_mm: float) -> tuple[sitk.Transform, float]:
    """A smooth random warp: a cubic B-spline with a 4³ control mesh over the scan, sampled on a
    coarse mesh as a displacement field (a B-spline evaluated at every voxel is ~10x slower)."""
    spline = sitk.BSplineTransformInitializer(grid, [4, 4, 4], order=3)
    spline.SetParameters(rng.normal(0.0, amplitude_mm, len(spline.GetParameters())).tolist())
    extent = np.array(grid.GetSize()) * np.array(grid.GetSpacing())
    mesh_spacing = extent / (ELASTIC_MESH - 1)
    field = sitk.TransformToDisplacementField(
        spline, sitk.sitkVectorFloat64, [ELASTIC_MESH] * 3,
        (np.array(grid.GetOrigin()) - 0.5 * np.array(grid.GetSpacing())).tolist(), mesh_spacing.tolist())
    largest = float(np.abs(sitk.GetArrayViewFromImage(field)).max())
    return sitk.DisplacementFieldTransform(field), largest


def draw_geometry(rng: np.random.Generator, labyrinth_centre: np.ndarray, cochlea_centre: np.ndarray,
                  block_extent_mm: float) -> ScanGeometry:
    """A random scan of the anatomy whose labyrinth (and cochlea) centres are given in mm."""
    rotation = Rotation.random(random_state=rng).as_matrix()
    mirror = rng.random() < 0.5
    scale = rng.uniform(0.85, 1.15) * rng.uniform(0.97, 1.03, 3)
    # anatomy -> scan: x_scan = R S F (x_anat - c); inverted for the resampler.
    flip = np.diag([-1.0 if mirror else 1.0, 1.0, 1.0])
    forward = rotation @ np.diag(scale) @ flip
    mode = rng.choice([m for m, _ in FIELD_MODES], p=[p for _, p in FIELD_MODES])
    if mode == "tight":
        extent = np.full(3, rng.uniform(8.0, 12.0))
        centre = cochlea_centre + rng.normal(0, 0.7, 3)
    elif mode == "crop":
        extent = rng.uniform(14.0, 35.0, 3)
        centre = labyrinth_centre + rng.uniform(-1, 1, 3) * np.maximum(extent / 2 - 7.0, 0.0)
    else:
        extent = rng.uniform(35.0, block_extent_mm, 3)
        centre = labyrinth_centre + rng.uniform(-1, 1, 3) * np.maximum(extent / 2 - 9.0, 0.0) * 0.5
    in_plane = log_uniform(rng, 0.01, 0.7)
    slice_axis = int(rng.integers(3))
    thickness = in_plane * (rng.uniform(1.0, 3.0) if rng.random() < 0.5 else 1.0)
    acquired = np.full(3, in_plane)
    acquired[slice_axis] = thickness
    spacing = np.maximum(acquired, extent / MAX_VOXELS_PER_AXIS)
    size = np.maximum(np.round(extent / spacing).astype(int), 8)
    grid = sitk.Image(size.tolist(), sitk.sitkUInt8)
    grid.SetSpacing(spacing.tolist())
    grid.SetOrigin((-(size - 1) * spacing / 2).tolist())  # scan centred on 0
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(np.linalg.inv(forward).ravel().tolist())
    affine.SetTranslation(np.asarray(centre, dtype=float).tolist())
    elastic_mm = float(rng.uniform(0.0, 0.6))
    warp, largest = _elastic(rng, grid, elastic_mm)
    composite = sitk.CompositeTransform(3)
    composite.AddTransform(affine)
    composite.AddTransform(warp)  # applied first, in scan space
    description = {"field": str(mode), "extent_mm": extent.round(2).tolist(), "voxel_mm": round(in_plane, 4),
                   "slice_mm": round(float(thickness), 4), "mirror": bool(mirror),
                   "scale": scale.round(3).tolist(), "elastic_mm": round(elastic_mm, 3)}
    return ScanGeometry(grid, composite, affine, largest, slice_axis, description)
