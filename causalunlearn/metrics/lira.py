"""A per-example membership attack of the LiRA family (U-LiRA for unlearning).

LiRA (Carlini et al., "Membership Inference Attacks From First Principles", S&P 2022) asks of
each target row ``x`` whether the model was trained on it, with a likelihood-ratio test on the
model's **logit-scaled confidence** on the row's label, ``φ(x) = log p_y − log(1 − p_y)``
(:func:`causalunlearn.metrics.oracle_distribution.logit_margin`). Shadow models are trained on
random halves of a population, so that each target is *in* about half of them and *out* of the
others; per target, Gaussians are fitted to the shadows' ``φ`` in and out:

    Λ(x) = log N(φ(x); μ_in(x), σ_in(x)²) − log N(φ(x); μ_out(x), σ_out(x)²),

and a large ``Λ`` says "member". U-LiRA (Hayes et al., "Inexact Unlearning Needs More Careful
Evaluations to Avoid a False Sense of Privacy", 2024) makes the *in* shadows the ones that were
trained on ``x`` **and then unlearned it** with the method under test, so the test asks exactly
"does this unlearned model look like one that never saw x?" (the shadows are built by
:mod:`causalunlearn.studies.shadows`; this module only takes their statistics).

Reported over forget rows (members) vs held-out test rows (non-members): the ROC **AUC** and the
**TPR at 1 % FPR**. For a model that never saw the forget rows (the retrain oracle), members and
non-members are exchangeable and the AUC is 0.5 in expectation, with the Mann–Whitney null
standard deviation ``sqrt((n₁ + n₀ + 1) / (12 n₁ n₀))`` (:func:`null_auc_sd`).

With few shadows the per-example variances are noisy; as Carlini et al. do below 64 shadows,
``fix_variance`` (default: on when fewer than :data:`PER_EXAMPLE_VARIANCE_SHADOWS` shadows) uses
one variance per side pooled over every target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics.mia import _check_seed
from causalunlearn.metrics.oracle_distribution import MIN_STD

#: From this many shadows the variances are fitted per example (fewer: pooled, see above).
PER_EXAMPLE_VARIANCE_SHADOWS = 64
#: The false-positive rate of the reported true-positive rate.
LOW_FPR = 0.01


def balanced_membership(n_shadows: int, n_rows: int, *, seed: int = 0) -> np.ndarray:
    """``S×N`` booleans: row ``j`` of each column is whether target ``j`` is *in* shadow ``s``;
    every target is in exactly ``⌊S/2⌋`` shadows (a random half, drawn independently per target:
    LiRA's argsort construction), so every target has in and out shadows.

    Raises:
        CausalUnlearnError: ``too-few-shadows`` (fewer than 4: two per side).
    """
    if isinstance(n_shadows, bool) or not isinstance(n_shadows, int) or n_shadows < 4:
        raise CausalUnlearnError(
            "too-few-shadows",
            f"LiRA needs at least 4 shadow models (2 in, 2 out per target), got {n_shadows!r}",
            "e.g. --lira-shadows 64 (the full attack), or 16 for a reduced budget",
        )
    rng = np.random.default_rng(_check_seed(seed))
    order = rng.random((n_shadows, n_rows)).argsort(axis=0)
    return order < n_shadows // 2


def _gaussian_fits(values: np.ndarray, mask: np.ndarray, pooled: bool):
    """Per column, mean and standard deviation of ``values`` where ``mask`` (sample sd, ddof 1;
    ``pooled``: one sd for every column, from the deviations around each column's mean)."""
    count = mask.sum(axis=0)
    if (count < 2).any():
        raise CausalUnlearnError(
            "too-few-shadows",
            "some targets are in (or out of) fewer than 2 shadows",
            "use balanced_membership(...) with at least 4 shadows",
        )
    mean = np.where(mask, values, 0.0).sum(axis=0) / count
    dev2 = np.where(mask, (values - mean) ** 2, 0.0)
    if pooled:
        sd = np.full(values.shape[1], math.sqrt(dev2.sum() / (count - 1).sum()))
    else:
        sd = np.sqrt(dev2.sum(axis=0) / (count - 1))
    return mean, np.maximum(sd, MIN_STD)


def _pooled(n_shadows: int, fix_variance: bool | None) -> bool:
    return n_shadows < PER_EXAMPLE_VARIANCE_SHADOWS if fix_variance is None else bool(fix_variance)


def _log_normal(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd) - 0.5 * math.log(2 * math.pi)


def lira_scores(
    target: Any, shadows: Any, shadow_in: Any, *, fix_variance: bool | None = None
) -> np.ndarray:
    """The log-likelihood ratio ``Λ`` of each target (see the module docstring).

    Args:
        target: ``N`` statistics ``φ`` of the model under attack on the targets.
        shadows: ``S×N`` statistics of the shadows on the same targets.
        shadow_in: ``S×N`` booleans: target in shadow (trained on it, and for U-LiRA unlearned).
        fix_variance: One pooled variance per side; ``None``: when ``S`` <
            :data:`PER_EXAMPLE_VARIANCE_SHADOWS`.

    Raises:
        CausalUnlearnError: ``invalid-lira-input`` (shapes, non-finite values),
            ``too-few-shadows``.
    """
    phi = np.asarray(target, dtype=np.float64)
    shadow = np.asarray(shadows, dtype=np.float64)
    inside = np.asarray(shadow_in, dtype=bool)
    if (
        phi.ndim != 1
        or shadow.ndim != 2
        or shadow.shape[1] != phi.shape[0]
        or inside.shape != shadow.shape
        or not (np.isfinite(phi).all() and np.isfinite(shadow).all())
    ):
        raise CausalUnlearnError(
            "invalid-lira-input",
            f"expected N target statistics and S×N shadow statistics and membership, got"
            f" {phi.shape}, {shadow.shape}, {inside.shape} (all finite)",
            "compute every statistic on the same targets, in the same order",
        )
    pooled = _pooled(shadow.shape[0], fix_variance)
    mu_in, sd_in = _gaussian_fits(shadow, inside, pooled)
    mu_out, sd_out = _gaussian_fits(shadow, ~inside, pooled)
    return _log_normal(phi, mu_in, sd_in) - _log_normal(phi, mu_out, sd_out)


def roc_auc(members: Any, nonmembers: Any) -> float:
    """``P(score of a member > score of a non-member)``, ties counted ½ (the Mann–Whitney U
    statistic over ``n₁ n₀``)."""
    from scipy.stats import rankdata

    m, n = np.asarray(members, dtype=np.float64), np.asarray(nonmembers, dtype=np.float64)
    ranks = rankdata(np.concatenate([m, n]))
    u = ranks[: len(m)].sum() - len(m) * (len(m) + 1) / 2
    return float(u / (len(m) * len(n)))


def tpr_at_fpr(members: Any, nonmembers: Any, fpr: float = LOW_FPR) -> float:
    """The largest share of members scored above a threshold that at most ``fpr`` of the
    non-members exceed (the ROC curve's TPR at that FPR, as Carlini et al. report it)."""
    m, n = np.sort(np.asarray(members, float)), np.sort(np.asarray(nonmembers, float))
    allowed = math.floor(fpr * len(n))  # non-members that may score above the threshold
    # threshold: the (allowed+1)-th largest non-member score; members strictly above it count
    threshold = n[len(n) - allowed - 1]
    return float((m > threshold).mean())


def null_auc_sd(n_members: int, n_nonmembers: int) -> float:
    """Standard deviation of the AUC when members and non-members are exchangeable (no ties)."""
    return math.sqrt((n_members + n_nonmembers + 1) / (12 * n_members * n_nonmembers))


@dataclass(frozen=True)
class LiRAResult:
    """Result of :func:`lira_attack`.

    Attributes:
        auc: ROC AUC of ``Λ``, members vs non-members (0.5: chance).
        tpr_at_low_fpr: TPR at :data:`LOW_FPR` FPR, in percent (``LOW_FPR`` × 100: chance).
        n_shadows: Shadow models.
        n_members: Member (forget) rows.
        n_nonmembers: Non-member (held-out) rows.
        pooled_variance: Whether the variances were pooled.
        scores: ``Λ`` of each target (members first).
    """

    auc: float
    tpr_at_low_fpr: float
    n_shadows: int
    n_members: int
    n_nonmembers: int
    pooled_variance: bool
    scores: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Everything but the scores, for JSON."""
        return {
            "auc": self.auc,
            "tpr_at_1fpr": self.tpr_at_low_fpr,
            "n_shadows": self.n_shadows,
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
            "pooled_variance": self.pooled_variance,
            "null_auc_sd": null_auc_sd(self.n_members, self.n_nonmembers),
        }


def lira_attack(
    target: Any,
    shadows: Any,
    shadow_in: Any,
    is_member: Any,
    *,
    fix_variance: bool | None = None,
) -> LiRAResult:
    """Score every target with :func:`lira_scores` and report AUC and TPR at 1 % FPR.

    Args:
        target, shadows, shadow_in, fix_variance: As :func:`lira_scores`.
        is_member: ``N`` booleans: the target is a member (a forget row) or not (held out).
    """
    member = np.asarray(is_member, dtype=bool)
    scores = lira_scores(target, shadows, shadow_in, fix_variance=fix_variance)
    if member.shape != scores.shape or member.all() or not member.any():
        raise CausalUnlearnError(
            "invalid-lira-input",
            "is_member must mark each target, with at least one member and one non-member",
            "targets are the forget rows (members) and held-out test rows (non-members)",
        )
    pooled = _pooled(np.asarray(shadows).shape[0], fix_variance)
    mem, non = scores[member], scores[~member]
    return LiRAResult(
        auc=roc_auc(mem, non),
        tpr_at_low_fpr=100.0 * tpr_at_fpr(mem, non),
        n_shadows=int(np.asarray(shadows).shape[0]),
        n_members=int(member.sum()),
        n_nonmembers=int((~member).sum()),
        pooled_variance=bool(pooled),
        scores=np.concatenate([mem, non]),
    )
