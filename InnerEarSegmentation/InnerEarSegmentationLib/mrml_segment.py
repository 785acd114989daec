"""Segment a volume node in a scene: the work behind the module's Logic, testable headless.

Split in three so the GUI can run the middle step on a worker thread: reading the volume and
writing the segmentation touch MRML and must stay on the main thread; inference does not.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .model import ModelManifest, load_model
from .mrml_output import check_can_write, write_result
from .mrml_volume import sitk_from_volume_node
from .progress import Progress

ProgressLike = Union[None, Progress, Callable[[float, str], None]]
_segmenters: dict[tuple, Any] = {}
_lock = threading.Lock()


def as_progress(progress: ProgressLike) -> Progress:
    """Accepts a Progress, a plain ``callback(fraction, message)``, or None."""
    if isinstance(progress, Progress):
        return progress
    return Progress(progress)


def resolve_model(model: Union[None, str, Path, ModelManifest]) -> ModelManifest:
    """None or "" is the shipped model; a folder/manifest path is loaded and verified."""
    if isinstance(model, ModelManifest):
        return model
    return load_model(model or None)


def get_segmenter(model: Union[None, str, Path, ModelManifest] = None, device: str = "auto",
                  keep_largest_component: bool = True):
    """A Segmenter kept open between runs (loading the ONNX sessions is the slow part)."""
    from .pipeline import Segmenter, SegmentationSettings  # imports onnxruntime lazily

    manifest = resolve_model(model)
    key = (str(manifest.folder.resolve()), manifest.version, device, bool(keep_largest_component))
    with _lock:
        if key not in _segmenters:
            settings = SegmentationSettings(device=device, keep_largest_component=keep_largest_component)
            _segmenters[key] = Segmenter(manifest, settings)
        return _segmenters[key]


def forget_segmenters() -> None:
    """Closes cached sessions (after installing another onnxruntime, or to free GPU memory)."""
    with _lock:
        _segmenters.clear()


def segment_volume_node(volume_node, segmentation_node=None, model=None, device: str = "auto",
                        replace: bool = False, smoothing: float = 0.5, keep_largest_component: bool = True,
                        show3d: bool = True, progress: ProgressLike = None):
    """Runs the cascade on ``volume_node`` and writes named, coded segments; returns the node."""
    check_can_write(segmentation_node, replace)
    image = sitk_from_volume_node(volume_node)
    segmenter = get_segmenter(model, device, keep_largest_component)
    result = segmenter.segment(image, as_progress(progress), source=volume_node.GetName())
    return write_result(volume_node.GetScene(), volume_node, result.labelmap, result.labels,
                        segmentation_node, replace, smoothing, show3d, result.report)
