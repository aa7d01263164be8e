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
