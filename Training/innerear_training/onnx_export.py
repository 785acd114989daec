"""Export one trained stage to ONNX: BatchNorm folded, softmax output, checked with onnxruntime."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .networks import WithSoftmax

OPSET = 17


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Folds every Conv2d directly followed by a BatchNorm2d (inside a Sequential) into one conv.

    Works on a copy in eval mode; the result computes exactly the eval-mode network.
    """
    module = copy.deepcopy(module).eval()
    for child in module.modules():
        if not isinstance(child, nn.Sequential):
            continue
        names = list(child._modules.keys())
        for first, second in zip(names, names[1:]):
            conv, norm = child._modules[first], child._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                child._modules[first] = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, norm)
                child._modules[second] = nn.Identity()
    return module


def export_stage(net: nn.Module, path: Path, in_channels: int, size: int = 64,
                 tolerance: float = 1e-4) -> float:
    """Writes ``net`` (logits) as an ONNX graph ending in softmax; returns the max |difference|
    between onnxruntime and PyTorch on a random batch (raises if above ``tolerance``)."""
    import onnx
    import onnxruntime as ort

    path = Path(path)
    reference = WithSoftmax(copy.deepcopy(net)).eval()
    folded = WithSoftmax(fold_batchnorm(net)).eval()
    example = torch.randn(2, in_channels, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            folded, (example,), str(path), dynamo=False, opset_version=OPSET,
            input_names=["input"], output_names=["probabilities"],
            dynamic_axes={"input": {0: "N", 2: "H", 3: "W"},
                          "probabilities": {0: "N", 2: "H", 3: "W"}},
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    ops = {node.op_type for node in model.graph.node}
    if "BatchNormalization" in ops:
        raise RuntimeError(f"{path.name}: BatchNorm was not folded on export")
    if model.graph.node[-1].op_type != "Softmax":
        raise RuntimeError(f"{path.name}: the graph does not end with Softmax")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for batch, side in ((3, size), (1, size + 8)):
        x = rng.standard_normal((batch, in_channels, side, side)).astype(np.float32)
        with torch.no_grad():
            expected = reference(torch.from_numpy(x)).numpy()
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        if got.shape != expected.shape:
            raise RuntimeError(f"{path.name}: ONNX output {got.shape} != PyTorch {expected.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > tolerance:
        raise RuntimeError(f"{path.name}: ONNX and PyTorch differ by {worst:.2e} (> {tolerance})")
    return worst
