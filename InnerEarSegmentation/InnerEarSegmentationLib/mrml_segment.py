"""Segment a volume node in a scene: the work behind the module's Logic, testable headless.

The volume is read and the segmentation written on the main thread (MRML is not thread-safe);
the inference between the two runs in a child process (``subprocess_run``). A run watches its
scene: closing the scene or removing the volume cancels it, so a result never lands in the next
scene with a reference to a volume that is gone.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

from .errors import Cancelled
from .mrml_output import check_can_write, write_result
from .mrml_volume import sitk_from_volume_node
from .progress import Progress
from .subprocess_run import SegmentationProcess

ProgressLike = Union[None, Progress, Callable[[float, str], None]]


def as_progress(progress: ProgressLike) -> Progress:
    """Accepts a Progress, a plain ``callback(fraction, message)``, or None."""
    if isinstance(progress, Progress):
        return progress
    return Progress(progress)


class SegmentationRun:
    """A child process segmenting ``volume_node``; ``finish()`` writes its result into the scene."""

    def __init__(self, volume_node, segmentation_node=None, model: Any = None, device: str = "auto",
                 replace: bool = False, smoothing: float = 0.5, keep_largest_component: bool = True,
                 show3d: bool = True, python: Optional[str] = None, preview: bool = False,
                 side: str = "both") -> None:
        check_can_write(segmentation_node, replace)
        self.volume_node, self.segmentation_node = volume_node, segmentation_node
        self.scene = volume_node.GetScene()
        self.replace, self.smoothing, self.show3d = replace, smoothing, show3d
        self.scene_closed = False
        self.preview_png: Optional[bytes] = None
        self.process = SegmentationProcess(sitk_from_volume_node(volume_node), str(model or ""), device,
                                           keep_largest_component, volume_node.GetName(), preview, python,
                                           side=side)
        self._observations = [
            (self.scene, self.scene.AddObserver(self.scene.StartCloseEvent, self._on_scene_closing)),
            (self.scene, self.scene.AddObserver(self.scene.NodeRemovedEvent, self._on_node_removed)),
        ]

    def start(self) -> "SegmentationRun":
        try:
            self.process.start()
        except BaseException:
            self.close()
            raise
        return self

    def _on_scene_closing(self, caller=None, event=None) -> None:
        self.scene_closed = True
        self.process.cancel()

    def _on_node_removed(self, caller=None, event=None) -> None:
        if self.volume_node.GetScene() is None or (
                self.segmentation_node is not None and self.segmentation_node.GetScene() is None):
            self._on_scene_closing()

    def poll(self) -> Optional[tuple[float, str]]:
        return self.process.poll()

    @property
    def finished(self) -> bool:
        return self.process.finished or self.process.cancelled

    def cancel(self) -> None:
        self.process.cancel()

    def finish(self):
        """Writes the result into the scene and returns the segmentation node; always cleans up."""
        try:
            if self.scene_closed:
                raise Cancelled("The scene was closed or the volume removed during the segmentation; "
                                "nothing was written.")
            result = self.process.result()
            self.preview_png = result.preview_png
            return write_result(self.scene, self.volume_node, result.labelmap, result.labels,
                                self.segmentation_node, self.replace, self.smoothing, self.show3d,
                                result.report)
        finally:
            self.close()

    def close(self) -> None:
        for subject, tag in self._observations:
            subject.RemoveObserver(tag)
        self._observations = []
        self.process.close()

    def wait(self, progress: ProgressLike = None):
        """Blocks until done (console use), forwarding progress; returns the segmentation node."""
        try:
            self.process.wait(as_progress(progress))
        except BaseException:
            self.close()
            raise
        return self.finish()


def segment_volume_node(volume_node, segmentation_node=None, model=None, device: str = "auto",
                        replace: bool = False, smoothing: float = 0.5, keep_largest_component: bool = True,
                        show3d: bool = True, progress: ProgressLike = None, python: Optional[str] = None,
                        side: str = "both"):
    """Runs the cascade on ``volume_node`` and writes named, coded segments (each ear's, or only
    the ``side`` asked for); returns the node."""
    run = SegmentationRun(volume_node, segmentation_node, model, device, replace, smoothing,
                          keep_largest_component, show3d, python, side=side)
    return run.start().wait(progress)
