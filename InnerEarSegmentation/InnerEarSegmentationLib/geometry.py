"""A scan's voxel grid without its voxels, so a large input can be freed before results are built."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Geometry:
    size: tuple[int, int, int]  # x, y, z voxels
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> "Geometry":
        return cls(tuple(image.GetSize()), tuple(image.GetSpacing()), tuple(image.GetOrigin()),
                   tuple(image.GetDirection()))

    @property
    def matrix(self) -> np.ndarray:
        """Index (x, y, z) to physical LPS mm, without the origin."""
        return np.array(self.direction).reshape(3, 3) * np.array(self.spacing)

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """Continuous (x, y, z) indices of physical points [n, 3]."""
        return (np.asarray(points, float) - np.array(self.origin)) @ np.linalg.inv(self.matrix).T

    def region(self, start: list[int], size: list[int]) -> sitk.Image:
        """An empty uint8 image covering voxels start..start+size, to resample onto."""
        image = sitk.Image([int(n) for n in size], sitk.sitkUInt8)
        image.SetSpacing(self.spacing)
        image.SetDirection(self.direction)
        image.SetOrigin((np.array(self.origin) + self.matrix @ np.array(start, float)).tolist())
        return image

    def stamp(self, image: sitk.Image) -> sitk.Image:
        """Gives an image of this size the scan's spacing, origin and direction."""
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image
