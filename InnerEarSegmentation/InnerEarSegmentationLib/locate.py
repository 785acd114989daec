"""Find the labyrinth in the whole scan before the cascade looks at it closely.

A model with ``roi_extent_mm`` segments a cube of that physical size around the labyrinth at a
fixed voxel size, so the labyrinth has the same size in voxels whatever the scan's field of view
(a 10 mm cochlea crop or a 49 mm block). Its ``locator`` is a U-Net run once on a coarse cube over
the whole scan; the centre of the largest component it finds is where the box goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from .inference import StageSession, predict_volume
from .model import Locator
from .postprocess import foreground, largest_component
from .preprocess import prepare
from .progress import Progress


@dataclass
class Location:
    """Where the locator found the labyrinth: physical centre (LPS mm) and its coarse volume."""

    centre_mm: np.ndarray | None
    voxels: int
    grid_spacing_mm: float

    def describe(self) -> dict[str, Any]:
        """The report's record of the search."""
        centre = None if self.centre_mm is None else [round(float(c), 2) for c in self.centre_mm]
        return {"centre_mm": centre, "coarse_voxels": self.voxels, "grid_spacing_mm": round(self.grid_spacing_mm, 4)}


def locate(image: sitk.Image, locator: Locator, session: StageSession, normalisation: dict[str, Any],
           threshold: float, batch_size: int, progress: Progress | None = None) -> Location:
    """Runs the locator over the whole scan; ``centre_mm`` is None when it finds nothing."""
    prepared = prepare(image, locator.grid_size, normalisation, locator.min_extent_mm)
    probabilities = predict_volume(session, prepared.array[None], locator.view, batch_size, progress or Progress())
    mask = largest_component(foreground(probabilities, threshold))
    spacing = prepared.grid.GetSpacing()[0]
    if not mask.any():
        return Location(None, 0, spacing)
    index = np.argwhere(mask).mean(axis=0)[::-1]
    centre = np.array(prepared.grid.TransformContinuousIndexToPhysicalPoint(index.tolist()))
    return Location(centre, int(mask.sum()), spacing)
