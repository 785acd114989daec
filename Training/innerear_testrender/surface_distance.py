"""Sub-voxel surface distances: HD95 and mean distance between iso-surfaces, not voxel centres.

``metrics.hd95_mm`` measures between surface-voxel centres, so its values are multiples of the
spacing and an error of a third of a voxel reads as 0 or 1 voxel. Here each mask is given as a
field (a partial-volume fraction or a probability, or just 0/1), its ``level`` iso-surface is
extracted with flying edges (linear interpolation along voxel edges), and the distance from
every vertex of one surface to the other surface is measured to the nearest point of that
surface's triangles subdivided twice (16 small triangles each, original vertices kept), so the
error is a small fraction of the voxel (under 2 % of the spacing on a sphere). HD95 is the 95th
percentile of both directed vertex distance sets together (vertex-weighted: flying-edge vertices
are spread about evenly). (vtkImplicitPolyDataDistance's batched query crashed the process once
in a long run, so the search is a k-d tree.)
"""

from __future__ import annotations

import numpy as np
import vtk
from scipy.spatial import cKDTree
from vtk.util import numpy_support


def _field_surface(field: np.ndarray, spacing_zyx: tuple[float, float, float], level: float) -> vtk.vtkPolyData:
    data = vtk.vtkImageData()
    data.SetDimensions(field.shape[2], field.shape[1], field.shape[0])
    data.SetSpacing(spacing_zyx[2], spacing_zyx[1], spacing_zyx[0])
    values = numpy_support.numpy_to_vtk(np.ascontiguousarray(field, dtype=np.float32).ravel(), deep=True)
    data.GetPointData().SetScalars(values)
    contour = vtk.vtkFlyingEdges3D()
    contour.SetInputData(data)
    contour.SetValue(0, level)
    contour.ComputeNormalsOff()
    contour.ComputeGradientsOff()
    contour.Update()
    return contour.GetOutput()


def _points(surface: vtk.vtkPolyData) -> np.ndarray:
    return numpy_support.vtk_to_numpy(surface.GetPoints().GetData()).astype(np.float64)


def _distances(points_of: vtk.vtkPolyData, surface: vtk.vtkPolyData) -> np.ndarray:
    """Distance from each point of ``points_of`` to the nearest point of ``surface``'s triangles,
    densely sampled (two linear subdivisions)."""
    dense = vtk.vtkLinearSubdivisionFilter()
    dense.SetInputData(surface)
    dense.SetNumberOfSubdivisions(2)
    dense.Update()
    distances, _ = cKDTree(_points(dense.GetOutput())).query(_points(points_of))
    return distances


def surface_distances(a: np.ndarray, b: np.ndarray, spacing_zyx: tuple[float, float, float],
                      level: float = 0.5) -> dict[str, float]:
    """``hd95_mm``, ``msd_mm`` and ``hausdorff_mm`` between the ``level`` iso-surfaces of two
    fields on the same [z, y, x] grid (mm). One surface empty: inf; both: 0."""
    inside = (a >= level) | (b >= level)
    if not inside.any():
        return {"hd95_mm": 0.0, "msd_mm": 0.0, "hausdorff_mm": 0.0}
    present = np.argwhere(inside)
    box = tuple(slice(max(int(lo) - 2, 0), int(hi) + 3) for lo, hi in zip(present.min(0), present.max(0)))
    # Padding with zeros closes surfaces cut by the array's border.
    fields = [np.pad(np.asarray(f, dtype=np.float32)[box], 1) for f in (a, b)]
    surfaces = [_field_surface(f, spacing_zyx, level) for f in fields]
    if any(s.GetNumberOfPoints() == 0 or s.GetNumberOfCells() == 0 for s in surfaces):
        return {"hd95_mm": float("inf"), "msd_mm": float("inf"), "hausdorff_mm": float("inf")}
    both = np.concatenate([_distances(surfaces[0], surfaces[1]), _distances(surfaces[1], surfaces[0])])
    return {"hd95_mm": float(np.percentile(both, 95)), "msd_mm": float(both.mean()),
            "hausdorff_mm": float(both.max())}
