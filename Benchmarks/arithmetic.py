"""The arithmetic floor: model FLOPs counted from the ONNX graph, and this CPU's float32 matmul rate."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import numpy as np


def _shape(value_info) -> list[int]:
    return [d.dim_value for d in value_info.type.tensor_type.shape.dim]


@lru_cache(maxsize=None)
def flops_per_slice(model_path: str, height: int, width: int) -> float:
    """Multiply-add FLOPs (2 per MAC) of one [1, C, height, width] slice through the graph.

    Counts every Conv (2·kh·kw·Cin/g·Cout·Hout·Wout) and ConvTranspose (2·kh·kw·Cin·Cout/g·Hin·Win:
    per *input* pixel, so a stride-2 2x2 transposed conv does Cin·Cout MACs per output pixel; g is
    already in the weight's shape), with the shapes from onnx shape inference at this concrete slice size. Element-wise ops,
    pooling and softmax are memory-bound extras, not counted.
    """
    import onnx

    model = onnx.load(model_path)
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, None, height, width)):
        if value is not None:
            dim.Clear()
            dim.dim_value = value
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    shapes = {v.name: _shape(v) for v in list(inferred.value_info) + list(inferred.input) + list(inferred.output)}
    weights = {w.name: list(w.dims) for w in graph.initializer}
    total = 0.0
    for node in inferred.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        kernel = weights[node.input[1]]
        if node.op_type == "Conv":
            cout, cin_per_group, kh, kw = kernel
            _, _, hout, wout = shapes[node.output[0]]
            total += 2.0 * kh * kw * cin_per_group * cout * hout * wout
        else:
            cin, cout_per_group, kh, kw = kernel
            _, _, hin, win = shapes[node.input[0]]
            total += 2.0 * kh * kw * cin * cout_per_group * hin * win
    return total


def stage_flops(model_path: Path, shape_zyx: tuple[int, int, int], axis: int) -> float:
    """FLOPs of one stage over a [Z, Y, X] block sliced along ``axis`` (0 axial, 1 coronal, 2 sagittal)."""
    plane = [n for i, n in enumerate(shape_zyx) if i != axis]
    return shape_zyx[axis] * flops_per_slice(str(model_path), plane[0], plane[1])


def matmul_gflops(size: int = 4096, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 GEMM rate of numpy's BLAS on all cores, GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up: thread pool, page faults
    best = float("inf")
    for _ in range(repeats):
        clock = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - clock)
    return 2.0 * size ** 3 / best / 1e9
