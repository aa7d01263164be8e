"""Tests of the evaluation suite: per-row scores, three more MIAs, oracle gaps, relearning."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import SVC
from torch import nn

from causalunlearn.errors import CausalUnlearnError, DataError
from causalunlearn.metrics import (
    DEFAULT_GAP_KEYS,
    MIAScore,
    accuracy,
    activation_distance,
    average_gap,
    cross_entropy_per_row,
    gap_to_oracle,
    mean_std,
    mia_efficacy_svc,
    mia_entropy_lr,
    mia_loss_lr_cv,
    predict,
    prediction_entropy,
    relearn_time,
    relearning_curve,
    softmax_probabilities,
    tow,
    true_label_confidence,
)

LN3 = math.log(3.0)
LN2 = math.log(2.0)

# --------------------------------------------------------------------------------------------------
# Per-row scores

# Row 0: softmax(0, ln 3) = (1/4, 3/4). Row 1: softmax(ln 2, 0) = (2/3, 1/3).
LOGITS = torch.tensor([[0.0, LN3], [LN2, 0.0]], dtype=torch.float64)
PROBS = np.array([[0.25, 0.75], [2 / 3, 1 / 3]])
LABELS = torch.tensor([1, 0])


def test_row_scores_by_hand_from_logits_and_probabilities():
    for outputs, from_logits in ((LOGITS, True), (PROBS, False)):
        np.testing.assert_allclose(
            softmax_probabilities(outputs, from_logits=from_logits), PROBS, rtol=1e-12
        )
        # p[i, y[i]]: 3/4 (class 1 of row 0) and 2/3 (class 0 of row 1).
        np.testing.assert_allclose(
            true_label_confidence(outputs, LABELS, from_logits=from_logits),
            [0.75, 2 / 3],
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            cross_entropy_per_row(outputs, LABELS, from_logits=from_logits),
            [-math.log(0.75), -math.log(2 / 3)],
            rtol=1e-12,
        )
        h0 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
        h1 = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
        np.testing.assert_allclose(
            prediction_entropy(outputs, from_logits=from_logits), [h0, h1], rtol=1e-12
        )
    # Certain rows: H = 0 (0 · ln 0 = 0), and the uniform row has the maximum ln C.
    certain = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(prediction_entropy(certain, from_logits=False), [0.0, math.log(3)])
    # A probability of exactly 0 on the true label gives −ln(smallest float64), not inf.
    loss = cross_entropy_per_row(certain, [1, 0], from_logits=False)
    assert loss[0] == pytest.approx(-math.log(np.finfo(np.float64).tiny))
    # Large logits do not overflow: log_softmax(0, 1000) = (−1000, 0).
    np.testing.assert_allclose(cross_entropy_per_row([[0.0, 1000.0]], [0]), [1000.0])


def test_row_score_errors():
    cases = [
        (lambda: true_label_confidence(LOGITS, [1]), "length-mismatch"),
        (lambda: true_label_confidence(LOGITS, [1, 2]), "invalid-labels"),
        (lambda: true_label_confidence(LOGITS, [0.5, 1.0]), "invalid-labels"),
        (lambda: prediction_entropy(torch.ones(3)), "invalid-predictions"),
        (lambda: prediction_entropy([[0.0, float("nan")]]), "invalid-predictions"),
        (lambda: prediction_entropy(LOGITS, from_logits=False), "not-probabilities"),
        (lambda: prediction_entropy(LOGITS, from_logits="yes"), "invalid-from-logits"),
    ]
    for call, code in cases:
        with pytest.raises(CausalUnlearnError) as info:
            call()
        assert info.value.code == code


# --------------------------------------------------------------------------------------------------
# Membership-inference attacks. Two-class probability rows (1 − c, c) with label 1 have
# confidence c, loss −ln c and an entropy that falls as c moves from 1/2 to 1, so each attack's
# one feature can be placed exactly where a test wants it.


def _rows(confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    confidence = np.asarray(confidence, dtype=np.float64)
    return np.c_[1.0 - confidence, confidence], np.ones(len(confidence), np.int64)


def _binomial_sd(n: int) -> float:
    """Largest standard deviation (percentage points) of a share of ``n`` Bernoulli outcomes."""
    return 100.0 * math.sqrt(0.25 / n)


def test_svc_efficacy_on_separable_confidences():
    rng = np.random.default_rng(0)
    retain, test = _rows(rng.uniform(0.9, 1.0, 400)), _rows(rng.uniform(0.0, 0.5, 300))

    def efficacy(forget_conf):
        return mia_efficacy_svc(*retain, *test, *_rows(forget_conf), seed=0, from_logits=False)

    # Members (c ≥ 0.9) and non-members (c ≤ 0.5) are 0.4 apart; the SVC fits the gap, so forget
    # rows like the retain rows are all called members (efficacy 0) and rows like the test rows
    # all non-members (efficacy 100).
    remembered = efficacy(rng.uniform(0.9, 1.0, 200))
    forgotten = efficacy(rng.uniform(0.0, 0.5, 200))
    assert remembered.value <= 1.0 and forgotten.value >= 99.0
    # Balanced by subsampling to min(400, 300) rows per class; every forget row is scored.
    assert (remembered.n_members, remembered.n_nonmembers, remembered.n_scored) == (300, 300, 200)
    assert remembered.name == "mia_efficacy_svc" and remembered.fold_values == ()
    capped = mia_efficacy_svc(
        *retain, *test, *_rows(rng.uniform(0, 1, 50)), seed=0, from_logits=False, max_per_class=40
    )
    assert (capped.n_members, capped.n_nonmembers) == (40, 40)


def test_svc_efficacy_on_identical_distributions():
    rng = np.random.default_rng(1)
    retain, test = _rows(rng.uniform(0, 1, 500)), _rows(rng.uniform(0, 1, 500))

    def efficacy(forget_conf):
        return mia_efficacy_svc(*retain, *test, *_rows(forget_conf), seed=0, from_logits=False)

    # With labels independent of the feature, whatever the (same) fitted SVC says is noise: the
    # forget rows are called non-members as often as fresh test-like rows are. Both are shares of
    # 1000 rows; their difference has sd ≤ √2 · 1.58 ≈ 2.24 points; allow 4 sd plus one point
    # (≈ 9.9). In the separable test above the same comparison is 100 points apart.
    forget, fresh_test = efficacy(rng.uniform(0, 1, 1000)), efficacy(rng.uniform(0, 1, 1000))
    assert abs(forget.value - fresh_test.value) < 4 * math.sqrt(2) * _binomial_sd(1000) + 1.0


def test_svc_efficacy_matches_the_official_recipe():
    # The official SVC_fit_predict: fit SVC(C=3, gamma="auto", kernel="rbf") on member (1) and
    # non-member (0) confidences, MIA-efficacy = mean(1 − predict(forget)). Equal retain and test
    # sizes make the balancing keep every row, so the reference needs no random draw.
    rng = np.random.default_rng(2)
    conf_r, conf_t, conf_f = rng.beta(5, 1, 120), rng.beta(2, 2, 120), rng.beta(3, 1.5, 90)
    reference = SVC(C=3, gamma="auto", kernel="rbf").fit(
        np.r_[conf_r, conf_t].reshape(-1, 1), np.r_[np.ones(120), np.zeros(120)]
    )
    expected = 100.0 * np.mean(1 - reference.predict(conf_f.reshape(-1, 1)))
    rows = [_rows(c) for c in (conf_r, conf_t, conf_f)]
    got = mia_efficacy_svc(*rows[0], *rows[1], *rows[2], seed=3, from_logits=False)
    assert got.value == pytest.approx(expected, abs=1e-9)
    # The same from logits: (0, ln(c / (1 − c))) has softmax (1 − c, c).
    logits = [
        (torch.tensor(np.c_[np.zeros_like(c), np.log(c / (1 - c))]), torch.ones(len(c)).long())
        for c in (conf_r, conf_t, conf_f)
    ]
    assert mia_efficacy_svc(*logits[0], *logits[1], *logits[2], seed=3).value == got.value


def test_svc_efficacy_from_logits_equals_from_probabilities():
    rng = np.random.default_rng(3)
    probs = [rng.dirichlet(np.ones(4), size=n) for n in (60, 50, 30)]
    labels = [rng.integers(0, 4, size=n) for n in (60, 50, 30)]
    args = [a for pair in zip(probs, labels, strict=True) for a in pair]
    log_args = [np.log(a) if a.ndim == 2 else a for a in args]  # softmax(ln p) = p
    from_probs = mia_efficacy_svc(*args, seed=4, from_logits=False)
    assert mia_efficacy_svc(*log_args, seed=4) == from_probs
    assert mia_efficacy_svc(*args, seed=4, from_logits=False) == from_probs  # deterministic


def test_entropy_lr_on_separable_and_identical_entropies():
    rng = np.random.default_rng(4)
    # c ∈ [0.98, 1]: H ≤ 0.098 nats; c ∈ [0.5, 0.8]: H ≥ 0.500 nats.
    retain, test = _rows(rng.uniform(0.98, 1.0, 400))[0], _rows(rng.uniform(0.5, 0.8, 300))[0]

    def member_rate(forget):
        return mia_entropy_lr(retain, test, forget, seed=0, from_logits=False)

    remembered = member_rate(_rows(rng.uniform(0.98, 1.0, 200))[0])
    forgotten = member_rate(_rows(rng.uniform(0.5, 0.8, 200))[0])
    assert remembered.value >= 99.0 and forgotten.value <= 1.0
    # No balancing by default (class_weight="balanced" instead), as in the official code.
    assert (remembered.n_members, remembered.n_nonmembers, remembered.n_scored) == (400, 300, 200)

    # Identical distributions: as for the SVC, forget rows look like fresh test rows (> 4 sd).
    same = [_rows(rng.uniform(0.5, 1.0, n))[0] for n in (500, 500, 1000, 1000)]
    forget = mia_entropy_lr(*same[:3], seed=0, from_logits=False)
    fresh = mia_entropy_lr(same[0], same[1], same[3], seed=0, from_logits=False)
    assert abs(forget.value - fresh.value) < 10.0


def test_entropy_lr_matches_the_official_recipe():
    rng = np.random.default_rng(5)
    probs = [rng.dirichlet(np.full(3, a), size=n) for a, n in ((0.3, 80), (2.0, 60), (1.0, 40))]
    entropies = [-(p * np.log(p)).sum(axis=1) for p in probs]
    # Official: LogisticRegression(class_weight="balanced", solver="lbfgs",
    # multi_class="multinomial"), which for two classes is the binary model with C = 2.
    reference = LogisticRegression(class_weight="balanced", C=2.0).fit(
        np.r_[entropies[0], entropies[1]].reshape(-1, 1), np.r_[np.ones(80), np.zeros(60)]
    )
    expected = 100.0 * reference.predict(entropies[2].reshape(-1, 1)).mean()
    got = mia_entropy_lr(*probs, seed=0, from_logits=False)
    assert got.value == pytest.approx(expected, abs=1e-9)
    assert mia_entropy_lr(*(np.log(p) for p in probs), seed=0).value == got.value
    capped = mia_entropy_lr(*probs, seed=0, from_logits=False, max_per_class=50)
    assert (capped.n_members, capped.n_nonmembers, capped.n_scored) == (50, 50, 40)


def test_loss_lr_cv_on_separable_and_identical_losses():
    rng = np.random.default_rng(6)

    def loss_rows(losses):  # confidence e^{−ℓ} on the true label gives loss ℓ
        return _rows(np.exp(-np.asarray(losses)))

    separable = mia_loss_lr_cv(
        *loss_rows(rng.uniform(0.0, 0.1, 600)),
        *loss_rows(rng.uniform(1.0, 3.0, 500)),
        seed=0,
        from_logits=False,
    )
    assert separable.value >= 99.0
    # Balanced to min(600, 500) per class; 5 folds; every row scored once.
    assert (separable.n_members, separable.n_nonmembers, separable.n_scored) == (500, 500, 1000)
    assert len(separable.fold_values) == 5
    assert separable.value == pytest.approx(np.mean(separable.fold_values))

    # Identical: out-of-fold predictions carry no information about the labels, so the accuracy
    # over 2 · 500 rows has mean 50 and sd ≤ 1.58 points; 8 points is > 5 sd.
    same = rng.exponential(1.0, size=1000)
    identical = mia_loss_lr_cv(
        *loss_rows(same[:500]), *loss_rows(same[500:]), seed=0, from_logits=False
    )
    assert abs(identical.value - 50.0) < 5 * _binomial_sd(1000)


def test_loss_lr_cv_matches_the_starting_kit_recipe():
    torch.manual_seed(7)
    logits_f, logits_t = torch.randn(60, 4) * 3, torch.randn(60, 4)
    y_f, y_t = torch.randint(0, 4, (60,)), torch.randint(0, 4, (60,))
    # Starting kit: per-row CrossEntropyLoss(reduction="none"), test losses (0) then forget
    # losses (1), LogisticRegression() scored by cross-validated accuracy.
    loss_f = nn.functional.cross_entropy(logits_f.double(), y_f, reduction="none").numpy()
    loss_t = nn.functional.cross_entropy(logits_t.double(), y_t, reduction="none").numpy()
    folds = StratifiedKFold(n_splits=4, shuffle=True, random_state=9)
    scores = cross_val_score(
        LogisticRegression(),
        np.r_[loss_t, loss_f].reshape(-1, 1),
        np.r_[np.zeros(60), np.ones(60)],
        cv=folds,
        scoring="accuracy",
    )
    got = mia_loss_lr_cv(logits_f, y_f, logits_t, y_t, seed=9, n_splits=4)
    np.testing.assert_allclose(got.fold_values, 100.0 * scores, atol=1e-9)
    assert got.value == pytest.approx(100.0 * scores.mean())
    assert (got.n_members, got.n_nonmembers, got.n_scored) == (60, 60, 120)


def test_attack_errors():
    rng = np.random.default_rng(8)
    probs, labels = _rows(rng.uniform(0, 1, 30))
    three = rng.dirichlet(np.ones(3), size=30)
    few, few_labels = _rows(rng.uniform(0, 1, 9))
    cases = [
        # 9 forget rows, 9 test rows: below the 10 rows per side every attack needs.
        (lambda: mia_efficacy_svc(probs, labels, probs, labels, few, few_labels, seed=0,
                                  from_logits=False), "too-little-data-for-attack"),
        (lambda: mia_efficacy_svc(probs, labels, few, few_labels, probs, labels, seed=0,
                                  from_logits=False), "too-little-data-for-attack"),
        (lambda: mia_entropy_lr(probs, few, probs, seed=0, from_logits=False),
         "too-little-data-for-attack"),
        (lambda: mia_loss_lr_cv(few, few_labels, probs, labels, seed=0, from_logits=False),
         "too-little-data-for-attack"),
        # n = 30 per class, but 40 folds cannot each hold a row of both classes.
        (lambda: mia_loss_lr_cv(probs, labels, probs, labels, seed=0, from_logits=False,
                                n_splits=40), "too-little-data-for-attack"),
        (lambda: mia_loss_lr_cv(probs, labels, probs, labels, seed=0, n_splits=1,
                                from_logits=False), "invalid-n-splits"),
        (lambda: mia_entropy_lr(probs, three, probs, seed=0, from_logits=False),
         "class-count-mismatch"),
        (lambda: mia_efficacy_svc(probs, labels[:29], probs, labels, probs, labels, seed=0,
                                  from_logits=False), "length-mismatch"),
        (lambda: mia_efficacy_svc(probs, labels + 1, probs, labels, probs, labels, seed=0,
                                  from_logits=False), "invalid-labels"),
        (lambda: mia_entropy_lr(probs, probs, probs, seed=-1, from_logits=False),
         "invalid-seed"),
        (lambda: mia_entropy_lr(probs, probs, probs, seed=0, from_logits=False,
                                max_per_class=0), "invalid-max-per-class"),
        (lambda: mia_entropy_lr(probs * 3 - 1, probs, probs, seed=0, from_logits=False),
         "not-probabilities"),
    ]  # fmt: skip
    for call, code in cases:
        with pytest.raises(CausalUnlearnError) as info:
            call()
        assert info.value.code == code


# --------------------------------------------------------------------------------------------------
# Gaps to the oracle


def test_tow_by_hand():
    metrics = {"retain_acc": 90.0, "forget_acc": 10.0, "test_acc": 80.0}
    oracle = {"retain_acc": 92.0, "forget_acc": 0.0, "test_acc": 81.0}
    # Gaps 2, 10 and 1 points: (1 − 0.02)(1 − 0.10)(1 − 0.01).
    assert tow(metrics, oracle) == pytest.approx(0.98 * 0.90 * 0.99)
    assert tow(oracle, oracle) == 1.0
    assert tow({**metrics, "forget_acc": 100.0}, {**oracle, "forget_acc": 0.0}) == 0.0
    assert math.isnan(tow({**metrics, "test_acc": math.nan}, oracle))
    with pytest.raises(CausalUnlearnError) as info:
        tow({**metrics, "retain_acc": 190.0}, oracle)
    assert info.value.code == "not-percent"


def test_gap_to_oracle_and_average_gap_by_hand():
    metrics = {
        "retain_acc": 97.5,
        "forget_acc": 12.0,
        "test_acc": 95.0,
        "mia_efficacy_svc": 80.0,
        "mia_acc": math.nan,
        "name": "camu",  # not a number: left out of the default keys
    }
    oracle = {"retain_acc": 99.0, "forget_acc": 0.0, "test_acc": 96.0, "mia_efficacy_svc": 100.0}
    oracle["mia_acc"] = 50.0
    gaps = gap_to_oracle(metrics, oracle)
    assert list(gaps) == ["retain_acc", "forget_acc", "test_acc", "mia_efficacy_svc", "mia_acc"]
    assert gaps["retain_acc"] == 1.5 and gaps["forget_acc"] == 12.0 and gaps["test_acc"] == 1.0
    assert gaps["mia_efficacy_svc"] == 20.0 and math.isnan(gaps["mia_acc"])
    assert gap_to_oracle(metrics, oracle, ["test_acc"]) == {"test_acc": 1.0}
    # Default keys: RA, FA, TA and MIA-efficacy: (1.5 + 12 + 1 + 20) / 4.
    assert DEFAULT_GAP_KEYS == ("retain_acc", "forget_acc", "test_acc", "mia_efficacy_svc")
    assert average_gap(metrics, oracle) == pytest.approx(34.5 / 4)
    assert average_gap(metrics, oracle, keys=("forget_acc",)) == 12.0
    assert math.isnan(average_gap(metrics, oracle, keys=("retain_acc", "mia_acc")))

    with pytest.raises(CausalUnlearnError) as info:
        average_gap(metrics, {"retain_acc": 1.0})
    assert info.value.code == "missing-metric"
    with pytest.raises(CausalUnlearnError) as info:
        gap_to_oracle(metrics, oracle, ["retain_ac"])
    assert info.value.code == "missing-metric" and "retain_acc" in info.value.hint
    with pytest.raises(CausalUnlearnError) as info:
        gap_to_oracle(metrics, {"name": "x"}, ["name"])
    assert info.value.code == "invalid-metric-value"
    with pytest.raises(CausalUnlearnError) as info:
        average_gap(metrics, oracle, keys=())
    assert info.value.code == "invalid-keys"


def test_mean_std_uses_the_sample_standard_deviation():
    # Mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; ddof = 1: sqrt(5 / 3).
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3))
    assert mean_std([1.0, math.nan, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))  # NaN ignored
    one = mean_std([np.float32(7.0)])
    assert one[0] == 7.0 and math.isnan(one[1])
    assert all(math.isnan(v) for v in mean_std([]))
    with pytest.raises(CausalUnlearnError) as info:
        mean_std([1.0, "2"])
    assert info.value.code == "invalid-metric-value"


def test_activation_distance_by_hand():
    a = np.array([[1.0, 0.0], [0.5, 0.5]])
    b = np.array([[0.0, 1.0], [0.5, 0.5]])
    # Row distances √((1 − 0)² + (0 − 1)²) = √2 and 0: mean √2 / 2.
    assert activation_distance(a, b, from_logits=False) == pytest.approx(math.sqrt(2) / 2)
    # softmax(0, ln 3) = (1/4, 3/4) and softmax(ln 3, 0) = (3/4, 1/4): distance √(2 · 1/4).
    assert activation_distance([[0.0, LN3]], [[LN3, 0.0]]) == pytest.approx(math.sqrt(0.5))
    assert activation_distance(LOGITS, LOGITS + 5.0) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(activation_distance(torch.empty(0, 3), torch.empty(0, 3)))
    with pytest.raises(CausalUnlearnError) as info:
        activation_distance(LOGITS, LOGITS[:1])
    assert info.value.code == "shape-mismatch"


# --------------------------------------------------------------------------------------------------
# Relearning


def test_relearn_time_on_handmade_curves():
    accs = [0.0, 10.0, 40.0, 60.0, 95.0]
    assert relearn_time(accs, 50.0) == 3  # default steps 0, 1, 2, …
    assert relearn_time(accs, 60.0) == 3  # "≥": reaching the threshold exactly counts
    assert relearn_time(accs, 0.0) == 0  # already there before any step
    assert relearn_time(accs, 50.0, steps=[0, 5, 10, 15, 20]) == 15
    assert relearn_time(accs, 99.0) is None  # never reached, no cap
    assert relearn_time(accs, 99.0, steps=[0, 5, 10, 15, 20], cap=20) == 21
    # Only points up to the cap count: 60 % is reached at step 15 > 10.
    assert relearn_time(accs, 50.0, steps=[0, 5, 10, 15, 20], cap=10) == 11
    assert relearn_time(accs, 50.0, steps=[0, 5, 10, 15, 20], cap=15) == 15
    assert relearn_time([], 50.0) is None

    cases = [
        (lambda: relearn_time(accs, 99.0, cap=10), "curve-shorter-than-cap"),  # ends at step 4
        (lambda: relearn_time(accs, 50.0, steps=[0, 5, 5, 15, 20]), "invalid-steps"),
        (lambda: relearn_time(accs, 50.0, steps=[0, 5, 10]), "length-mismatch"),
        (lambda: relearn_time([0.0, math.nan], 50.0), "invalid-accuracies"),
        (lambda: relearn_time(accs, math.inf), "invalid-threshold"),
        (lambda: relearn_time(accs, 50.0, cap=-1), "invalid-cap"),
    ]
    for call, code in cases:
        with pytest.raises(CausalUnlearnError) as info:
            call()
        assert info.value.code == code


def _tiny_problem():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(90, 5, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()  # three classes
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    return model, x[:70], y[:70], x[70:], y[70:]


def test_relearning_curve_matches_a_direct_fine_tuning_and_leaves_the_model_alone():
    model, x_retain, y_retain, x_forget, y_forget = _tiny_problem()
    model.eval()
    before = copy.deepcopy(model.state_dict())
    evaluators = {"forget": (x_forget, y_forget), "retain": (x_retain, y_retain)}
    curve = relearning_curve(
        model, x_retain, y_retain, evaluators, steps_per_point=3, epochs=2, lr=1e-2,
        batch_size=16, seed=5,
    )  # fmt: skip
    # 70 rows in batches of 16: ceil(70 / 16) = 5 steps per epoch, 10 in all; points at step 0,
    # every 3rd step, and the last step.
    assert curve["step"] == [0, 3, 6, 9, 10]
    assert set(curve) == {"step", "forget", "retain"}
    assert all(len(v) == 5 for v in curve.values())

    # The input model is untouched (weights, gradients, mode).
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert not model.training and all(p.grad is None for p in model.parameters())

    # Reference: the same fine-tuning written out directly.
    reference = copy.deepcopy(model)
    optimiser = torch.optim.Adam(reference.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(5)
    expected = {"forget": [], "retain": []}

    def measure():
        for name, (x, y) in evaluators.items():
            expected[name].append(accuracy(predict(reference, x), y))

    measure()
    step = 0
    for _ in range(2):
        order = torch.randperm(70, generator=generator)
        for start in range(0, 70, 16):
            rows = order[start : start + 16]
            reference.train()
            optimiser.zero_grad()
            nn.functional.cross_entropy(reference(x_retain[rows]), y_retain[rows]).backward()
            optimiser.step()
            step += 1
            if step in (3, 6, 9, 10):
                measure()
    assert curve["forget"] == expected["forget"] and curve["retain"] == expected["retain"]
    # Step 0 is the input model itself.
    assert curve["forget"][0] == accuracy(predict(model, x_forget), y_forget)
    # The fine-tuning learned something: retain accuracy moved.
    assert curve["retain"][-1] != curve["retain"][0]


def test_relearning_curve_max_steps_and_errors():
    model, x_retain, y_retain, x_forget, y_forget = _tiny_problem()
    evaluators = {"forget": (x_forget, y_forget)}
    curve = relearning_curve(
        model, x_retain, y_retain, evaluators, steps_per_point=2, max_steps=5, seed=0
    )
    # Batch 32: 3 steps per epoch; max_steps stops after 5 although one epoch has only 3.
    assert curve["step"] == [0, 2, 3]
    curve = relearning_curve(
        model, x_retain, y_retain, evaluators, steps_per_point=2, epochs=3, max_steps=5, seed=0
    )
    assert curve["step"] == [0, 2, 4, 5]
    assert relearn_time(curve["forget"], 0.0, steps=curve["step"]) == 0

    def call(**changes):
        kwargs = dict(steps_per_point=1, seed=0)
        args = [model, x_retain, y_retain, evaluators]
        for index, name in enumerate(("x", "y", "evaluators")):
            if name in changes:
                args[index + 1] = changes.pop(name)
        relearning_curve(*args, **{**kwargs, **changes})

    cases = [
        (dict(steps_per_point=0), CausalUnlearnError, "invalid-steps-per-point"),
        (dict(epochs=0), CausalUnlearnError, "invalid-epochs"),
        (dict(max_steps=0), CausalUnlearnError, "invalid-max-steps"),
        (dict(lr=-1.0), CausalUnlearnError, "invalid-lr"),
        (dict(seed=None), CausalUnlearnError, "invalid-seed"),
        (dict(evaluators={}), CausalUnlearnError, "no-evaluators"),
        (dict(evaluators={"step": (x_forget, y_forget)}), CausalUnlearnError,
         "invalid-evaluator-name"),
        (dict(y=y_retain[:5]), CausalUnlearnError, "length-mismatch"),
        (dict(x=x_retain[:0], y=y_retain[:0]), DataError, "empty-retain-set"),
    ]  # fmt: skip
    for changes, kind, code in cases:
        with pytest.raises(kind) as info:
            call(**changes)
        assert info.value.code == code


def test_mia_score_as_dict():
    score = MIAScore("mia_loss_lr_cv", 51.0, 10, 10, 20, (50.0, 52.0))
    assert score.as_dict() == {
        "name": "mia_loss_lr_cv",
        "value": 51.0,
        "n_members": 10,
        "n_nonmembers": 10,
        "n_scored": 20,
        "fold_values": [50.0, 52.0],
    }
