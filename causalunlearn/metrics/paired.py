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

How the replicates are drawn: a row's term of Δ is ``d = a − b ∈ {−1, 0, +1}``, so a resample
of ``n_s`` rows is summed up by how many of its draws hit a ``+1`` row and a ``−1`` row, and
those two counts are jointly multinomial: ``(N₊, N₋, N₀) ~ Multinomial(n_s; k₊/n_s, k₋/n_s,
k₀/n_s)`` with ``k`` the rows of each kind. Each replicate's seed term is ``(N₊ − N₋) / n_s``:
exactly the distribution of resampling the rows, at a cost that does not grow with the rows
(``rng = numpy.random.default_rng(seed)``; ``rng.multinomial(n_s, p, size=B)`` per stratum, in
the order given). An interval that excludes 0 says the two methods differ on these rows beyond
row-sampling noise; it does not cover the variation of training seeds (the summary's ± does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from causalunlearn.errors import CausalUnlearnError

#: Bootstrap replicates of :func:`paired_bootstrap` by default.
N_BOOT = 1000


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


def paired_replicates(
    a: Mapping[Any, Any], b: Mapping[Any, Any], *, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, np.ndarray, tuple[int, ...]]:
    """Δ (percentage points), its ``n_boot`` bootstrap replicates and the rows per stratum
    (module docstring); :func:`paired_bootstrap` summarises them.

    Raises:
        CausalUnlearnError: ``bad-paired-rows`` (strata or row counts that differ, no rows,
            values other than 0/1), ``bad-count`` (``n_boot``).
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise CausalUnlearnError(
            "bad-count", f"n_boot must be a whole number of at least 1, got {n_boot!r}", "e.g. 1000"
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
        kinds = np.array([(d > 0).sum(), (d < 0).sum(), (d == 0).sum()], dtype=np.float64)
        counts = rng.multinomial(n, kinds / n, size=n_boot)
        replicates += (counts[:, 0] - counts[:, 1]) / n
    replicates *= 100.0 / len(diffs)
    return mean, replicates, tuple(len(d) for d in diffs)


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
        seed: Seed of the draws.
        level: Coverage of the interval (0 < level < 1).

    Raises:
        CausalUnlearnError: ``bad-paired-rows`` (strata or row counts that differ, no rows,
            values other than 0/1), ``bad-count`` (``n_boot``), ``bad-level``.
    """
    if not 0.0 < float(level) < 1.0:
        raise CausalUnlearnError(
            "bad-level", f"level must lie strictly between 0 and 1, got {level!r}", "e.g. 0.95"
        )
    mean, replicates, rows = paired_replicates(a, b, n_boot=n_boot, seed=seed)
    tail = 100.0 * (1.0 - float(level)) / 2.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return PairedDifference(mean, float(low), float(high), float(level), n_boot, rows)
