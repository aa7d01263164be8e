"""The trivial baseline head-zero: its exact effect on digits, its errors, run and compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from causalunlearn.data import make_split
from causalunlearn.errors import CausalUnlearnError
from causalunlearn.methods import MethodEntry, load_any
from causalunlearn.methods.dispatch import unlearn_with
from causalunlearn.methods.trivial import classifier_head
from causalunlearn.metrics.accuracy import predict
from causalunlearn.metrics.probe import representation_probe

ROOT = Path(__file__).resolve().parents[2]
HEAD_ZERO = ROOT / "graphs" / "baselines" / "head-zero.yaml"


def test_entry_is_shipped_and_loads_by_name():
    entry = load_any("baselines/head-zero")
    assert isinstance(entry, MethodEntry) and entry.method == "head-zero"
    assert entry.params == {"bias": -100.0}
    assert load_any(HEAD_ZERO) == entry and entry.summary and "\n" not in entry.summary


def test_head_zero_on_digits_changes_exactly_the_forgotten_head_row(digits_class0):
    data, split, original = digits_class0
    result = unlearn_with(load_any(HEAD_ZERO), original, data, split, seed=0, device="cpu")
    before, after = original.state_dict(), result.model.state_dict()
    assert result.info == {"head": "head", "classes": [0], "bias": -100.0}
    for name, value in before.items():  # every weight but the head's row 0 is the original's
        if name.startswith("head."):
            assert torch.equal(after[name][1:], value[1:])
        else:
            assert torch.equal(after[name], value)
    assert not after["head.weight"][0].any() and after["head.bias"][0] == -100.0
    logits = predict(result.model, data.train_x)
    assert torch.equal(logits[:, 0], torch.full((len(logits),), -100.0))
    # Predictions: the original's arg-max with class 0 taken out, computed independently.
    reference = predict(original, data.train_x)
    reference[:, 0] = -torch.inf
    assert torch.equal(logits.argmax(1), reference.argmax(1))
    forget = torch.as_tensor(split.forget.copy())
    assert (logits[forget].argmax(1) != 0).all()  # forget accuracy 0
    # The representation is the original's: the probe reads the class from it exactly as well.
    assert representation_probe(result.model, data, split) == representation_probe(
        original, data, split
    )
    assert original.head.bias[0] != -100.0  # the original is left as it was


def test_random_removal_is_refused(digits_class0):
    data, _, original = digits_class0
    split = make_split(data.train_y, "random:0.1", 0, data.num_classes)
    with pytest.raises(CausalUnlearnError) as err:
        unlearn_with(load_any(HEAD_ZERO), original, data, split, device="cpu")
    assert err.value.code == "class-removal-only" and "class:0" in err.value.hint


class _ConvHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(64, 16)
        self.head = nn.Conv1d(1, 10, 16)  # logits from a convolution

    def forward(self, x):
        return self.head(self.body(x.flatten(1)).unsqueeze(1)).flatten(1)


class _ScaledHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return 2 * self.head(x.flatten(1))  # the logits are not the head's output


@pytest.mark.parametrize(
    ("model", "words"),
    [
        (_ConvHead(), "is a Conv1d, not a Linear"),
        (nn.Sequential(nn.Flatten(), nn.Linear(64, 10, bias=False)), "has no bias"),
        (_ScaledHead(), "is not the model's logits"),
        (nn.Sequential(nn.Flatten(), nn.Softmax(dim=1)), "no layer with weights"),
    ],
    ids=["conv", "no-bias", "scaled", "no-weights"],
)
def test_a_model_without_a_linear_head_is_refused(digits_class0, model, words):
    data, split, _ = digits_class0
    with pytest.raises(CausalUnlearnError) as err:
        unlearn_with(load_any(HEAD_ZERO), model, data, split, device="cpu")
    assert err.value.code == "no-linear-head" and words in err.value.message


def test_the_head_is_found_by_execution_order_not_registration():
    class Reordered(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 3)  # registered first, runs last
            self.body = nn.Linear(4, 8)

        def forward(self, x):
            return self.head(torch.relu(self.body(x)))

    net = Reordered().train()
    path, module = classifier_head(net, torch.zeros(2, 4))
    assert path == "head" and module is net.head and net.training  # flags restored


def test_run_and_compare_run_it_like_any_method(tmp_path, capsys):
    from causalunlearn.cli import main

    cache = str(tmp_path / "cache")
    common = ["--dataset", "digits", "--epochs-original", "2", "--cache-dir", cache]
    common += ["--threads", "1", "--no-progress"]
    out = tmp_path / "run"
    assert main(["run", str(HEAD_ZERO), *common, "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    unlearned = manifest["per_seed"][0]["metrics"]["unlearned"]
    assert unlearned["forget_acc"] == 0.0 and unlearned["test_forgotten_classes_acc"] == 0.0
    assert "head-zero" in (out / "results.md").read_text()
    sweep = tmp_path / "sweep"
    finetune = str(ROOT / "graphs" / "baselines" / "finetune.yaml")
    args = ["compare", str(HEAD_ZERO), finetune, *common, "--seeds", "0", "--no-plots"]
    assert main([*args, "--out", str(sweep)]) == 0
    summary = json.loads((sweep / "summary.json").read_text())
    rows = summary["tables"][0]["rows"]
    assert rows["head-zero"]["forget_acc"]["mean"] == 0.0 and "finetune" in rows
    capsys.readouterr()
