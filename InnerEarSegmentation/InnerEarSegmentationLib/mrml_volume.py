"""Scalar volume node <-> SimpleITK image, keeping the exact voxel geometry.

Slicer stores a volume as voxels plus an IJK->RAS matrix; SimpleITK uses origin, spacing and a
direction in LPS. Both describe the same affine, so the conversion is exact for oblique and
anisotropic scans. Only vtk and MRML are used, so this runs headless with slicer-core.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

from .errors import InputError

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def _numpy_from_vtk_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _vtk_from_numpy_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def geometry_from_ijk_to_ras(ijk_to_ras: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """(origin, spacing, direction) in LPS, as SimpleITK wants them, from a 4x4 IJK->RAS matrix."""
    linear = RAS_TO_LPS @ ijk_to_ras[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing <= 0):
        raise InputError("The volume has a zero voxel spacing; fix its geometry (Volumes module) first.")
    direction = linear / spacing
    origin = RAS_TO_LPS @ ijk_to_ras[:3, 3]
    return origin.tolist(), spacing.tolist(), direction.ravel().tolist()


def ijk_to_ras_from_image(image: sitk.Image) -> np.ndarray:
    """The 4x4 IJK->RAS matrix of a SimpleITK image's grid."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = RAS_TO_LPS @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = RAS_TO_LPS @ np.array(image.GetOrigin())
    return matrix


def ijk_to_ras_of(volume_node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return _numpy_from_vtk_matrix(matrix)


def sitk_from_volume_node(volume_node) -> sitk.Image:
    """A copy of the node's voxels as a SimpleITK image in the node's own (untransformed) frame.

    A parent transform is not applied: the result is put under the same transform instead.
    """
    image_data = volume_node.GetImageData() if volume_node is not None else None
    if image_data is None or image_data.GetPointData().GetScalars() is None:
        raise InputError("The selected volume has no voxels; load a CT scan first.")
    scalars = image_data.GetPointData().GetScalars()
    if scalars.GetNumberOfComponents() != 1:
        raise InputError(f"The volume {volume_node.GetName()} has {scalars.GetNumberOfComponents()} "
                         "components per voxel; a single-channel CT is needed (convert it with "
                         "the Vector to Scalar Volume module).")
    dims = image_data.GetDimensions()
    array = numpy_support.vtk_to_numpy(scalars).reshape(dims[::-1]).copy()
    image = sitk.GetImageFromArray(array)
    origin, spacing, direction = geometry_from_ijk_to_ras(ijk_to_ras_of(volume_node))
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def image_data_from_array(array: np.ndarray) -> vtk.vtkImageData:
    """A vtkImageData (origin 0, spacing 1) holding a copy of a [k, j, i] array."""
    array = np.ascontiguousarray(array)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    vtk_type = numpy_support.get_vtk_array_type(array.dtype)
    image_data.AllocateScalars(vtk_type, 1)
    numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars())[:] = array.ravel()
    return image_data


def volume_node_from_sitk(image: sitk.Image, scene, name: str = "Volume", node=None):
    """Adds (or fills ``node``) a vtkMRMLScalarVolumeNode with the image's voxels and geometry."""
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetIJKToRASMatrix(_vtk_from_numpy_matrix(ijk_to_ras_from_image(image)))
    node.SetAndObserveImageData(image_data_from_array(sitk.GetArrayViewFromImage(image)))
    return node
