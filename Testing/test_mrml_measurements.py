"""The measurement table and markups in a real (headless) MRML scene, and their updates on edits."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

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


def test_each_ear_of_a_two_ear_segmentation_gets_its_own_table_and_markups():
    from InnerEarSegmentationLib.mrml_measurements import cochlea_sides

    right, left = Spiral(), Spiral(turns=2.0, outer=3.0)
    shift = np.array([30.0, 0.0, 0.0])
    image = tube_labelmap(np.vstack([right.centreline(), left.centreline() + shift]), right.lumen, spacing=0.2)
    array = sitk.GetArrayFromImage(image)
    x = image.GetOrigin()[0] + image.GetSpacing()[0] * np.arange(array.shape[2])
    array[(array == 1) & (x > 15.0)[None, None, :]] = 3
    labels = sitk.GetImageFromArray(array)
    labels.CopyInformation(image)
    headless = make_scene()
    volume = volume_node_from_sitk(labels, headless.scene, "CT")
    names = (Label(1, "Right cochlea", (0.9, 0.8, 0.3)), Label(3, "Left cochlea", (0.9, 0.8, 0.3)))
    segmentation = write_result(headless.scene, volume, labels, names, show3d=False)
    assert cochlea_sides(segmentation) == ["Right", "Left"]
    views = {side: CochleaMeasurementView(segmentation, side=side) for side in ("Right", "Left")}
    try:
        for side, spiral in (("Right", right), ("Left", left)):
            rows = table_rows(views[side])
            assert rows["Status"] == "measured"
            assert float(rows["Duct length, centreline"]) == pytest.approx(spiral.length, abs=1.0)
            assert views[side].nodes["table"].GetName() == f"CT inner ear {side.lower()} cochlea measurements"
        assert abs(right.length - left.length) > 5.0  # each table measured its own cochlea
    finally:
        for view in views.values():
            view.close()


def test_a_cochlea_not_named_by_side_is_one_ear(view):
    from InnerEarSegmentationLib.mrml_measurements import cochlea_sides

    _, segmentation, _ = view
    assert cochlea_sides(segmentation) == [None]
