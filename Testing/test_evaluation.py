"""Training/ evaluation tools on two tiny labelled cases: evaluate.py scores the real pipeline on
each scan's own grid; cv.py keeps each scan in one fold. Skipped where torch is absent."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Training"))

from conftest import structure_scan  # noqa: E402
from InnerEarSegmentationLib.model import load_model  # noqa: E402
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter  # noqa: E402

ANISOTROPIC = {"size": (48, 44, 36), "spacing": (0.35, 0.36, 0.45)}


def write_case(folder: Path, name: str, image: sitk.Image, labels: sitk.Image) -> None:
    sitk.WriteImage(image, str(folder / f"{name}.nrrd"))
    sitk.WriteImage(labels, str(folder / f"{name}-label.nrrd"))


def label_image(truth: np.ndarray, grid: sitk.Image) -> sitk.Image:
    labels = sitk.GetImageFromArray(truth)
    labels.CopyInformation(grid)
    return labels


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory) -> Path:
    """case01: a scan on the structure model's grid with its labels on the same grid; case02: an
    anisotropic scan whose label file lies on a twice finer grid over the same extent."""
    folder = tmp_path_factory.mktemp("labelled")
    image, truth = structure_scan()
    write_case(folder, "case01", image, label_image(truth, image))
    image, _ = structure_scan(**ANISOTROPIC)
    fine_size = [2 * n for n in ANISOTROPIC["size"]]
    fine_spacing = [s / 2 for s in ANISOTROPIC["spacing"]]
    fine, fine_truth = structure_scan(size=fine_size, spacing=fine_spacing)
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()]))
    fine.SetOrigin((centre - (np.array(fine_size) - 1) / 2 * np.array(fine_spacing)).tolist())
    write_case(folder, "case02", image, label_image(fine_truth, fine))
    return folder


def brute_dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def test_evaluate_scores_each_case_on_its_own_grid(labelled_folder, structure_model):
    from innerear_training.evaluate import evaluate_case, folder_scans

    cases = {name: (image, truth) for name, _, image, truth in folder_scans(labelled_folder)}
    assert sorted(cases) == ["case01", "case02"]
    segmenter = Segmenter(load_model(structure_model), SegmentationSettings(device="cpu", keep_probability=True))
    for name, (image, truth) in cases.items():
        assert truth.shape == image.GetSize()[::-1]  # the finer label file was brought onto the scan
        row = evaluate_case(segmenter, image, truth, [1, 2, 3])
        prediction = sitk.GetArrayFromImage(segmenter.segment(image).labelmap)
        assert row["dice"] == pytest.approx(brute_dice(prediction > 0, truth > 0), abs=1e-9)
        for value in (1, 2, 3):
            assert row[f"dice_{value}"] == pytest.approx(brute_dice(prediction == value, truth == value), abs=1e-9)
            assert row[f"dice_{value}"] > 0.8, (name, value, row)  # case02: truth resampled from finer
    image, truth = cases["case01"]  # on the model's own grid the pipeline gives the truth itself
    assert evaluate_case(segmenter, image, truth, [1, 2, 3])["dice"] == 1.0


def test_evaluate_command_writes_the_table_for_both_methods(labelled_folder, structure_model, tmp_path):
    from innerear_training.evaluate import main

    out = tmp_path / "results.md"
    assert main(["--model", str(structure_model), "--data", str(labelled_folder), "--out", str(out),
                 "--threads", "1"]) == 0
    text = out.read_text(encoding="utf-8")  # the tables hold "±"
    assert "## All scans (n = 2)" in text and "| Metric | cascade | single U-Net |" in text
    assert "| case01 | 64x64x64 | 0.25 | 1.0000 | 1.0000 |" in text
    assert "| Dice Semicircular canals |" in text


def test_cross_validation_trains_each_fold_without_its_test_scans(labelled_folder, tmp_path, monkeypatch):
    """Two tiny folds really trained (2-stage U-Nets of width 2 on a 16³ grid, one step each);
    train_cascade is wrapped only to record which scans each fold trained and tested on."""
    from innerear_training import cv

    calls = []
    real = cv.train_cascade

    def recording(train, val, config, workdir, num_classes, evaluate_cases=None):
        calls.append(([c.name for c in train], [c.name for c in val], [c.name for c in evaluate_cases]))
        return real(train, val, config, workdir, num_classes, evaluate_cases=evaluate_cases)

    monkeypatch.setattr(cv, "train_cascade", recording)
    out = tmp_path / "cv.md"
    assert cv.main(["--folds", "2", "--data", str(labelled_folder), "--cache", str(tmp_path / "cache"),
                    "--workdir", str(tmp_path / "work"), "--val-fraction", "0", "--grid", "16", "--base", "2",
                    "--stages", "2", "--max-epochs", "1", "--steps-per-epoch", "1", "--batch", "2",
                    "--threads", "1", "--out", str(out)]) == 0
    assert len(calls) == 2
    for train, val, test in calls:
        assert test and not set(test) & set(train + val)
    assert sorted(name for _, _, test in calls for name in test) == ["case01", "case02"]
    text = out.read_text(encoding="utf-8")  # the tables hold "±"
    assert "| all | 2 |" in text and "Semicircular canals single | Semicircular canals cascade" in text
    all_row = next(line for line in text.splitlines() if line.startswith("| all |"))
    means = [float(cell.split("±")[0]) for cell in all_row.strip("|").split("|")[2:]]
    assert len(means) == 8 and all(0.0 <= m <= 1.0 for m in means)
