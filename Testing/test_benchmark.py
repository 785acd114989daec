"""The benchmark's own arithmetic (Benchmarks/): FLOP counting from ONNX graphs, scan upsampling."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Benchmarks"))

import arithmetic  # noqa: E402
import fixtures  # noqa: E402
from tiny_model import stage_graph  # noqa: E402


def test_conv_flops_follow_the_graph_shapes(tmp_path):
    path = tmp_path / "tiny.onnx"
    onnx.save(stage_graph(3), str(path))  # 1x1 convs: 3 -> 4 -> 4 channels
    assert arithmetic.flops_per_slice(str(path), 16, 24) == 2 * (3 * 4 + 4 * 4) * 16 * 24
    assert arithmetic.stage_flops(path, (5, 16, 24), axis=0) == 5 * 2 * 28 * 16 * 24


def test_transposed_conv_counts_macs_per_input_pixel(tmp_path):
    weight = np.zeros((4, 2, 2, 2), dtype=np.float32)  # Cin 4, Cout 2, 2x2, stride 2
    graph = helper.make_graph(
        [helper.make_node("ConvTranspose", ["x", "W"], ["y"], strides=[2, 2])], "up",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, None, None])],
        [numpy_helper.from_array(weight, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "up.onnx"
    onnx.save(model, str(path))
    assert arithmetic.flops_per_slice(str(path), 8, 8) == 2 * 4 * 2 * 2 * 2 * 8 * 8


def test_upsampled_scan_keeps_voxel_centres():
    volume = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) * 7
    fine = np.concatenate(list(fixtures.upsampled_slabs(volume, 3, slab=5)))
    assert fine.shape == (12, 15, 18) and fine.dtype == np.int16
    np.testing.assert_array_equal(fine[1::3, 1::3, 1::3], volume)
