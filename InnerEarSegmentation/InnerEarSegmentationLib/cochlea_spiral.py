"""The cochlear duct's centreline and the modiolar axis it winds around.

The centreline is followed along the ridge of the distance to the cochlea's surface, one short
step at a time, recentring in the plane across the duct: a local search that stays in its own
turn where neighbouring turns touch (they do on clinical CT), which a shortest path through the
mask would cut across. The modiolar axis is the line about which that centreline is a smooth
spiral: any other line adds a once-per-turn wobble to the centreline's radius and height, which a
least-squares fit removes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .cochlea_volume import CannotMeasure, CochleaVolume

STEP_MM = 0.1
MAX_LENGTH_MM = 80.0
SKIP_BASE_DEG = 60.0  # the basal hook is no part of the spiral: the axis is fitted beyond it
CAP_RATIO = 0.7
STOP_RATIO = 0.5      # the duct has ended when its radius falls below this share of the recent one


@dataclass
class Axis:
    point: np.ndarray      # on the axis, in the basal-turn plane (LPS mm)
    direction: np.ndarray  # unit, from base to apex

    def frame(self) -> tuple[np.ndarray, np.ndarray]:
        """Two unit vectors spanning the plane across the axis."""
        helper = np.eye(3)[int(np.argmin(np.abs(self.direction)))]
        e1 = np.cross(self.direction, helper)
        e1 /= np.linalg.norm(e1)
        return e1, np.cross(self.direction, e1)

    def cylindrical(self, points: np.ndarray, e1: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """(radius, unwrapped angle in radians, height) of points along a curve."""
        if e1 is None:
            e1 = self.frame()[0]
        e2 = np.cross(self.direction, e1)
        v = points - self.point
        x, y, z = v @ e1, v @ e2, v @ self.direction
        return np.hypot(x, y), np.unwrap(np.arctan2(y, x)), z

    def from_cylindrical(self, radius, angle, height, e1: np.ndarray) -> np.ndarray:
        e2 = np.cross(self.direction, e1)
        return (self.point + np.outer(radius * np.cos(angle), e1) + np.outer(radius * np.sin(angle), e2)
                + np.outer(height, self.direction))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def basal_end(volume: CochleaVolume) -> np.ndarray:
    """Where the duct starts: its opening into the vestibule when the segmentation has one, else
    the point of the cochlea farthest from its own principal axis (the hook sticks out)."""
    if volume.basal_hint is not None:
        return volume.basal_hint
    points = volume.inside_points()
    centre = points.mean(axis=0)
    direction = np.linalg.eigh(np.cov((points - centre).T))[1][:, 0]
    v = points - centre
    radial = v - np.outer(v @ direction, direction)
    return points[int(np.argmax((radial ** 2).sum(axis=1)))]


def _disk(radius: float, spacing: float) -> np.ndarray:
    """(N, 2) offsets of a disk of ``radius`` on a ``spacing`` grid."""
    n = int(np.ceil(radius / spacing))
    grid = np.arange(-n, n + 1) * spacing
    u, v = np.meshgrid(grid, grid)
    keep = u ** 2 + v ** 2 <= radius ** 2
    return np.stack([u[keep], v[keep]], axis=1)


def track_centreline(volume: CochleaVolume, start: np.ndarray) -> np.ndarray:
    """Points every ~0.1 mm along the ridge of ``volume.edt`` from ``start`` to where the duct ends."""
    inside = volume.inside_points()
    if len(inside) == 0:
        raise CannotMeasure("the cochlea is too small to follow its duct")
    start = inside[int(np.argmin(np.linalg.norm(inside - start, axis=1)))]
    tangent = _initial_direction(volume, inside, start)
    point = np.asarray(start, dtype=float)
    points, radii = [point], [float(volume.sample(volume.edt, point[None])[0])]
    disk = _disk(0.5, 0.04)
    steps, low = int(MAX_LENGTH_MM / STEP_MM), 0
    for _ in range(steps):
        helper = np.eye(3)[int(np.argmin(np.abs(tangent)))]
        u = _unit(np.cross(tangent, helper))
        v = np.cross(tangent, u)
        recent = max(radii[-20:])
        scale = min(1.0, max(0.3, 0.6 * recent / 0.5))  # search within about half the lumen
        ahead = point + STEP_MM * tangent
        candidates = ahead + scale * (np.outer(disk[:, 0], u) + np.outer(disk[:, 1], v))
        values = volume.sample(volume.edt, candidates)
        best = values.max()
        top = values >= best - 0.25 * volume.spacing
        centre = (candidates[top] * values[top, None]).sum(axis=0) / max(values[top].sum(), 1e-9)
        radius = float(volume.sample(volume.edt, centre[None])[0])
        low = low + 1 if radius < STOP_RATIO * max(radii[-10:]) else 0
        if radius <= 0.0 or (len(points) * STEP_MM > 1.0 and low >= 3):  # a dip is no end
            break
        moved = centre - point
        if np.linalg.norm(moved) < 1e-6:
            break
        point = centre
        points.append(point)
        radii.append(radius)
        tangent = _unit(point - points[max(0, len(points) - 6)])  # secant over 0.5 mm: no wobble
        if _closes_loop(points):
            raise CannotMeasure("the duct's centreline runs in a ring instead of a spiral: the "
                                "cochlea's turns are fused in this segmentation (too coarse a scan, "
                                "or the turns were segmented as one cavity)")
    return _trim_cap(np.array(points), np.array(radii))


def _trim_cap(points: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Drops the steps taken into the rounded end of the duct, where its radius falls away: the
    duct ends at the centre of that cap."""
    if len(radii) < 20:
        return points
    reference = float(np.median(radii[-15:-5]))
    end = len(radii)
    while end > len(radii) - 12 and radii[end - 1] < CAP_RATIO * reference:
        end -= 1
    return points[:end]


def _initial_direction(volume: CochleaVolume, inside: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Along the duct, away from its end: the long axis of the duct's first 1.5 mm past its
    ridge, turned towards where most of it lies (a direction to the nearby mass alone would
    point across the duct when the start is on its wall)."""
    near = inside[np.linalg.norm(inside - start, axis=1) < 1.0]
    ridge = near[int(np.argmax(volume.sample(volume.edt, near)))]
    local = inside[np.linalg.norm(inside - ridge, axis=1) < 1.5]
    direction = np.linalg.eigh(np.cov((local - local.mean(axis=0)).T))[1][:, -1]
    return direction if (local.mean(axis=0) - start) @ direction >= 0 else -direction


def _closes_loop(points: list) -> bool:
    """True when the track comes back onto itself (a ring, not a spiral)."""
    if len(points) < 60:
        return False
    earlier = np.array(points[:-40])
    return bool(np.min(np.linalg.norm(earlier - points[-1], axis=1)) < 0.5 * STEP_MM)


def principal_axis(volume: CochleaVolume) -> Axis:
    """First guess of the modiolar axis: the cochlea is flatter along it than across."""
    points = volume.inside_points()
    centre = points.mean(axis=0)
    return Axis(centre, np.linalg.eigh(np.cov((points - centre).T))[1][:, 0])


def fit_axis(points: np.ndarray, axis: Axis, iterations: int = 8) -> Axis:
    """The axis about which ``points`` (a centreline, base first) form a smooth spiral.

    Radius and height along the centreline are modelled as cubic polynomials of the angle (plus a
    twice-per-turn term for an elliptic turn); an off-centre or tilted axis shows as a
    once-per-turn term, solved for by linear least squares and removed, a few times over."""
    whole = points
    for _ in range(iterations):
        e1, e2 = axis.frame()
        v = whole - axis.point
        turned = np.abs(np.unwrap(np.arctan2(v @ e2, v @ e1)) - np.arctan2(v[0] @ e2, v[0] @ e1))
        points = whole[turned >= np.radians(SKIP_BASE_DEG)]
        if len(points) < 20:
            break
        v = points - axis.point
        x, y, z = v @ e1, v @ e2, v @ axis.direction
        angle = np.unwrap(np.arctan2(y, x))
        span = angle[-1] - angle[0]
        if abs(span) < 2 * np.pi:
            break
        s = (angle - angle[0]) / span
        c, si = np.cos(angle), np.sin(angle)
        poly = np.stack([s ** k for k in range(4)] + [np.cos(2 * angle), np.sin(2 * angle)], axis=1)
        zeros = np.zeros_like(poly)
        # x cos + y sin = cx cos + cy sin + rho(angle);  -x sin + y cos = -cx sin + cy cos
        design = np.block([[np.stack([c, si], axis=1), poly], [np.stack([-si, c], axis=1), zeros]])
        target = np.concatenate([x * c + y * si, -x * si + y * c])
        shift = np.linalg.lstsq(design, target, rcond=None)[0][:2]
        radius = np.hypot(x, y)
        design = np.concatenate([poly[:, :4], np.stack([radius * c, radius * si], axis=1)], axis=1)
        tilt = np.linalg.lstsq(design, z, rcond=None)[0][4:]
        direction = _unit(axis.direction - tilt[0] * e1 - tilt[1] * e2)
        axis = Axis(axis.point + shift[0] * e1 + shift[1] * e2, direction)
    heights = (whole - axis.point) @ axis.direction
    if heights[-len(heights) // 5:].mean() < heights[:len(heights) // 5].mean():
        axis = Axis(axis.point, -axis.direction)
    return axis


def smooth_along(values: np.ndarray, sigma_samples: float) -> np.ndarray:
    """Gaussian smoothing along a curve, ends kept in place."""
    return ndimage.gaussian_filter1d(values, sigma_samples, axis=0, mode="nearest")
