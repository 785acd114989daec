"""Result files: Slicer reads our .seg.nrrd, surfaces are closed and in place, nothing half-written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import vtk

from conftest import blob_scan
from InnerEarSegmentationLib.errors import OutputError
from InnerEarSegmentationLib.labels import Label
from InnerEarSegmentationLib.model import load_model
from InnerEarSegmentationLib.outputs import atomic_target, write_labelmap, write_report, write_segmentation
from InnerEarSegmentationLib.pipeline import Segmenter
from InnerEarSegmentationLib.surface import write_surface
from InnerEarSegmentationLib.terminology import terminology_entry

TERM = terminology_entry("Cochlea")


@pytest.fixture(scope="module")
def result(tiny_model):
    outcome = Segmenter(load_model(tiny_model)).segment(blob_scan(), source="blob")
    labels = list(outcome.labels)
    labels[1] = Label(2, "Vestibule", (0.3, 0.7, 0.9), terminology_entry("Vestibule"))
    array = sitk.GetArrayFromImage(outcome.labelmap)
    array[array > 0] = np.where(np.indices(array.shape)[2][array > 0] < 20, 1, 2)  # two segments
    labelmap = sitk.GetImageFromArray(array)
    labelmap.CopyInformation(outcome.labelmap)
    outcome.labelmap, outcome.labels = labelmap, tuple(labels)
    return outcome


def test_seg_nrrd_reloads_in_slicer_with_names_colours_values_and_terminology(result, tmp_path):
    slicer = pytest.importorskip("slicer")
    path = write_segmentation(result.labelmap, result.labels, tmp_path / "ear.seg.nrrd", result.report)
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 3
    segments = {segmentation.GetNthSegment(i).GetName(): segmentation.GetNthSegment(i) for i in range(3)}
    assert list(segments) == ["Cochlea", "Vestibule", "Semicircular canals"]
    assert segments["Vestibule"].GetColor() == pytest.approx((0.3, 0.7, 0.9))
    assert segments["Cochlea"].GetLabelValue() == 1
    tag = vtk.reference("")
    assert segments["Cochlea"].GetTag("TerminologyEntry", tag) and str(tag) == TERM
    loaded = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert np.array_equal(loaded, sitk.GetArrayFromImage(result.labelmap))


def test_every_file_records_model_and_settings(result, tmp_path):
    labelmap = sitk.ReadImage(str(write_labelmap(result.labelmap, tmp_path / "l.nrrd", result.report)))
    assert labelmap.GetMetaData("InnerEarSegmentation_Model") == "tiny-test-model 0.0.1"
    assert json.loads(labelmap.GetMetaData("InnerEarSegmentation_Settings"))["device"] == "auto"
    stl = write_surface(result.labelmap, result.labels, tmp_path / "s.stl", result.report)
    assert b"tiny-test-model 0.0.1" in stl.read_bytes()[:80]
    obj = write_surface(result.labelmap, result.labels, tmp_path / "s.obj", result.report)
    assert "tiny-test-model 0.0.1" in obj.read_text().splitlines()[0]


def test_stl_is_a_closed_surface_in_physical_space(result, tmp_path):
    path = write_surface(result.labelmap, result.labels, tmp_path / "ear.stl", result.report, smoothing=0.3)
    reader = vtk.vtkSTLReader()
    reader.SetFileName(str(path))
    reader.Update()
    mesh = reader.GetOutput()
    edges = vtk.vtkFeatureEdges()
    edges.SetInputData(mesh)
    edges.BoundaryEdgesOn()
    edges.NonManifoldEdgesOff()
    edges.FeatureEdgesOff()
    edges.ManifoldEdgesOff()
    edges.Update()
    assert edges.GetOutput().GetNumberOfCells() == 0, "the mesh has holes"
    mass = vtk.vtkMassProperties()
    mass.SetInputData(mesh)
    mass.Update()
    voxels = (sitk.GetArrayFromImage(result.labelmap) > 0).sum() * np.prod(result.labelmap.GetSpacing())
    assert mass.GetVolume() == pytest.approx(voxels, rel=0.1)
    centre = np.array(mesh.GetCenter())
    expected = np.array(result.labelmap.TransformIndexToPhysicalPoint((20, 18, 15)))
    assert np.linalg.norm(centre - expected) < 0.5


def test_obj_has_one_object_per_non_empty_segment(result, tmp_path):
    text = write_surface(result.labelmap, result.labels, tmp_path / "ear.obj", result.report).read_text()
    assert [line for line in text.splitlines() if line.startswith("o ")] == ["o Cochlea", "o Vestibule"]


def test_existing_file_is_never_overwritten_unless_asked(result, tmp_path):
    path = tmp_path / "report.json"
    path.write_text("precious")
    with pytest.raises(OutputError, match="already exists"):
        write_report(result.report, path)
    assert path.read_text() == "precious"
    write_report(result.report, path, overwrite=True)
    assert json.loads(path.read_text())["model"]["id"] == "tiny-test-model"


def test_failed_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.seg.nrrd"
    with pytest.raises(OutputError, match="nothing was left behind"):
        with atomic_target(target, overwrite=False) as temporary:
            temporary.write_bytes(b"half a file")
            raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_named(result, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(OutputError, match="Cannot write into"):
        write_report(result.report, blocker / "report.json")


def test_surface_needs_a_mesh_format(result, tmp_path):
    with pytest.raises(OutputError, match=".stl or .obj"):
        write_surface(result.labelmap, result.labels, tmp_path / "ear.ply", result.report)
