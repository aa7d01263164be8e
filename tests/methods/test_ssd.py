"""SSD (Selective Synaptic Dampening) as a method entry: ``causalunlearn.methods``.

The importance is checked against the closed-form gradient of a linear softmax model, the
dampening rule against a hand-made example, a digits run against the rule applied weight by
weight, and the entry file's errors against their codes.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from causalunlearn.engine.verbs import Unlearned
from causalunlearn.errors import CausalUnlearnError, GraphError
from causalunlearn.graph import Graph
from causalunlearn.methods import (
    MethodEntry,
    MethodError,
    Param,
    get_method,
    is_method_file,
    load_any,
    load_method,
    register_method,
)
from causalunlearn.methods.ssd import dampen_, fisher_importance, importance_rows
from causalunlearn.metrics.accuracy import accuracy_report, predict

ROOT = Path(__file__).resolve().parents[2]
SSD = ROOT / "graphs" / "baselines" / "ssd.yaml"
CAMU = ROOT / "graphs" / "camu.yaml"


@pytest.fixture(scope="module")
def setting(digits_class0):
    """Digits, class 0 removed, and an MLP trained for 5 epochs (tests/conftest.py)."""
    return digits_class0


def accuracies(model, data, split) -> dict[str, float]:
    return accuracy_report(
        predict(model, data.train_x),
        data.train_y,
        split.forget,
        split.retain,
        predict(model, data.test_x),
        data.test_y,
        split.forgotten_classes,
    )


# Importance and dampening, against hand computations ---------------------------------------------
def test_fisher_importance_equals_the_closed_form_of_a_linear_softmax_model():
    gen = torch.Generator().manual_seed(0)
    model = nn.Linear(3, 4)
    x = torch.randn(7, 3, generator=gen)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    batch = 3  # batches of 3, 3 and 1 rows: the last, smaller batch counts as one batch
    weight_sq, bias_sq = torch.zeros(4, 3), torch.zeros(4)
    for start in (0, 3, 6):
        xb, yb = x[start : start + batch], y[start : start + batch]
        with torch.no_grad():
            # ∂ mean CE / ∂ logits = (softmax − onehot) / B; logits = W x + b
            delta = (torch.softmax(model(xb), dim=1) - F.one_hot(yb, 4).float()) / len(yb)
        weight_sq += (delta.T @ xb) ** 2
        bias_sq += delta.sum(0) ** 2
    weight_imp, bias_imp = fisher_importance(model, x, y, batch_size=batch)
    torch.testing.assert_close(weight_imp, weight_sq / 3)
    torch.testing.assert_close(bias_imp, bias_sq / 3)


def test_dampening_scales_exactly_the_selected_weights_by_beta():
    weight = torch.tensor([2.0, -3.0, 5.0, 7.0, 1.5, -4.0])
    forget = torch.tensor([4.0, 1.0, 0.0, 3.0, 8.0, 2.0])
    full = torch.tensor([1.0, 1.0, 1.0, 0.0, 3.0, 1.0])
    before = weight.clone()
    # alpha 2: selected where I_f > 2·I_D → rows 0 (4 > 2), 3 (3 > 0), 4 (8 > 6); row 5 (2 = 2) not
    n = dampen_([weight], [forget], [full], alpha=2.0, lam=1.0)
    assert n == 3
    expected = before.clone()
    expected[0] = before[0] * (1.0 / 4.0)  # β = λ·I_D/I_f
    expected[3] = before[3] * 0.0  # I_D = 0: the weight serves only the forget set
    expected[4] = before[4] * (3.0 / 8.0)
    assert torch.equal(weight, expected)
    # A large λ bounds β by 1: no weight grows; only I_D = 0 (β = 0 for any λ) still moves.
    weight = before.clone()
    assert dampen_([weight], [forget], [full], alpha=2.0, lam=100.0) == 3
    expected = before.clone()
    expected[3] = 0.0
    assert torch.equal(weight, expected)


def test_importance_rows_follow_the_official_order(setting):
    data, split, _ = setting
    labels = data.train_y.numpy()
    forget, full = importance_rows(split, labels, "class", None, seed=0)
    assert sorted(full.tolist()) == sorted([*split.retain.tolist(), *split.forget.tolist()])
    retain_part = full[: len(split.retain)]
    assert (labels[retain_part][1:] >= labels[retain_part][:-1]).all()  # grouped by class
    assert full[len(split.retain) :].tolist() == forget.tolist()  # D = retain, then forget
    _, by_index = importance_rows(split, labels, "index", None, seed=0)
    assert by_index.tolist() == [*split.retain.tolist(), *split.forget.tolist()]
    _, subset = importance_rows(split, labels, "class", 300, seed=4)
    assert len(subset) == len(set(subset.tolist())) == 300 and set(subset) <= set(full)
    position = {int(r): i for i, r in enumerate(full)}
    assert [position[int(r)] for r in subset] == sorted(position[int(r)] for r in subset)


# A digits run, against the rule applied weight by weight -----------------------------------------
def test_a_run_dampens_by_the_rule_and_leaves_the_input_model_untouched(setting):
    data, split, original = setting
    state = copy.deepcopy(original.state_dict())
    entry = load_method(SSD, preset="digits-class")
    result = entry.run(original, data, split, seed=0, device="cpu", progress=False)
    assert isinstance(result, Unlearned) and not result.model.training
    assert set(result.seconds) == {"materialise", "loop", "total"} and result.log.steps == {}
    assert all(torch.equal(v, state[k]) for k, v in original.state_dict().items())

    # Independent importances at the original weights, then the rule per weight.
    forget_rows, full_rows = importance_rows(split, data.train_y.numpy(), "class", None, 0)
    reference = copy.deepcopy(original)
    x, y = data.train_x, data.train_y
    imp_f = fisher_importance(reference, x[forget_rows], y[forget_rows], batch_size=64)
    imp_d = fisher_importance(reference, x[full_rows], y[full_rows], batch_size=64)
    alpha, lam = entry.params["alpha"], entry.params["lambda"]
    selected = 0
    after = dict(result.model.named_parameters())
    for (name, p), f, d in zip(original.named_parameters(), imp_f, imp_d, strict=True):
        chosen = f > alpha * d
        selected += int(chosen.sum())
        assert torch.equal(after[name][~chosen], p[~chosen])  # bit for bit
        beta = torch.clamp(lam * d[chosen] / f[chosen], max=1.0)
        assert torch.equal(after[name][chosen], p[chosen] * beta)
    assert selected == result.info["dampened"] > 0
    assert result.info["full_data_rows"] == len(split.retain) + len(split.forget)
    assert result.info["forget_rows"] == len(split.forget)


def test_ssd_yaml_on_digits_class_0_lowers_forget_accuracy(setting):
    data, split, original = setting
    before = accuracies(original, data, split)
    result = load_method(SSD, preset="digits-class").run(
        original, data, split, seed=0, device="cpu", progress=False
    )
    after = accuracies(result.model, data, split)
    assert after["forget_acc"] <= before["forget_acc"] - 20
    # Dampening touches weights shared with the retained classes too, but not most of them.
    assert after["retain_acc"] >= before["retain_acc"] - 15


def test_full_data_rows_bounds_the_data_and_is_recorded(setting):
    data, split, original = setting
    entry = load_method(SSD, overrides={"params.full_data_rows": 200})
    result = entry.run(original, data, split, seed=3, device="cpu", progress=False)
    assert result.info["full_data_rows"] == 200


# Entries, registry and files ---------------------------------------------------------------------
def test_entry_file_loads_documents_itself_and_round_trips():
    entry = load_method(SSD)
    assert entry.name == entry.method == "ssd"
    assert entry.params == {
        "alpha": 10.0,
        "lambda": 1.0,
        "batch_size": 64,
        "full_data_rows": None,
        "batch_order": "class",
    }
    assert entry.citation["arxiv"] == "2308.07707" and entry.citation["venue"]
    assert entry.summary and "\n" not in entry.summary
    assert load_method(entry.to_yaml()) == entry
    assert SSD.read_text().count("#") >= 10  # every setting explained in comments


def test_digest_changes_with_params_and_nothing_else():
    entry = load_method(SSD)
    assert entry.digest() == load_method(SSD).digest() and len(entry.digest()) == 16
    tuned = entry.with_preset("digits-class")
    assert tuned.params["alpha"] == 3.0 and tuned.digest() != entry.digest()
    assert entry.with_overrides({"params.alpha": 10}).digest() == entry.digest()  # int → float


def test_load_any_dispatches_on_format():
    assert isinstance(load_any(SSD), MethodEntry)
    assert isinstance(load_any(CAMU), Graph)
    assert is_method_file(SSD) and not is_method_file(CAMU)
    assert not is_method_file(ROOT / "no-such-file.yaml")
    graph = load_any(CAMU, preset="mnist-class", overrides={"schedule.epochs": 3})
    assert graph.schedule.epochs == 3
    assert load_any(SSD, preset="digits-class").params["alpha"] == 3.0


def _entry_text(**fields: str) -> str:
    base = {
        "format": "causalunlearn.method/v1",
        "name": "mine",
        "method": "ssd",
        "params": "{alpha: 5.0}",
    }
    base.update(fields)
    return "".join(f"{k}: {v}\n" for k, v in base.items())


@pytest.mark.parametrize(
    ("fields", "code", "words"),
    [
        ({"parmas": "{alpha: 5.0}"}, "unknown-field", "did you mean 'params'?"),
        ({"params": "{alpah: 5.0}"}, "unknown-param", "did you mean 'alpha'?"),
        ({"params": "{alpha: ten}"}, "wrong-type", "expected float"),
        ({"params": "{alpha: -1}"}, "bad-value", "must be >= 0"),
        ({"params": "{batch_order: random}"}, "bad-value", "one of class, index"),
        ({"method": "sdd"}, "unknown-method", "did you mean 'ssd'?"),
        ({"format": "causalunlearn.graph/v1"}, "bad-format", "load_graph"),
        ({"presets": "{p: {params.lamda: 2}}"}, "unknown-param", "did you mean 'lambda'?"),
        ({"presets": "{p: {alpha: 2}}"}, "unknown-override-path", "params.NAME"),
    ],
)
def test_entry_errors_have_codes_locations_and_hints(fields, code, words):
    with pytest.raises(MethodError) as err:
        load_method(_entry_text(**fields))
    assert code in err.value.codes
    assert words in str(err.value)
    assert "(<text>:" in str(err.value)  # located at a line


def test_missing_fields_and_yaml_problems():
    with pytest.raises(MethodError) as err:
        load_method("format: causalunlearn.method/v1\nname: x\n")
    assert err.value.codes == ["missing-field"] and "'method'" in str(err.value)
    with pytest.raises(GraphError) as err:  # the graph layer's strict reader
        load_method(_entry_text() + "name: again\n")
    assert err.value.codes == ["duplicate-key"]


def test_unknown_preset_lists_the_presets():
    with pytest.raises(MethodError) as err:
        load_method(SSD, preset="digit-class")
    assert err.value.codes == ["unknown-preset"]
    assert "did you mean 'digits-class'?" in str(err.value) and "it has: digits-class" in str(
        err.value
    )


def test_overrides_are_typed_and_checked():
    entry = load_method(SSD)
    assert entry.with_overrides({"params.batch_size": 32}).params["batch_size"] == 32
    with pytest.raises(MethodError) as err:
        entry.with_overrides({"params.batch_size": 0.5, "params.nope": 1, "alpha": 2})
    assert sorted(err.value.codes) == ["unknown-override-path", "unknown-param", "wrong-type"]


def test_unknown_method_from_the_registry():
    with pytest.raises(CausalUnlearnError) as err:
        get_method("sdd")
    assert err.value.code == "unknown-method" and "did you mean 'ssd'?" in str(err.value)


def test_a_registered_method_runs_as_an_entry(setting):
    data, split, original = setting

    @register_method("test-shrink", params={"factor": Param(float, 0.5, "weight multiplier")})
    def shrink(model, data, split, params, *, seed, device, progress):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(params["factor"])
        return {"factor": params["factor"]}

    entry = MethodEntry(name="shrink", method="test-shrink", params={"factor": 0.25})
    result = entry.run(original, data, split, device="cpu", progress=False)
    assert result.info == {"factor": 0.25}
    for p, q in zip(original.parameters(), result.model.parameters(), strict=True):
        assert torch.equal(q, p * 0.25)
    with pytest.raises(MethodError) as err:
        MethodEntry(name="shrink", method="test-shrink", params={"factr": 1.0})
    assert err.value.codes == ["unknown-param"]


def test_loading_an_entry_does_not_import_torch():
    code = (
        "import sys; from causalunlearn.methods import load_method; "
        f"load_method({str(SSD)!r}); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
