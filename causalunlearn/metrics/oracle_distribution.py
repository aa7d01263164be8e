"""How far a model's per-example outputs lie from a *distribution* of retrain oracles.

One retrain oracle is one draw: two oracles trained with different seeds on the same retain set
already disagree on many forget rows. This module compares a model with K oracles, per forget
row, through the **correct-class margin**

    margin(x, y) = z_y − log Σ_{j≠y} exp(z_j)   (z: the logits; = log p_y − log(1 − p_y)),

the margin of datamodels and of KLoM (Georgiev et al., "Attribute-to-Delete: Machine Unlearning
via Datamodel Matching", 2024, App. E.1) and the logit-scaled confidence of LiRA (Carlini et al.,
S&P 2022; :mod:`causalunlearn.metrics.lira`).

Two statistics, chosen by how many models there are:

- **per-example z-score** (any K ≥ 3 oracles, one model): the reference oracles are oracles
  ``1..K−1``; per forget row ``z_i = (m_i − mean_i) / sd_i`` (mean and sample standard
  deviation, ddof 1, of the reference oracles' margins on row ``i``; ``sd`` floored at
  :data:`MIN_STD`). Reported: the **median of |z|** over forget rows (robust: with few oracles
  ``z`` is Student-t with K−2 degrees of freedom, whose mean is infinite at K = 3). Oracle 0 is
  scored against the same references, so a method that behaves like retraining has *the same
  expected value as the oracle's row* (the two are exchangeable): the ideal is the oracle's
  value, not 0.
- **KLoM-style KL divergence** (K ≥ :data:`KLOM_MIN_ORACLES` oracles and at least 2 models, e.g.
  the unlearned models of several seeds on the same forget rows): per row,
  ``KL(N(μ_o, σ_o²) ‖ N(μ_u, σ_u²))`` between Gaussian fits of the oracles' and the models'
  margins (KLoM bins the margins instead; with a handful of models a Gaussian fit is the
  estimator with the least variance). Reported: the median over rows; ideal 0.

Both are aggregated with a percentile-bootstrap confidence interval over forget rows
(:func:`bootstrap_ci`). Everything here takes logits or margins (numpy or torch), never models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics.mia import _check_seed

#: Smallest standard deviation of margins used in a z-score or a Gaussian fit (margin units):
#: oracles that agree exactly on a row would otherwise give an infinite z.
MIN_STD = 1e-3
#: From this many oracles (and with ≥ 2 models) the KL divergence replaces the z-score.
KLOM_MIN_ORACLES = 8
#: Bootstrap resamples of :func:`bootstrap_ci`.
BOOTSTRAP_RESAMPLES = 1000
#: Coverage of the bootstrap interval.
CI_LEVEL = 0.95


def _as_array(values: Any, name: str, ndim: tuple[int, ...]) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim not in ndim or arr.size == 0:
        raise CausalUnlearnError(
            "invalid-margins",
            f"{name} must be a non-empty array of {' or '.join(f'{d}-D' for d in ndim)},"
            f" got shape {arr.shape}",
            "pass margins as (models × rows) or (rows,), logits as (rows × classes)",
        )
    if not np.isfinite(arr).all():
        raise CausalUnlearnError(
            "invalid-margins",
            f"{name} holds NaN or infinite values",
            "compute them from finite logits",
        )
    return arr


def logit_margin(logits: Any, y: Any) -> np.ndarray:
    """Per row, ``z_y − log Σ_{j≠y} exp(z_j)`` (float64, computed stably).

    Args:
        logits: ``N×C`` logits, ``C ≥ 2``.
        y: ``N`` integer labels in ``[0, C)``.

    Raises:
        CausalUnlearnError: ``invalid-margins`` (shapes, non-finite values, labels out of range).
    """
    z = _as_array(logits, "logits", (2,))
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    labels = np.asarray(y)
    if (
        labels.shape != (z.shape[0],)
        or z.shape[1] < 2
        or not np.issubdtype(labels.dtype, np.integer)
        or (labels.size and (labels.min() < 0 or labels.max() >= z.shape[1]))
    ):
        raise CausalUnlearnError(
            "invalid-margins",
            f"labels must be {z.shape[0]} integers in [0, {z.shape[1]}) for logits of shape"
            f" {z.shape}",
            "pass the true labels of the rows the logits are of",
        )
    rows = np.arange(z.shape[0])
    correct = z[rows, labels]
    others = z.copy()
    others[rows, labels] = -np.inf
    top = others.max(axis=1)
    rest = top + np.log(np.exp(others - top[:, None]).sum(axis=1))
    return correct - rest


def margin_z_scores(model_margins: Any, reference_margins: Any) -> np.ndarray:
    """``z_i = (m_i − mean_i) / max(sd_i, MIN_STD)`` against reference models (rows ``i``).

    Args:
        model_margins: ``N`` margins of the model under test.
        reference_margins: ``R×N`` margins of ``R ≥ 2`` reference models (oracles).

    Raises:
        CausalUnlearnError: ``too-few-oracles`` (R < 2), ``invalid-margins`` (shapes).
    """
    m = _as_array(model_margins, "model_margins", (1,))
    ref = _as_array(reference_margins, "reference_margins", (2,))
    if ref.shape[0] < 2:
        raise CausalUnlearnError(
            "too-few-oracles",
            f"a z-score needs at least 2 reference oracles, got {ref.shape[0]}",
            "train more oracles: --oracles 3 or more (oracle 0 is the one compared, 1..K-1 the"
            " references)",
        )
    if ref.shape[1] != m.shape[0]:
        raise CausalUnlearnError(
            "invalid-margins",
            f"the model has {m.shape[0]} rows, the references {ref.shape[1]}",
            "compute every margin on the same rows",
        )
    sd = np.maximum(ref.std(axis=0, ddof=1), MIN_STD)
    return (m - ref.mean(axis=0)) / sd


def gaussian_kl(mu_p: Any, sd_p: Any, mu_q: Any, sd_q: Any) -> np.ndarray:
    """``KL(N(μ_p, σ_p²) ‖ N(μ_q, σ_q²)) = log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²)/(2σ_q²) − ½``,
    elementwise (nats)."""
    mu_p, sd_p, mu_q, sd_q = (np.asarray(v, dtype=np.float64) for v in (mu_p, sd_p, mu_q, sd_q))
    return np.log(sd_q / sd_p) + (sd_p**2 + (mu_p - mu_q) ** 2) / (2 * sd_q**2) - 0.5


def klom_gaussian(model_margins: Any, oracle_margins: Any) -> np.ndarray:
    """Per row, ``KL(oracles ‖ models)`` between Gaussian fits (mean, sample sd with ddof 1,
    floored at :data:`MIN_STD`) of the oracles' and the models' margins.

    Args:
        model_margins: ``M×N`` margins of ``M ≥ 2`` models (e.g. unlearned models of several
            seeds) on the same ``N`` rows.
        oracle_margins: ``K×N`` margins of ``K ≥ 2`` oracles.

    Raises:
        CausalUnlearnError: ``too-few-models`` / ``too-few-oracles``, ``invalid-margins``.
    """
    u = _as_array(model_margins, "model_margins", (2,))
    o = _as_array(oracle_margins, "oracle_margins", (2,))
    if u.shape[0] < 2:
        raise CausalUnlearnError(
            "too-few-models",
            f"a distribution of models needs at least 2 of them, got {u.shape[0]}",
            "run several seeds (--seeds 0,1,2) on a scenario whose forget rows they share",
        )
    if o.shape[0] < 2:
        raise CausalUnlearnError(
            "too-few-oracles",
            f"a distribution of oracles needs at least 2 of them, got {o.shape[0]}",
            "train more oracles: --oracles K",
        )
    if u.shape[1] != o.shape[1]:
        raise CausalUnlearnError(
            "invalid-margins",
            f"the models have {u.shape[1]} rows, the oracles {o.shape[1]}",
            "compute every margin on the same rows",
        )

    def fit(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return a.mean(axis=0), np.maximum(a.std(axis=0, ddof=1), MIN_STD)

    return gaussian_kl(*fit(o), *fit(u))


def bootstrap_ci(
    values: Any,
    *,
    statistic: str = "median",
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = CI_LEVEL,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(statistic, low, high)``: the statistic of ``values`` and its percentile-bootstrap
    interval (``resamples`` draws of ``len(values)`` rows with replacement, seeded).

    Args:
        values: 1-D per-row values.
        statistic: ``median`` or ``mean``.
    """
    v = _as_array(values, "values", (1,))
    if statistic not in ("median", "mean"):
        raise CausalUnlearnError(
            "invalid-statistic", f"unknown statistic {statistic!r}", "use median or mean"
        )
    reduce = np.median if statistic == "median" else np.mean
    rng = np.random.default_rng(_check_seed(seed))
    draws = reduce(v[rng.integers(0, len(v), size=(resamples, len(v)))], axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return float(reduce(v)), float(low), float(high)


@dataclass(frozen=True)
class OracleDistance:
    """Result of :func:`oracle_distance`.

    Attributes:
        kind: ``z`` (median |z-score|) or ``klom`` (median Gaussian KL, nats).
        value: The median over rows.
        low: Lower end of the bootstrap interval (:data:`CI_LEVEL`).
        high: Upper end.
        n_models: Models on the tested side.
        n_oracles: Oracles used as the reference distribution.
        per_example: The per-row values (|z| or KL).
    """

    kind: str
    value: float
    low: float
    high: float
    n_models: int
    n_oracles: int
    per_example: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Everything but the per-row values, for JSON."""
        return {
            "kind": self.kind,
            "value": self.value,
            "ci": [self.low, self.high],
            "level": CI_LEVEL,
            "n_models": self.n_models,
            "n_oracles": self.n_oracles,
            "rows": int(len(self.per_example)),
        }


def oracle_distance(model_margins: Any, oracle_margins: Any, *, seed: int = 0) -> OracleDistance:
    """The distance of one model (``N`` margins) or several (``M×N``) to ``K×N`` oracle margins.

    One model: the median |z| against the oracles given (pass oracles ``1..K−1`` when oracle 0
    is to be scored the same way, see the module docstring). ``M ≥ 2`` models and
    ``K ≥ KLOM_MIN_ORACLES``: the median Gaussian KL(oracles ‖ models). ``M ≥ 2`` models and
    fewer oracles: the z-score of the models' mean margin. The interval is
    :func:`bootstrap_ci` over rows.
    """
    m = _as_array(model_margins, "model_margins", (1, 2))
    o = _as_array(oracle_margins, "oracle_margins", (2,))
    if m.ndim == 2 and m.shape[0] >= 2 and o.shape[0] >= KLOM_MIN_ORACLES:
        kind, per_row, n = "klom", klom_gaussian(m, o), m.shape[0]
    else:
        n = 1 if m.ndim == 1 else m.shape[0]
        single = m if m.ndim == 1 else m.mean(axis=0)
        kind, per_row = "z", np.abs(margin_z_scores(single, o))
    value, low, high = bootstrap_ci(per_row, seed=seed)
    return OracleDistance(kind, value, low, high, n, int(o.shape[0]), per_row)
