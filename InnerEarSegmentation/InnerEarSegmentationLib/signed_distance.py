"""Signed distance functions (negative inside, world millimetres) for the phantom generator:
curve helpers, tubes along sampled centrelines, ellipsoids, sphere sets, half-spaces, and their
union evaluated only near each primitive's box."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.spatial import cKDTree

FAR = 50.0  # SDF value reported for points far from everything (mm)

# ----------------------------------------------------------------------------------------------
# small geometry helpers
# ----------------------------------------------------------------------------------------------

def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def rotation(angles_deg: Sequence[float]) -> np.ndarray:
    """Rotation matrix Rz @ Ry @ Rx for angles (about x, y, z) in degrees."""
    ax, ay, az = np.radians(angles_deg)
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def frame(n) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to n and to each other."""
    n = unit(n)
    helper = np.array([1.0, 0, 0]) if abs(n[0]) < 0.9 else np.array([0, 1.0, 0])
    a = unit(np.cross(n, helper))
    return a, np.cross(n, a)


def resample_polyline(points: np.ndarray, step: float) -> np.ndarray:
    """Resample a polyline at (nearly) uniform arc-length steps."""
    points = np.asarray(points, dtype=float)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(2, int(math.ceil(s[-1] / step)) + 1)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, points[:, k]) for k in range(3)], axis=1)


def bezier(p0, p1, p2, n: int = 200) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def smooth_path(points: Sequence, n: int = 400) -> np.ndarray:
    """A smooth curve through control points (Catmull-Rom), densely sampled."""
    p = np.asarray(points, dtype=float)
    p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = []
    per = max(8, n // (len(p) - 3))
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        t = np.linspace(0, 1, per, endpoint=False)[:, None]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    out.append(p[-2][None])
    return np.vstack(out)


# ----------------------------------------------------------------------------------------------
# SDF primitives (world coordinates, mm)
# ----------------------------------------------------------------------------------------------

class Tube:
    """Tube of per-sample radius along a densely sampled centreline.

    sdf = kappa * (|stretch(p) - c_i| - r_i) for the nearest sample c_i, where ``stretch`` scales
    the component along ``axis`` by 1/kappa: with kappa < 1 the cross-section is an ellipse
    flattened along ``axis`` (the cochlear duct is wider than high).  Radii vary slowly along the
    curve, so the SDF is 1-Lipschitz up to a tiny error.
    """

    def __init__(self, points: np.ndarray, radii: np.ndarray, axis=None, kappa: float = 1.0):
        self.points = np.asarray(points, dtype=float)
        self.radii = np.asarray(radii, dtype=float)
        self.axis = None if axis is None else unit(axis)
        self.kappa = float(kappa)
        self.tree = cKDTree(self._stretch(self.points))
        rmax = float(self.radii.max())
        self.lo = self.points.min(axis=0) - rmax
        self.hi = self.points.max(axis=0) + rmax

    def _stretch(self, p: np.ndarray) -> np.ndarray:
        if self.axis is None or self.kappa == 1.0:
            return p
        along = p @ self.axis
        return p + np.outer(along * (1.0 / self.kappa - 1.0), self.axis)

    def sdf(self, p: np.ndarray, bound: float = FAR) -> np.ndarray:
        q = self._stretch(p)
        ub = bound / self.kappa + float(self.radii.max()) + 1e-6
        d, i = self.tree.query(q, k=1, distance_upper_bound=ub)
        out = np.full(len(p), bound, dtype=np.float64)
        ok = np.isfinite(d)
        out[ok] = self.kappa * (d[ok] - self.radii[i[ok]])
        return np.minimum(out, bound)


class Ellipsoid:
    """Ellipsoid with centre, orthonormal axes (columns) and semi-axes; sign-exact SDF
    approximation k0 (k0 - 1) / k1 (close to the Euclidean distance near the surface)."""

    def __init__(self, center, axes: np.ndarray, semi):
        self.center = np.asarray(center, dtype=float)
        self.axes = np.asarray(axes, dtype=float)
        self.semi = np.asarray(semi, dtype=float)
        ext = np.sqrt(((self.axes * self.semi[None, :]) ** 2).sum(axis=1))
        self.lo, self.hi = self.center - ext, self.center + ext

    def sdf(self, p: np.ndarray, bound: float = FAR) -> np.ndarray:
        y = (p - self.center) @ self.axes
        k0 = np.sqrt(((y / self.semi) ** 2).sum(axis=1))
        k1 = np.sqrt(((y / self.semi ** 2) ** 2).sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(k1 > 1e-12, k0 * (k0 - 1.0) / k1, -self.semi.min())
        return np.minimum(d, bound)


class Spheres:
    """Union of many spheres (air cells): min over the k nearest centres of |p - c| - r."""

    def __init__(self, centers: np.ndarray, radii: np.ndarray):
        self.centers = np.asarray(centers, dtype=float).reshape(-1, 3)
        self.radii = np.asarray(radii, dtype=float)
        self.tree = cKDTree(self.centers) if len(self.centers) else None
        rmax = float(self.radii.max()) if len(self.radii) else 0.0
        self.lo = self.centers.min(axis=0) - rmax if len(self.centers) else np.zeros(3)
        self.hi = self.centers.max(axis=0) + rmax if len(self.centers) else np.zeros(3)

    def sdf(self, p: np.ndarray, bound: float = FAR) -> np.ndarray:
        out = np.full(len(p), bound)
        if self.tree is None:
            return out
        k = min(6, len(self.centers))
        ub = bound + float(self.radii.max())
        d, i = self.tree.query(p, k=k, distance_upper_bound=ub)
        d = np.atleast_2d(d.T).T if k == 1 else d
        i = np.atleast_2d(i.T).T if k == 1 else i
        ok = np.isfinite(d)
        r = np.zeros_like(d)
        r[ok] = self.radii[i[ok]]
        val = np.where(ok, d - r, bound)
        return np.minimum(val.min(axis=1), bound)


class HalfSpace:
    """{p : n.p > offset}; sdf = offset - n.p (exact)."""

    def __init__(self, normal, offset: float, lo, hi):
        self.normal = unit(normal)
        self.offset = float(offset)
        self.lo, self.hi = np.asarray(lo, float), np.asarray(hi, float)

    def sdf(self, p: np.ndarray, bound: float = FAR) -> np.ndarray:
        return np.minimum(self.offset - p @ self.normal, bound)


def union_sdf(prims, p: np.ndarray, bound: float = FAR) -> np.ndarray:
    """min over primitives, each evaluated only on points within ``bound`` of its box."""
    out = np.full(len(p), bound)
    if len(p) == 0:
        return out
    for prim in prims:
        near = np.all((p >= prim.lo - bound) & (p <= prim.hi + bound), axis=1)
        if near.all():
            np.minimum(out, prim.sdf(p, bound), out=out)
        elif near.any():
            out[near] = np.minimum(out[near], prim.sdf(p[near], bound))
    return out


def merge_tubes(prims: list) -> list:
    """Fuse the plain (unstretched) tubes of one structure into a single kd-tree."""
    plain = [p for p in prims if isinstance(p, Tube) and (p.axis is None or p.kappa == 1.0)]
    if len(plain) < 2:
        return list(prims)
    rest = [p for p in prims if not any(p is q for q in plain)]
    merged = Tube(np.vstack([p.points for p in plain]), np.concatenate([p.radii for p in plain]))
    return [merged] + rest


def apply_affine(prim, m: np.ndarray, t: np.ndarray, s: float):
    """Map a primitive built in local mm by p -> s * m @ p + t (m orthogonal, det +-1)."""
    if isinstance(prim, Tube):
        return Tube(prim.points @ m.T * s + t, prim.radii * s,
                     None if prim.axis is None else m @ prim.axis, prim.kappa)
    if isinstance(prim, Ellipsoid):
        return Ellipsoid(s * m @ prim.center + t, m @ prim.axes, prim.semi * s)
    if isinstance(prim, Spheres):
        return Spheres(prim.centers @ m.T * s + t, prim.radii * s)
    if isinstance(prim, HalfSpace):
        n = m @ prim.normal
        return HalfSpace(n, s * prim.offset + n @ t, np.full(3, -1e9), np.full(3, 1e9))
    raise TypeError(prim)
