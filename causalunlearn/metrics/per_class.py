"""Per-class accuracy and confusion matrices of one model, on the forget, retain and test rows.

A mean accuracy hides *where* the rows go: a class-removal method can reach the oracle's
forget accuracy by sending every forgotten row to one neighbour class, or keep the test accuracy
while one retained class collapses. The confusion matrix shows it::

    M[i, j] = |{rows r : label(r) = i and argmax_c logits(r, c) = j}|      (rows: true class)
    per-class accuracy[i] = 100 · M[i, i] / Σ_j M[i, j]                   (NaN: no row of i)

The matrix is scikit-learn's :func:`sklearn.metrics.confusion_matrix` with ``labels =
0..C−1`` (so a class with no row still has its row and column). Requested by reviewers of
unlearning papers next to the mean accuracies (e.g. the per-class reports of the unlearning
benchmarks surveyed in issue 15); the definitions are the textbook ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics.accuracy import _as_index, _as_labels, _as_predictions, _same_length

#: The row sets of :func:`per_class_report`, in order (as the forget / retain / test accuracies).
PER_CLASS_PARTS = ("forget", "retain", "test")


def confusion(logits_or_preds: Any, y: Any, num_classes: int) -> np.ndarray:
    """The ``C×C`` confusion matrix (int64): rows are the true class, columns the prediction.

    Args:
        logits_or_preds: ``N×C`` logits or ``N`` integer predicted labels.
        y: ``N`` integer labels.
        num_classes: ``C``; every label and prediction must lie in ``0..C−1``.

    Raises:
        CausalUnlearnError: ``invalid-predictions``, ``invalid-labels``, ``length-mismatch``,
            ``label-out-of-range`` (a label or prediction outside ``0..C−1``).
    """
    from sklearn.metrics import confusion_matrix

    preds_t, labels_t = _as_predictions(logits_or_preds), _as_labels(y)
    _same_length(preds_t, labels_t)
    preds, labels = preds_t.numpy(), labels_t.numpy()
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise CausalUnlearnError(
            "label-out-of-range",
            f"num_classes must be a whole number of at least 1, got {num_classes!r}",
            "pass the dataset's number of classes (data.num_classes)",
        )
    for name, values in (("label", labels), ("prediction", preds)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise CausalUnlearnError(
                "label-out-of-range",
                f"a {name} lies outside 0..{num_classes - 1}"
                f" (values {int(values.min())}..{int(values.max())})",
                "pass the logits and labels of a model with num_classes outputs",
            )
    if labels.size == 0:  # scikit-learn refuses empty inputs; the matrix of no rows is zero
        return np.zeros((num_classes, num_classes), dtype=np.int64)
    return confusion_matrix(labels, preds, labels=np.arange(num_classes)).astype(np.int64)


def per_class_accuracy(matrix: Any) -> list[float]:
    """``100 · M[i, i] / Σ_j M[i, j]`` per class ``i`` of a confusion matrix (NaN: no row)."""
    m = np.asarray(matrix, dtype=np.float64)
    support = m.sum(axis=1)
    return [100.0 * m[i, i] / support[i] if support[i] > 0 else math.nan for i in range(m.shape[0])]


def per_class_report(
    logits_train: Any,
    y_train: Any,
    forget: Any,
    retain: Any,
    logits_test: Any,
    y_test: Any,
    num_classes: int,
) -> dict[str, dict[str, list[Any]]]:
    """Confusion matrix, per-class accuracy and support of the forget, retain and test rows.

    Args:
        logits_train: Logits (or predicted labels) on every training row.
        y_train: Training labels.
        forget: Forget row indices (or a mask) into the training rows.
        retain: Retain row indices (or a mask).
        logits_test: Logits (or predicted labels) on the test rows.
        y_test: Test labels.
        num_classes: The number of classes ``C``.

    Returns:
        ``{part: {"confusion": C×C list of ints, "accuracy": C floats (percent, NaN where the
        part has no row of the class), "support": C ints}}`` for each part of
        :data:`PER_CLASS_PARTS` (JSON data).

    Raises:
        CausalUnlearnError: as :func:`confusion`, and ``index-out-of-range`` / ``invalid-index``
            for bad row indices.
    """
    train_preds = _as_predictions(logits_train)
    train_labels = _as_labels(y_train)
    _same_length(train_preds, train_labels)
    rows = {
        "forget": _as_index(forget, len(train_labels), "forget"),
        "retain": _as_index(retain, len(train_labels), "retain"),
    }
    parts = {name: (train_preds[idx], train_labels[idx]) for name, idx in rows.items()}
    parts["test"] = (_as_predictions(logits_test), _as_labels(y_test))
    report: dict[str, dict[str, list[Any]]] = {}
    for name in PER_CLASS_PARTS:
        matrix = confusion(*parts[name], num_classes)
        report[name] = {
            "confusion": matrix.tolist(),
            "accuracy": per_class_accuracy(matrix),
            "support": matrix.sum(axis=1).tolist(),
        }
    return report
