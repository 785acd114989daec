"""CT-like volumes of a chest or an abdomen: scans with no inner ear, which the engine must refuse.

Simple shapes in HU: a body of fat and muscle, lungs or bowel gas, a heart or liver, the spine
with its fluid-filled canal (a fluid channel inside bone, as a labyrinth is), ribs or a pelvis,
and a bladder or stomach of fluid; blurred, with noise. Only for testing the "no inner ear
found" refusal (``innerear_training.no_ear_check``), never for training.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

KINDS = ("chest", "abdomen")


def _ellipsoid(axes: tuple[np.ndarray, ...], centre, semi) -> np.ndarray:
    z, y, x = axes
    return ((x - centre[0]) / semi[0]) ** 2 + ((y - centre[1]) / semi[1]) ** 2 + ((z - centre[2]) / semi[2]) ** 2 < 1


def _cylinder(axes: tuple[np.ndarray, ...], centre_xy, radius: float) -> np.ndarray:
    _, y, x = axes
    return (x - centre_xy[0]) ** 2 + (y - centre_xy[1]) ** 2 < radius ** 2


def render_body(rng: np.random.Generator, kind: str, field_mm: float = 300.0, voxel_mm: float = 0.8,
                slices_mm: float = 150.0) -> sitk.Image:
    """One body scan (int16 HU, identity direction, LPS, centred on the origin)."""
    size = np.array([field_mm / voxel_mm, field_mm / voxel_mm, slices_mm / voxel_mm]).astype(int)
    coords = [(np.arange(n) - (n - 1) / 2) * voxel_mm for n in size[::-1]]
    axes = (coords[0][:, None, None], coords[1][None, :, None], coords[2][None, None, :])
    hu = np.full(size[::-1], -1000.0, dtype=np.float32)
    width, depth = rng.uniform(130, 160), rng.uniform(90, 115)
    _, y, x = axes
    body = (x / width) ** 2 + (y / depth) ** 2 < 1
    body = np.broadcast_to(body, hu.shape)
    hu[body] = -100.0 + rng.normal(0, 10)  # fat
    muscle = (x / (width - 12)) ** 2 + (y / (depth - 12)) ** 2 < 1
    hu[np.broadcast_to(muscle, hu.shape)] = 50.0
    spine_y = depth - rng.uniform(35, 45)
    hu[np.broadcast_to(_cylinder(axes, (0, spine_y), 18), hu.shape)] = rng.uniform(300, 700)  # vertebral bodies
    hu[np.broadcast_to(_cylinder(axes, (0, spine_y - 22), 7), hu.shape)] = 10.0  # the canal: fluid in bone
    ring = np.broadcast_to(_cylinder(axes, (0, spine_y - 22), 11) & ~_cylinder(axes, (0, spine_y - 22), 7), hu.shape)
    hu[ring] = rng.uniform(500, 900)
    if kind == "chest":
        for side in (-1, 1):
            hu[_ellipsoid(axes, (side * width * 0.45, 0, 0), (width * 0.35, depth * 0.7, slices_mm))] = -850.0
        hu[_ellipsoid(axes, (width * 0.1, -depth * 0.25, 0), (45, 40, 55))] = 40.0  # heart
        hu[np.broadcast_to(_cylinder(axes, (-15, spine_y - 45), 12), hu.shape)] = rng.uniform(150, 350)  # aorta
        rib = ((x / (width - 6)) ** 2 + (y / (depth - 6)) ** 2 < 1) & ((x / (width - 14)) ** 2 + (y / (depth - 14)) ** 2 > 1)
        for z0 in np.arange(-slices_mm / 2, slices_mm / 2, 25.0):  # ribs: bone rings every 25 mm
            hu[(np.abs(axes[0] - z0) < 5) & rib] = rng.uniform(400, 900)
    else:
        hu[_ellipsoid(axes, (-width * 0.4, -depth * 0.1, 20), (70, 60, 80))] = 60.0  # liver
        for side in (-1, 1):
            hu[_ellipsoid(axes, (side * 60, spine_y - 10, 0), (25, 20, 50))] = 30.0  # kidneys
        hu[_ellipsoid(axes, (0, -depth * 0.4, -slices_mm * 0.35), (50, 40, 35))] = 8.0  # bladder: fluid
        for _ in range(rng.integers(6, 14)):  # bowel gas
            centre = (rng.uniform(-80, 80), rng.uniform(-60, 30), rng.uniform(-60, 60))
            hu[_ellipsoid(axes, centre, rng.uniform(8, 25, 3))] = -900.0
        for side in (-1, 1):  # iliac wings
            wing = _ellipsoid(axes, (side * 90, 20, -slices_mm * 0.3), (40, 60, 30)) & \
                ~_ellipsoid(axes, (side * 90, 20, -slices_mm * 0.3), (34, 54, 24))
            hu[wing] = rng.uniform(400, 900)
    hu = ndimage.gaussian_filter(hu, rng.uniform(0.4, 1.0) / voxel_mm)
    hu += rng.normal(0, rng.uniform(8, 30), hu.shape).astype(np.float32)
    image = sitk.GetImageFromArray(np.clip(hu, -1024, 3071).astype(np.int16))
    image.SetSpacing([voxel_mm] * 3)
    image.SetOrigin((-(size - 1) / 2 * voxel_mm).tolist())
    return image
