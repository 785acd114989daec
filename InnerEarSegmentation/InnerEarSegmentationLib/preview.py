"""A quality-control picture per scan: for each labyrinth, three orthogonal slices through it with
the segment outlines, and its 3D surface, side by side in one PNG (no matplotlib: numpy + vtk).

Slices are resampled onto axis-aligned planes through the labyrinth's centre (radiological
convention: axial and coronal show the patient's right on the left, superior up), so oblique and
anisotropic scans look the same as any other.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
import vtk
from scipy import ndimage
from vtk.util import numpy_support

from .labels import Label

PANEL = 256          # pixels per panel side
MARGIN_MM = 3.0      # around the labyrinth
MAX_LABYRINTHS = 2   # a scan of the whole head holds two
SAME_EAR_MM = 20.0   # a labyrinth is about 15 mm across; the two ears are 7 cm or more apart
BACKGROUND = (24, 24, 28)
TEXT = (235, 235, 235)
FONT_SIZE = 13
CHARACTER_PX = 7.5   # a line is wrapped to the picture's width at about this much per character


def labyrinth_boxes(labelmap: sitk.Image) -> list[tuple[np.ndarray, float]]:
    """(centre in LPS mm, cube side in mm) of each labyrinth, largest first.

    A labyrinth's parts need not touch (a canal cut by the threshold), so labelled pieces within
    SAME_EAR_MM of a bigger piece join it; specks under 5 % of the largest piece are left out."""
    components = sitk.RelabelComponent(sitk.ConnectedComponent(labelmap > 0), sortByObjectSize=True)
    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.Execute(components)
    values = sorted(shapes.GetLabels())
    clusters: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (anchor centre, low, high)
    for value in values:
        if shapes.GetNumberOfPixels(value) < 0.05 * shapes.GetNumberOfPixels(values[0]):
            break
        x, y, z, sx, sy, sz = shapes.GetBoundingBox(value)
        corners = [labelmap.TransformContinuousIndexToPhysicalPoint((i - 0.5, j - 0.5, k - 0.5))
                   for i in (x, x + sx) for j in (y, y + sy) for k in (z, z + sz)]
        low, high = np.min(corners, axis=0), np.max(corners, axis=0)
        centre = np.array(shapes.GetCentroid(value))
        for index, (anchor, cluster_low, cluster_high) in enumerate(clusters):
            if np.linalg.norm(centre - anchor) < SAME_EAR_MM:
                clusters[index] = (anchor, np.minimum(low, cluster_low), np.maximum(high, cluster_high))
                break
        else:
            clusters.append((centre, low, high))
    return [((low + high) / 2, float(np.max(high - low)) + 2 * MARGIN_MM)
            for _, low, high in clusters[:MAX_LABYRINTHS]]


def plane(image: sitk.Image, centre: np.ndarray, side: float, axis: int, nearest: bool) -> np.ndarray:
    """The PANEL x PANEL slice across LPS ``axis`` (0 sagittal, 1 coronal, 2 axial) through ``centre``,
    as [row, column] with superior (or anterior, for axial) at the top."""
    spacing = side / PANEL
    size = [PANEL, PANEL, PANEL]
    size[axis] = 1
    origin = centre - side / 2 + spacing / 2
    origin[axis] = centre[axis]
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    outside = 0.0 if nearest else float(sitk.GetArrayViewFromImage(image).min())  # air, not grey
    resampled = sitk.Resample(image, size, sitk.Transform(), interpolator, origin.tolist(),
                              [spacing] * 3, np.eye(3).ravel().tolist(), outside, image.GetPixelID())
    array = sitk.GetArrayFromImage(resampled)  # [z, y, x]
    if axis == 2:
        return array[0]              # rows: anterior -> posterior; columns: right -> left
    if axis == 1:
        return array[::-1, 0, :]     # rows: superior -> inferior
    return array[::-1, :, 0]         # rows: superior -> inferior; columns: anterior -> posterior


def grey(slices: Sequence[np.ndarray]) -> list[np.ndarray]:
    """RGB uint8 slices with one window for all (1st to 99.5th percentile), any CT or micro-CT unit."""
    values = np.concatenate([s.ravel() for s in slices]).astype(np.float64)
    low, high = np.percentile(values, [1.0, 99.5])
    scale = 255.0 / max(high - low, 1e-6)
    return [np.repeat(np.clip((s - low) * scale, 0, 255).astype(np.uint8)[..., None], 3, axis=2) for s in slices]


def draw_outlines(rgb: np.ndarray, labels_slice: np.ndarray, labels: Sequence[Label]) -> np.ndarray:
    """Each segment's boundary pixels in its colour."""
    out = rgb.copy()
    for label in labels:
        mask = labels_slice == label.value
        edge = mask & ~ndimage.binary_erosion(mask)
        out[edge] = np.round(np.array(label.color) * 255).astype(np.uint8)
    return out


def render_surface(labelmap: sitk.Image, labels: Sequence[Label], centre: np.ndarray, side: float) -> np.ndarray:
    """The labyrinth's smoothed surfaces seen from the side, rendered offscreen by vtk (RGB)."""
    from .surface import surface_mesh

    spacing = max(min(labelmap.GetSpacing()), side / 120)
    size = [int(np.ceil(side / spacing))] * 3
    crop = sitk.Resample(labelmap, size, sitk.Transform(), sitk.sitkNearestNeighbor,
                         (centre - side / 2).tolist(), [spacing] * 3, np.eye(3).ravel().tolist(), 0)
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(*(c / 255 for c in BACKGROUND))
    for label in labels:
        if not np.any(sitk.GetArrayViewFromImage(crop) == label.value):
            continue
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(surface_mesh(crop, [label.value]))
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*label.color)
        renderer.AddActor(actor)
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.AddRenderer(renderer)
    window.SetSize(PANEL, PANEL)
    camera = renderer.GetActiveCamera()
    camera.SetFocalPoint(*centre)
    camera.SetPosition(*(centre + np.array([side * 3, 0.0, 0.0])))  # from the patient's left (LPS +x)
    camera.SetViewUp(0, 0, 1)
    renderer.ResetCamera()
    camera.Zoom(1.4)
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.Update()
    output = grab.GetOutput()
    width, height, _ = output.GetDimensions()
    pixels = numpy_support.vtk_to_numpy(output.GetPointData().GetScalars()).reshape(height, width, -1)
    window.Finalize()
    return np.ascontiguousarray(pixels[::-1, :, :3])


def compose(rows: Sequence[Sequence[np.ndarray]], footer: Sequence[str] = (), gap: int = 4) -> np.ndarray:
    """Panels in a grid with a gap, and the ``footer`` lines below them, wrapped to its width."""
    width = max(sum(p.shape[1] for p in row) + gap * (len(row) + 1) for row in rows)
    blocks = []
    for row in rows:
        strip = np.full((PANEL + gap, width, 3), BACKGROUND, dtype=np.uint8)
        x = gap
        for panel in row:
            strip[gap:gap + panel.shape[0], x:x + panel.shape[1]] = panel
            x += panel.shape[1] + gap
        blocks.append(strip)
    if footer:
        text = text_block(footer, width, gap)
        blocks.append(np.concatenate([np.full((gap, width, 3), BACKGROUND, dtype=np.uint8), text]))
    blocks.append(np.full((gap, width, 3), BACKGROUND, dtype=np.uint8))
    return np.concatenate(blocks)


def text_block(lines: Sequence[str], width: int, gap: int = 4) -> np.ndarray:
    """Lines of text on the picture's background, drawn by vtk's own font renderer and wrapped
    to ``width`` pixels."""
    renderer = vtk.vtkTextRenderer()
    font = vtk.vtkTextProperty()
    font.SetFontSize(FONT_SIZE)
    font.SetColor(1.0, 1.0, 1.0)
    wrapped = [part for line in lines for part in textwrap.wrap(line, max(20, int((width - 2 * gap) / CHARACTER_PX)))]
    strips = []
    for line in wrapped:
        image, size = vtk.vtkImageData(), [0, 0]
        if not renderer.RenderString(font, line, image, size, 72):
            continue
        columns, rows, _ = image.GetDimensions()
        rgba = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(rows, columns, 4)
        cover = rgba[:size[1], :min(size[0], width - gap), 3][::-1, :, None] / 255.0  # rows from the top
        strip = np.full((size[1] + 2, width, 3), BACKGROUND, dtype=float)
        strip[1:1 + cover.shape[0], gap:gap + cover.shape[1]] = \
            cover * np.array(TEXT) + (1.0 - cover) * np.array(BACKGROUND)
        strips.append(strip.round().astype(np.uint8))
    return np.concatenate(strips) if strips else np.zeros((0, width, 3), dtype=np.uint8)


def write_png(rgb: np.ndarray, path: Path) -> Path:
    """Writes an [row, column, 3] uint8 array (row 0 at the top) with vtkPNGWriter."""
    height, width = rgb.shape[:2]
    image = vtk.vtkImageData()
    image.SetDimensions(width, height, 1)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 3)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = np.ascontiguousarray(rgb[::-1]).reshape(-1, 3)
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(image)
    writer.Write()
    return Path(path)


def preview_image(image: sitk.Image, labelmap: sitk.Image, labels: Sequence[Label], surface: bool = True,
                  footer: Sequence[str] = ()) -> np.ndarray:
    """The picture as an RGB array: one row per labyrinth (axial, coronal, sagittal, 3D), then
    the ``footer`` lines (what made it, each ear's side and measurements)."""
    rows = []
    for centre, side in labyrinth_boxes(labelmap):
        slices = grey([plane(image, centre, side, axis, nearest=False) for axis in (2, 1, 0)])
        marks = [plane(labelmap, centre, side, axis, nearest=True) for axis in (2, 1, 0)]
        row = [draw_outlines(s, m, labels) for s, m in zip(slices, marks)]
        if surface:
            row.append(render_surface(labelmap, labels, centre, side))
        rows.append(row)
    if not rows:
        rows.append([np.full((PANEL, PANEL, 3), BACKGROUND, dtype=np.uint8)])
    return compose(rows, footer)
