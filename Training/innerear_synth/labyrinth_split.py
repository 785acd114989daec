"""Split a bony-labyrinth mask into cochlea, vestibule and semicircular canals.

The source specimens draw the labyrinth as one label. The split uses only the shape, so it is
reproducible and needs no hand-placed points:

1. The vestibule's core is the largest part of the labyrinth that a ball of VESTIBULE_BALL_MM
   radius fits into (a morphological opening): the canals (lumen radius ~0.5 mm) and the cochlear
   turns are narrower than that ball, the vestibule (4-6 mm) is not.
2. The thick labyrinth (opening with a TUBE_BALL_MM ball) drops the canal tubes. Its part
   geodesically farther than COCHLEA_REACH_MM from the vestibule core is the cochlea's seed: the
   ampullae sit against the vestibule, the cochlear turns reach 5-9 mm away.
3. Canal seeds are the thin tubes (labyrinth minus the thick part) that do not touch the cochlea.
4. A marker watershed on the negative distance-to-wall grows the three seeds; the boundaries settle
   on the narrowest necks (the cochlea's junction with the vestibule, the ampullae's openings).
5. The vestibule keeps only what lies within VESTIBULE_SHELL_MM (geodesically) of its core; what
   the watershed gave it beyond (ampullae, common crus, the lateral canal's plain end) joins the
   canals, as in the phantom's labels.
6. A piece of 'canal' that holds no canal tube (the basal hook beside the vestibule) joins the
   structure it touches most.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

VESTIBULE_BALL_MM = 1.0
TUBE_BALL_MM = 0.5
COCHLEA_REACH_MM = 3.0
VESTIBULE_SHELL_MM = 0.3
MIN_TUBE_VOXELS = 30
FULL = np.ones((3, 3, 3), dtype=bool)


def ball(radius_voxels: float) -> np.ndarray:
    r = int(np.ceil(radius_voxels))
    z, y, x = np.mgrid[-r:r + 1, -r:r + 1, -r:r + 1]
    return x * x + y * y + z * z <= radius_voxels ** 2


def largest_part(mask: np.ndarray) -> np.ndarray:
    labelled, count = ndimage.label(mask, FULL)
    if count == 0:
        return mask
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled == sizes.argmax()


def geodesic_steps(mask: np.ndarray, seed: np.ndarray, limit: int) -> np.ndarray:
    """Steps (26-neighbour moves inside ``mask``) from ``seed``, up to ``limit``; inf beyond."""
    steps = np.full(mask.shape, np.inf, dtype=np.float32)
    reached = seed & mask
    steps[reached] = 0
    front = reached.copy()
    for step in range(1, limit + 1):
        front = ndimage.binary_dilation(front, FULL) & mask & ~reached
        if not front.any():
            break
        steps[front] = step
        reached |= front
    return steps


def split_labyrinth(labyrinth: np.ndarray, spacing_mm: float) -> np.ndarray:
    """1 cochlea, 2 vestibule, 3 canals on the labyrinth's voxels (0 elsewhere), [z, y, x]."""
    mask = largest_part(ndimage.binary_fill_holes(labyrinth))
    depth = ndimage.distance_transform_edt(mask) * spacing_mm
    thick = ndimage.binary_opening(mask, ball(TUBE_BALL_MM / spacing_mm))
    core = largest_part(ndimage.binary_opening(mask, ball(VESTIBULE_BALL_MM / spacing_mm)))
    if not core.any():
        raise ValueError("No part of the labyrinth is wide enough to be a vestibule.")
    reach = geodesic_steps(thick, core, int(4 * COCHLEA_REACH_MM / spacing_mm))
    cochlea_seed = largest_part(thick & (reach >= COCHLEA_REACH_MM / spacing_mm) & np.isfinite(reach))
    markers = np.zeros(mask.shape, dtype=np.uint8)
    markers[core] = 2
    markers[cochlea_seed] = 1
    near_cochlea = ndimage.binary_dilation(cochlea_seed, ball(1.5))
    tubes, count = ndimage.label(mask & ~thick, FULL)
    tube_seed = np.zeros(mask.shape, dtype=bool)
    for index, piece in enumerate(ndimage.find_objects(tubes), start=1):
        part = tubes[piece] == index
        if part.sum() >= MIN_TUBE_VOXELS and not (part & near_cochlea[piece]).any():
            tube_seed[piece] |= part
    markers[tube_seed & (markers == 0)] = 3
    grown = sitk.MorphologicalWatershedFromMarkers(
        sitk.GetImageFromArray((-depth).astype(np.float32)), sitk.GetImageFromArray(markers),
        markWatershedLine=False, fullyConnected=True)
    labels = (sitk.GetArrayFromImage(grown) * mask).astype(np.uint8)
    shell = geodesic_steps(mask & (labels != 1), core, int(round(VESTIBULE_SHELL_MM / spacing_mm)))
    labels[(labels == 2) & ~np.isfinite(shell)] = 3
    _give_tubeless_canal_pieces_away(labels, tube_seed)
    return labels


def _give_tubeless_canal_pieces_away(labels: np.ndarray, tube_seed: np.ndarray) -> None:
    pieces, count = ndimage.label(labels == 3, FULL)
    for index in range(1, count + 1):
        piece = pieces == index
        if (piece & tube_seed).any():
            continue
        rim = ndimage.binary_dilation(piece, FULL) & ~piece
        touching = np.bincount(labels[rim], minlength=4)[1:3]
        if touching.any():
            labels[piece] = 1 + int(touching.argmax())
