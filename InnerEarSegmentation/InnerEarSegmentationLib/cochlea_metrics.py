"""Cochlear-implant planning figures measured on a cochlea segmentation.

A-value: the cochlea's extent across the modiolar axis along the line from the axis towards the
basal end of the duct; B-value: its extent across the axis perpendicular to A; H-value: its
extent along the axis. Duct length along the duct's centreline (mid-lumen) and along its lateral
wall, from the basal end to the apex, and the angle the centreline turns through; also the
published estimates of the duct length from A (each named).

The segmentation has no round window: the duct's basal end is where the cochlea opens into the
vestibule (or, with no vestibule, its outermost end). Lengths and angles therefore include the
basal hook between the round window and the vestibule, a few tenths of a turn.
These are geometric measurements of a segmentation, not a clinical recommendation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from .cochlea_spiral import (Axis, basal_end, fit_axis, principal_axis, smooth_along,
                             track_centreline)
from .cochlea_volume import CannotMeasure, CochleaVolume, cochlea_volume

MIN_TURNS = 1.0        # less than a full turn is no spiral (a common cavity, a cystic cochlea)
ANGLE_STEP_DEG = 1.0
SMOOTHING_DEG = 8.0    # radius and height vary slowly with the angle; the turning is kept exact

DEFINITIONS = {
    "a_value_mm": "largest extent of the cochlea across the modiolar axis, on the line from the axis "
                  "towards the basal end of the duct",
    "b_value_mm": "extent of the cochlea across the modiolar axis, perpendicular to A",
    "h_value_mm": "extent of the cochlea along the modiolar axis in its section through the axis "
                  "perpendicular to A (clear of the basal hook)",
    "cdl_centreline_mm": "length of the duct's mid-lumen centreline from the basal end to the apex",
    "cdl_lateral_wall_mm": "length of the duct's lateral wall (outermost from the axis) at the "
                           "centreline's height, basal end to apex",
    "angular_length_deg": "angle the centreline turns through about the modiolar axis",
    "cdl_escude_2006_mm": "Escudé 2006, lateral wall: 2.62 A ln(1 + angle / 235°)",
    "cdl_alexiades_2015_mm": "Alexiades 2015, organ of Corti: 4.16 A - 4.0",
    "volume_mm3": "volume of the cochlea segment",
}

# Largest error on exact phantoms (Benchmarks/MEASUREMENTS.md), by voxel size.
UNCERTAINTY = {
    "a_value_mm": "±0.3 mm at 0.1-0.3 mm voxels, ±0.4 mm at 0.4-0.5 mm",
    "b_value_mm": "±0.15 mm at 0.1-0.3 mm voxels, ±0.35 mm at 0.4-0.5 mm",
    "h_value_mm": "±0.1 mm at 0.1-0.3 mm voxels, ±0.25 mm at 0.4-0.5 mm",
    "cdl_centreline_mm": "±0.9 mm at 0.1-0.5 mm voxels",
    "cdl_lateral_wall_mm": "not measured on phantoms",
    "angular_length_deg": "±17° at 0.1-0.3 mm voxels, ±34° at 0.4-0.5 mm",
    "cdl_escude_2006_mm": "that of A, plus the formula's own error against histology",
    "cdl_alexiades_2015_mm": "that of A, plus the formula's own error against histology",
}


@dataclass
class CochleaMeasurement:
    """Figures in mm (angles in degrees) and the geometry that shows them (LPS mm)."""

    a_value_mm: float
    b_value_mm: float
    h_value_mm: float
    cdl_centreline_mm: float
    cdl_lateral_wall_mm: float
    angular_length_deg: float
    volume_mm3: float
    axis: Axis
    a_line: np.ndarray          # (2, 3) end points
    b_line: np.ndarray
    axis_line: np.ndarray       # (2, 3) basal-plane point and the apex's height on the axis
    centreline: np.ndarray      # (N, 3) basal end to apex
    lateral_wall: np.ndarray
    formulas: dict[str, float] = field(default_factory=dict)

    @property
    def turns(self) -> float:
        return self.angular_length_deg / 360.0

    def as_report(self) -> dict[str, Any]:
        figures = {
            "a_value_mm": self.a_value_mm, "b_value_mm": self.b_value_mm, "h_value_mm": self.h_value_mm,
            "cdl_centreline_mm": self.cdl_centreline_mm, "cdl_lateral_wall_mm": self.cdl_lateral_wall_mm,
            "angular_length_deg": self.angular_length_deg, "turns": self.turns,
            "volume_mm3": self.volume_mm3, **self.formulas,
        }
        return {
            "status": "measured",
            **{key: round(float(value), 2) for key, value in figures.items()},
            "modiolar_axis": {"point_lps_mm": _rounded(self.axis.point),
                              "direction_lps": _rounded(self.axis.direction, 4)},
            "definitions": DEFINITIONS,
            "uncertainty": UNCERTAINTY,
        }


def _rounded(values, digits: int = 3) -> list[float]:
    return [round(float(v), digits) for v in np.ravel(values)]


def escude_2006(a_value: float, angle_deg: float) -> float:
    """Lateral-wall length from A and the angular length (Escudé et al., Audiol Neurootol 2006)."""
    return 2.62 * a_value * float(np.log(1.0 + angle_deg / 235.0))


def alexiades_2015(a_value: float) -> float:
    """Organ-of-Corti length from A (Alexiades et al., Otol Neurotol 2015)."""
    return 4.16 * a_value - 4.0


def measure_cochlea(labelmap: sitk.Image, cochlea: int = 1, vestibule: int | None = 2) -> CochleaMeasurement:
    """Measures the cochlea labelled ``cochlea``; raises CannotMeasure with the reason."""
    volume = cochlea_volume(labelmap, cochlea, vestibule)
    track = track_centreline(volume, basal_end(volume))
    axis = fit_axis(track, principal_axis(volume))
    e1 = _unit_towards(axis, track[0])
    radius, angle, height = axis.cylindrical(track, e1)
    turned = abs(angle[-1] - angle[0])
    if turned < 2 * np.pi * MIN_TURNS:
        raise CannotMeasure(f"the cochlea does not form a spiral (its duct turns {np.degrees(turned):.0f}°, "
                            "less than one turn): a malformation such as a common cavity or an "
                            "incomplete partition, or a segmentation that missed the turns")
    sign = 1.0 if angle[-1] > angle[0] else -1.0  # angles count positive the way the duct turns
    radius, angle, height = _smooth_spiral(radius, sign * angle, height)
    centreline = axis.from_cylindrical(radius, sign * angle, height, e1)
    first_turn = angle - angle[0] < 2 * np.pi
    base_height = float(np.mean(height[first_turn]))
    axis = Axis(axis.point + base_height * axis.direction, axis.direction)
    height = height - base_height
    wall = _lateral_wall(volume, axis, e1, radius, sign * angle, height)
    (a_low, a_high), _ = _section_extents(volume, axis, e1)
    b_dir = np.cross(axis.direction, e1)
    (b_low, b_high), (h_low, h_high) = _section_extents(volume, axis, b_dir)
    a_value = a_high - a_low
    measurement = CochleaMeasurement(
        a_value_mm=a_value, b_value_mm=b_high - b_low, h_value_mm=h_high - h_low,
        cdl_centreline_mm=_length(centreline), cdl_lateral_wall_mm=_length(wall),
        angular_length_deg=float(np.degrees(angle[-1] - angle[0])),
        volume_mm3=volume.voxel_count * volume.voxel_volume_mm3, axis=axis,
        a_line=axis.point + np.outer([a_low, a_high], e1),
        b_line=axis.point + np.outer([b_low, b_high], b_dir),
        axis_line=axis.point + np.outer([h_low, h_high], axis.direction),
        centreline=centreline, lateral_wall=wall)
    measurement.formulas = {
        "cdl_escude_2006_mm": escude_2006(a_value, measurement.angular_length_deg),
        "cdl_alexiades_2015_mm": alexiades_2015(a_value),
    }
    return measurement


def _smooth_spiral(radius, angle, height) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radius and height as smooth functions of the angle, on a 1° grid.

    Smoothing in these coordinates removes the tracker's jitter (which would add length) without
    cutting the duct's corners, which smoothing the points themselves would do at the apex."""
    ahead = angle >= np.maximum.accumulate(angle)   # drop steps that went backwards
    angle, radius, height = angle[ahead], radius[ahead], height[ahead]
    keep = np.concatenate([[True], np.diff(angle) > 0])
    angle, radius, height = angle[keep], radius[keep], height[keep]
    grid = np.arange(angle[0], angle[-1], np.radians(ANGLE_STEP_DEG))
    grid = np.append(grid, angle[-1])
    sigma = SMOOTHING_DEG / ANGLE_STEP_DEG
    return (smooth_along(np.interp(grid, angle, radius), sigma), grid,
            smooth_along(np.interp(grid, angle, height), sigma))


def _unit_towards(axis: Axis, point: np.ndarray) -> np.ndarray:
    v = point - axis.point
    v = v - (v @ axis.direction) * axis.direction
    return v / np.linalg.norm(v)


def _length(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def _lateral_wall(volume: CochleaVolume, axis: Axis, e1, radius, angle, height) -> np.ndarray:
    """Outermost point of the duct from the axis at each centreline point's angle and height."""
    out = np.arange(0.0, 3.0, 0.02)
    grid = radius[:, None] + out[None, :]
    points = axis.from_cylindrical(grid.ravel(), np.repeat(angle, len(out)), np.repeat(height, len(out)), e1)
    inside = volume.sample(volume.occupancy, points).reshape(grid.shape) >= 0.5
    first_out = np.argmin(inside, axis=1)   # first sample outside the duct
    wall_radius = radius + out[np.maximum(first_out - 1, 0)] + 0.01
    wall_radius = smooth_along(wall_radius, SMOOTHING_DEG / ANGLE_STEP_DEG)
    return axis.from_cylindrical(wall_radius, angle, height, e1)


def _section_extents(volume: CochleaVolume, axis: Axis, direction: np.ndarray,
                     step: float = 0.02) -> tuple[tuple[float, float], tuple[float, float]]:
    """Extents across (along ``direction``) and along the axis of the cochlea's section by the
    plane through the axis containing ``direction``, from the smoothed surface (sub-voxel)."""
    low, high = volume.extent_along(axis.direction)
    base = axis.point @ axis.direction
    s = np.arange(-8.0, 8.0, step)
    h = np.arange(low - base - 0.3, high - base + 0.3, step)
    points = axis.point + s[None, :, None] * direction + h[:, None, None] * axis.direction
    inside = volume.sample(volume.occupancy, points) >= 0.5
    columns, rows = np.nonzero(inside.any(axis=0))[0], np.nonzero(inside.any(axis=1))[0]
    if len(columns) == 0:
        raise CannotMeasure("the plane through the modiolar axis misses the cochlea")
    return ((float(s[columns[0]] - step / 2), float(s[columns[-1]] + step / 2)),
            (float(h[rows[0]] - step / 2), float(h[rows[-1]] + step / 2)))


def measurements_section(labelmap: sitk.Image, cochlea: int | None = 1, vestibule: int | None = 2) -> dict[str, Any]:
    """The report's ``measurements``: the figures, or ``cannot measure: <reason>`` — never raises
    for a segmentation it cannot measure, so a segmentation is never lost to its measurement."""
    if cochlea is None:
        return {"cochlea": {"status": "cannot measure: the model has no label named Cochlea"}}
    try:
        return {"cochlea": measure_cochlea(labelmap, cochlea, vestibule).as_report()}
    except CannotMeasure as error:
        return {"cochlea": {"status": f"cannot measure: {error}"}}
    except (ArithmeticError, ValueError, IndexError, np.linalg.LinAlgError, RuntimeError) as error:
        return {"cochlea": {"status": f"cannot measure: the measurement failed ({type(error).__name__}: "
                                      f"{error}); this is a bug, please report it"}}


def label_values(labels) -> tuple[int | None, int | None]:
    """Values of the cochlea and vestibule among a model's labels (by name)."""
    found = {label.name.lower(): label.value for label in labels}
    return found.get("cochlea"), found.get("vestibule")


def cli_summary(section: dict[str, Any]) -> str:
    """One line for the command line: the main figures, or why there are none."""
    cochlea = section.get("cochlea", {})
    if cochlea.get("status") != "measured":
        return cochlea.get("status", "not measured")
    return (f"cochlea A {cochlea['a_value_mm']:.1f} mm, B {cochlea['b_value_mm']:.1f} mm, "
            f"H {cochlea['h_value_mm']:.1f} mm, duct {cochlea['cdl_centreline_mm']:.1f} mm "
            f"(lateral wall {cochlea['cdl_lateral_wall_mm']:.1f} mm), {cochlea['turns']:.2f} turns")
