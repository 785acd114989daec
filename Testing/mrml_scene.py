"""A real MRML scene without the Slicer GUI (slicer-core), set up the way Slicer sets it up.

The segmentation converters register only once a vtkSlicerSegmentationsModuleLogic has the scene,
and label-volume helpers need the application logic alive, so both stay referenced here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk


@dataclass
class HeadlessScene:
    scene: Any
    application_logic: Any
    segmentations_logic: Any
    hierarchy_logic: Any


def make_scene() -> HeadlessScene:
    import slicer

    scene = slicer.vtkMRMLScene()
    application_logic = slicer.vtkSlicerApplicationLogic()
    application_logic.SetMRMLScene(scene)
    segmentations_logic = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations_logic.SetMRMLApplicationLogic(application_logic)
    segmentations_logic.SetMRMLScene(scene)
    hierarchy_logic = slicer.vtkSlicerSubjectHierarchyModuleLogic()
    hierarchy_logic.SetMRMLScene(scene)
    slicer.mrmlScene = scene  # slicer.util helpers look for the scene here, as inside Slicer
    return HeadlessScene(scene, application_logic, segmentations_logic, hierarchy_logic)


def oblique_direction(angle_deg: float = 25.0) -> tuple[float, ...]:
    """A rotation about an oblique axis (not a coordinate axis), as a row-major 3x3."""
    axis = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    angle = np.radians(angle_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    return tuple(rotation.ravel())


def labelled_image(size=(24, 20, 16), spacing=(0.3, 0.35, 0.5), direction=None) -> sitk.Image:
    """Three labelled boxes (values 1, 2, 3) on an anisotropic, optionally oblique grid."""
    array = np.zeros(size[::-1], dtype=np.uint8)
    array[3:8, 3:9, 3:10] = 1
    array[8:13, 10:16, 8:14] = 2
    array[2:6, 12:18, 14:21] = 3
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((12.5, -30.25, 41.0))
    if direction is not None:
        image.SetDirection(direction)
    return image


def segment_mask(headless: HeadlessScene, segmentation_node, name: str, reference_volume) -> np.ndarray:
    """A segment's voxels resampled onto the reference volume's grid, as a [k, j, i] bool array."""
    import vtk
    from vtk.util import numpy_support

    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(name))
    labelmap = headless.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    try:
        assert headless.segmentations_logic.ExportSegmentsToLabelmapNode(
            segmentation_node, ids, labelmap, reference_volume)
        data = labelmap.GetImageData()
        return numpy_support.vtk_to_numpy(data.GetPointData().GetScalars()).reshape(
            data.GetDimensions()[::-1]) > 0
    finally:
        headless.scene.RemoveNode(labelmap)

