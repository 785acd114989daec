"""The QC picture: slices through each labyrinth with the outlines in the segment colours, and
the 3D surface, in one PNG, from the command line (``--preview``) and from the child process."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import blob_scan

from InnerEarSegmentationLib.cli import main
from InnerEarSegmentationLib.labels import Label
from InnerEarSegmentationLib.preview import BACKGROUND, PANEL, preview_image
from InnerEarSegmentationLib.subprocess_run import SegmentationProcess

LABELS = (Label(1, "Cochlea", (0.9, 0.8, 0.3)), Label(2, "Vestibule", (0.3, 0.7, 0.9)),
          Label(3, "Semicircular canals", (0.8, 0.3, 0.4)))


def colour(label: Label) -> np.ndarray:
    return np.round(np.array(label.color) * 255).astype(np.uint8)


def pixels_of(picture: np.ndarray, label: Label) -> int:
    return int(np.all(picture == colour(label), axis=2).sum())


def scan_and_labels(direction=None):
    """A ball in thirds (labels 1, 2, 3 from right to left) on an anisotropic grid; CT bright inside."""
    z, y, x = np.mgrid[:30, :36, :40]
    ball = ((x - 20) * 0.3) ** 2 + ((y - 18) * 0.35) ** 2 + ((z - 15) * 0.5) ** 2 < 4.0 ** 2
    array = (ball * (1 + (x >= 16) + (x >= 24))).astype(np.uint8)
    labels = sitk.GetImageFromArray(array)
    labels.SetSpacing((0.3, 0.35, 0.5))
    labels.SetOrigin((12.5, -30.25, 41.0))
    if direction is not None:
        labels.SetDirection(direction)
    ct = sitk.Cast(labels > 0, sitk.sitkInt16) * 1000 - 1000
    return ct, labels


def test_three_slices_with_every_outline_and_a_rendered_surface():
    image, labels = scan_and_labels()
    picture = preview_image(image, labels, LABELS)
    assert picture.shape[0] == PANEL + 8 and picture.shape[1] == 4 * PANEL + 5 * 4
    slices, surface = picture[:, : 3 * PANEL + 12], picture[4:4 + PANEL, 3 * PANEL + 16:]
    assert all(pixels_of(slices, label) > 20 for label in LABELS)
    # The surface panel was drawn (not left at the background) in the segments' shades.
    assert (np.abs(surface.astype(int) - BACKGROUND).sum(axis=2) > 30).mean() > 0.02


def test_two_labyrinths_give_two_rows():
    image, labels = scan_and_labels()
    array = sitk.GetArrayFromImage(labels)
    both = np.concatenate([array, np.zeros_like(array), array[:, :, ::-1]], axis=2)
    two = sitk.GetImageFromArray(both)
    two.CopyInformation(sitk.GetImageFromArray(both))
    two.SetSpacing(labels.GetSpacing())
    ct = sitk.Cast(two, sitk.sitkInt16) * 1000 - 1000
    picture = preview_image(ct, two, LABELS, surface=False)
    assert picture.shape[0] == 2 * (PANEL + 4) + 4


def test_the_command_line_writes_the_preview(tiny_model, tmp_path):
    scan = tmp_path / "ear.nrrd"
    sitk.WriteImage(blob_scan(), str(scan))
    assert main([str(scan), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--preview", "--quiet"]) == 0
    picture = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "ear.preview.png")))
    assert picture.shape == (PANEL + 8, 4 * PANEL + 20, 3)


def test_the_child_process_sends_the_preview_back(tiny_model):
    job = SegmentationProcess(blob_scan(), str(tiny_model), "cpu", preview=True).start()
    try:
        result = job.wait()
    finally:
        job.close()
    assert result.preview_png is not None and result.preview_png.startswith(b"\x89PNG")


@pytest.mark.parametrize("oblique", [False, True])
def test_an_oblique_scan_shows_the_same_outlines(oblique):
    from mrml_scene import oblique_direction

    image, labels = scan_and_labels(oblique_direction() if oblique else None)
    picture = preview_image(image, labels, LABELS, surface=False)
    assert all(pixels_of(picture, label) > 20 for label in LABELS)
