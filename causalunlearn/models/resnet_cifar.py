"""The CIFAR ResNet of He et al. (2016), sized for a CPU: ResNet-20 by default.

He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition" (CVPR 2016), §4.2: a
3×3 convolution with 16 filters, then three stages of ``n`` basic blocks (two 3×3 convolutions
each, batch normalisation after each, ReLU) on feature maps of 32×32, 16×16 and 8×8 with 16, 32
and 64 filters, the first block of stages 2 and 3 subsampling with stride 2; global average
pooling, a fully connected layer. ``6n + 2`` weighted layers: n = 3 gives ResNet-20, 0.27 M
parameters. Shortcuts are the paper's option A, used for all its CIFAR results: identity,
subsampled and zero-padded in the channels where the shape changes, so they add no parameters.

About 41 MFLOPs per 32×32 image forward, against ~560 for the CIFAR ResNet-18 of the zoo: the
network a CPU can train to ~90 % on CIFAR-10 in tens of epochs (docs/results.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from causalunlearn.errors import ModelError

__all__ = ["CifarBasicBlock", "CifarResNet", "CifarResNet20"]


class CifarBasicBlock(nn.Module):
    """Two 3×3 convolutions with batch normalisation; an option-A shortcut (He et al. 2016).

    Args:
        in_channels: Channels of the input.
        channels: Channels of the output.
        stride: 2 in the first block of a subsampling stage, else 1.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.stride = stride
        self.pad = channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Option A: the input, subsampled by the block's stride and zero-padded to its width."""
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            # F.pad pads the last dimensions first: (W left, W right, H left, H right, C ...).
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet with ``6n + 2`` layers (see the module docstring).

    Modules: ``conv1``/``bn1`` (the 16-filter stem), ``layer1``..``layer3`` (``n`` blocks each),
    ``avgpool`` (global average pooling: the representation, 64-d, as ``avgpool`` is in the zoo's
    ResNet-18), ``fc`` (Linear(64→num_classes)).

    Args:
        num_classes: Number of classes.
        input_shape: ``(channels, height, width)``; any size of at least 4×4 (CIFAR: 32×32).
        blocks: ``n``, blocks per stage (3: ResNet-20; 5: ResNet-32; 9: ResNet-56).
    """

    representation_layer = "avgpool"

    def __init__(
        self, num_classes: int, input_shape: Sequence[int] = (3, 32, 32), blocks: int = 3
    ) -> None:
        super().__init__()
        shape = tuple(input_shape)
        if len(shape) != 3 or shape[1] < 4 or shape[2] < 4:
            raise ModelError(
                "invalid-input-shape",
                f"the CIFAR ResNet needs input_shape (channels, height, width) with height and"
                f" width ≥ 4, got {shape!r}",
                "give one input's shape without the batch dimension, e.g. (3, 32, 32) for CIFAR",
            )
        self.conv1 = nn.Conv2d(shape[0], 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, blocks, stride=1)
        self.layer2 = self._stage(16, 32, blocks, stride=2)
        self.layer3 = self._stage(32, 64, blocks, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # He initialisation, as the paper (its ref. [13]) and torchvision's ResNets use.
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @staticmethod
    def _stage(in_channels: int, channels: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [CifarBasicBlock(in_channels, channels, stride)]
        layers += [CifarBasicBlock(channels, channels) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of ``x`` (shape ``N×C×H×W``)."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class CifarResNet20(CifarResNet):
    """ResNet-20 (n = 3): 0.27 M parameters, registered in the zoo as ``resnet20``.

    Args:
        num_classes: Number of classes.
        input_shape: ``(channels, height, width)``.
    """

    def __init__(self, num_classes: int, input_shape: Sequence[int] = (3, 32, 32)) -> None:
        super().__init__(num_classes, input_shape, blocks=3)
