"""Synthetic head scans with both ears (Training/innerear_synth/head.py): the ears' truth where the
scan records them, the mirrored ear as a mirror image, the tissue a locator sees, determinism."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Training"))

from innerear_synth.head import render_head  # noqa: E402

SEED, FIELD_MM, VOXEL_MM = 7, 140.0, 0.7  # coarse voxels: a render takes seconds, not a minute


@pytest.fixture(scope="module")
def head():
    return render_head(np.random.default_rng(SEED), "RT147", field_mm=FIELD_MM, voxel_mm=VOXEL_MM)


@pytest.fixture(scope="module")
def labels(head) -> np.ndarray:
    return head.labels_on(head.image)


def _physical(image: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y, z (mm) of every voxel of an identity-direction image, broadcastable over [z, y, x]."""
    axes = [np.asarray(image.GetOrigin())[a] + np.asarray(image.GetSpacing())[a] * np.arange(image.GetSize()[a])
            for a in range(3)]
    return axes[0][None, None, :], axes[1][None, :, None], axes[2][:, None, None]


def _centroid(image: sitk.Image, mask: np.ndarray) -> np.ndarray:
    index = np.argwhere(mask).mean(axis=0)[::-1]
    return np.array(image.TransformContinuousIndexToPhysicalPoint(index.tolist()))


def _cube(centre, extent_mm: float = 24.0, spacing_mm: float = 0.25) -> sitk.Image:
    """A fine grid round one ear, to read its structures at a voxel far below the scan's."""
    size = int(round(extent_mm / spacing_mm))
    grid = sitk.Image([size] * 3, sitk.sitkUInt8)
    grid.SetSpacing([spacing_mm] * 3)
    grid.SetOrigin((np.asarray(centre) - spacing_mm * (size - 1) / 2).tolist())
    return grid


def _ears_on_fine_grids(scan) -> dict[str, tuple[sitk.Image, np.ndarray]]:
    out = {}
    for ear in scan.ears:
        grid = _cube(ear["labyrinth_centre_mm"])
        out[ear["side"]] = (grid, scan.labels_on(grid))
    return out


def _cochlea_is_medial_to_canals(grid: sitk.Image, structures: np.ndarray, side: str) -> bool:
    cochlea_x = _centroid(grid, structures == 1)[0]
    canals_x = _centroid(grid, structures == 3)[0]
    return cochlea_x < canals_x if side == "left" else cochlea_x > canals_x


def test_the_scan_is_clinical_ct_on_the_asked_grid(head):
    image = head.image
    assert image.GetPixelID() == sitk.sitkInt16
    assert image.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    np.testing.assert_allclose(image.GetSpacing(), VOXEL_MM)
    np.testing.assert_allclose(np.array(image.GetSize()) * VOXEL_MM, FIELD_MM, atol=VOXEL_MM)
    assert head.description["units"] == "HU"


def test_both_labyrinths_are_in_the_scan_where_their_ears_are_recorded(head, labels):
    assert [ear["side"] for ear in head.ears] == ["right", "left"]
    assert [ear["mirrored"] for ear in head.ears] == [False, True]  # RT147 is a right ear
    x, _, _ = _physical(head.image)
    for ear in head.ears:
        on_side = (labels > 0) & ((x < 0) if ear["side"] == "right" else (x > 0))
        assert set(np.unique(labels[on_side])) == {1, 2, 3}, ear
        centre = np.array(ear["labyrinth_centre_mm"])
        assert np.linalg.norm(_centroid(head.image, on_side) - centre) < 1.5, ear
        assert 25.0 < abs(centre[0]) < 60.0, ear  # lateral skull base, inside any 120 mm field
    assert head.ears[0]["labyrinth_centre_mm"][0] < 0 < head.ears[1]["labyrinth_centre_mm"][0]


def test_the_mirrored_left_ear_is_the_right_ears_mirror_image(head):
    ears = _ears_on_fine_grids(head)
    voxel_mm3 = 0.25 ** 3
    for label in (1, 2, 3):
        right, left = ((ears[side][1] == label).sum() * voxel_mm3 for side in ("right", "left"))
        assert left == pytest.approx(right, rel=0.05), label
    for side, (grid, structures) in ears.items():
        assert _cochlea_is_medial_to_canals(grid, structures, side), side
        # Mirroring flips only left-right: the cochlea stays in front of the vestibule on both sides.
        assert _centroid(grid, structures == 1)[1] < _centroid(grid, structures == 2)[1], side


def test_the_image_shows_air_outside_bone_in_the_skull_and_soft_brain(head):
    voxels = sitk.GetArrayFromImage(head.image)
    x, y, z = _physical(head.image)
    shape = head.description["head"]
    centre, semi = np.array(shape["centre_mm"]), np.array(shape["semi_axes_mm"])

    def radius(inset_mm: float) -> np.ndarray:
        """Ellipsoidal radius (1 on the surface) of the head shrunk by ``inset_mm``."""
        s = semi - inset_mm
        return np.sqrt(((x - centre[0]) / s[0]) ** 2 + ((y - centre[1]) / s[1]) ** 2 + ((z - centre[2]) / s[2]) ** 2)

    vault = np.broadcast_to(z > 30.0, voxels.shape)  # well above the skull base, the face and the neck
    scalp, skull = shape["scalp_mm"], shape["skull_mm"]
    air = np.median(voxels[vault & (radius(-5.0) > 1.0)])
    bone = np.median(voxels[vault & (radius(scalp + 1.0) < 1.0) & (radius(scalp + skull - 1.0) > 1.0)])
    brain = np.median(voxels[vault & (radius(scalp + skull + 10.0) < 1.0)])
    assert air < -500, (air, brain, bone)
    assert air + 200 < brain < bone - 300, (air, brain, bone)


def test_the_labyrinths_fluid_is_darker_than_its_otic_capsule(head, labels):
    voxels = sitk.GetArrayFromImage(head.image)
    x, _, _ = _physical(head.image)
    for side in (x < 0, x > 0):
        fluid = (labels > 0) & side
        wall = ndimage.binary_dilation(fluid, iterations=2) & ~ndimage.binary_dilation(fluid)
        assert np.median(voxels[fluid]) < np.median(voxels[wall]) - 100


def test_the_same_seed_gives_the_same_scan(head):
    again = render_head(np.random.default_rng(SEED), "RT147", field_mm=FIELD_MM, voxel_mm=VOXEL_MM)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(again.image), sitk.GetArrayViewFromImage(head.image))
    assert again.image.GetOrigin() == head.image.GetOrigin()
    assert again.description == head.description


def test_a_real_left_specimen_is_placed_as_it_is():
    scan = render_head(np.random.default_rng(3), "RT147", left="LT143", field_mm=120.0, voxel_mm=1.0)
    assert [(ear["specimen"], ear["mirrored"]) for ear in scan.ears] == [("RT147", False), ("LT143", False)]
    for side, (grid, structures) in _ears_on_fine_grids(scan).items():
        assert set(np.unique(structures)) == {0, 1, 2, 3}, side
        assert _cochlea_is_medial_to_canals(grid, structures, side), side


def test_a_cascade_trains_on_a_box_round_each_ear_holding_that_ear_alone(head, labels, monkeypatch):
    from innerear_training import data

    renders = []
    monkeypatch.setattr(data, "_render_head", lambda *args: renders.append(args) or head)  # the coarse head
    cases = data.head_cases(1, SEED, ["RT147"], 32, {"method": "robust-range"}, cache=None, log=None,
                            roi_extent_mm=28.0)
    assert len(renders) == 1  # both boxes from one render
    assert [case.name for case in cases] == ["head-0-right", "head-0-left"]
    x, _, _ = _physical(head.image)
    for case, ear in zip(cases, head.ears):
        grid = case.meta["grid"]
        centre = np.array(grid["origin"]) + np.array(grid["spacing"]) * (np.array(grid["size"]) - 1) / 2
        assert np.abs(centre - ear["labyrinth_centre_mm"]).max() <= 2.5 * 1.5 + 1e-6, ear  # the locator-like error
        assert grid["spacing"][0] == pytest.approx(28.0 / 32)
        assert set(np.unique(case.labels)) == {0, 1, 2, 3}, ear
        # The ear's whole labyrinth, at the box's voxels (nearest neighbour, 0.875 mm)
        ear_mm3 = (labels[(labels > 0) & ((x < 0) if ear["side"] == "right" else (x > 0))].size) * VOXEL_MM ** 3
        assert (case.labels > 0).sum() * (28.0 / 32) ** 3 == pytest.approx(ear_mm3, rel=0.35), ear
