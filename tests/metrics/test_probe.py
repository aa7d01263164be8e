"""The representation probe: known answers on synthetic features, then digits end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from causalunlearn.data import make_split
from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics.probe import (
    MIN_PROBE_ROWS,
    probe_accuracy,
    probe_rows,
    random_init_probe,
    representation_features,
    representation_probe,
)
from causalunlearn.models.representation import forward_with_representation


# Synthetic features: the answer is known by construction ----------------------------------------
def test_separable_features_are_probed_perfectly():
    rng = np.random.default_rng(1)
    pos = rng.normal(+5.0, 1.0, size=(40, 3))
    neg = rng.normal(-5.0, 1.0, size=(40, 3))  # 10 standard deviations apart on every axis
    accuracy, converged = probe_accuracy(pos, neg, seed=0)
    assert accuracy == 100.0 and converged


def test_identical_features_give_exactly_chance():
    # Nothing tells the sides apart: the probe predicts one class everywhere, and each scored half
    # holds as many rows of each side, so exactly half are right.
    same = np.ones((30, 4))
    accuracy, _ = probe_accuracy(same, same.copy(), seed=0)
    assert accuracy == 50.0


def test_two_flipped_rows_cost_exactly_their_share():
    # One feature: positives at +1 and negatives at -1, except one row of each side on the other
    # side. Every probe fitted on a half thresholds between -1 and +1 (the majority of each side is
    # on its own side), so exactly the two flipped rows are wrong: 100 * (2n - 2) / (2n).
    n = 10
    pos = np.ones((n, 1))
    neg = -np.ones((n, 1))
    pos[3], neg[7] = -1.0, 1.0
    accuracy, _ = probe_accuracy(pos, neg, seed=4)
    assert accuracy == pytest.approx(100 * (2 * n - 2) / (2 * n))


def test_the_probe_is_seeded_and_checks_its_rows():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(0.3, 1, (50, 5)), rng.normal(0, 1, (50, 5))
    assert probe_accuracy(pos, neg, seed=3) == probe_accuracy(pos, neg, seed=3)
    with pytest.raises(CausalUnlearnError) as err:
        probe_accuracy(pos[:9], neg[:9])
    assert err.value.code == "bad-probe-rows"  # odd: the halves would not be balanced
    with pytest.raises(CausalUnlearnError) as err:
        probe_accuracy(pos[:2], neg[:2])
    assert err.value.code == "too-little-data-for-probe"


# Rows: the task follows the split -----------------------------------------------------------------
def test_class_removal_probes_forgotten_class_test_rows_against_as_many_others(digits_class0):
    data, split, _ = digits_class0
    rows = probe_rows(data, split, seed=0)
    zeros = int((data.test_y == 0).sum())
    n = min(zeros, len(data.test_y) - zeros)
    assert rows.task == "forgotten-class"
    assert len(rows.positives) == len(rows.negatives) == n - n % 2
    # Every positive is a test row of class 0, every negative a test row of another class.
    assert set(data.test_y[rows.positive_rows].tolist()) == {0}
    assert 0 not in set(data.test_y[rows.negative_rows].tolist())
    assert torch.equal(rows.positives, data.test_x[rows.positive_rows])
    assert torch.equal(rows.negatives, data.test_x[rows.negative_rows])


def test_random_removal_probes_forget_rows_against_test_rows(digits_class0):
    data, _, _ = digits_class0
    split = make_split(data.train_y, "random:0.1", 0, data.num_classes)
    rows = probe_rows(data, split, seed=0)
    n = min(len(split.forget), len(data.test_y))
    assert rows.task == "membership"
    assert len(rows.positives) == len(rows.negatives) == n - n % 2
    assert set(rows.positive_rows.tolist()) <= set(split.forget.tolist())
    assert torch.equal(rows.positives, data.train_x[rows.positive_rows])
    assert torch.equal(rows.negatives, data.test_x[rows.negative_rows])
    assert len(probe_rows(data, split, seed=0, max_per_side=20).positives) == 20


def test_too_few_rows_is_a_coded_error(digits_class0):
    data, _, _ = digits_class0
    split = make_split(data.train_y, "perclass:3=0.01", 0, data.num_classes)  # 1 forget row
    assert len(split.forget) < MIN_PROBE_ROWS
    with pytest.raises(CausalUnlearnError) as err:
        probe_rows(data, split, seed=0)
    assert err.value.code == "too-little-data-for-probe"


# Digits end to end -------------------------------------------------------------------------------
def test_features_are_the_declared_representation_layer(digits_class0):
    data, _, original = digits_class0
    features, path = representation_features(original, data.test_x[:50], batch_size=16)
    _, z = forward_with_representation(original.eval(), data.test_x[:50])
    assert path == "rep" and features.shape == (50, 64)
    assert np.allclose(features, z.detach().double().numpy(), atol=1e-6)


def test_digits_probe_of_the_original_and_its_random_init_floor(digits_class0):
    data, split, original = digits_class0
    result = representation_probe(original, data, split, seed=0)
    again = representation_probe(original, data, split, seed=0)
    assert result == again  # seeded and deterministic
    assert result.task == "forgotten-class" and result.layer == "rep" and result.features == 64
    # A trained digits MLP separates the zeros from the other digits in its representation.
    assert result.accuracy >= 90.0
    floor = random_init_probe("mlp", data, split, seed=0)
    assert floor.rows_per_side == result.rows_per_side and 0.0 <= floor.accuracy <= 100.0
    # The floor is the same probe of the untrained network the original started from.
    from causalunlearn.models.zoo import build_model

    fresh = build_model("mlp", data.num_classes, data.input_shape, seed=0)
    assert representation_probe(fresh, data, split, seed=0) == floor


def test_a_model_without_the_layer_is_a_coded_error(digits_class0):
    data, split, _ = digits_class0
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with pytest.raises(CausalUnlearnError) as err:
        representation_probe(net, data, split)
    assert err.value.code == "missing-representation-layer"


# run and compare report it, with the random-init floor -----------------------------------------
def test_run_and_compare_report_the_probe_and_its_floor(tmp_path):
    import json
    from pathlib import Path

    from causalunlearn.cli import main
    from causalunlearn.data import load_dataset

    head_zero = str(Path(__file__).resolve().parents[2] / "graphs" / "baselines" / "head-zero.yaml")
    common = ["--dataset", "digits", "--epochs-original", "2", "--threads", "1", "--no-progress"]
    common += ["--cache-dir", str(tmp_path / "cache"), "--probe"]
    assert main(["run", head_zero, *common, "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "manifest.json").read_text())["per_seed"][0]["metrics"]
    data = load_dataset("digits")
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    # The floor: the same probe of the untrained network, computed here directly.
    assert metrics["random_init"] == {"probe_acc": random_init_probe("mlp", data, split).accuracy}
    # head-zero leaves the representation as it is: the probe reads it as from the original.
    assert metrics["unlearned"]["probe_acc"] == metrics["original"]["probe_acc"]
    assert 0 <= metrics["oracle"]["probe_acc"] <= 100
    table = (tmp_path / "run" / "results.md").read_text()
    assert "| retrain oracle | random-init network |" in table
    assert "| Probe acc, representation" in table
    sweep = tmp_path / "sweep"
    assert main(["compare", head_zero, *common, "--seeds", "0", "--out", str(sweep)]) == 0
    rows = json.loads((sweep / "summary.json").read_text())["tables"][0]["rows"]
    assert rows["random_init"]["probe_acc"]["mean"] == metrics["random_init"]["probe_acc"]
    assert rows["head-zero"]["probe_acc"]["mean"] == metrics["unlearned"]["probe_acc"]
    assert "| random-init network (probe floor) |" in (sweep / "summary.md").read_text()
