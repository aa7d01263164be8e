"""The paired bootstrap: the point estimate by hand, the replicates against the exact bootstrap
distribution enumerated row by row, and the interval against a plain numpy loop."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics.paired import paired_bootstrap, paired_replicates

#: A tiny hand-made table: two seeds, per-row correctness of methods A and B on the same rows.
A = {0: [1, 1, 1, 0, 1, 0], 1: [1, 0, 1, 1]}
B = {0: [1, 0, 1, 0, 0, 0], 1: [1, 1, 1, 1]}


def test_point_estimate_is_the_mean_over_seeds_of_the_accuracy_difference():
    # Seed 0: A 4/6, B 2/6 → +33.33 points; seed 1: A 3/4, B 4/4 → −25 points; mean +4.17.
    result = paired_bootstrap(A, B, n_boot=50, seed=0)
    assert result.mean == pytest.approx((100 * (4 / 6 - 2 / 6) + 100 * (3 / 4 - 1)) / 2)
    assert result.rows == (6, 4) and result.n_boot == 50 and result.level == 0.95


def _exact_distribution(a, b):
    """The exact bootstrap distribution of Δ*: every ordered resample of each seed's rows
    (6^6 and 4^4 of them), accuracies of A and B recomputed on it, seeds combined."""
    per_seed = []
    for key in a:
        xa, xb = np.asarray(a[key]), np.asarray(b[key])
        n = len(xa)
        counts = Counter()
        for rows in itertools.product(range(n), repeat=n):
            rows = list(rows)
            counts[round(100 * (xa[rows].mean() - xb[rows].mean()), 9)] += 1
        per_seed.append({v: c / n**n for v, c in counts.items()})
    combined = Counter()
    for (v0, p0), (v1, p1) in itertools.product(per_seed[0].items(), per_seed[1].items()):
        combined[round((v0 + v1) / 2, 9)] += p0 * p1
    return dict(sorted(combined.items()))


def test_replicates_follow_the_exact_bootstrap_distribution():
    exact = _exact_distribution(A, B)
    n_boot = 20_000
    _, replicates, _ = paired_replicates(A, B, n_boot=n_boot, seed=3)
    values = np.array(list(exact))
    cdf = np.cumsum(list(exact.values()))
    empirical = np.searchsorted(np.sort(replicates), values + 1e-9, side="right") / n_boot
    # Dvoretzky-Kiefer-Wolfowitz: P(sup |F_B - F| > 0.02) <= 2 exp(-2 B 0.02^2) ≈ 2e-7.
    assert np.abs(empirical - cdf).max() < 0.02
    reachable = {round(v, 6) for v in exact}  # no value the exact bootstrap cannot reach
    assert {round(float(v), 6) for v in replicates} <= reachable
    # Its mean is Δ and its variance (1/S²) Σ_s 100² var(d_s)/n_s (population variance of d).
    var = sum(np.var(np.subtract(A[k], B[k])) / len(A[k]) for k in A) * 100**2 / 4
    assert replicates.mean() == pytest.approx(paired_bootstrap(A, B).mean, abs=0.5)
    assert replicates.var() == pytest.approx(var, rel=0.05)


@pytest.mark.parametrize(("n_boot", "seed", "level"), [(200, 0, 0.95), (333, 7, 0.9)])
def test_interval_equals_a_plain_numpy_loop_with_the_same_seed(n_boot, seed, level):
    # The same draws replicate by replicate: each seed's counts of +1 and −1 rows drawn, then a
    # resampled table built from them and both accuracies computed on it.
    rng = np.random.default_rng(seed)
    totals = np.zeros(n_boot)
    for key in A:
        d = np.subtract(A[key], B[key])
        n = len(d)
        p = [np.mean(d == 1), np.mean(d == -1), np.mean(d == 0)]
        counts = rng.multinomial(n, p, size=n_boot)
        for r in range(n_boot):
            table = [(1, 0)] * counts[r, 0] + [(0, 1)] * counts[r, 1] + [(1, 1)] * counts[r, 2]
            acc_a, acc_b = np.mean(table, axis=0)
            totals[r] += 100 * (acc_a - acc_b) / len(A)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(totals, [tail, 100 - tail])
    result = paired_bootstrap(A, B, n_boot=n_boot, seed=seed, level=level)
    assert (result.low, result.high) == pytest.approx((low, high), abs=1e-9)
    assert result.low <= result.mean <= result.high


def test_degenerate_tables_have_exact_intervals():
    same = paired_bootstrap(A, A, n_boot=100)
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)
    right = {0: [1] * 5, 1: [1] * 3}
    wrong = {0: [0] * 5, 1: [0] * 3}
    full = paired_bootstrap(right, wrong, n_boot=100)
    assert (full.mean, full.low, full.high) == (100.0, 100.0, 100.0)


def test_many_rows_cost_no_more_than_few():
    # 50,000 rows per seed: the draws do not grow with the rows (multinomial counts).
    import time

    rng = np.random.default_rng(5)
    a = {s: rng.random(50_000) < 0.99 for s in range(3)}
    b = {s: rng.random(50_000) < 0.98 for s in range(3)}
    started = time.perf_counter()
    result = paired_bootstrap(a, b)
    assert time.perf_counter() - started < 2.0
    assert result.low < result.mean < result.high


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "code"),
    [
        ({0: [1, 0]}, {1: [1, 0]}, {}, "bad-paired-rows"),  # other seeds
        ({0: [1, 0]}, {0: [1, 0, 1]}, {}, "bad-paired-rows"),  # other rows
        ({0: [1, 2]}, {0: [1, 0]}, {}, "bad-paired-rows"),  # not correctness
        ({}, {}, {}, "bad-paired-rows"),
        ({0: [1]}, {0: [0]}, {"n_boot": 0}, "bad-count"),
        ({0: [1]}, {0: [0]}, {"level": 1.0}, "bad-level"),
    ],
)
def test_bad_input_is_a_coded_error(a, b, kwargs, code):
    with pytest.raises(CausalUnlearnError) as err:
        paired_bootstrap(a, b, **kwargs)
    assert err.value.code == code


# compare shows it: each method against camu, on the rows the cells saved --------------------------
def test_compare_summary_pairs_each_method_with_camu(tmp_path):
    import json
    from pathlib import Path

    from causalunlearn.cli import main

    root = Path(__file__).resolve().parents[2]
    methods = [
        str(root / "graphs" / "baselines" / "finetune.yaml"),
        str(root / "graphs" / "camu.yaml"),
    ]
    args = ["compare", *methods, "--dataset", "digits", "--seeds", "0,1", "--epochs-original", "2"]
    args += ["--threads", "1", "--no-progress", "--no-plots", "--cache-dir", str(tmp_path / "c")]
    assert main([*args, "--out", str(tmp_path / "sweep")]) == 0
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    paired = summary["tables"][0]["paired"]
    assert paired["reference"] == "camu"  # camu, though it is not the first method
    result = paired["methods"]["finetune"]
    assert result["seeds"] == ["seed0", "seed1"]
    runs = tmp_path / "sweep" / "runs"
    for key in ("forget_acc", "retain_acc", "test_acc"):
        # The point estimate is the mean over seeds of the cells' own accuracy difference.
        cells = {
            label: [
                json.loads((runs / label / "digits" / "class-0" / f"seed{s}.json").read_text())
                for s in (0, 1)
            ]
            for label in ("finetune", "camu")
        }
        gaps = [f["metrics"][key] - c["metrics"][key] for f, c in zip(*cells.values(), strict=True)]
        assert result[key]["mean"] == pytest.approx(np.mean(gaps), abs=1e-9)
        assert result[key]["low"] <= result[key]["mean"] <= result[key]["high"]
    # The rows: read back from the saved outputs with numpy alone, the test rows' correctness.
    with np.load(runs / "finetune" / "digits" / "class-0" / "seed0.outputs.npz") as saved:
        right = saved["unlearned.test"].argmax(1) == saved["test_y"]
    assert result["test_acc"]["rows"] == [len(right), len(right)]
    text = (tmp_path / "sweep" / "summary.md").read_text()
    assert "### digits, class:0: paired comparison with camu" in text
    assert any(line.startswith("| finetune | ") and "[" in line for line in text.splitlines())
