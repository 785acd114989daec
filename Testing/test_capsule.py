"""A find counts as an inner ear only if it is fluid inside dense bone (capsule.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import structure_scan
from tiny_model import build_structure_model

from InnerEarSegmentationLib import capsule
from InnerEarSegmentationLib.errors import InputError
from InnerEarSegmentationLib.model import load_model, save_manifest
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter

ROBUST = {"method": "robust-range"}
SPACING = 0.2


def _ball(shape=(60, 60, 60), radius=10) -> np.ndarray:
    z, y, x = np.indices(shape)
    return (x - 30) ** 2 + (y - 30) ** 2 + (z - 30) ** 2 <= radius ** 2


@pytest.mark.parametrize("inside, around, in_bone", [
    (-0.3, 0.8, True),    # fluid in the otic capsule (robust-range: air -1, densest bone +1)
    (0.8, 0.8, False),    # a stretch of bone taken for labyrinth (the top of a head)
    (-0.3, -0.2, False),  # fluid in soft tissue (a chest or abdomen)
    (0.2, -0.5, False),   # brighter than what surrounds it
])
def test_a_find_is_an_ear_only_if_it_is_darker_than_the_bone_round_it(inside, around, in_bone):
    mask = _ball()
    image = np.where(mask, inside, around).astype(np.float32)
    image[:3] = -1.0  # some air in the box
    assert capsule.fluid_contrast(image, mask, SPACING) == pytest.approx(around - inside)
    assert capsule.lies_in_bone(image, mask, SPACING, ROBUST) is in_bone


def test_the_shell_is_measured_clear_of_the_finds_blurred_edge():
    """Only 0.5-1.5 mm out counts: a dark rim right at the edge (partial volume) does not."""
    mask = _ball()
    near = _ball(radius=10 + int(0.5 / SPACING)) & ~mask
    image = np.where(mask, -0.3, 0.8).astype(np.float32)
    image[near] = -0.3
    assert capsule.fluid_contrast(image, mask, SPACING) == pytest.approx(1.1)


def test_the_check_does_not_apply_where_bone_is_not_near_plus_one():
    mask = _ball()
    image = np.zeros(mask.shape, np.float32)  # no contrast at all
    assert capsule.lies_in_bone(image, mask, SPACING, {"method": "zscore", "mean": 0.0, "std": 1000.0})
    assert capsule.lies_in_bone(image, np.zeros_like(mask), SPACING, ROBUST)


def test_the_segmenter_drops_a_find_that_is_not_fluid_in_bone(tmp_path, monkeypatch):
    folder = build_structure_model(tmp_path / "model")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    save_manifest(folder, dict(manifest, normalisation=ROBUST))
    segmenter = Segmenter(load_model(folder), SegmentationSettings(measure=False))
    scan, _ = structure_scan()
    assert sum(s["voxels"] for s in segmenter.segment(scan).report["segments"]) > 1000  # fluid in bone
    monkeypatch.setattr(capsule, "MIN_CONTRAST", 5.0)  # more than any scan can show
    with pytest.raises(InputError, match="No inner ear was found"):
        segmenter.segment(scan)


@pytest.mark.parametrize("in_bone, shown", [((True, False), True), ((False, True), True), ((False, False), False),
                                            ((False,), False), ((True,), True)])
def test_one_ear_in_bone_vouches_for_the_other_and_none_means_no_inner_ear(in_bone, shown):
    """A head's second box lies where the other ear must; a poor segmentation there may lack the
    contrast (the benchmark head's right ear: 0.16) and is kept when the first ear has it."""
    from InnerEarSegmentationLib.pipeline import Ear, shows_an_inner_ear

    assert shows_an_inner_ear([Ear((), None, {}, flag) for flag in in_bone]) is shown
