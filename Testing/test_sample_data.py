"""The Sample Data entry's scan: generated once, the same every time, and segmentable."""

from __future__ import annotations

import SimpleITK as sitk

from InnerEarSegmentationLib.cli import main
from InnerEarSegmentationLib.sample_data import synthetic_temporal_bone
from InnerEarSegmentationLib.scanio import read_scan


def test_generated_once_then_reused(tmp_path):
    path = synthetic_temporal_bone(tmp_path)
    stamp = path.stat().st_mtime_ns
    assert synthetic_temporal_bone(tmp_path) == path and path.stat().st_mtime_ns == stamp
    image = read_scan(path)  # passes every input check
    assert image.GetDimension() == 3 and min(image.GetSize()) >= 8


def test_same_scan_in_every_cache(tmp_path):
    one = sitk.GetArrayFromImage(sitk.ReadImage(str(synthetic_temporal_bone(tmp_path / "a"))))
    two = sitk.GetArrayFromImage(sitk.ReadImage(str(synthetic_temporal_bone(tmp_path / "b"))))
    assert (one == two).all()


def test_the_sample_is_segmented(tiny_model, tmp_path):
    path = synthetic_temporal_bone(tmp_path)
    assert main([str(path), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--quiet"]) == 0
