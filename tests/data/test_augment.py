"""CIFAR augmentation (random crop from a 4-pixel padding, left-right flip) on batch tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from causalunlearn.data import load_dataset
from causalunlearn.data.augment import AUGMENTS, CropFlip, make_augment
from causalunlearn.errors import DataError
from causalunlearn.recipes import AUGMENTATIONS

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def _expected(raw: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """The torchvision pipeline, row by row: zero-pad the raw pixels, crop at the offsets the
    generator draws (documented order: 2×N offsets, then N flip coins), flip, normalise."""
    n, _, h, w = raw.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = []
    for i in range(n):
        padded = F.pad(raw[i], (padding,) * 4, value=0.0)
        top, left = int(offsets[0, i]), int(offsets[1, i])
        crop = padded[:, top : top + h, left : left + w]
        out.append(_normalise(crop.flip(-1) if flips[i] else crop))
    return torch.stack(out)


def test_crop_flip_equals_padding_raw_pixels_then_normalising():
    raw = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    fill = [-m / s for m, s in zip(MEAN, STD, strict=True)]
    augment = CropFlip(7, fill)
    twin = torch.Generator().manual_seed(0)
    twin.set_state(augment.generator.get_state())
    got = augment(_normalise(raw))
    assert got.shape == raw.shape
    assert torch.allclose(got, _expected(raw, twin), atol=1e-5)


def test_seeds_and_state_give_the_same_draws():
    x = torch.randn(8, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    a, b, c = CropFlip(3), CropFlip(3), CropFlip(4)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(CropFlip(3)(x), c(x))
    saved = a.state_dict()
    first = a(x)
    a.load_state_dict(saved)
    assert torch.equal(a(x), first)  # a resumed training draws what it would have drawn


def test_flips_and_crops_actually_happen():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4).repeat(32, 1, 1, 1)
    out = CropFlip(0, padding=1)(x)
    unchanged = [(torch.equal(out[i], x[i])) for i in range(out.shape[0])]
    assert 0 < sum(unchanged) < len(unchanged)  # 1/18 of crops × 1/2 flips leave a row as it is


def test_make_augment_for_a_dataset_pads_with_normalised_black():
    data = load_dataset("digits")
    augment = make_augment("cifar", data, seed=0)
    assert isinstance(augment, CropFlip) and augment.padding == 4
    assert augment.fill == [-m / s for m, s in zip(data.mean, data.std, strict=True)]
    assert set(AUGMENTATIONS) == set(AUGMENTS)  # the recipe accepts what exists
    with pytest.raises(DataError) as err:
        make_augment("cifra", data, seed=0)
    assert err.value.code == "unknown-augment" and "cifar" in err.value.hint
