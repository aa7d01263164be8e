"""The LiRA statistic (hand computations, sklearn as a second ROC), its power and its null."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics import lira as L


def test_likelihood_ratio_by_hand():
    shadows = np.array([[3.0, 0.0], [5.0, 1.0], [0.0, 4.0], [2.0, 6.0]])
    inside = np.array([[True, False], [True, False], [False, True], [False, True]])
    target = np.array([4.0, 1.0])
    # target 0: in {3, 5} → N(4, sqrt 2), out {0, 2} → N(1, sqrt 2)
    # target 1: in {4, 6} → N(5, sqrt 2), out {0, 1} → N(0.5, sqrt 0.5)
    s2 = math.sqrt(2)
    expected = [
        stats.norm(4, s2).logpdf(4.0) - stats.norm(1, s2).logpdf(4.0),
        stats.norm(5, s2).logpdf(1.0) - stats.norm(0.5, math.sqrt(0.5)).logpdf(1.0),
    ]
    got = L.lira_scores(target, shadows, inside, fix_variance=False)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # pooled: one sd per side from every deviation: in (1+1+1+1)/2 = 2; out (1+1+.25+.25)/2
    pooled_in, pooled_out = math.sqrt(2.0), math.sqrt(1.25)
    expected_pooled = [
        stats.norm(4, pooled_in).logpdf(4.0) - stats.norm(1, pooled_out).logpdf(4.0),
        stats.norm(5, pooled_in).logpdf(1.0) - stats.norm(0.5, pooled_out).logpdf(1.0),
    ]
    np.testing.assert_allclose(
        L.lira_scores(target, shadows, inside, fix_variance=True), expected_pooled, rtol=1e-12
    )
    # fewer than 64 shadows pool by default
    np.testing.assert_allclose(L.lira_scores(target, shadows, inside), expected_pooled)


def test_auc_and_low_fpr_tpr_agree_with_sklearn():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.normal(0.7, 1, 300), rng.normal(0, 1, 500)
    labels = np.r_[np.ones(300), np.zeros(500)]
    scores = np.r_[members, nonmembers]
    assert L.roc_auc(members, nonmembers) == pytest.approx(roc_auc_score(labels, scores))
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    assert L.tpr_at_fpr(members, nonmembers, 0.01) == pytest.approx(tpr[fpr <= 0.01].max())
    # ties count one half
    assert L.roc_auc([1.0, 1.0], [1.0, 0.0]) == pytest.approx(0.75)


def test_balanced_membership_puts_each_target_in_half_the_shadows():
    inside = L.balanced_membership(8, 100, seed=1)
    assert inside.shape == (8, 100) and (inside.sum(axis=0) == 4).all()
    assert len({tuple(col) for col in inside.T}) > 20  # random halves, not one pattern
    with pytest.raises(CausalUnlearnError) as err:
        L.balanced_membership(3, 10)
    assert err.value.code == "too-few-shadows"


def _simulated(n_targets: int, n_shadows: int, shift: float, members_in: bool, seed: int):
    """Per-target Gaussians: out N(μ_i, 1), in N(μ_i + shift, 1); shadows drawn from them."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 2.0, n_targets)
    inside = L.balanced_membership(n_shadows, n_targets, seed=seed)
    shadows = mu + shift * inside + rng.normal(size=(n_shadows, n_targets))
    member = np.arange(n_targets) < n_targets // 2
    target = mu + rng.normal(size=n_targets) + (shift * member if members_in else 0.0)
    return target, shadows, inside, member


def test_power_on_a_memorising_model_matches_the_gaussian_expectation():
    """Members shifted by d = 2 sd: Λ is monotone in φ − (μ_in + μ_out)/2, so the AUC is
    Φ(d / √2) (≈ 0.921), up to the noise of fitting 64 shadows."""
    target, shadows, inside, member = _simulated(4000, 64, 2.0, True, seed=4)
    result = L.lira_attack(target, shadows, inside, member)
    assert not result.pooled_variance and result.n_shadows == 64
    assert result.auc == pytest.approx(stats.norm.cdf(2 / math.sqrt(2)), abs=0.02)
    assert result.tpr_at_low_fpr > 10 * 1.0  # far above the 1 % of chance


def test_exchangeable_members_give_chance():
    target, shadows, inside, member = _simulated(2000, 16, 2.0, False, seed=5)
    result = L.lira_attack(target, shadows, inside, member)
    sd = L.null_auc_sd(result.n_members, result.n_nonmembers)
    assert abs(result.auc - 0.5) < 4 * sd
    assert result.as_dict()["null_auc_sd"] == pytest.approx(sd)


def test_bad_input_gets_a_coded_error():
    with pytest.raises(CausalUnlearnError) as err:
        L.lira_scores([1.0, 2.0], np.zeros((4, 3)), np.zeros((4, 3), bool))
    assert err.value.code == "invalid-lira-input"
    target, shadows, inside, _ = _simulated(10, 4, 1.0, True, seed=6)
    with pytest.raises(CausalUnlearnError) as err:
        L.lira_attack(target, shadows, inside, np.ones(10, bool))
    assert err.value.code == "invalid-lira-input"


# -- on digits, through the shadows of studies/shadows.py ---------------------------------------

SHADOWS = 8
EPOCHS = 15


@pytest.fixture(scope="module")
def memorising_digits(tmp_path_factory):
    """Digits where the forget rows (a random 10 %) and every test row carry a wrong label drawn
    at random: a model trained on a row can only fit its label by memorising it. The original
    (trained on every training row) and the oracle (never saw the forget rows), both with the
    shadows' recipe."""
    import torch

    from causalunlearn.data import TensorData, load_dataset, make_split
    from causalunlearn.recipes import Recipe
    from causalunlearn.studies.model_cache import ModelCache

    digits = load_dataset("digits", progress=False)
    split = make_split(digits.train_y, "random:0.1", 0, digits.num_classes)
    g = torch.Generator().manual_seed(0)

    def wrong(y: torch.Tensor) -> torch.Tensor:
        return (y + torch.randint(1, digits.num_classes, y.shape, generator=g)) % 10

    train_y = digits.train_y.clone()
    forget = torch.as_tensor(split.forget.copy())
    train_y[forget] = wrong(train_y[forget])
    data = TensorData(
        "digits-memorise",
        digits.train_x,
        train_y,
        digits.test_x,
        wrong(digits.test_y),
        digits.classes,
        digits.mean,
        digits.std,
    )
    cache = ModelCache(tmp_path_factory.mktemp("lira-models"))
    recipe = Recipe(epochs=EPOCHS, weight_decay=0.0)
    cpu = torch.device("cpu")
    models = {
        which: cache.get(
            data, split, which, model="mlp", recipe=recipe, seed=0, device=cpu, progress=False
        )[0]
        for which in ("original", "oracle")
    }
    return data, split, recipe, models


def test_plain_lira_exposes_a_memorising_original_and_not_the_oracle(memorising_digits):
    """Plain LiRA (shadows that do not unlearn): the original memorised its forget rows'
    labels, so they must stand out far beyond the null (AUC > 0.5 + 8 null sds); the oracle
    never saw them, so for it forget rows and held-out rows are exchangeable: within 4 null sds
    of 0.5."""
    import torch

    from causalunlearn.metrics.accuracy import predict
    from causalunlearn.studies.shadows import LiraBudget, lira_metrics, shadow_statistics

    data, split, recipe, models = memorising_digits
    cpu = torch.device("cpu")
    stats = shadow_statistics(
        None,
        data,
        split,
        model="mlp",
        recipe=recipe,
        budget=LiraBudget(SHADOWS),
        seed=0,
        device=cpu,
    )
    assert stats.margins.shape == (SHADOWS, 2 * len(split.forget)) and not stats.unlearned
    assert (stats.inside.sum(axis=0) == SHADOWS // 2).all()
    result = {}
    for role, net in models.items():
        train, test = predict(net, data.train_x, device=cpu), predict(net, data.test_x, device=cpu)
        result[role] = lira_metrics(stats, train, test, data.train_y, data.test_y)[1]
    sd = L.null_auc_sd(len(split.forget), len(split.forget))
    assert abs(result["oracle"]["auc"] - 0.5) < 4 * sd, result
    assert result["original"]["auc"] > 0.5 + 8 * sd, result


def test_a_run_with_u_lira_records_and_rescores_it(tmp_path):
    """The attack through ``causalunlearn run`` (4 shadows that train and unlearn with CaMU):
    the three models get both numbers, and a rescore recomputes them from the saved shadow
    statistics exactly."""
    from causalunlearn.methods import load_any
    from causalunlearn.recipes import Recipe
    from causalunlearn.studies.experiment import RunSettings, run_experiment
    from causalunlearn.studies.rescore import rescore

    settings = RunSettings(
        dataset="digits",
        scenario="random:0.1",
        seeds=(0,),
        recipe=Recipe(epochs=2),
        cache_dir=str(tmp_path / "cache"),
        progress=False,
        threads=1,
        lira_shadows=4,
        lira_epochs=2,
    )
    graph = load_any("graphs/camu.yaml", preset="digits-random")
    manifest = run_experiment(graph, settings, tmp_path / "run")
    metrics = manifest["per_seed"][0]["metrics"]
    for role in ("original", "unlearned", "oracle"):
        assert 0.0 <= metrics[role]["lira_auc"] <= 1.0
        assert 0.0 <= metrics[role]["lira_tpr_1fpr"] <= 100.0
    details = manifest["per_seed"][0]["evaluation"]["lira"]["unlearned"]
    assert details["n_shadows"] == 4 and details["unlearned_shadows"] and details["pooled_variance"]
    assert rescore(tmp_path / "run").changed == []
