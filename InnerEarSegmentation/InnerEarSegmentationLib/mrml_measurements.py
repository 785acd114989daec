"""Cochlea measurements in a Slicer scene: a table and markups that follow the segmentation.

The A and B lines and the modiolar axis are markups lines, the duct's centreline a markups curve
the user can move; the table gives every figure with its definition. When the cochlea (or
vestibule) segment is edited the measurement is made again; when the curve is moved, the table's
"length of the curve" row follows it. Uses only MRML and vtk (works headless with slicer-core).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from .cochlea_metrics import ANGLE_STEP_DEG, DEFINITIONS, UNCERTAINTY, CochleaMeasurement, measure_cochlea
from .cochlea_volume import CannotMeasure
from .laterality import sided_name
from .mrml_volume import sitk_from_volume_node

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
CURVE_STEP_DEG = 15.0  # one control point every 15° of the duct: few enough to drag by hand
ROWS = (("a_value_mm", "A-value", "mm"), ("b_value_mm", "B-value", "mm"), ("h_value_mm", "H-value", "mm"),
        ("cdl_centreline_mm", "Duct length, centreline", "mm"),
        ("cdl_lateral_wall_mm", "Duct length, lateral wall", "mm"),
        ("angular_length_deg", "Angular length", "°"), ("volume_mm3", "Cochlea volume", "mm³"),
        ("cdl_escude_2006_mm", "Duct length, Escudé 2006", "mm"),
        ("cdl_alexiades_2015_mm", "Duct length, Alexiades 2015", "mm"))
CURVE_ROW = "Length of the centreline curve (as edited)"


SIDES = ("Right", "Left")


def cochlea_sides(segmentation_node, cochlea: str = "Cochlea") -> list[Optional[str]]:
    """The sides whose cochlea the segmentation holds ("Right", "Left"; both for a scan of two
    ears), or [None] for one cochlea not named by side."""
    segmentation = segmentation_node.GetSegmentation()
    sides = [side for side in SIDES if segmentation.GetSegmentIdBySegmentName(sided_name(cochlea, side))]
    return sides or [None]


def segment_labelmap(segmentation_node, cochlea: str = "Cochlea", vestibule: str = "Vestibule",
                     side: Optional[str] = None) -> sitk.Image:
    """The cochlea (1) and, if present, the vestibule (2) segments (of ``side``'s ear, when the
    segmentation holds both) on the segmentation's full reference grid, as a SimpleITK image in
    LPS: a cochlea cut by the scan's edge still shows."""
    segmentation = segmentation_node.GetSegmentation()
    ids = vtk.vtkStringArray()
    for name in (cochlea, vestibule):
        segment_id = _segment_id(segmentation, name, side)
        if segment_id:
            ids.InsertNextValue(segment_id)
        elif name == cochlea:
            raise CannotMeasure(f"the segmentation has no segment named '{cochlea}'")
    scene = segmentation_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    try:
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentation_node, ids, labelmap, None, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY):
            raise CannotMeasure("the cochlea segment could not be turned into a labelmap")
        return sitk_from_volume_node(labelmap)
    finally:
        scene.RemoveNode(labelmap)


def _segment_id(segmentation, name: str, side: Optional[str] = None) -> str:
    """The segment named ``name`` for ``side`` ("Right cochlea", as results are), or, with no
    side given, named ``name`` or for either side."""
    candidates = [sided_name(name, side)] if side else [name, *(sided_name(name, each) for each in SIDES)]
    for candidate in candidates:
        segment_id = segmentation.GetSegmentIdBySegmentName(candidate)
        if segment_id:
            return segment_id
    return ""


def _ras(points: np.ndarray) -> np.ndarray:
    return np.atleast_2d(points) @ LPS_TO_RAS.T


def _node(scene, holder: dict, key: str, class_name: str, name: str):
    """The node kept under ``key`` if it is still in the scene, else a new one."""
    node = holder.get(key)
    if node is None or node.GetScene() is not scene:
        node = scene.AddNewNodeByClass(class_name, name)
        if hasattr(node, "CreateDefaultDisplayNodes"):  # markups are displayable, a table is not
            node.CreateDefaultDisplayNodes()
        holder[key] = node
    return node


def _set_points(node, points_ras: np.ndarray, locked: bool) -> None:
    node.RemoveAllControlPoints()
    for point in points_ras:
        node.AddControlPoint(vtk.vtkVector3d(*[float(c) for c in point]))
    node.SetLocked(locked)


class CochleaMeasurementView:
    """Keeps a segmentation's measurement table and markups up to date.

    ``schedule`` runs the re-measurement after an edit; the module passes one that waits for the
    user to pause (a measurement takes about a second), tests call it at once."""

    def __init__(self, segmentation_node, schedule: Optional[Callable[[Callable[[], None]], None]] = None,
                 side: Optional[str] = None):
        self.segmentation_node = segmentation_node
        self.side = side
        self.scene = segmentation_node.GetScene()
        self.nodes: dict[str, Any] = {}
        self.section: dict[str, Any] = {}
        self._schedule = schedule or (lambda work: work())
        self._observers = [(segmentation_node, segmentation_node.AddObserver(event, self._on_edit))
                           for event in (slicer.vtkSegmentation.SegmentModified,
                                         slicer.vtkSegmentation.SegmentAdded,
                                         slicer.vtkSegmentation.SegmentRemoved,
                                         slicer.vtkSegmentation.RepresentationModified)]
        self.update()

    def close(self) -> None:
        """Stops following edits; the table and markups stay in the scene."""
        for node, tag in self._observers:
            node.RemoveObserver(tag)
        self._observers = []

    def _on_edit(self, caller, event) -> None:
        self._schedule(self.update)

    def update(self) -> dict[str, Any]:
        """Measures again, refreshes table and markups; returns the report section."""
        name = self.segmentation_node.GetName() + (f" {self.side.lower()}" if self.side else "")
        try:
            measurement = measure_cochlea(segment_labelmap(self.segmentation_node, side=self.side))
        except CannotMeasure as error:
            self.section = {"status": f"cannot measure: {error}"}
            self._hide_markups()
        else:
            self.section = measurement.as_report()
            self._show_markups(measurement, name)
        self._fill_table(name)
        return self.section

    def _show_markups(self, measurement: CochleaMeasurement, name: str) -> None:
        scene, nodes = self.scene, self.nodes
        for key, label, line in (("a_line", "A", measurement.a_line), ("b_line", "B", measurement.b_line),
                                 ("axis_line", "modiolar axis", measurement.axis_line)):
            node = _node(scene, nodes, key, "vtkMRMLMarkupsLineNode", f"{name} {label}")
            _set_points(node, _ras(line), locked=True)
            node.GetDisplayNode().SetVisibility(True)
        curve = _node(scene, nodes, "centreline", "vtkMRMLMarkupsCurveNode", f"{name} duct centreline")
        if "curve_observer" in nodes:
            curve.RemoveObserver(nodes.pop("curve_observer"))
        _set_points(curve, _ras(_every(measurement.centreline, CURVE_STEP_DEG)), locked=False)
        curve.GetDisplayNode().SetVisibility(True)
        nodes["curve_observer"] = curve.AddObserver(slicer.vtkMRMLMarkupsNode.PointModifiedEvent,
                                                    lambda caller, event: self._fill_table(name))

    def _hide_markups(self) -> None:
        for key in ("a_line", "b_line", "axis_line", "centreline"):
            node = self.nodes.get(key)
            if node is not None and node.GetScene() is self.scene:
                node.GetDisplayNode().SetVisibility(False)

    def curve_length(self) -> Optional[float]:
        curve = self.nodes.get("centreline")
        if curve is None or curve.GetScene() is not self.scene or self.section.get("status") != "measured":
            return None
        return float(curve.GetCurveLengthWorld())

    def _fill_table(self, name: str) -> None:
        table = _node(self.scene, self.nodes, "table", "vtkMRMLTableNode", f"{name} cochlea measurements")
        rows = [("Status", self.section.get("status", ""), "", "", "")]
        if self.section.get("status") == "measured":
            rows += [(title, f"{self.section[key]:.2f}", unit, UNCERTAINTY.get(key, ""), DEFINITIONS[key])
                     for key, title, unit in ROWS]
            rows.append((CURVE_ROW, f"{self.curve_length():.2f}", "mm", "",
                         "length of the centreline curve in the scene, after any hand edits"))
        was = table.StartModify()
        table.RemoveAllColumns()
        columns = []
        for title in ("Measurement", "Value", "Unit", "Uncertainty", "Definition"):
            column = table.AddColumn()
            column.SetName(title)
            columns.append(column)
        for row in rows:
            index = table.AddEmptyRow()
            for column, text in enumerate(row):
                table.SetCellText(index, column, str(text))
        table.EndModify(was)


def _every(points: np.ndarray, step_deg: float) -> np.ndarray:
    """A measured centreline's points (one per ANGLE_STEP_DEG), one every ``step_deg`` and the last."""
    keep = list(range(0, len(points), max(1, int(round(step_deg / ANGLE_STEP_DEG)))))
    if keep[-1] != len(points) - 1:
        keep.append(len(points) - 1)
    return points[keep]
