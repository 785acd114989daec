"""Real, tiny three-stage ONNX cascades for tests: 1x1 convolutions + softmax.

``build_tiny_model`` calls "labyrinth" (class 1) every voxel of fluid density (HU near 0) and
leaves bone and air alone, so the cascade, the largest-component step and the mapping back are
exercised for real. ``build_structure_model`` gives each structure its own class from its own
intensity band (``BANDS_HU``) and lets later stages label only inside the previous stage's mask,
so labels 2 and 3, the structure-speck merge and the auto-context wiring pass through the pipeline.
"""

from __future__ import annotations

import json
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
    return _conv_softmax(channels, classes, w1, b1, w2, b2, "tiny_stage")


def _conv_softmax(channels: int, classes: int, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray,
                  b2: np.ndarray, name: str) -> onnx.ModelProto:
    """Conv 1x1 -> ReLU -> Conv 1x1 -> Softmax over classes, as a checked opset-17 model."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "W1", "B1"], ["h"]),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Conv", ["r", "W2", "B2"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", channels, "H", "W"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes, "H", "W"])],
        [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(b1, "B1"),
         numpy_helper.from_array(w2, "W2"), numpy_helper.from_array(b2, "B2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


# Scan intensity of each structure and the band (HU) its class wins in, ramps included. Bone
# (1500) and air (-1000) lie outside every band; cochlea's band reaches down for B-spline undershoot.
STRUCTURE_HU = {1: 0, 2: 300, 3: 600}
BANDS_HU = {1: (-400, 100), 2: (200, 400), 3: (500, 750)}
RAMP_HU = 40
PEAK_LOGIT = 20.0


def _trapezoid(x_low: float, x_high: float, ramp: float) -> list[tuple[float, float]]:
    """(bias, output weight) of four ReLUs on x whose sum is 1 on [low, high], 0 beyond the ramps."""
    return [(-(x_low - ramp), 1 / ramp), (-x_low, -1 / ramp), (-x_high, -1 / ramp), (-(x_high + ramp), 1 / ramp)]


def structure_graph(channels: int, classes: int = 4) -> onnx.ModelProto:
    """Class k where HU lies in BANDS_HU[k]; background elsewhere and, in stages 2 and 3,
    wherever the mask of the stage just before (input channel 1) is empty."""
    units = []  # (input channel, weight, bias, {class: output weight})
    for value, (low, high) in BANDS_HU.items():
        for bias, out in _trapezoid(low / 1000, high / 1000, RAMP_HU / 1000):
            units.append((0, 1.0, bias, {value: PEAK_LOGIT * out}))
    if channels > 1:
        units.append((1, -1.0, 1.0, {0: 2 * PEAK_LOGIT}))  # relu(1 - mask): outside the mask
    w1 = np.zeros((len(units), channels, 1, 1), dtype=np.float32)
    b1 = np.zeros(len(units), dtype=np.float32)
    w2 = np.zeros((classes, len(units), 1, 1), dtype=np.float32)
    for index, (channel, weight, bias, outputs) in enumerate(units):
        w1[index, channel], b1[index] = weight, bias
        for value, out in outputs.items():
            w2[value, index] = out
    b2 = np.zeros(classes, dtype=np.float32)
    b2[0] = PEAK_LOGIT / 2  # a class wins where its band is more than half-way up its ramps
    return _conv_softmax(channels, classes, w1, b1, w2, b2, "structure_stage")


def build_structure_model(folder: Path, grid_size: int = 64) -> Path:
    """A model folder whose stages label cochlea, vestibule and canals by intensity band (a 64³
    grid: fine enough that a thin canal survives resampling to and from an anisotropic scan)."""
    return build_tiny_model(folder, grid_size, structure_graph, "structure-test-model",
                            "Test fixture: one intensity band per structure, 1x1 convolutions.")


def build_tiny_model(folder: Path, grid_size: int = 32, graph=None, model_id: str = "tiny-test-model",
                     description: str = "Test fixture: fluid-band 1x1 convolutions, not a trained model.") -> Path:
    """Writes a complete model folder (three ONNX stages + manifest with sha256) and returns it."""
    graph = graph or stage_graph
    folder.mkdir(parents=True, exist_ok=True)
    for stage in STAGES:
        onnx.save(graph(len(stage["channels"])), str(folder / stage["file"]))
    save_manifest(folder, {
        "id": model_id,
        "version": "0.0.1",
        "description": description,
        "grid_size": grid_size,
        "normalisation": {"method": "zscore", "mean": 0.0, "std": 1000.0},
        "threshold": 0.5,
        "labels": LABELS,
        "stages": STAGES,
    })
    return folder


# A tissue the locator mistakes for labyrinth but the cascade's first stage does not (as the
# internal auditory canal can fool a coarse locator).
DECOY_HU = 900
DECOY_BAND_HU = (850, 950)


def locator_graph() -> onnx.ModelProto:
    """One image channel; class 1 wherever HU lies in any structure band or in the decoy band."""
    units = [(bias, out) for low, high in [*BANDS_HU.values(), DECOY_BAND_HU]
             for bias, out in _trapezoid(low / 1000, high / 1000, RAMP_HU / 1000)]
    w1 = np.ones((len(units), 1, 1, 1), dtype=np.float32)
    b1 = np.array([bias for bias, _ in units], dtype=np.float32)
    w2 = np.zeros((4, len(units), 1, 1), dtype=np.float32)
    w2[1, :, 0, 0] = [PEAK_LOGIT * out for _, out in units]
    b2 = np.array([PEAK_LOGIT / 2, 0.0, 0.0, 0.0], dtype=np.float32)
    return _conv_softmax(1, 4, w1, b1, w2, b2, "decoyed_locator")


def build_located_model(folder: Path, roi_extent_mm: float = 16.0, grid_size: int = 64,
                        locator_grid: int = 32) -> Path:
    """The structure model behind a locator: the locator, run on a coarse cube over the whole
    scan, finds the labyrinth (and any decoy), the cascade segments a ``roi_extent_mm`` box round
    the find its first stage confirms (0.25 mm voxels)."""
    build_structure_model(folder, grid_size)
    onnx.save(locator_graph(), str(folder / "locator.onnx"))
    data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    data.update(id="located-test-model", roi_extent_mm=roi_extent_mm,
                locator={"file": "locator.onnx", "view": "coronal", "grid_size": locator_grid})
    save_manifest(folder, data)
    return folder
