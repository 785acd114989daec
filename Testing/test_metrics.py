"""Tests of InnerEarSegmentationLib.metrics against SimpleITK's filters and hand/brute-force answers."""

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from InnerEarSegmentationLib import metrics
from InnerEarSegmentationLib.metrics import compute_metrics, per_label_dice, roc_auc, summarise

SPACING_ZYX = (0.7, 0.3, 0.45)  # anisotropic on purpose, each axis different


def _to_sitk(mask: np.ndarray, spacing_zyx) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))  # SimpleITK wants x, y, z
    return image


def _blob(rng: np.random.Generator, shape, sigma: float, fraction: float) -> np.ndarray:
    """A random-ish, lumpy 3D shape: smoothed noise thresholded to about ``fraction`` of the volume."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > np.quantile(field, 1.0 - fraction)


def _embed(mask: np.ndarray, shape, offset) -> np.ndarray:
    big = np.zeros(shape, dtype=bool)
    big[tuple(slice(o, o + s) for o, s in zip(offset, mask.shape))] = mask
    return big


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_overlap_and_hausdorff_match_simpleitk(seed):
    rng = np.random.default_rng(seed)
    shape = (24, 30, 28)
    truth = _blob(rng, shape, sigma=2.5, fraction=0.15)
    # Prediction: the truth perturbed (dilated or eroded) with some other blobs mixed in.
    prediction = ndimage.binary_dilation(truth) if seed % 2 else ndimage.binary_erosion(truth)
    prediction = prediction ^ _blob(rng, shape, sigma=1.5, fraction=0.03)
    # Put both in a larger volume away from the border so that the bounding-box crop is exercised.
    big_shape, offset = (40, 52, 47), (9, 5, 13)
    prediction, truth = _embed(prediction, big_shape, offset), _embed(truth, big_shape, offset)

    result = compute_metrics(prediction, truth, SPACING_ZYX)

    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(_to_sitk(truth, SPACING_ZYX), _to_sitk(prediction, SPACING_ZYX))
    assert result["dice"] == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-12)
    assert result["jaccard"] == pytest.approx(overlap.GetJaccardCoefficient(), abs=1e-12)

    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(_to_sitk(truth, SPACING_ZYX), _to_sitk(prediction, SPACING_ZYX))
    assert result["hausdorff_mm"] == pytest.approx(hausdorff.GetHausdorffDistance(), rel=1e-9, abs=1e-9)
    assert result["hausdorff_mm"] > 0
    # Ordering that must hold by construction.
    assert 0 < result["msd_mm"] <= result["hd95_mm"]


def test_hausdorff_uses_spacing_in_zyx_order():
    # Two single voxels 3 apart along z and 2 apart along x: distance sqrt((3*0.7)^2 + (2*0.45)^2).
    a = np.zeros((8, 6, 7), dtype=bool)
    b = np.zeros_like(a)
    a[1, 2, 1] = True
    b[4, 2, 3] = True
    expected = math.hypot(3 * 0.7, 2 * 0.45)
    result = compute_metrics(a, b, SPACING_ZYX)
    assert result["hausdorff_mm"] == pytest.approx(expected)
    assert result["hd95_mm"] == pytest.approx(expected)
    assert result["msd_mm"] == pytest.approx(expected)
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(_to_sitk(a, SPACING_ZYX), _to_sitk(b, SPACING_ZYX))
    assert result["hausdorff_mm"] == pytest.approx(hausdorff.GetHausdorffDistance())


def test_shapes_touching_the_array_border():
    rng = np.random.default_rng(7)
    truth = _blob(rng, (16, 18, 20), sigma=2.0, fraction=0.4)
    prediction = ndimage.binary_dilation(truth, iterations=2)
    assert truth[0].any() and prediction[-1].any()
    result = compute_metrics(prediction, truth, SPACING_ZYX)
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(_to_sitk(truth, SPACING_ZYX), _to_sitk(prediction, SPACING_ZYX))
    assert result["hausdorff_mm"] == pytest.approx(hausdorff.GetHausdorffDistance(), rel=1e-9)


def test_confusion_matrix_metrics_by_hand():
    truth = np.array([[[1, 1, 1, 0], [0, 0, 0, 0]], [[1, 0, 0, 0], [0, 0, 0, 0]]], dtype=bool)
    prediction = np.array([[[1, 1, 0, 1], [0, 0, 0, 0]], [[1, 0, 0, 1], [1, 0, 0, 0]]], dtype=np.uint8)
    # TP = 3, FP = 3, FN = 1, TN = 9, N = 16.
    result = compute_metrics(prediction, truth, (1.0, 1.0, 1.0))
    assert result["dice"] == pytest.approx(2 * 3 / (6 + 4))
    assert result["jaccard"] == pytest.approx(3 / 7)
    assert result["accuracy"] == pytest.approx(12 / 16)
    assert result["precision"] == pytest.approx(3 / 6)
    assert result["recall"] == pytest.approx(3 / 4)
    assert result["specificity"] == pytest.approx(9 / 12)
    assert result["roc_auc"] == pytest.approx((3 / 4 + 9 / 12) / 2)
    assert set(result) == {
        "dice", "jaccard", "accuracy", "precision", "recall", "specificity",
        "roc_auc", "hausdorff_mm", "hd95_mm", "msd_mm",
    }


def _brute_force_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    pos = scores[truth][:, None]
    neg = scores[~truth][None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


@pytest.mark.parametrize("fraction", [0.2, 0.8])  # smaller class positive, then negative
def test_roc_auc_is_exact_against_brute_force(fraction, monkeypatch):
    rng = np.random.default_rng(11)
    truth = rng.random((6, 7, 8)) < fraction
    # Informative but imperfect scores with many ties (rounded to one decimal).
    probability = np.round(np.clip(0.3 * truth + rng.random(truth.shape) * 0.7, 0, 1), 1).astype(np.float32)
    expected = _brute_force_auc(probability.ravel(), truth.ravel())
    assert 0.5 < expected < 1.0
    assert compute_metrics(truth, truth, (1, 1, 1), probability)["roc_auc"] == pytest.approx(expected, abs=1e-12)
    # Same answer when the larger class is processed in many small chunks.
    monkeypatch.setattr(metrics, "_AUC_CHUNK", 37)
    assert roc_auc(probability, truth) == pytest.approx(expected, abs=1e-12)


def test_roc_auc_separated_and_binary():
    rng = np.random.default_rng(5)
    truth = rng.random((10, 9, 8)) < 0.3
    separated = np.where(truth, 0.6, 0.0) + 0.4 * rng.random(truth.shape)  # every positive above every negative
    assert roc_auc(separated, truth) == 1.0
    assert roc_auc(1.0 - separated, truth) == 0.0
    # Without probability the AUC is that of the binary prediction, i.e. the brute force on 0/1 scores.
    prediction = truth ^ (rng.random(truth.shape) < 0.1)
    expected = _brute_force_auc(prediction.ravel().astype(float), truth.ravel())
    assert compute_metrics(prediction, truth, (1, 1, 1))["roc_auc"] == pytest.approx(expected, abs=1e-12)
    assert roc_auc(prediction, truth) == pytest.approx(expected, abs=1e-12)
    # Undefined with a single class in the truth.
    assert math.isnan(roc_auc(separated, np.zeros_like(truth)))
    with pytest.raises(ValueError):
        roc_auc(np.full(truth.shape, np.nan), truth)


def _sphere(shape, spacing_zyx, centre_mm, radius_mm) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing_zyx)], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, centre_mm)) <= radius_mm**2


def test_concentric_spheres_surface_distances():
    spacing = (0.35, 0.25, 0.3)
    shape = (48, 64, 56)
    centre = tuple(n * s / 2 for n, s in zip(shape, spacing))
    r, d = 4.0, 1.5
    inner = _sphere(shape, spacing, centre, r)
    outer = _sphere(shape, spacing, centre, r + d)
    result = compute_metrics(inner, outer, spacing)
    # Discretisation error is a fraction of a voxel (largest spacing 0.35 mm).
    assert result["msd_mm"] == pytest.approx(d, abs=0.15)
    assert result["hd95_mm"] == pytest.approx(d, abs=0.25)
    assert result["hausdorff_mm"] == pytest.approx(d, abs=0.3)
    assert result["dice"] == pytest.approx(2 * r**3 / (r**3 + (r + d) ** 3), abs=0.02)
    # Symmetric: swapping prediction and truth changes no distance.
    swapped = compute_metrics(outer, inner, spacing)
    for key in ("hausdorff_mm", "hd95_mm", "msd_mm", "dice", "jaccard"):
        assert swapped[key] == pytest.approx(result[key], abs=1e-12)
    # Identical masks: every distance is zero.
    same = compute_metrics(inner, inner, spacing)
    assert same["dice"] == 1.0 and same["hausdorff_mm"] == same["hd95_mm"] == same["msd_mm"] == 0.0


def test_empty_mask_conventions():
    empty = np.zeros((5, 6, 7), dtype=bool)
    full = empty.copy()
    full[1:3, 2:4, 3:6] = True

    both = compute_metrics(empty, empty, SPACING_ZYX)
    assert both["dice"] == 1.0 and both["jaccard"] == 1.0
    assert both["precision"] == 1.0 and both["recall"] == 1.0 and both["specificity"] == 1.0
    assert both["accuracy"] == 1.0
    assert both["hausdorff_mm"] == both["hd95_mm"] == both["msd_mm"] == 0.0
    assert math.isnan(both["roc_auc"])

    for prediction, truth in ((empty, full), (full, empty)):
        one = compute_metrics(prediction, truth, SPACING_ZYX)
        assert one["dice"] == 0.0 and one["jaccard"] == 0.0
        assert one["hausdorff_mm"] == one["hd95_mm"] == one["msd_mm"] == float("inf")
    assert compute_metrics(empty, full, SPACING_ZYX)["precision"] == 0.0
    assert compute_metrics(empty, full, SPACING_ZYX)["recall"] == 0.0
    assert compute_metrics(full, empty, SPACING_ZYX)["recall"] == 0.0


def test_input_validation():
    a = np.zeros((3, 4, 5), dtype=bool)
    with pytest.raises(ValueError):
        compute_metrics(a, np.zeros((3, 4, 6), dtype=bool), (1, 1, 1))
    with pytest.raises(ValueError):
        compute_metrics(a, a, (1, 1))
    with pytest.raises(ValueError):
        compute_metrics(a, a, (1, 0, 1))
    with pytest.raises(ValueError):
        compute_metrics(a, a, (1, 1, 1), probability=np.zeros((3, 4)))


def test_per_label_dice_three_labels():
    truth = np.zeros((4, 5, 6), dtype=np.uint8)
    truth[0:2, :, :] = 1  # 60 voxels
    truth[2:4, 0:2, :] = 2  # 24 voxels
    truth[2:4, 2:5, 0:3] = 3  # 18 voxels
    prediction = truth.copy()
    prediction[1, 0, :] = 2  # 6 voxels of label 1 predicted as 2
    prediction[2:4, 2:5, 0:3] = 0  # label 3 missed entirely
    result = per_label_dice(prediction, truth, [1, 2, 3, 4])
    assert result[1] == pytest.approx(2 * 54 / (54 + 60))
    assert result[2] == pytest.approx(2 * 24 / (30 + 24))
    assert result[3] == 0.0
    assert result[4] == 1.0  # absent from both
    assert list(result) == [1, 2, 3, 4]
    # Agrees with SimpleITK's per-label Dice.
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(sitk.GetImageFromArray(truth), sitk.GetImageFromArray(prediction))
    for label in (1, 2):
        assert result[label] == pytest.approx(overlap.GetDiceCoefficient(label))


def test_summarise():
    rows = [{"dice": 0.8, "hd95_mm": 1.0}, {"dice": 0.9, "hd95_mm": 2.0}, {"dice": 0.7, "hd95_mm": 3.0}]
    summary = summarise(rows)
    assert list(summary) == ["dice", "hd95_mm"]
    assert summary["dice"][0] == pytest.approx(0.8)
    assert summary["dice"][1] == pytest.approx(0.1)  # sample sd (ddof=1)
    assert summary["hd95_mm"] == pytest.approx((2.0, 1.0))
    # inf is kept: the mean shows it, the sd is undefined.
    with_inf = summarise(rows + [{"dice": 0.0, "hd95_mm": float("inf")}])
    assert with_inf["hd95_mm"][0] == float("inf") and math.isnan(with_inf["hd95_mm"][1])
    assert math.isnan(summarise(rows[:1])["dice"][1])
    assert summarise([]) == {}
    with pytest.raises(ValueError):
        summarise([{"dice": 1.0}, {"jaccard": 1.0}])


def _brute_force_surface_distances(a: np.ndarray, b: np.ndarray, spacing_zyx) -> np.ndarray:
    """Symmetric surface distances by explicit 6-neighbour surfaces and all pairwise distances."""

    def surface_points(mask):
        padded = np.pad(mask, 1)
        core = tuple(slice(1, -1) for _ in range(3))
        all_neighbours_in = np.ones_like(mask)
        for axis in range(3):
            for step in (-1, 1):
                all_neighbours_in &= np.roll(padded, step, axis=axis)[core]
        return np.argwhere(mask & ~all_neighbours_in) * np.asarray(spacing_zyx)

    from scipy.spatial.distance import cdist

    pairwise = cdist(surface_points(a), surface_points(b))
    return np.concatenate([pairwise.min(axis=1), pairwise.min(axis=0)])


@pytest.mark.parametrize("seed", [0, 1])
def test_hd95_and_msd_against_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    shape = (14, 16, 15)
    truth = _blob(rng, shape, sigma=2.0, fraction=0.2)
    prediction = _blob(rng, shape, sigma=2.0, fraction=0.2) | ndimage.binary_erosion(truth)
    expected = _brute_force_surface_distances(prediction, truth, SPACING_ZYX)
    result = compute_metrics(prediction, truth, SPACING_ZYX)
    assert result["hd95_mm"] == pytest.approx(np.percentile(expected, 95), abs=1e-9)
    assert result["msd_mm"] == pytest.approx(expected.mean(), abs=1e-9)


def test_hausdorff_is_between_voxel_sets_like_simpleitk():
    # A cube and the same cube with a one-voxel hole in its centre: as voxel sets they are one
    # voxel apart (what SimpleITK reports), while the hole's surface is ~half a side away from
    # the cube's outer surface (what the surface distances see).
    full = np.zeros((15, 15, 15), dtype=bool)
    full[2:13, 2:13, 2:13] = True
    holed = full.copy()
    holed[7, 7, 7] = False
    result = compute_metrics(full, holed, SPACING_ZYX)
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(_to_sitk(holed, SPACING_ZYX), _to_sitk(full, SPACING_ZYX))
    assert result["hausdorff_mm"] == pytest.approx(hausdorff.GetHausdorffDistance())
    assert result["hausdorff_mm"] == pytest.approx(min(SPACING_ZYX))
    # The voxels around the hole are >= 4 voxels from every face; the farthest, (7, 7, 6), is
    # 5 * 0.3 mm from the nearest outer face (along y), so the surface distances reach 1.5 mm.
    assert max(_brute_force_surface_distances(full, holed, SPACING_ZYX)) == pytest.approx(5 * 0.3)
    assert result["hd95_mm"] == 0.0  # only 6 of ~600 surface voxels are off the other surface
    assert result["msd_mm"] > 0.0
