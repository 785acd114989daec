"""The side of an ear: from the scan's patient axes and from the labyrinth's own handedness,
read on real hand-labelled temporal bones (Training/data/real-anatomy) in any pose."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Training"))

from innerear_synth.render import load_specimen  # noqa: E402

from InnerEarSegmentationLib.geometry import Geometry  # noqa: E402
from InnerEarSegmentationLib.labels import Label  # noqa: E402
from InnerEarSegmentationLib.laterality import (LEFT, RIGHT, read_side, side_summary, sided,  # noqa: E402
                                                 structure_values)
from InnerEarSegmentationLib.preprocess import roi_grid  # noqa: E402

# RT138, RT147 and RT143 are right ears, LT143 a left one (their derived maps carry patient axes).
SIDES = {"RT138": RIGHT, "LT143": LEFT}


def _on_model_grid(structures: sitk.Image, to_anatomy: sitk.Transform) -> tuple[np.ndarray, sitk.Image]:
    """The structures seen through ``to_anatomy`` on a 28 mm, 0.22 mm cube round the labyrinth."""
    array = sitk.GetArrayViewFromImage(structures)
    centre = structures.TransformContinuousIndexToPhysicalPoint(np.argwhere(array > 0).mean(0)[::-1].tolist())
    inverse = to_anatomy.GetInverse()
    grid = roi_grid(np.array(inverse.TransformPoint(centre)), 28.0, 128)
    labels = sitk.Resample(structures, grid, to_anatomy, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(labels), grid


def _affine(matrix: np.ndarray) -> sitk.AffineTransform:
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(np.asarray(matrix, float).ravel().tolist())
    return transform


def _geometry(axes_known: bool) -> Geometry:
    origin = (12.0, -40.0, 7.5) if axes_known else (0.0, 0.0, 0.0)
    return Geometry((128, 128, 128), (0.22, 0.22, 0.22), origin, tuple(np.eye(3).ravel()))


@pytest.mark.parametrize("name", sorted(SIDES))
def test_header_and_anatomy_name_the_side_of_a_real_ear_and_of_its_mirror_image(name):
    structures = load_specimen(name).structures
    side, other = SIDES[name], ({RIGHT, LEFT} - {SIDES[name]}).pop()
    for matrix, expected in ((np.eye(3), side), (np.diag([-1.0, 1.0, 1.0]), other)):
        labels, grid = _on_model_grid(structures, _affine(matrix))
        reading = read_side(labels, grid, _geometry(True), 1, 2, 3)
        assert (reading.header, reading.anatomy, reading.side) == (expected, expected, expected)
        assert reading.agrees is True and reading.warning() is None


def test_a_scan_without_patient_axes_takes_its_side_from_the_anatomy_in_any_pose():
    structures = load_specimen("RT138").structures
    for seed in range(4):
        rotation = Rotation.random(random_state=seed).as_matrix()
        for mirror, expected in ((1.0, RIGHT), (-1.0, LEFT)):
            labels, grid = _on_model_grid(structures, _affine(rotation @ np.diag([mirror, 1.0, 1.0])))
            reading = read_side(labels, grid, _geometry(False), 1, 2, 3)
            assert reading.side == expected, (seed, mirror, reading.describe())
            assert "anatomy" in reading.source and reading.agrees is None


def test_slices_stacked_in_reverse_are_flagged_as_a_side_risk():
    """Reversing the slice order mirrors the ear head-to-foot: it stays on its side of the head,
    but its spiral turns the other way, so the two readings disagree and the report warns."""
    labels, grid = _on_model_grid(load_specimen("RT138").structures, _affine(np.diag([1.0, 1.0, -1.0])))
    reading = read_side(labels, grid, _geometry(True), 1, 2, 3)
    assert (reading.header, reading.anatomy) == (RIGHT, LEFT)
    assert reading.agrees is False
    assert "flipped" in reading.warning() and reading.side == RIGHT


def test_a_labelmap_missing_a_structure_gives_no_side():
    labels, grid = _on_model_grid(load_specimen("RT138").structures, _affine(np.eye(3)))
    labels[labels == 3] = 0
    reading = read_side(labels, grid, _geometry(True), 1, 2, 3)
    assert reading.side is None and reading.source == "undetermined"


def test_sided_labels_carry_the_name_and_the_laterality_code():
    label = Label(1, "Cochlea", (1.0, 1.0, 0.0))
    right = sided(label, RIGHT)
    assert right.name == "Right cochlea" and right.value == 1
    assert "SCT^24028007^Right" in right.terminology
    assert sided(Label(3, "Semicircular canals", (1.0, 0.0, 0.0)), LEFT).name == "Left semicircular canals"
    assert sided(label, None) is label
    assert structure_values([Label(1, "Inner ear", (1.0, 1.0, 1.0))]) is None


def test_the_summary_line_says_where_the_side_came_from_or_why_there_is_none():
    labels, grid = _on_model_grid(load_specimen("RT138").structures, _affine(np.eye(3)))
    agreed = read_side(labels, grid, _geometry(True), 1, 2, 3).describe()
    assert side_summary(agreed) == "right ear (from the scan's patient axes (LPS); the anatomy agrees)"
    unread = dict(agreed, side=None, header_side=None, anatomy_side=None, agrees=None, axes_known=False)
    assert "no patient axes" in side_summary(unread) and "spiral could not be read" in side_summary(unread)
    labels[labels == 3] = 0
    assert "lacks a cochlea" in side_summary(read_side(labels, grid, _geometry(True), 1, 2, 3).describe())


def test_a_scan_too_coarse_to_show_the_turns_is_not_read_for_its_spiral():
    """Slices of 1.2 mm blur the cochlea's turns together: the side comes from the header alone,
    and nothing is flagged, even where the slices were stacked in reverse."""
    labels, grid = _on_model_grid(load_specimen("RT138").structures, _affine(np.diag([1.0, 1.0, -1.0])))
    coarse = Geometry((400, 400, 120), (0.45, 0.45, 1.2), (12.0, -40.0, 7.5), tuple(np.eye(3).ravel()))
    reading = read_side(labels, grid, coarse, 1, 2, 3)
    assert (reading.header, reading.anatomy, reading.agrees) == (RIGHT, None, None)
    assert reading.warning() is None and reading.spiral_score is not None
    assert "do not show the cochlea's turns" in side_summary(reading.describe())


def test_a_cochlea_too_small_to_hold_a_turn_is_not_read_for_its_spiral():
    """The lowest 16 mm³ of a right cochlea (a segmentation that missed the rest) would read as a
    left ear's spiral and raise a false alarm."""
    labels, grid = _on_model_grid(load_specimen("RT138").structures, _affine(np.eye(3)))
    cochlea = np.argwhere(labels == 1)
    keep = cochlea[np.argsort(cochlea[:, 0])[:1500]]
    labels[labels == 1] = 0
    labels[tuple(keep.T)] = 1
    reading = read_side(labels, grid, _geometry(True), 1, 2, 3)
    assert reading.header == RIGHT and reading.anatomy is None and reading.warning() is None
