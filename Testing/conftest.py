"""Puts the library on the path and provides shared fixtures (real files, real ONNX models)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "InnerEarSegmentation"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


def blob_scan(size=(40, 36, 30), spacing=(0.4, 0.4, 0.5), direction=None) -> sitk.Image:
    """Dense bone in air with one big fluid sphere and one small fluid speck (a distractor)."""
    z, y, x = np.mgrid[: size[2], : size[1], : size[0]]
    array = np.full(size[::-1], -1000, dtype=np.int16)
    array[1:-1, 1:-1, 1:-1] = 1500
    array[(x - 20) ** 2 + (y - 18) ** 2 + (z - 15) ** 2 < 8 ** 2] = 20
    array[(x - 4) ** 2 + (y - 4) ** 2 + (z - 4) ** 2 < 2 ** 2] = 20
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-10.0, 5.0, 30.0))
    if direction is not None:
        image.SetDirection(direction)
    return image


@pytest.fixture
def scan() -> sitk.Image:
    return blob_scan()
