"""The segmentation in a real child process (the real engine, real onnxruntime, the tiny model).

Inside Slicer a worker thread only runs while the GUI polls it (PythonSlicer keeps the GIL), so
the module runs the inference in a process: these tests check that its progress arrives while it
runs, that its result equals the in-process one, that its errors come back as the user's
messages, and that Cancel stops it within 2 s.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import blob_scan

from InnerEarSegmentationLib.errors import Cancelled, ModelError
from InnerEarSegmentationLib.model import load_model
from InnerEarSegmentationLib.pipeline import SegmentationSettings, Segmenter
from InnerEarSegmentationLib.subprocess_run import SegmentationProcess


def wait_for_progress(job: SegmentationProcess, timeout: float = 60.0) -> list:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and not job.finished:
        latest = job.poll()
        if latest:
            seen.append(latest)
            return seen
        time.sleep(0.01)
    return seen


def test_progress_arrives_and_the_result_equals_the_in_process_one(tiny_model):
    image = blob_scan()
    job = SegmentationProcess(image, str(tiny_model), "cpu", source="CT").start()
    try:
        seen = []
        while not job.finished:
            latest = job.poll()
            if latest:
                seen.append(latest)
            time.sleep(0.01)
        result = job.result()
    finally:
        job.close()
    fractions = [fraction for fraction, _ in seen]
    assert len(set(fractions)) >= 2 and fractions == sorted(fractions)
    expected = Segmenter(load_model(tiny_model), SegmentationSettings(device="cpu")).segment(image)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(result.labelmap),
                                  sitk.GetArrayViewFromImage(expected.labelmap))
    assert result.labelmap.GetOrigin() == pytest.approx(image.GetOrigin())
    assert [label.name for label in result.labels] == ["Cochlea", "Vestibule", "Semicircular canals"]
    assert result.labels[0].terminology  # filled in from our .term.json in the child
    assert result.report["input"]["source"] == "CT" and result.report["provider"]
    assert not job.folder.exists()


def test_cancel_stops_the_child(tiny_model):
    big = blob_scan(size=(220, 200, 180), spacing=(0.1, 0.1, 0.1))
    job = SegmentationProcess(big, str(tiny_model), "cpu").start()
    try:
        assert wait_for_progress(job), "no progress before the end"
        assert job.running
        clock = time.perf_counter()
        job.cancel()
        assert time.perf_counter() - clock < 2.5  # terminate, a second's grace, kill
        with pytest.raises(Cancelled):
            job.result()
        # Gone (a machine starved of CPU may take a moment to let a killed process exit; the
        # time to exit on a normal load is measured by Benchmarks/out_of_process.py).
        deadline = time.monotonic() + 60
        while not job.finished and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.finished and not (job.folder / "labelmap.nrrd").exists()
    finally:
        job.close()


def test_the_childs_error_comes_back_as_the_users_message(tiny_model, tmp_path):
    broken = tmp_path / "model"
    broken.mkdir()
    for path in tiny_model.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    (broken / "stage2.onnx").write_bytes(b"not the file the manifest hashed")
    job = SegmentationProcess(blob_scan(), str(broken), "cpu").start()
    try:
        with pytest.raises(ModelError, match="stage2.onnx"):
            job.wait()
    finally:
        job.close()
