"""Regenerates the extension icon and the 3D screenshot (no Slicer, no GUI: vtk offscreen).

    PYTHONPATH=InnerEarSegmentation python Utilities/make_extension_images.py

The icon is drawn from a few curves (cochlear spiral, vestibule, three canal loops). The
screenshot renders a phantom's labyrinth through the module's own output path (segmentation
node, smoothed closed surfaces) over an axial CT slice; it segments the phantom with the shipped
model when that exists, and otherwise shows the phantom's ground-truth labels (and says so).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import vtk
from vtk.util import numpy_support

ROOT = Path(__file__).resolve().parent.parent
ICON = ROOT / "Resources" / "InnerEarSegmentation.png"
MODULE_ICON = ROOT / "InnerEarSegmentation" / "Resources" / "Icons" / "InnerEarSegmentation.png"
SCREENSHOT = ROOT / "Resources" / "Screenshot01.png"
SAMPLE_THUMBNAIL = ROOT / "InnerEarSegmentation" / "Resources" / "Icons" / "TemporalBoneSynthetic.png"
COCHLEA, VESTIBULE, CANALS = (230, 204, 77), (77, 179, 230), (204, 77, 102)


def write_png(rgba: np.ndarray, path: Path) -> None:
    """Writes an [row, column, 4] uint8 array (row 0 at the top) as a PNG with vtk."""
    height, width = rgba.shape[:2]
    image = vtk.vtkImageData()
    image.SetDimensions(width, height, 1)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, rgba.shape[2])
    flipped = np.ascontiguousarray(rgba[::-1])  # vtk's first row is the bottom one
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = flipped.reshape(-1, rgba.shape[2])
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(image)
    writer.Write()


class Canvas:
    """Anti-aliased drawing by supersampling: coverage masks at ``scale`` x the final size."""

    def __init__(self, size: int = 128, scale: int = 4) -> None:
        self.size, self.scale = size, scale
        n = size * scale
        self.y, self.x = (np.mgrid[:n, :n] + 0.5) / scale
        self.rgba = np.zeros((n, n, 4))

    def fill(self, mask: np.ndarray, color, alpha: float = 1.0) -> None:
        paint = np.concatenate([np.array(color) / 255.0, [1.0]]) * alpha
        self.rgba[mask] = self.rgba[mask] * (1 - alpha) + paint

    def stroke(self, points: np.ndarray, widths: np.ndarray, color) -> None:
        """A tube along ``points`` ([N, 2] x, y), stamped disc by disc."""
        mask = np.zeros(self.x.shape, dtype=bool)
        s = self.scale
        for (px, py), w in zip(points, widths):
            r = w / 2
            rows = slice(max(int((py - r) * s), 0), int((py + r) * s) + 2)
            cols = slice(max(int((px - r) * s), 0), int((px + r) * s) + 2)
            mask[rows, cols] |= (self.x[rows, cols] - px) ** 2 + (self.y[rows, cols] - py) ** 2 <= r * r
        self.fill(mask, color)

    def result(self) -> np.ndarray:
        s = self.scale
        small = self.rgba.reshape(self.size, s, self.size, s, 4).mean(axis=(1, 3))
        alpha = small[..., 3:4]
        rgb = np.where(alpha > 0, small[..., :3] / np.maximum(alpha, 1e-9), 0)
        return np.round(np.concatenate([rgb, alpha], axis=2) * 255).astype(np.uint8)


def arc(cx, cy, radius, start_deg, stop_deg, n=200) -> np.ndarray:
    angles = np.radians(np.linspace(start_deg, stop_deg, n))
    return np.stack([cx + radius * np.cos(angles), cy - radius * np.sin(angles)], axis=1)


def draw_icon() -> np.ndarray:
    canvas = Canvas()
    x, y = canvas.x, canvas.y
    # Rounded square of otic-capsule "bone" on which the fluid spaces are drawn.
    inset, corner = 6.0, 22.0
    qx = np.clip(np.abs(x - 64) - (64 - inset - corner), 0, None)
    qy = np.clip(np.abs(y - 64) - (64 - inset - corner), 0, None)
    canvas.fill(qx ** 2 + qy ** 2 <= corner ** 2, (38, 50, 63))
    # Semicircular canals: three near-orthogonal loops rising from the vestibule.
    for points in (arc(78, 42, 20, 205, -20), arc(101, 64, 14, 115, -115), arc(84, 92, 13, 250, 10)):
        canvas.stroke(points, np.full(len(points), 5.0), CANALS)
    canvas.fill(((x - 74) / 11.0) ** 2 + ((y - 68) / 14.5) ** 2 <= 1, VESTIBULE)
    # Cochlea: about 2.25 turns shrinking towards the apex, joined to the vestibule.
    t = np.linspace(0, 1, 900)
    angle = np.radians(-20 + 810 * t)
    radius = 26 * (1 - 0.85 * t)
    spiral = np.stack([38 + radius * np.cos(angle), 78 - radius * np.sin(angle)], axis=1)
    spiral = np.concatenate([np.linspace((66, 74), spiral[0], 30), spiral])
    canvas.stroke(spiral, np.concatenate([np.full(30, 7.0), 7.0 - 3.5 * t]), COCHLEA)
    return canvas.result()


def phantom_labels():
    """(CT image, labelmap, what the labels are) for one phantom."""
    from InnerEarSegmentationLib.model import default_model_folder
    from InnerEarSegmentationLib.phantom import make_phantom

    phantom = make_phantom(seed=7, spacing_mm=0.15, fov_mm=18.0)
    image = phantom.image()
    if (default_model_folder() / "manifest.json").is_file():
        from InnerEarSegmentationLib.pipeline import Segmenter

        return image, Segmenter().segment(image).labelmap, "shipped model's segmentation"
    return image, phantom.labels(), "phantom ground truth (no shipped model yet)"


def render_screenshot(path: Path, size=(800, 600)) -> str:
    sys.path.insert(0, str(ROOT / "Testing"))
    from mrml_scene import make_scene

    from InnerEarSegmentationLib.labels import Label
    from InnerEarSegmentationLib.mrml_output import write_result
    from InnerEarSegmentationLib.mrml_volume import volume_node_from_sitk
    from InnerEarSegmentationLib.terminology import label_color

    image, labelmap, source = phantom_labels()
    headless = make_scene()
    volume = volume_node_from_sitk(image, headless.scene, "Phantom CT")
    labels = [Label(v, n, label_color(n)) for v, n in ((1, "Cochlea"), (2, "Vestibule"), (3, "Semicircular canals"))]
    segmentation = write_result(headless.scene, volume, labelmap, labels, smoothing=0.5)

    renderer = vtk.vtkRenderer()
    renderer.GradientBackgroundOn()
    renderer.SetBackground(1.0, 1.0, 1.0)
    renderer.SetBackground2(0.757, 0.765, 0.910)  # Slicer's default 3D view colours
    for label in labels:
        polydata = vtk.vtkPolyData()
        segmentation.GetClosedSurfaceRepresentation(label.name.replace(" ", "_"), polydata)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(polydata)
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*label.color)
        actor.GetProperty().SetSpecular(0.3)
        renderer.AddActor(actor)
    renderer.AddActor(_axial_slice(volume))
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(*size)
    window.AddRenderer(renderer)
    camera = renderer.GetActiveCamera()
    camera.SetViewUp(0, 0, 1)
    camera.SetPosition(-1, -0.6, 0.55)  # from the left, front and above, in RAS
    camera.SetFocalPoint(0, 0, 0)
    renderer.ResetCamera()
    camera.Zoom(1.35)
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.Update()
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    return source


def _axial_slice(volume):
    """A grey axial slice through the lower third of the CT, placed in RAS like Slicer's slice view."""
    data = volume.GetImageData()
    k = data.GetDimensions()[2] // 3
    extract = vtk.vtkExtractVOI()
    extract.SetInputData(data)
    extract.SetVOI(0, data.GetDimensions()[0] - 1, 0, data.GetDimensions()[1] - 1, k, k)
    colors = vtk.vtkImageMapToWindowLevelColors()
    colors.SetInputConnection(extract.GetOutputPort())
    colors.SetWindow(2500)
    colors.SetLevel(500)
    colors.SetOutputFormatToRGB()
    actor = vtk.vtkImageActor()
    actor.GetMapper().SetInputConnection(colors.GetOutputPort())
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    actor.SetUserMatrix(matrix)
    return actor


def draw_sample_thumbnail() -> np.ndarray:
    """The Sample Data button's picture: an axial slice of the sample phantom with its labels'
    outlines (ground truth), as the QC preview draws them."""
    from InnerEarSegmentationLib.model import load_model
    from InnerEarSegmentationLib.phantom import make_phantom
    from InnerEarSegmentationLib.preview import draw_outlines, grey, labyrinth_boxes, plane
    from InnerEarSegmentationLib.sample_data import SEED

    phantom = make_phantom(seed=SEED, modality="clinical")
    image, labels = phantom.image(), phantom.labels()
    centre, side = labyrinth_boxes(labels)[0]
    rgb = draw_outlines(grey([plane(image, centre, side, 2, nearest=False)])[0],
                        plane(labels, centre, side, 2, nearest=True), load_model(verify=False).labels)
    return np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)], axis=2)


if __name__ == "__main__":
    write_png(draw_sample_thumbnail(), SAMPLE_THUMBNAIL)
    print(f"sample data thumbnail: {SAMPLE_THUMBNAIL}")
    write_png(draw_icon(), ICON)
    shutil.copyfile(ICON, MODULE_ICON)
    print(f"icon: {ICON} and {MODULE_ICON}")
    print(f"screenshot ({render_screenshot(SCREENSHOT)}): {SCREENSHOT}")
