"""Training-data augmentation on batch tensors, on their device, from a seeded generator.

``cifar`` is the augmentation of He et al. 2016 (§4.2) that every CIFAR ResNet recipe uses:
4 pixels of padding on each side, a random 32×32 crop, and a left-right flip with probability
1/2 (torchvision's ``RandomCrop(32, padding=4)`` then ``RandomHorizontalFlip()``). The data is
held normalised in memory, so the padding value is the normalised value of a black pixel,
``(0 − mean) / std`` per channel: the same images as padding the raw pixels with zeros, then
normalising.

The random numbers (two crop offsets and one flip per row) are drawn on the CPU from a
:class:`torch.Generator` seeded from the training seed, so a seed gives the same augmented
batches on every device; the crop and flip themselves are one gather on the batch's device.
:meth:`BatchAugment.state_dict` holds the generator's state, so a training resumed from a
checkpoint draws what the uninterrupted one would have drawn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from causalunlearn.data.datasets import TensorData
from causalunlearn.errors import DataError, did_you_mean

__all__ = ["AUGMENTS", "BatchAugment", "CropFlip", "make_augment"]


class BatchAugment:
    """A seeded random transform of a batch of inputs (``N×C×H×W`` → same shape).

    Subclasses draw their random numbers from ``self.generator`` (CPU).

    Args:
        seed: Seed of the generator (the training seed; mixed with the augmentation's name so
            that its draws are not the shuffling generator's).
        name: The augmentation's name.
    """

    def __init__(self, seed: int, name: str) -> None:
        self.name = name
        digest = hashlib.sha256(f"augment:{name}:{int(seed)}".encode()).digest()
        self.generator = torch.Generator(device="cpu").manual_seed(
            int.from_bytes(digest[:8], "little") >> 1
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The generator's state (a uint8 tensor; loads with ``weights_only=True``)."""
        return {"name": self.name, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.generator.set_state(state["generator"])


class CropFlip(BatchAugment):
    """Random crop from a padded copy, then a random left-right flip (see the module).

    Args:
        seed: The training seed.
        fill: Per-channel padding value (normalised black), or one value for every channel.
        padding: Pixels added on each side before cropping (4 for CIFAR).
        flip: Flip left-right with probability 1/2.
    """

    def __init__(
        self,
        seed: int,
        fill: Sequence[float] | float = 0.0,
        *,
        padding: int = 4,
        flip: bool = True,
        name: str = "cifar",
    ) -> None:
        super().__init__(seed, name)
        self.fill = fill
        self.padding = int(padding)
        self.flip = flip

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The augmented batch (a new tensor; ``x`` is not changed)."""
        n, c, h, w = x.shape
        p = self.padding
        offsets = torch.randint(0, 2 * p + 1, (2, n), generator=self.generator)
        flips = torch.rand(n, generator=self.generator) < 0.5
        fill = torch.as_tensor(self.fill, dtype=x.dtype).to(x.device)
        padded = fill.reshape(-1, 1, 1).expand(c, h + 2 * p, w + 2 * p).repeat(n, 1, 1, 1)
        padded[:, :, p : p + h, p : p + w] = x
        device = x.device
        rows = offsets[0, :, None] + torch.arange(h)
        cols = offsets[1, :, None] + torch.arange(w)
        if self.flip:
            # Column j of a flipped crop is column w − 1 − j of the crop: one gather does both.
            cols = torch.where(flips[:, None], cols.flip(1), cols)
        rows, cols = rows.to(device), cols.to(device)
        batch = torch.arange(n, device=device)[:, None, None, None]
        channel = torch.arange(c, device=device)[None, :, None, None]
        return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def _cifar(data: TensorData, seed: int) -> BatchAugment:
    channels = data.train_x.shape[1]
    if len(data.mean) == channels and len(data.std) == channels:
        fill: Sequence[float] | float = [-m / s for m, s in zip(data.mean, data.std, strict=True)]
    else:  # data without recorded normalisation: pad with zeros
        fill = 0.0
    return CropFlip(seed, fill, padding=4, flip=True, name="cifar")


#: Augmentations by name (the names :data:`causalunlearn.recipes.AUGMENTATIONS` accepts).
AUGMENTS: dict[str, Callable[[TensorData, int], BatchAugment]] = {"cifar": _cifar}


def make_augment(name: str, data: TensorData, seed: int) -> BatchAugment:
    """The augmentation ``name`` for ``data``'s inputs, seeded with the training ``seed``.

    Raises:
        DataError: ``unknown-augment`` (did-you-mean hint); ``bad-augment-input`` when the data
            is not images (``N×C×H×W`` with H, W ≥ 2).
    """
    if name not in AUGMENTS:
        raise DataError(
            "unknown-augment",
            f"no augmentation named {name!r}",
            did_you_mean(str(name), list(AUGMENTS)),
        )
    if data.train_x.ndim != 4 or min(data.train_x.shape[2:]) < 2:
        raise DataError(
            "bad-augment-input",
            f"augmentation {name!r} crops and flips images; dataset {data.name!r} has inputs of"
            f" shape {tuple(data.train_x.shape[1:])}",
            "use it with image data (CIFAR), or train without augment (Recipe(augment=None))",
        )
    return AUGMENTS[name](data, seed)
