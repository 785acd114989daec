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
from InnerEarSegmentationLib.progress import Progress

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


GAP_MM = 40.0  # bone between the two labyrinths' blocks: ears far apart, as in a head


@pytest.fixture(scope="module")
def two_ear_model(tmp_path_factory):
    """The located model with a finer locator grid: a 72 mm field at 1.1 mm per voxel."""
    return build_located_model(tmp_path_factory.mktemp("models") / "two-ears", ROI_MM, GRID, locator_grid=64)


def _two_ear_scan() -> tuple[sitk.Image, np.ndarray]:
    """The structure labyrinth (a left ear: its cochlea lies at lower x than its canals) at the
    patient's left (high LPS x) and its mirror image, a right ear, at the right; the truth holds
    the right ear's labels as 1-3 and the left's as 4-6."""
    left, left_truth = structure_scan()
    left_array = sitk.GetArrayFromImage(left)
    gap = int(round(GAP_MM / left.GetSpacing()[0]))
    bone = np.full(left_array.shape[:2] + (gap,), BONE_HU, dtype=left_array.dtype)
    array = np.concatenate([left_array[:, :, ::-1], bone, left_array], axis=2)
    truth = np.concatenate([left_truth[:, :, ::-1], np.zeros(bone.shape, np.uint8),
                            np.where(left_truth > 0, left_truth + 3, 0).astype(np.uint8)], axis=2)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(left.GetSpacing())
    image.SetOrigin((-50.0, 5.0, 30.0))
    return image, truth


def test_both_ears_are_segmented_named_by_side_right_first(two_ear_model):
    scan, truth = _two_ear_scan()
    fractions = []
    result = Segmenter(load_model(two_ear_model), SegmentationSettings(measure=False)).segment(
        scan, Progress(lambda fraction, message: fractions.append(fraction)))
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # one bar through both ears
    names = {label.value: label.name for label in result.labels}
    assert names == {1: "Right cochlea", 2: "Right vestibule", 3: "Right semicircular canals",
                     4: "Left cochlea", 5: "Left vestibule", 6: "Left semicircular canals"}
    labels = sitk.GetArrayFromImage(result.labelmap)
    scores = [_dice(labels == value, truth == value) for value in range(1, 7)]
    assert min(scores) > 0.75, scores
    ears = result.report["ears"]
    assert [ear["side"] for ear in ears] == ["right", "left"]
    assert [ear["label_values"] for ear in ears] == [[1, 2, 3], [4, 5, 6]]
    assert all("located" in ear and "laterality" in ear for ear in ears)
    assert "laterality" not in result.report  # two ears: only per ear
    centres = [ear["located"]["box_centre_mm"][0] for ear in ears]
    assert centres[0] < centres[1] - GAP_MM  # each box on its own ear
    volumes = {segment["name"]: segment["voxels"] for segment in result.report["segments"]}
    assert volumes["Right cochlea"] == int((labels == 1).sum()) > 0
    assert volumes["Left cochlea"] == int((labels == 4).sum())


def test_each_ear_is_measured_on_its_own_labels(two_ear_model):
    """The right ear's cochlea is filled with bone, so the two ears' measurements must differ:
    each ear's section has to come from its own label values (1-3 and 4-6), not the other's."""
    scan, truth = _two_ear_scan()
    voxels = sitk.GetArrayFromImage(scan)
    voxels[truth == 1] = BONE_HU
    filled = sitk.GetImageFromArray(voxels)
    filled.CopyInformation(scan)
    ears = Segmenter(load_model(two_ear_model), SegmentationSettings()).segment(filled).report["ears"]
    statuses = {ear["side"]: ear["measurements"]["cochlea"]["status"] for ear in ears}
    assert "too small" in statuses["right"], statuses
    assert "ring instead of a spiral" in statuses["left"], statuses  # the intact (ball) cochlea


@pytest.mark.parametrize("side, values", [("right", (1, 2, 3)), ("left", (4, 5, 6))])
def test_one_side_keeps_that_ear_with_the_models_own_label_values(two_ear_model, side, values):
    scan, truth = _two_ear_scan()
    result = Segmenter(load_model(two_ear_model), SegmentationSettings(measure=False, side=side)).segment(scan)
    assert [label.name for label in result.labels] == [
        f"{side.capitalize()} {name}" for name in ("cochlea", "vestibule", "semicircular canals")]
    assert [label.value for label in result.labels] == [1, 2, 3]
    labels = sitk.GetArrayFromImage(result.labelmap)
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    for value, expected in zip((1, 2, 3), values):
        assert _dice(labels == value, truth == expected) > 0.75
    assert result.report["laterality"]["side"] == side and len(result.report["ears"]) == 1


def test_asking_for_a_side_the_scan_does_not_show_is_refused(located_model):
    scan, _ = _wide_scan()  # the structure labyrinth alone: a left ear
    with pytest.raises(InputError, match="No right inner ear was found.*found: left"):
        Segmenter(load_model(located_model), SegmentationSettings(measure=False, side="right")).segment(scan)


def test_the_command_line_gives_a_line_per_ear_and_segments_one_side_when_asked(two_ear_model, tmp_path, capsys):
    from InnerEarSegmentationLib.cli import main

    scan, _ = _two_ear_scan()
    path = tmp_path / "head.nrrd"
    sitk.WriteImage(scan, str(path))
    assert main([str(path), "-o", str(tmp_path / "both"), "--model", str(two_ear_model), "--quiet",
                 "--no-measure"]) == 0
    out = capsys.readouterr().out
    assert "head.nrrd: right ear (from the" in out and "head.nrrd: left ear (from the" in out
    assert "Right cochlea" in out and "Left semicircular canals" in out
    assert main([str(path), "-o", str(tmp_path / "left"), "--model", str(two_ear_model), "--quiet",
                 "--no-measure", "--side", "left"]) == 0
    out = capsys.readouterr().out
    assert "Left cochlea" in out and "Right cochlea" not in out and "right ear" not in out


def test_the_slicer_path_child_process_passes_the_side_on(two_ear_model):
    from InnerEarSegmentationLib.subprocess_run import SegmentationProcess

    scan, truth = _two_ear_scan()
    job = SegmentationProcess(scan, str(two_ear_model), "cpu", side="left").start()
    try:
        result = job.wait()
    finally:
        job.close()
    assert [label.name for label in result.labels][0] == "Left cochlea"
    labels = sitk.GetArrayFromImage(result.labelmap)
    assert _dice(labels == 1, truth == 4) > 0.75 and result.report["settings"]["side"] == "left"


def test_a_new_locator_replaces_the_old_one_and_the_model_stays_checked(located_model, tmp_path):
    import sys
    from pathlib import Path

    pytest.importorskip("torch")  # the training tools (5.8's Python stack runs without them)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Training"))
    from innerear_training.new_locator import replace_locator
    from tiny_model import build_structure_model

    model = tmp_path / "model"
    shutil.copytree(located_model, model)
    source = build_structure_model(tmp_path / "whole-field")  # its stage 1 becomes the locator
    replace_locator(model, source, "9.9.9", "a locator trained on heads", threshold=0.8)
    loaded = load_model(model)
    assert loaded.locator.threshold == 0.8
    assert loaded.version == "9.9.9" and loaded.raw["release_notes"]["9.9.9"] == "a locator trained on heads"
    assert loaded.raw["locator"]["from"] == f"{load_model(source).name} stage1"
    assert (model / "locator.onnx").read_bytes() == (source / "stage1.onnx").read_bytes()
    assert loaded.raw["locator"]["grid_size"] == load_model(source).grid_size


@pytest.mark.parametrize("offset, mass, kept", [
    ((70.0, 5.0, -8.0), 60.0, 2),   # across the head: the other ear
    ((45.0, 30.0, 0.0), 60.0, 2),   # a tilted head
    ((0.0, 45.0, 10.0), 60.0, 1),   # as far, but in front of it: not an ear of the other side
    ((25.0, 0.0, 0.0), 60.0, 1),    # too near: the same temporal bone
    ((70.0, 0.0, 0.0), 20.0, 1),    # too little labyrinth in its box
])
def test_a_second_ear_must_lie_across_the_head_and_hold_a_share_of_the_labyrinth(offset, mass, kept):
    from InnerEarSegmentationLib.locate import Probe
    from InnerEarSegmentationLib.pipeline import _distinct_ears

    first = Probe(None, None, 100.0, np.zeros(3))
    second = Probe(None, None, mass, np.array(offset))
    chosen = _distinct_ears([(second, 0), (first, 1)])
    assert len(chosen) == kept and chosen[0][1] == 1  # the larger labyrinth first


def test_in_a_scan_of_both_ears_each_is_sided_by_its_place_in_the_head(two_ear_model):
    """Two copies of one (left) labyrinth, unmirrored: inside each, the cochlea lies on the same
    side of the canals, but the ear at the patient's right is the right ear."""
    left, _ = structure_scan()
    array = sitk.GetArrayFromImage(left)
    gap = np.full(array.shape[:2] + (int(round(GAP_MM / left.GetSpacing()[0])),), BONE_HU, dtype=array.dtype)
    scan = sitk.GetImageFromArray(np.concatenate([array, gap, array], axis=2))
    scan.SetSpacing(left.GetSpacing())
    scan.SetOrigin((-50.0, 5.0, 30.0))
    result = Segmenter(load_model(two_ear_model), SegmentationSettings(measure=False)).segment(scan)
    assert [label.name for label in result.labels][::3] == ["Right cochlea", "Left cochlea"]
    right = result.report["ears"][0]["laterality"]
    assert right["side"] == "right" and "place in the head" in right["from"]


def test_a_find_smaller_than_a_third_of_a_cochlea_is_no_inner_ear(located_model):
    """A 3 mm fleck of fluid in bone (14 mm³, as the first stage finds in a labyrinth filled with
    bone) is refused; the whole structure labyrinth (about 150 mm³) is not."""
    from tiny_model import STRUCTURE_HU

    array = np.full((100, 100, 100), BONE_HU, dtype=np.int16)
    z, y, x = np.mgrid[:100, :100, :100]
    array[(z - 50) ** 2 + (y - 50) ** 2 + (x - 50) ** 2 < 6 ** 2] = STRUCTURE_HU[1]  # 1.5 mm radius
    array[:5] = AIR_HU
    scan = sitk.GetImageFromArray(array)
    scan.SetSpacing([0.25] * 3)
    with pytest.raises(InputError, match="No inner ear was found"):
        Segmenter(load_model(located_model), SegmentationSettings(measure=False)).segment(scan)


def test_only_the_heaviest_find_keeps_its_arrays_while_the_others_are_checked():
    """A head's other boxes would each hold ~40 MB of its peak memory; what choosing needs stays."""
    from InnerEarSegmentationLib.locate import Probe
    from InnerEarSegmentationLib.pipeline import _heaviest_kept_whole

    arrays = np.zeros((2, 2, 2), np.float16)
    looks = [(Probe(object(), arrays, mass, np.full(3, mass)), index) for index, mass in enumerate((5.0, 9.0, 7.0))]
    kept = _heaviest_kept_whole(looks)
    assert [look.probabilities is not None for look, _ in kept] == [False, True, False]
    assert [(look.mass, list(look.found_mm), index) for look, index in kept] == \
        [(mass, [mass] * 3, index) for index, mass in enumerate((5.0, 9.0, 7.0))]


def test_on_a_cpu_the_networks_take_small_batches_and_the_report_says_how_many(two_ear_model):
    """A batch of 2 is as fast on a CPU and keeps a head's peak memory down; the labels do not
    depend on it (each slice is its own input)."""
    from InnerEarSegmentationLib.pipeline import CPU_BATCH_SIZE

    scan, _ = _two_ear_scan()
    small = Segmenter(load_model(two_ear_model), SegmentationSettings(measure=False, device="cpu"))
    large = Segmenter(load_model(two_ear_model), SegmentationSettings(measure=False, device="cpu", batch_size=16))
    first, second = small.segment(scan), large.segment(scan)
    assert small.batch_size == CPU_BATCH_SIZE == first.report["settings"]["batch_size"] == 2
    assert second.report["settings"]["batch_size"] == 16
    np.testing.assert_array_equal(sitk.GetArrayFromImage(first.labelmap), sitk.GetArrayFromImage(second.labelmap))
