"""Cropping later stages to the labyrinth and coarse stages must not change what is found."""

from __future__ import annotations

import json
import shutil

import numpy as np
import SimpleITK as sitk

from conftest import blob_scan
from InnerEarSegmentationLib.cascade import downsample, region_around, upsample
from InnerEarSegmentationLib.model import load_model, save_manifest
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter


def labels_of(model, **settings) -> np.ndarray:
    result = Segmenter(model, SegmentationSettings(**settings)).segment(blob_scan())
    return sitk.GetArrayFromImage(result.labelmap), result.report


def test_cropped_stages_give_the_same_labels_as_full_stages(tiny_model):
    model = load_model(tiny_model)
    cropped, report = labels_of(model, crop=True)
    full, _ = labels_of(model, crop=False)
    assert cropped.any()
    assert np.array_equal(cropped, full)


def test_region_is_a_multiple_of_eight_around_the_mask_and_inside_the_volume():
    mask = np.zeros((64, 64, 64), bool)
    mask[50:60, 3:9, 20:41] = True
    box = region_around(mask, margin=4, multiple=8)
    for side, (low, high) in zip(box, [(46, 64), (0, 13), (16, 45)]):
        assert side.start <= low and side.stop >= high
        assert (side.stop - side.start) % 8 == 0
        assert 0 <= side.start and side.stop <= 64
    assert region_around(np.zeros((16, 16, 16), bool), 4, 8) == (slice(0, 16),) * 3


def test_down_and_up_sampling_keep_the_grid():
    stack = np.random.default_rng(0).random((2, 16, 8, 24)).astype(np.float32)
    small = downsample(stack, 2)
    assert small.shape == (2, 8, 4, 12)
    assert small[1, 3, 2, 5] == np.float32(stack[1, 6:8, 4:6, 10:12].mean())
    assert upsample(small, 2).shape == stack.shape
    assert upsample(small, 2)[0, 7, 5, 11] == small[0, 3, 2, 5]


def test_a_coarse_first_stage_still_finds_the_labyrinth(tiny_model, tmp_path):
    folder = tmp_path / "coarse"
    shutil.copytree(tiny_model, folder)
    data = json.loads((folder / "manifest.json").read_text())
    data["stages"][0]["scale"] = 0.5
    save_manifest(folder, data)
    coarse, report = labels_of(load_model(folder))
    fine, _ = labels_of(load_model(tiny_model))
    overlap = 2 * np.logical_and(coarse > 0, fine > 0).sum() / ((coarse > 0).sum() + (fine > 0).sum())
    assert overlap > 0.97
    assert report["settings"]["crop"] is True
