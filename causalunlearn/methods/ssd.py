"""SSD: Selective Synaptic Dampening (Foster, Brintrup, Schoepf, AAAI 2024, arXiv 2308.07707).

A non-training unlearning method: no loss is minimised, each weight is at most scaled down once.

1. Importance: the diagonal of the Fisher information, estimated as in the official code
   (``ParameterPerturber.calc_importance``, github.com/if-loops/selective-synaptic-dampening,
   itself adapted from Avalanche): the data are cut into consecutive batches (not shuffled), and

       I[θ] = (1 / n_batches) · Σ_batches (∂ CE_batch / ∂θ)²

   with ``CE_batch`` the batch-mean cross-entropy of the model's logits and the rows' labels, the
   model in eval mode. ``I_f`` is measured on the forget set, ``I_D`` on the full training data
   D (retain rows then forget rows, as the official ``ConcatDataset((retain, forget))``).
2. Selection: the weights with ``I_f > α · I_D``.
3. Dampening: each selected weight is multiplied by ``β = min(λ · I_D / I_f, 1)``; every other
   weight is left exactly as it is (``ParameterPerturber.modify_weight`` with the official
   ``exponent = 1`` and ``lower_bound = 1``).

The paper's and code's defaults: α = 10 (``selection_weighting``), λ = 1
(``dampening_constant``), batch size 64 (the ``-b`` default of ``forget_full_class_main.py``).

torch is imported inside the functions, so loading and validating a method entry file does not
import it (the registry imports this module to read :data:`PARAMS`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from causalunlearn.errors import DataError
from causalunlearn.methods.registry import Param, register_method

if TYPE_CHECKING:
    import torch
    from torch import nn

    from causalunlearn.data import TensorData
    from causalunlearn.data.splits import Split

#: SSD's declared parameters (a method entry may set only these).
PARAMS = {
    "alpha": Param(
        float,
        10.0,
        "selection weighting α: a weight is dampened where I_f > α·I_D",
        minimum=0.0,
    ),
    "lambda": Param(
        float,
        1.0,
        "dampening constant λ: a selected weight is multiplied by min(λ·I_D/I_f, 1)",
        minimum=0.0,
    ),
    "batch_size": Param(int, 64, "rows per batch of the importance passes", minimum=1),
    "full_data_rows": Param(
        int,
        None,
        "rows of the training data D used for I_D (a seeded uniform subset, in D's order); "
        "empty: all retain + forget rows, as the official code",
        optional=True,
        minimum=1,
    ),
    "batch_order": Param(
        str,
        "class",
        "row order of the (unshuffled) importance batches: 'class' = rows grouped by class in "
        "class order (D: retain rows, then forget rows), as the official class-forgetting code "
        "builds its data sets; 'index' = training-index order",
        choices=("class", "index"),
    ),
}


def fisher_importance(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    bar: Any = None,
) -> list[torch.Tensor]:
    """The diagonal Fisher importance of every trainable parameter of ``model`` on ``(x, y)``.

    ``I[θ] = (1/n_batches) · Σ_b (∂ CE_b/∂θ)²``, ``CE_b`` the batch-mean cross-entropy of batch
    ``b`` (consecutive rows, the last batch may be smaller), as SSD's official
    ``calc_importance``. The model is put in eval mode (as the official code does before it) and
    is not changed; a parameter that gets no gradient has importance 0.

    Args:
        model: A module whose ``forward(x)`` returns logits.
        x: Inputs, on the model's device.
        y: Labels, int64.
        batch_size: Rows per batch.
        bar: A progress bar to advance by one per batch (optional).

    Returns:
        One tensor per parameter of ``[p for p in model.parameters() if p.requires_grad]``.
    """
    import torch
    import torch.nn.functional as F

    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    importance = [torch.zeros_like(p) for p in params]
    n_batches = math.ceil(x.shape[0] / batch_size)
    for start in range(0, x.shape[0], batch_size):
        loss = F.cross_entropy(model(x[start : start + batch_size]), y[start : start + batch_size])
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for total, grad in zip(importance, grads, strict=True):
            if grad is not None:
                total += grad.pow(2)
        if bar is not None:
            bar.update(1)
    return [total / n_batches for total in importance]


def dampen_(
    params: list[torch.Tensor],
    forget_importance: list[torch.Tensor],
    full_importance: list[torch.Tensor],
    *,
    alpha: float,
    lam: float,
) -> int:
    """SSD's selection and dampening, in place: ``θ ← β·θ`` where ``I_f > α·I_D``.

    ``β = min(λ·I_D / I_f, 1)`` (official ``modify_weight``, exponent 1, bound 1). Selected
    weights have ``I_f > α·I_D ≥ 0``, so ``I_f > 0`` and β is finite. Every other weight is not
    written to.

    Returns:
        The number of selected (dampened) weights.
    """
    import torch

    selected = 0
    with torch.no_grad():
        for p, forget, full in zip(params, forget_importance, full_importance, strict=True):
            where = forget > full * alpha
            beta = (full[where] * lam / forget[where]).clamp(max=1.0)
            p[where] = p[where] * beta
            selected += int(where.sum())
    return selected


def importance_rows(
    split: Split, labels: Any, order: str, full_rows: int | None, seed: int
) -> tuple[Any, Any]:
    """Training indices of the forget set and of D, in the order of the importance batches.

    D is the retain rows followed by the forget rows, as the official code's
    ``ConcatDataset((retain, forget))``. ``order="class"``: within each of those parts rows are
    grouped by label in class order (stable, so by index within a class), as the official code
    builds its class-by-class lists; ``"index"``: training-index order. With ``full_rows``, D is
    a seeded uniform subset of that many rows, kept in the same order.
    """
    import numpy as np

    labels = np.asarray(labels)
    parts = [np.array(split.retain), np.array(split.forget)]  # copies: a Split is read-only
    if order == "class":
        parts = [p[np.argsort(labels[p], kind="stable")] for p in parts]
    full = np.concatenate(parts)
    if full_rows is not None and full_rows < full.shape[0]:
        rng = np.random.default_rng(seed)
        full = full[np.sort(rng.choice(full.shape[0], size=full_rows, replace=False))]
    return parts[1], full


@register_method("ssd", params=PARAMS)
def ssd(
    model: nn.Module,
    data: TensorData,
    split: Split,
    params: dict[str, Any],
    *,
    seed: int = 0,
    device: torch.device | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Selective Synaptic Dampening of ``model`` (edited in place) for ``split.forget``.

    Args:
        model: The model to edit (a copy of the original, on ``device``).
        data: The dataset (tensors on ``device``).
        split: Forget / retain indices.
        params: ``alpha``, ``lambda``, ``batch_size``, ``full_data_rows`` (see :data:`PARAMS`).
        seed: Seed of the subset of D when ``full_data_rows`` is set.
        device: Where the importances are computed (default: the data's device).
        progress: Show a progress bar over the importance batches.

    Returns:
        ``alpha``, ``lambda``, ``batch_size``, ``forget_rows``, ``full_data_rows`` (rows of D
        used for ``I_D``), ``parameters`` (weights considered), ``dampened`` and
        ``dampened_fraction``.

    Raises:
        DataError: ``empty-forget-set`` when the split has no forget row.
    """
    import torch

    from causalunlearn.progress import progress_bar

    if len(split.forget) == 0:
        raise DataError("empty-forget-set", "SSD needs forget rows", "check the scenario")
    device = torch.device(device) if device is not None else data.train_x.device
    batch = int(params["batch_size"])
    forget_rows, full_rows = importance_rows(
        split,
        data.train_y.cpu().numpy(),
        params["batch_order"],
        params["full_data_rows"],
        seed,
    )
    forget = torch.as_tensor(forget_rows, device=device)
    full = torch.as_tensor(full_rows, device=device)
    x_f, y_f = data.train_x[forget].to(device), data.train_y[forget].to(device)
    x_d, y_d = data.train_x[full].to(device), data.train_y[full].to(device)
    total = math.ceil(len(forget) / batch) + math.ceil(len(full) / batch)
    with progress_bar(total=total, desc="ssd importance", enabled=progress, leave=False) as bar:
        forget_importance = fisher_importance(model, x_f, y_f, batch_size=batch, bar=bar)
        full_importance = fisher_importance(model, x_d, y_d, batch_size=batch, bar=bar)
    weights = [p for p in model.parameters() if p.requires_grad]
    dampened = dampen_(
        weights,
        forget_importance,
        full_importance,
        alpha=float(params["alpha"]),
        lam=float(params["lambda"]),
    )
    count = sum(p.numel() for p in weights)
    return {
        "alpha": float(params["alpha"]),
        "lambda": float(params["lambda"]),
        "batch_size": batch,
        "forget_rows": len(forget),
        "full_data_rows": len(full),
        "batch_order": params["batch_order"],
        "parameters": count,
        "dampened": dampened,
        "dampened_fraction": dampened / count if count else 0.0,
    }
