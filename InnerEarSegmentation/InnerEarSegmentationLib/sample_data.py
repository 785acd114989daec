"""The "Temporal bone (synthetic)" sample for Slicer's Sample Data module: a new user can try the
segmentation in one click, with no download and no patient data.

The scan is a seeded phantom (the same every time), generated on first use into the model cache
folder and reused after that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import SimpleITK as sitk

from .model_store import cache_root
from .outputs import atomic_target

SAMPLE_NAME = "TemporalBoneSynthetic"
NODE_NAME = "Temporal bone (synthetic)"
CATEGORY = "Inner ear"
FILE_NAME = f"{SAMPLE_NAME}.nrrd"
SEED = 2026  # the phantom the command line's first run shows too


def synthetic_temporal_bone(folder: Optional[Path] = None) -> Path:
    """The sample scan's path, generating it (a few seconds, once) if it is not there yet."""
    path = Path(folder or cache_root() / "sample-data") / FILE_NAME
    if not path.is_file():
        from .phantom import make_phantom

        with atomic_target(path, overwrite=False) as temporary:
            sitk.WriteImage(make_phantom(seed=SEED, modality="clinical").image(), str(temporary), True)
    return path
