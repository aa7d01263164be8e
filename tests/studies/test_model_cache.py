"""The model cache: keyed by what determines a model, never loads a stale or foreign file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import causalunlearn.studies.model_cache as model_cache
from causalunlearn.data import load_dataset, make_split
from causalunlearn.data.datasets import TensorData
from causalunlearn.errors import ModelError
from causalunlearn.models.zoo import MODELS, register_model
from causalunlearn.recipes import Recipe
from causalunlearn.studies.model_cache import ModelCache

FAST = Recipe(epochs=1)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _get(cache, data, split, which="original", model="mlp", seed=0, recipe=FAST):
    return cache.get(
        data, split, which, model=model, recipe=recipe, seed=seed, device=CPU, progress=False
    )


def _path(cache, data, split, which="original", model="mlp", seed=0, recipe=FAST):
    return cache.path(data, split, which, model=model, recipe=recipe, seed=seed)


def test_miss_then_hit(digits, tmp_path, monkeypatch):
    cache = ModelCache(tmp_path / "models")
    split = make_split(digits.train_y, "class:0", 0, digits.num_classes)
    first, info = _get(cache, digits, split)
    assert info["cached"] is False and Path(info["path"]).is_file()
    assert Path(info["path"]).with_suffix(".json").is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("a cache hit must not train")

    monkeypatch.setattr(model_cache, "train_from_scratch", no_training)
    second, info2 = _get(cache, digits, split)
    assert info2["cached"] is True and info2["path"] == info["path"]
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_key_changes_with_each_input_that_decides_the_weights(digits, tmp_path):
    cache = ModelCache(tmp_path)
    split = make_split(digits.train_y, "class:0", 0, digits.num_classes)
    base = _path(cache, digits, split)
    assert _path(cache, digits, split, seed=1) != base
    assert _path(cache, digits, split, recipe=Recipe(epochs=2)) != base
    assert _path(cache, digits, split, recipe=Recipe(epochs=1, lr=2e-3)) != base
    assert _path(cache, digits, split, which="oracle") != base
    # Another preprocessing of the same images is another training set.
    shifted = TensorData(
        name=digits.name,
        train_x=digits.train_x * 0.5,
        train_y=digits.train_y,
        test_x=digits.test_x,
        test_y=digits.test_y,
        classes=digits.classes,
        mean=digits.mean,
        std=digits.std,
    )
    assert _path(cache, shifted, split) != base
    # The original does not depend on the split at all.
    other = make_split(digits.train_y, "class:3", 5, digits.num_classes)
    assert _path(cache, digits, other) == base


def test_oracles_are_keyed_by_the_retain_set_not_the_split(digits, tmp_path):
    cache = ModelCache(tmp_path)
    # Class removal under two split seeds: other retain samples, the same retain set.
    a = make_split(digits.train_y, "class:0", 0, digits.num_classes)
    b = make_split(digits.train_y, "class:0", 7, digits.num_classes)
    assert a.digest() != b.digest()
    assert _path(cache, digits, a, "oracle") == _path(cache, digits, b, "oracle")
    c = make_split(digits.train_y, "class:1", 0, digits.num_classes)
    assert _path(cache, digits, c, "oracle") != _path(cache, digits, a, "oracle")


def test_a_changed_architecture_under_the_same_name_is_not_reused(digits, tmp_path):
    class Small(nn.Module):
        def __init__(self, num_classes, input_shape, act=nn.ReLU):
            super().__init__()
            self.flat = nn.Flatten()
            self.rep = nn.Linear(64, 16)
            self.act = act()
            self.head = nn.Linear(16, num_classes)

        def forward(self, x):
            return self.head(self.act(self.rep(self.flat(x))))

    class SmallTanh(Small):
        def __init__(self, num_classes, input_shape):
            super().__init__(num_classes, input_shape, act=nn.Tanh)

    split = make_split(digits.train_y, "class:0", 0, digits.num_classes)
    cache = ModelCache(tmp_path)
    try:
        register_model("cache-test-net")(Small)
        relu = _path(cache, digits, split, "oracle", model="cache-test-net")
        register_model("cache-test-net", overwrite=True)(SmallTanh)
        tanh = _path(cache, digits, split, "oracle", model="cache-test-net")
    finally:
        MODELS.pop("cache-test-net", None)
    assert relu != tanh


def test_a_file_without_its_fingerprint_is_refused(digits, tmp_path):
    cache = ModelCache(tmp_path)
    split = make_split(digits.train_y, "class:0", 0, digits.num_classes)
    _, info = _get(cache, digits, split)
    sidecar = Path(info["path"]).with_suffix(".json")
    doc = json.loads(sidecar.read_text())
    doc["seed"] = 99
    sidecar.write_text(json.dumps(doc))
    with pytest.raises(ModelError) as err:
        _get(cache, digits, split)
    assert err.value.code == "cache-mismatch" and "delete" in err.value.hint
    sidecar.unlink()
    with pytest.raises(ModelError) as err:
        _get(cache, digits, split)
    assert err.value.code == "cache-mismatch"


def test_a_corrupt_entry_says_which_files_to_delete(digits, tmp_path):
    cache = ModelCache(tmp_path)
    split = make_split(digits.train_y, "class:0", 0, digits.num_classes)
    _, info = _get(cache, digits, split)
    Path(info["path"]).write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError) as err:
        _get(cache, digits, split)
    assert err.value.code == "corrupt-cache-entry"
    assert info["path"] in err.value.hint


def _shadow(cache, digits, train, rows=None, wait=True):
    rows = torch.arange(0, 200).numpy() if rows is None else rows
    return cache.shadow(
        digits,
        rows,
        model="mlp",
        recipe=FAST,
        seed=3,
        device=CPU,
        executor="fast",
        train=train,
        wait=wait,
    )


def test_a_shadow_is_written_once_and_returned_as_it_is_read(digits, tmp_path):
    from causalunlearn.models.zoo import build_model

    cache = ModelCache(tmp_path)
    made = build_model("mlp", digits.num_classes, digits.input_shape, seed=11)
    net, info = _shadow(cache, digits, lambda: made)
    assert info["cached"] is False and Path(info["path"]).parent.name == "shadows"
    assert net is not made  # the module a cache hit returns, with the trained weights
    assert not net.training
    for a, b in zip(made.state_dict().values(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    def no_training():
        raise AssertionError("a cached shadow must not be trained again")

    again, info2 = _shadow(cache, digits, no_training)
    assert info2["cached"] is True and info2["path"] == info["path"]
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # A sidecar of other settings is refused, as an original's is.
    sidecar = Path(info["path"]).with_suffix(".json")
    doc = json.loads(sidecar.read_text())
    doc["rows"] = 1
    sidecar.write_text(json.dumps(doc))
    with pytest.raises(ModelError) as err:
        _shadow(cache, digits, no_training)
    assert err.value.code == "cache-mismatch"


def test_a_shadow_locked_by_another_process_is_not_waited_for_when_asked(digits, tmp_path):
    from filelock import FileLock

    from causalunlearn.locks import lock_path

    cache = ModelCache(tmp_path)
    rows = torch.arange(0, 200).numpy()
    doc = cache.shadow_fingerprint(digits, rows, model="mlp", recipe=FAST, seed=3, executor="fast")
    path = cache.path_for(doc)
    path.parent.mkdir(parents=True)

    def no_training():
        raise AssertionError("a busy shadow must not be trained")

    with FileLock(lock_path(path)):  # another holder: a second lock file handle
        assert _shadow(cache, digits, no_training, rows, wait=False) is None
    assert not path.exists()
