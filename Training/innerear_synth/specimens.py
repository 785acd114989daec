"""The real temporal bones in ``shared/data/temporal-bone-labels`` and the maps derived from them.

The source files hold 16 hand-drawn labels with the bony labyrinth as one label (5). The derived
``<name>_anatomy.nrrd`` files (``Training/data/real-anatomy``) keep every other label and replace
5 by COCHLEA, VESTIBULE and CANALS; their direction and origin put the specimen in patient LPS.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPOSITORY = Path(__file__).resolve().parents[2]
SOURCE_FOLDER = Path(os.environ.get("INNEREAR_SPECIMENS", REPOSITORY.parent / "shared" / "data" / "temporal-bone-labels"))
DERIVED_FOLDER = REPOSITORY / "Training" / "data" / "real-anatomy"

# name -> (source file, side named by the source). LT143 is the other ear of RT143's donor.
SPECIMENS = {
    "RT143": ("RT143_256_labels.nrrd", "right"),
    "RT138": ("RT138_256_labels.nrrd", "right"),
    "RT147": ("RT147_256_labels.nrrd", "right"),
    "LT143": ("LT143_256_labels.nrrd", "left"),
}
DONOR = {"RT143": "143", "LT143": "143", "RT138": "138", "RT147": "147"}

# Source label values (the simulator's table).
AIR, BONE, MALLEUS, INCUS, STAPES, LABYRINTH = 0, 1, 2, 3, 4, 5
INTERNAL_CANAL, SUP_VESTIBULAR_NERVE, INF_VESTIBULAR_NERVE, COCHLEAR_NERVE = 6, 7, 8, 9
FACIAL_NERVE, CHORDA_TYMPANI, CAROTID, SINUS_DURA, VESTIBULAR_AQUEDUCT = 10, 11, 12, 13, 14
TMJ, EXTERNAL_CANAL = 15, 16
# Derived values that replace LABYRINTH.
COCHLEA, VESTIBULE, CANALS = 17, 18, 19
STRUCTURE_OF = {COCHLEA: 1, VESTIBULE: 2, CANALS: 3}  # derived value -> model label
LABEL_COUNT = 20


def source_path(name: str) -> Path:
    return SOURCE_FOLDER / SPECIMENS[name][0]


def derived_path(name: str) -> Path:
    return DERIVED_FOLDER / f"{name}_anatomy.nrrd"


def read_source(name: str) -> sitk.Image:
    """The source label map as shipped (identity direction, origin 0)."""
    path = source_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the real specimens live in shared/data/temporal-bone-labels "
                                "(set INNEREAR_SPECIMENS to another folder).")
    return sitk.ReadImage(str(path))


def read_anatomy(name: str) -> sitk.Image:
    """The derived map (labyrinth split, patient axes); run ``python -m innerear_synth.derive`` first."""
    path = derived_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python -m innerear_synth.derive` (in Training/).")
    return sitk.ReadImage(str(path))


def structures(anatomy: np.ndarray) -> np.ndarray:
    """Model labels (1 cochlea, 2 vestibule, 3 canals, 0 elsewhere) of a derived map."""
    lookup = np.zeros(256, dtype=np.uint8)
    for value, label in STRUCTURE_OF.items():
        lookup[value] = label
    return lookup[anatomy]
