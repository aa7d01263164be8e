"""Paired comparison of two methods: a bootstrap over rows, stratified by seed.

Three seeds are too few to resample, but two methods scored on the same seeds *and the same rows*
differ row by row. For a part of the data (forget, retain or test rows) and each seed ``s``, let
``a_s[i], b_s[i] ∈ {0, 1}`` say whether methods A and B classify row ``i`` of that seed
correctly (the rows are the same for both: same split, same test set). The difference::

    Δ = (1/S) · Σ_s 100 · (mean_i a_s[i] − mean_i b_s[i])        (percentage points)

is the mean over seeds of the accuracy difference, the number the summary's means give. Its
uncertainty comes from the rows: each bootstrap replicate resamples, **within each seed**, the
``n_s`` rows of that seed with replacement (the same rows for A and B: the pairing is kept) and
recomputes Δ; the interval is the 2.5th and 97.5th percentiles of the replicates (percentile
bootstrap, Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13). Stratifying
keeps every seed's weight at ``1/S`` in every replicate, as in Δ itself.

Row draws: ``rng = numpy.random.default_rng(seed)``; for each stratum in the order given, for
each replicate ``r = 0..B−1``, the ``n_s`` rows ``floor(n_s · u)`` with ``u = rng.random(n_s)``
(so a replicate's draws do not depend on how many replicates are drawn at once). An interval
that excludes 0 says the two methods differ on these rows beyond row-sampling noise; it does
not cover the variation of training seeds (the summary's ± does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from causalunlearn.errors import CausalUnlearnError

#: Bootstrap replicates of :func:`paired_bootstrap` by default.
N_BOOT = 1000
#: The most random numbers drawn at once (memory of one chunk: 8 bytes each).
_CHUNK = 1 << 22


@dataclass(frozen=True)
class PairedDifference:
    """A paired comparison of two methods on one part of the data.

    Attributes:
        mean: Δ, the mean over seeds of ``acc(A) − acc(B)`` (percentage points).
        low: 2.5th percentile of the bootstrap replicates (for ``level`` 0.95).
        high: 97.5th percentile.
        level: The interval's coverage.
        n_boot: Replicates drawn.
        rows: Rows per stratum, in the order the strata were given.
    """

    mean: float
    low: float
    high: float
    level: float
    n_boot: int
    rows: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON data)."""
        out = asdict(self)
        out["rows"] = list(self.rows)
        return out


def _correct(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or not (arr.dtype == bool or np.isin(arr, (0, 1)).all()):
        raise CausalUnlearnError(
            "bad-paired-rows",
            f"{what} must be a 1-d array of per-row correctness (0/1 or bool), got shape"
            f" {arr.shape} {arr.dtype}",
            "pass argmax(logits) == label for each row",
        )
    return arr.astype(np.float64)


def paired_bootstrap(
    a: Mapping[Any, Any],
    b: Mapping[Any, Any],
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDifference:
    """Δ = mean over strata of ``100 · (acc(A) − acc(B))`` and its stratified paired bootstrap
    interval (module docstring).

    Args:
        a: Stratum (a seed) → per-row correctness of method A (1-d, 0/1 or bool).
        b: The same strata → method B's correctness on the same rows.
        n_boot: Bootstrap replicates (at least 1).
        seed: Seed of the row draws.
        level: Coverage of the interval (0 < level < 1).

    Raises:
        CausalUnlearnError: ``bad-paired-rows`` (strata or row counts that differ, no rows,
            values other than 0/1), ``bad-count`` (``n_boot``), ``bad-level``.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise CausalUnlearnError(
            "bad-count", f"n_boot must be a whole number of at least 1, got {n_boot!r}", "e.g. 1000"
        )
    if not 0.0 < float(level) < 1.0:
        raise CausalUnlearnError(
            "bad-level", f"level must lie strictly between 0 and 1, got {level!r}", "e.g. 0.95"
        )
    if list(a) != list(b) or not a:
        raise CausalUnlearnError(
            "bad-paired-rows",
            f"the two methods must have the same strata (seeds), got {list(a)} and {list(b)}",
            "compare cells of the same seeds only",
        )
    diffs = []
    for key in a:
        xa, xb = _correct(a[key], f"A's rows of {key!r}"), _correct(b[key], f"B's rows of {key!r}")
        if xa.shape != xb.shape or not len(xa):
            raise CausalUnlearnError(
                "bad-paired-rows",
                f"stratum {key!r} has {len(xa)} rows for A and {len(xb)} for B; a paired"
                " comparison needs the same rows, at least one",
                "score both methods on the same split and test set",
            )
        diffs.append(xa - xb)
    mean = 100.0 * float(np.mean([d.mean() for d in diffs]))
    rng = np.random.default_rng(seed)
    replicates = np.zeros(n_boot)
    for d in diffs:
        n = len(d)
        per_chunk = max(1, _CHUNK // n)
        means = []
        for start in range(0, n_boot, per_chunk):
            count = min(per_chunk, n_boot - start)
            rows = np.floor(rng.random((count, n)) * n).astype(np.int64)
            means.append(d[rows].mean(axis=1))
        replicates += np.concatenate(means)
    replicates *= 100.0 / len(diffs)
    tail = 100.0 * (1.0 - float(level)) / 2.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return PairedDifference(
        mean, float(low), float(high), float(level), n_boot, tuple(len(d) for d in diffs)
    )
