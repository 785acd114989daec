"""Cropping later stages to the labyrinth and coarse stages must not change what is found."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from conftest import blob_scan, planted_regions, structure_scan
from InnerEarSegmentationLib.cascade import downsample, region_around, run_cascade, upsample
from InnerEarSegmentationLib.model import load_model, save_manifest
from InnerEarSegmentationLib.phantom import make_phantom
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter
from InnerEarSegmentationLib.preprocess import prepare
from InnerEarSegmentationLib.progress import Progress


def labels_of(model, **settings) -> np.ndarray:
    result = Segmenter(model, SegmentationSettings(**settings)).segment(blob_scan())
    return sitk.GetArrayFromImage(result.labelmap), result.report


@pytest.fixture(scope="module")
def structures_on_grid(structure_model):
    """The structure model's stages and sessions, a grid-aligned phantom labyrinth prepared on its
    grid (model voxels are scan voxels) and that scan's truth and planted regions."""
    segmenter = Segmenter(load_model(structure_model), SegmentationSettings(device="cpu"))
    image, truth = structure_scan()
    prepared = prepare(image, segmenter.model.grid_size, segmenter.model.normalisation)
    assert prepared.array.shape == truth.shape
    return segmenter, prepared.array, truth, planted_regions(image)


def test_cropped_stages_give_the_same_labels_as_full_stages(structures_on_grid):
    """Stages 2-3 of the structure model label only inside the previous mask, so a crop that
    cut the labyrinth or pasted the stage's output in the wrong place would change the labels."""
    segmenter, image, truth, _ = structures_on_grid
    args = (segmenter.stages, segmenter.sessions(), segmenter.model.threshold)
    cropped, full = run_cascade(image, *args, crop=True), run_cascade(image, *args, crop=False)
    assert np.prod([stop - start for start, stop in cropped.boxes["stage3"]]) < 0.6 * image.size
    assert full.boxes["stage3"] == [[0, n] for n in image.shape]
    labels = [np.where(out.mask, out.probabilities.argmax(axis=0), 0) for out in (cropped, full)]
    assert set(np.unique(labels[0])) == {0, 1, 2, 3}
    np.testing.assert_array_equal(labels[0], labels[1])
    # Outside the box the reading is background, a proper distribution (the mirror average and the
    # mapping back read it there), in float32 like the network's own output.
    assert cropped.probabilities.dtype == np.float32
    np.testing.assert_allclose(cropped.probabilities.sum(axis=0), 1.0, atol=1e-5)


def test_later_stages_see_only_the_largest_component(structures_on_grid):
    """The distractor ball is found by stage 1 but must not reach stage 2's mask input or box."""
    segmenter, image, truth, planted = structures_on_grid
    output = run_cascade(image, segmenter.stages, segmenter.sessions(), segmenter.model.threshold)
    labyrinth = truth > 0
    margin = max(8, image.shape[0] // 16)
    expected_box = [[s.start, s.stop] for s in region_around(labyrinth, margin, 8)]
    assert output.boxes["stage2"] == expected_box and output.boxes["stage3"] == expected_box
    assert ndimage.label(output.mask, np.ones((3, 3, 3)))[1] == 1
    assert not output.mask[planted["distractor"]].any()
    np.testing.assert_array_equal(output.mask, labyrinth)


def test_region_is_a_multiple_of_eight_around_the_mask_and_inside_the_volume():
    mask = np.zeros((64, 64, 64), bool)
    mask[50:60, 3:9, 20:41] = True
    box = region_around(mask, margin=4, multiple=8)
    for side, (low, high) in zip(box, [(46, 64), (0, 13), (16, 45)]):
        assert side.start <= low and side.stop >= high
        assert (side.stop - side.start) % 8 == 0
        assert 0 <= side.start and side.stop <= 64
    assert region_around(np.zeros((16, 16, 16), bool), 4, 8) == (slice(0, 16),) * 3


def test_region_is_the_masks_exact_extent_plus_the_margin_when_no_rounding_is_asked():
    """Multiple 1 leaves nothing to round up, so the box must end exactly one past the last voxel
    found (plus the margin): on each axis the mask's two extreme voxels lie far apart."""
    mask = np.zeros((64, 64, 64), bool)
    mask[10, 30, 5] = mask[20, 40, 50] = True
    assert region_around(mask, margin=0, multiple=1) == (slice(10, 21), slice(30, 41), slice(5, 51))
    assert region_around(mask, margin=3, multiple=1) == (slice(7, 24), slice(27, 44), slice(2, 54))
    # Voxels 10..25 span 16, already a multiple of 8: nothing is added; 11 and 46 grow to 16 and 48.
    mask[25, 40, 50] = True
    assert region_around(mask, margin=0, multiple=8) == (slice(10, 26), slice(30, 46), slice(5, 53))


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


def test_mirror_average_reads_a_mirrored_scan_as_the_mirror_of_its_reading():
    """With the shipped (trained, not mirror-symmetric) model: averaging must flip the mirrored
    pass back, so mirroring the input mirrors the output exactly, and it must change the reading."""
    segmenter = Segmenter(load_model())
    model = segmenter.model
    image = prepare(make_phantom(seed=11, spacing_mm=0.4, fov_mm=20.0).image(), model.grid_size,
                    model.normalisation, model.min_extent_mm).array
    args = (segmenter.stages, segmenter.sessions(), model.threshold)
    averaged = run_cascade(image, *args, mirror_average=True)
    of_mirror = run_cascade(np.ascontiguousarray(image[:, :, ::-1]), *args, mirror_average=True)
    assert np.allclose(averaged.probabilities, of_mirror.probabilities[:, :, :, ::-1], atol=1e-5)
    assert np.array_equal(averaged.mask, of_mirror.mask[:, :, ::-1])
    single = run_cascade(image, *args)
    assert np.abs(single.probabilities - averaged.probabilities).max() > 0.05
    overlap = 2 * (single.mask & averaged.mask).sum() / (single.mask.sum() + averaged.mask.sum())
    assert 0.9 < overlap < 1.0


def test_mirror_average_follows_the_manifest_unless_the_settings_say_otherwise(tiny_model, tmp_path):
    folder = tmp_path / "mirrored"
    shutil.copytree(tiny_model, folder)
    data = json.loads((folder / "manifest.json").read_text())
    data["mirror_average"] = True
    save_manifest(folder, data)
    _, asked = labels_of(load_model(folder))
    _, overridden = labels_of(load_model(folder), mirror_average=False)
    _, plain = labels_of(load_model(tiny_model))
    assert asked["settings"]["mirror_average"] is True and "mirror_average" in asked["timings_s"]
    assert overridden["settings"]["mirror_average"] is False and "mirror_average" not in overridden["timings_s"]
    assert plain["settings"]["mirror_average"] is False


def test_mirror_average_of_a_mirror_symmetric_model_is_its_single_reading(structures_on_grid):
    """The structure model reads each voxel alone, so its reading of the mirror is the mirror of
    its reading: flipped back and averaged, it must equal the single pass on this asymmetric scan."""
    segmenter, image, _, _ = structures_on_grid
    args = (segmenter.stages, segmenter.sessions(), segmenter.model.threshold)
    single = run_cascade(image, *args)
    averaged = run_cascade(image, *args, mirror_average=True)
    np.testing.assert_allclose(averaged.probabilities, single.probabilities, atol=1e-6)
    np.testing.assert_array_equal(averaged.mask, single.mask)
    assert set(averaged.boxes) == {"stage1", "stage2", "stage3", "stage1_mirrored", "stage2_mirrored",
                                   "stage3_mirrored"}
    assert set(averaged.timings) == set(single.timings) | {"mirror_average"}


def test_keep_largest_decides_whether_a_stray_find_stays_also_in_the_mirror_average(structures_on_grid):
    """Stage 1 alone finds the distractor ball too (cochlea density): it stays only when the largest
    component is not asked for, with or without averaging the mirror."""
    segmenter, image, truth, planted = structures_on_grid
    args = (segmenter.stages[:1], segmenter.sessions()[:1], segmenter.model.threshold)
    labyrinth = truth > 0
    for mirror in (False, True):
        largest = run_cascade(image, *args, keep_largest=True, mirror_average=mirror)
        everything = run_cascade(image, *args, keep_largest=False, mirror_average=mirror)
        np.testing.assert_array_equal(largest.mask, labyrinth, err_msg=f"mirror {mirror}")
        np.testing.assert_array_equal(everything.mask, labyrinth | planted["distractor"], err_msg=f"mirror {mirror}")


def test_a_first_stage_reading_handed_in_is_taken_as_stage_one(structures_on_grid):
    """The locator's check hands on stage 1's reading of the box: the cascade must take it as stage
    1's result (not compute stage 1 again, nor give it to a later stage), and the mirror average
    must take it for the direct pass. A reading without the distractor shows which was used."""
    segmenter, image, _, planted = structures_on_grid
    args = (segmenter.stages[:1], segmenter.sessions()[:1], segmenter.model.threshold)
    own = run_cascade(image, *args).probabilities
    handed = own.copy()
    handed[:, planted["distractor"]] = np.array([1.0, 0.0, 0.0, 0.0], np.float32)[:, None]
    assert not np.array_equal(handed, own)
    np.testing.assert_array_equal(run_cascade(image, *args, first_stage=handed).probabilities, handed)
    averaged = run_cascade(image, *args, mirror_average=True, first_stage=handed)
    np.testing.assert_allclose(averaged.probabilities, (handed + own) / 2, atol=1e-6)
    full = run_cascade(image, segmenter.stages, segmenter.sessions(), segmenter.model.threshold, first_stage=own)
    plain = run_cascade(image, segmenter.stages, segmenter.sessions(), segmenter.model.threshold)
    np.testing.assert_array_equal(full.probabilities, plain.probabilities)


@pytest.mark.parametrize("mirror", [False, True])
def test_each_stage_moves_the_progress_bar_through_its_own_share(structures_on_grid, mirror):
    """Three stages share the bar in thirds (sixths per pass with the mirror average, the direct
    pass first): every report of a stage lies in its share, the bar only moves forward and says
    1.0 once, at the very end."""
    segmenter, image, _, _ = structures_on_grid
    seen = []
    run_cascade(image, segmenter.stages, segmenter.sessions(), segmenter.model.threshold, batch_size=16,
                progress=Progress(lambda fraction, message: seen.append((fraction, message))),
                mirror_average=mirror)
    views = [stage.view for stage in segmenter.stages]
    passes = [seen[: len(seen) // 2], seen[len(seen) // 2:]] if mirror else [seen]
    assert len(seen) % len(passes) == 0 and len(seen) > 6 * len(passes)
    for number, reports in enumerate(passes):
        share = 1.0 / (len(views) * len(passes))
        for fraction, message in reports:
            index = views.index(message.split()[0]) + number * len(views)
            assert index * share - 1e-9 <= fraction <= (index + 1) * share + 1e-9, (fraction, message)
        assert [views.index(message.split()[0]) for _, message in reports] == sorted(
            views.index(message.split()[0]) for _, message in reports)
    fractions = [fraction for fraction, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions.count(1.0) == 1
    assert all(b >= a for a, b in zip(fractions, fractions[1:]))


def test_step_timings_are_durations_that_add_up_to_the_run(structures_on_grid):
    """The report's timings: each a duration within the call, together most of it; with the mirror
    average each step is the sum of its two passes."""
    segmenter, image, _, _ = structures_on_grid
    args = (segmenter.stages, segmenter.sessions(), segmenter.model.threshold)
    for mirror in (False, True):
        clock = time.perf_counter()
        timings = run_cascade(image, *args, mirror_average=mirror).timings
        wall = time.perf_counter() - clock
        assert all(0.0 <= seconds <= wall for seconds in timings.values()), timings
        assert sum(timings.values()) >= 0.5 * wall, (timings, wall)
