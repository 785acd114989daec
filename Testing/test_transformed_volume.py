"""A scan under a parent transform (registered or moved): the segmentation's grid is the scan's.

Real MRML (slicer-core). The old ``write_result`` set the reference geometry before it gave the
segmentation the volume's transform, so Slicer folded the transform into the geometry and the
transform was applied twice: a 50 mm shift put the Segment Editor's grid 50 mm off.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import vtk

slicer = pytest.importorskip("slicer")

from mrml_scene import labelled_image, make_scene, segment_mask  # noqa: E402

from InnerEarSegmentationLib.labels import Label  # noqa: E402
from InnerEarSegmentationLib.mrml_output import write_result  # noqa: E402
from InnerEarSegmentationLib.mrml_volume import volume_node_from_sitk  # noqa: E402

LABELS = (Label(1, "Cochlea", (0.9, 0.8, 0.3)), Label(2, "Vestibule", (0.3, 0.7, 0.9)),
          Label(3, "Semicircular canals", (0.8, 0.3, 0.4)))
SHIFT_MM = 50.0


def reference_geometry(segmentation_node) -> slicer.vtkOrientedImageData:
    name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    text = segmentation_node.GetSegmentation().GetConversionParameter(name)
    geometry = slicer.vtkOrientedImageData()
    assert slicer.vtkSegmentationConverter.DeserializeImageGeometry(text, geometry)
    return geometry


def test_a_shifted_volume_gets_its_own_grid_under_its_own_transform():
    headless = make_scene()
    image = labelled_image()
    volume = volume_node_from_sitk(image, headless.scene, "CT")
    transform = headless.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = vtk.vtkMatrix4x4()
    shift.SetElement(0, 3, SHIFT_MM)
    transform.SetMatrixTransformToParent(shift)
    volume.SetAndObserveTransformNodeID(transform.GetID())

    segmentation = write_result(headless.scene, volume, image, LABELS, show3d=False)

    assert segmentation.GetTransformNodeID() == transform.GetID()
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(ijk_to_ras)
    origin = reference_geometry(segmentation).GetOrigin()
    np.testing.assert_allclose(origin, [ijk_to_ras.GetElement(r, 3) for r in range(3)], atol=1e-6)
    # The voxels still sit on the volume's own voxels (both under the same transform).
    for label in LABELS:
        mask = segment_mask(headless, segmentation, label.name, volume)
        np.testing.assert_array_equal(mask, sitk.GetArrayViewFromImage(image) == label.value)
