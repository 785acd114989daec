"""Where the specimen lies in the scanner and which voxels the scanner writes.

The anatomy is turned (and for a left ear mirrored) about its labyrinth centre: a scanner point
``s`` and an anatomy point ``a`` are related by ``s = M (a - c) + c`` with ``M = R F``. The scan's
header (origin, spacing, direction) describes the scanner's voxels truly, so the truth labels
rendered on the same voxels map exactly, whatever the orientation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

MIRROR = np.diag([-1.0, 1.0, 1.0])  # flips patient L-R (LPS x) about the labyrinth centre


def random_rotation(rng: np.random.Generator, max_angle_deg: float) -> np.ndarray:
    """A 3x3 rotation: uniform over all orientations for 180, else a random axis and an angle
    uniform in [-max, max] degrees."""
    if max_angle_deg >= 180:
        q = rng.standard_normal(4)
        w, x, y, z = q / np.linalg.norm(q)
        return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(-max_angle_deg, max_angle_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


@dataclass
class Placement:
    """The specimen's pose in the scanner: ``s = matrix @ (a - centre) + centre``."""

    matrix: np.ndarray
    centre: np.ndarray
    mirrored: bool

    def to_scanner(self, points: np.ndarray) -> np.ndarray:
        """Anatomy LPS points (n, 3) -> scanner LPS points (n, 3)."""
        return (np.asarray(points, dtype=float) - self.centre) @ self.matrix.T + self.centre

    def to_anatomy(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=float) - self.centre) @ self.matrix + self.centre

    def sitk_transform(self) -> sitk.AffineTransform:
        """The resampling transform: scanner point -> anatomy point (the inverse pose)."""
        transform = sitk.AffineTransform(3)
        transform.SetMatrix(self.matrix.T.ravel().tolist())  # orthogonal: inverse = transpose
        transform.SetCenter(self.centre.tolist())
        return transform


def make_placement(rng: np.random.Generator, centre: np.ndarray, max_angle_deg: float, mirror: bool) -> Placement:
    rotation = random_rotation(rng, max_angle_deg) if max_angle_deg > 0 else np.eye(3)
    matrix = rotation @ (MIRROR if mirror else np.eye(3))
    return Placement(matrix, np.asarray(centre, dtype=float), mirror)


def grid(centre: np.ndarray, size_mm: np.ndarray, spacing: np.ndarray, direction: np.ndarray) -> sitk.Image:
    """An empty image of ``spacing`` voxels covering ``size_mm`` (x, y, z) centred on ``centre``."""
    size = np.maximum(np.round(np.asarray(size_mm) / spacing).astype(int), 8)
    image = sitk.Image(size.tolist(), sitk.sitkUInt8)
    image.SetSpacing(np.asarray(spacing, dtype=float).tolist())
    image.SetDirection(np.asarray(direction, dtype=float).ravel().tolist())
    image.SetOrigin((np.asarray(centre) - direction @ (spacing * (size - 1) / 2)).tolist())
    return image


def subsampled(image: sitk.Image, factors: tuple[int, int, int], start: tuple[int, int, int] = (0, 0, 0),
               size: tuple[int, int, int] | None = None) -> sitk.Image:
    """The grid whose blocks of ``factors`` (x, y, z) sub-voxels tile the voxels of ``image``
    from index ``start`` (x, y, z) on, ``size`` voxels (default: to the end)."""
    factors_a = np.asarray(factors)
    spacing = np.array(image.GetSpacing())
    direction = np.array(image.GetDirection()).reshape(3, 3)
    size = np.asarray(size if size is not None else np.array(image.GetSize()) - np.asarray(start))
    fine = sitk.Image((size * factors_a).tolist(), sitk.sitkUInt8)
    fine_spacing = spacing / factors_a
    fine.SetSpacing(fine_spacing.tolist())
    fine.SetDirection(image.GetDirection())
    first_centre = np.array(image.TransformIndexToPhysicalPoint([int(v) for v in start]))
    fine.SetOrigin((first_centre - direction @ (spacing / 2 - fine_spacing / 2)).tolist())
    return fine
