"""The worker-thread job the GUI polls: progress arrives, errors are kept, Cancel really stops."""

from __future__ import annotations

import threading

from InnerEarSegmentationLib.background import BackgroundJob
from InnerEarSegmentationLib.errors import Cancelled


def test_result_and_latest_progress():
    job = BackgroundJob(lambda progress: [progress.report(i / 4, f"step {i}") for i in range(5)] and 42).start()
    assert job.wait(5)
    assert job.finished and job.result == 42 and job.error is None
    assert job.poll() == (1.0, "step 4")
    assert job.poll() is None


def test_error_is_kept_for_the_gui_thread():
    def fail(progress):
        raise ValueError("bad scan")

    job = BackgroundJob(fail).start()
    job.wait(5)
    assert isinstance(job.error, ValueError) and "bad scan" in job.traceback


def test_cancel_stops_between_batches():
    started, batches = threading.Event(), []

    def work(progress):
        started.set()
        for batch in range(10_000):
            progress.report(batch / 10_000, "batch")
            batches.append(batch)
            threading.Event().wait(0.001)

    job = BackgroundJob(work).start()
    assert started.wait(5)
    job.cancel()
    assert job.wait(5)
    assert isinstance(job.error, Cancelled) and len(batches) < 10_000


def test_poll_before_anything_reported():
    gate = threading.Event()
    job = BackgroundJob(lambda progress: gate.wait(5)).start()
    assert job.poll() is None and not job.finished
    gate.set()
    assert job.wait(5) and job.result is True
