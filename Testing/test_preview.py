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
    assert picture.shape[1:] == (4 * PANEL + 20, 3) and picture.shape[0] > PANEL + 8 + 2 * 10
    footer = picture[PANEL + 8:]
    assert (footer.max(axis=2) > 150).sum() > 200  # the model line and the ear's lines, in light text
    assert np.all(footer[:, -3:] == BACKGROUND)  # wrapped inside the picture


def test_the_footer_names_the_model_and_each_ears_side_and_measurements():
    from InnerEarSegmentationLib.ear_summary import picture_lines

    measured = {"cochlea": {"status": "measured", "a_value_mm": 9.1, "b_value_mm": 6.9, "h_value_mm": 3.8,
                            "cdl_centreline_mm": 33.2, "cdl_lateral_wall_mm": 38.5, "turns": 2.6}}
    report = {"model": {"id": "innerear-anatomy", "version": "2.2.0"}, "ears": [
        {"side": "right", "measurements": measured},
        {"side": "left", "measurements": {"cochlea": {"status": "cannot measure: the turns are fused"}}}]}
    assert picture_lines(report) == [
        "Model innerear-anatomy 2.2.0. Research use only: not for diagnosis.",
        "right ear: cochlea A 9.1 mm, B 6.9 mm, H 3.8 mm, duct 33.2 mm (lateral wall 38.5 mm), 2.60 turns",
        "left ear: cannot measure: the turns are fused"]


def test_text_is_wrapped_to_the_width_of_the_picture():
    from InnerEarSegmentationLib.preview import text_block

    one = text_block(["Model innerear-anatomy 2.2.0"], 600)
    long = text_block(["the duct's centreline runs in a ring " * 8], 300)
    assert one.shape[1] == long.shape[1] + 300 == 600
    assert long.shape[0] >= 4 * one.shape[0]  # about 300 characters at about 40 a line
    assert (one.max(axis=2) > 150).any() and np.all(one[:, 300:] == BACKGROUND)  # a short line stays short


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
