"""2D U-Nets of the paper: plain, residual and squeeze-and-excitation, with a width parameter.

Encoder: 3 levels of b, 2b, 4b filters (two conv3x3 + BN + ReLU blocks each, 2x2 max-pool),
bottleneck 8b with dropout 0.2, decoder of 2x2 transposed convolutions with skip concatenation,
1x1 convolution head giving K class logits. ``forward`` returns logits; :class:`WithSoftmax`
wraps a network for export so that the ONNX graph ends with a softmax over the class axis.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("unet", "resunet", "seunet")


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")  # he-normal, as the paper
    return [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class DoubleConv(nn.Module):
    """Two conv3x3 + BN + ReLU blocks (plain U-Net)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn_relu(cin, cout), *_conv_bn_relu(cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ResidualBlock(nn.Module):
    """conv-BN-ReLU, conv-BN, plus a 1x1 projection of the input, then ReLU (residual U-Net)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.first = nn.Sequential(*_conv_bn_relu(cin, cout))
        conv = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        self.second = nn.Sequential(conv, nn.BatchNorm2d(cout))
        self.project = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.second(self.first(x)) + self.project(x))


class SEBlock(nn.Module):
    """Two conv blocks followed by channel squeeze-and-excitation (ratio 8)."""

    def __init__(self, cin: int, cout: int, ratio: int = 8) -> None:
        super().__init__()
        self.body = DoubleConv(cin, cout)
        hidden = max(2, cout // ratio)
        self.excite = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(cout, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, cout, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y * self.excite(y)


BLOCKS = {"unet": DoubleConv, "resunet": ResidualBlock, "seunet": SEBlock}


class UNet2D(nn.Module):
    """The paper's 2D U-Net with base width ``base`` (paper: 32); returns class logits."""

    def __init__(self, in_channels: int, num_classes: int, base: int = 32, arch: str = "unet",
                 dropout: float = 0.2) -> None:
        super().__init__()
        if arch not in BLOCKS:
            raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHITECTURES}")
        block = BLOCKS[arch]
        widths = [base, 2 * base, 4 * base]
        self.encoders = nn.ModuleList()
        cin = in_channels
        for width in widths:
            self.encoders.append(block(cin, width))
            cin = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = block(cin, 8 * base)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        cin = 8 * base
        for width in reversed(widths):
            self.ups.append(nn.ConvTranspose2d(cin, width, 2, stride=2))
            self.decoders.append(block(2 * width, width))
            cin = width
        self.head = nn.Conv2d(base, num_classes, 1)
        self.config = {"in_channels": in_channels, "num_classes": num_classes, "base": base,
                       "arch": arch, "dropout": dropout}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.dropout(self.bottleneck(x))
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class WithSoftmax(nn.Module):
    """Wraps a logits network so its output is softmax probabilities over the class axis."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


def build(config: dict) -> UNet2D:
    return UNet2D(**config)
