"""Trivial baselines: what any unlearning method must beat to be worth its cost.

``head-zero`` (class removal only): the classifier head's weights of the forgotten classes are
set to zero and their biases to a large negative value ``b`` (default −100); nothing else
changes and nothing is trained::

    W[c, :] ← 0,  bias[c] ← b          for every forgotten class c
    logit_c(x) = b   for every input x, so  argmax ≠ c  unless every other logit is below b

Its forget accuracy is 0 and its retain and test accuracies are the original's up to the rows
the original gave to a forgotten class (they now go to their next-best class). The
representation is the original's, untouched: a representation probe
(:mod:`causalunlearn.metrics.probe`) reads the forgotten class from it exactly as well as from
the original. A "do nothing" baseline needs no entry: it is the original, in every table.

This is the baseline reviewers of unlearning papers ask for (zeroing the forgotten class's head
row); a method whose output-level numbers do not beat it has shown only that it can mute a class.

torch is imported inside the functions, so loading a method entry file stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from causalunlearn.errors import ModelError, RunError
from causalunlearn.methods.registry import Param, register_method

if TYPE_CHECKING:
    import torch
    from torch import nn

    from causalunlearn.data import TensorData
    from causalunlearn.data.splits import Split

#: head-zero's declared parameters.
HEAD_ZERO_PARAMS = {
    "bias": Param(
        float,
        -100.0,
        "bias given to each forgotten class's logit (its weights are zeroed): e^-100 ≈ 4e-44, so"
        " the class's softmax probability is 0 to float32 precision",
    ),
}


def classifier_head(model: nn.Module, x: torch.Tensor) -> tuple[str, nn.Module]:
    """The module path and module of ``model``'s classifier head: the last module with weights
    that runs in a forward pass on ``x``, which must be an ``nn.Linear`` (with a bias) whose
    output is the model's logits.

    Found by running ``model`` once (eval mode, no gradients, flags restored) on ``x[:1]`` with a
    forward hook on every module that holds parameters of its own, so the order is the order of
    execution, not of registration.

    Raises:
        ModelError: ``no-linear-head`` naming the last layer when it is not a Linear, has no
            bias, or is followed by further computation (its output is not the logits).
    """
    import torch
    from torch import nn

    calls: list[tuple[str, nn.Module, torch.Tensor]] = []
    handles = []
    for path, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):

            def hook(mod, _inputs, output, path=path):
                calls.append((path, mod, output))

            handles.append(module.register_forward_hook(hook))
    modes = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            logits = model(x[:1])
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    if not calls:
        raise ModelError(
            "no-linear-head",
            f"{type(model).__name__} has no layer with weights",
            "head-zero needs a model whose last layer is an nn.Linear classifier head",
        )
    path, module, output = calls[-1]
    kind = type(module).__name__
    if not isinstance(module, nn.Linear):
        raise ModelError(
            "no-linear-head",
            f"the last layer of {type(model).__name__} ('{path}') is a {kind}, not a Linear"
            " classifier head",
            "head-zero is defined for a model whose logits come from an nn.Linear; use another"
            " method for this architecture",
        )
    if module.bias is None:
        raise ModelError(
            "no-linear-head",
            f"the classifier head '{path}' of {type(model).__name__} has no bias",
            "head-zero sets the forgotten classes' biases; give the head a bias"
            " (nn.Linear(..., bias=True))",
        )
    if not isinstance(logits, torch.Tensor) or not torch.equal(output, logits):
        raise ModelError(
            "no-linear-head",
            f"the output of '{path}' of {type(model).__name__} is not the model's logits (the"
            " forward changes it afterwards)",
            "head-zero needs logits that are the head's output as it is",
        )
    return path, module


@register_method("head-zero", params=HEAD_ZERO_PARAMS)
def head_zero(
    model: nn.Module,
    data: TensorData,
    split: Split,
    params: dict[str, Any],
    *,
    seed: int = 0,
    device: torch.device | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Zero the head's weights of the forgotten classes and set their biases to ``bias``.

    Args:
        model: The model to edit (a copy of the original, on ``device``).
        data: The dataset (tensors on ``device``).
        split: The forget / retain split; must remove whole classes.
        params: ``bias`` (see :data:`HEAD_ZERO_PARAMS`).
        seed: Unused (the method draws nothing).
        device: Unused (the model is already where it runs).
        progress: Unused (the method takes microseconds).

    Returns:
        ``head`` (the head's module path), ``classes`` (the forgotten classes) and ``bias``.

    Raises:
        RunError: ``class-removal-only`` when the split removes no whole class (random or
            per-class fractions).
        ModelError: ``no-linear-head`` (see :func:`classifier_head`).
    """
    import torch

    classes = list(split.forgotten_classes)
    if not classes:
        raise RunError(
            "class-removal-only",
            "head-zero is defined for class removal only; this split removes no whole class",
            "run it with a class scenario (e.g. --scenario class:0); for random removal there"
            " is no head row to zero",
        )
    path, head = classifier_head(model, data.train_x)
    if max(classes) >= head.out_features:
        raise ModelError(
            "no-linear-head",
            f"the classifier head '{path}' has {head.out_features} outputs, but class"
            f" {max(classes)} is to be removed",
            "the last Linear layer must have one output per class",
        )
    rows = torch.as_tensor(classes, device=head.weight.device)
    with torch.no_grad():
        head.weight[rows] = 0.0
        head.bias[rows] = float(params["bias"])
    return {"head": path, "classes": classes, "bias": float(params["bias"])}
