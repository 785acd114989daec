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


@pytest.fixture(scope="session")
def structure_model(tmp_path_factory) -> Path:
    from tiny_model import build_structure_model

    return build_structure_model(tmp_path_factory.mktemp("models") / "structures")


BONE_HU, AIR_HU = 1200, -1000
# Centres (mm from the scan centre, along the scan's own axes x, y, z) and sizes of the phantom
# labyrinth: a cochlea ball touching a vestibule ball touching a canal ring, one component.
COCHLEA_CENTRE, COCHLEA_RADIUS = (-4.0, 0.0, 0.0), 2.4
VESTIBULE_CENTRE, VESTIBULE_RADIUS = (0.5, 0.0, 0.0), 2.4
CANAL_CENTRE, CANAL_RING, CANAL_TUBE = (4.5, 0.0, 0.0), 2.0, 1.0
DISTRACTOR_CENTRE, DISTRACTOR_RADIUS = (-4.0, 5.0, 5.0), 1.1
SPECK_HALF_SIDE = 0.5  # a 1 mm cube of "vestibule" at the cochlea's centre
AIR_CELL_CENTRE, AIR_CELL_RADIUS = (5.0, -5.0, -5.0), 1.2  # so padding outside the scan is air


def structure_scan(size=(64, 64, 64), spacing=(0.25, 0.25, 0.25), direction=None, speck: bool = True,
                   distractor: bool = True) -> tuple[sitk.Image, np.ndarray]:
    """A labyrinth of three structures, each at its own intensity (tiny_model.STRUCTURE_HU), in bone.

    Returns the scan and the expected labels on its grid ([z, y, x]): the speck of vestibule
    inside the cochlea is expected as cochlea (the speck merge) and the distractor, a separate ball
    of cochlea density, as background (the largest component). Shapes are placed in mm along the
    scan's own axes, so the truth holds for any spacing and direction. The default, 64³ voxels of
    0.25 mm, matches the structure model's grid voxel for voxel: nothing is blurred there.
    """
    from tiny_model import STRUCTURE_HU

    x, y, z = _scan_axes(size, spacing)

    def ball(centre, radius):
        return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 < radius ** 2

    truth = np.zeros(size[::-1], dtype=np.uint8)
    truth[ball(COCHLEA_CENTRE, COCHLEA_RADIUS)] = 1
    truth[ball(VESTIBULE_CENTRE, VESTIBULE_RADIUS)] = 2
    ring = np.hypot(np.hypot(x - CANAL_CENTRE[0], z - CANAL_CENTRE[2]) - CANAL_RING, y - CANAL_CENTRE[1])
    truth[(ring < CANAL_TUBE) & (truth == 0)] = 3
    array = np.full(truth.shape, BONE_HU, dtype=np.int16)
    array[ball(AIR_CELL_CENTRE, AIR_CELL_RADIUS)] = AIR_HU
    for value, hu in STRUCTURE_HU.items():
        array[truth == value] = hu
    if distractor:
        array[ball(DISTRACTOR_CENTRE, DISTRACTOR_RADIUS)] = STRUCTURE_HU[1]
    if speck:
        array[_speck(x, y, z)] = STRUCTURE_HU[2]
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-10.0, 5.0, 30.0))
    if direction is not None:
        image.SetDirection(direction)
    return image, truth


def planted_regions(image: sitk.Image) -> dict[str, np.ndarray]:
    """The [z, y, x] voxels of a structure_scan's planted "speck" and "distractor"."""
    x, y, z = _scan_axes(image.GetSize(), image.GetSpacing())
    distractor = ((x - DISTRACTOR_CENTRE[0]) ** 2 + (y - DISTRACTOR_CENTRE[1]) ** 2
                  + (z - DISTRACTOR_CENTRE[2]) ** 2 < DISTRACTOR_RADIUS ** 2)
    return {"speck": _speck(x, y, z), "distractor": distractor}


def _scan_axes(size, spacing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y, z in mm from the scan centre along its own axes, each as a [z, y, x] array."""
    offsets = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(size, spacing)]
    z, y, x = np.meshgrid(offsets[2], offsets[1], offsets[0], indexing="ij")
    return x, y, z


def _speck(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    cube = np.ones(x.shape, bool)
    for axis, offset in zip((x, y, z), COCHLEA_CENTRE):
        cube &= np.abs(axis - offset) < SPECK_HALF_SIDE
    return cube
