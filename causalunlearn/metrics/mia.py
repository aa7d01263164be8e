"""CaMU's membership-inference attack on sorted softmax vectors.

The attack of the official CaMU code (github ShaofeiShen768/CaMU, ``CaMU/train.py``:
``train_attack_model`` and ``attack``): an attacker learns to tell the *unlearned* model's outputs
on training members from its outputs on unseen data, then is scored on the forget set.

* Feature of a row: the model's softmax vector sorted in descending order (the official code sorts
  ascending; for tree attackers the column order does not matter).
* Attacker training set: ``n_train`` retain-sample rows (label 1, members) and ``n_train`` test
  rows (label 0, non-members).
* Scoring set: ``n_score`` forget rows (label 1) and ``n_score`` *further* test rows (label 0),
  disjoint from the test rows used in training.
* Metric: the attacker's accuracy on the scoring set, in percent. A forget set that still looks
  like training data pushes it up (towards 100); a forget set that looks like unseen data gives
  about 50. The ideal is the retrained model's value, not 50. :attr:`MIAResult.forget_member_rate`
  also gives the fraction of forget rows predicted to be members.

Differences from the official code, all deliberate: rows are drawn with a seeded permutation (the
official code takes the first ~4000 test rows in file order and the next ones for scoring), the
attacker is fitted on all of its training rows (the official code holds out 1%), and sample sizes
shrink for small datasets (see :func:`mia_sample_sizes`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from causalunlearn.errors import CausalUnlearnError, did_you_mean
from causalunlearn.registry import Registry

MIN_ATTACK_ROWS = 10
"""Fewest rows per class (member / non-member) in the attacker's training or scoring set."""

DEFAULT_MAX_TRAIN = 4000
"""Members (and non-members) in the attacker's training set in the official code."""


@dataclass(frozen=True)
class MIAResult:
    """Result of :func:`mia_sorted_softmax`.

    Attributes:
        accuracy: Attacker accuracy on the scoring set (forget rows vs further test rows), percent.
        forget_member_rate: Fraction of the scored forget rows predicted as members, in [0, 1].
        n_train: Members used to train the attacker (and as many non-members).
        n_score: Forget rows scored (and as many further test rows).
        attacker: The attacker's name (or class name for an estimator object).
    """

    accuracy: float
    forget_member_rate: float
    n_train: int
    n_score: int
    attacker: str

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for JSON manifests)."""
        return asdict(self)


@dataclass(frozen=True)
class MIASplit:
    """Which rows the attack uses (indices into each input; see :func:`mia_split_rows`).

    Attributes:
        members: Retain-sample rows of the attacker's training set (label 1).
        nonmembers_train: Test rows of the attacker's training set (label 0).
        forget: Forget rows of the scoring set (label 1).
        nonmembers_score: Test rows of the scoring set (label 0), disjoint from
            ``nonmembers_train``.
    """

    members: np.ndarray
    nonmembers_train: np.ndarray
    forget: np.ndarray
    nonmembers_score: np.ndarray


# --------------------------------------------------------------------------------------------------
# Attackers


def _hist_gradient_boosting(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    # Boosted trees with XGBoost-like settings (100 rounds, learning rate 0.3, depth 6, L2 1) to
    # stay close to the official XGBClassifier(n_estimators=100). Histogram boosting fits 8000×10
    # rows in ~0.2 s, about 10× faster than GradientBoostingClassifier. Early stopping is off so
    # that the model does not change with the sample size (scikit-learn turns it on above 10 000).
    return HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.3,
        max_depth=6,
        max_leaf_nodes=None,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )


def _xgboost(seed: int) -> Any:
    try:
        from xgboost import XGBClassifier
    except ImportError as exc:
        raise CausalUnlearnError(
            "missing-optional-dependency",
            "attacker='xgboost' needs the xgboost package, which is not installed",
            "pip install 'causalunlearn[xgboost]'  (or use the default attacker='gbdt')",
        ) from exc
    # The official attacker: XGBClassifier(n_estimators=100, objective='binary:logistic',
    # booster='gbtree').
    return XGBClassifier(
        n_estimators=100, objective="binary:logistic", booster="gbtree", random_state=seed
    )


MIA_ATTACKERS: Registry[Callable[[int], Any]] = Registry(
    "attacker",
    label="membership-inference attacker",
    hint="register one with causalunlearn.metrics.register_attacker",
)
"""Attacker registry: name → ``factory(seed)`` returning an unfitted classifier (fit/predict)."""
MIA_ATTACKERS.register("gbdt", _hist_gradient_boosting)
MIA_ATTACKERS.register("xgboost", _xgboost)


def register_attacker(
    name: str, *, overwrite: bool = False
) -> Callable[[Callable[[int], Any]], Callable[[int], Any]]:
    """Decorator: register ``factory(seed)`` (an unfitted classifier with ``fit``/``predict``) as
    the membership-inference attacker ``name`` (``attacker=name`` in :func:`mia_sorted_softmax`).

    Raises:
        CausalUnlearnError: ``duplicate-attacker`` when ``name`` is taken and ``overwrite`` is
            false.
    """
    return MIA_ATTACKERS.register(name, overwrite=overwrite)


def _make_attacker(attacker: Any, seed: int) -> tuple[Any, str]:
    if isinstance(attacker, str):
        return MIA_ATTACKERS.get(attacker)(seed), attacker
    if hasattr(attacker, "fit") and hasattr(attacker, "predict"):
        if hasattr(attacker, "get_params"):
            from sklearn.base import clone

            return clone(attacker), type(attacker).__name__
        return attacker, type(attacker).__name__
    raise CausalUnlearnError(
        "unknown-attacker",
        f"attacker must be a name or an object with fit/predict, got {type(attacker).__name__}",
        did_you_mean("", MIA_ATTACKERS),
    )


# --------------------------------------------------------------------------------------------------
# Pure functions


def sorted_softmax_features(probs: Any) -> np.ndarray:
    """Sort each row of a probability matrix in descending order (the attack's features).

    Args:
        probs: ``N×C`` probabilities (array or tensor).

    Returns:
        ``N×C`` float64 array, each row sorted from the largest to the smallest probability.
    """
    values = _as_matrix(probs, "probs")
    return -np.sort(-values, axis=1)


def mia_sample_sizes(
    n_retain_sample: int, n_test: int, n_forget: int, *, max_train: int = DEFAULT_MAX_TRAIN
) -> tuple[int, int]:
    """Sample sizes of the attack: ``(n_train, n_score)``.

    ``n_train = min(max_train, n_retain_sample, n_test // 2)`` members and as many test rows train
    the attacker; ``n_score = min(n_forget, n_test - n_train)`` forget rows and as many further
    test rows score it. On MNIST (10 000 test rows, ~6000 forget rows) this gives the official
    4000 / ~6000; ``n_test // 2`` keeps at least half of a small test set for scoring.

    Args:
        n_retain_sample: Rows available as members.
        n_test: Test rows available as non-members.
        n_forget: Forget rows.
        max_train: Cap on ``n_train`` (official: 4000).

    Returns:
        ``(n_train, n_score)``.

    Raises:
        CausalUnlearnError: ``too-little-data-for-attack`` when either is below 10.
    """
    if isinstance(max_train, bool) or not isinstance(max_train, int) or max_train < 1:
        raise CausalUnlearnError(
            "invalid-max-train",
            f"max_train must be a positive integer, got {max_train!r}",
            f"the official attack uses max_train={DEFAULT_MAX_TRAIN}",
        )
    n_train = min(max_train, n_retain_sample, n_test // 2)
    n_score = min(n_forget, n_test - n_train)
    if n_train < MIN_ATTACK_ROWS or n_score < MIN_ATTACK_ROWS:
        raise CausalUnlearnError(
            "too-little-data-for-attack",
            f"the membership-inference attack needs ≥ {MIN_ATTACK_ROWS} rows per side to train"
            f" and to score; got n_train = min({max_train}, retain sample {n_retain_sample},"
            f" test {n_test} // 2) = {n_train} and n_score = min(forget {n_forget},"
            f" test {n_test} - n_train) = {n_score}",
            "use a larger test set, retain sample or forget set (or skip this metric)",
        )
    return n_train, n_score


def mia_split_rows(
    n_retain_sample: int,
    n_test: int,
    n_forget: int,
    *,
    seed: int,
    max_train: int = DEFAULT_MAX_TRAIN,
) -> MIASplit:
    """Draw the rows of the attack with ``numpy.random.default_rng(seed)``.

    One permutation of the test rows is cut into the first ``n_train`` (attacker training
    non-members) and the next ``n_score`` (scoring non-members), so the two are disjoint. Members
    and forget rows are random subsets of sizes ``n_train`` and ``n_score`` (all rows when the set
    is not larger). Sizes from :func:`mia_sample_sizes`.

    Args:
        n_retain_sample: Rows of the retain sample.
        n_test: Rows of the test set.
        n_forget: Rows of the forget set.
        seed: Seed of the draw.
        max_train: Cap on the attacker's members.

    Returns:
        The chosen row indices.
    """
    n_train, n_score = mia_sample_sizes(n_retain_sample, n_test, n_forget, max_train=max_train)
    rng = np.random.default_rng(_check_seed(seed))
    test_rows = rng.permutation(n_test)
    return MIASplit(
        members=rng.permutation(n_retain_sample)[:n_train],
        nonmembers_train=test_rows[:n_train],
        forget=rng.permutation(n_forget)[:n_score],
        nonmembers_score=test_rows[n_train : n_train + n_score],
    )


def mia_sorted_softmax(
    probs_retain_sample: Any,
    probs_test: Any,
    probs_forget: Any,
    *,
    seed: int,
    attacker: Any = "gbdt",
    max_train: int = DEFAULT_MAX_TRAIN,
) -> MIAResult:
    """CaMU's membership-inference attack on sorted softmax vectors.

    With ``s(p)`` the softmax vector ``p`` sorted in descending order, an attacker ``A`` is trained
    on ``{(s(p), 1) : p ∈ retain sample} ∪ {(s(p), 0) : p ∈ test_train}`` (``n_train`` rows each)
    and scored on ``F = forget`` and ``T = test_score`` (``n_score`` rows each, ``T`` disjoint
    from ``test_train``)::

        accuracy = 100 · ( Σ_{p∈F} [A(s(p)) = 1] + Σ_{p∈T} [A(s(p)) = 0] ) / (2 · n_score)
        forget_member_rate = Σ_{p∈F} [A(s(p)) = 1] / n_score

    Sizes: ``n_train = min(max_train, |retain sample|, |test| // 2)``,
    ``n_score = min(|forget|, |test| - n_train)``; rows drawn by :func:`mia_split_rows`.
    Source: official CaMU code, ``CaMU/train.py::train_attack_model`` and ``::attack`` (XGBoost
    attacker, 4000 + 4000 training rows, all forget rows against as many further test rows). The
    probabilities must come from the model under evaluation (CaMU: the unlearned model).

    Args:
        probs_retain_sample: ``N_s×C`` softmax outputs on the retain sample (members).
        probs_test: ``N_t×C`` softmax outputs on the test set (non-members).
        probs_forget: ``N_f×C`` softmax outputs on the forget set.
        seed: Seed of the row draw and of the attacker.
        attacker: ``"gbdt"`` (scikit-learn ``HistGradientBoostingClassifier`` with XGBoost-like
            settings; the default, no extra dependency), ``"xgboost"`` (the official
            ``XGBClassifier``; needs ``pip install 'causalunlearn[xgboost]'``), another name in
            :data:`MIA_ATTACKERS`, or an unfitted estimator with ``fit``/``predict`` (scikit-learn
            estimators are cloned; other objects are fitted in place).
        max_train: Cap on ``n_train`` (official: 4000).

    Returns:
        An :class:`MIAResult`.

    Raises:
        CausalUnlearnError: ``not-probabilities`` (e.g. logits passed), ``class-count-mismatch``,
            ``too-little-data-for-attack``, ``unknown-attacker``, ``missing-optional-dependency``,
            ``invalid-seed``, ``invalid-max-train``.
    """
    retain = _as_probabilities(probs_retain_sample, "probs_retain_sample")
    test = _as_probabilities(probs_test, "probs_test")
    forget = _as_probabilities(probs_forget, "probs_forget")
    if not retain.shape[1] == test.shape[1] == forget.shape[1]:
        raise CausalUnlearnError(
            "class-count-mismatch",
            f"the probability matrices have {retain.shape[1]}, {test.shape[1]} and"
            f" {forget.shape[1]} columns",
            "compute all three with the same model",
        )
    seed = _check_seed(seed)
    split = mia_split_rows(len(retain), len(test), len(forget), seed=seed, max_train=max_train)
    model, name = _make_attacker(attacker, seed)
    n_train, n_score = len(split.members), len(split.forget)

    x_train = sorted_softmax_features(
        np.concatenate([retain[split.members], test[split.nonmembers_train]])
    )
    y_train = np.concatenate([np.ones(n_train, np.int64), np.zeros(n_train, np.int64)])
    model.fit(x_train, y_train)

    x_score = sorted_softmax_features(
        np.concatenate([forget[split.forget], test[split.nonmembers_score]])
    )
    y_score = np.concatenate([np.ones(n_score, np.int64), np.zeros(n_score, np.int64)])
    predicted = np.asarray(model.predict(x_score)).astype(np.int64).reshape(-1)
    return MIAResult(
        accuracy=100.0 * float(np.mean(predicted == y_score)),
        forget_member_rate=float(np.mean(predicted[:n_score] == 1)),
        n_train=n_train,
        n_score=n_score,
        attacker=name,
    )


# --------------------------------------------------------------------------------------------------
# Thin wrappers


def mia_sorted_softmax_from_logits(
    logits_retain_sample: Any,
    logits_test: Any,
    logits_forget: Any,
    *,
    seed: int,
    attacker: Any = "gbdt",
    max_train: int = DEFAULT_MAX_TRAIN,
) -> MIAResult:
    """:func:`mia_sorted_softmax` on ``softmax(logits, dim=1)`` (computed in float64).

    Args:
        logits_retain_sample: Logits on the retain sample.
        logits_test: Logits on the test set.
        logits_forget: Logits on the forget set.
        seed: Seed of the row draw and of the attacker.
        attacker: See :func:`mia_sorted_softmax`.
        max_train: See :func:`mia_sorted_softmax`.

    Returns:
        An :class:`MIAResult`.
    """
    return mia_sorted_softmax(
        _softmax(logits_retain_sample),
        _softmax(logits_test),
        _softmax(logits_forget),
        seed=seed,
        attacker=attacker,
        max_train=max_train,
    )


def mia_sorted_softmax_from_model(
    model: nn.Module,
    x_retain_sample: torch.Tensor,
    x_test: torch.Tensor,
    x_forget: torch.Tensor,
    *,
    seed: int,
    attacker: Any = "gbdt",
    max_train: int = DEFAULT_MAX_TRAIN,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> MIAResult:
    """:func:`mia_sorted_softmax` on the outputs of ``model`` (CaMU: the unlearned model).

    Every row of each input is predicted (see :func:`causalunlearn.metrics.accuracy.predict`);
    pass only what the attack may use.

    Args:
        model: The model under evaluation.
        x_retain_sample: Retain-sample inputs (members).
        x_test: Test inputs (non-members).
        x_forget: Forget inputs.
        seed: Seed of the row draw and of the attacker.
        attacker: See :func:`mia_sorted_softmax`.
        max_train: See :func:`mia_sorted_softmax`.
        batch_size: Rows per forward pass.
        device: Where to run the model (default: where its parameters are).

    Returns:
        An :class:`MIAResult`.
    """
    from causalunlearn.metrics.accuracy import predict

    logits = [
        predict(model, x, batch_size=batch_size, device=device)
        for x in (x_retain_sample, x_test, x_forget)
    ]
    return mia_sorted_softmax_from_logits(
        *logits, seed=seed, attacker=attacker, max_train=max_train
    )


# --------------------------------------------------------------------------------------------------
# Conversions


def _as_matrix(values: Any, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 2:
        raise CausalUnlearnError(
            "not-probabilities",
            f"{name} must be an N×C matrix with C ≥ 2, got shape {array.shape}",
            "pass one softmax vector per row",
        )
    return array


def _as_probabilities(values: Any, name: str) -> np.ndarray:
    array = _as_matrix(values, name)
    tolerance = 1e-3 * array.shape[1]  # room for float16/float32 softmax outputs
    if array.size and (
        not np.all(np.isfinite(array))
        or array.min() < -tolerance
        or np.abs(array.sum(axis=1) - 1.0).max() > tolerance
    ):
        raise CausalUnlearnError(
            "not-probabilities",
            f"{name} is not a matrix of probabilities (rows must be finite, non-negative and sum"
            " to 1)",
            "pass softmax(logits, dim=1), or call mia_sorted_softmax_from_logits",
        )
    return array


def _softmax(logits: Any) -> np.ndarray:
    values = logits.detach().cpu() if isinstance(logits, torch.Tensor) else torch.as_tensor(logits)
    if values.dim() != 2:
        raise CausalUnlearnError(
            "invalid-predictions",
            f"logits must be N×C, got shape {tuple(values.shape)}",
            "pass the model's logits, one row per input",
        )
    return torch.softmax(values.double(), dim=1).numpy()


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise CausalUnlearnError(
            "invalid-seed",
            f"seed must be a non-negative integer, got {seed!r}",
            "pass e.g. seed=0",
        )
    return int(seed)
