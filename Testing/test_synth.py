"""Training data from real anatomy (Training/innerear_synth): the labyrinth split, the patient
axes read from the anatomy, and the randomised renderer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Training"))

from innerear_synth import specimens as sp  # noqa: E402
from innerear_synth.labyrinth_split import split_labyrinth  # noqa: E402
from innerear_synth.specimen_axes import find_axes  # noqa: E402


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def test_split_recovers_the_phantoms_structures_from_its_labyrinth_alone():
    from InnerEarSegmentationLib.phantom import make_phantom

    phantom = make_phantom(3, "clinical")
    labels = sitk.GetArrayFromImage(phantom.labels())
    centre = phantom.labels().TransformContinuousIndexToPhysicalPoint(np.argwhere(labels > 0).mean(0)[::-1].tolist())
    grid = sitk.Image([72] * 3, sitk.sitkUInt8)
    grid.SetSpacing([0.22] * 3)
    grid.SetOrigin((np.array(centre) - 0.22 * 35.5).tolist())
    truth = sitk.GetArrayFromImage(phantom.labels_on(grid))
    split = split_labyrinth(truth > 0, 0.22)
    assert set(np.unique(split)) == {0, 1, 2, 3}
    # A partition of the labyrinth (holes filled, stray islands dropped), nothing else added.
    assert ((split > 0) != (truth > 0)).sum() < 0.02 * (truth > 0).sum()
    scores = [_dice(split == k, truth == k) for k in (1, 2, 3)]
    assert scores[0] > 0.75 and scores[1] > 0.6 and scores[2] > 0.8, scores


def _blob(array: np.ndarray, centre_xyz, radius: float, value: int) -> None:
    z, y, x = np.ogrid[: array.shape[0], : array.shape[1], : array.shape[2]]
    cx, cy, cz = centre_xyz
    array[(x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius ** 2] = value


def _right_ear_in_lps() -> np.ndarray:
    """Blobs where a right ear has them with voxel axes x = L, y = P, z = S (lateral is -x)."""
    array = np.full((40, 40, 40), sp.BONE, dtype=np.uint8)
    _blob(array, (30, 20, 20), 3, sp.INTERNAL_CANAL)   # medial
    _blob(array, (5, 20, 20), 3, sp.EXTERNAL_CANAL)    # lateral
    _blob(array, (20, 20, 20), 3, sp.VESTIBULE)
    _blob(array, (22, 12, 19), 3, sp.COCHLEA)          # anterior (-y)
    _blob(array, (12, 20, 18), 1.5, sp.STAPES)
    _blob(array, (10, 21, 26), 2, sp.INCUS)            # above the stapes (+z)
    _blob(array, (10, 18, 27), 2, sp.MALLEUS)
    return array


def test_axes_read_the_side_and_undo_a_mirrored_voxel_frame():
    right = _right_ear_in_lps()
    axes = find_axes(right, (0.2, 0.2, 0.2))
    assert axes.voxel_handedness == "right"
    np.testing.assert_allclose(axes.direction("right"), np.eye(3), atol=0.15)
    mirrored = right[:, :, ::-1]  # the same ear stored with the x axis reversed
    axes = find_axes(mirrored, (0.2, 0.2, 0.2))
    assert axes.voxel_handedness == "left"
    direction = axes.direction("right")
    assert np.linalg.det(direction) == pytest.approx(-1.0, abs=1e-6)
    np.testing.assert_allclose(direction, np.diag([-1.0, 1.0, 1.0]), atol=0.15)


def test_derived_specimens_are_in_patient_axes():
    """In physical LPS each derived specimen shows the side it is named: external canal lateral
    (or labyrinth lateral to the internal canal), incus above the stapes, cochlea in front."""
    for name, (_, side) in sp.SPECIMENS.items():
        image = sp.read_anatomy(name)
        labels = sitk.GetArrayFromImage(image)

        def at(*values):
            index = np.argwhere(np.isin(labels, values)).mean(0)[::-1]
            return np.array(image.TransformContinuousIndexToPhysicalPoint(index.tolist()))

        lateral = -1 if side == "right" else 1
        assert (at(sp.COCHLEA, sp.VESTIBULE, sp.CANALS)[0] - at(sp.INTERNAL_CANAL)[0]) * lateral > 0, name
        assert at(sp.INCUS)[2] > at(sp.STAPES)[2], name
        assert at(sp.COCHLEA)[1] < at(sp.VESTIBULE)[1], name
        np.testing.assert_allclose(at(sp.COCHLEA, sp.VESTIBULE, sp.CANALS), 0.0, atol=0.2)


def test_renders_put_labels_on_the_fluid_and_keep_the_physics_order():
    from innerear_synth.render import load_specimen, render_scan
    from InnerEarSegmentationLib import preprocess

    specimen = load_specimen("RT138")
    for seed, protocol in ((1, "clinical"), (2, "cbct"), (3, "microct")):
        scan, labels_on, description = render_scan(specimen, np.random.default_rng(seed), protocol)
        assert description["protocol"] == protocol
        voxels = sitk.GetArrayFromImage(scan)
        if protocol == "clinical":
            assert voxels.dtype == np.int16 and voxels.min() >= -1024
        labels = labels_on(scan)
        inside = preprocess.scan_footprint(scan, scan)
        assert inside.all()
        if labels.sum() < 50:
            continue  # the draw's field missed most of the labyrinth
        fluid = labels > 0
        from scipy import ndimage

        wall = ndimage.binary_dilation(fluid, iterations=2) & ~ndimage.binary_dilation(fluid)
        # Dark fluid in dense bone: the labels sit on the image's labyrinth, not beside it.
        assert np.median(voxels[fluid]) < np.median(voxels[wall]), (seed, description)
