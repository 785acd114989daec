"""The cascade end to end on real files with a real (tiny) ONNX model."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import onnx
import pytest
import SimpleITK as sitk

from conftest import blob_scan
from tiny_model import stage_graph
from InnerEarSegmentationLib.errors import Cancelled, InnerEarError, ModelError
from InnerEarSegmentationLib.model import load_model, save_manifest
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter
from InnerEarSegmentationLib.preprocess import model_grid, physical_corners
from InnerEarSegmentationLib.progress import Progress


def fluid_truth() -> np.ndarray:
    """The big fluid ellipsoid of blob_scan in [z, y, x] index space (whatever the direction)."""
    z, y, x = np.mgrid[:30, :36, :40]
    return (x - 20) ** 2 + (y - 18) ** 2 + (z - 15) ** 2 < 8 ** 2


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_segments_the_fluid_sphere_and_drops_the_distractor(tiny_model):
    image = blob_scan()
    result = Segmenter(load_model(tiny_model), SegmentationSettings(device="cpu")).segment(image)
    labels = sitk.GetArrayFromImage(result.labelmap)
    assert result.labelmap.GetSize() == image.GetSize()
    assert result.labelmap.GetSpacing() == image.GetSpacing()
    assert result.labelmap.GetOrigin() == image.GetOrigin()
    assert labels[2:7, 2:7, 2:7].sum() == 0, "the small speck is not the largest component"
    assert dice(labels > 0, fluid_truth()) > 0.9


def test_single_stage_runs_stage_one_only(tiny_model):
    segmenter = Segmenter(load_model(tiny_model), SegmentationSettings(device="cpu", last_stage=1))
    result = segmenter.segment(blob_scan())
    assert result.report["model"]["stages_run"] == ["stage1"]
    assert "stage_stage2" not in result.report["timings_s"]


def test_oblique_scan_maps_back_onto_its_own_grid(tiny_model):
    angle = np.deg2rad(25)
    direction = (np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, 1)
    image = blob_scan(direction=direction)
    result = Segmenter(load_model(tiny_model)).segment(image)
    assert result.labelmap.GetDirection() == pytest.approx(direction)
    assert dice(sitk.GetArrayFromImage(result.labelmap) > 0, fluid_truth()) > 0.85


def test_model_grid_is_an_isotropic_cube_around_the_scan():
    image = blob_scan(size=(40, 36, 30), spacing=(0.4, 0.4, 0.5))
    grid = model_grid(image, 32)
    assert grid.GetSize() == (32, 32, 32)
    assert grid.GetSpacing() == pytest.approx((0.5, 0.5, 0.5))  # 16 mm longest side / 32
    centre = np.array(grid.TransformContinuousIndexToPhysicalPoint((15.5, 15.5, 15.5)))
    expected = np.array(image.TransformContinuousIndexToPhysicalPoint((19.5, 17.5, 14.5)))
    assert centre == pytest.approx(expected)


def test_report_records_model_settings_and_volumes(tiny_model):
    image = blob_scan()
    result = Segmenter(load_model(tiny_model), SegmentationSettings(batch_size=5)).segment(image, source="blob.nrrd")
    report = json.loads(json.dumps(result.report))
    assert report["model"]["id"] == "tiny-test-model" and report["model"]["version"] == "0.0.1"
    assert report["settings"]["batch_size"] == 5
    assert report["provider"] == "CPUExecutionProvider"
    assert report["input"]["source"] == "blob.nrrd"
    cochlea = report["segments"][0]
    voxels = int((sitk.GetArrayFromImage(result.labelmap) == 1).sum())
    assert cochlea["voxels"] == voxels
    assert cochlea["volume_mm3"] == pytest.approx(voxels * 0.4 * 0.4 * 0.5, rel=1e-3)
    ellipsoid_mm3 = 4 / 3 * np.pi * 3.2 * 3.2 * 4.0  # radius 8 voxels of 0.4 x 0.4 x 0.5 mm
    assert 0.9 * ellipsoid_mm3 < cochlea["volume_mm3"] < 1.1 * ellipsoid_mm3


def test_progress_is_monotonic_and_reaches_one(tiny_model):
    seen = []
    Segmenter(load_model(tiny_model), SegmentationSettings(batch_size=4)).segment(
        blob_scan(), Progress(lambda fraction, message: seen.append(fraction)))
    assert seen[-1] == 1.0
    assert all(b >= a for a, b in zip(seen, seen[1:]))
    assert len(seen) > 10


def test_cancel_stops_between_batches(tiny_model):
    cancel = threading.Event()
    calls = []

    def on_progress(fraction, message):
        calls.append(message)
        if "slices" in message and len(calls) > 3:
            cancel.set()

    with pytest.raises(Cancelled):
        Segmenter(load_model(tiny_model), SegmentationSettings(batch_size=2)).segment(blob_scan(), Progress(on_progress, cancel))
    assert not any("mapping back" in message for message in calls)


def test_gpu_request_without_cuda_says_what_to_install(tiny_model):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InnerEarError, match="onnxruntime-gpu"):
        Segmenter(load_model(tiny_model), SegmentationSettings(device="gpu")).segment(blob_scan())


def test_wrong_channel_count_is_refused(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    onnx.save(stage_graph(channels=1), str(folder / "stage2.onnx"))  # stage 2 needs 2 channels
    save_manifest(folder, json.loads((folder / "manifest.json").read_text()))
    with pytest.raises(ModelError, match="takes 1 input channel"):
        Segmenter(load_model(folder)).segment(blob_scan())


def test_corrupt_onnx_is_refused_clearly(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    (folder / "stage1.onnx").write_bytes(b"this is not a protobuf")
    save_manifest(folder, json.loads((folder / "manifest.json").read_text()))
    with pytest.raises(ModelError, match="stage1.onnx is not a usable ONNX model"):
        Segmenter(load_model(folder)).segment(blob_scan())


def test_a_tight_crop_is_padded_to_the_models_minimum_extent():
    image = blob_scan(size=(40, 36, 30), spacing=(0.4, 0.4, 0.5))  # 16 mm at most
    grid = model_grid(image, 32, min_extent_mm=24.0)
    assert grid.GetSpacing() == pytest.approx((0.75, 0.75, 0.75))
    centre = np.array(grid.TransformContinuousIndexToPhysicalPoint((15.5, 15.5, 15.5)))
    expected = np.array(image.TransformContinuousIndexToPhysicalPoint((19.5, 17.5, 14.5)))
    assert centre == pytest.approx(expected)
    assert model_grid(image, 32, min_extent_mm=10.0).GetSpacing() == pytest.approx((0.5, 0.5, 0.5))


def test_manifest_minimum_extent_reaches_the_model_grid(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    data = json.loads((folder / "manifest.json").read_text())
    data["grid_min_extent_mm"] = 40.0
    save_manifest(folder, data)
    model = load_model(folder)
    assert model.min_extent_mm == 40.0
    result = Segmenter(model).segment(blob_scan())
    assert {k: result.report["model_grid"][k] for k in ("size", "spacing_mm")} == {"size": 32, "spacing_mm": 1.25}
    assert dice(sitk.GetArrayFromImage(result.labelmap) > 0, fluid_truth()) > 0.8  # coarse, still found


def test_report_records_provenance_input_geometry_and_timings(tiny_model):
    """Every output carries this report: what ran, on which grid, and how long each step took."""
    import datetime

    from InnerEarSegmentationLib import __version__
    from InnerEarSegmentationLib.model import sha256_of
    from InnerEarSegmentationLib.pipeline import DISCLAIMER

    image = blob_scan(direction=(0, 1, 0, 1, 0, 0, 0, 0, -1))
    model = load_model(tiny_model)
    report = Segmenter(model).segment(image, source="ear.nrrd").report
    assert report["software"] == {"name": "InnerEarSegmentation", "version": __version__}
    assert report["model"] == {"id": "tiny-test-model", "version": "0.0.1", "description": model.description,
                               "manifest_sha256": sha256_of(tiny_model / "manifest.json"),
                               "stages_run": ["stage1", "stage2", "stage3"]}
    assert report["input"] == {"source": "ear.nrrd", "size": list(image.GetSize()),
                               "spacing_mm": list(image.GetSpacing()), "origin_mm": list(image.GetOrigin()),
                               "direction": list(image.GetDirection())}
    assert {k: report["model_grid"][k] for k in ("size", "spacing_mm")} == {"size": 32, "spacing_mm": 0.5}
    assert report["model_grid"]["origin_mm"] == pytest.approx(  # the cube centred on the scan
        np.mean(physical_corners(image), axis=0) - 0.5 * 31 / 2, abs=1e-3)
    assert set(report["timings_s"]) == {"resample", "resample_back", "measure"} | {
        f"{step}_stage{n}" for step in ("stage", "components") for n in (1, 2, 3)}
    assert "measurements" in report
    assert report["disclaimer"] == DISCLAIMER and report["warnings"] == []
    assert datetime.datetime.fromisoformat(report["created"]).utcoffset() == datetime.timedelta(0)
    assert [(s["value"], s["name"]) for s in report["segments"]] == [
        (1, "Cochlea"), (2, "Vestibule"), (3, "Semicircular canals")]
    assert report["segments"][0]["voxels"] > 0 and report["segments"][1]["voxels"] == 0
