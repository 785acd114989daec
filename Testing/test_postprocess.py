"""Structure labels on the model grid: stray specks of one structure take the label around them."""

from __future__ import annotations

import numpy as np

from InnerEarSegmentationLib.postprocess import merge_structure_islands

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
