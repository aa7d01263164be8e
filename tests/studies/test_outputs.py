"""Per-example outputs: what a run keeps of each model, in which order, and how it is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from causalunlearn.data import load_dataset, make_split
from causalunlearn.errors import RunError
from causalunlearn.methods import load_any
from causalunlearn.metrics.accuracy import predict
from causalunlearn.models.zoo import build_model, load_state
from causalunlearn.recipes import Recipe
from causalunlearn.studies import outputs as O
from causalunlearn.studies.experiment import RunSettings, run_experiment
from causalunlearn.studies.model_cache import ModelCache

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"
FAST = Recipe(epochs=2)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits", progress=False)
    return data, make_split(data.train_y, "random:0.1", 0, data.num_classes)


def _random_logits(data, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "train": torch.randn(len(data.train_y), data.num_classes, generator=g),
        "test": torch.randn(len(data.test_y), data.num_classes, generator=g),
    }


def test_an_archive_reads_back_exactly(tmp_path, digits):
    data, split = digits
    logits = {"original": _random_logits(data, 0), "unlearned": _random_logits(data, 1)}
    extra = {"oracles.forget": np.ones((2, len(split.forget), data.num_classes), np.float32)}
    record = O.save_outputs(tmp_path / "o.npz", logits, data=data, split=split, arrays=extra)
    assert record["split_digest"] == split.digest() and record["roles"] == ["original", "unlearned"]
    assert record["bytes"] == (tmp_path / "o.npz").stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.npz"]  # no temporary file left
    outs = O.load_outputs(tmp_path / "o.npz", split_digest=split.digest())
    for role, parts in logits.items():
        for part in ("train", "test"):
            assert outs.logits[role][part].dtype == np.float32
            np.testing.assert_array_equal(outs.logits[role][part], parts[part].numpy())
    np.testing.assert_array_equal(outs.train_y, data.train_y.numpy())
    np.testing.assert_array_equal(outs.test_y, data.test_y.numpy())
    assert outs.split.digest() == split.digest()
    np.testing.assert_array_equal(outs.split.forget, split.forget)
    np.testing.assert_array_equal(outs.arrays["oracles.forget"], extra["oracles.forget"])
    assert outs.meta["row_order"] == O.ROW_ORDER and outs.meta["dataset"] == "digits"
    labels = outs.labels_data()
    assert torch.equal(labels.train_y, data.train_y) and labels.num_classes == data.num_classes


def test_bad_archives_get_coded_errors(tmp_path, digits):
    data, split = digits
    path = tmp_path / "o.npz"
    with pytest.raises(RunError) as err:
        O.load_outputs(path)
    assert err.value.code == "outputs-missing"
    O.save_outputs(path, {"unlearned": _random_logits(data)}, data=data, split=split)
    with pytest.raises(RunError) as err:
        O.load_outputs(path, split_digest="0123456789ab")
    assert err.value.code == "outputs-split-mismatch" and split.digest() in err.value.message
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(RunError) as err:
        O.load_outputs(path)
    assert err.value.code == "corrupt-outputs"
    short = {"unlearned": {"train": torch.zeros(3, 10), "test": torch.zeros(3, 10)}}
    with pytest.raises(RunError) as err:
        O.save_outputs(tmp_path / "p.npz", short, data=data, split=split)
    assert err.value.code == "bad-outputs"
    assert not (tmp_path / "p.npz").exists()


def test_a_run_keeps_every_models_outputs_in_dataset_order(tmp_path):
    cache = tmp_path / "cache"
    out = tmp_path / "run"
    settings = RunSettings(
        dataset="digits",
        scenario="class:0",
        seeds=(0,),
        recipe=FAST,
        cache_dir=str(cache),
        progress=False,
        threads=1,
    )
    manifest = run_experiment(load_any(CAMU, preset="digits-class"), settings, out)
    entry = manifest["per_seed"][0]
    record = entry["outputs"]
    assert record["file"] == "outputs-seed0.npz"
    assert record["split_digest"] == entry["split"]["digest"]
    outs = O.load_outputs(out / record["file"], split_digest=entry["split"]["digest"])
    assert sorted(outs.logits) == ["oracle", "original", "unlearned"]
    data = load_dataset("digits", progress=False)
    cpu = torch.device("cpu")
    unlearned = build_model("mlp", data.num_classes, data.input_shape)
    load_state(unlearned, out / "unlearned-seed0.pt")
    original, _ = ModelCache(cache / "models").get(
        data, outs.split, "original", model="mlp", recipe=FAST, seed=0, device=cpu, progress=False
    )
    for role, net in (("unlearned", unlearned.eval()), ("original", original)):
        for part, x in (("train", data.train_x), ("test", data.test_x)):
            np.testing.assert_allclose(
                outs.logits[role][part], predict(net, x, device=cpu).numpy(), rtol=0, atol=1e-5
            )
