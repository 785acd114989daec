"""Segmentation metrics used to evaluate the model (the paper's Table 1).

All arrays are indexed ``[z, y, x]`` (the order ``SimpleITK.GetArrayFromImage`` gives) and the
voxel spacing is given in the same order, in mm; every distance is returned in mm.

Definitions (``P`` = predicted foreground voxels, ``T`` = true foreground voxels):

* Overlap and confusion-matrix metrics are counted over the whole array:
  ``dice = 2|P∩T| / (|P|+|T|)``, ``jaccard = |P∩T| / |P∪T|``, ``accuracy = (TP+TN)/N``,
  ``precision = TP/(TP+FP)``, ``recall = TP/(TP+FN)`` (sensitivity),
  ``specificity = TN/(TN+FP)``.
  A ratio whose denominator is zero is 1.0 when the prediction equals the truth everywhere and
  0.0 otherwise (so two empty masks score dice = jaccard = precision = recall = 1).
* ``roc_auc``: area under the ROC curve of ``probability`` (the foreground probability per voxel)
  against the truth, computed *exactly* with the rank-based Mann-Whitney formula
  ``AUC = P(score_pos > score_neg) + 0.5 P(score_pos == score_neg)`` (ties count one half).
  The smaller class is sorted once; the larger class is taken in fixed-size chunks, each sorted
  and counted against the smaller class with ``np.searchsorted``, so no pairwise matrix, no
  histogram approximation and no argsort of the whole volume is needed (memory: one copy of the
  smaller class plus a few chunk-sized arrays; about 3 s for a 50M-voxel volume). Without
  ``probability`` it is the AUC of the binary prediction, ``(recall + specificity) / 2``.
  When the truth holds only one class the AUC is undefined and ``nan`` is returned.
* Distances use a 6-connected surface: a surface voxel is a foreground voxel with at least one
  face neighbour in the background (voxels on the array border count as surface).

  - ``hausdorff_mm``: symmetric Hausdorff distance between the **voxel sets** ``P`` and ``T``,
    ``max(max_{p∈P} d(p, T), max_{t∈T} d(t, P))`` with ``d`` the Euclidean distance between
    voxel centres in mm. This is the definition of ``sitk.HausdorffDistanceImageFilter`` and it
    matches it to floating-point precision. (For solid shapes it is almost always the same as
    the surface-to-surface maximum.)
  - ``hd95_mm`` and ``msd_mm``: from the symmetric surface distances, i.e. the union of the
    distances from every surface voxel of ``P`` to the nearest surface voxel of ``T`` and from
    every surface voxel of ``T`` to the nearest surface voxel of ``P``. ``hd95_mm`` is their
    95th percentile (``np.percentile``, linear interpolation) and ``msd_mm`` their mean (the
    average symmetric surface distance: the sum of both directed sums divided by the number of
    surface voxels of both masks).

  Distances come from ``scipy.ndimage.distance_transform_edt(..., sampling=spacing)`` computed
  only inside the bounding box of ``P ∪ T`` plus a one-voxel margin: every nearest point lies
  inside that box, so cropping changes no result and keeps big volumes fast.

Empty masks: both empty -> dice = jaccard = 1 and all distances 0; exactly one empty ->
dice = jaccard = 0 and all distances ``float('inf')``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["compute_metrics", "per_label_dice", "summarise", "roc_auc"]

# Chunk size (voxels) for the ROC AUC: how many values of either class are searched at once.
_AUC_CHUNK = 1 << 22


def _as_mask(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        return array
    return array != 0


def _check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != ndim:
        raise ValueError(f"spacing has {len(spacing)} values but the arrays have {ndim} dimensions")
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing must be positive and finite, got {spacing}")
    return spacing


def _ratio(numerator: int, denominator: int, identical: bool) -> float:
    if denominator == 0:
        return 1.0 if identical else 0.0
    return float(numerator) / float(denominator)


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two masks; 1.0 when both are empty."""
    tp = int(np.count_nonzero(prediction & truth))
    total = int(np.count_nonzero(prediction)) + int(np.count_nonzero(truth))
    return 1.0 if total == 0 else 2.0 * tp / total


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Exact ROC AUC (Mann-Whitney U / (n_pos n_neg), ties count 1/2); ``nan`` if one class is absent."""
    scores = np.asarray(scores).ravel()
    truth = _as_mask(truth).ravel()
    if scores.shape != truth.shape:
        raise ValueError(f"scores has {scores.size} values but truth has {truth.size}")
    if scores.dtype == bool:
        scores = scores.view(np.uint8)
    if np.issubdtype(scores.dtype, np.floating) and np.isnan(scores).any():
        raise ValueError("probability contains NaN values")
    n_pos = int(np.count_nonzero(truth))
    n_neg = truth.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    pos_is_small = n_pos <= n_neg
    small = np.sort(scores[truth] if pos_is_small else scores[~truth])
    large_mask = ~truth if pos_is_small else truth
    # twice_u = sum over (positive, negative) pairs of 2*[pos > neg] + [pos == neg], accumulated
    # exactly in integers. The larger class is taken a chunk at a time, sorted, and the sorted
    # smaller class is located in it (searching sorted needles in a sorted array is fast).
    twice_u = 0
    for start in range(0, scores.size, _AUC_CHUNK):
        chunk = np.sort(scores[start : start + _AUC_CHUNK][large_mask[start : start + _AUC_CHUNK]])
        if chunk.size == 0:
            continue
        # For each small-class value: 2*(#chunk values < it) + (#chunk values == it).
        counted = 0
        for first in range(0, small.size, _AUC_CHUNK):
            block = small[first : first + _AUC_CHUNK]
            counted += int(np.searchsorted(chunk, block, side="left").sum(dtype=np.int64))
            counted += int(np.searchsorted(chunk, block, side="right").sum(dtype=np.int64))
        if pos_is_small:
            twice_u += counted  # negatives below (ties 1/2) each positive
        else:
            twice_u += 2 * chunk.size * small.size - counted  # positives above (ties 1/2) each negative
    return twice_u / (2.0 * n_pos * n_neg)


def _surface(mask: np.ndarray) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _distances(prediction: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> tuple[float, float, float]:
    """(hausdorff, hd95, msd) in mm for two non-empty masks."""
    union = prediction | truth
    box = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        present = np.flatnonzero(np.any(union, axis=other))
        box.append(slice(max(int(present[0]) - 1, 0), min(int(present[-1]) + 2, union.shape[axis])))
    box = tuple(box)
    p = prediction[box]
    t = truth[box]
    surface_p = _surface(p)
    surface_t = _surface(t)
    # Distance of every voxel to the nearest surface voxel of the other mask.
    to_surface_t = ndimage.distance_transform_edt(~surface_t, sampling=spacing)
    to_surface_p = ndimage.distance_transform_edt(~surface_p, sampling=spacing)

    # Voxel-set Hausdorff: the nearest voxel of T to a voxel outside T is always a surface voxel
    # of T (a step towards the outside voxel would otherwise stay in T and be closer), so
    # d(x, T) = to_surface_t[x] for x outside T and 0 inside.
    outside = [to_surface_t[p & ~t], to_surface_p[t & ~p]]
    hausdorff = max((float(d.max()) for d in outside if d.size), default=0.0)

    symmetric = np.concatenate([to_surface_t[surface_p], to_surface_p[surface_t]])
    hd95 = float(np.percentile(symmetric, 95))
    msd = float(symmetric.mean())
    return hausdorff, hd95, msd


def compute_metrics(
    prediction: np.ndarray,
    truth: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    probability: np.ndarray | None = None,
) -> dict[str, float]:
    """All metrics of one case; see the module docstring for the exact definitions.

    ``prediction`` and ``truth`` are boolean (or 0/nonzero) arrays of the same shape indexed
    ``[z, y, x]``; ``spacing_zyx`` is the voxel size in mm in the same order; ``probability``
    (optional, same shape) is the foreground probability used for ``roc_auc``.

    Returns a dict with keys dice, jaccard, accuracy, precision, recall, specificity, roc_auc,
    hausdorff_mm, hd95_mm, msd_mm.
    """
    prediction = _as_mask(prediction)
    truth = _as_mask(truth)
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from truth shape {truth.shape}")
    spacing = _check_spacing(spacing_zyx, prediction.ndim)
    if probability is not None:
        probability = np.asarray(probability)
        if probability.shape != truth.shape:
            raise ValueError(f"probability shape {probability.shape} differs from truth shape {truth.shape}")

    tp = int(np.count_nonzero(prediction & truth))
    n_pred = int(np.count_nonzero(prediction))
    n_truth = int(np.count_nonzero(truth))
    fp = n_pred - tp
    fn = n_truth - tp
    tn = prediction.size - tp - fp - fn
    identical = fp == 0 and fn == 0

    recall = _ratio(tp, tp + fn, identical)
    specificity = _ratio(tn, tn + fp, identical)
    if probability is not None:
        auc = roc_auc(probability, truth)
    elif n_truth == 0 or n_truth == truth.size:
        auc = float("nan")
    else:
        auc = (recall + specificity) / 2.0

    if n_pred == 0 and n_truth == 0:
        hausdorff = hd95 = msd = 0.0
    elif n_pred == 0 or n_truth == 0:
        hausdorff = hd95 = msd = float("inf")
    else:
        hausdorff, hd95, msd = _distances(prediction, truth, spacing)

    return {
        "dice": _ratio(2 * tp, n_pred + n_truth, identical),
        "jaccard": _ratio(tp, tp + fp + fn, identical),
        "accuracy": _ratio(tp + tn, prediction.size, identical),
        "precision": _ratio(tp, tp + fp, identical),
        "recall": recall,
        "specificity": specificity,
        "roc_auc": auc,
        "hausdorff_mm": hausdorff,
        "hd95_mm": hd95,
        "msd_mm": msd,
    }


def per_label_dice(prediction_labels: np.ndarray, truth_labels: np.ndarray, values: list[int]) -> dict[int, float]:
    """Dice of ``prediction_labels == v`` against ``truth_labels == v`` for each ``v`` in ``values``.

    A label absent from both volumes scores 1.0; absent from exactly one, 0.0.
    """
    prediction_labels = np.asarray(prediction_labels)
    truth_labels = np.asarray(truth_labels)
    if prediction_labels.shape != truth_labels.shape:
        raise ValueError(f"prediction shape {prediction_labels.shape} differs from truth shape {truth_labels.shape}")
    return {int(v): dice(prediction_labels == v, truth_labels == v) for v in values}


def summarise(rows: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and sample standard deviation (ddof=1) of every key over ``rows`` (one row per case).

    Keys are taken in the order of the first row and every row must have the same keys.
    Values are used as they are: an ``inf`` (a distance of a case with an empty mask) makes the
    mean ``inf`` and the sd ``nan``, and a ``nan`` gives ``nan`` for both, so the caller sees
    such cases instead of having them silently dropped. With a single row the sd is ``nan``.
    An empty list gives an empty dict.
    """
    if not rows:
        return {}
    keys = list(rows[0])
    for index, row in enumerate(rows):
        if set(row) != set(keys):
            raise ValueError(f"row {index} has keys {sorted(row)} but row 0 has {sorted(keys)}")
    summary: dict[str, tuple[float, float]] = {}
    with np.errstate(invalid="ignore"):
        for key in keys:
            values = np.array([float(row[key]) for row in rows], dtype=np.float64)
            mean = float(values.mean())
            sd = float(values.std(ddof=1)) if values.size > 1 else float("nan")
            summary[key] = (mean, sd)
    return summary
