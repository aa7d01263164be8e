"""Tests of the accuracy metrics and CaMU's membership-inference attack."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics import (
    ACCURACY_REPORT_KEYS,
    accuracy,
    accuracy_report,
    class_restricted_accuracy,
    mia_sample_sizes,
    mia_sorted_softmax,
    mia_sorted_softmax_from_logits,
    mia_sorted_softmax_from_model,
    mia_split_rows,
    predict,
    sorted_softmax_features,
)

# --------------------------------------------------------------------------------------------------
# Accuracy

# Rows: argmax of each logit row is 0, 1, 0, 1; labels 0, 1, 1, 1 → 3 of 4 right.
LOGITS = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
LABELS = torch.tensor([0, 1, 1, 1])


def test_accuracy_is_percent_from_logits_or_predictions():
    assert accuracy(LOGITS, LABELS) == 75.0
    assert accuracy(torch.tensor([0, 1, 0, 1]), LABELS) == 75.0
    assert accuracy(np.array([1, 1]), np.array([1.0, 0.0])) == 50.0  # integral float labels
    assert math.isnan(accuracy(torch.empty(0, 3), torch.empty(0, dtype=torch.long)))


def test_accuracy_errors():
    with pytest.raises(CausalUnlearnError) as info:
        accuracy(LOGITS, LABELS[:3])
    assert info.value.code == "length-mismatch"
    with pytest.raises(CausalUnlearnError) as info:
        accuracy(torch.tensor([0.3, 0.7]), torch.tensor([0, 1]))  # 1-d floats are not labels
    assert info.value.code == "invalid-predictions"
    with pytest.raises(CausalUnlearnError) as info:
        accuracy(torch.tensor([0, 1]), torch.tensor([0.5, 1.0]))
    assert info.value.code == "invalid-labels"


def test_class_restricted_accuracy_by_hand():
    preds = torch.tensor([0, 1, 1, 2, 0])
    labels = torch.tensor([0, 0, 1, 2, 2])
    # Class 0 rows: 0, 1 → predictions 0, 1 → 1 of 2 right.
    assert class_restricted_accuracy(preds, labels, [0]) == 50.0
    assert class_restricted_accuracy(preds, labels, 0) == 50.0
    # Other rows: 2, 3, 4 → predictions 1, 2, 0 against 1, 2, 2 → 2 of 3 right.
    assert class_restricted_accuracy(preds, labels, [0], keep=False) == pytest.approx(200 / 3)
    # Classes 1 and 2: rows 2, 3, 4 again.
    assert class_restricted_accuracy(preds, labels, [1, 2]) == pytest.approx(200 / 3)
    assert math.isnan(class_restricted_accuracy(preds, labels, [5]))
    assert math.isnan(class_restricted_accuracy(preds, labels, [0, 1, 2], keep=False))


def test_accuracy_report_class_removal_by_hand():
    train_preds = torch.tensor([0, 0, 1, 1, 2, 2])
    y_train = torch.tensor([0, 0, 1, 2, 2, 2])
    forget = [0, 1]  # the class-0 rows: both right → 100
    retain = [2, 3, 4, 5]  # predictions 1, 1, 2, 2 against 1, 2, 2, 2 → 3 of 4 → 75
    test_logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    y_test = torch.tensor([0, 0, 1, 2])  # predictions 0, 1, 1, 2 → 3 of 4
    report = accuracy_report(train_preds, y_train, forget, retain, test_logits, y_test, [0])
    assert tuple(report) == ACCURACY_REPORT_KEYS
    assert report == {
        "retain_acc": 75.0,
        "forget_acc": 100.0,
        "test_acc": 75.0,
        "test_retained_classes_acc": 100.0,  # rows 2, 3
        "test_forgotten_classes_acc": 50.0,  # rows 0, 1
    }
    # A boolean mask selects the same rows as the indices.
    mask = torch.tensor([True, True, False, False, False, False])
    assert accuracy_report(train_preds, y_train, mask, ~mask, test_logits, y_test, 0) == report


def test_accuracy_report_random_removal_gives_nan_class_metrics():
    y = torch.tensor([0, 1, 2, 0])
    for forgotten in (None, []):
        report = accuracy_report(y, y, [1], [0, 2, 3], y, y, forgotten)
        assert set(report) == set(ACCURACY_REPORT_KEYS)
        assert report["retain_acc"] == report["forget_acc"] == report["test_acc"] == 100.0
        assert math.isnan(report["test_retained_classes_acc"])
        assert math.isnan(report["test_forgotten_classes_acc"])
    empty = accuracy_report(y, y, [], [0, 1, 2, 3], y, y, None)
    assert math.isnan(empty["forget_acc"])


def test_accuracy_report_index_errors():
    y = torch.tensor([0, 1, 2])
    with pytest.raises(CausalUnlearnError) as info:
        accuracy_report(y, y, [3], [0], y, y, [0])
    assert info.value.code == "index-out-of-range"
    with pytest.raises(CausalUnlearnError) as info:
        accuracy_report(y, y, torch.tensor([True, False]), [0], y, y, [0])
    assert info.value.code == "invalid-index"


class _Recorder(nn.Module):
    """Linear model with a dropout (so train/eval matters) and a frozen batch-norm."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.dropout = nn.Dropout(0.5)
        self.norm = nn.BatchNorm1d(3)

    def forward(self, x):
        return self.norm(self.dropout(self.linear(x)))


def test_predict_batches_restores_modes_and_returns_a_normal_tensor():
    torch.manual_seed(0)
    model = _Recorder()
    model.train()
    model.norm.eval()  # a frozen batch-norm must stay in eval mode afterwards
    x = torch.randn(10, 4)
    logits = predict(model, x, batch_size=3, device="cpu")
    assert model.training and model.dropout.training and not model.norm.training
    model.eval()
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(logits, expected)
    assert logits.device.type == "cpu" and not logits.is_inference()
    weight = torch.ones(3, requires_grad=True)
    (torch.log_softmax(logits * weight, 1) * torch.softmax(logits, 1)).sum().backward()
    assert predict(model, x[:0]).shape == (0, 3)
    with pytest.raises(CausalUnlearnError) as info:
        predict(model, x, batch_size=0)
    assert info.value.code == "invalid-batch-size"


# --------------------------------------------------------------------------------------------------
# Membership inference


def _confident(n: int, rng: np.random.Generator, classes: int = 10) -> np.ndarray:
    """Member-like softmax rows: one class gets 0.9-0.99 of the mass."""
    top = rng.uniform(0.9, 0.99, size=n)
    rest = rng.dirichlet(np.ones(classes - 1), size=n) * (1 - top)[:, None]
    probs = np.concatenate([top[:, None], rest], axis=1)
    return rng.permuted(probs, axis=1)


def _uncertain(n: int, rng: np.random.Generator, classes: int = 10) -> np.ndarray:
    """Non-member-like softmax rows: close to uniform (largest mass well below 0.5)."""
    return rng.dirichlet(np.full(classes, 50.0), size=n)


def test_sorted_softmax_features_sort_descending():
    features = sorted_softmax_features(torch.tensor([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]))
    np.testing.assert_allclose(features, [[0.5, 0.3, 0.2], [0.8, 0.1, 0.1]])


def test_separable_outputs_forget_like_members():
    rng = np.random.default_rng(0)
    members, test = _confident(600, rng), _uncertain(1200, rng)
    result = mia_sorted_softmax(members, test, _confident(300, rng), seed=0)
    assert (result.n_train, result.n_score) == (600, 300)  # min(4000, 600, 600), min(300, 600)
    assert result.accuracy >= 99.0
    assert result.forget_member_rate >= 0.99


def test_separable_outputs_forget_like_nonmembers():
    rng = np.random.default_rng(1)
    members, test = _confident(600, rng), _uncertain(1200, rng)
    result = mia_sorted_softmax(members, test, _uncertain(300, rng), seed=0)
    # Forget rows are called non-members (wrong), further test rows too (right): about 50.
    assert result.forget_member_rate <= 0.01
    assert result.accuracy == pytest.approx(50.0, abs=1.0)


def test_identical_distributions_give_chance_accuracy():
    rng = np.random.default_rng(2)
    draw = lambda n: rng.dirichlet(np.ones(10), size=n)  # noqa: E731
    result = mia_sorted_softmax(draw(2000), draw(6000), draw(2000), seed=0)
    assert (result.n_train, result.n_score) == (2000, 2000)
    # Labels of the scoring rows are independent of their features, so given the fitted attacker
    # the number right is a sum of 2 · 2000 Bernoulli(1/2)-balanced outcomes: standard deviation
    # ≤ 100 · sqrt(1 / (8 · 2000)) ≈ 0.79 points. 4 points is 5 standard deviations.
    assert abs(result.accuracy - 50.0) < 4.0
    assert 0.0 < result.forget_member_rate < 1.0


def test_result_is_deterministic_in_the_seed():
    rng = np.random.default_rng(3)
    args = (_confident(300, rng), _uncertain(400, rng), rng.dirichlet(np.ones(10), size=200))
    assert mia_sorted_softmax(*args, seed=5) == mia_sorted_softmax(*args, seed=5)


def test_sample_size_rule_on_small_inputs():
    # n_train = min(4000, 50, 60 // 2 = 30) = 30; n_score = min(100, 60 - 30) = 30.
    assert mia_sample_sizes(50, 60, 100) == (30, 30)
    # n_train = min(20, 50, 100 // 2) = 20; n_score = min(15, 100 - 20) = 15.
    assert mia_sample_sizes(50, 100, 15, max_train=20) == (20, 15)
    # MNIST class 0 removal: min(4000, 5923, 5000) = 4000; min(5923, 10000 - 4000) = 5923.
    assert mia_sample_sizes(5923, 10_000, 5923) == (4000, 5923)
    # Smallest accepted: n_train = min(4000, 10, 20 // 2) = 10; n_score = min(10, 20 - 10) = 10.
    assert mia_sample_sizes(10, 20, 10) == (10, 10)
    rng = np.random.default_rng(4)
    result = mia_sorted_softmax(
        _confident(50, rng), _uncertain(60, rng), _confident(100, rng), seed=0
    )
    assert (result.n_train, result.n_score) == (30, 30)


@pytest.mark.parametrize(
    "sizes",
    [
        (9, 100, 100),  # n_train = 9
        (100, 19, 100),  # n_train = 19 // 2 = 9
        (100, 100, 9),  # n_score = 9
        (10, 19, 10),  # n_train = 9
    ],
)
def test_too_little_data(sizes):
    with pytest.raises(CausalUnlearnError) as info:
        mia_sample_sizes(*sizes)
    assert info.value.code == "too-little-data-for-attack"
    rng = np.random.default_rng(0)
    with pytest.raises(CausalUnlearnError) as info:
        mia_sorted_softmax(*(rng.dirichlet(np.ones(3), size=n) for n in sizes), seed=0)
    assert info.value.code == "too-little-data-for-attack"


def test_split_rows_are_disjoint_and_sized():
    split = mia_split_rows(500, 700, 400, seed=3)
    # n_train = min(4000, 500, 350) = 350; n_score = min(400, 700 - 350) = 350.
    assert len(split.members) == len(split.nonmembers_train) == 350
    assert len(split.forget) == len(split.nonmembers_score) == 350
    assert not set(split.nonmembers_train) & set(split.nonmembers_score)
    for rows, size in [(split.members, 500), (split.forget, 400), (split.nonmembers_score, 700)]:
        assert len(set(rows)) == len(rows) and rows.min() >= 0 and rows.max() < size
    again = mia_split_rows(500, 700, 400, seed=3)
    assert np.array_equal(split.nonmembers_score, again.nonmembers_score)


class _RecordingAttacker:
    """Fit/predict stand-in that records what the attack feeds it."""

    def __init__(self):
        self.fit_x = self.fit_y = self.predict_x = None

    def fit(self, x, y):
        self.fit_x, self.fit_y = x, y
        return self

    def predict(self, x):
        self.predict_x = x
        return np.zeros(len(x), dtype=np.int64)


def test_attack_uses_disjoint_test_rows_and_sorted_features():
    rng = np.random.default_rng(5)
    retain, test, forget = (rng.dirichlet(np.ones(4), size=n) for n in (40, 100, 30))
    recorder = _RecordingAttacker()
    result = mia_sorted_softmax(retain, test, forget, seed=1, attacker=recorder)
    n_train, n_score = 40, 30  # min(4000, 40, 50), min(30, 100 - 40)
    assert (result.n_train, result.n_score) == (n_train, n_score)
    np.testing.assert_array_equal(recorder.fit_y, [1] * n_train + [0] * n_train)
    assert np.all(np.diff(recorder.fit_x, axis=1) <= 0)  # rows sorted in descending order
    sorted_test = {tuple(row) for row in sorted_softmax_features(test)}
    train_test_rows = {tuple(row) for row in recorder.fit_x[n_train:]}
    score_test_rows = {tuple(row) for row in recorder.predict_x[n_score:]}
    assert train_test_rows <= sorted_test and score_test_rows <= sorted_test
    assert len(train_test_rows) == n_train and len(score_test_rows) == n_score
    assert not train_test_rows & score_test_rows
    assert {tuple(r) for r in recorder.predict_x[:n_score]} == {
        tuple(r) for r in sorted_softmax_features(forget)
    }
    # The recorder calls everything a non-member: forget rows wrong, test rows right.
    assert result.accuracy == 50.0 and result.forget_member_rate == 0.0


def test_logit_and_model_wrappers_match_the_pure_function():
    torch.manual_seed(0)
    model = nn.Linear(6, 4)
    xs = [torch.randn(n, 6) for n in (40, 100, 30)]
    with torch.no_grad():
        probs = [torch.softmax(model(x).double(), 1) for x in xs]
        logits = [model(x) for x in xs]
    expected = mia_sorted_softmax(*probs, seed=2)
    assert mia_sorted_softmax_from_logits(*logits, seed=2) == expected
    assert mia_sorted_softmax_from_model(model, *xs, seed=2, batch_size=16) == expected


def test_mia_input_errors(monkeypatch):
    rng = np.random.default_rng(6)
    probs = [rng.dirichlet(np.ones(3), size=n) for n in (50, 100, 50)]
    with pytest.raises(CausalUnlearnError) as info:
        mia_sorted_softmax(probs[0] * 5 - 2, probs[1], probs[2], seed=0)  # logits, not probs
    assert info.value.code == "not-probabilities"
    with pytest.raises(CausalUnlearnError) as info:
        mia_sorted_softmax(probs[0], rng.dirichlet(np.ones(4), size=100), probs[2], seed=0)
    assert info.value.code == "class-count-mismatch"
    with pytest.raises(CausalUnlearnError) as info:
        mia_sorted_softmax(*probs, seed=0, attacker="gdbt")
    assert info.value.code == "unknown-attacker" and "gbdt" in info.value.hint
    with pytest.raises(CausalUnlearnError) as info:
        mia_sorted_softmax(*probs, seed=None)
    assert info.value.code == "invalid-seed"

    monkeypatch.setitem(sys.modules, "xgboost", None)  # makes `import xgboost` fail
    with pytest.raises(CausalUnlearnError) as info:
        mia_sorted_softmax(*probs, seed=0, attacker="xgboost")
    assert info.value.code == "missing-optional-dependency"
    assert "pip install" in info.value.hint and "causalunlearn[xgboost]" in info.value.hint


def test_xgboost_attacker_when_installed():
    pytest.importorskip("xgboost", reason="optional dependency: pip install causalunlearn[xgboost]")
    rng = np.random.default_rng(7)
    members, test = _confident(300, rng), _uncertain(600, rng)
    result = mia_sorted_softmax(members, test, _confident(200, rng), seed=0, attacker="xgboost")
    assert result.attacker == "xgboost" and result.accuracy >= 99.0
