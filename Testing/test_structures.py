"""Each structure through the whole pipeline (issue 15).

A real ONNX cascade with one intensity band per structure (tiny_model.build_structure_model) reads
a phantom labyrinth with a planted speck of vestibule inside the cochlea and a planted distractor
ball apart from it (conftest.structure_scan). Labels are scored per structure on the scan's own
grid, through the Python API, the command line and the Slicer path (segment_volume_node).
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import BONE_HU, planted_regions, structure_scan
from InnerEarSegmentationLib.cli import main
from InnerEarSegmentationLib.errors import InputError
from InnerEarSegmentationLib.metrics import per_label_dice
from InnerEarSegmentationLib.model import load_model
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter

# The planted cochlea lies at lower x (towards the patient's right) than the canals: a left ear.
STRUCTURES = {1: "Left cochlea", 2: "Left vestibule", 3: "Left semicircular canals"}
# Off the model grid in every axis: each label is resampled to the model grid and back.
ANISOTROPIC = {"size": (48, 44, 36), "spacing": (0.35, 0.36, 0.45)}
# What a scan must not be, and the words the refusal uses (scanio.validate_scan, pipeline).
BAD_SCANS = {"nan": "NaN or infinite", "constant": "is constant", "thin": "a single slice or a thin slab",
             "bone": "No inner ear was found"}


@pytest.fixture(scope="module")
def segmenter(structure_model) -> Segmenter:
    return Segmenter(load_model(structure_model), SegmentationSettings(device="cpu"))


def bad_scan(kind: str) -> sitk.Image:
    """A scan that must be refused: a NaN voxel, constant, 4 slices thin, or bone with no labyrinth."""
    image, _ = structure_scan(speck=False, distractor=False)
    if kind == "nan":
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        array[5, 5, 5] = np.nan
    elif kind == "constant":
        array = np.full((64, 64, 64), BONE_HU, dtype=np.int16)
    elif kind == "thin":
        array = sitk.GetArrayFromImage(image)[30:34]
    elif kind == "bone":  # textured bone: not constant, but nothing of fluid density anywhere
        noise = np.random.default_rng(0).normal(0, 60, (64, 64, 64))
        array = (BONE_HU + noise).astype(np.int16)
    else:
        raise ValueError(kind)
    bad = sitk.GetImageFromArray(array)
    bad.SetSpacing(image.GetSpacing())
    bad.SetOrigin(image.GetOrigin())
    return bad


def test_every_structure_is_found_on_an_anisotropic_scans_own_grid(segmenter):
    image, truth = structure_scan(**ANISOTROPIC)
    result = segmenter.segment(image)
    labels = sitk.GetArrayFromImage(result.labelmap)
    assert result.labelmap.GetSize() == image.GetSize()
    assert result.labelmap.GetSpacing() == image.GetSpacing()
    scores = per_label_dice(labels, truth, list(STRUCTURES))
    assert min(scores.values()) > 0.85, scores
    assert not labels[planted_regions(image)["distractor"]].any()
    for segment in result.report["segments"]:
        assert segment["voxels"] == int((labels == segment["value"]).sum()) > 0


def test_a_speck_inside_another_structure_and_a_distractor_are_cleaned_up_exactly(segmenter):
    """On a scan that matches the model grid voxel for voxel the result is the truth itself:
    the vestibule speck in the cochlea is cochlea, the distractor ball is gone."""
    image, truth = structure_scan()
    labels = sitk.GetArrayFromImage(segmenter.segment(image).labelmap)
    planted = planted_regions(image)
    assert planted["speck"].sum() == 64 and (labels[planted["speck"]] == 1).all()
    assert planted["distractor"].sum() > 100 and not labels[planted["distractor"]].any()
    np.testing.assert_array_equal(labels, truth)


@pytest.mark.parametrize("kind", list(BAD_SCANS))
def test_the_segmenter_refuses_a_bad_scan_itself(segmenter, kind):
    """The Slicer path hands volumes straight to Segmenter.segment: it must check them itself."""
    with pytest.raises(InputError, match=BAD_SCANS[kind]) as raised:
        segmenter.segment(bad_scan(kind), source="ear CT")
    assert "ear CT" in str(raised.value)


def test_the_command_line_refuses_a_scan_of_bone_alone(structure_model, tmp_path, capsys):
    scan = tmp_path / "bone.nrrd"
    sitk.WriteImage(bad_scan("bone"), str(scan))
    out = tmp_path / "out"
    code = main([str(scan), "-o", str(out), "--model", str(structure_model), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and f"No inner ear was found in {scan}" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_the_command_line_names_the_side_and_the_seg_file_carries_it(structure_model, tmp_path, capsys):
    image, _ = structure_scan(speck=False, distractor=False)
    scan = tmp_path / "ear.nrrd"
    sitk.WriteImage(image, str(scan))
    assert main([str(scan), "-o", str(tmp_path / "out"), "--model", str(structure_model), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ear.nrrd: left ear (from the scan's patient axes (LPS);" in out
    assert "Left cochlea" in out and "Left semicircular canals" in out
    written = sitk.ReadImage(str(tmp_path / "out" / "ear.seg.nrrd"))
    names = [written.GetMetaData(f"Segment{i}_Name") for i in range(3)]
    assert names == list(STRUCTURES.values())
    assert "SCT^7771000^Left" in written.GetMetaData("Segment0_Tags")


@pytest.fixture
def headless():
    pytest.importorskip("slicer")
    from mrml_scene import make_scene

    return make_scene()


def test_the_slicer_path_gives_each_structure_its_own_exact_segment(headless, structure_model):
    from mrml_scene import segment_mask
    from InnerEarSegmentationLib.mrml_segment import segment_volume_node
    from InnerEarSegmentationLib.mrml_volume import volume_node_from_sitk

    image, truth = structure_scan()
    volume = volume_node_from_sitk(image, headless.scene, "CT")
    node = segment_volume_node(volume, model=structure_model, device="cpu", show3d=False)
    for value, name in STRUCTURES.items():
        np.testing.assert_array_equal(segment_mask(headless, node, name, volume), truth == value, err_msg=name)


@pytest.mark.parametrize("kind", list(BAD_SCANS))
def test_the_slicer_path_refuses_bad_input_and_adds_no_segmentation(headless, structure_model, kind):
    from InnerEarSegmentationLib.mrml_segment import segment_volume_node
    from InnerEarSegmentationLib.mrml_volume import volume_node_from_sitk

    volume = volume_node_from_sitk(bad_scan(kind), headless.scene, "Bad CT")
    with pytest.raises(InputError, match=BAD_SCANS[kind]):
        segment_volume_node(volume, model=structure_model, device="cpu", show3d=False)
    assert headless.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0
