"""The oracle-distribution metric: margins, z-scores, Gaussian KL, bootstrap intervals.

Expected values are computed by hand on tiny inputs, by a second computation (softmax, numeric
integration), or from the sampling distribution they must follow (Student-t, the normal CI).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics import oracle_distribution as O


def test_margin_is_log_odds_of_the_true_class():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, -1.0]])
    y = np.array([0, 2])
    # by hand: 2 - log(e^1 + e^0); -1 - log(e^0 + e^3)
    expected = [2 - math.log(math.e + 1), -1 - math.log(1 + math.e**3)]
    np.testing.assert_allclose(O.logit_margin(logits, y), expected, rtol=1e-12)
    # a second computation: log p / (1 - p) of the softmax
    p = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), 1).numpy()[[0, 1], y]
    np.testing.assert_allclose(O.logit_margin(torch.as_tensor(logits), y), np.log(p / (1 - p)))
    # stable for logits far apart (no overflow, no inf)
    assert np.isfinite(O.logit_margin(np.array([[1000.0, -1000.0]]), np.array([1]))).all()


def test_z_scores_by_hand():
    model = [1.0, 0.0]
    refs = [[0.0, 0.0], [2.0, 2.0]]  # mean 1, sample sd sqrt(2) on both rows
    np.testing.assert_allclose(O.margin_z_scores(model, refs), [0.0, -1 / math.sqrt(2)])
    # references that agree exactly: the sd is floored, not zero
    assert O.margin_z_scores([1.0], [[0.0], [0.0]])[0] == pytest.approx(1 / O.MIN_STD)


def test_gaussian_kl_matches_numeric_integration():
    mu_p, sd_p, mu_q, sd_q = 0.0, 1.0, 1.0, 2.0
    hand = math.log(2) + (1 + 1) / 8 - 0.5  # log(σq/σp) + (σp² + Δ²)/(2σq²) − ½
    p, q = stats.norm(mu_p, sd_p), stats.norm(mu_q, sd_q)
    numeric, _ = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -20, 20)
    assert O.gaussian_kl(mu_p, sd_p, mu_q, sd_q) == pytest.approx(hand, rel=1e-12)
    assert O.gaussian_kl(mu_p, sd_p, mu_q, sd_q) == pytest.approx(numeric, rel=1e-8)
    assert O.gaussian_kl(1.5, 0.3, 1.5, 0.3) == pytest.approx(0.0, abs=1e-15)


def test_klom_fits_each_side_and_converges_to_the_true_kl():
    models = [[0.0, 5.0], [2.0, 5.5]]  # row 0: mean 1, sd sqrt 2
    oracles = [[1.0, 5.0], [1.0, 5.0], [4.0, 5.0]]  # row 0: mean 2, sd sqrt 3; row 1: sd 0
    kl = O.klom_gaussian(models, oracles)
    assert kl[0] == pytest.approx(O.gaussian_kl(2.0, math.sqrt(3), 1.0, math.sqrt(2)))
    assert kl[1] == pytest.approx(O.gaussian_kl(5.0, O.MIN_STD, 5.25, np.std([5.0, 5.5], ddof=1)))
    rng = np.random.default_rng(0)
    big_o = rng.normal(0.0, 1.0, size=(4000, 3))  # oracles N(0, 1)
    big_u = rng.normal(1.0, 2.0, size=(4000, 3))  # models N(1, 2²)
    true = math.log(2) + 2 / 8 - 0.5
    np.testing.assert_allclose(O.klom_gaussian(big_u, big_o), true, atol=0.03)


def test_bootstrap_interval_has_the_normal_width():
    rng = np.random.default_rng(1)
    values = rng.normal(0.0, 1.0, size=400)
    mean, low, high = O.bootstrap_ci(values, statistic="mean", seed=3)
    assert mean == pytest.approx(values.mean())
    assert low < mean < high
    # a 95 % interval of a mean of 400 unit-variance values is about 2 × 1.96 / 20 wide
    assert high - low == pytest.approx(2 * 1.96 / 20, rel=0.15)
    assert O.bootstrap_ci(values, seed=3) == O.bootstrap_ci(values, seed=3)  # seeded
    assert O.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)


def test_an_exchangeable_model_has_the_student_t_median():
    """A model drawn from the oracles' own distribution, scored against R = 2 references:
    z / sqrt(1 + 1/R) is Student-t with R − 1 = 1 degree of freedom, whose |·| has median 1."""
    rng = np.random.default_rng(2)
    n = 40_000
    centres = rng.normal(0.0, 3.0, size=n)  # every row has its own mean
    refs = centres + rng.normal(0.0, 1.0, size=(2, n))
    model = centres + rng.normal(0.0, 1.0, size=n)
    expected = math.sqrt(1 + 1 / 2) * stats.t(1).ppf(0.75)
    # the median of 40,000 rows has a sampling sd of about 0.01 (1 / (2 f(median) sqrt n))
    assert np.median(np.abs(O.margin_z_scores(model, refs))) == pytest.approx(expected, rel=0.03)
    result = O.oracle_distance(model[:2000], refs[:, :2000])
    assert result.kind == "z" and result.n_oracles == 2
    assert result.low <= expected <= result.high
    # a model shifted by 3 oracle sds lies far outside
    assert O.oracle_distance(model[:2000] + 3.0, refs[:, :2000]).value > 2 * expected


def test_the_kind_follows_the_counts():
    rng = np.random.default_rng(3)
    one = rng.normal(size=50)
    several = rng.normal(size=(3, 50))
    assert O.oracle_distance(one, rng.normal(size=(8, 50))).kind == "z"
    assert O.oracle_distance(several, rng.normal(size=(7, 50))).kind == "z"
    klom = O.oracle_distance(several, rng.normal(size=(8, 50)))
    assert klom.kind == "klom" and klom.n_models == 3 and klom.n_oracles == 8
    assert klom.as_dict()["ci"] == [klom.low, klom.high]


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda: O.margin_z_scores([1.0], [[1.0]]), "too-few-oracles"),
        (lambda: O.klom_gaussian([[1.0]], [[1.0], [2.0]]), "too-few-models"),
        (lambda: O.margin_z_scores([1.0, 2.0], [[1.0], [2.0]]), "invalid-margins"),
        (lambda: O.logit_margin([[1.0, 2.0]], [2]), "invalid-margins"),
        (lambda: O.logit_margin([[1.0, float("nan")]], [0]), "invalid-margins"),
        (lambda: O.bootstrap_ci([1.0], statistic="mode"), "invalid-statistic"),
    ],
)
def test_bad_input_gets_a_coded_error(call, code):
    with pytest.raises(CausalUnlearnError) as err:
        call()
    assert err.value.code == code


def test_end_to_end_on_digits_with_three_oracles(tmp_path, tmp_path_factory):
    """K = 3 oracles on digits class-0 removal: the original, which was trained on class 0, lies
    far outside the oracles' margin distribution (the oracles never saw the class); oracle 0 is
    scored against the same two references as every other model."""
    from causalunlearn.methods import load_any
    from causalunlearn.recipes import Recipe
    from causalunlearn.studies.experiment import RunSettings, markdown_table, run_experiment
    from causalunlearn.studies.oracles import oracle_seeds

    settings = RunSettings(
        dataset="digits",
        scenario="class:0",
        seeds=(0,),
        recipe=Recipe(epochs=2),
        # the models of tests/studies/test_rescore.py's run (the same settings): trained once
        cache_dir=str(tmp_path_factory.getbasetemp() / "digits-three-oracles"),
        progress=False,
        threads=1,
        oracles=3,
    )
    assert oracle_seeds(0, 3) == [0, 1, 2]
    graph = load_any("graphs/camu.yaml", preset="digits-class")
    manifest = run_experiment(graph, settings, tmp_path / "run")
    metrics = manifest["per_seed"][0]["metrics"]
    z = {role: metrics[role]["oracle_margin_z"] for role in ("original", "unlearned", "oracle")}
    assert z["original"] > 3 * z["oracle"], z
    assert all(v >= 0 for v in z.values())
    details = manifest["per_seed"][0]
    interval = details["evaluation"]["oracle_distance"]
    assert interval["kind"] == "z" and interval["n_oracles"] == 2
    assert interval["ci"][0] <= z["unlearned"] <= interval["ci"][1]
    assert "Margin z vs oracle distribution" in markdown_table(manifest)
    outputs = np.load(tmp_path / "run" / details["outputs"]["file"])
    assert outputs["oracles.forget"].shape[:2] == (2, details["split"]["forget"])
    # the cost: two more oracles in the model cache
    cache = tmp_path_factory.getbasetemp() / "digits-three-oracles" / "models"
    assert len(list(cache.rglob("oracle-*.pt"))) == 3
