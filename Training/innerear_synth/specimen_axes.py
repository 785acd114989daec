"""A specimen's patient axes (LPS), read from its anatomy.

The source PNG stacks kept the slice order but no patient axes. Three directions are read from
structures that every temporal bone has, each as a difference of centroids (in mm):

* lateral: internal auditory canal -> external auditory canal (-> labyrinth when the external
  canal was not drawn);
* anterior: vestibule -> cochlea, less its lateral part;
* superior: stapes -> malleus and incus (their heads sit in the attic, above the oval window),
  less its lateral and anterior parts. (Sinus and dura are no guide: label 13 mixes the middle
  fossa's dura, above, with the sigmoid sinus, behind and below.)

The three are orthonormal. Their determinant is the handedness of the voxel frame: +1 if the
voxels show a right ear as a scanner would store it, -1 if they show a left one. A frame whose
handedness disagrees with the side the source names is a mirror image (a PNG stack written
bottom-up, say); its direction matrix then carries the reflection (determinant -1), so that in
physical LPS the specimen is the side it is. The cochlea also turns down and forward from the
vestibule, so the axes are approximate (within ~20 degrees): enough to say which way is up and
which side, not for angle measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import specimens as sp


@dataclass
class PatientAxes:
    lateral: np.ndarray
    anterior: np.ndarray
    superior: np.ndarray
    voxel_handedness: str  # the side the voxel frame shows

    def direction(self, side: str) -> np.ndarray:
        """3x3 direction matrix for a specimen of ``side`` (column k = physical LPS direction of
        voxel axis x, y, z); its determinant is -1 when the voxel frame is mirrored."""
        left = -self.lateral if side == "right" else self.lateral
        return np.stack([left, -self.anterior, self.superior])  # rows L, P, S in voxel-axis mm


def _centroid_mm(labels: np.ndarray, values, spacing_xyz: np.ndarray) -> np.ndarray | None:
    hits = np.argwhere(np.isin(labels, values))
    if not len(hits):
        return None
    return hits.mean(axis=0)[::-1] * spacing_xyz  # [z,y,x] index -> x,y,z mm


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def find_axes(anatomy: np.ndarray, spacing_xyz) -> PatientAxes:
    """Axes of a derived map ([z, y, x] labels with COCHLEA, VESTIBULE, CANALS)."""
    spacing_xyz = np.asarray(spacing_xyz, dtype=float)
    at = lambda *values: _centroid_mm(anatomy, list(values), spacing_xyz)  # noqa: E731
    inner = at(sp.INTERNAL_CANAL)
    outer = at(sp.EXTERNAL_CANAL)
    if outer is None:
        outer = at(sp.COCHLEA, sp.VESTIBULE, sp.CANALS)
    lateral = _unit(outer - inner)
    forward = at(sp.COCHLEA) - at(sp.VESTIBULE)
    anterior = _unit(forward - forward.dot(lateral) * lateral)
    upward = at(sp.MALLEUS, sp.INCUS) - at(sp.STAPES)
    upward = upward - upward.dot(lateral) * lateral - upward.dot(anterior) * anterior
    superior = _unit(upward)
    handedness = "right" if np.linalg.det(np.stack([lateral, anterior, superior], axis=1)) > 0 else "left"
    return PatientAxes(lateral, anterior, superior, handedness)
