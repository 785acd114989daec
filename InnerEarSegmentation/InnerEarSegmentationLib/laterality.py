"""Which ear: the side named by the scan's patient axes, checked against the labyrinth's own shape.

From the header: the cochlea lies medial to the semicircular canals, so in LPS (x grows towards
the patient's left) a right ear has its cochlea at larger x than its canals, a left ear at
smaller x. A header flipped left-right turns this round without any sign in the image.

From the anatomy: left and right labyrinths are mirror images, and the cochlea's spiral is where
the handedness shows. Seen down the modiolar axis pointing to the apex, with angles counted from
the vestibule, the duct starts at the vestibule on its widest turn and narrows as it winds; the
radius is therefore correlated with the sine of that angle, with opposite signs in right and left
ears. The correlation needs no patient axes, so it names the side of a specimen scan without any
and flags a header that disagrees with the anatomy. On the four hand-labelled real temporal bones
(Training/data/real-anatomy) it is +0.15 to +0.20 for the right ears and -0.09 for the left one;
below ``ANATOMY_MARGIN`` in size the spiral is taken as unreadable and the check says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from .geometry import Geometry
from .labels import Label
from .terminology import has_entry, terminology_entry

RIGHT, LEFT = "right", "left"
ANATOMY_MARGIN = 0.04   # |spiral correlation| below this: the anatomy does not tell the side
HEADER_MARGIN_MM = 1.0  # |cochlea - canals| along x below this: the header does not tell it
# Voxels coarser than this (any axis) blur the cochlea's turns together (the lumen of a turn is
# about 1 mm, the bone between turns a few tenths): its spiral is not read. On synthetic head CTs
# with 0.9-1.5 mm slices the reading was as often wrong as right.
SPIRAL_MAX_SPACING_MM = 0.7
SPIRAL_MIN_COCHLEA_MM3 = 20.0  # a quarter of a cochlea: less holds no turn to read


@dataclass
class SideReading:
    """The side from the header, from the anatomy, and the one the result is named by."""

    header: str | None
    anatomy: str | None
    spiral_score: float | None
    header_offset_mm: float | None
    axes_known: bool
    header_from_place: bool = False  # the header side is the ear's place in a scan of both ears
    too_coarse: bool = False  # the scan's voxels cannot show the spiral; the anatomy was not read

    @property
    def side(self) -> str | None:
        """The header's side where the scan has patient axes, else the anatomy's."""
        return self.header if self.axes_known and self.header else self.anatomy

    @property
    def source(self) -> str:
        if self.axes_known and self.header:
            return "scan's patient axes (LPS" + ("; the ear's place in the head)" if self.header_from_place else ")")
        return "labyrinth's anatomy (the scan has no patient axes)" if self.anatomy else "undetermined"

    @property
    def agrees(self) -> bool | None:
        """None when either reading is missing."""
        if not self.axes_known or self.header is None or self.anatomy is None:
            return None
        return self.header == self.anatomy

    def warning(self) -> str | None:
        """A sentence for the report, the command line and the panel when the two disagree."""
        if self.agrees is False:
            return (f"Side check failed: the scan's header puts this labyrinth on the {self.header}, but its "
                    f"anatomy (the cochlea's spiral) is that of a {self.anatomy} ear. The header may be flipped "
                    "left-right: check the scan's orientation before using the side of this result.")
        return None

    def describe(self) -> dict[str, Any]:
        return {"side": self.side, "from": self.source, "axes_known": self.axes_known, "header_side": self.header,
                "anatomy_side": self.anatomy, "agrees": self.agrees, "voxels_too_coarse_for_spiral": self.too_coarse,
                "spiral_score": None if self.spiral_score is None else round(self.spiral_score, 3),
                "cochlea_medial_offset_mm": None if self.header_offset_mm is None else round(self.header_offset_mm, 2)}


def has_patient_axes(scan: Geometry) -> bool:
    """False for a header that looks unset (identity direction at the origin), as many specimen and
    micro-CT files are: their x axis need not be the patient's left."""
    identity = np.allclose(np.reshape(scan.direction, (3, 3)), np.eye(3))
    return not (identity and np.allclose(scan.origin, 0.0))


def _points(labels: np.ndarray, grid: sitk.Image, value: int) -> np.ndarray:
    """Physical (LPS mm) centres of the voxels holding ``value`` on an identity-direction grid."""
    index = np.argwhere(labels == value)[:, ::-1].astype(float)
    return np.asarray(grid.GetOrigin()) + index * np.asarray(grid.GetSpacing())


def spiral_score(cochlea: np.ndarray, vestibule_centre: np.ndarray) -> float:
    """Correlation of the cochlea's radius with the sine of the angle from the vestibule, about its
    modiolar axis turned to the apex: > 0 in a right ear, < 0 in a left one."""
    centre = cochlea.mean(axis=0)
    offsets = cochlea - centre
    axis = np.linalg.eigh(np.cov(offsets.T))[1][:, 0]  # the cochlea is flattest along its modiolus
    if axis @ (centre - vestibule_centre) < 0:  # the apex points away from the vestibule
        axis = -axis
    towards = vestibule_centre - centre
    towards -= (towards @ axis) * axis
    first = towards / max(np.linalg.norm(towards), 1e-9)
    second = np.cross(axis, first)
    x, y = offsets @ first, offsets @ second
    radius, angle = np.hypot(x, y), np.arctan2(y, x)
    return float(np.mean((radius - radius.mean()) * np.sin(angle)) / max(radius.std(), 1e-9))


def read_side(labels: np.ndarray, grid: sitk.Image, scan: Geometry, cochlea: int, vestibule: int,
              canals: int) -> SideReading:
    """Both readings from structure labels ([z, y, x]) on an LPS-aligned grid (the model's)."""
    parts = {value: _points(labels, grid, value) for value in (cochlea, vestibule, canals)}
    axes_known = has_patient_axes(scan)
    if any(len(points) < 20 for points in parts.values()):
        return SideReading(None, None, None, None, axes_known)
    centres = {value: points.mean(axis=0) for value, points in parts.items()}
    offset = float(centres[cochlea][0] - centres[canals][0])
    header = None if abs(offset) < HEADER_MARGIN_MM else (RIGHT if offset > 0 else LEFT)
    score = spiral_score(parts[cochlea], centres[vestibule])
    coarse = max(scan.spacing) > SPIRAL_MAX_SPACING_MM
    too_little = len(parts[cochlea]) * float(np.prod(grid.GetSpacing())) < SPIRAL_MIN_COCHLEA_MM3
    anatomy = None if abs(score) < ANATOMY_MARGIN or coarse or too_little else (RIGHT if score > 0 else LEFT)
    return SideReading(header, anatomy, score, offset, axes_known, too_coarse=coarse)


def structure_values(labels) -> tuple[int, int, int] | None:
    """Values of the cochlea, vestibule and semicircular canals among a model's labels (by name);
    None for a model without all three (a single 'inner ear' label has no readable spiral)."""
    found = {label.name.lower(): label.value for label in labels}
    values = (found.get("cochlea"), found.get("vestibule"), found.get("semicircular canals"))
    return None if None in values else values


def sided_name(name: str, side: str) -> str:
    """A structure's name for one side: ("Cochlea", "right") -> "Right cochlea"."""
    return f"{side.capitalize()} {name[0].lower()}{name[1:]}"


def sided(label: Label, side: str | None) -> Label:
    """The label named and coded for its side ("Right cochlea", laterality modifier Right)."""
    if side is None or not has_entry(label.name):
        return label
    return Label(label.value, sided_name(label.name, side), label.color, terminology_entry(label.name, side),
                 label.description)


def side_summary(section: dict[str, Any]) -> str:
    """One line for the command line and the panel from the report's ``laterality``."""
    side = section.get("side")
    if not side and section.get("cochlea_medial_offset_mm") is None:
        return "side not determined (the segmentation lacks a cochlea, vestibule or canals large enough to read)"
    if not side:
        header = ("the scan has no patient axes" if not section.get("axes_known")
                  else "the cochlea is not clearly medial of the canals")
        return f"side not determined ({header}, and the cochlea's spiral could not be read)"
    return f"{side} ear (from the {section.get('from')}; {_check(section)})"


def _check(section: dict[str, Any]) -> str:
    """How the side was checked against the anatomy, in words."""
    if section.get("agrees") is not None:
        return "the anatomy agrees" if section["agrees"] else "THE ANATOMY DISAGREES (see warning)"
    if section.get("voxels_too_coarse_for_spiral"):
        return f"not checked against the anatomy: voxels over {SPIRAL_MAX_SPACING_MM:g} mm do not show the cochlea's turns"
    if section.get("anatomy_side") is None:
        return "not checked against the anatomy"
    return "no patient axes to check against"
