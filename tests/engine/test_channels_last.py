"""channels_last in the training loops (issue 13): a conv net trains in that memory format when
the run's numerics ask for it, to the same weights within float tolerance."""

from __future__ import annotations

import math

import torch

from causalunlearn import numerics as N
from causalunlearn.data import TensorData
from causalunlearn.data.splits import make_split
from causalunlearn.engine.verbs import train_from_scratch
from causalunlearn.recipes import Recipe
from causalunlearn.studies.model_cache import numerics_fingerprint


def _images(rows: int = 96) -> TensorData:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(rows) % 10
    # each class lights up its own block of pixels, plus noise: learnable in a few steps
    x = 0.3 * torch.randn(rows, 1, 28, 28, generator=g)
    for c in range(10):
        x[y == c, 0, 2 * c : 2 * c + 4, 4:20] += 2.0
    return TensorData("blocks", x, y, x[:40].clone(), y[:40].clone(), tuple(map(str, range(10))))


def _train(channels_last: bool):
    data = _images()
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    seen: list[bool] = []
    with N.applied(N.CpuNumerics(channels_last=channels_last)):
        original_forward = torch.nn.Conv2d.forward

        def spy(self, x):
            seen.append(x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1)
            return original_forward(self, x)

        torch.nn.Conv2d.forward = spy
        try:
            net, log = train_from_scratch(
                data,
                split,
                "train",
                model="cnn",
                recipe=Recipe(epochs=1, batch_size=32),
                seed=0,
                device=torch.device("cpu"),
                progress=False,
            )
        finally:
            torch.nn.Conv2d.forward = original_forward
    return net, log, seen


def test_a_conv_net_trains_in_channels_last_to_the_same_weights():
    plain, log_plain, seen_plain = _train(False)
    fast, log_fast, seen_fast = _train(True)
    # the second conv's input (more than one channel) shows the layout the loop ran in
    assert seen_fast and any(seen_fast) and not any(seen_plain)
    conv = [n for n, p in fast.named_parameters() if p.dim() == 4]
    assert conv and all(
        dict(fast.named_parameters())[n].is_contiguous(memory_format=torch.channels_last)
        for n in conv
    )
    for (name, a), (_, b) in zip(
        plain.state_dict().items(), fast.state_dict().items(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), name
    for sid, rows in log_plain.losses.items():
        assert rows and len(rows) == len(log_fast.losses[sid])
        for a, b in zip(rows, log_fast.losses[sid], strict=True):
            assert a.keys() == b.keys()
            for term in a:
                assert math.isclose(a[term], b[term], rel_tol=1e-4, abs_tol=1e-6), (sid, term)


def test_channels_last_is_part_of_the_model_cache_key_only_when_on():
    with N.applied(N.CpuNumerics()):
        off = numerics_fingerprint()
    with N.applied(N.CpuNumerics(channels_last=True)):
        on = numerics_fingerprint()
    assert "channels_last" not in off and on == {**off, "channels_last": True}
