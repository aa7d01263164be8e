"""Per-row scores of a classifier's outputs: probabilities, confidence, entropy, loss.

The scalar features of the membership-inference attacks in
:mod:`causalunlearn.metrics.mia_more` and the inputs of
:func:`causalunlearn.metrics.gaps.activation_distance`. Every function takes the model's
**logits** by default (``from_logits=True``; softmax computed here in float64) or its softmax
**probabilities** (``from_logits=False``; rows must be finite, non-negative and sum to 1).
All results are float64 numpy arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.special import xlogy

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics.accuracy import _as_labels
from causalunlearn.metrics.mia import _as_probabilities

_TINY = np.finfo(np.float64).tiny
"""Smallest positive float64: a probability of exactly 0 is read as this in a logarithm."""


def softmax_probabilities(
    outputs: Any, *, from_logits: bool = True, name: str = "outputs"
) -> np.ndarray:
    """Softmax probabilities ``p[i, c]`` of each row (``softmax(logits)`` or the input itself).

    Args:
        outputs: ``N×C`` logits (``from_logits=True``) or probabilities, ``C ≥ 2``.
        from_logits: Whether ``outputs`` are logits.
        name: Name of the argument, for error messages.

    Returns:
        ``N×C`` float64 probabilities.

    Raises:
        CausalUnlearnError: ``invalid-predictions`` (logits not ``N×C`` with ``C ≥ 2``, or not
            finite), ``not-probabilities``, ``invalid-from-logits``.
    """
    return _probs_and_log_probs(outputs, from_logits, name)[0]


def true_label_confidence(outputs: Any, y: Any, *, from_logits: bool = True) -> np.ndarray:
    """Confidence in the true label: ``conf[i] = p[i, y[i]]``, in ``[0, 1]``.

    The feature of SalUn's MIA-efficacy (``torch.gather(prob, 1, labels)`` in
    ``evaluation/SVC_MIA.py`` of github OPTML-Group/Unlearn-Sparse and Unlearn-Saliency).

    Args:
        outputs: ``N×C`` logits or probabilities.
        y: ``N`` integer labels in ``[0, C)``.
        from_logits: Whether ``outputs`` are logits.

    Returns:
        ``N`` float64 confidences.

    Raises:
        CausalUnlearnError: as :func:`softmax_probabilities`, and ``invalid-labels``,
            ``length-mismatch``.
    """
    probs, _ = _probs_and_log_probs(outputs, from_logits, "outputs")
    labels = _labels_for(y, probs.shape, "y")
    return probs[np.arange(len(labels)), labels]


def prediction_entropy(outputs: Any, *, from_logits: bool = True) -> np.ndarray:
    """Shannon entropy of each softmax row in nats: ``H[i] = −Σ_c p[i, c] · ln p[i, c]``.

    ``0 · ln 0 = 0``; values lie in ``[0, ln C]``. The feature of Bad-Teacher's attack
    (``entropy`` in ``metrics.py`` of github vikram2000b/bad-teaching-unlearning).

    Args:
        outputs: ``N×C`` logits or probabilities.
        from_logits: Whether ``outputs`` are logits.

    Returns:
        ``N`` float64 entropies.

    Raises:
        CausalUnlearnError: as :func:`softmax_probabilities`.
    """
    probs, log_probs = _probs_and_log_probs(outputs, from_logits, "outputs")
    if from_logits:
        # log_softmax is finite, so p · ln p is 0 (not NaN) where p underflows to 0.
        return -(probs * log_probs).sum(axis=1)
    return -xlogy(probs, probs).sum(axis=1)


def cross_entropy_per_row(outputs: Any, y: Any, *, from_logits: bool = True) -> np.ndarray:
    """Per-row cross-entropy loss: ``ℓ[i] = −ln p[i, y[i]]`` (``reduction="none"``).

    From logits this is ``−log_softmax(logits)[i, y[i]]`` in float64, as
    ``nn.CrossEntropyLoss(reduction="none")`` in the NeurIPS 2023 unlearning challenge's starting
    kit. From probabilities a probability of exactly 0 is read as the smallest positive float64,
    so the loss is at most ``−ln(2.2e−308) ≈ 708.4`` instead of infinite.

    Args:
        outputs: ``N×C`` logits or probabilities.
        y: ``N`` integer labels in ``[0, C)``.
        from_logits: Whether ``outputs`` are logits.

    Returns:
        ``N`` float64 losses, ``≥ 0``.

    Raises:
        CausalUnlearnError: as :func:`true_label_confidence`.
    """
    probs, log_probs = _probs_and_log_probs(outputs, from_logits, "outputs")
    labels = _labels_for(y, probs.shape, "y")
    return -log_probs[np.arange(len(labels)), labels]


# --------------------------------------------------------------------------------------------------
# Conversions


def _probs_and_log_probs(
    outputs: Any, from_logits: bool, name: str
) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(from_logits, bool):
        raise CausalUnlearnError(
            "invalid-from-logits",
            f"from_logits must be True or False, got {from_logits!r}",
            "from_logits=True for logits, False for softmax probabilities",
        )
    if not from_logits:
        probs = np.clip(_as_probabilities(outputs, name), 0.0, 1.0)
        return probs, np.log(np.maximum(probs, _TINY))
    if isinstance(outputs, torch.Tensor):
        logits = outputs.detach().cpu().double()
    else:
        logits = torch.as_tensor(np.asarray(outputs, dtype=np.float64))
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise CausalUnlearnError(
            "invalid-predictions",
            f"{name} must be N×C logits with C ≥ 2, got shape {tuple(logits.shape)}",
            "pass the model's logits, one row per input (or from_logits=False for probabilities)",
        )
    if not bool(torch.isfinite(logits).all()):
        raise CausalUnlearnError(
            "invalid-predictions",
            f"{name} holds non-finite logits",
            "check the model for NaN/inf outputs before evaluating it",
        )
    log_probs = torch.log_softmax(logits, dim=1).numpy()
    return np.exp(log_probs), log_probs


def _labels_for(y: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    labels = _as_labels(y).numpy()
    n_rows, n_classes = shape
    if len(labels) != n_rows:
        raise CausalUnlearnError(
            "length-mismatch",
            f"{n_rows} output rows but {len(labels)} labels in {name}",
            "pass the outputs and labels of the same rows, in the same order",
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise CausalUnlearnError(
            "invalid-labels",
            f"{name} holds labels in [{labels.min()}, {labels.max()}], but the outputs have"
            f" {n_classes} classes",
            f"labels must lie in [0, {n_classes - 1}]",
        )
    return labels
