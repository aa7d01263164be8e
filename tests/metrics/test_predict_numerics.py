"""predict under channels_last and flush-to-zero gives today's logits (issue 13)."""

from __future__ import annotations

import torch

from causalunlearn import numerics as N
from causalunlearn.metrics.accuracy import predict
from causalunlearn.models.zoo import build_model


def test_channels_last_inference_matches_and_leaves_the_model_as_it_was():
    net = build_model("cnn", 10, (1, 28, 28), seed=0).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(70, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    plain = predict(net, x, batch_size=32, channels_last=False)
    fast = predict(net, x, batch_size=32, channels_last=True)
    assert torch.allclose(plain, fast, atol=1e-5, rtol=1e-5)
    assert net.training
    for k, v in net.state_dict().items():
        assert v.is_contiguous() and torch.equal(v, before[k])
    with N.applied(N.CpuNumerics(channels_last=True)):  # the default follows the numerics
        assert torch.allclose(predict(net, x, batch_size=32), plain, atol=1e-5, rtol=1e-5)
        with N.applied(N.CpuNumerics(flush_denormal=True, channels_last=True)):
            flushed = predict(net, x, batch_size=32)
    assert torch.allclose(flushed, plain, atol=1e-5, rtol=1e-5)
    # 2-D inputs (an MLP) are left alone
    mlp = build_model("mlp", 10, (64,), seed=0)
    rows = torch.randn(5, 64)
    assert torch.equal(predict(mlp, rows, channels_last=True), predict(mlp, rows))


def test_the_default_batch_is_the_measured_one_per_device_and_changes_no_logit():
    """Default rows per forward: 256 on the CPU (measured fastest, docs/performance.md); the
    logits are those of any other batch size to float tolerance."""
    from causalunlearn.metrics.accuracy import CPU_BATCH, DEVICE_BATCH

    net = build_model("cnn", 10, (1, 28, 28), seed=0)
    x = torch.randn(600, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    sizes = []
    net.register_forward_hook(lambda _m, args, _out: sizes.append(len(args[0])))
    default = predict(net, x)
    assert sizes == [256, 256, 88]  # 600 rows = 256 + 256 + 88
    assert CPU_BATCH == 256 and DEVICE_BATCH == 1024
    assert torch.allclose(default, predict(net, x, batch_size=1024), atol=1e-5, rtol=1e-5)
