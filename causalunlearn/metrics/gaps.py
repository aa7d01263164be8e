"""Comparisons with the retrained oracle, and summaries over seeds.

The retrained model (trained from scratch on the retain data) is the gold standard of exact
unlearning, so an unlearned model is judged by how far its metrics are from the oracle's. The
functions here take the flat metric dicts of :func:`causalunlearn.metrics.evaluate.evaluate`
(accuracies in percent) or, for :func:`activation_distance`, two models' outputs on the same rows.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np

from causalunlearn.errors import CausalUnlearnError, did_you_mean
from causalunlearn.metrics.catalogue import AVERAGE_GAP, TOW, keys
from causalunlearn.metrics.row_scores import softmax_probabilities

DEFAULT_GAP_KEYS = keys(AVERAGE_GAP)
"""Metrics averaged by :func:`average_gap` by default: RA, FA, TA and SalUn's MIA-efficacy."""

TOW_KEYS = keys(TOW)
"""The accuracies (percent) whose oracle gaps :func:`tow` multiplies: forget, retain, test."""


def gap_to_oracle(
    metrics: Mapping[str, Any],
    oracle: Mapping[str, Any],
    keys: Iterable[str] | None = None,
) -> dict[str, float]:
    """Absolute gap to the oracle per metric: ``gap[k] = |metrics[k] − oracle[k]|``.

    In the metric's own unit: percentage points for the accuracies and attacks in percent.
    ``NaN`` on either side gives ``NaN``. Direction: lower is better, 0 is ideal. Source: the
    "gap to Retrain" of SalUn (Fan et al., ICLR 2024, tables report it next to each metric) and
    of the "Model Sparsity" paper (Jia et al., NeurIPS 2023).

    Args:
        metrics: The unlearned model's metrics, e.g. ``evaluate(unlearned, ...)``.
        oracle: The retrained oracle's metrics, same keys.
        keys: The metrics to compare; default: every key of ``metrics`` that ``oracle`` also
            has and whose values are numbers (in the order of ``metrics``).

    Returns:
        A dict ``key → gap``.

    Raises:
        CausalUnlearnError: ``missing-metric`` (a named key absent from either dict),
            ``invalid-metric-value`` (a named key whose value is not a real number).
    """
    if keys is None:
        keys = [k for k in metrics if k in oracle and _is_real(metrics[k]) and _is_real(oracle[k])]
    return {k: abs(_value(metrics, k, "metrics") - _value(oracle, k, "oracle")) for k in keys}


def average_gap(
    metrics: Mapping[str, Any],
    oracle: Mapping[str, Any],
    keys: Sequence[str] = DEFAULT_GAP_KEYS,
) -> float:
    """Average gap to the oracle: ``(1/|K|) · Σ_{k∈K} |metrics[k] − oracle[k]|``.

    Default ``K`` (:data:`DEFAULT_GAP_KEYS`): ``retain_acc``, ``forget_acc``, ``test_acc`` and
    ``mia_efficacy_svc`` (percent, so the result is in percentage points). Direction: lower is
    better, 0 is ideal. Source: "Avg. Gap" of SalUn (Fan et al., ICLR 2024), the mean of the gaps
    of UA, RA, TA and MIA-efficacy to Retrain; their unlearning accuracy ``UA = 100 − FA`` has
    the same gap as ``FA``. Any ``NaN`` (e.g. an attack skipped for too little data) makes the
    result ``NaN``: pass ``keys`` without it rather than average over a different set.

    Args:
        metrics: The unlearned model's metrics.
        oracle: The retrained oracle's metrics.
        keys: The metrics to average (at least one).

    Returns:
        The average gap.

    Raises:
        CausalUnlearnError: ``invalid-keys`` (no key), ``missing-metric``,
            ``invalid-metric-value``.
    """
    keys = _key_list(keys)
    gaps = gap_to_oracle(metrics, oracle, keys)
    return math.fsum(gaps.values()) / len(gaps)


def tow(
    metrics: Mapping[str, Any],
    oracle: Mapping[str, Any],
    keys: Sequence[str] = TOW_KEYS,
) -> float:
    """Tug-of-War: ``ToW = Π_{k∈K} (1 − |metrics[k] − oracle[k]| / 100)``, in ``[0, 1]``.

    ``K`` = :data:`TOW_KEYS` (forget, retain and test accuracy, in percent). Direction: higher is
    better; 1 means every accuracy equals the oracle's. Source: Zhao et al., "What makes
    unlearning hard and what to do about it", NeurIPS 2024:
    ``ToW = (1 − da(S_f))·(1 − da(S_r))·(1 − da(S_test))`` with ``da(S)`` the absolute difference
    of the unlearned and retrained models' accuracies (fractions) on ``S``. ``NaN`` in gives
    ``NaN``.

    Args:
        metrics: The unlearned model's metrics.
        oracle: The retrained oracle's metrics.
        keys: The accuracies to combine.

    Returns:
        ToW as a fraction in ``[0, 1]`` (multiply by 100 for a percentage).

    Raises:
        CausalUnlearnError: ``invalid-keys``, ``missing-metric``, ``invalid-metric-value``,
            ``not-percent`` (an accuracy outside ``[0, 100]``; fractions in ``[0, 1]`` cannot be
            told from small percentages, so pass percentages).
    """
    keys = _key_list(keys)
    product = 1.0
    for key in keys:
        ours, theirs = _value(metrics, key, "metrics"), _value(oracle, key, "oracle")
        for side, value in (("metrics", ours), ("oracle", theirs)):
            if not math.isnan(value) and not 0.0 <= value <= 100.0:
                raise CausalUnlearnError(
                    "not-percent",
                    f"{side}['{key}'] = {value!r} is not an accuracy in percent",
                    "ToW takes accuracies in [0, 100], as evaluate() reports them",
                )
        product *= 1.0 - abs(ours - theirs) / 100.0
    return product


def mean_std(values: Iterable[Any]) -> tuple[float, float]:
    """Mean and **sample** standard deviation (``ddof=1``) over seeds, ignoring ``NaN``.

    ``mean = Σ v / n``, ``std = sqrt(Σ (v − mean)² / (n − 1))`` over the ``n`` non-NaN values;
    ``std`` is ``NaN`` for ``n = 1`` and both are ``NaN`` for ``n = 0``. Run manifests use it
    for every "mean ± std" over seeds.

    Args:
        values: Real numbers (one per seed).

    Returns:
        ``(mean, std)``.

    Raises:
        CausalUnlearnError: ``invalid-metric-value`` (a value that is not a real number).
    """
    kept: list[float] = []
    for index, value in enumerate(values):
        if not _is_real(value):
            raise CausalUnlearnError(
                "invalid-metric-value",
                f"values[{index}] = {value!r} is not a real number",
                "pass one number per seed",
            )
        if not math.isnan(value):
            kept.append(float(value))
    if not kept:
        return math.nan, math.nan
    return statistics.fmean(kept), statistics.stdev(kept) if len(kept) > 1 else math.nan


def activation_distance(outputs_a: Any, outputs_b: Any, *, from_logits: bool = True) -> float:
    """Mean L2 distance between two models' softmax outputs on the same rows.

    ``AD = (1/N) · Σ_i ‖softmax(a_i) − softmax(b_i)‖₂``, in ``[0, √2]`` (``NaN`` for no rows).
    Usually ``a`` is the unlearned model and ``b`` the retrained oracle on the forget set.
    Direction: lower is better (closer to the oracle), 0 is ideal. Source: Chundawat et al., "Can
    Bad Teaching Induce Forgetting?", AAAI 2023 (``actv_dist`` in ``metrics.py`` of github
    vikram2000b/bad-teaching-unlearning), also reported by SCRUB (Kurmanji et al., NeurIPS 2023).

    Args:
        outputs_a: ``N×C`` logits (or probabilities) of the first model.
        outputs_b: ``N×C`` logits (or probabilities) of the second model, same rows in order.
        from_logits: Whether both are logits (else probabilities).

    Returns:
        The mean distance.

    Raises:
        CausalUnlearnError: ``shape-mismatch``, ``invalid-predictions``, ``not-probabilities``.
    """
    probs_a = softmax_probabilities(outputs_a, from_logits=from_logits, name="outputs_a")
    probs_b = softmax_probabilities(outputs_b, from_logits=from_logits, name="outputs_b")
    if probs_a.shape != probs_b.shape:
        raise CausalUnlearnError(
            "shape-mismatch",
            f"outputs_a has shape {probs_a.shape} but outputs_b has {probs_b.shape}",
            "pass both models' outputs on the same rows, in the same order",
        )
    if len(probs_a) == 0:
        return math.nan
    return float(np.linalg.norm(probs_a - probs_b, axis=1).mean())


# --------------------------------------------------------------------------------------------------
# Helpers


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _value(source: Mapping[str, Any], key: str, side: str) -> float:
    if key not in source:
        raise CausalUnlearnError(
            "missing-metric",
            f"{side} has no metric '{key}'",
            did_you_mean(key, source) or "compute it first, or leave it out of keys",
        )
    value = source[key]
    if not _is_real(value):
        raise CausalUnlearnError(
            "invalid-metric-value",
            f"{side}['{key}'] = {value!r} is not a real number",
            "pass flat dicts of numbers, as evaluate() returns them",
        )
    return float(value)


def _key_list(keys: Sequence[str]) -> list[str]:
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise CausalUnlearnError(
            "invalid-keys", "no metric keys given", f"e.g. keys={DEFAULT_GAP_KEYS!r}"
        )
    return keys
