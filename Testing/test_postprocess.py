"""Structure labels on the model grid: stray specks of one structure take the label around them;
and on the scan's grid: pieces cut off by interpolation are dropped."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from InnerEarSegmentationLib.geometry import Geometry
from InnerEarSegmentationLib.postprocess import (bounding_box, foreground, largest_component, merge_structure_islands,
                                                 structure_labels, to_original_grid)
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


CUBE = np.ones((3, 3, 3), bool)


def test_the_threshold_is_inclusive_on_the_model_grid():
    """1 - p(background) >= threshold is labyrinth: a voxel exactly at the threshold counts."""
    background = np.array([0.5, 0.5000001, 0.4999999, 0.0, 1.0], np.float32).reshape(1, 1, 5)
    probabilities = np.stack([background, 1 - background])
    assert foreground(probabilities, 0.5).tolist() == [[[True, False, True, True, False]]]


def test_structure_labels_are_the_likeliest_structure_inside_the_mask_and_background_outside():
    probabilities = np.zeros((4, 1, 2, 3), np.float32)
    probabilities[:, 0, 0] = [[0.7, 0.1, 0.1], [0.1, 0.2, 0.1], [0.1, 0.6, 0.3], [0.1, 0.1, 0.5]]
    probabilities[:, 0, 1] = [[0.1, 0.1, 0.9], [0.8, 0.0, 0.0], [0.0, 0.9, 0.0], [0.1, 0.0, 0.1]]
    mask = np.array([[[True, True, True], [True, True, False]]])
    labels = structure_labels(probabilities, mask)
    assert labels.dtype == np.uint8
    assert labels.tolist() == [[[1, 2, 3], [1, 2, 0]]]  # background's own probability plays no part


def test_the_largest_component_counts_corner_contacts_and_is_never_the_background():
    """A diagonal run of voxels (touching at corners only, as a thin canal can on the model grid)
    is one 5-voxel piece, larger than a 3-voxel bar; and of single voxels one is kept, not the air."""
    mask = np.zeros((12, 12, 12), bool)
    for step in range(5):
        mask[1 + step, 1 + step, 1 + step] = True
    mask[9, 9, 2:5] = True
    kept = largest_component(mask)
    assert kept.sum() == 5 and not kept[9, 9].any()
    specks = np.zeros((6, 6, 6), bool)
    specks[1, 1, 1] = specks[4, 4, 4] = True
    kept = largest_component(specks)
    assert kept.dtype == bool and kept.sum() == 1 and kept[1, 1, 1]


def test_a_piece_joined_by_a_corner_is_part_of_its_structure_not_a_speck():
    """A canal voxel in the cochlea that touches the canals' block only at a corner is canal."""
    labels = np.full((16, 16, 16), COCHLEA, np.uint8)
    labels[8:15, 8:15, 8:15] = CANALS
    labels[7, 7, 7] = CANALS
    assert np.array_equal(merge_structure_islands(labels, labels > 0), labels)


def test_a_speck_takes_the_label_most_of_its_26_neighbours_carry():
    """Its 6 face neighbours are cochlea, its 20 edge and corner neighbours vestibule: vestibule."""
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:18, 2:18, 2:12] = VESTIBULE
    labels[2:18, 2:18, 14:18] = CANALS        # the canals' largest piece
    centre = np.array([9, 9, 6])
    for axis in range(3):
        for sign in (-1, 1):
            offset = np.zeros(3, int)
            offset[axis] = sign
            labels[tuple(centre + offset)] = COCHLEA
    labels[5:8, 3:6, 3:6] = COCHLEA           # a larger cochlea piece elsewhere
    labels[tuple(centre)] = CANALS
    merged = merge_structure_islands(labels, labels > 0)
    assert merged[tuple(centre)] == VESTIBULE


@pytest.mark.parametrize("fraction, size, kept", [(0.25, 2, True), (0.25, 1, False)])
def test_a_piece_of_exactly_the_fraction_keeps_its_label(fraction, size, kept):
    """The largest canal piece holds 8 voxels: a piece of 0.25 x 8 = 2 voxels stays, of 1 goes."""
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[1:11, 1:11, 1:6] = COCHLEA
    labels[1:3, 8:10, 8:10] = CANALS          # 8 voxels, apart from the cochlea
    labels[5, 5, 2:2 + size] = CANALS         # inside the cochlea
    merged = merge_structure_islands(labels, labels > 0, fraction=fraction)
    assert (merged[5, 5, 2:2 + size] == (CANALS if kept else COCHLEA)).all()


def test_a_speck_at_the_edge_of_the_grid_is_merged_too():
    labels = toy_labyrinth()
    labels[0:25, 0:25, 0:25][labels[0:25, 0:25, 0:25] == 0] = COCHLEA
    labels[0, 0:2, 0:2] = CANALS              # a speck of canal in the grid's corner
    merged = merge_structure_islands(labels, labels > 0)
    assert (merged[0, 0:2, 0:2] == COCHLEA).all()


def test_a_speck_takes_the_label_of_what_touches_it_not_of_what_lies_near_its_box():
    """A diagonal speck of canal wrapped in a thin layer of cochlea, in vestibule: cochlea, though
    the vestibule fills most of the speck's bounding box."""
    labels = np.zeros((24, 24, 24), np.uint8)
    labels[2:22, 2:22, 2:14] = VESTIBULE
    labels[2:22, 2:22, 17:22] = CANALS        # the canals' largest piece
    line = np.zeros(labels.shape, bool)
    for step in range(5):
        line[4 + step, 4 + step, 4 + step] = True
    labels[ndimage.binary_dilation(line, CUBE)] = COCHLEA
    labels[line] = CANALS
    labels[15:19, 15:19, 3:7] = COCHLEA       # cochlea is larger elsewhere too
    merged = merge_structure_islands(labels, labels > 0)
    assert (merged[line] == COCHLEA).all()


def test_nothing_outside_the_support_is_labelled_not_even_a_hole_inside_it():
    labels = np.full((10, 10, 10), COCHLEA, np.uint8)
    support = np.zeros(labels.shape, bool)
    support[2:8, 2:8, 2:8] = True
    support[4, 4, 4] = False                  # a hole in the support, inside the labyrinth
    merged = merge_structure_islands(labels, support)
    assert np.array_equal(merged > 0, support)


def test_the_bounding_box_is_the_nonzero_voxels_plus_the_margin_inside_the_array():
    mask = np.zeros((20, 30, 40), bool)
    mask[3, 10, 30] = mask[8, 25, 38] = True
    assert bounding_box(mask) == (slice(3, 9), slice(10, 26), slice(30, 39))
    assert bounding_box(mask, margin=2) == (slice(1, 11), slice(8, 28), slice(28, 40))
    assert bounding_box(mask, margin=5) == (slice(0, 14), slice(5, 30), slice(25, 40))
    assert bounding_box(np.zeros((4, 4, 4), bool)) is None


def smooth_labyrinth(n: int, low: tuple[int, int, int], high: tuple[int, int, int]) -> np.ndarray:
    """Four-class probabilities on an n³ grid: a blurred block (soft edges, so interpolation
    matters), its structure changing with x (cochlea, vestibule, canals in thirds of the block)."""
    block = np.zeros((n, n, n), np.float32)
    block[tuple(slice(a, b) for a, b in zip(low, high))] = 1.0
    fg = np.clip(ndimage.gaussian_filter(block, 0.7) * 1.2, 0.0, 1.0).astype(np.float32)
    probabilities = np.zeros((4, n, n, n), np.float32)
    probabilities[0] = 1.0 - fg
    third = np.digitize(np.arange(n), np.linspace(low[2], high[2], 4)[1:3])
    for value in (1, 2, 3):
        probabilities[value][:, :, third == value - 1] = fg[:, :, third == value - 1]
    return probabilities


def whole_grid_mapping(probabilities, mask, grid, scan, threshold):
    """The labels and probability that resampling the whole model grid onto the whole scan gives:
    what mapping back must give, whatever boxes and slabs it works in."""
    support = ndimage.binary_dilation(mask)
    fg = sitk.GetImageFromArray(np.where(support, 1.0 - probabilities[0], 0.0).astype(np.float32))
    structure = sitk.GetImageFromArray(merge_structure_islands(np.argmax(probabilities[1:], axis=0) + 1, support))
    fg.CopyInformation(grid)
    structure.CopyInformation(grid)
    values = sitk.GetArrayFromImage(sitk.Resample(fg, scan, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    labels = sitk.GetArrayFromImage(sitk.Resample(structure, scan, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                  sitk.sitkUInt8))
    return np.where(values >= threshold, labels, 0), values


def grid_and_scan(grid_origin, grid_spacing, n, scan_origin, scan_spacing, scan_size):
    grid = sitk.Image([n] * 3, sitk.sitkUInt8)
    grid.SetOrigin(grid_origin)
    grid.SetSpacing([grid_spacing] * 3)
    scan = sitk.Image(list(scan_size), sitk.sitkInt16)
    scan.SetOrigin(scan_origin)
    scan.SetSpacing(scan_spacing)
    return grid, scan


# (grid origin, grid spacing, grid side, scan origin, scan spacing, scan size, labyrinth block low/high)
MAPPINGS = {
    "finer scan, off-centre": ((0.0, 0.0, 0.0), 1.0, 24, (0.3, 0.1, 0.2), (0.5, 0.45, 0.6), (46, 50, 38),
                               ((4, 12, 6), (10, 20, 17))),
    "coarser scan": ((0.0, 0.0, 0.0), 0.5, 32, (0.2, 0.4, 0.1), (1.1, 0.9, 1.3), (14, 17, 12),
                     ((5, 14, 9), (20, 25, 26))),
    "labyrinth over the scan's edges": ((-5.0, -5.0, -5.0), 1.0, 20, (0.0, 0.0, 0.0), (0.5, 0.5, 0.5), (20, 24, 28),
                                        ((3, 3, 3), (10, 12, 15))),
}


@pytest.mark.parametrize("name", list(MAPPINGS))
def test_mapping_back_gives_what_resampling_the_whole_grid_onto_the_whole_scan_gives(name):
    """Mapping back works in the labyrinth's box, slab by slab, pasting into the scan-sized
    labelmap: that must change nothing, whether the scan is finer or coarser than the model grid
    or cut off through the labyrinth (there the model grid reaches beyond the scan)."""
    grid_origin, grid_spacing, n, scan_origin, scan_spacing, scan_size, (low, high) = MAPPINGS[name]
    grid, scan = grid_and_scan(grid_origin, grid_spacing, n, scan_origin, scan_spacing, scan_size)
    probabilities = smooth_labyrinth(n, low, high)
    mask = foreground(probabilities, 0.5)
    assert largest_component(mask).sum() == mask.sum()
    labelmap, probability = to_original_grid(probabilities, mask, grid, Geometry.of(scan), 0.5, False, True, Progress())
    expected_labels, expected_values = whole_grid_mapping(probabilities, mask, grid, scan, 0.5)
    labels = sitk.GetArrayFromImage(labelmap)
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(sitk.GetArrayFromImage(probability), expected_values, atol=1e-6)
    if name.startswith("labyrinth over"):
        assert labels[0].any() and labels[:, 0].any() and labels[:, :, 0].any()


def test_a_voxel_exactly_at_the_threshold_is_labelled_on_the_scans_grid_too():
    grid, scan = grid_and_scan((0.0, 0.0, 0.0), 1.0, 12, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (12, 12, 12))
    fg = np.zeros((12, 12, 12), np.float32)
    fg[3:9, 3:9, 3:9] = 1.0
    fg[3:9, 3:9, 8] = 0.5                     # one face of the block exactly at the threshold
    probabilities = np.stack([1.0 - fg, fg, np.zeros_like(fg), np.zeros_like(fg)])
    mask = foreground(probabilities, 0.5)
    labelmap, _ = to_original_grid(probabilities, mask, grid, Geometry.of(scan), 0.5, True, False, Progress())
    np.testing.assert_array_equal(sitk.GetArrayFromImage(labelmap), mask.astype(np.uint8))


def two_ears(low_b: tuple[int, int, int], high_b: tuple[int, int, int]):
    """Ear A's and ear B's probabilities on one 1 mm grid over a 0.5 mm scan, B's block as given."""
    grid, scan = grid_and_scan((0.0, 0.0, 0.0), 1.0, 32, (0.25, 0.25, 0.25), (0.5, 0.5, 0.5), (62, 62, 62))
    return grid, Geometry.of(scan), smooth_labyrinth(32, (8, 8, 4), (20, 20, 14)), smooth_labyrinth(32, low_b, high_b)


@pytest.mark.parametrize("keep_probability", [True, False])
def test_a_second_ear_is_pasted_beside_the_first_with_raised_labels_and_the_first_kept_where_they_meet(
        keep_probability):
    grid, scan, ear_a, ear_b = two_ears((14, 14, 2), (26, 26, 14))  # over a corner of A, all its structures
    mask_a, mask_b = foreground(ear_a, 0.5), foreground(ear_b, 0.5)
    alone_a = to_original_grid(ear_a, mask_a, grid, scan, 0.5, True, True, Progress())
    alone_b = to_original_grid(ear_b, mask_b, grid, scan, 0.5, True, True, Progress())
    labels_a, labels_b = (sitk.GetArrayFromImage(alone[0]) for alone in (alone_a, alone_b))
    values_a, values_b = (sitk.GetArrayFromImage(alone[1]) for alone in (alone_a, alone_b))
    meet = (labels_a > 0) & (labels_b > 0)
    assert set(np.unique(labels_a[meet])) == {1, 2, 3}

    first = to_original_grid(ear_a, mask_a, grid, scan, 0.5, True, keep_probability, Progress())
    assert (first[1] is not None) == keep_probability
    labelmap, probability = to_original_grid(ear_b, mask_b, grid, scan, 0.5, True, keep_probability, Progress(),
                                             canvas=first, offset=3)
    labels = sitk.GetArrayFromImage(labelmap)
    expected = np.where(labels_a > 0, labels_a, np.where(labels_b > 0, labels_b + 3, 0))
    np.testing.assert_array_equal(labels, expected)
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4, 5, 6}
    if not keep_probability:
        assert probability is None
        return
    values = sitk.GetArrayFromImage(probability)
    assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0
    np.testing.assert_allclose(values[labels_a > 0], values_a[labels_a > 0], atol=1e-6)
    only_b = (labels_b > 0) & (labels_a == 0)
    np.testing.assert_allclose(values[only_b], values_b[only_b], atol=1e-6)
    assert (values[(values_a == 0) & (values_b == 0)] == 0).all()


def test_removing_specks_of_a_second_ear_leaves_the_first_ears_voxels_alone():
    """Ear A ends a voxel short of ear B: B's island removal looks at B's labels only."""
    grid, scan, ear_a, ear_b = two_ears((10, 10, 16), (18, 18, 28))
    first = to_original_grid(ear_a, foreground(ear_a, 0.5), grid, scan, 0.5, True, False, Progress())
    before = sitk.GetArrayFromImage(first[0]).copy()
    labelmap, _ = to_original_grid(ear_b, foreground(ear_b, 0.5), grid, scan, 0.5, True, False, Progress(),
                                   canvas=first, offset=3)
    labels = sitk.GetArrayFromImage(labelmap)
    np.testing.assert_array_equal(np.where(labels <= 3, labels, 0), before)
    assert ndimage.label(labels > 0, CUBE)[1] == 2 and (labels > 3).sum() > 1000

