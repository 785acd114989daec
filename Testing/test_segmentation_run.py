"""A run in a real scene (slicer-core) with a real child process: closing the scene cancels it.

Before, the result of a run still going when the user closed the scene was written into the next
scene, referring to a volume that no longer existed.
"""

from __future__ import annotations

import time

import pytest

slicer = pytest.importorskip("slicer")

from conftest import blob_scan  # noqa: E402
from mrml_scene import make_scene  # noqa: E402

from InnerEarSegmentationLib.errors import Cancelled  # noqa: E402
from InnerEarSegmentationLib.mrml_segment import SegmentationRun  # noqa: E402
from InnerEarSegmentationLib.mrml_volume import volume_node_from_sitk  # noqa: E402

BIG = dict(size=(220, 200, 180), spacing=(0.1, 0.1, 0.1))


def started(run: SegmentationRun) -> SegmentationRun:
    """Waits for the child's first progress line, so the cancel lands mid-run."""
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:
        assert not run.finished
        time.sleep(0.01)
    return run


@pytest.mark.parametrize("how", ["close the scene", "remove the volume"])
def test_closing_the_scene_mid_run_cancels_and_writes_nothing(tiny_model, how):
    headless = make_scene()
    volume = volume_node_from_sitk(blob_scan(**BIG), headless.scene, "CT")
    run = started(SegmentationRun(volume, model=tiny_model, device="cpu", show3d=False).start())
    clock = time.perf_counter()
    if how == "close the scene":
        headless.scene.Clear(0)
    else:
        headless.scene.RemoveNode(volume)
    assert run.finished and time.perf_counter() - clock < 2.5
    with pytest.raises(Cancelled, match="scene was closed"):
        run.finish()
    assert headless.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0
    assert not run.process.folder.exists()


def test_a_run_left_alone_writes_its_result(tiny_model):
    headless = make_scene()
    volume = volume_node_from_sitk(blob_scan(), headless.scene, "CT")
    run = SegmentationRun(volume, model=tiny_model, device="cpu", show3d=False).start()
    while not run.finished:
        run.poll()
        time.sleep(0.02)
    node = run.finish()
    assert node.GetSegmentation().GetNumberOfSegments() == 3 and node.GetScene() is headless.scene
