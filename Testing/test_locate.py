"""Locate, then segment a fixed-size box: the labyrinth keeps its size in model voxels whatever
the scan's field of view (real ONNX locator and stages, real SimpleITK resampling)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import AIR_HU, BONE_HU, structure_scan
from tiny_model import DECOY_HU, build_located_model

from InnerEarSegmentationLib.errors import InputError, ModelError
from InnerEarSegmentationLib.model import load_model, save_manifest
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter
from InnerEarSegmentationLib.preprocess import roi_grid

ROI_MM, GRID = 20.0, 80  # 0.25 mm voxels, as the structure scan's own


@pytest.fixture(scope="module")
def located_model(tmp_path_factory):
    return build_located_model(tmp_path_factory.mktemp("models") / "located", ROI_MM, GRID)


def _wide_scan(lower=(70, 20, 45), upper=(10, 60, 25)) -> tuple[sitk.Image, np.ndarray]:
    """The structure labyrinth off-centre in a 36-40 mm bone block (0.25 mm voxels)."""
    image, truth = structure_scan()
    padded = sitk.ConstantPad(image, lower, upper, BONE_HU)
    truth_image = sitk.GetImageFromArray(truth)
    truth_image.CopyInformation(image)
    truth = sitk.GetArrayFromImage(sitk.ConstantPad(truth_image, lower, upper, 0))
    return padded, truth


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def test_roi_grid_is_a_cube_of_the_asked_size_centred_on_the_point():
    grid = roi_grid(np.array([3.0, -7.0, 12.5]), 20.0, 80)
    assert grid.GetSize() == (80, 80, 80) and grid.GetSpacing() == pytest.approx((0.25,) * 3)
    centre = grid.TransformContinuousIndexToPhysicalPoint([39.5] * 3)
    assert centre == pytest.approx((3.0, -7.0, 12.5))


def test_the_cascade_segments_a_fixed_box_round_the_located_labyrinth(located_model):
    scan, truth = _wide_scan()
    result = Segmenter(load_model(located_model), SegmentationSettings(measure=False)).segment(scan)
    report = result.report
    assert report["model_grid"]["spacing_mm"] == pytest.approx(ROI_MM / GRID)  # not 40 mm / 80
    assert report["model_grid"]["box_extent_mm"] == ROI_MM
    found = np.array(report["located"]["box_centre_mm"])  # recentred on what the first stage found
    assert report["located"]["candidates"][report["located"]["chosen"]]["box_labyrinth_mm3"] > 0
    labyrinth = np.argwhere(truth > 0).mean(axis=0)[::-1]
    assert np.linalg.norm(found - np.array(scan.TransformContinuousIndexToPhysicalPoint(labyrinth.tolist()))) < 1.0
    labels = sitk.GetArrayFromImage(result.labelmap)
    assert result.labelmap.GetSize() == scan.GetSize()
    scores = [_dice(labels == value, truth == value) for value in (1, 2, 3)]
    assert min(scores[:2]) > 0.85 and scores[2] > 0.75, scores  # off the scan's grid, rims blur into bone
    assert "locate" in report["timings_s"]


def test_a_larger_decoy_found_by_the_locator_loses_to_the_labyrinth_the_first_stage_confirms(located_model):
    scan, truth = _wide_scan()
    array = sitk.GetArrayFromImage(scan)
    z, y, x = np.mgrid[: array.shape[0], : array.shape[1], : array.shape[2]]
    decoy = (z - 100) ** 2 + (y - 110) ** 2 + (x - 30) ** 2 < 22 ** 2  # 11 mm ball, far from the ear
    assert not (decoy & (truth > 0)).any()
    array[decoy] = DECOY_HU
    decoyed = sitk.GetImageFromArray(array)
    decoyed.CopyInformation(scan)
    result = Segmenter(load_model(located_model), SegmentationSettings(measure=False)).segment(decoyed)
    located = result.report["located"]
    assert len(located["candidates"]) >= 2 and located["chosen"] != 0  # the decoy was the largest find
    assert located["candidates"][0]["box_labyrinth_mm3"] == 0.0
    labels = sitk.GetArrayFromImage(result.labelmap)
    assert _dice(labels > 0, truth > 0) > 0.85


def test_a_scan_with_no_labyrinth_is_refused_by_the_locator(located_model):
    array = np.full((60, 60, 60), BONE_HU, dtype=np.int16)
    array[:10] = AIR_HU  # bone and air, no fluid anywhere
    scan = sitk.GetImageFromArray(array)
    scan.SetSpacing([0.5] * 3)
    with pytest.raises(InputError, match="No inner ear was found"):
        Segmenter(load_model(located_model)).segment(scan)


def test_a_box_model_without_its_locator_or_with_a_changed_one_is_refused(located_model, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(located_model, copy)
    data = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    (copy / "locator.onnx").write_bytes((copy / "stage2.onnx").read_bytes())
    with pytest.raises(ModelError, match="locator.onnx does not match"):
        load_model(copy)
    data.pop("locator")
    (copy / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelError, match="names no locator"):
        load_model(copy)
    with pytest.raises(ModelError, match="names no locator"):
        save_manifest(copy, data)
