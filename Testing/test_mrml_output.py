"""Headless tests against the real MRML scene (slicer-core): geometry, segments, surfaces, files."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import vtk

slicer = pytest.importorskip("slicer")

from mrml_scene import labelled_image, make_scene, oblique_direction, segment_mask  # noqa: E402

from InnerEarSegmentationLib import terminology  # noqa: E402
from InnerEarSegmentationLib.errors import OutputError  # noqa: E402
from InnerEarSegmentationLib.labels import Label  # noqa: E402
from InnerEarSegmentationLib.mrml_output import (  # noqa: E402
    SURFACE, report_of, segment_terminology, write_result)
from InnerEarSegmentationLib.mrml_volume import (  # noqa: E402
    sitk_from_volume_node, volume_node_from_sitk)

LABELS = (
    Label(1, "Cochlea", (0.9, 0.8, 0.3)),
    Label(2, "Vestibule", (0.3, 0.7, 0.9)),
    Label(3, "Semicircular canals", (0.8, 0.3, 0.4)),
)


@pytest.fixture
def headless():
    return make_scene()


@pytest.fixture
def volume(headless):
    image = labelled_image(direction=oblique_direction())
    return volume_node_from_sitk(image, headless.scene, "CT"), image


def segments_by_name(node) -> dict:
    segmentation = node.GetSegmentation()
    return {segmentation.GetNthSegment(i).GetName(): segmentation.GetNthSegment(i)
            for i in range(segmentation.GetNumberOfSegments())}


def test_volume_geometry_round_trips_through_ijk_to_ras(headless, volume):
    node, image = volume
    back = sitk_from_volume_node(node)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))
    # A voxel's RAS position per Slicer equals the LPS point per SimpleITK with x, y negated.
    index = (5, 7, 3)
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    ras = np.array(matrix.MultiplyPoint((*index, 1.0))[:3])
    lps = np.array(image.TransformIndexToPhysicalPoint(index))
    np.testing.assert_allclose(ras, lps * [-1, -1, 1], atol=1e-9)


def test_segments_are_named_coloured_coded_and_valued(headless, volume):
    node, image = volume
    seg = write_result(headless.scene, node, image, LABELS, report={"provider": "CPU"})
    segments = segments_by_name(seg)
    assert list(segments) == ["Cochlea", "Vestibule", "Semicircular canals"]
    for label in LABELS:
        segment = segments[label.name]
        assert segment.GetLabelValue() == label.value
        np.testing.assert_allclose(segment.GetColor(), label.color)
        assert segment_terminology(segment) == terminology.terminology_entry(label.name)
    assert seg.GetSegmentation().GetNumberOfLayers() == 1
    mask = segment_mask(headless, seg, "Vestibule", node)
    np.testing.assert_array_equal(mask, sitk.GetArrayViewFromImage(image) == 2)
    assert report_of(seg) == {"provider": "CPU"}


def test_closed_surface_is_built_and_not_empty(headless, volume):
    node, image = volume
    seg = write_result(headless.scene, node, image, LABELS, smoothing=0.3, show3d=True)
    for segment_id in ("Cochlea", "Vestibule", "Semicircular_canals"):
        polydata = vtk.vtkPolyData()
        assert seg.GetClosedSurfaceRepresentation(segment_id, polydata)
        assert polydata.GetNumberOfPoints() > 50 and polydata.GetNumberOfPolys() > 50
    assert seg.GetSegmentation().GetConversionParameter("Smoothing factor") == "0.3"


def test_existing_segments_are_refused_unless_replace(headless, volume):
    node, image = volume
    seg = write_result(headless.scene, node, image, LABELS)
    with pytest.raises(OutputError, match="already has 3 segment"):
        write_result(headless.scene, node, image, LABELS, segmentation_node=seg)
    smaller = LABELS[:2]
    write_result(headless.scene, node, image, smaller, segmentation_node=seg, replace=True, show3d=False)
    assert list(segments_by_name(seg)) == ["Cochlea", "Vestibule"]
    assert not seg.GetSegmentation().ContainsRepresentation("Closed surface")


def test_placed_in_the_inputs_study_and_transform(headless, volume):
    node, image = volume
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(headless.scene)
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "Patient")
    study = hierarchy.CreateStudyItem(patient, "Temporal bone CT")
    hierarchy.CreateItem(study, node)
    transform = headless.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    node.SetAndObserveTransformNodeID(transform.GetID())
    seg = write_result(headless.scene, node, image, LABELS, show3d=False)
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(seg)) == study
    assert seg.GetTransformNodeID() == transform.GetID()


def test_seg_nrrd_reloads_with_names_values_and_codes(headless, volume, tmp_path):
    node, image = volume
    seg = write_result(headless.scene, node, image, LABELS, show3d=False)
    storage = headless.scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(tmp_path / "ear.seg.nrrd"))
    assert storage.WriteData(seg)

    fresh = make_scene()
    loaded = fresh.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    reader = fresh.scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    reader.SetFileName(str(tmp_path / "ear.seg.nrrd"))
    assert reader.ReadData(loaded)
    segments = segments_by_name(loaded)
    assert list(segments) == [label.name for label in LABELS]
    for label in LABELS:
        assert segments[label.name].GetLabelValue() == label.value
        assert segment_terminology(segments[label.name]) == terminology.terminology_entry(label.name)
    # The voxels come back where they were, on the oblique grid.
    volume_again = volume_node_from_sitk(image, fresh.scene, "CT")
    for label in LABELS:
        mask = segment_mask(fresh, loaded, label.name, volume_again)
        np.testing.assert_array_equal(mask, sitk.GetArrayViewFromImage(image) == label.value)


def test_surfaces_export_to_stl_and_obj(headless, volume, tmp_path):
    from InnerEarSegmentationLib.mrml_output import export_surfaces

    node, image = volume
    seg = write_result(headless.scene, node, image, LABELS, show3d=False)
    stl = export_surfaces(seg, tmp_path / "stl", "STL")
    assert len(stl) == 3 and all(f.suffix == ".stl" and f.stat().st_size > 1000 for f in stl)
    # OBJ keeps all segments in one file, one group (and colour) per segment.
    obj = [f for f in export_surfaces(seg, tmp_path / "obj", "obj") if f.suffix == ".obj"]
    assert len(obj) == 1 and obj[0].read_text().count("\ng grp") == 3
    with pytest.raises(OutputError):
        export_surfaces(seg, tmp_path, "PLY")


def test_exporting_again_over_earlier_files_lists_them(headless, volume, tmp_path):
    """The panel says how many files it wrote: overwriting the last export used to count 0."""
    from InnerEarSegmentationLib.mrml_output import export_surfaces

    node, image = volume
    segmentation = write_result(headless.scene, node, image, LABELS, show3d=False)
    first = export_surfaces(segmentation, tmp_path, "STL")
    again = export_surfaces(segmentation, tmp_path, "STL")
    assert len(first) == 3 and again == first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in first)  # no staging left


def test_the_segmentation_takes_the_volumes_grid_as_its_reference_geometry(headless, volume):
    """Editing in Slicer (Segment Editor) works on the reference grid: it must be the scan's own
    oblique grid, voxel for voxel. (The volume has no parent transform.)"""
    node, image = volume
    seg = write_result(headless.scene, node, image, LABELS, show3d=False)
    text = seg.GetSegmentation().GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    reference = slicer.vtkOrientedImageData()
    assert text and slicer.vtkSegmentationConverter.DeserializeImageGeometry(text, reference)
    size = image.GetSize()
    assert tuple(reference.GetExtent()) == (0, size[0] - 1, 0, size[1] - 1, 0, size[2] - 1)
    matrix, expected = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    reference.GetImageToWorldMatrix(matrix)
    node.GetIJKToRASMatrix(expected)
    np.testing.assert_allclose([[matrix.GetElement(i, j) for j in range(4)] for i in range(4)],
                               [[expected.GetElement(i, j) for j in range(4)] for i in range(4)], atol=1e-6)


@pytest.mark.parametrize("show3d", [True, False])
def test_3d_display_follows_the_setting(headless, volume, show3d):
    node, image = volume
    seg = write_result(headless.scene, node, image, LABELS, smoothing=0.2, show3d=show3d)
    display = seg.GetDisplayNode()
    assert display is not None and display.GetVisibility() and display.GetVisibility2D()
    assert bool(display.GetVisibility3D()) is show3d
    assert seg.GetSegmentation().ContainsRepresentation(SURFACE) is show3d


def test_surfaces_are_exported_in_lps_millimetres_into_any_folder(headless, volume, tmp_path):
    """Into a nested new folder and again into the same, existing one; each STL lies where its
    voxels lie in LPS (x and y of RAS have the opposite sign; a scale would move the bounds)."""
    from InnerEarSegmentationLib.mrml_output import export_surfaces

    node, image = volume
    seg = write_result(headless.scene, node, image, LABELS, show3d=False)
    folder = tmp_path / "nested" / "surfaces"
    first = export_surfaces(seg, folder, "stl")
    assert export_surfaces(seg, folder) == first and sorted(folder.iterdir()) == first  # STL by default
    labels = sitk.GetArrayViewFromImage(image)
    for label in LABELS:
        reader = vtk.vtkSTLReader()
        reader.SetFileName(str(next(f for f in first if label.name in f.name)))
        reader.Update()
        bounds = np.array(reader.GetOutput().GetBounds()).reshape(3, 2)
        centres = np.array([image.TransformIndexToPhysicalPoint([int(i) for i in index[::-1]])
                            for index in np.argwhere(labels == label.value)])
        np.testing.assert_allclose(bounds[:, 0], centres.min(axis=0), atol=0.6)
        np.testing.assert_allclose(bounds[:, 1], centres.max(axis=0), atol=0.6)


def test_report_of_a_node_without_a_report_is_none(headless, volume):
    node, image = volume
    assert report_of(None) is None
    assert report_of(write_result(headless.scene, node, image, LABELS, show3d=False)) is None


def test_a_new_segmentation_is_named_after_its_volume_and_its_names_and_colours_are_fixed(headless, volume):
    """Slicer renames and recolours segments whose name or colour is flagged auto-generated (when
    their terminology changes): the model's names and colours are not."""
    node, image = volume
    seg = write_result(headless.scene, node, image, LABELS, report={"settings": {"threads": 0}})
    assert seg.GetName() == "CT inner ear"
    for segment in segments_by_name(seg).values():
        assert not segment.GetNameAutoGenerated() and not segment.GetColorAutoGenerated()
