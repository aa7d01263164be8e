"""The CIFAR ResNet-20 of the zoo (He et al. 2016, §4.2): architecture, shortcut, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from causalunlearn.errors import ModelError
from causalunlearn.models import (
    MODELS,
    CifarResNet20,
    build_model,
    capture_representation,
    forward_with_representation,
)
from causalunlearn.models.resnet_cifar import CifarBasicBlock


def _paper_parameter_count(num_classes: int = 10, channels_in: int = 3, n: int = 3) -> int:
    """ResNet-(6n+2)'s parameters counted from the paper's description, not from the code:
    a 3×3 stem of 16 filters; stages of 16, 32, 64 filters with 2n bias-free 3×3 convolutions
    each (the first of stages 2 and 3 reads the previous width); batch norm (scale + shift) after
    every convolution; parameter-free option-A shortcuts; a 64→classes linear layer."""
    total = channels_in * 16 * 9 + 2 * 16  # stem convolution + its batch norm
    width_in = 16
    for width in (16, 32, 64):
        total += width_in * width * 9 + (2 * n - 1) * width * width * 9  # convolutions
        total += 2 * n * 2 * width  # batch norms
        width_in = width
    return total + 64 * num_classes + num_classes


def test_resnet20_has_the_papers_parameters_and_twenty_weighted_layers():
    model = build_model("resnet20", 10, (3, 32, 32), seed=0)
    count = sum(p.numel() for p in model.parameters())
    assert count == _paper_parameter_count() == 269_722  # "0.27M" in the paper's Table 6
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == 20
    assert "resnet20" in MODELS.names()
    assert isinstance(model, CifarResNet20)


def test_stages_halve_the_maps_and_double_the_filters():
    model = build_model("resnet20", 10, (3, 32, 32), seed=0).eval()
    shapes = {}
    hooks = [
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))
        )
        for name in ("layer1", "layer2", "layer3")
    ]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    logits, z = forward_with_representation(model, x)
    for hook in hooks:
        hook.remove()
    assert shapes == {"layer1": (16, 32, 32), "layer2": (32, 16, 16), "layer3": (64, 8, 8)}
    assert logits.shape == (2, 10)
    assert z.shape == (2, 64)  # the pooled feature, addressed by the 'representation' alias
    # The representation is the average of layer3's maps over the 8×8 positions.
    with capture_representation(model, "layer3", flatten=False) as cap:
        model(x)
        assert torch.allclose(z, cap.value.mean(dim=(2, 3)), atol=1e-6)


def test_option_a_shortcut_subsamples_and_zero_pads_without_parameters():
    block = CifarBasicBlock(16, 32, stride=2)
    x = torch.randn(3, 16, 8, 8, generator=torch.Generator().manual_seed(1))
    expected = torch.zeros(3, 32, 4, 4)
    expected[:, 8:24] = x[:, :, 0::2, 0::2]  # 8 zero channels on each side
    assert torch.equal(block.shortcut(x), expected)
    same = CifarBasicBlock(16, 16)
    assert torch.equal(same.shortcut(x), x)
    shortcut_params = sum(p.numel() for p in block.parameters()) - (
        16 * 32 * 9 + 32 * 32 * 9 + 2 * 2 * 32
    )
    assert shortcut_params == 0


def test_block_output_is_relu_of_residual_plus_shortcut():
    torch.manual_seed(0)
    block = CifarBasicBlock(16, 16).eval()
    x = torch.randn(2, 16, 6, 6)
    residual = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
    assert torch.allclose(block(x), F.relu(residual + x))


def test_seeded_builds_are_equal_and_seeds_differ():
    a = build_model("resnet20", 10, (3, 32, 32), seed=4)
    b = build_model("resnet20", 10, (3, 32, 32), seed=4)
    c = build_model("resnet20", 10, (3, 32, 32), seed=5)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_other_input_shapes_and_a_bad_one():
    model = build_model("resnet20", 7, (1, 8, 8), seed=0)  # digits-sized
    assert model(torch.randn(4, 1, 8, 8)).shape == (4, 7)
    with pytest.raises(ModelError) as err:
        build_model("resnet20", 10, (3, 2, 2))
    assert err.value.code == "invalid-input-shape"


def test_it_learns_a_small_batch():
    """Behaviour, not shapes: SGD steps fit 32 fixed images (a bug in the blocks or the
    shortcut that cuts the gradient path would leave the loss where it starts)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, 16, 16, generator=g)
    y = torch.randint(0, 10, (32,), generator=g)
    model = build_model("resnet20", 10, (3, 16, 16), seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    first = None
    for _ in range(25):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.5 * first
