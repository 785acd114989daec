"""Structure labels on the model grid: stray specks of one structure take the label around them;
and on the scan's grid: pieces cut off by interpolation are dropped."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from InnerEarSegmentationLib.geometry import Geometry
from InnerEarSegmentationLib.postprocess import merge_structure_islands, to_original_grid
from InnerEarSegmentationLib.progress import Progress

COCHLEA, VESTIBULE, CANALS = 1, 2, 3


def toy_labyrinth() -> np.ndarray:
    """A cochlea block, a vestibule block beside it, a big canal arc and a separate lateral canal."""
    labels = np.zeros((40, 40, 40), dtype=np.uint8)
    labels[5:20, 5:20, 5:20] = COCHLEA
    labels[5:20, 20:30, 5:20] = VESTIBULE
    labels[5:20, 30:38, 5:35] = CANALS      # posterior + superior canals: the largest canal piece
    labels[10:15, 20:28, 20:30] = CANALS    # lateral canal: 11 % of the largest canal piece; it
    return labels                           # meets the vestibule, not the other canals


def test_a_canal_speck_on_the_cochlea_becomes_cochlea_and_the_lateral_canal_stays():
    truth = toy_labyrinth()
    labels = truth.copy()
    labels[8:10, 8:10, 8:10] = CANALS        # 8 voxels of "canal" inside the cochlea
    labels[12, 24:26, 10] = COCHLEA          # 2 voxels of "cochlea" inside the vestibule
    merged = merge_structure_islands(labels, labels > 0)
    assert np.array_equal(merged, truth)


def test_only_voxels_inside_the_support_are_labelled():
    labels = toy_labyrinth()
    support = np.zeros_like(labels, dtype=bool)
    support[:, :20] = True
    merged = merge_structure_islands(labels, support)
    assert not merged[~support].any()
    assert np.array_equal(merged[support], labels[support])


def test_a_lone_speck_with_no_other_structure_around_keeps_its_label():
    labels = toy_labyrinth()
    labels[35:37, 2:4, 2:4] = CANALS         # small, but surrounded by background only
    merged = merge_structure_islands(labels, labels > 0)
    assert (merged[35:37, 2:4, 2:4] == CANALS).all()


@pytest.mark.parametrize("keep_largest", [True, False])
def test_a_piece_that_mapping_back_cuts_off_is_dropped_on_the_scans_grid(keep_largest):
    """On the model grid (1 mm) a cube, a one-voxel bridge just above threshold and a small piece
    are one component. The scan's voxels (0.5 mm) sit a quarter voxel off the model's, where the
    interpolated bridge falls under threshold: the small piece is then an island of its own."""
    n = 20
    fg = np.zeros((n, n, n), np.float32)
    fg[4:11, 4:11, 4:11] = 1.0   # the labyrinth
    fg[7, 7, 11:13] = 0.6        # the bridge
    fg[6:9, 6:9, 13:16] = 1.0    # the piece hanging on it
    probabilities = np.stack([1 - fg, fg, np.zeros_like(fg), np.zeros_like(fg)])
    mask = fg >= 0.5
    assert ndimage.label(mask, np.ones((3, 3, 3)))[1] == 1
    grid = sitk.Image([n] * 3, sitk.sitkUInt8)
    scan = sitk.Image([2 * n] * 3, sitk.sitkInt16)
    scan.SetSpacing([0.5] * 3)
    scan.SetOrigin([-0.25] * 3)
    labelmap, _ = to_original_grid(probabilities, mask, grid, Geometry.of(scan), 0.5, keep_largest, False,
                                   Progress())
    labels = sitk.GetArrayFromImage(labelmap)
    assert (labels[10:20, 10:20, 10:20] == 1).all()  # the cube's inside, scan voxels 4.75-9.25 mm
    piece = labels[12:18, 12:18, 26:32]               # scan voxels of the hanging piece
    components = ndimage.label(labels > 0, np.ones((3, 3, 3)))[1]
    if keep_largest:
        assert components == 1 and not piece.any()
    else:  # the setting is honoured: without it the island stays
        assert components == 2 and piece.sum() > 50
