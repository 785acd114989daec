"""Cochlea measurements on shapes of known answer, and the shapes that must not be measured."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from cochlea_shapes import Spiral, straight, torus, tube_labelmap
from mrml_scene import oblique_direction

from InnerEarSegmentationLib.cochlea_metrics import (CannotMeasure, alexiades_2015, cli_summary,
                                                     escude_2006, measure_cochlea, measurements_section)

SPIRAL = Spiral()


@pytest.fixture(scope="module")
def spiral_measurement():
    image = tube_labelmap(SPIRAL.centreline(), SPIRAL.lumen, spacing=0.2, direction=oblique_direction(35.0))
    return measure_cochlea(image)


def test_spiral_duct_length_and_turns(spiral_measurement):
    assert spiral_measurement.cdl_centreline_mm == pytest.approx(SPIRAL.length, abs=1.0)
    assert spiral_measurement.angular_length_deg == pytest.approx(360 * SPIRAL.turns, abs=20.0)
    # the lateral wall runs a lumen radius outside the centreline: longer by about lumen x angle
    expected_wall = SPIRAL.length + SPIRAL.lumen * 2 * np.pi * SPIRAL.turns
    assert spiral_measurement.cdl_lateral_wall_mm == pytest.approx(expected_wall, rel=0.05)


def test_spiral_diameters_and_height(spiral_measurement):
    a_value = SPIRAL.across(0.0) + SPIRAL.across(np.pi) + 2 * SPIRAL.lumen
    b_value = SPIRAL.across(np.pi / 2) + SPIRAL.across(3 * np.pi / 2) + 2 * SPIRAL.lumen
    assert spiral_measurement.a_value_mm == pytest.approx(a_value, abs=0.3)
    assert spiral_measurement.b_value_mm == pytest.approx(b_value, abs=0.3)
    # in the B section the tube spans the basal turn's floor to the last turn's roof
    rise_in_section = SPIRAL.rise * (SPIRAL.turns - 0.25 - 0.25) / SPIRAL.turns
    assert spiral_measurement.h_value_mm == pytest.approx(rise_in_section + 2 * SPIRAL.lumen, abs=0.3)


def test_spiral_axis_is_found(spiral_measurement):
    """The spiral winds about the physical z axis; the scan's grid is oblique to it."""
    axis = spiral_measurement.axis
    assert axis.direction @ [0.0, 0.0, 1.0] > np.cos(np.radians(3.0))  # base to apex: +z
    assert np.linalg.norm(axis.point[:2] - axis.direction[:2] * axis.point[2] / axis.direction[2]) < 0.3


def test_formulas_follow_their_papers():
    assert escude_2006(9.0, 900.0) == pytest.approx(2.62 * 9.0 * np.log(1 + 900 / 235))
    assert alexiades_2015(9.0) == pytest.approx(33.44)


def test_report_section_and_cli_line(spiral_measurement):
    section = spiral_measurement.as_report()
    assert section["status"] == "measured"
    assert set(section["definitions"]) >= {"a_value_mm", "cdl_centreline_mm", "cdl_escude_2006_mm"}
    line = cli_summary({"cochlea": section})
    assert f"A {section['a_value_mm']:.1f} mm" in line and "turns" in line


@pytest.mark.parametrize("shape, reason", [
    (lambda: tube_labelmap(torus(), 0.6), "ring"),
    (lambda: tube_labelmap(straight(), 0.6), "does not form a spiral"),
])
def test_shapes_without_a_spiral_are_refused(shape, reason):
    with pytest.raises(CannotMeasure, match=reason):
        measure_cochlea(shape())


def test_common_cavity_is_refused():
    """A cochlea that is one round cavity beside the vestibule: no duct to follow."""
    z, y, x = np.mgrid[:50, :50, :50]
    array = np.zeros((50, 50, 50), dtype=np.uint8)
    array[(x - 20) ** 2 + (y - 25) ** 2 + (z - 25) ** 2 <= 12 ** 2] = 1
    array[(x - 36) ** 2 + (y - 25) ** 2 + (z - 25) ** 2 <= 6 ** 2] = 2
    image = sitk.GetImageFromArray(array)
    image.SetSpacing([0.2] * 3)
    section = measurements_section(image)
    assert section["cochlea"]["status"].startswith("cannot measure: ")
    assert "spiral" in section["cochlea"]["status"] or "ring" in section["cochlea"]["status"]
    assert "a_value_mm" not in section["cochlea"]


def test_no_cochlea_is_refused():
    image = sitk.Image([20, 20, 20], sitk.sitkUInt8)
    section = measurements_section(image)
    assert section == {"cochlea": {"status": "cannot measure: there is no cochlea in the segmentation"}}


def test_cochlea_cut_by_the_field_of_view_is_refused():
    image = tube_labelmap(SPIRAL.centreline(), SPIRAL.lumen, spacing=0.25)
    cut = image[:, :, : image.GetSize()[2] // 2]  # the apical turns are outside the scan
    with pytest.raises(CannotMeasure, match="edge of the scan"):
        measure_cochlea(cut)
