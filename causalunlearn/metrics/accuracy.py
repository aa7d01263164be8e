"""Predictions and accuracies (in **percent**, as the CaMU paper reports them).

Pure functions on logits (or predicted labels) and labels, plus :func:`predict` which turns a model
and inputs into logits. Source of the definitions: the official CaMU code
(github ShaofeiShen768/CaMU, ``CaMU/train.py::test`` and ``CaMU/main.py``), which reports
``100 · correct / total`` on the retain train data, the forget train data, the test set, the test
set restricted to the retained classes and the test set restricted to the forgotten class.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from causalunlearn.errors import CausalUnlearnError, ModelError
from causalunlearn.numerics import current as current_numerics

ACCURACY_REPORT_KEYS = (
    "retain_acc",
    "forget_acc",
    "test_acc",
    "test_retained_classes_acc",
    "test_forgotten_classes_acc",
)
"""The keys of :func:`accuracy_report`, in order."""


#: ``predict``'s rows per forward on the CPU (measured best: docs/performance.md).
CPU_BATCH = 256
#: ``predict``'s rows per forward on an accelerator.
DEVICE_BATCH = 1024


def predict(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    channels_last: bool | None = None,
) -> torch.Tensor:
    """Return the logits of ``model`` on every row of ``x``, on the CPU.

    The model runs in eval mode under :func:`torch.inference_mode`, batch by batch; afterwards
    every submodule gets back its own previous train/eval flag (so a model in train mode with a
    frozen batch-norm in eval mode comes back exactly so). The result is an ordinary tensor (not an
    inference tensor), so it may serve later as a fixed target in a loss.

    Args:
        model: A module whose ``forward(x)`` returns logits.
        x: Inputs, ``N×…`` (any device; array-likes are converted).
        batch_size: Rows per forward pass; default :data:`CPU_BATCH` (256) on the CPU and
            :data:`DEVICE_BATCH` (1024) on an accelerator. On the CPU the trained MNIST CNN ran
            at 16.1k rows/s at 256 and 7.9k at 1024 (2 threads, real test rows; the batch's
            activations then fit the cache; docs/performance.md, "Inference batch").
        device: Where to run; default: the device of the model's first parameter (CPU if none).
        channels_last: Run 4-D inputs (and the model) in the ``channels_last`` memory format
            (same numbers to float tolerance; faster for conv nets on CPU); the model's own
            layout is restored afterwards. Default: the run's
            :class:`~causalunlearn.numerics.CpuNumerics` (:func:`causalunlearn.numerics.current`).

    Returns:
        ``N×C`` logits on the CPU.

    Raises:
        CausalUnlearnError: ``invalid-batch-size``, ``invalid-input``.
        ModelError: ``model-output-not-tensor`` when the model returns something else.
    """
    if batch_size is None:
        batch_size = (
            CPU_BATCH
            if torch.device(device or _model_device(model)).type == "cpu"
            else DEVICE_BATCH
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise CausalUnlearnError(
            "invalid-batch-size",
            f"batch_size must be a positive integer, got {batch_size!r}",
            "e.g. batch_size=1024",
        )
    x = torch.as_tensor(x)
    if x.dim() == 0:
        raise CausalUnlearnError(
            "invalid-input",
            "predict needs a batch of inputs (N×…), got a scalar",
            "pass x with the rows as first dimension",
        )
    if device is None:
        device = _model_device(model)
    if channels_last is None:
        channels_last = current_numerics().channels_last
    channels_last = channels_last and x.dim() == 4
    modes = [(module, module.training) for module in model.modules()]
    chunks: list[torch.Tensor] = []
    layouts = _to_channels_last(model) if channels_last else []
    try:
        model.eval()
        with torch.inference_mode():
            # An empty input still runs once (on zero rows) so the result has the class dimension.
            starts = range(0, len(x), batch_size) if len(x) else [0]
            for start in starts:
                batch = x[start : start + batch_size].to(device)
                if channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                out = model(batch)
                if not isinstance(out, torch.Tensor):
                    raise ModelError(
                        "model-output-not-tensor",
                        f"{type(model).__name__}.forward returned {type(out).__name__}, not logits",
                        "make forward(x) return the logits tensor only",
                    )
                chunks.append(out.cpu())
    finally:
        for module, training in modes:
            module.training = training
        for tensor, data in layouts:  # the model's own memory layout back
            tensor.data = data
    # Concatenating outside inference mode yields a normal tensor.
    return torch.cat(chunks)


def _to_channels_last(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Put the model's 4-D parameters and buffers in ``channels_last``; return what to restore
    (each tensor and its previous storage, so nothing else about the model changes)."""
    changed = []
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.dim() == 4 and not tensor.is_contiguous(memory_format=torch.channels_last):
            before = tensor.data
            tensor.data = before.contiguous(memory_format=torch.channels_last)
            changed.append((tensor, before))
    return changed


def accuracy(logits_or_preds: Any, y: Any) -> float:
    """Accuracy in **percent**: ``100 · mean(argmax_c logits[i, c] == y[i])``.

    Source: ``CaMU/train.py::test`` (``100.0 * correct / total``).

    Args:
        logits_or_preds: ``N×C`` logits (or probabilities), or ``N`` integer predicted labels.
        y: ``N`` integer labels (integral floats accepted).

    Returns:
        A float in ``[0, 100]``; ``nan`` when there are no rows.

    Raises:
        CausalUnlearnError: ``invalid-predictions``, ``invalid-labels``, ``length-mismatch``.
    """
    preds = _as_predictions(logits_or_preds)
    labels = _as_labels(y)
    _same_length(preds, labels)
    if len(labels) == 0:
        return math.nan
    return 100.0 * (preds == labels).double().mean().item()


def class_restricted_accuracy(
    logits_or_preds: Any, y: Any, classes: int | Iterable[int], keep: bool = True
) -> float:
    """Accuracy in **percent** on the rows whose label is in ``classes`` (``keep=False``: is not).

    ``100 · mean_{i : y[i] ∈ classes} [argmax_c logits[i, c] == y[i]]`` (``∉`` for ``keep=False``).
    Source: ``CaMU/train.py::test(..., output_label)``; CaMU reports it on the test set for the
    retained classes (``keep=False`` with the forgotten classes) and the forgotten class
    (``keep=True``).

    Args:
        logits_or_preds: ``N×C`` logits or ``N`` predicted labels.
        y: ``N`` integer labels.
        classes: A class or classes.
        keep: Keep the rows of ``classes`` (True) or of every other class (False).

    Returns:
        A float in ``[0, 100]``; ``nan`` (no error) when no row is selected.

    Raises:
        CausalUnlearnError: ``invalid-predictions``, ``invalid-labels``, ``length-mismatch``.
    """
    preds = _as_predictions(logits_or_preds)
    labels = _as_labels(y)
    _same_length(preds, labels)
    wanted = torch.as_tensor(_as_class_list(classes), dtype=torch.long)
    mask = torch.isin(labels, wanted)
    if not keep:
        mask = ~mask
    return accuracy(preds[mask], labels[mask])


def accuracy_report(
    logits_train: Any,
    y_train: Any,
    split_forget_idx: Any,
    split_retain_idx: Any,
    logits_test: Any,
    y_test: Any,
    forgotten_classes: int | Iterable[int] | None,
) -> dict[str, float]:
    """The five accuracies of the CaMU paper, in **percent**.

    Keys (see :data:`ACCURACY_REPORT_KEYS`):

    * ``retain_acc``: accuracy on the retain train rows (all of them, not only the retain sample);
    * ``forget_acc``: accuracy on the forget train rows;
    * ``test_acc``: accuracy on the whole test set;
    * ``test_retained_classes_acc``: test accuracy on the classes not in ``forgotten_classes``;
    * ``test_forgotten_classes_acc``: test accuracy on the classes in ``forgotten_classes``.

    The last two are ``nan`` when no class was forgotten (``forgotten_classes`` empty or ``None``,
    e.g. random removal), where the official code does not report them either; an empty split also
    gives ``nan`` for its key. Source: ``CaMU/main.py`` (``acc_re_tr``, ``acc_fr_tr``, ``acc_ts``,
    ``acc_re_ts``, ``acc_fr_ts``).

    Args:
        logits_train: Logits (or predicted labels) on the whole training set, ``N_train×C``.
        y_train: Training labels, ``N_train``.
        split_forget_idx: Row indices (or a boolean mask) of the forget set in the training set.
        split_retain_idx: Row indices (or a boolean mask) of the retain set in the training set.
        logits_test: Logits (or predicted labels) on the test set.
        y_test: Test labels.
        forgotten_classes: The removed classes (class removal) or ``None``/empty (random removal).

    Returns:
        A dict of floats with exactly the keys above.

    Raises:
        CausalUnlearnError: ``index-out-of-range``, ``invalid-index``, ``length-mismatch``,
            ``invalid-predictions``, ``invalid-labels``.
    """
    train_preds = _as_predictions(logits_train)
    train_labels = _as_labels(y_train)
    _same_length(train_preds, train_labels)
    test_preds = _as_predictions(logits_test)
    test_labels = _as_labels(y_test)
    _same_length(test_preds, test_labels)
    forget = _as_index(split_forget_idx, len(train_labels), "split_forget_idx")
    retain = _as_index(split_retain_idx, len(train_labels), "split_retain_idx")
    classes = [] if forgotten_classes is None else _as_class_list(forgotten_classes)
    if classes:
        retained_acc = class_restricted_accuracy(test_preds, test_labels, classes, keep=False)
        forgotten_acc = class_restricted_accuracy(test_preds, test_labels, classes, keep=True)
    else:
        retained_acc = forgotten_acc = math.nan
    return {
        "retain_acc": accuracy(train_preds[retain], train_labels[retain]),
        "forget_acc": accuracy(train_preds[forget], train_labels[forget]),
        "test_acc": accuracy(test_preds, test_labels),
        "test_retained_classes_acc": retained_acc,
        "test_forgotten_classes_acc": forgotten_acc,
    }


# --------------------------------------------------------------------------------------------------
# Conversions


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _to_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    array = np.asarray(value)
    # Read-only arrays (e.g. a Split's indices) would make torch warn; copy those.
    return torch.as_tensor(array if array.flags.writeable else array.copy())


def _as_predictions(logits_or_preds: Any) -> torch.Tensor:
    values = _to_tensor(logits_or_preds)
    if values.dim() == 2:
        if values.shape[1] == 0:
            raise CausalUnlearnError(
                "invalid-predictions", "logits have zero columns", "pass N×C logits with C ≥ 1"
            )
        return values.argmax(dim=1)
    if values.dim() == 1 and not values.is_floating_point() and not values.is_complex():
        return values.long()
    raise CausalUnlearnError(
        "invalid-predictions",
        f"expected N×C logits or N integer predicted labels, got a {values.dim()}-d"
        f" {values.dtype} tensor of shape {tuple(values.shape)}",
        "pass the model's logits (e.g. from predict(model, x)) or their argmax",
    )


def _as_labels(y: Any) -> torch.Tensor:
    labels = _to_tensor(y)
    if labels.dim() != 1:
        raise CausalUnlearnError(
            "invalid-labels",
            f"labels must be 1-d, got shape {tuple(labels.shape)}",
            "pass one integer label per row",
        )
    if labels.is_floating_point():
        if not torch.equal(labels, labels.round()):
            raise CausalUnlearnError(
                "invalid-labels", "labels must be integers", "pass integer class labels"
            )
    elif labels.is_complex():
        raise CausalUnlearnError(
            "invalid-labels", "labels must be integers", "pass integer class labels"
        )
    return labels.long()


def _same_length(preds: torch.Tensor, labels: torch.Tensor) -> None:
    if len(preds) != len(labels):
        raise CausalUnlearnError(
            "length-mismatch",
            f"{len(preds)} predictions but {len(labels)} labels",
            "pass the logits and labels of the same rows, in the same order",
        )


def _as_class_list(classes: int | Iterable[int]) -> list[int]:
    if isinstance(classes, int | np.integer) and not isinstance(classes, bool):
        return [int(classes)]
    if isinstance(classes, torch.Tensor):
        return [int(c) for c in classes.reshape(-1).tolist()]
    return [int(c) for c in classes]


def _as_index(index: Any, size: int, name: str) -> torch.Tensor:
    idx = _to_tensor(index).reshape(-1) if not isinstance(index, range) else torch.tensor(index)
    if idx.dtype == torch.bool:
        if len(idx) != size:
            raise CausalUnlearnError(
                "invalid-index",
                f"{name} is a boolean mask of {len(idx)} rows, but there are {size}",
                "pass a mask over all training rows, or row indices",
            )
        return idx.nonzero().flatten()
    if idx.numel() == 0:
        return idx.long()
    if idx.is_floating_point() or idx.is_complex():
        raise CausalUnlearnError(
            "invalid-index", f"{name} must hold integer row indices", "pass integer row indices"
        )
    idx = idx.long()
    low, high = int(idx.min()), int(idx.max())
    if low < 0 or high >= size:
        raise CausalUnlearnError(
            "index-out-of-range",
            f"{name} holds indices in [{low}, {high}], but the training set has {size} rows",
            "index the same training set as logits_train / y_train",
        )
    return idx
