"""Loads a specimen's anatomy map and precomputes what every rendering of it shares.

The anatomy map (``Training/data/real-anatomy/<SPECIMEN>_anatomy.nrrd``) is the source label map
with the bony labyrinth split into 17 cochlea, 18 vestibule, 19 semicircular canals; its header
puts the voxels in patient LPS. The otic-capsule weight and the bone texture depend only on the
anatomy, so they are made once per specimen, not once per scan.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

COCHLEA, VESTIBULE, CANALS = 17, 18, 19
# Output structure value (the model's labels) -> anatomy label.
STRUCTURES = {1: COCHLEA, 2: VESTIBULE, 3: CANALS}
BONE = 1
ANATOMY_FOLDER = Path(__file__).resolve().parents[1] / "data" / "real-anatomy"
CAPSULE_DECAY_MM = 1.0  # the otic capsule's extra density falls off over about a millimetre
CAPSULE_REACH_MM = 5.0  # beyond this the capsule weight is taken as zero
TEXTURE_SIGMA_MM = 0.8  # bone density varies smoothly on this scale (trabecular / pneumatised)


def anatomy_path(specimen: str, folder: Path | None = None) -> Path:
    """Where a specimen's anatomy map lives (``RT143`` -> ``.../RT143_anatomy.nrrd``)."""
    return Path(folder or ANATOMY_FOLDER) / f"{specimen}_anatomy.nrrd"


@dataclass
class Anatomy:
    """A specimen's labels ([z, y, x] uint8) with its LPS geometry and the derived fields."""

    name: str
    labels: np.ndarray
    geometry: sitk.Image  # 1-voxel-per-label image holding only the geometry (origin, spacing, direction)
    capsule: np.ndarray  # float32 0..1, 1 on the labyrinth wall, only where the label is bone
    texture: np.ndarray  # float32, smooth, unit standard deviation over bone

    def index_to_physical(self, index_zyx: np.ndarray) -> np.ndarray:
        """Continuous [z, y, x] indices (n, 3) -> physical LPS points (n, 3)."""
        index_xyz = np.asarray(index_zyx, dtype=float)[:, ::-1]
        direction = np.array(self.geometry.GetDirection()).reshape(3, 3)
        spacing = np.array(self.geometry.GetSpacing())
        return np.array(self.geometry.GetOrigin()) + (index_xyz * spacing) @ direction.T

    def centroid(self, values: list[int]) -> np.ndarray:
        """Physical centroid (LPS mm) of the voxels whose label is in ``values``."""
        index = np.argwhere(np.isin(self.labels, values))
        if index.size == 0:
            raise ValueError(f"{self.name} has no voxels labelled {values}")
        return self.index_to_physical(index.mean(axis=0, keepdims=True))[0]

    def labyrinth_box(self, margin: int = 2) -> tuple[slice, ...]:
        """Index box [z, y, x] around the labyrinth, ``margin`` voxels wider on each side."""
        present = np.argwhere(np.isin(self.labels, list(STRUCTURES.values())))
        low = np.maximum(present.min(axis=0) - margin, 0)
        high = np.minimum(present.max(axis=0) + margin + 1, self.labels.shape)
        return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def from_image(image: sitk.Image, name: str = "anatomy") -> Anatomy:
    """Builds an :class:`Anatomy` from a label image (values 0-16 and 17-19, LPS header)."""
    labels = sitk.GetArrayFromImage(image).astype(np.uint8)
    if not np.isin(labels, list(STRUCTURES.values())).any():
        raise ValueError(f"{name} has no labyrinth labels 17-19 (cochlea, vestibule, canals)")
    geometry = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    geometry.SetSpacing(image.GetSpacing())
    geometry.SetOrigin(image.GetOrigin())
    geometry.SetDirection(image.GetDirection())
    spacing_zyx = np.array(image.GetSpacing()[::-1])
    bone = labels == BONE
    capsule = np.zeros(labels.shape, dtype=np.float32)
    reach = np.ceil(CAPSULE_REACH_MM / spacing_zyx).astype(int)
    labyrinth = np.isin(labels, list(STRUCTURES.values()))
    present = np.argwhere(labyrinth)
    box = tuple(slice(max(int(lo) - r, 0), min(int(hi) + r + 1, n))
                for lo, hi, r, n in zip(present.min(0), present.max(0), reach, labels.shape))
    distance = ndimage.distance_transform_edt(~labyrinth[box], sampling=spacing_zyx)
    capsule[box] = np.exp(-np.maximum(distance - spacing_zyx.min(), 0) / CAPSULE_DECAY_MM)
    capsule[~bone] = 0
    # The texture is part of the specimen (its bone), so it is seeded by the name, not the scan.
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    texture = ndimage.gaussian_filter(rng.standard_normal(labels.shape, dtype=np.float32),
                                      TEXTURE_SIGMA_MM / spacing_zyx)
    texture /= max(float(texture[bone].std()) if bone.any() else float(texture.std()), 1e-6)
    return Anatomy(name, labels, geometry, capsule, texture.astype(np.float32))


def load_anatomy(specimen_or_path: str | Path, folder: Path | None = None) -> Anatomy:
    """Reads ``<folder>/<SPECIMEN>_anatomy.nrrd`` (or a given file) into an :class:`Anatomy`."""
    path = Path(specimen_or_path)
    if not path.suffix:
        path = anatomy_path(str(specimen_or_path), folder)
    if not path.is_file():
        raise FileNotFoundError(f"no anatomy map at {path} (made on main as Training/data/real-anatomy/)")
    name = path.name.split("_anatomy")[0] if "_anatomy" in path.name else path.stem
    return from_image(sitk.ReadImage(str(path)), name)
