"""PNG pictures of a case: three orthogonal slices through the labyrinth with the truth's outline
(green) and the prediction's (magenta), drawn to scale in mm (written by the library's vtk PNG writer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from InnerEarSegmentationLib.preview import write_png

TRUTH_COLOUR = (40, 220, 60)
PREDICTION_COLOUR = (240, 40, 200)


def _panel(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, spacing_rc: tuple[float, float],
           pixel_mm: float) -> np.ndarray:
    rows = (np.arange(int(round(image.shape[0] * spacing_rc[0] / pixel_mm))) * pixel_mm / spacing_rc[0]).astype(int)
    cols = (np.arange(int(round(image.shape[1] * spacing_rc[1] / pixel_mm))) * pixel_mm / spacing_rc[1]).astype(int)
    pick = np.ix_(np.minimum(rows, image.shape[0] - 1), np.minimum(cols, image.shape[1] - 1))
    low, high = np.percentile(image, [1, 99.5])
    gray = np.clip((image[pick].astype(np.float32) - low) / max(float(high - low), 1e-6) * 255, 0, 255)
    rgb = np.repeat(gray.astype(np.uint8)[:, :, None], 3, axis=2)
    for mask, colour in ((truth, TRUTH_COLOUR), (prediction, PREDICTION_COLOUR)):
        big = mask[pick] > 0
        rgb[big & ~ndimage.binary_erosion(big)] = colour
    return rgb[::-1]  # row 0 at the bottom


def case_picture(path: Path, slices: list[tuple[np.ndarray, ...]], spacing_zyx: tuple[float, float, float],
                 height_px: int = 256) -> None:
    """Writes the axial (y-x), coronal (z-x) and sagittal (z-y) slices of a case side by side."""
    pairs = [(spacing_zyx[1], spacing_zyx[2]), (spacing_zyx[0], spacing_zyx[2]), (spacing_zyx[0], spacing_zyx[1])]
    extent = max(max(s[0].shape[0] * p[0], s[0].shape[1] * p[1]) for s, p in zip(slices, pairs))
    pixel_mm = extent / height_px
    panels = [_panel(*s, p, pixel_mm) for s, p in zip(slices, pairs)]
    height = max(p.shape[0] for p in panels)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 4), (0, 0))) for p in panels]
    write_png(np.concatenate(padded, axis=1), path)
