"""The model-grid preprocessing: which grid voxels the scan covers, and a normalisation that
assumes no units and is not moved by padding."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from InnerEarSegmentationLib import preprocess


def _scan(size=(20, 30, 10), spacing=(0.5, 0.4, 1.0), direction=None, value=100.0) -> sitk.Image:
    image = sitk.GetImageFromArray(np.full(size[::-1], value, dtype=np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin((3.0, -2.0, 7.0))
    if direction is not None:
        image.SetDirection(direction)
    return image


def test_footprint_matches_resampling_a_ones_image():
    rotated = sitk.VersorTransform((0.3, 0.5, 0.2), 0.7).GetMatrix()
    for direction in (None, rotated):
        scan = _scan(direction=direction)
        grid = preprocess.model_grid(scan, 32, min_extent_mm=30.0)
        ones = sitk.Image(scan.GetSize(), sitk.sitkUInt8) + 1
        ones.CopyInformation(scan)
        expected = sitk.GetArrayFromImage(sitk.Resample(ones, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
        inside = preprocess.scan_footprint(scan, grid)
        assert 0 < inside.sum() < inside.size
        assert (inside != expected.astype(bool)).mean() < 0.01  # differences only on the edge


def test_robust_range_ignores_padding_and_units():
    rng = np.random.default_rng(0)
    tissue = rng.choice([-1000.0, 40.0, 1800.0], size=(30, 30, 30), p=[0.2, 0.4, 0.4])
    padded = np.full((60, 60, 60), -1000.0)
    padded[15:45, 15:45, 15:45] = tissue
    inside = np.zeros(padded.shape, dtype=bool)
    inside[15:45, 15:45, 15:45] = True
    method = {"method": "robust-range"}
    alone = preprocess.normalise(tissue, method)
    in_padding = preprocess.normalise(padded, method, inside)[15:45, 15:45, 15:45]
    np.testing.assert_allclose(in_padding, alone, atol=1e-6)
    arbitrary_units = preprocess.normalise(tissue * 7.5 + 30000.0, method)  # cone-beam gray values
    np.testing.assert_allclose(arbitrary_units, alone, atol=1e-5)
    assert alone.min() == -1.0 and alone.max() == 1.0
    # The old per-volume z-score moves with the padding: the reason for the new method.
    zscore = {"method": "volume-zscore"}
    shifted = preprocess.normalise(padded, zscore)[15:45, 15:45, 15:45] - preprocess.normalise(tissue, zscore)
    assert np.abs(shifted).max() > 0.1


def test_prepare_uses_the_footprint_for_a_tight_crop():
    values = np.linspace(0.0, 1000.0, 10 * 12 * 14, dtype=np.float32).reshape(10, 12, 14)
    scan = sitk.GetImageFromArray(values)
    scan.SetSpacing((0.5, 0.5, 0.5))
    prepared = preprocess.prepare(scan, 32, {"method": "robust-range"}, min_extent_mm=20.0)
    inside = preprocess.scan_footprint(scan, prepared.grid)
    assert inside.mean() < 0.2  # a 7 mm crop in a 20 mm cube
    assert prepared.array[~inside].max() == -1.0  # padding reads as the darkest value
    assert np.percentile(prepared.array[inside], 50) > -0.5  # the scan keeps its full range


@pytest.mark.parametrize("centre", [(0.0, 0.0, 0.0), (27.0, -20.0, 10.0)])  # inside; half out of the scan
def test_a_box_is_resampled_from_its_own_neighbourhood_as_from_the_whole_scan(centre):
    from InnerEarSegmentationLib.preprocess import _covering, resample_to_grid, roi_grid

    rng = np.random.default_rng(4)
    array = ndimage.gaussian_filter(rng.normal(0, 400, (60, 120, 120)), 2).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.5, 0.5, 0.5))
    image.SetOrigin((-30.0, -30.0, -15.0))
    grid = roi_grid(np.array(centre), 12.0, 48)
    assert np.prod(_covering(image, grid).GetSize()) < 0.2 * np.prod(image.GetSize())
    whole = sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), grid, sitk.Transform(),
                                                 sitk.sitkBSpline, float(array.min()), sitk.sitkFloat32))
    np.testing.assert_allclose(resample_to_grid(image, grid), whole, atol=1e-3 * float(np.ptp(array)))


def test_the_footprint_is_each_grid_voxel_mapped_into_the_scan():
    """Slice by slice as it is computed, against each voxel centre mapped by SimpleITK itself."""
    rotated = sitk.VersorTransform((0.3, 0.5, 0.2), 0.7).GetMatrix()
    scan = _scan(direction=rotated)
    grid = preprocess.roi_grid(np.array(scan.GetOrigin()) + 4.0, 14.0, 12)
    inside = preprocess.scan_footprint(scan, grid)
    limit = np.array(scan.GetSize()) - 0.5
    for z, y, x in np.ndindex(inside.shape):
        index = np.array(scan.TransformPhysicalPointToContinuousIndex(
            grid.TransformIndexToPhysicalPoint((x, y, z))))
        assert inside[z, y, x] == bool(np.all((index >= -0.5) & (index <= limit))), (z, y, x)
    assert 0 < inside.sum() < inside.size


def test_a_whole_head_grid_is_resampled_in_slabs_as_in_one_piece(monkeypatch):
    """Slabs each from their own part of the scan (the B-spline's memory) give the same values."""
    rng = np.random.default_rng(5)
    array = ndimage.gaussian_filter(rng.normal(0, 400, (50, 70, 60)), 2).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.6, 0.6, 0.9))
    image.SetDirection(sitk.VersorTransform((0.1, 0.2, 0.9), 0.4).GetMatrix())
    grid = preprocess.model_grid(image, 40)
    one_piece = preprocess.resample_to_grid(image, grid)
    monkeypatch.setattr(preprocess, "BSPLINE_PIECE_VOXELS", 20_000)  # ~10 slabs
    slabs = preprocess.resample_to_grid(image, grid)
    np.testing.assert_allclose(slabs, one_piece, atol=1e-3 * float(np.ptp(array)))
