"""The cascade end to end on real files with a real (tiny) ONNX model."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time

import numpy as np
import onnx
import pytest
import SimpleITK as sitk

from conftest import blob_scan
from tiny_model import stage_graph
from InnerEarSegmentationLib.errors import Cancelled, InnerEarError, InputError, ModelError
from InnerEarSegmentationLib.model import load_model, save_manifest
from InnerEarSegmentationLib.labels import Label
from InnerEarSegmentationLib.pipeline import (EAR_AXIS_SHARE, SegmentationSettings, Segmenter, _other_ear, _relabel,
                                             segment_volumes)
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


def test_segmenting_a_file_reads_it_reports_progress_and_names_it(tiny_model, tmp_path):
    """segment_file (the command line's path): the caller's progress bar moves, the report names
    the file and times the read, and a bad file's refusal names it."""
    path = tmp_path / "ear.nrrd"
    sitk.WriteImage(blob_scan(), str(path))
    segmenter = Segmenter(load_model(tiny_model), SegmentationSettings(batch_size=8))
    seen = []
    clock = time.perf_counter()
    result = segmenter.segment_file(path, Progress(lambda fraction, message: seen.append(fraction)))
    wall = time.perf_counter() - clock
    assert len(seen) > 10 and seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    assert result.report["input"]["source"] == str(path)
    timings = result.report["timings_s"]
    assert 0.0 <= timings["read"] <= wall and "resample_back" in timings and "measure" in timings
    assert all(0.0 <= seconds for seconds in timings.values()) and sum(timings.values()) <= wall, (timings, wall)
    assert any(seconds != round(seconds) for seconds in timings.values())  # milliseconds, not whole seconds
    assert result.report["provider_note"] == segmenter.provider_note
    assert dice(sitk.GetArrayFromImage(result.labelmap) > 0, fluid_truth()) > 0.9
    assert segmenter.segment_file(path).report["input"]["source"] == str(path)  # no progress given
    assert segmenter.segment(blob_scan()).report["input"]["source"] == ""  # an image without a file
    flat = tmp_path / "flat.nrrd"
    sitk.WriteImage(sitk.Image([40, 36, 30], sitk.sitkInt16), str(flat))
    with pytest.raises(InputError, match="is constant") as raised:
        segmenter.segment_file(flat)
    assert str(flat) in str(raised.value)


def test_a_located_model_refuses_a_file_without_an_ear_and_names_the_file(tmp_path):
    """With a locator the refusal comes from the search for the labyrinth: here the locator takes a
    ball of decoy tissue for labyrinth and the first stage finds none in the box round it."""
    from conftest import BONE_HU
    from tiny_model import DECOY_HU, build_located_model

    model = load_model(build_located_model(tmp_path / "located", 20.0, 80))
    array = np.full((60, 60, 60), BONE_HU, dtype=np.int16)
    z, y, x = np.mgrid[:60, :60, :60]
    array[(z - 35) ** 2 + (y - 30) ** 2 + (x - 30) ** 2 < 8 ** 2] = DECOY_HU
    scan = sitk.GetImageFromArray(array)
    scan.SetSpacing([0.5] * 3)
    path = tmp_path / "bone.nrrd"
    sitk.WriteImage(scan, str(path))
    with pytest.raises(InputError, match=f"No inner ear was found in {re.escape(str(path))}"):
        Segmenter(model, SegmentationSettings(measure=False)).segment_file(path)


def test_asking_for_a_side_when_the_side_cannot_be_read_is_refused_with_that_reason(tiny_model):
    """The tiny model labels all fluid "cochlea", so no side can be read from its labels."""
    segmenter = Segmenter(load_model(tiny_model), SegmentationSettings(side="left", measure=False))
    with pytest.raises(InputError, match=r"No left inner ear was found in blob\.nrrd \(found: side not determined\)"):
        segmenter.segment(blob_scan(), source="blob.nrrd")


@pytest.mark.parametrize("offset, other", [
    ((40.0, 0.0, 0.0), True),                 # exactly the least separation
    ((-39.9, 0.0, 0.0), False),
    ((35.0, 35.0 * np.sqrt(51) / 7, 0.0), True),  # exactly 0.7 of the distance along x
    ((30.0, 50.0, 0.0), False),               # far, but mostly front-back: not the other ear
    ((-50.0, 0.0, 45.0), True),
])
def test_the_other_ear_lies_far_off_and_mostly_along_the_left_right_axis(offset, other):
    offset = np.array(offset)
    if other and offset[1]:
        assert abs(offset[0]) == EAR_AXIS_SHARE * float(np.linalg.norm(offset))  # the boundary itself
    assert _other_ear(offset) is other


def test_relabelling_reaches_every_slice_of_a_labelmap_of_any_shape():
    """One side of two ears: the kept ear's values are mapped slab by slab over the whole labelmap."""
    array = np.zeros((70, 5, 6), np.uint8)
    array[0, 0, 0], array[35, 2, 3], array[69, 4, 5], array[69, 0, 0] = 4, 5, 6, 1
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.5, 0.6, 0.7))
    lookup = np.zeros(256, np.uint8)
    lookup[[4, 5, 6]] = [1, 2, 3]
    out = _relabel(image, lookup)
    expected = np.zeros_like(array)
    expected[0, 0, 0], expected[35, 2, 3], expected[69, 4, 5] = 1, 2, 3
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), expected)
    assert out.GetSpacing() == image.GetSpacing()


def test_one_side_of_two_ears_keeps_that_ears_probability_and_label_values(tmp_path):
    """The left ear of a scan of both (its labels 4-6 become 1-3): the probability map keeps the
    left ear's voxels, the right ear's are cleared, and the report lists the values it now has."""
    from tiny_model import build_located_model

    model = load_model(build_located_model(tmp_path / "two-ears", 20.0, 80, locator_grid=64))
    scan = two_ear_scan()
    settings = SegmentationSettings(measure=False, keep_probability=True, batch_size=16, side="left")
    clock = time.perf_counter()
    result = Segmenter(model, settings).segment(scan)
    assert 0.0 < result.report["timings_s"]["locate"] <= time.perf_counter() - clock
    labels = sitk.GetArrayFromImage(result.labelmap)
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    assert not labels[:, :, :EAR_BLOCK + BONE_GAP].any()  # all of it in the left ear's block (high x)
    probability = sitk.GetArrayFromImage(result.foreground_probability)
    assert (probability[labels == 0] == 0).all()
    assert (probability[labels > 0] >= 0.5).all()
    assert [ear["label_values"] for ear in result.report["ears"]] == [[1, 2, 3]]
    assert result.report["laterality"]["side"] == "left"


def test_a_model_whose_labels_name_no_ear_structures_segments_without_a_side(tiny_model, tmp_path):
    """The side is read from the cochlea, vestibule and canals; a model labelling other things
    still segments, and says no side."""
    folder = tmp_path / "other-labels"
    shutil.copytree(tiny_model, folder)
    data = json.loads((folder / "manifest.json").read_text())
    for label, name in zip(data["labels"], ("Fluid", "Other", "More")):
        label["name"] = name
    save_manifest(folder, data)
    result = Segmenter(load_model(folder)).segment(blob_scan())
    assert result.report["ears"][0]["side"] is None and "laterality" not in result.report
    assert [label.name for label in result.labels] == ["Fluid", "Other", "More"]
    assert dice(sitk.GetArrayFromImage(result.labelmap) > 0, fluid_truth()) > 0.9


def test_without_a_model_the_segmenter_takes_the_shipped_one():
    from InnerEarSegmentationLib.model import default_model_folder

    assert Segmenter().model.folder == default_model_folder()


def test_segment_volumes_count_every_slab_and_round_to_a_thousandth():
    """Counted slab by slab (16 M voxels each): a labelmap of three 8.2 M-voxel slices takes three."""
    labels = tuple(Label(value, name, (1.0, 1.0, 1.0)) for value, name in ((1, "A"), (2, "B")))
    small = np.zeros((4, 5, 6), np.uint8)
    small[0, 0, :3] = 1                       # in the first slice
    small[3, 4, 5] = 2
    image = sitk.GetImageFromArray(small)
    image.SetSpacing((0.3, 0.3, 0.35))        # 0.0315 mm³ a voxel
    assert segment_volumes(image, labels) == [
        {"value": 1, "name": "A", "voxels": 3, "volume_mm3": round(3 * 0.0315, 3)},
        {"value": 2, "name": "B", "voxels": 1, "volume_mm3": 0.032}]
    large = np.zeros((3, 2000, 4100), np.uint8)
    large[0, 0, 0] = large[1, 5, 5] = large[2, 9, 9] = 1
    counts = segment_volumes(sitk.GetImageFromArray(large), labels)
    assert [segment["voxels"] for segment in counts] == [3, 0]


EAR_BLOCK, BONE_GAP = 64, 160  # voxels along x: the right ear's block, 40 mm of bone, the left ear's


def two_ear_scan() -> sitk.Image:
    """The structure labyrinth (a left ear) at the patient's left and its mirror image, a right
    ear, at the right, 40 mm of bone apart (as test_locate's two-ear scan)."""
    from conftest import BONE_HU, structure_scan

    left, _ = structure_scan()
    array = sitk.GetArrayFromImage(left)
    bone = np.full(array.shape[:2] + (BONE_GAP,), BONE_HU, dtype=array.dtype)
    image = sitk.GetImageFromArray(np.concatenate([array[:, :, ::-1], bone, array], axis=2))
    image.SetSpacing(left.GetSpacing())
    image.SetOrigin((-50.0, 5.0, 30.0))
    return image
