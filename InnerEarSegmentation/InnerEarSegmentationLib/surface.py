"""Smoothed triangle surfaces of the labyrinth for 3D printing, finite elements and viewers.

Meshes are in physical LPS millimetres (Slicer's default for exported models), so they line up
with the scan in any viewer that reads the scan's geometry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

from .errors import OutputError
from .labels import Label
from .outputs import atomic_target
from .postprocess import bounding_box


def surface_mesh(labelmap: sitk.Image, values: list[int], smoothing: float = 0.5) -> vtk.vtkPolyData:
    """One closed, smoothed surface around the voxels whose label is in ``values``.

    ``smoothing`` 0..1 is Slicer's smoothing factor: windowed-sinc pass band 10^(-4·factor).
    """
    array = sitk.GetArrayViewFromImage(labelmap)
    box = bounding_box(array)  # contour the labyrinth's box only: a micro-CT labelmap is mostly background
    if box is None:
        return vtk.vtkPolyData()
    mask = np.isin(array[box], values).astype(np.uint8)
    if not mask.any():
        return vtk.vtkPolyData()
    mask = np.pad(mask, 1)  # closed surfaces even where the labyrinth touches the border
    grid = vtk.vtkImageData()
    grid.SetDimensions(mask.shape[2], mask.shape[1], mask.shape[0])
    grid.SetOrigin(box[2].start - 1.0, box[1].start - 1.0, box[0].start - 1.0)
    grid.GetPointData().SetScalars(numpy_support.numpy_to_vtk(mask.ravel(), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR))
    contour = vtk.vtkDiscreteFlyingEdges3D()
    contour.SetInputData(grid)
    contour.SetValue(0, 1)
    pipeline_end = contour
    if smoothing > 0:
        smoother = vtk.vtkWindowedSincPolyDataFilter()
        smoother.SetInputConnection(contour.GetOutputPort())
        smoother.SetNumberOfIterations(20)
        smoother.SetPassBand(10 ** (-4.0 * smoothing))
        smoother.BoundarySmoothingOff()
        smoother.FeatureEdgeSmoothingOff()
        smoother.NonManifoldSmoothingOn()
        smoother.NormalizeCoordinatesOn()
        pipeline_end = smoother
    normals = vtk.vtkPolyDataNormals()
    normals.SetInputConnection(pipeline_end.GetOutputPort())
    normals.ConsistencyOn()
    normals.SplittingOff()
    normals.Update()
    mesh = normals.GetOutput()
    points = numpy_support.vtk_to_numpy(mesh.GetPoints().GetData()) if mesh.GetNumberOfPoints() else np.zeros((0, 3))
    matrix = np.array(labelmap.GetDirection()).reshape(3, 3) * np.array(labelmap.GetSpacing())
    physical = points @ matrix.T + np.array(labelmap.GetOrigin())
    if mesh.GetNumberOfPoints():
        mesh.GetPoints().SetData(numpy_support.numpy_to_vtk(physical, deep=True))
    return mesh


def _triangles(mesh: vtk.vtkPolyData) -> np.ndarray:
    cells = numpy_support.vtk_to_numpy(mesh.GetPolys().GetConnectivityArray())
    return cells.reshape(-1, 3)


def write_surface(labelmap: sitk.Image, labels: tuple[Label, ...], path: Path, report: dict[str, Any],
                  smoothing: float = 0.5, overwrite: bool = False) -> Path:
    """STL: the whole labyrinth as one watertight mesh. OBJ: one object per segment."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".stl", ".obj"):
        raise OutputError(f"Cannot write a surface as {path.name}: use a .stl or .obj file name.")
    stamp = f"InnerEarSegmentation {report['software']['version']}, model {report['model']['id']} {report['model']['version']}, LPS mm"
    with atomic_target(path, overwrite) as temporary:
        if suffix == ".stl":
            writer = vtk.vtkSTLWriter()
            writer.SetInputData(surface_mesh(labelmap, [label.value for label in labels], smoothing))
            writer.SetFileName(str(temporary))
            writer.SetFileTypeToBinary()
            writer.SetHeader(stamp[:79])
            if not writer.Write():
                raise OSError(28, "the STL writer failed")
        else:
            _write_obj(labelmap, labels, temporary, stamp, smoothing)
    return path


def _write_obj(labelmap: sitk.Image, labels: tuple[Label, ...], path: Path, stamp: str, smoothing: float) -> None:
    offset = 1
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(f"# {stamp}\n")
        for label in labels:
            mesh = surface_mesh(labelmap, [label.value], smoothing)
            if not mesh.GetNumberOfPoints():
                continue
            points = numpy_support.vtk_to_numpy(mesh.GetPoints().GetData())
            stream.write(f"o {label.name.replace(' ', '_')}\n")
            stream.write("".join(f"v {x:.5f} {y:.5f} {z:.5f}\n" for x, y, z in points))
            stream.write("".join(f"f {a} {b} {c}\n" for a, b, c in _triangles(mesh) + offset))
            offset += len(points)
