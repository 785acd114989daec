"""A real, tiny three-stage ONNX cascade for tests: 1x1 convolutions + softmax.

It calls "labyrinth" every voxel of fluid density (HU near 0) and leaves bone and air alone,
so the cascade, the largest-component step and the mapping back are exercised for real.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from InnerEarSegmentationLib.model import save_manifest

LABELS = [
    {"value": 1, "name": "Cochlea", "color": [0.9, 0.8, 0.3]},
    {"value": 2, "name": "Vestibule", "color": [0.3, 0.7, 0.9]},
    {"value": 3, "name": "Semicircular canals", "color": [0.8, 0.3, 0.4]},
]
STAGES = [
    {"name": "stage1", "file": "stage1.onnx", "view": "coronal", "channels": ["image"]},
    {"name": "stage2", "file": "stage2.onnx", "view": "sagittal", "channels": ["image", "stage1"]},
    {"name": "stage3", "file": "stage3.onnx", "view": "axial", "channels": ["image", "stage2", "stage1"]},
]


def stage_graph(channels: int, classes: int = 4) -> onnx.ModelProto:
    """Two 1x1 convolutions: "labyrinth" where HU/1000 lies in the fluid band (-0.5, 0.7).

    Bone (above the band) and air (below it) both push towards background; each earlier-stage
    mask channel adds a bonus to class 1, so stage 2 and 3 really read their context channels.
    """
    hidden = 2 + channels - 1
    w1 = np.zeros((hidden, channels, 1, 1), dtype=np.float32)
    b1 = np.zeros(hidden, dtype=np.float32)
    w1[0, 0], b1[0] = 1.0, -0.7   # relu(x - 0.7): brighter than fluid
    w1[1, 0], b1[1] = -1.0, -0.5  # relu(-0.5 - x): darker than fluid
    for c in range(1, channels):
        w1[1 + c, c] = 1.0        # masks pass through unchanged
    w2 = np.zeros((classes, hidden, 1, 1), dtype=np.float32)
    w2[0, :2] = 20.0
    w2[0, 2:], w2[1, 2:] = -0.5, 0.5
    b2 = np.array([0.0, 1.0, -10.0, -10.0], dtype=np.float32)[:classes]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "W1", "B1"], ["h"]),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Conv", ["r", "W2", "B2"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "tiny_stage",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", channels, "H", "W"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes, "H", "W"])],
        [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(b1, "B1"),
         numpy_helper.from_array(w2, "W2"), numpy_helper.from_array(b2, "B2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_tiny_model(folder: Path, grid_size: int = 32) -> Path:
    """Writes a complete model folder (three ONNX stages + manifest with sha256) and returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for stage in STAGES:
        onnx.save(stage_graph(len(stage["channels"])), str(folder / stage["file"]))
    save_manifest(folder, {
        "id": "tiny-test-model",
        "version": "0.0.1",
        "description": "Test fixture: fluid-band 1x1 convolutions, not a trained model.",
        "grid_size": grid_size,
        "normalisation": {"method": "zscore", "mean": 0.0, "std": 1000.0},
        "threshold": 0.5,
        "labels": LABELS,
        "stages": STAGES,
    })
    return folder
