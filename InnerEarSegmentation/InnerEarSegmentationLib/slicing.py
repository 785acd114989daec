"""Which numpy axis each anatomical view slices, shared by inference and training.

Volumes on the model grid are numpy arrays indexed [z, y, x] of an LPS-aligned image
(x: right to left, y: anterior to posterior, z: inferior to superior).
"""

from __future__ import annotations

import numpy as np

VIEW_AXES = {"axial": 0, "coronal": 1, "sagittal": 2}


def view_axis(view: str) -> int:
    """The array axis that a stage of the given view slices along."""
    try:
        return VIEW_AXES[view]
    except KeyError:
        raise ValueError(f"unknown view {view!r}; expected one of {sorted(VIEW_AXES)}") from None


def extract_slices(channels: np.ndarray, view: str, start: int, stop: int) -> np.ndarray:
    """Slices start..stop of a [C, Z, Y, X] stack as a network batch [N, C, H, W]."""
    axis = view_axis(view) + 1
    batch = np.take(channels, np.arange(start, stop), axis=axis)
    return np.ascontiguousarray(np.moveaxis(batch, axis, 0))


def insert_slices(volume: np.ndarray, batch: np.ndarray, view: str, start: int) -> None:
    """Writes a network output batch [N, K, H, W] back into a [K, Z, Y, X] volume in place."""
    axis = view_axis(view) + 1
    index = [slice(None)] * volume.ndim
    index[axis] = slice(start, start + batch.shape[0])
    volume[tuple(index)] = np.moveaxis(batch, 0, axis)
