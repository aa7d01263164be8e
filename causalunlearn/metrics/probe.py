"""Representation probe: can a linear classifier still read the forgotten information from Z?

An unlearned model can stop *predicting* the forget set while its representation still encodes
it: the information is then suppressed at the head, not erased, and a few steps of fine-tuning
bring it back. The probe asks the representation directly. The model is frozen, the output of its
representation layer (the module the graph's representation node names; every shipped graph
uses the model's declared ``representation_layer``, so all methods are probed at the same layer)
is read on two balanced sets of rows, and a logistic regression is fitted to tell them apart:

- **class removal** (the split has forgotten classes): *is this test row of a forgotten class?*
  Positives: test rows of the forgotten classes; negatives: as many test rows of the other
  classes. A binary probe rather than a probe over every class, because it asks exactly the
  question of unlearning (is the forgotten class still separable from the rest in Z?), its
  chance level is 50 % whatever the number of classes, and it needs only the forgotten class's
  test rows, not enough rows of every class. A full-class probe would mostly measure how well the
  *retained* classes are encoded, which every method keeps by design.
- **random removal**: *is this row a forget row (a member of the original's training data) or a
  held-out test row?* Positives: forget rows; negatives: as many test rows.

Protocol (the same for both, and for every model probed, so the numbers compare): with
``n = min(|positives|, |negatives|, max_per_side)`` rounded down to an even number, ``n`` rows
of each side are drawn without replacement by ``numpy.random.default_rng(seed)``, and each side
is cut in two halves of ``n/2`` by a seeded permutation. A probe (standardisation, then
``LogisticRegression(C=1, lbfgs)``) is fitted on one half and scores the other, then the halves
swap; the reported accuracy is over every row, each predicted by the probe that did not see it::

    probe accuracy = 100 · (correct on half B by the probe of A + correct on half A by the
                     probe of B) / (2n)

Both halves hold ``n/2`` rows of each side, so a probe that predicts one class everywhere (e.g.
on identical features) scores exactly 50 %. Ideal: the retrain oracle's value (the oracle never
saw the forget rows, so what it still separates is what the data itself carries; a random-init
network of the same architecture gives the floor). Above the oracle: suppressed, not erased.

Source: linear classifier probes (Alain & Bengio, "Understanding intermediate layers using
linear classifier probes", arXiv 1610.01644), applied to unlearning as the linear-probe
recoverability of the forgotten information that reviewers now ask for. scikit-learn runs
inside the caller's :func:`causalunlearn.numerics.limit_threads` block (``run``, ``compare``
and ``tune`` open one), so ``--threads`` bounds its BLAS/OpenMP pools.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.models.representation import REPRESENTATION_ALIAS, capture_representation

if TYPE_CHECKING:
    from causalunlearn.data import TensorData
    from causalunlearn.data.splits import Split

#: At most this many rows per side (positives, negatives): fitting stays well under a second.
PROBE_MAX_PER_SIDE = 2000
#: Fewest rows per side: each half then holds 2 rows of each side.
MIN_PROBE_ROWS = 4
#: Rows per forward pass when reading features.
FEATURE_BATCH = 1024
PROBE_TASKS = ("forgotten-class", "membership")


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe.

    Attributes:
        accuracy: Held-out probe accuracy in percent (50: chance).
        task: ``forgotten-class`` or ``membership``.
        rows_per_side: ``n``, the rows of each side (positives and negatives).
        features: The width of the representation.
        layer: The module path the features were read from.
        converged: Whether both logistic regressions converged (lbfgs, ``max_iter`` 2000).
    """

    accuracy: float
    task: str
    rows_per_side: int
    features: int
    layer: str = ""
    converged: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for JSON manifests)."""
        return asdict(self)


def probe_accuracy(positives: Any, negatives: Any, *, seed: int = 0) -> tuple[float, bool]:
    """The two-fold held-out accuracy (percent) of a linear probe telling ``positives`` from
    ``negatives`` (feature rows), as in the module docstring; with the rows already drawn.

    Both sides must have the same, even number of rows ``n ≥ MIN_PROBE_ROWS``.

    Returns:
        ``(accuracy, converged)``.

    Raises:
        CausalUnlearnError: ``bad-probe-rows`` (different or odd row counts, or not 2-d),
            ``too-little-data-for-probe``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    if pos.ndim != 2 or neg.ndim != 2 or pos.shape != neg.shape or len(pos) % 2:
        raise CausalUnlearnError(
            "bad-probe-rows",
            f"a probe takes two N×D feature arrays of one even N, got {pos.shape} and {neg.shape}",
            "draw the rows with probe_rows (or representation_probe, which does it)",
        )
    n = len(pos)
    if n < MIN_PROBE_ROWS:
        raise CausalUnlearnError(
            "too-little-data-for-probe",
            f"{n} rows per side; the probe needs at least {MIN_PROBE_ROWS}",
            "use a scenario with more forget rows (or forgotten-class test rows)",
        )
    rng = np.random.default_rng(seed)
    halves = [rng.permutation(n) for _ in range(2)]  # positives', then negatives' order
    half = n // 2
    folds = []
    for part in (slice(0, half), slice(half, n)):
        x = np.concatenate([pos[halves[0][part]], neg[halves[1][part]]])
        y = np.concatenate([np.ones(half, dtype=np.int64), np.zeros(half, dtype=np.int64)])
        folds.append((x, y))
    correct, converged = 0, True
    for fit, score in ((0, 1), (1, 0)):
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            probe.fit(*folds[fit])
        converged &= not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        x_score, y_score = folds[score]
        correct += int((probe.predict(x_score) == y_score).sum())
    return 100.0 * correct / (2 * n), converged


@dataclass(frozen=True)
class ProbeRows:
    """The rows of one probe (:func:`probe_rows`).

    Attributes:
        task: ``forgotten-class`` or ``membership``.
        positives: Inputs of the positive rows (forgotten-class test rows, or forget rows).
        negatives: Inputs of the negative rows (test rows of other classes, or test rows).
        positive_rows: Their row indices, into the test rows (``forgotten-class``) or the
            training rows (``membership``), ascending.
        negative_rows: The negatives' indices into the test rows, ascending.
    """

    task: str
    positives: torch.Tensor
    negatives: torch.Tensor
    positive_rows: np.ndarray
    negative_rows: np.ndarray


def probe_rows(
    data: TensorData, split: Split, *, seed: int = 0, max_per_side: int = PROBE_MAX_PER_SIDE
) -> ProbeRows:
    """The probe's task and its rows.

    The same for every model of a seed (it depends only on the data, the split and the seed), so
    the original, the unlearned model, the oracle and the random-init network are probed on the
    same rows. See the module docstring for the two tasks and the draw.

    Raises:
        CausalUnlearnError: ``too-little-data-for-probe`` when a side has fewer than
            :data:`MIN_PROBE_ROWS` rows.
    """
    y_test = data.test_y.cpu().numpy()
    if split.forgotten_classes:
        task = "forgotten-class"
        in_class = np.isin(y_test, np.asarray(split.forgotten_classes))
        pos_x, pos_rows = data.test_x, np.flatnonzero(in_class)
        neg_rows = np.flatnonzero(~in_class)
    else:
        task = "membership"
        pos_x, pos_rows = data.train_x, np.asarray(split.forget, dtype=np.int64)
        neg_rows = np.arange(len(y_test))
    n = min(len(pos_rows), len(neg_rows), max_per_side)
    n -= n % 2
    if n < MIN_PROBE_ROWS:
        raise CausalUnlearnError(
            "too-little-data-for-probe",
            f"the {task} probe has {min(len(pos_rows), len(neg_rows))} rows on its smaller side;"
            f" it needs at least {MIN_PROBE_ROWS}",
            "use a scenario with more forget rows (or a class with more test rows)",
        )
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.choice(pos_rows, size=n, replace=False))
    neg = np.sort(rng.choice(neg_rows, size=n, replace=False))
    return ProbeRows(task, pos_x[torch.as_tensor(pos)], data.test_x[torch.as_tensor(neg)], pos, neg)


def representation_features(
    model: nn.Module,
    x: torch.Tensor,
    *,
    layer: str = REPRESENTATION_ALIAS,
    device: torch.device | str | None = None,
    batch_size: int = FEATURE_BATCH,
) -> tuple[np.ndarray, str]:
    """The output of ``layer`` of the frozen ``model`` on every row of ``x`` (``N×D`` float64)
    and the module path it was read from.

    Each batch runs through :func:`causalunlearn.metrics.accuracy.predict` (eval mode,
    inference mode, the run's numerics) with a forward hook on the layer.

    Raises:
        ModelError: ``missing-representation-layer`` and the other errors of
            :func:`~causalunlearn.models.representation.capture_representation`.
    """
    from causalunlearn.metrics.accuracy import predict

    parts = []
    with capture_representation(model, layer) as capture:
        for start in range(0, len(x), batch_size):
            predict(model, x[start : start + batch_size], device=device, batch_size=batch_size)
            parts.append(capture.value.detach().to("cpu", torch.float64).numpy().copy())
    width = parts[0].shape[1] if parts else 0
    return (np.concatenate(parts) if parts else np.zeros((0, width))), capture.path


def representation_probe(
    model: nn.Module,
    data: TensorData,
    split: Split,
    *,
    seed: int = 0,
    layer: str = REPRESENTATION_ALIAS,
    device: torch.device | str | None = None,
    max_per_side: int = PROBE_MAX_PER_SIDE,
) -> ProbeResult:
    """Probe ``model``'s representation for the forgotten class or for membership (module
    docstring); seeded and deterministic.

    Args:
        model: The model (not changed; its train/eval flags are restored).
        data: The dataset.
        split: The forget / retain split (its forgotten classes choose the task).
        seed: Seeds the rows drawn and the halves.
        layer: The representation layer: a module path or ``"representation"`` (the model's
            declared ``representation_layer``).
        device: Where the model runs (default: its parameters' device).
        max_per_side: At most this many rows per side.

    Raises:
        CausalUnlearnError: ``too-little-data-for-probe``; ModelError
            ``missing-representation-layer``.
    """
    rows = probe_rows(data, split, seed=seed, max_per_side=max_per_side)
    f_pos, path = representation_features(model, rows.positives, layer=layer, device=device)
    f_neg, _ = representation_features(model, rows.negatives, layer=layer, device=device)
    accuracy, converged = probe_accuracy(f_pos, f_neg, seed=seed)
    return ProbeResult(accuracy, rows.task, len(f_pos), f_pos.shape[1], path, converged)


def random_init_probe(
    model_name: str,
    data: TensorData,
    split: Split,
    *,
    seed: int = 0,
    layer: str = REPRESENTATION_ALIAS,
    device: torch.device | str | None = None,
    max_per_side: int = PROBE_MAX_PER_SIDE,
) -> ProbeResult:
    """The probe's floor: :func:`representation_probe` of a randomly initialised network of the
    same architecture (``build_model(model_name, ..., seed=seed)``: the weights the original
    started from), on the same rows. What a linear probe reads from random features of the input
    is what the input alone carries, without any training."""
    from causalunlearn.models.zoo import build_model

    net = build_model(model_name, data.num_classes, data.input_shape, seed=seed, device=device)
    return representation_probe(
        net, data, split, seed=seed, layer=layer, device=device, max_per_side=max_per_side
    )
