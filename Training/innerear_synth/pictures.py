"""PNG figures for the data card: each structure seen from three patient directions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from InnerEarSegmentationLib.preview import write_png

COLOURS = np.array([[0, 0, 0], [232, 194, 61], [89, 181, 227], [217, 94, 117]], dtype=float)


def patient_aligned(labels: sitk.Image, centre_mm, extent_mm: float = 16.0, spacing_mm: float = 0.08) -> np.ndarray:
    """The labels on an LPS-aligned cube around ``centre_mm`` ([z=S, y=P, x=L] array)."""
    size = int(round(extent_mm / spacing_mm))
    grid = sitk.Image([size] * 3, sitk.sitkUInt8)
    grid.SetSpacing([spacing_mm] * 3)
    grid.SetOrigin((np.asarray(centre_mm) - spacing_mm * (size - 1) / 2).tolist())
    resampled = sitk.Resample(labels, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(resampled)


def front_view(labels: np.ndarray, axis: int, reverse: bool) -> np.ndarray:
    """The first labelled voxel seen along ``axis``, shaded by depth (nearer is brighter)."""
    stack = np.moveaxis(labels, axis, 0)
    if reverse:
        stack = stack[::-1]
    hit = stack > 0
    first = hit.argmax(axis=0)
    label = np.take_along_axis(stack, first[None], 0)[0]
    shade = 0.45 + 0.55 * (1 - first / stack.shape[0])
    return (COLOURS[label] * shade[..., None]).astype(np.uint8)


def split_figure(labels: sitk.Image, centre_mm, path: Path, scale: int = 2) -> None:
    """Lateral, superior and anterior views side by side (superior up in the first and third)."""
    cube = patient_aligned(labels, centre_mm)
    views = [
        front_view(cube, 2, False)[::-1],          # from the patient's right, looking left: rows S, cols P
        front_view(cube, 0, True),                 # from above: rows P, cols L
        front_view(cube, 1, False)[::-1],          # from the front: rows S, cols L
    ]
    views = [np.kron(v, np.ones((scale, scale, 1), dtype=np.uint8)) for v in views]
    gap = np.full((views[0].shape[0], 8, 3), 255, dtype=np.uint8)
    write_png(np.concatenate([views[0], gap, views[1], gap, views[2]], axis=1), path)
