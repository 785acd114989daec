"""Synthetic temporal-bone CT phantoms with exact inner-ear ground truth.

No labelled real CT can be downloaded where this project is built, so the segmentation model is
trained and tested on these phantoms.  Each phantom is a seeded random labyrinth:

* a cochlea: a tube of flattened-elliptic cross-section swept along a conical spiral of 2.5-2.75
  turns (basal turn about 9 x 7 mm, height about 4.5-5 mm), its lumen tapering from about 1.1 mm
  (radial semi-axis, basal) to about 0.5 mm (apex), joined to the vestibule by the basal hook;
* a vestibule: an ellipsoid of about 5-6 x 3.5 x 3 mm with a smaller spherical recess;
* three semicircular canals (superior, posterior, lateral) in near-orthogonal planes, arc radius
  3-3.5 mm, lumen radius 0.4-0.5 mm, 240-270 degrees of arc, each opening into the vestibule at
  both ends, with an ampulla at one end; the superior and posterior canals share a common crus.

The labyrinth sits in dense otic-capsule bone (1400-2200 HU, 1.5-3 mm thick, irregular), itself in
temporal bone (500-1000 HU, textured) with look-alike cavities that are *not* labelled: mastoid air
cells, the middle ear and external auditory canal (air), the internal auditory canal, the facial
nerve canal, the carotid canal and jugular bulb, the cranial fossae (soft tissue) and a few random
fluid-density blobs and tubes.  Every distractor is kept a margin away from the labyrinth (by
constructive solid geometry on the signed distance), so the labels stay exact.

Geometry is a set of signed distance functions (SDF, negative inside) in world LPS millimetres:
tubes are distances to densely sampled centrelines (``cKDTree``) minus a per-sample radius,
ellipsoids are analytic.  Labels are the SDF signs at voxel centres (vestibule wins over cochlea
over canals), evaluated on any grid with a coarse-to-fine scheme that is exact because every SDF is
(close to) 1-Lipschitz: a point whose coarse interpolated SDF is farther from zero than the
interpolation error bound cannot change sign, and every other point is evaluated exactly.

Labels: 0 background, 1 cochlea, 2 vestibule, 3 semicircular canals (with ampullae and crus).

Usage::

    from InnerEarSegmentationLib.phantom import make_phantom, write_phantom
    p = make_phantom(7, "clinical")
    image, labels = p.image(), p.labels()
    target = p.labels_on(model_grid)          # exact labels on any other grid

    python -m InnerEarSegmentationLib.phantom --out DIR --count 10 --modality clinical --seed 0
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import signed_distance as sd

BACKGROUND, COCHLEA, VESTIBULE, CANALS = 0, 1, 2, 3
LABEL_NAMES = {COCHLEA: "cochlea", VESTIBULE: "vestibule", CANALS: "semicircular canals"}
MODALITIES = ("clinical", "microct")
SPACING_RANGE_MM = {"clinical": (0.2, 0.6), "microct": (0.01, 0.05)}
FOV_RANGE_MM = (18.0, 26.0)

_SAFETY = 1.35       # margin on the interpolation error bound (SDFs are only nearly 1-Lipschitz)
_SAMPLE_STEP = 0.04  # centreline sampling step, mm (scallop depth < 0.001 mm)
_CHUNK = 1 << 21     # points per evaluation chunk (memory bound)


# ----------------------------------------------------------------------------------------------
# anatomy in the local frame (left ear; x lateral, y posterior, z superior; vestibule at 0)
# ----------------------------------------------------------------------------------------------

@dataclass
class _Anatomy:
    structures: dict            # label -> list of primitives (local mm, unit scale)
    landmarks: dict             # name -> point (local mm)
    cochlea_axis: np.ndarray
    cochlea_spiral: np.ndarray = None   # duct centreline, round window to apex (local mm)
    cochlea_lumen: np.ndarray = None    # its radial lumen semi-axis per sample (local mm)


_BASE_SHIFT = {  # canal arc centre offsets (local mm) that keep the three canals apart
    "lateral": np.array([0.0, -0.1, 0.55]),
    "superior": np.array([0.0, 0.0, 0.0]),
    "posterior": np.array([-0.8, 1.0, 0.0]),
}


def _build_labyrinth(g: "Phantom") -> _Anatomy:
    step = _SAMPLE_STEP / g.scale
    vsemi = np.asarray(g.vestibule_semi_mm, dtype=float)

    # vestibule: main ellipsoid (long axis roughly antero-posterior) + spherical recess
    vaxes = sd.rotation(g.vestibule_tilt_deg)
    vest = [sd.Ellipsoid(np.zeros(3), vaxes, vsemi),
            sd.Ellipsoid(vaxes @ np.array([0.25, -1.5, -0.7]), vaxes,
                       np.array([1.25, 1.2, 1.1]) * vsemi[1] / 1.75)]

    def inside_vestibule(direction, frac=0.45):
        """A point on the way from the vestibule centre towards `direction`, well inside."""
        d = sd.unit(direction)
        y = vaxes.T @ d
        k = 1.0 / np.sqrt(((y / vsemi) ** 2).sum())   # distance to the wall
        return d * k * frac

    # cochlea: conical spiral around axis a, base plane centre bc
    a = sd.unit(sd.rotation(g.cochlea_tilt_deg) @ sd.unit([0.55, -0.7, -0.25]))
    start = np.array([0.6, -3.6, -2.7])       # basal end (round-window region), antero-inferior
    post = sd.unit([0.1, 1.0, -0.5])
    e1 = sd.unit(post - (post @ a) * a)         # from the modiolus towards the basal end
    e2 = np.cross(a, e1)
    if e2 @ np.array([0.0, -1.0, -0.5]) < 0:    # basal turn runs antero-inferiorly first
        e2 = -e2
    rho0, rho1 = g.cochlea_basal_radius_mm, g.cochlea_apical_radius_mm
    bc = start - rho0 * e1
    theta_max = 2 * math.pi * g.cochlea_turns
    n = int(theta_max * rho0 / step * 1.2) + 50
    t = np.linspace(0.0, 1.0, n)
    theta = t * theta_max
    rho = rho1 + (rho0 - rho1) * (1 - t) ** g.cochlea_rho_power
    h = g.cochlea_rise_mm * t
    ecc = g.cochlea_ellipticity
    spiral = (bc + np.outer(rho * np.cos(theta), e1) + np.outer(ecc * rho * np.sin(theta), e2)
              + np.outer(h, a))
    r_lumen = g.cochlea_apex_lumen_mm + (g.cochlea_base_lumen_mm - g.cochlea_apex_lumen_mm) * (1 - t) ** 0.8
    tangent0 = sd.unit(spiral[1] - spiral[0])
    vin = inside_vestibule(start, 0.35)
    hook = sd.bezier(vin, start - tangent0 * 0.6 * np.linalg.norm(start - vin), start, 100)
    pts = np.vstack([hook[:-1], spiral])
    rad = np.concatenate([np.full(len(hook) - 1, g.cochlea_base_lumen_mm), r_lumen])
    # resample uniformly (keeps the radius profile)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    ts = np.linspace(0, s[-1], int(s[-1] / step) + 2)
    pts_u = np.stack([np.interp(ts, s, pts[:, k]) for k in range(3)], axis=1)
    rad_u = np.interp(ts, s, rad)
    # round apex: a ball-ended tube is automatic (nearest sample at the end)
    cochlea = [sd.Tube(pts_u, rad_u, axis=a, kappa=g.cochlea_flattening)]

    # semicircular canals
    canals = []
    ends = {}
    specs = {
        # name: (plane normal, outward direction in plane)
        "lateral": (np.array([0.0, 0.0, 1.0]), sd.unit([1.0, 0.0, 0.0])),
        "superior": (sd.unit([-1.0, -1.0, 0.0]), np.array([0.0, 0.0, 1.0])),
        "posterior": (sd.unit([1.0, -1.0, 0.0]), sd.unit([0.62, 0.62, -0.35])),
    }
    for idx, name in enumerate(("lateral", "superior", "posterior")):
        n0, u0 = specs[name]
        rot = sd.rotation(g.canal_tilt_deg[idx])
        nrm = sd.unit(rot @ n0)
        u = sd.unit(rot @ u0)
        u = sd.unit(u - (u @ nrm) * nrm)
        w = np.cross(nrm, u)
        R = g.canal_arc_radius_mm[idx]
        phi = math.radians(360.0 - g.canal_arc_deg[idx]) / 2.0
        d = R * math.cos(phi) + g.canal_offset_mm[idx]
        c = d * u + np.asarray(g.canal_shift_mm[idx]) + _BASE_SHIFT[name]
        ang = np.linspace(-math.pi + phi, math.pi - phi, int(2 * (math.pi - phi) * R / step) + 2)
        arc = c + R * (np.outer(np.cos(ang), u) + np.outer(np.sin(ang), w))
        # arc[0] is at angle -pi+phi: c - R cos(phi) u - R sin(phi) w  (the "minus" end)
        ends[name] = (arc[0], arc[-1], -sd.unit(arc[1] - arc[0]), sd.unit(arc[-1] - arc[-2]))
        r = g.canal_lumen_mm[idx]
        canals.append(sd.Tube(arc, np.full(len(arc), r)))
    # which end has the ampulla: lateral -> anterior (minus-w end), superior -> anterolateral
    # (minus end), posterior -> inferior (minus end); the plus ends of superior and posterior
    # meet in the common crus.
    lm = {}
    for idx, name in enumerate(("lateral", "superior", "posterior")):
        e_minus, e_plus, t_minus, t_plus = ends[name]
        r = g.canal_lumen_mm[idx]
        # ampulla: ellipsoid on the canal near the minus end, long axis along the tangent
        ca = e_minus + t_minus * 0.25
        ax1 = t_minus
        ax2, ax3 = sd.frame(ax1)
        amp = g.ampulla_semi_mm[idx]
        canals.append(sd.Ellipsoid(ca, np.stack([ax1, ax2, ax3], axis=1), [amp[0], amp[1], amp[1]]))
        target = inside_vestibule(e_minus, 0.4)
        ctrl = e_minus + t_minus * 0.5 * np.linalg.norm(target - e_minus)
        conn = sd.resample_polyline(sd.bezier(e_minus, ctrl, target), step)
        canals.append(sd.Tube(conn, np.full(len(conn), max(r, amp[1] * 0.9))))
        lm[f"{name}_ampulla"] = ca
        if name == "lateral":
            target = inside_vestibule(e_plus, 0.4)
            ctrl = e_plus + t_plus * 0.5 * np.linalg.norm(target - e_plus)
            conn = sd.resample_polyline(sd.bezier(e_plus, ctrl, target), step)
            canals.append(sd.Tube(conn, np.full(len(conn), r)))
    # common crus
    es, ep = ends["superior"][1], ends["posterior"][1]
    cc = 0.5 * (es + ep)
    cc = cc - 0.25 * cc  # pull slightly towards the vestibule
    r_cc = g.crus_lumen_mm
    for name, idx in (("superior", 1), ("posterior", 2)):
        e_plus, t_plus = ends[name][1], ends[name][3]
        ctrl = e_plus + t_plus * 0.5 * np.linalg.norm(cc - e_plus)
        conn = sd.resample_polyline(sd.bezier(e_plus, ctrl, cc), step)
        rr = np.linspace(g.canal_lumen_mm[idx], r_cc, len(conn))
        canals.append(sd.Tube(conn, rr))
    target = inside_vestibule(cc, 0.4)
    crus = sd.resample_polyline(np.stack([cc, target]), step)
    canals.append(sd.Tube(crus, np.full(len(crus), r_cc)))
    lm["common_crus"] = cc
    lm["cochlea_base"] = bc
    lm["cochlea_apex"] = spiral[-1]
    lm["round_window"] = start
    return _Anatomy({COCHLEA: cochlea, VESTIBULE: vest, CANALS: canals}, lm, a, spiral, r_lumen)


def _build_distractors(g: "Phantom", lab_local: _Anatomy) -> list:
    """Unlabelled look-alikes in the local frame: list of (kind, primitive, margin_mm, value_key)."""
    rng = np.random.default_rng([g.seed, 23])
    j = lambda s=0.6: rng.normal(0.0, s, 3)  # noqa: E731 - jitter
    out = []
    bc = lab_local.landmarks["cochlea_base"]
    # internal auditory canal: ~4-5 mm tube running medially from its fundus (medial to the
    # vestibule, postero-medial to the cochlear base)
    fundus = 0.55 * bc + np.array([-3.2, 1.0, 0.3]) + j(0.3)
    iac_dir = sd.unit(np.array([-1.0, -0.3, 0.05]) + rng.normal(0, 0.1, 3))
    r_iac = rng.uniform(2.0, 2.5)
    iac = sd.resample_polyline(np.stack([fundus, fundus + 22 * iac_dir]), 0.1)
    out.append(("iac", sd.Tube(iac, np.full(len(iac), r_iac)), 0.5, "csf"))
    # facial nerve canal: labyrinthine segment over the cochlea, geniculate, tympanic segment
    # under the lateral canal, mastoid segment going down
    fpath = sd.smooth_path([fundus + [1.5, -0.8, 1.2], [0.0, -4.8, 2.2] + j(0.3), [1.8, -5.4, 1.6],
                          [3.4, -2.0, -0.5] + j(0.3), [3.8, 2.5, -1.6] + j(0.3), [4.2, 4.8, -6.0],
                          [4.4, 5.5, -14.0]], 400)
    fpath = sd.resample_polyline(fpath, 0.05)
    out.append(("facial", sd.Tube(fpath, np.full(len(fpath), rng.uniform(0.45, 0.65))), 0.35, "nerve"))
    # carotid canal (antero-inferior, medial) and jugular bulb (inferior, posterior)
    cpath = sd.resample_polyline(sd.smooth_path([[-1.0, -5.5, -16.0], [-1.5, -7.5, -8.5] + j(0.5),
                                    [-6.0, -11.0, -6.0] + j(0.5), [-16.0, -14.0, -4.0]], 300), 0.1)
    out.append(("carotid", sd.Tube(cpath, np.full(len(cpath), rng.uniform(2.2, 3.0))), 1.0, "vessel"))
    jb = np.array([-1.0, 4.0, -9.0]) + j(0.6)
    out.append(("jugular", sd.Ellipsoid(jb, sd.rotation(rng.uniform(-20, 20, 3)),
                                      rng.uniform([3.0, 3.0, 2.5], [4.5, 4.0, 3.5])), 1.0, "vessel"))
    jpath = sd.resample_polyline(np.stack([jb, jb + [0.5, 1.0, -14.0]]), 0.1)
    out.append(("jugular", sd.Tube(jpath, np.full(len(jpath), rng.uniform(2.5, 3.2))), 1.0, "vessel"))
    # middle ear (air) lateral to the promontory, external auditory canal, ossicles
    me_c = np.array([5.4, -2.2, -0.6]) + j(0.4)
    me = sd.Ellipsoid(me_c, sd.rotation(rng.uniform(-10, 10, 3)), rng.uniform([2.0, 4.5, 3.2], [2.6, 5.5, 4.0]))
    out.append(("middle_ear", me, 0.7, "air"))
    eac = sd.resample_polyline(np.stack([me_c + [1.5, 0.3, -0.5], me_c + [22.0, 1.0, -2.0]]), 0.1)
    out.append(("eac", sd.Tube(eac, np.full(len(eac), rng.uniform(3.0, 4.0))), 0.7, "air"))
    out.append(("ossicle", sd.Ellipsoid(me_c + [0.6, 0.4, 1.4] + j(0.2), sd.rotation(rng.uniform(-30, 30, 3)),
                                      [0.7, 1.5, 0.6]), -1.0, "ossicle"))
    out.append(("ossicle", sd.Ellipsoid(me_c + [1.0, -1.4, 0.6] + j(0.2), sd.rotation(rng.uniform(-30, 30, 3)),
                                      [0.6, 0.6, 1.6]), -1.0, "ossicle"))
    # mastoid air cells: a cluster postero-laterally
    ncell = int(rng.integers(40, 110))
    center = np.array([6.5, 8.0, -1.0]) + j(1.0)
    cells = center + rng.normal(0.0, 1.0, (ncell, 3)) * rng.uniform([2.5, 2.5, 2.5], [4.5, 4.5, 4.0])
    radii = rng.uniform(0.5, 2.0, ncell)
    out.append(("mastoid", sd.Spheres(cells, radii), None, "air"))   # None: margin = capsule
    # cranial fossae (soft tissue) above the arcuate eminence and postero-medially
    out.append(("mcf", sd.HalfSpace(sd.unit([0.1, 0.05, 1.0]) + rng.normal(0, 0.05, 3),
                                  rng.uniform(7.8, 10.0), -1e9, 1e9), None, "soft"))
    out.append(("pcf", sd.HalfSpace(sd.unit([-0.75, 0.65, 0.1]) + rng.normal(0, 0.05, 3),
                                  rng.uniform(6.5, 9.0), -1e9, 1e9), None, "soft"))
    # random fluid-density blobs and tubes, anywhere; kept away by the margin
    for _ in range(int(rng.integers(3, 8))):
        pos = rng.uniform(-11, 11, 3)
        if rng.random() < 0.5:
            out.append(("blob", sd.Ellipsoid(pos, sd.rotation(rng.uniform(-90, 90, 3)),
                                           rng.uniform(0.4, 2.0, 3)), 1.0, "fluid_blob"))
        else:
            ctrl = [pos, pos + rng.normal(0, 2.5, 3), pos + rng.normal(0, 4.0, 3)]
            path = sd.resample_polyline(sd.bezier(*ctrl, 100), 0.05)
            out.append(("tube", sd.Tube(path, np.full(len(path), rng.uniform(0.3, 0.9))), 1.0, "fluid_blob"))
    return out


# ----------------------------------------------------------------------------------------------
# coarse-to-fine exact label evaluation
# ----------------------------------------------------------------------------------------------

def _lattice(start: int, stop: int, k: int) -> np.ndarray:
    """Every k-th index of [start, stop) plus the last one."""
    return np.unique(np.r_[np.arange(start, stop, k), stop - 1])


def _upsample(coarse: np.ndarray, lattices: Sequence[np.ndarray], box: tuple) -> np.ndarray:
    """Separable linear interpolation of values given at lattice indices to every index in box."""
    out = coarse
    for axis, (lat, sl) in enumerate(zip(lattices, box)):
        fine = np.arange(sl.start, sl.stop)
        if len(lat) == 1:
            out = np.repeat(out, len(fine), axis=axis)
            continue
        j = np.clip(np.searchsorted(lat, fine, side="right") - 1, 0, len(lat) - 2)
        w = ((fine - lat[j]) / (lat[j + 1] - lat[j])).astype(np.float32)
        shp = [1, 1, 1]
        shp[axis] = len(fine)
        w = w.reshape(shp)
        out = np.take(out, j, axis=axis) * (1 - w) + np.take(out, j + 1, axis=axis) * w
    return out


class _GridEval:
    """Coarse-to-fine evaluation of fields on (boxes of) an image grid of any orientation.

    A field is evaluated on a lattice every ``stride`` voxels and linearly upsampled (separably,
    in index space); where the upsampled value is within ``band`` + the interpolation error bound
    of zero it is replaced by the exact value.  For a 1-Lipschitz field (a signed distance) the
    result is exact near zero and sign-exact everywhere.  Boxes are (z, y, x) slice tuples.
    """

    def __init__(self, origin, spacing, direction, size, stride: int | None = None):
        self.origin = np.asarray(origin, dtype=float)
        self.spacing = np.asarray(spacing, dtype=float)
        self.direction = np.asarray(direction, dtype=float).reshape(3, 3)
        self.size = np.asarray(size, dtype=int)
        self.matrix = self.direction * self.spacing[None, :]        # index -> world offset
        self.identity = np.allclose(self.direction, np.eye(3))
        if stride is None:
            stride = int(np.clip(round(0.7 / self.spacing.max()), 2, 16))
        self.stride = stride
        # trilinear interpolation error of a 1-Lipschitz function <= half the cell diagonal
        self.err = _SAFETY * stride * float(np.linalg.norm(self.spacing)) / 2.0
        self._tables = None

    @property
    def shape(self) -> tuple:
        return tuple(int(n) for n in self.size[::-1])

    def whole(self) -> tuple:
        return tuple(slice(0, n) for n in self.shape)

    def box(self, lo, hi) -> Optional[tuple]:
        """Smallest (z, y, x) box holding every voxel centre in the world box [lo, hi]."""
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        idx = np.linalg.solve(self.matrix, (corners - self.origin).T).T
        a = np.clip(np.floor(idx.min(axis=0) - 1e-6).astype(int), 0, self.size)
        b = np.clip(np.ceil(idx.max(axis=0) + 1e-6).astype(int) + 1, 0, self.size)
        if np.any(b <= a):
            return None
        return (slice(a[2], b[2]), slice(a[1], b[1]), slice(a[0], b[0]))

    def chunks(self, sl, limit: int = _CHUNK):
        """Split a box into z-slabs of at most ``limit`` voxels."""
        per = max(1, (sl[1].stop - sl[1].start) * (sl[2].stop - sl[2].start))
        rows = max(1, limit // per)
        for z0 in range(sl[0].start, sl[0].stop, rows):
            yield (slice(z0, min(sl[0].stop, z0 + rows)), sl[1], sl[2])

    def world(self, k, j, i) -> np.ndarray:
        """World points of voxel indices (z, y, x integer arrays of equal length)."""
        if self._tables is None:
            self._tables = [np.outer(np.arange(n), self.matrix[:, a]) for a, n in enumerate(self.size)]
            self._tables[0] += self.origin
        ti, tj, tk = self._tables
        out = ti[i]
        out += tj[j]
        out += tk[k]
        return out

    def points(self, sl) -> np.ndarray:
        zz, yy, xx = np.meshgrid(np.arange(sl[0].start, sl[0].stop), np.arange(sl[1].start, sl[1].stop),
                                 np.arange(sl[2].start, sl[2].stop), indexing="ij")
        return self.world(zz.ravel(), yy.ravel(), xx.ravel())

    def field(self, sl, f, band=None, channels: int = 0, f_fine=None) -> np.ndarray:
        shp = tuple(x.stop - x.start for x in sl)
        tail = (channels,) if channels else ()
        if np.prod(shp) <= 24 ** 3:
            return f(self.points(sl)).astype(np.float32).reshape(shp + tail)
        lats = [_lattice(x.start, x.stop, self.stride) for x in sl]
        zz, yy, xx = np.meshgrid(*lats, indexing="ij")
        coarse = f(self.world(zz.ravel(), yy.ravel(), xx.ravel())).astype(np.float32)
        if channels:
            out = np.stack([_upsample(coarse[:, c].reshape(zz.shape), lats, sl) for c in range(channels)],
                           axis=-1)
        else:
            out = _upsample(coarse.reshape(zz.shape), lats, sl)
        if band is not None:
            for c in range(max(1, channels)):
                # each channel is refined where it is near zero (f_fine(p, c) for channels)
                view = out[..., c] if channels else out
                sel = np.nonzero(np.abs(view) < band + self.err)
                if len(sel[0]):
                    p = self.world(sel[0] + sl[0].start, sel[1] + sl[1].start, sel[2] + sl[2].start)
                    if channels:
                        view[sel] = f_fine(p, c)
                    else:
                        view[sel] = (f if f_fine is None else f_fine)(p)
        return out


def _labyrinth_on(lab: "_Labyrinth", ge: _GridEval, margin: float = 0.0, bound: float = 1.0):
    """Labels on grid ``ge`` and, if margin > 0, the union SDF on the labyrinth box + margin.

    Returns (labels (z, y, x) uint8, union SDF crop or None, crop box or None).
    """
    labels = np.zeros(ge.shape, dtype=np.uint8)
    sl = ge.box(lab.lo - margin, lab.hi + margin)
    if sl is None:
        return labels, None, None
    ucrop = np.empty(tuple(x.stop - x.start for x in sl), dtype=np.float32) if margin > 0 else None
    coarse_bound = max(bound, margin) + ge.err + 1.0
    for sub in ge.chunks(sl):
        s3 = ge.field(sub, lambda p: lab.exact(p, coarse_bound), band=0.0, channels=3,
                      f_fine=lambda p, c: lab.exact_one(p, c, ge.err + 0.5))
        labels[sub] = _labels_from_sdf(s3.reshape(-1, 3)).reshape(s3.shape[:3])
        if ucrop is not None:
            ucrop[sub[0].start - sl[0].start:sub[0].stop - sl[0].start] = s3.min(axis=-1)
    return labels, ucrop, sl


class _Labyrinth:
    """World-space labyrinth: exact per-structure SDFs plus cached coarse grids."""

    ORDER = (COCHLEA, VESTIBULE, CANALS)

    def __init__(self, structures: dict):
        self.structures = {k: sd.merge_tubes(v) for k, v in structures.items()}
        prims = [p for k in self.ORDER for p in self.structures[k]]
        self.lo = np.min([p.lo for p in prims], axis=0)
        self.hi = np.max([p.hi for p in prims], axis=0)

    def exact_one(self, p: np.ndarray, channel: int, bound: float = sd.FAR) -> np.ndarray:
        return sd.union_sdf(self.structures[self.ORDER[channel]], p, bound)

    def exact(self, p: np.ndarray, bound: float = sd.FAR) -> np.ndarray:
        out = np.empty((len(p), 3), dtype=np.float32)
        for c, k in enumerate(self.ORDER):
            out[:, c] = sd.union_sdf(self.structures[k], p, bound)
        return out


@dataclass
class CochleaGeometry:
    """The phantom cochlea as built: a tube of elliptic section (radial semi-axis
    ``lumen_radius_mm``, semi-axis along ``axis`` ``lumen_height_mm``) along a conical spiral from
    the round window (first sample) to the apex, winding ``turns`` times around ``axis`` (unit,
    base to apex) through ``base_centre_mm``.  The basal hook into the vestibule is not included."""

    centreline_mm: np.ndarray
    lumen_radius_mm: np.ndarray
    lumen_height_mm: np.ndarray
    axis: np.ndarray
    base_centre_mm: np.ndarray
    turns: float

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(np.diff(self.centreline_mm, axis=0), axis=1).sum())


def _labels_from_sdf(s: np.ndarray) -> np.ndarray:
    lab = np.zeros(len(s), dtype=np.uint8)
    lab[s[:, 2] < 0] = CANALS
    lab[s[:, 0] < 0] = COCHLEA
    lab[s[:, 1] < 0] = VESTIBULE
    return lab


# ----------------------------------------------------------------------------------------------
# the phantom
# ----------------------------------------------------------------------------------------------

@dataclass
class Phantom:
    """A synthetic temporal-bone CT with exact labyrinth labels.

    Geometry parameters are in local millimetres (unit scale); ``scale``, ``rotation_deg``,
    ``labyrinth_center_mm`` and ``mirror`` place them in the world (LPS).  ``mirror`` reflects
    the whole scene across the plane x = (centre of the field of view), turning the left ear
    into a right ear on the same voxel grid.
    """

    seed: int
    modality: str
    # grid (world LPS mm, identity direction)
    spacing_mm: tuple
    size: tuple
    origin_mm: tuple
    spacing_requested_mm: Optional[tuple] = None
    # placement
    scale: float = 1.0
    rotation_deg: tuple = (0.0, 0.0, 0.0)
    labyrinth_center_mm: tuple = (0.0, 0.0, 0.0)
    mirror: bool = False
    # cochlea
    cochlea_turns: float = 2.6
    cochlea_basal_radius_mm: float = 3.35
    cochlea_apical_radius_mm: float = 0.75
    cochlea_rho_power: float = 1.3
    cochlea_rise_mm: float = 3.6
    cochlea_ellipticity: float = 0.8
    cochlea_base_lumen_mm: float = 1.1
    cochlea_apex_lumen_mm: float = 0.5
    cochlea_flattening: float = 0.8
    cochlea_tilt_deg: tuple = (0.0, 0.0, 0.0)
    # vestibule
    vestibule_semi_mm: tuple = (3.0, 2.0, 1.8)
    vestibule_tilt_deg: tuple = (0.0, 0.0, 0.0)
    # canals: lateral, superior, posterior
    canal_arc_radius_mm: tuple = (3.1, 3.3, 3.3)
    canal_arc_deg: tuple = (250.0, 255.0, 255.0)
    canal_lumen_mm: tuple = (0.45, 0.45, 0.45)
    canal_offset_mm: tuple = (0.6, 0.6, 0.6)
    canal_shift_mm: tuple = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    canal_tilt_deg: tuple = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    ampulla_semi_mm: tuple = ((1.0, 0.8), (1.0, 0.8), (1.0, 0.8))
    crus_lumen_mm: float = 0.55
    # appearance (HU-like)
    capsule_thickness_mm: float = 2.2
    fluid_hu: float = 15.0
    capsule_hu: float = 1800.0
    bone_hu: float = 750.0
    bone_texture_hu: float = 150.0
    soft_hu: float = 35.0
    psf_sigma_mm: float = 0.3
    noise_hu: float = 40.0
    intensity_scale: float = 1.0      # micro-CT: stored = scale * HU + offset
    intensity_offset: float = 0.0

    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # -- geometry ---------------------------------------------------------------------------
    @property
    def fov_center_mm(self) -> np.ndarray:
        return np.asarray(self.origin_mm) + (np.asarray(self.size) - 1) * np.asarray(self.spacing_mm) / 2.0

    def _world_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(m, t): world = scale * m @ local + t, mirror included."""
        m = sd.rotation(self.rotation_deg)
        t = np.asarray(self.labyrinth_center_mm, dtype=float)
        if self.mirror:
            f = np.diag([-1.0, 1.0, 1.0])
            xc = self.fov_center_mm[0]
            m = f @ m
            t = f @ t + np.array([2 * xc, 0.0, 0.0])
        return m, t

    def _anatomy(self) -> _Anatomy:
        if "anatomy" not in self._cache:
            self._cache["anatomy"] = _build_labyrinth(self)
        return self._cache["anatomy"]

    def labyrinth(self) -> _Labyrinth:
        if "labyrinth" not in self._cache:
            m, t = self._world_affine()
            an = self._anatomy()
            world = {k: [sd.apply_affine(p, m, t, self.scale) for p in v] for k, v in an.structures.items()}
            self._cache["labyrinth"] = _Labyrinth(world)
        return self._cache["labyrinth"]

    def landmarks_mm(self) -> dict:
        """Anatomical landmarks (world mm)."""
        m, t = self._world_affine()
        return {k: self.scale * m @ v + t for k, v in self._anatomy().landmarks.items()}

    def cochlea_geometry(self) -> CochleaGeometry:
        """The cochlea's exact construction in world mm, the answer key for measuring it."""
        m, t = self._world_affine()
        an = self._anatomy()
        return CochleaGeometry(
            centreline_mm=self.scale * an.cochlea_spiral @ m.T + t,
            lumen_radius_mm=self.scale * an.cochlea_lumen,
            lumen_height_mm=self.scale * self.cochlea_flattening * an.cochlea_lumen,
            axis=m @ an.cochlea_axis,
            base_centre_mm=self.scale * m @ an.landmarks["cochlea_base"] + t,
            turns=self.cochlea_turns)

    def _distractors(self) -> list:
        if "distractors" not in self._cache:
            m, t = self._world_affine()
            an = self._anatomy()
            self._cache["distractors"] = [(kind, sd.apply_affine(p, m, t, self.scale), margin, value)
                                          for kind, p, margin, value in _build_distractors(self, an)]
        return self._cache["distractors"]

    # -- grids --------------------------------------------------------------------------------
    def reference(self) -> sitk.Image:
        """An empty image carrying this phantom's grid."""
        ref = sitk.Image([int(s) for s in self.size], sitk.sitkUInt8)
        ref.SetSpacing([float(s) for s in self.spacing_mm])
        ref.SetOrigin([float(o) for o in self.origin_mm])
        return ref

    # -- labels -------------------------------------------------------------------------------
    def labels(self) -> sitk.Image:
        if "labels" not in self._cache:
            if "labels_array" in self._cache:       # computed by image() on the same grid
                out = sitk.GetImageFromArray(self._cache["labels_array"])
                out.CopyInformation(self.reference())
                self._cache["labels"] = out
            else:
                self._cache["labels"] = self.labels_on(self.reference())
        out = sitk.Image(self._cache["labels"])
        return out

    def labels_on(self, reference: sitk.Image) -> sitk.Image:
        """Exact labels (SDF signs at voxel centres) on the grid of ``reference``."""
        ge = _GridEval(reference.GetOrigin(), reference.GetSpacing(), reference.GetDirection(),
                       reference.GetSize())
        arr, _, _ = _labyrinth_on(self.labyrinth(), ge)
        out = sitk.GetImageFromArray(arr)
        out.SetOrigin(reference.GetOrigin())
        out.SetSpacing(reference.GetSpacing())
        out.SetDirection(reference.GetDirection())
        return out

    # -- image --------------------------------------------------------------------------------
    def image(self) -> sitk.Image:
        """The CT scan: int16 HU (clinical) or float32 arbitrary units (micro-CT)."""
        if "image" not in self._cache:
            self._cache["image"] = self._render()
        return sitk.Image(self._cache["image"])

    def _render(self) -> sitk.Image:
        rng = np.random.default_rng([self.seed, 97, MODALITIES.index(self.modality)])
        sp = np.array(self.spacing_mm, dtype=float)
        ge = _GridEval(self.origin_mm, sp, np.eye(3), self.size)
        shape = ge.shape                                           # (z, y, x)
        hv = float(np.exp(np.log(sp).mean()))                      # partial-volume width
        err = ge.err
        box, chunks, field, whole = ge.box, ge.chunks, ge.field, ge.whole()

        # 1. temporal bone with two-scale texture (random lattice, linear upsampling)
        vol = np.empty(shape, dtype=np.float32)
        vol[...] = self.bone_hu
        for cell_mm, amp in ((2.5, 1.0), (0.9, 0.6)):
            k = max(1, int(round(cell_mm / sp.mean())))
            lats = [_lattice(0, n, k) for n in shape]
            lo_noise = rng.standard_normal(tuple(len(x) for x in lats)).astype(np.float32)
            for sl in chunks(whole):
                i0 = max(0, np.searchsorted(lats[0], sl[0].start, side="right") - 1)
                i1 = min(len(lats[0]), np.searchsorted(lats[0], sl[0].stop - 1, side="left") + 1)
                sub = [lats[0][i0:i1], lats[1], lats[2]]
                vol[sl] += (self.bone_texture_hu * amp / 1.2) * _upsample(lo_noise[i0:i1], sub, sl)

        # 2. labyrinth SDFs on its neighbourhood (capsule, fluid, distractor margins) and labels
        lab = self.labyrinth()
        cap_margin = self.scale * 3.2 + 2.0
        lab_arr, ucrop, lsl = _labyrinth_on(lab, ge, margin=cap_margin, bound=cap_margin)
        self._cache["labels_array"] = lab_arr

        def u_on(sl):
            """Labyrinth union SDF on slice box sl (far outside the labyrinth box)."""
            out = np.full(tuple(x.stop - x.start for x in sl), sd.FAR, dtype=np.float32)
            if lsl is None:
                return out
            inter = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(sl, lsl))
            if any(x.stop <= x.start for x in inter):
                return out
            dst = tuple(slice(i.start - a.start, i.stop - a.start) for i, a in zip(inter, sl))
            src = tuple(slice(i.start - b.start, i.stop - b.start) for i, b in zip(inter, lsl))
            out[dst] = ucrop[src]
            return out

        # capsule thickness varies smoothly: a few random plane waves
        k_dirs = rng.normal(size=(4, 3))
        k_dirs /= np.linalg.norm(k_dirs, axis=1, keepdims=True)
        k_len = rng.uniform(2 * math.pi / 8.0, 2 * math.pi / 3.0, 4)
        k_phase = rng.uniform(0, 2 * math.pi, 4)
        k_amp = rng.uniform(0.1, 0.25, 4)
        t_max = 3.2 * self.scale

        def thickness(p):
            t = np.full(len(p), self.capsule_thickness_mm)
            for kd, kl, ph, am in zip(k_dirs, k_len, k_phase, k_amp):
                t += am * np.sin(kl * (p @ kd) / self.scale + ph)
            return self.scale * np.clip(t, 1.3, 3.2)

        def capsule_value(p):
            return self.capsule_hu + 60.0 * np.sin(p @ k_dirs[0] * 3.0 + k_phase[1])

        def blend(sl, sdf, value, width=hv):
            occ = np.clip(0.5 - sdf / width, 0.0, 1.0).astype(np.float32)
            v = vol[sl]
            v += occ * (np.asarray(value, dtype=np.float32) - v)

        def keep_off(sl, d, need):
            """CSG: cut d back so that it stays `need` (array or float) off the labyrinth."""
            u = u_on(sl)
            close = u < t_max + 0.5 * self.scale + hv
            if close.any():
                if need is None:
                    need = field(sl, thickness) + 0.3 * self.scale
                d = np.where(close, np.maximum(d, need - u), d)
            return d

        values = {
            "csf": rng.uniform(0, 20), "nerve": rng.uniform(20, 45), "vessel": rng.uniform(30, 60),
            "air": rng.uniform(-1010, -960), "soft": self.soft_hu, "ossicle": rng.uniform(900, 1400),
            "fluid_blob": rng.uniform(0, 40),
        }
        dist = self._distractors()
        # 3. soft tissue (cranial fossae) first, kept off the capsule
        for kind, prim, margin, key in dist:
            if key != "soft":
                continue
            for sl in chunks(whole):
                d = field(sl, lambda p: prim.sdf(p, 5.0))
                if d.min() > hv:
                    continue
                blend(sl, keep_off(sl, d, None), values[key])
        # 4. otic capsule
        if lsl is not None:
            for sl in chunks(lsl):
                u = u_on(sl)
                if u.min() > t_max + hv:
                    continue
                cap_sdf = u - field(sl, thickness)
                blend(sl, cap_sdf, field(sl, capsule_value), width=0.35 * self.scale + hv)
        # 5. other distractors (fluid, vessels, nerve, air, ossicles)
        me = None
        for kind, prim, margin, key in dist:
            if key == "soft":
                continue
            if kind == "middle_ear":
                me = prim
            pad = hv + 0.5
            bsl = box(prim.lo - pad, prim.hi + pad)
            if bsl is None or (kind == "ossicle" and me is None):
                continue
            for sl in chunks(bsl):
                if kind == "ossicle":
                    d = field(sl, lambda p: np.maximum(prim.sdf(p, 3.0), me.sdf(p, 3.0) + 0.3), band=hv)
                else:
                    d = field(sl, lambda p: prim.sdf(p, 3.0), band=hv,
                              f_fine=lambda p: prim.sdf(p, hv + err + 0.5))
                if d.min() > hv:
                    continue
                d = keep_off(sl, d, None if margin is None else margin * self.scale)
                blend(sl, d, values[key])
        # 6. labyrinth fluid
        if lsl is not None:
            for sl in chunks(lsl):
                blend(sl, u_on(sl), self.fluid_hu)
        # 7. acquisition: PSF blur (in place: ndimage filters work line by line), noise, storage
        del ucrop
        sig = self.psf_sigma_mm / sp[::-1]
        ndimage.gaussian_filter(vol, sigma=sig, output=vol, mode="nearest", truncate=3.0)
        noise = np.float32(self.noise_hu)
        arr = np.empty(shape, dtype=np.int16) if self.modality == "clinical" else vol
        for sl in chunks(whole):
            v = vol[sl]
            v += rng.standard_normal(v.shape, dtype=np.float32) * noise
            if self.modality == "clinical":
                arr[sl] = np.clip(np.rint(v), -1024, 3071)
            else:
                v *= np.float32(self.intensity_scale)
                v += np.float32(self.intensity_offset)
        del vol
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing([float(s) for s in sp])
        img.SetOrigin([float(o) for o in self.origin_mm])
        return img

    # -- measurements -------------------------------------------------------------------------
    def volumes_mm3(self, spacing_mm: float = 0.1) -> dict:
        """Volume of each labelled structure (mm^3), by counting exact labels on a fine grid."""
        lab = self.labyrinth()
        lo, hi = lab.lo - 0.5, lab.hi + 0.5
        n = np.ceil((hi - lo) / spacing_mm).astype(int) + 1
        ref = sitk.Image([int(x) for x in n], sitk.sitkUInt8)
        ref.SetSpacing([spacing_mm] * 3)
        ref.SetOrigin([float(x) for x in lo])
        arr = sitk.GetArrayFromImage(self.labels_on(ref))
        counts = np.bincount(arr.ravel(), minlength=4)
        v = spacing_mm ** 3
        out = {LABEL_NAMES[k]: float(counts[k] * v) for k in (COCHLEA, VESTIBULE, CANALS)}
        out["labyrinth"] = float(counts[1:].sum() * v)
        return out


# ----------------------------------------------------------------------------------------------
# random phantoms
# ----------------------------------------------------------------------------------------------

def make_phantom(seed: int, modality: str = "clinical", spacing_mm: float | None = None,
                 fov_mm: float | None = None, max_size: int = 512, *, mirror: bool | None = None,
                 scale: float | None = None) -> Phantom:
    """A random phantom; the same arguments always give the same phantom.

    The anatomy depends on ``seed`` only (not on modality or spacing).  ``spacing_mm`` None
    draws a spacing in the modality's range (clinical 0.2-0.6 mm, possibly slightly anisotropic;
    micro-CT 0.01-0.05 mm); ``fov_mm`` None draws an 18-26 mm box.  Where fov / spacing would
    exceed ``max_size`` voxels along an axis the spacing is raised to fit (``spacing_requested_mm``
    keeps the asked value).  The field of view is enlarged if needed so that the labyrinth and a
    1.5 mm margin always fit.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, not {modality!r}")
    if max_size < 8:
        raise ValueError("max_size must be at least 8")
    g = np.random.default_rng([int(seed), 1])     # anatomy
    a = np.random.default_rng([int(seed), 2, MODALITIES.index(modality)])   # acquisition
    params = dict(
        # inner-ear size varies by about 6 % (s.d.) between adults; kept within 0.85-1.15
        scale=float(np.clip(g.normal(1.0, 0.06), 0.85, 1.15)) if scale is None else float(scale),
        rotation_deg=tuple(float(x) for x in g.uniform(-25, 25, 3)),
        mirror=bool(g.random() < 0.5) if mirror is None else bool(mirror),
        cochlea_turns=float(g.uniform(2.5, 2.75)),
        cochlea_basal_radius_mm=float(g.uniform(3.5, 3.8)),
        cochlea_apical_radius_mm=float(g.uniform(0.65, 0.85)),
        cochlea_rho_power=float(g.uniform(1.2, 1.4)),
        cochlea_rise_mm=float(g.uniform(3.3, 3.9)),
        cochlea_ellipticity=float(g.uniform(0.78, 0.88)),
        cochlea_base_lumen_mm=float(g.uniform(1.15, 1.3)),
        cochlea_apex_lumen_mm=float(g.uniform(0.5, 0.6)),
        cochlea_flattening=float(g.uniform(0.8, 0.9)),
        cochlea_tilt_deg=tuple(float(x) for x in g.uniform(-8, 8, 3)),
        vestibule_semi_mm=tuple(float(x) for x in g.uniform([2.8, 1.85, 1.65], [3.2, 2.15, 1.95])),
        vestibule_tilt_deg=tuple(float(x) for x in g.uniform(-10, 10, 3)),
        canal_arc_radius_mm=tuple(float(x) for x in g.uniform(3.0, 3.5, 3)),
        canal_arc_deg=tuple(float(x) for x in g.uniform(240, 270, 3)),
        canal_lumen_mm=tuple(float(x) for x in g.uniform(0.4, 0.5, 3)),
        canal_offset_mm=tuple(float(x) for x in g.uniform(0.45, 0.75, 3)),
        canal_shift_mm=tuple(tuple(float(y) for y in g.normal(0, 0.15, 3)) for _ in range(3)),
        canal_tilt_deg=tuple(tuple(float(y) for y in g.uniform(-5, 5, 3)) for _ in range(3)),
        ampulla_semi_mm=tuple((float(g.uniform(1.15, 1.3)), float(g.uniform(0.85, 1.0))) for _ in range(3)),
        crus_lumen_mm=float(g.uniform(0.55, 0.65)),
        capsule_thickness_mm=float(g.uniform(1.8, 2.5)),
    )
    # appearance
    params.update(
        fluid_hu=float(a.uniform(0, 40)),
        capsule_hu=float(a.uniform(1400, 2200)),
        bone_hu=float(a.uniform(500, 1000)),
        bone_texture_hu=float(a.uniform(60, 200)),
        soft_hu=float(a.uniform(20, 50)),
    )
    # grid
    lo_s, hi_s = SPACING_RANGE_MM[modality]
    if spacing_mm is None:
        base = float(a.uniform(lo_s, hi_s))
        if modality == "clinical" and a.random() < 0.5:
            spacing = np.array([base, base, min(hi_s, base * a.uniform(1.0, 1.3))])
        else:
            spacing = np.full(3, base)
    else:
        spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,)).copy()
        if np.any(spacing <= 0):
            raise ValueError("spacing_mm must be positive")
    requested = tuple(float(x) for x in spacing)
    fov_base = float(a.uniform(*FOV_RANGE_MM)) if fov_mm is None else float(fov_mm)
    fov = fov_base * (a.uniform(0.93, 1.07, 3) if fov_mm is None else np.ones(3))
    # labyrinth extent (world, before translation) to keep it inside the field of view
    probe = Phantom(seed=int(seed), modality=modality, spacing_mm=(1.0, 1.0, 1.0), size=(1, 1, 1),
                    origin_mm=(0.0, 0.0, 0.0), **{**params, "mirror": False})
    lab = probe.labyrinth()
    ext_lo, ext_hi = lab.lo, lab.hi            # world with centre 0, no mirror
    need = (ext_hi - ext_lo) + 2 * 1.5
    fov = np.maximum(fov, need)
    size = np.ceil(fov / spacing - 1e-9).astype(int)
    if size.max() > max_size:           # raise the spacing (same factor on every axis) to fit
        spacing = spacing * float((fov / spacing).max() / max_size) * (1 + 1e-9)
    size = np.minimum(np.ceil(fov / spacing - 1e-6).astype(int), max_size)
    size = np.maximum(size, 8)
    fov = size * spacing
    # random origin; labyrinth placed at random with its box inside the field of view
    origin_corner = a.uniform(-120, 120, 3).round(2)           # corner of the box
    slack = fov - (ext_hi - ext_lo) - 2 * 1.5
    offset = 1.5 + g.uniform(0, 1, 3) * np.maximum(slack, 0)
    center = origin_corner + offset - ext_lo
    origin = origin_corner + spacing / 2
    # acquisition
    hv = float(np.exp(np.log(spacing).mean()))
    if modality == "clinical":
        psf = float(a.uniform(0.5, 1.0)) * hv
        noise = float(a.uniform(20, 80))
        iscale, ioffset = 1.0, 0.0
    else:
        psf = float(a.uniform(0.3, 0.8)) * hv
        noise = float(a.uniform(10, 60))
        iscale = float(np.exp(a.uniform(math.log(0.3), math.log(3.0))))
        ioffset = float(a.uniform(-500, 1500))
    return Phantom(seed=int(seed), modality=modality, spacing_mm=tuple(float(x) for x in spacing),
                   size=tuple(int(x) for x in size), origin_mm=tuple(float(x) for x in origin),
                   spacing_requested_mm=requested, labyrinth_center_mm=tuple(float(x) for x in center),
                   psf_sigma_mm=psf, noise_hu=noise, intensity_scale=iscale,
                   intensity_offset=ioffset, **params)


def write_phantom(phantom: Phantom, folder: Path, name: str) -> tuple[Path, Path]:
    """Write ``<name>.nrrd`` (image) and ``<name>-label.nrrd`` (labels); return both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image_path = folder / f"{name}.nrrd"
    label_path = folder / f"{name}-label.nrrd"
    sitk.WriteImage(phantom.image(), str(image_path), True)
    sitk.WriteImage(phantom.labels(), str(label_path), True)
    return image_path, label_path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m InnerEarSegmentationLib.phantom",
                                     description="Write synthetic temporal-bone CT phantoms with labels.")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--modality", choices=MODALITIES, default="clinical")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first phantom (then +1, +2...)")
    parser.add_argument("--spacing", type=float, default=None, help="voxel size in mm (default random)")
    parser.add_argument("--fov", type=float, default=None, help="field of view in mm (default random)")
    parser.add_argument("--max-size", type=int, default=512)
    args = parser.parse_args(argv)
    for i in range(args.count):
        t0 = time.perf_counter()
        seed = args.seed + i
        p = make_phantom(seed, args.modality, args.spacing, args.fov, args.max_size)
        paths = write_phantom(p, args.out, f"phantom-{args.modality}-{seed:05d}")
        print(f"{paths[0]}  size {p.size}  spacing {tuple(round(s, 4) for s in p.spacing_mm)}  "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
