"""The paired bootstrap: the point estimate by hand, the interval against a plain numpy loop."""

from __future__ import annotations

import numpy as np
import pytest

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics.paired import paired_bootstrap

#: A tiny hand-made table: two seeds, per-row correctness of methods A and B on the same rows.
A = {0: [1, 1, 1, 0, 1, 0], 1: [1, 0, 1, 1]}
B = {0: [1, 0, 1, 0, 0, 0], 1: [1, 1, 1, 1]}


def test_point_estimate_is_the_mean_over_seeds_of_the_accuracy_difference():
    # Seed 0: A 4/6, B 2/6 → +33.33 points; seed 1: A 3/4, B 4/4 → −25 points; mean +4.17.
    result = paired_bootstrap(A, B, n_boot=50, seed=0)
    assert result.mean == pytest.approx((100 * (4 / 6 - 2 / 6) + 100 * (3 / 4 - 1)) / 2)
    assert result.rows == (6, 4) and result.n_boot == 50 and result.level == 0.95


def _loop_bootstrap(a, b, n_boot, seed, level):
    """The same bootstrap written out replicate by replicate, seed by seed: resample a seed's
    rows, recompute each method's accuracy on them, difference, average the seeds."""
    rng = np.random.default_rng(seed)
    totals = np.zeros(n_boot)
    for key in a:
        xa, xb = np.asarray(a[key], float), np.asarray(b[key], float)
        n = len(xa)
        for r in range(n_boot):
            rows = np.floor(rng.random(n) * n).astype(int)
            totals[r] += 100 * xa[rows].mean() - 100 * xb[rows].mean()
    totals /= len(a)
    tail = 100 * (1 - level) / 2
    return np.percentile(totals, [tail, 100 - tail])


@pytest.mark.parametrize(("n_boot", "seed", "level"), [(200, 0, 0.95), (333, 7, 0.9)])
def test_interval_equals_a_plain_numpy_loop_with_the_same_seed(n_boot, seed, level):
    result = paired_bootstrap(A, B, n_boot=n_boot, seed=seed, level=level)
    low, high = _loop_bootstrap(A, B, n_boot, seed, level)
    assert (result.low, result.high) == pytest.approx((low, high), abs=1e-9)
    assert result.low <= result.mean <= result.high


def test_chunked_draws_equal_the_loop_on_many_rows(monkeypatch):
    # Rows enough that the replicates are drawn in several chunks (the chunk size made small).
    import causalunlearn.metrics.paired as P

    monkeypatch.setattr(P, "_CHUNK", 1000)
    rng = np.random.default_rng(5)
    a = {s: rng.integers(0, 2, 300) for s in range(3)}
    b = {s: rng.integers(0, 2, 300) for s in range(3)}
    result = paired_bootstrap(a, b, n_boot=40, seed=1)
    assert (result.low, result.high) == pytest.approx(
        tuple(_loop_bootstrap(a, b, 40, 1, 0.95)), abs=1e-9
    )


def test_degenerate_tables_have_exact_intervals():
    same = paired_bootstrap(A, A, n_boot=100)
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)
    right = {0: [1] * 5, 1: [1] * 3}
    wrong = {0: [0] * 5, 1: [0] * 3}
    full = paired_bootstrap(right, wrong, n_boot=100)
    assert (full.mean, full.low, full.high) == (100.0, 100.0, 100.0)


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
