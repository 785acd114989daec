"""Labelmaps of shapes whose measurements are known exactly: a spiral tube, a torus, a straight tube."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy.spatial import cKDTree


@dataclass
class Spiral:
    """A conical spiral tube: radius ``outer`` -> ``inner`` over ``turns``, rising ``rise`` mm."""

    turns: float = 2.5
    outer: float = 3.5
    inner: float = 1.0
    rise: float = 3.75
    lumen: float = 0.6

    def centreline(self, samples: int = 20000) -> np.ndarray:
        t = np.linspace(0.0, 1.0, samples)
        angle = 2 * np.pi * self.turns * t
        radius = self.outer + (self.inner - self.outer) * t
        return np.stack([radius * np.cos(angle), radius * np.sin(angle), self.rise * t], axis=1)

    @property
    def length(self) -> float:
        return float(np.linalg.norm(np.diff(self.centreline(), axis=0), axis=1).sum())

    def across(self, angle: float) -> float:
        """Centreline radius of the outermost turn at ``angle`` (radians, 0 = the basal end)."""
        return self.outer + (self.inner - self.outer) * (angle / (2 * np.pi * self.turns))


def tube_labelmap(centreline: np.ndarray, lumen: float, spacing: float = 0.2, direction=None,
                  margin: float = 2.0, vestibule_at: np.ndarray | None = None) -> sitk.Image:
    """Label 1 within ``lumen`` of the centreline; label 2, a ball of 1.5 mm at ``vestibule_at``."""
    lo, hi = centreline.min(axis=0) - margin, centreline.max(axis=0) + margin
    rotation = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    local = corners @ rotation          # index axes are the columns of ``rotation``
    low, high = local.min(axis=0), local.max(axis=0)
    size = np.ceil((high - low) / spacing).astype(int) + 1
    grid = np.stack(np.meshgrid(*[low[k] + spacing * np.arange(size[k]) for k in range(3)],
                                indexing="ij"), axis=-1).reshape(-1, 3) @ rotation.T
    distance, _ = cKDTree(centreline).query(grid, distance_upper_bound=lumen + 1.0)
    labels = (distance <= lumen).astype(np.uint8)
    if vestibule_at is not None:
        labels[np.linalg.norm(grid - vestibule_at, axis=1) <= 1.5] = 2
    array = labels.reshape(size).transpose(2, 1, 0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing([spacing] * 3)
    image.SetDirection([float(x) for x in rotation.ravel()])
    image.SetOrigin([float(x) for x in rotation @ low])
    return image


def torus(radius: float = 3.0, lumen: float = 0.6) -> np.ndarray:
    angle = np.linspace(0.0, 2 * np.pi, 4000)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle), np.zeros_like(angle)], axis=1)


def straight(length: float = 8.0) -> np.ndarray:
    return np.stack([np.zeros(800), np.zeros(800), np.linspace(0.0, length, 800)], axis=1)
