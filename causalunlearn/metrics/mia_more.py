"""Three more membership-inference attacks, each under the name the literature knows it by.

Each attack reads one scalar per row of the evaluated model's outputs (see
:mod:`causalunlearn.metrics.row_scores`), trains a small scikit-learn attacker and reports a
percentage. They take model outputs (logits by default, probabilities with ``from_logits=False``)
and labels, never models; compute every input with the model under evaluation.

=====================  =============  ==============  ========================  ==================
function               feature        attacker        trained on                reported (%)
=====================  =============  ==============  ========================  ==================
``mia_efficacy_svc``   ``p[y]``       RBF SVC         retain (1) vs test (0)    forget rows called
                                                                                non-members
``mia_entropy_lr``     ``H(p)``       logistic reg.   retain (1) vs test (0)    forget rows called
                                                                                members
``mia_loss_lr_cv``     ``−ln p[y]``   logistic reg.   forget (1) vs test (0),   cross-validated
                                                      k-fold                    accuracy
=====================  =============  ==============  ========================  ==================

The ideal of the first two is the retrained oracle's value (report the gap to it, see
:mod:`causalunlearn.metrics.gaps`); the third is ideally about 50 (forget rows indistinguishable
from unseen rows). CaMU's own sorted-softmax attack is
:func:`causalunlearn.metrics.mia_sorted_softmax`.
Every attack needs at least :data:`~causalunlearn.metrics.mia.MIN_ATTACK_ROWS` rows on each side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics.mia import MIN_ATTACK_ROWS, _check_seed
from causalunlearn.metrics.row_scores import (
    cross_entropy_per_row,
    prediction_entropy,
    softmax_probabilities,
    true_label_confidence,
)


@dataclass(frozen=True)
class MIAScore:
    """Result of one of the attacks of this module.

    Attributes:
        name: The attack (``"mia_efficacy_svc"``, ``"mia_entropy_lr"`` or ``"mia_loss_lr_cv"``),
            also a fitting manifest key.
        value: The reported metric, in percent.
        n_members: Member rows the attacker was trained on (for the cross-validated attack: member
            rows in the cross-validation set).
        n_nonmembers: Non-member (test) rows the attacker was trained on (cross-validated attack:
            non-member rows in the cross-validation set).
        n_scored: Rows the reported value is computed on.
        fold_values: Per-fold accuracies in percent (cross-validated attack only; else empty).
    """

    name: str
    value: float
    n_members: int
    n_nonmembers: int
    n_scored: int
    fold_values: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for JSON manifests)."""
        out = asdict(self)
        out["fold_values"] = list(self.fold_values)
        return out


def mia_efficacy_svc(
    outputs_retain: Any,
    y_retain: Any,
    outputs_test: Any,
    y_test: Any,
    outputs_forget: Any,
    y_forget: Any,
    *,
    seed: int,
    from_logits: bool = True,
    max_per_class: int | None = None,
) -> MIAScore:
    """SalUn's *MIA-efficacy*: share of forget rows an SVC on confidence calls non-members.

    Feature: the confidence in the true label, ``conf = softmax(logits)[y]`` (a single column).
    With ``n = min(|retain|, |test|, max_per_class)``, ``R`` = ``n`` retain rows and ``T`` =
    ``n`` test rows (each drawn without replacement by ``numpy.random.default_rng(seed)``; a set
    of exactly ``n`` rows is used whole), the attacker
    ``A = SVC(C=3, gamma="auto", kernel="rbf")`` is fitted on
    ``{(conf, 1) : R} ∪ {(conf, 0) : T}`` and::

        MIA-efficacy = 100 · |{i ∈ forget : A(conf_i) = 0}| / |forget|

    Direction: higher = the forget set looks less like training data (more forgotten); the
    ideal is the retrained oracle's value, not 100. Source: Jia et al., "Model Sparsity Can
    Simplify Machine Unlearning", NeurIPS 2023, and Fan et al., "SalUn", ICLR 2024 (code:
    ``evaluation/SVC_MIA.py``, ``SVC_MIA(shadow_train=retain[:len(test)], shadow_test=test,
    target_test=forget)`` with ``acc_conf``). The official code takes the *first* ``len(test)``
    retain rows; here the rows are a seeded random sample.

    Args:
        outputs_retain: ``N_r×C`` outputs on retain rows (members).
        y_retain: ``N_r`` labels.
        outputs_test: ``N_t×C`` outputs on test rows (non-members).
        y_test: ``N_t`` labels.
        outputs_forget: ``N_f×C`` outputs on the forget rows (all are scored).
        y_forget: ``N_f`` labels.
        seed: Seed of the row draw.
        from_logits: Whether the outputs are logits (else probabilities).
        max_per_class: Optional cap on ``n`` (an SVC's fit time grows quadratically with rows).

    Returns:
        A :class:`MIAScore` named ``mia_efficacy_svc``.

    Raises:
        CausalUnlearnError: ``too-little-data-for-attack``, ``class-count-mismatch``,
            ``invalid-predictions``, ``not-probabilities``, ``invalid-labels``,
            ``length-mismatch``, ``invalid-seed``, ``invalid-max-per-class``.
    """
    from sklearn.svm import SVC

    seed = _check_seed(seed)
    _same_class_count(from_logits, outputs_retain, outputs_test, outputs_forget)
    conf_retain = true_label_confidence(outputs_retain, y_retain, from_logits=from_logits)
    conf_test = true_label_confidence(outputs_test, y_test, from_logits=from_logits)
    conf_forget = true_label_confidence(outputs_forget, y_forget, from_logits=from_logits)
    n = _capped(min(len(conf_retain), len(conf_test)), max_per_class)
    _enough_rows(n=n, n_forget=len(conf_forget))
    rng = np.random.default_rng(seed)
    members = _subsample(conf_retain, n, rng)
    nonmembers = _subsample(conf_test, n, rng)

    attacker = SVC(C=3, gamma="auto", kernel="rbf")
    attacker.fit(_column(members, nonmembers), _member_labels(n, n))
    predicted = attacker.predict(_column(conf_forget))
    return MIAScore(
        name="mia_efficacy_svc",
        value=100.0 * float(np.mean(predicted == 0)),
        n_members=n,
        n_nonmembers=n,
        n_scored=len(conf_forget),
    )


def mia_entropy_lr(
    outputs_retain: Any,
    outputs_test: Any,
    outputs_forget: Any,
    *,
    seed: int,
    from_logits: bool = True,
    max_per_class: int | None = None,
) -> MIAScore:
    """Bad-Teacher's attack: share of forget rows an entropy logistic regression calls members.

    Feature: the entropy of the softmax, ``H = −Σ_c p_c ln p_c`` (nats, one column). The attacker
    ``A = LogisticRegression(class_weight="balanced", C=2)`` is fitted on
    ``{(H, 1) : retain} ∪ {(H, 0) : test}`` (all rows; with ``max_per_class``, each side is
    first subsampled to at most that many rows by ``numpy.random.default_rng(seed)``), and::

        forget member rate = 100 · |{i ∈ forget : A(H_i) = 1}| / |forget|

    Direction: lower = more forgotten; the ideal is the retrained oracle's value (unlearned data
    should look like unseen data as much as it does for the oracle), not 0. Source: Chundawat et
    al., "Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks Using an Incompetent
    Teacher", AAAI 2023 (code: ``metrics.py::get_membership_attack_prob``, reused by SCRUB and
    SSD). The official attacker is ``LogisticRegression(class_weight="balanced",
    solver="lbfgs", multi_class="multinomial")``; for two classes the multinomial
    parametrisation ``(β₁, β₀)`` with ``w = β₁ − β₀`` carries half the L2 penalty of the binary
    one (``½(|β₁|² + |β₀|²) ≥ ¼|w|²``), so the binary model with ``C=2`` is the same fit (and does
    not depend on the ``multi_class`` option removed from recent scikit-learn). The seed only
    matters when ``max_per_class`` subsamples (lbfgs is deterministic).

    Args:
        outputs_retain: ``N_r×C`` outputs on retain rows (members).
        outputs_test: ``N_t×C`` outputs on test rows (non-members).
        outputs_forget: ``N_f×C`` outputs on the forget rows (all are scored).
        seed: Seed of the optional subsampling.
        from_logits: Whether the outputs are logits (else probabilities).
        max_per_class: Optional cap on the rows of each side of the attacker's training set.

    Returns:
        A :class:`MIAScore` named ``mia_entropy_lr``.

    Raises:
        CausalUnlearnError: ``too-little-data-for-attack``, ``class-count-mismatch``,
            ``invalid-predictions``, ``not-probabilities``, ``invalid-seed``,
            ``invalid-max-per-class``.
    """
    from sklearn.linear_model import LogisticRegression

    seed = _check_seed(seed)
    _same_class_count(from_logits, outputs_retain, outputs_test, outputs_forget)
    h_retain = prediction_entropy(outputs_retain, from_logits=from_logits)
    h_test = prediction_entropy(outputs_test, from_logits=from_logits)
    h_forget = prediction_entropy(outputs_forget, from_logits=from_logits)
    n_members = _capped(len(h_retain), max_per_class)
    n_nonmembers = _capped(len(h_test), max_per_class)
    _enough_rows(n=min(n_members, n_nonmembers), n_forget=len(h_forget))
    rng = np.random.default_rng(seed)
    members = _subsample(h_retain, n_members, rng)
    nonmembers = _subsample(h_test, n_nonmembers, rng)

    attacker = LogisticRegression(class_weight="balanced", C=2.0, random_state=seed)
    attacker.fit(_column(members, nonmembers), _member_labels(n_members, n_nonmembers))
    predicted = attacker.predict(_column(h_forget))
    return MIAScore(
        name="mia_entropy_lr",
        value=100.0 * float(np.mean(predicted == 1)),
        n_members=n_members,
        n_nonmembers=n_nonmembers,
        n_scored=len(h_forget),
    )


def mia_loss_lr_cv(
    outputs_forget: Any,
    y_forget: Any,
    outputs_test: Any,
    y_test: Any,
    *,
    seed: int,
    from_logits: bool = True,
    n_splits: int = 5,
    max_per_class: int | None = None,
) -> MIAScore:
    """Loss attack of the NeurIPS 2023 unlearning challenge: can forget be told from test rows?

    Feature: the per-row cross-entropy ``ℓ = −ln softmax(logits)[y]`` (one column). With
    ``n = min(|forget|, |test|, max_per_class)``, ``n`` forget rows (label 1) and ``n`` test rows
    (label 0) are drawn without replacement by ``numpy.random.default_rng(seed)`` (a set of
    exactly ``n`` rows is used whole, in its order) and ``LogisticRegression()`` is scored by
    cross-validation with ``StratifiedKFold(n_splits, shuffle=True, random_state=seed)``::

        value = 100 · mean over folds k of accuracy(A_k on fold k),  A_k fitted on the others

    Direction: ideally about 50 (the forget set is as unfamiliar as unseen data); 100 means the
    attacker tells them apart perfectly; compare with the retrained oracle's value too. Source:
    the challenge's starting kit (github unlearning-challenge/starting-kit,
    ``unlearning-CIFAR10.ipynb``: ``compute_losses`` and ``simple_mia``, forget losses
    subsampled to ``len(test)``); the kit cross-validates with
    ``StratifiedShuffleSplit(n_splits=10)``, here stratified k-fold scores every row exactly once.

    Args:
        outputs_forget: ``N_f×C`` outputs on the forget rows (members).
        y_forget: ``N_f`` labels.
        outputs_test: ``N_t×C`` outputs on test rows (non-members).
        y_test: ``N_t`` labels.
        seed: Seed of the row draw and of the folds.
        from_logits: Whether the outputs are logits (else probabilities).
        n_splits: Folds of the cross-validation (≥ 2).
        max_per_class: Optional cap on ``n``.

    Returns:
        A :class:`MIAScore` named ``mia_loss_lr_cv`` with the per-fold accuracies.

    Raises:
        CausalUnlearnError: ``too-little-data-for-attack``, ``class-count-mismatch``,
            ``invalid-predictions``, ``not-probabilities``, ``invalid-labels``,
            ``length-mismatch``, ``invalid-seed``, ``invalid-n-splits``,
            ``invalid-max-per-class``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    seed = _check_seed(seed)
    if isinstance(n_splits, bool) or not isinstance(n_splits, int) or n_splits < 2:
        raise CausalUnlearnError(
            "invalid-n-splits",
            f"n_splits must be an integer ≥ 2, got {n_splits!r}",
            "e.g. n_splits=5",
        )
    _same_class_count(from_logits, outputs_forget, outputs_test)
    loss_forget = cross_entropy_per_row(outputs_forget, y_forget, from_logits=from_logits)
    loss_test = cross_entropy_per_row(outputs_test, y_test, from_logits=from_logits)
    n = _capped(min(len(loss_forget), len(loss_test)), max_per_class)
    _enough_rows(n=n, n_forget=n, minimum=max(MIN_ATTACK_ROWS, n_splits))
    rng = np.random.default_rng(seed)
    members = _subsample(loss_forget, n, rng)
    nonmembers = _subsample(loss_test, n, rng)

    # Test rows first, then forget rows, as in the starting kit (the fold draw depends on order).
    features = _column(nonmembers, members)
    labels = np.r_[np.zeros(n, np.int64), np.ones(n, np.int64)]
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    scores = cross_val_score(LogisticRegression(), features, labels, cv=folds, scoring="accuracy")
    fold_values = tuple(100.0 * float(s) for s in scores)
    return MIAScore(
        name="mia_loss_lr_cv",
        value=float(np.mean(fold_values)),
        n_members=n,
        n_nonmembers=n,
        n_scored=2 * n,
        fold_values=fold_values,
    )


# --------------------------------------------------------------------------------------------------
# Helpers


def _capped(n: int, max_per_class: int | None) -> int:
    if max_per_class is None:
        return n
    if isinstance(max_per_class, bool) or not isinstance(max_per_class, int) or max_per_class < 1:
        raise CausalUnlearnError(
            "invalid-max-per-class",
            f"max_per_class must be a positive integer or None, got {max_per_class!r}",
            "e.g. max_per_class=5000, or None to use every row",
        )
    return min(n, max_per_class)


def _enough_rows(*, n: int, n_forget: int, minimum: int = MIN_ATTACK_ROWS) -> None:
    if n < minimum or n_forget < minimum:
        raise CausalUnlearnError(
            "too-little-data-for-attack",
            f"the attack needs ≥ {minimum} rows per side; got {n} per side for the attacker's"
            f" training set and {n_forget} forget rows",
            "use larger retain / test / forget sets (or skip this metric)",
        )


def _same_class_count(from_logits: bool, *outputs: Any) -> None:
    counts = [softmax_probabilities(o, from_logits=from_logits).shape[1] for o in outputs]
    if len(set(counts)) > 1:
        raise CausalUnlearnError(
            "class-count-mismatch",
            f"the output matrices have {', '.join(map(str, counts))} columns",
            "compute all of them with the same model",
        )


def _subsample(values: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows drawn without replacement, in their original order (all of them if ``n`` is)."""
    if n == len(values):
        return values
    return values[np.sort(rng.choice(len(values), size=n, replace=False))]


def _column(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts).reshape(-1, 1)


def _member_labels(n_members: int, n_nonmembers: int) -> np.ndarray:
    """``n_members`` ones (members first) then ``n_nonmembers`` zeros."""
    return np.r_[np.ones(n_members, np.int64), np.zeros(n_nonmembers, np.int64)]
