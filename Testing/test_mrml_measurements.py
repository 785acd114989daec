"""The measurement table and markups in a real (headless) MRML scene, and their updates on edits."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from cochlea_shapes import Spiral, tube_labelmap  # noqa: E402
from mrml_scene import make_scene  # noqa: E402

from InnerEarSegmentationLib.labels import Label  # noqa: E402
from InnerEarSegmentationLib.mrml_measurements import CURVE_ROW, CochleaMeasurementView  # noqa: E402
from InnerEarSegmentationLib.mrml_output import write_result  # noqa: E402
from InnerEarSegmentationLib.mrml_volume import volume_node_from_sitk  # noqa: E402

LABELS = (Label(1, "Cochlea", (0.9, 0.8, 0.3)), Label(2, "Vestibule", (0.3, 0.7, 0.9)))
SPIRAL = Spiral()


@pytest.fixture(scope="module")
def view():
    headless = make_scene()
    image = tube_labelmap(SPIRAL.centreline(), SPIRAL.lumen, spacing=0.2)
    volume = volume_node_from_sitk(image, headless.scene, "CT")
    segmentation = write_result(headless.scene, volume, image, LABELS, show3d=False)
    view = CochleaMeasurementView(segmentation)
    yield headless, segmentation, view
    view.close()


def table_rows(view) -> dict[str, str]:
    table = view.nodes["table"].GetTable()
    return {table.GetValue(row, 0).ToString(): table.GetValue(row, 1).ToString()
            for row in range(table.GetNumberOfRows())}


def test_table_and_markups_show_the_measurement(view):
    headless, segmentation, measured = view
    rows = table_rows(measured)
    assert rows["Status"] == "measured"
    assert float(rows["Duct length, centreline"]) == pytest.approx(SPIRAL.length, abs=1.0)
    a_line = measured.nodes["a_line"]
    assert a_line.GetNumberOfControlPoints() == 2
    assert a_line.GetLineLengthWorld() == pytest.approx(float(rows["A-value"]), abs=0.01)
    curve = measured.nodes["centreline"]
    assert curve.GetNumberOfControlPoints() > 50
    # the curve through every 15° of the duct is as long as the measured centreline
    assert float(rows[CURVE_ROW]) == pytest.approx(float(rows["Duct length, centreline"]), abs=0.5)
    # markups are in RAS: the spiral's axis is the scan's z, the same in LPS and RAS
    axis = measured.nodes["axis_line"]
    start, end = np.zeros(3), np.zeros(3)
    axis.GetNthControlPointPositionWorld(0, start)
    axis.GetNthControlPointPositionWorld(1, end)
    assert abs((end - start)[2]) / np.linalg.norm(end - start) > 0.99


def test_moving_the_curve_updates_its_length_row(view):
    _, _, measured = view
    curve = measured.nodes["centreline"]
    before = float(table_rows(measured)[CURVE_ROW])
    point = np.zeros(3)
    curve.GetNthControlPointPositionWorld(curve.GetNumberOfControlPoints() - 1, point)
    curve.SetNthControlPointPositionWorld(curve.GetNumberOfControlPoints() - 1, *(point + [0.0, 0.0, 3.0]))
    assert float(table_rows(measured)[CURVE_ROW]) > before + 1.0


def test_editing_the_segmentation_measures_again(view):
    headless, segmentation, measured = view
    segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName("Cochlea")
    segmentation.GetSegmentation().RemoveSegment(segment_id)  # the user deletes the cochlea
    assert measured.section["status"].startswith("cannot measure: ")
    assert table_rows(measured)["Status"] == measured.section["status"]
    assert not measured.nodes["centreline"].GetDisplayNode().GetVisibility()
