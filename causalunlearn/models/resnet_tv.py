"""The torchvision ResNet-18s of the model zoo (``resnet18``, ``resnet18-224``).

Kept apart from :mod:`causalunlearn.models.zoo` because importing torchvision costs seconds:
the zoo registers factories that import this module when a ResNet-18 is first built.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from causalunlearn.models.zoo import _image_shape

__all__ = ["CifarResNet18", "ResNet18At224"]


class CifarResNet18(ResNet):
    """torchvision ResNet-18 (no pretrained weights) with a CIFAR-sized stem, for 32×32 input.

    The stem is a 3×3 convolution with stride 1 and no max-pool (instead of 7×7 stride 2 plus
    max-pool), the usual choice for 32×32 images. Representation: the 512-d pooled feature
    (``avgpool``, flattened); head ``fc``: Linear(512→num_classes).

    Args:
        num_classes: Number of classes.
        input_shape: ``(channels, height, width)``.
    """

    representation_layer = "avgpool"

    def __init__(self, num_classes: int, input_shape: Sequence[int] = (3, 32, 32)) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        channels, _, _ = _image_shape("resnet18", tuple(input_shape))
        self.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        # Same initialisation torchvision gives every convolution of a ResNet.
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.maxpool = nn.Identity()


class ResNet18At224(ResNet):
    """The ResNet-18 of the official CaMU code for CIFAR: standard stem, input resized to 224×224.

    torchvision ResNet-18 without pretrained weights, head ``fc``: Linear(512→num_classes),
    representation the 512-d pooled feature (``avgpool``). The official code resizes CIFAR images
    to 224×224 (``transforms.Resize``) before normalising; data is kept at 32×32 in memory here, so
    the first operation of ``forward`` is a bilinear :func:`torch.nn.functional.interpolate` to
    224×224. Resizing and the per-channel normalisation commute (bilinear weights sum to one), so
    resizing normalised tensors is equivalent. Input already at 224×224 is not resized.

    Args:
        num_classes: Number of classes.
        input_shape: ``(channels, height, width)``; a non-3-channel input gets a matching stem.
    """

    representation_layer = "avgpool"
    image_size = 224

    def __init__(self, num_classes: int, input_shape: Sequence[int] = (3, 32, 32)) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        channels, _, _ = _image_shape("resnet18-224", tuple(input_shape))
        if channels != 3:
            self.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Resize ``x`` to 224×224 (bilinear) and return the logits."""
        size = (self.image_size, self.image_size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return super().forward(x)
