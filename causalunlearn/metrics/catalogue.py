"""The metric catalogue: every number a run or a sweep reports, described once.

Run tables, sweep summaries, bars, ablation figures and the tuning table all read this table
(:data:`CATALOGUE`) for a metric's label, unit, what value is ideal and which way is better;
the groups below (:data:`RUN_TABLE`, :data:`SUMMARY_COLUMNS`, ...) only name keys. A new metric
is one :class:`MetricInfo` line here plus the function that computes it. Each entry carries its
formula, its source, its ideal value and its direction (``direction``); the metrics page
(docs/sweeps.md, "The metrics") lists every key and a test keeps the two in step.

``ideal`` is one of:

- ``"oracle"``: the retrain oracle's value is ideal; what is judged is the gap to it
  (lower is better). Most metrics of unlearning are of this kind: a forget accuracy far *below*
  the oracle's is as suspicious as one above it (the Streisand effect).
- ``"low"`` / ``"high"``: lower / higher is better, with ``target`` the best possible value
  (``None`` when unbounded).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from causalunlearn.errors import CausalUnlearnError, did_you_mean


@dataclass(frozen=True)
class MetricInfo:
    """One reported metric.

    Attributes:
        key: The key in metric dicts, manifests and summaries (``forget_acc``).
        label: Row label of a run's table (``Forget acc (train)``).
        short: Column header of sweep summaries and axis label stem (``Forget acc``).
        unit: ``%``, ``points`` (percentage points), ``steps``, ``s`` or ``""``.
        ideal: ``oracle``, ``low`` or ``high`` (module docstring).
        target: The best value for ``low`` / ``high`` metrics (``None``: unbounded).
        source: Where the metric comes from (paper or definition).
        formula: How it is computed, in one line (the docstring of the function that computes
            it has the details).
        kind: ``scalar`` (one number per model: metric dicts, tables, summaries), ``per-class``
            (a number per class, in a model's ``extra``), ``matrix`` (a confusion matrix, in
            ``extra``) or ``comparison`` (a difference between two methods, in summaries).
    """

    key: str
    label: str
    short: str
    unit: str
    ideal: Literal["oracle", "low", "high"]
    target: float | None = None
    source: str = ""
    formula: str = ""
    kind: Literal["scalar", "per-class", "matrix", "comparison"] = "scalar"

    @property
    def direction(self) -> str:
        """``↓`` (smaller is better: a gap, a distance, a time), ``↑``, or ``≈ oracle``."""
        return {"oracle": "≈ oracle", "low": "↓", "high": "↑"}[self.ideal]

    @property
    def axis_label(self) -> str:
        """``short`` with its unit, for a plot axis (``Forget acc (%)``)."""
        return f"{self.short} ({self.unit})" if self.unit else self.short


_CAMU = "CaMU (Shen et al., SDM 2024), official evaluation"
_SALUN = "SalUn (Fan et al., ICLR 2024)"

_ACC = "100 · mean over {rows} of [argmax logits = label]"

CATALOGUE: tuple[MetricInfo, ...] = (
    MetricInfo(
        "retain_acc",
        "Retain acc (train)",
        "Retain acc",
        "%",
        "oracle",
        source=_CAMU,
        formula=_ACC.format(rows="the retain rows"),
    ),
    MetricInfo(
        "forget_acc",
        "Forget acc (train)",
        "Forget acc",
        "%",
        "oracle",
        source=_CAMU,
        formula=_ACC.format(rows="the forget rows"),
    ),
    MetricInfo(
        "test_acc",
        "Test acc",
        "Test acc",
        "%",
        "oracle",
        source=_CAMU,
        formula=_ACC.format(rows="the test rows"),
    ),
    MetricInfo(
        "test_retained_classes_acc",
        "Test acc, retained classes",
        "Test acc (kept classes)",
        "%",
        "oracle",
        source=_CAMU,
        formula=_ACC.format(rows="the test rows of the classes not removed (class removal)"),
    ),
    MetricInfo(
        "test_forgotten_classes_acc",
        "Test acc, forgotten classes",
        "Test acc (forgotten classes)",
        "%",
        "oracle",
        source=_CAMU,
        formula=_ACC.format(rows="the test rows of the removed classes (class removal)"),
    ),
    MetricInfo(
        "mia_acc",
        "MIA acc (sorted softmax)",
        "MIA CaMU acc",
        "%",
        "oracle",
        source=_CAMU,
        formula="gradient boosting on sorted softmax vectors, fitted on retain-sample (member)"
        " vs test (non-member) outputs; 100 · accuracy on forget (1) vs as many further test"
        " rows (0)",
    ),
    MetricInfo(
        "mia_forget_member_rate",
        "MIA forget→member rate",
        "MIA CaMU (forget→member)",
        "%",
        "oracle",
        source=_CAMU,
        formula="the same attacker as mia_acc; 100 · share of forget rows called members",
    ),
    MetricInfo(
        "mia_efficacy_svc",
        "MIA-efficacy (SVC, forget→non-member)",
        "MIA-efficacy (SVC)",
        "%",
        "oracle",
        source=_SALUN,
        formula="RBF SVC on softmax(logits)[y], fitted on retain (1) vs test (0), ≤ 2,000 rows"
        " each; 100 · share of forget rows called non-members",
    ),
    MetricInfo(
        "mia_entropy_member_rate",
        "MIA entropy LR (forget→member)",
        "MIA entropy (member)",
        "%",
        "oracle",
        source="entropy attack, logistic regression (Song & Mittal, USENIX Security 2021)",
        formula="logistic regression on H(softmax) = −Σ p ln p, fitted on retain (1) vs test"
        " (0); 100 · share of forget rows called members",
    ),
    MetricInfo(
        "mia_loss_cv_acc",
        "MIA loss LR, 5-fold CV acc",
        "MIA loss-CV acc",
        "%",
        "oracle",
        source="loss attack, 5-fold cross-validated logistic regression",
        formula="logistic regression on the per-row cross-entropy, forget (1) vs as many test"
        " rows (0); 100 · mean accuracy over 5 stratified folds",
    ),
    MetricInfo(
        "activation_distance",
        "Activation distance to oracle (forget)",
        "Act. dist. to oracle",
        "",
        "low",
        0.0,
        source="mean L2 distance of softmax outputs on the forget rows (Chundawat et al., AAAI"
        " 2023)",
        formula="mean over forget rows of ‖softmax(model) − softmax(oracle)‖₂",
    ),
    MetricInfo(
        "relearn_steps",
        "Relearn time (steps)",
        "Relearn steps",
        "steps",
        "oracle",
        source="steps of fine-tuning on the forget rows to regain 90 % of the original's forget"
        " accuracy (Golatkar et al., CVPR 2020)",
        formula="first step (every 5, Adam 1e-3, batch 32, forget rows) with forget acc ≥ 0.9 ×"
        " the original's; 201 when not reached within 200",
    ),
    MetricInfo(
        "average_gap",
        "Average gap to oracle (points)",
        "Avg gap",
        "points",
        "low",
        0.0,
        source=_SALUN + ": mean |gap| of forget, retain, test accuracy and MIA-efficacy",
        formula="mean of |m − m_oracle| over forget, retain, test acc and MIA-efficacy",
    ),
    MetricInfo(
        "tow",
        "ToW",
        "ToW",
        "",
        "high",
        1.0,
        source="tug of war (Zhao et al., NeurIPS 2024): Π (1 − |gap|/100) over FA, RA, TA",
        formula="Π over forget, retain, test acc of (1 − |m − m_oracle| / 100)",
    ),
    MetricInfo(
        "oracle_margin_z",
        "Margin z vs oracle distribution (forget, median abs z)",
        "Oracle-dist. z",
        "",
        "oracle",
        source="per-example distance to K retrain oracles (--oracles K ≥ 3), KLoM's margin"
        " (Georgiev et al., arXiv 2410.23232); metrics/oracle_distribution.py",
        formula="median over forget rows of |m − mean(m_oracles 1..K−1)| / sd(m_oracles 1..K−1),"
        " m = z_y − log Σ_{j≠y} exp z_j; the oracle row: oracle 0 against the same oracles",
    ),
    MetricInfo(
        "oracle_klom",
        "KLoM vs oracle distribution (forget, median, nats)",
        "KLoM",
        "",
        "low",
        0.0,
        source="KL divergence of margins (Georgiev et al., arXiv 2410.23232, App. E.1), Gaussian"
        " fits; a run of ≥ 2 seeds, or a sweep method's ≥ 2 finished cells, on the same forget"
        " rows with ≥ 8 distinct oracles (--oracles K)",
        formula="median over forget rows of KL(N(μ_o, σ_o²) ‖ N(μ_u, σ_u²)) of the margins of"
        " the oracles and of the unlearned models of the run's seeds",
    ),
    MetricInfo(
        "lira_auc",
        "U-LiRA AUC (forget vs held-out)",
        "U-LiRA AUC",
        "",
        "oracle",
        source="U-LiRA (Hayes et al., arXiv 2403.01218), LiRA (Carlini et al., S&P 2022);"
        " --lira-shadows N, random removal only",
        formula="ROC AUC of log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²), φ = logit-scaled"
        " confidence on the label, Gaussians fitted on shadows that saw and unlearned / never saw"
        " each row; forget rows (members) vs as many test rows; chance 0.5",
    ),
    MetricInfo(
        "lira_tpr_1fpr",
        "U-LiRA TPR at 1 % FPR",
        "U-LiRA TPR@1%",
        "%",
        "oracle",
        source="U-LiRA (Hayes et al., arXiv 2403.01218), LiRA (Carlini et al., S&P 2022)",
        formula="100 · share of forget rows whose likelihood ratio exceeds a threshold that at"
        " most 1 % of the held-out rows exceed; chance 1",
    ),
    MetricInfo(
        "probe_acc",
        "Probe acc, representation (forgotten class / membership)",
        "Probe acc",
        "%",
        "oracle",
        source="linear probe (Alain & Bengio, arXiv 1610.01644) on the representation node's"
        " features: causalunlearn.metrics.probe",
        formula="logistic regression on Z, forgotten-class vs other test rows (class removal) or"
        " forget vs test rows (random), balanced, fitted on one half, scored on the other, both"
        " ways; 100 · held-out accuracy (50 = chance)",
    ),
    MetricInfo(
        "per_class_acc",
        "Per-class accuracy",
        "Per-class acc",
        "%",
        "oracle",
        source="textbook; causalunlearn.metrics.per_class",
        formula="100 · M[c, c] / Σ_j M[c, j] per class c, on the forget, retain and test rows",
        kind="per-class",
    ),
    MetricInfo(
        "confusion_matrix",
        "Confusion matrix",
        "Confusion",
        "rows",
        "oracle",
        source="sklearn.metrics.confusion_matrix; causalunlearn.metrics.per_class",
        formula="M[i, j] = rows of true class i predicted as j, on the forget, retain and test"
        " rows",
        kind="matrix",
    ),
    MetricInfo(
        "paired_delta",
        "Paired Δ accuracy vs the reference method",
        "Paired Δ",
        "points",
        "oracle",
        source="percentile bootstrap (Efron & Tibshirani 1993) over rows, stratified by seed:"
        " causalunlearn.metrics.paired",
        formula="mean over seeds of 100 · (acc(A) − acc(B)) on the same rows, with the 2.5–97.5"
        " percentiles of 1000 row resamples within each seed",
        kind="comparison",
    ),
    MetricInfo(
        "unlearn_seconds",
        "Unlearning time (s)",
        "Time",
        "s",
        "low",
        0.0,
        source="wall time (CaMU's reported unlearning time)",
        formula="seconds of counterfactual construction + the unlearning loop (not scoring)",
    ),
)

_BY_KEY = {m.key: m for m in CATALOGUE}


def metric(key: str) -> MetricInfo:
    """The catalogue entry of ``key``.

    Raises:
        CausalUnlearnError: ``unknown-metric`` (with a did-you-mean hint).
    """
    try:
        return _BY_KEY[key]
    except KeyError:
        raise CausalUnlearnError(
            "unknown-metric", f"no metric named {key!r}", did_you_mean(key, _BY_KEY)
        ) from None


def metrics(keys: Iterable[str]) -> tuple[MetricInfo, ...]:
    """The catalogue entries of ``keys``, in that order."""
    return tuple(metric(k) for k in keys)


#: Rows of a run's table (``causalunlearn run``): the official metrics, then the others.
RUN_TABLE = metrics(
    (
        "retain_acc",
        "forget_acc",
        "test_acc",
        "test_retained_classes_acc",
        "test_forgotten_classes_acc",
        "mia_acc",
        "mia_forget_member_rate",
        "mia_efficacy_svc",
        "mia_entropy_member_rate",
        "mia_loss_cv_acc",
        "activation_distance",
        "average_gap",
        "tow",
    )
)

#: The official CaMU metrics (``evaluate(...)`` without ``extended``), as the paper reports them.
OFFICIAL = RUN_TABLE[:7]

#: Columns of a sweep's summary, in order (statistics, gaps and "best" are computed for these).
SUMMARY_COLUMNS = metrics(
    (
        "forget_acc",
        "retain_acc",
        "test_acc",
        "test_retained_classes_acc",
        "mia_forget_member_rate",
        "mia_efficacy_svc",
        "mia_entropy_member_rate",
        "mia_loss_cv_acc",
        "activation_distance",
        "probe_acc",
        "relearn_steps",
        "average_gap",
        "tow",
        "unlearn_seconds",
        "oracle_margin_z",
        "lira_auc",
        "lira_tpr_1fpr",
    )
)

#: Rows a run's table adds when a model has them (``--probe``, ``--oracles K``,
#: ``--lira-shadows N``).
OPTIONAL_RUN_ROWS = metrics(
    ("probe_acc", "oracle_margin_z", "oracle_klom", "lira_auc", "lira_tpr_1fpr")
)

#: The tables of each (dataset, scenario) in ``summary.md``: accuracy, privacy, and the
#: per-example metrics when a sweep has them (a table without values is left out).
SUMMARY_GROUPS: tuple[tuple[str, tuple[MetricInfo, ...]], ...] = (
    (
        "accuracy and cost",
        metrics(
            (
                "forget_acc",
                "retain_acc",
                "test_acc",
                "test_retained_classes_acc",
                "average_gap",
                "tow",
                "unlearn_seconds",
            )
        ),
    ),
    (
        "privacy",
        metrics(
            (
                "mia_forget_member_rate",
                "mia_efficacy_svc",
                "mia_entropy_member_rate",
                "mia_loss_cv_acc",
                "activation_distance",
                "probe_acc",
                "relearn_steps",
            )
        ),
    ),
    (
        "per-example evaluation (--oracles, --lira-shadows)",
        metrics(("oracle_margin_z", "lira_auc", "lira_tpr_1fpr")),
    ),
)

#: Metrics averaged into ``average_gap`` (percentage points), as in SalUn's tables.
AVERAGE_GAP = metrics(("retain_acc", "forget_acc", "test_acc", "mia_efficacy_svc"))

#: The accuracies whose oracle gaps ToW multiplies.
TOW = metrics(("forget_acc", "retain_acc", "test_acc"))

#: Bars of a sweep's metric figure.
BARS = metrics(
    (
        "forget_acc",
        "retain_acc",
        "test_acc",
        "mia_efficacy_svc",
        "mia_forget_member_rate",
        "probe_acc",
        "unlearn_seconds",
    )
)

#: Gaps to the oracle drawn by the ablation figure.
ABLATION_GAPS = metrics(
    ("forget_acc", "retain_acc", "test_acc", "mia_efficacy_svc", "mia_forget_member_rate")
)


def keys(infos: Iterable[MetricInfo]) -> tuple[str, ...]:
    """The keys of catalogue entries, in order."""
    return tuple(m.key for m in infos)
