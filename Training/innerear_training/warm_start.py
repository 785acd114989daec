"""Start a stage from an exported model's ONNX weights instead of from random ones.

The export folds each BatchNorm into the convolution before it (weight and bias), so the ONNX
file holds no BatchNorm of its own. To train on, the folded convolution is put back and each
BatchNorm is set so that, at the batch statistics the folded network produces on training
slices, it passes them through unchanged: the network computes what the exported model computes,
and training continues from there (checked against onnxruntime in the tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from .networks import UNet2D


def _onnx_weights(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return {item.name.removeprefix("net."): np.array(numpy_helper.to_array(item)) for item in model.graph.initializer}


def _conv_bn_pairs(net: UNet2D) -> list[tuple[str, nn.Conv2d, nn.BatchNorm2d]]:
    """(name, convolution, the BatchNorm right after it) for every folded pair."""
    pairs = []
    for name, module in net.named_modules():
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (conv_name, conv), (_, norm) in zip(children, children[1:]):
                if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                    pairs.append((f"{name}.{conv_name}", conv, norm))
    return pairs


def load_exported(net: UNet2D, onnx_path: Path, batches: Iterable[torch.Tensor]) -> None:
    """Loads an exported stage into ``net`` (same architecture) and calibrates its BatchNorms
    on ``batches`` of training input. An output layer of another shape (a model with another
    label table, such as a locator trained on one class) keeps its fresh initialisation."""
    weights = _onnx_weights(onnx_path)
    pairs = _conv_bn_pairs(net)
    folded_bias = {}
    with torch.no_grad():
        for name, conv, norm in pairs:
            conv.weight.copy_(torch.from_numpy(weights[f"{name}.weight"]))
            folded_bias[name] = torch.from_numpy(weights[f"{name}.bias"])
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
            norm.weight.fill_(1.0)
            norm.bias.copy_(folded_bias[name])
        state = net.state_dict()
        for key in state:
            if key in weights and not any(key.startswith(f"{name}.") for name, _, _ in pairs) \
                    and tuple(weights[key].shape) == tuple(state[key].shape):
                state[key].copy_(torch.from_numpy(weights[key]))
    sums = {name: [0.0, 0.0, 0] for name, _, _ in pairs}
    hooks = [norm.register_forward_hook(_collector(sums[name])) for name, _, norm in pairs]
    net.eval()
    with torch.no_grad():
        for batch in batches:
            net(batch)
    for hook in hooks:
        hook.remove()
    with torch.no_grad():
        for name, _, norm in pairs:
            total, squares, count = sums[name]
            mean = total / count
            var = torch.clamp(squares / count - mean ** 2, min=0.0)
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(var)
            norm.weight.copy_(torch.sqrt(var + norm.eps))
            norm.bias.copy_(mean + folded_bias[name])


def _collector(store: list) -> Callable:
    """A hook adding up per-channel sums of a BatchNorm's input (its convolution's output)."""
    def hook(module, inputs, output):
        x = inputs[0].double()
        store[0] = store[0] + x.sum(dim=(0, 2, 3))
        store[1] = store[1] + (x ** 2).sum(dim=(0, 2, 3))
        store[2] += x.shape[0] * x.shape[2] * x.shape[3]
    return hook
