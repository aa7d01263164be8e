"""Relearning: how fast does fine-tuning on the retain data bring the forgotten data back?

An unlearned model that only hides the forget set (rather than removing what it learned from it)
recovers its forget accuracy after a few steps of ordinary training on the *retain* data.
:func:`relearning_curve` measures accuracies along such a fine-tuning (the CaMU paper's
relearning study: one epoch of Adam, learning rate 1e-3, batch size 32, accuracies every few
batches) and :func:`relearn_time` reads off the first step at which the forget accuracy reaches a
threshold.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from causalunlearn.errors import CausalUnlearnError, DataError, RunError
from causalunlearn.metrics.accuracy import _as_labels, _model_device, accuracy, predict
from causalunlearn.metrics.mia import _check_seed


def relearn_time(
    accuracies: Sequence[float],
    threshold: float,
    *,
    steps: Sequence[int] | None = None,
    cap: int | None = None,
) -> int | None:
    """First optimiser step at which the forget accuracy reaches ``threshold``.

    ``relearn_time = min {steps[i] : accuracies[i] ≥ threshold (and steps[i] ≤ cap)}``, where
    ``accuracies[i]`` is the forget accuracy (percent) after ``steps[i]`` optimiser steps of
    fine-tuning on retain data (default ``steps = 0, 1, 2, …``: one point before any step, then
    one per step). When no point reaches the threshold the result is *censored*: ``None``
    without a cap, ``cap + 1`` with one (a number that can be averaged over seeds, and that reads
    "more than ``cap`` steps"). With points every ``N`` steps the result is exact to within
    ``N`` steps (the threshold was first met after the previous point). Direction: higher = the
    forgotten data is harder to relearn (compare with the retrained oracle's relearn time, which
    never saw the forget set). Source: relearn time of Golatkar et al., "Eternal Sunshine of the
    Spotless Net", CVPR 2020, and of Chundawat et al., "Zero-Shot Machine Unlearning", IEEE TIFS
    2023 (their anamnesis index divides it by the oracle's); counted here in optimiser steps. A
    usual threshold is the original model's forget accuracy minus a tolerance, e.g. ``0.9 ·
    original``; the caller chooses it.

    Args:
        accuracies: Forget accuracies (percent), one per point of the curve.
        threshold: Accuracy (percent) that counts as relearned.
        steps: Optimiser steps of the points (strictly increasing non-negative integers);
            default ``range(len(accuracies))``. Pass ``curve["step"]`` of :func:`relearning_curve`.
        cap: Only points with ``step ≤ cap`` count; the curve must reach step ``cap``.

    Returns:
        The step, or ``cap + 1`` / ``None`` when the threshold is never reached.

    Raises:
        CausalUnlearnError: ``invalid-accuracies`` (not finite numbers), ``invalid-steps``,
            ``length-mismatch``, ``invalid-threshold``, ``invalid-cap``,
            ``curve-shorter-than-cap`` (not reached, and the curve ends before ``cap``).
    """
    accs = [_finite(a, f"accuracies[{i}]", "invalid-accuracies") for i, a in enumerate(accuracies)]
    threshold = _finite(threshold, "threshold", "invalid-threshold")
    points = list(range(len(accs))) if steps is None else _step_list(steps)
    if len(points) != len(accs):
        raise CausalUnlearnError(
            "length-mismatch",
            f"{len(accs)} accuracies but {len(points)} steps",
            "pass one step per accuracy, e.g. steps=curve['step']",
        )
    if cap is not None:
        if isinstance(cap, bool) or not isinstance(cap, numbers.Integral) or cap < 0:
            raise CausalUnlearnError(
                "invalid-cap",
                f"cap must be a non-negative integer or None, got {cap!r}",
                "e.g. cap=500",
            )
        cap = int(cap)
    for step, acc in zip(points, accs, strict=True):
        if cap is not None and step > cap:
            break
        if acc >= threshold:
            return step
    if cap is None:
        return None
    if not points or points[-1] < cap:
        raise CausalUnlearnError(
            "curve-shorter-than-cap",
            f"the threshold {threshold} is not reached, but the curve ends at step"
            f" {points[-1] if points else None}, before cap = {cap}",
            "measure the curve up to the cap (more epochs), or lower the cap",
        )
    return cap + 1


def relearning_curve(
    model: nn.Module,
    x_retain: torch.Tensor,
    y_retain: torch.Tensor,
    evaluators: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    *,
    steps_per_point: int,
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int,
    max_steps: int | None = None,
    eval_batch_size: int | None = None,
) -> dict[str, list[Any]]:
    """Accuracies along a fine-tuning of a **copy** of ``model`` on the retain data.

    The copy is trained with ``torch.optim.Adam(lr)`` (fresh state) on the mean cross-entropy of
    mini-batches of ``(x_retain, y_retain)``, in train mode, for ``epochs`` epochs. Each epoch
    visits the rows in the order ``torch.randperm(N, generator=g)``, one
    ``g = torch.Generator().manual_seed(seed)`` serving all epochs, in ``ceil(N / batch_size)``
    batches (the last partial batch kept). With ``max_steps``, training stops after that many
    steps (e.g. 300 batches of a longer epoch).

    Accuracies (percent: :func:`~causalunlearn.metrics.accuracy` of
    :func:`~causalunlearn.metrics.predict`, in eval mode) on every evaluator are taken before the
    first step (step 0), after every ``steps_per_point``-th step and after the last step.
    ``model`` itself is not changed. Training runs on the device of ``model``'s parameters.
    Layers with their own randomness (dropout) draw from PyTorch's global RNG, as in the
    project's training loop; seed it too for bit-identical curves from such models.

    Source: the relearning study of the CaMU paper (Shen et al., "CaMU: Disentangling Causal
    Effects in Deep Model Unlearning", SDM 2024): fine-tuning the unlearned model on retain data
    for 1 epoch with Adam, learning rate 1e-3, batch size 32, plotting forget / test accuracy
    along the way. Read the relearn time off the curve with :func:`relearn_time`.

    Args:
        model: The model to start from (e.g. the unlearned model); left unchanged.
        x_retain: Retain inputs, ``N×…``.
        y_retain: Retain labels, ``N``.
        evaluators: Name → ``(x, y)`` to measure, e.g. ``{"forget": (x_f, y_f), "test": …}``;
            at least one; ``"step"`` is reserved.
        steps_per_point: Optimiser steps between two points (``≥ 1``).
        epochs: Passes over the retain data.
        lr: Adam's learning rate.
        batch_size: Rows per optimiser step.
        seed: Seed of the shuffling.
        max_steps: Optional cap on the optimiser steps (``≥ 1``); default: all ``epochs``.
        eval_batch_size: Rows per forward pass when measuring (default: ``predict``'s).

    Returns:
        ``{"step": [0, …], name: [accuracy at each step, …] for each evaluator}``, all lists of
        the same length; steps are ints, accuracies floats in percent.

    Raises:
        CausalUnlearnError: ``invalid-steps-per-point``, ``invalid-epochs``, ``invalid-lr``,
            ``invalid-batch-size``, ``invalid-max-steps``, ``invalid-eval-batch-size``,
            ``invalid-seed``, ``no-evaluators``,
            ``invalid-evaluator-name``, ``length-mismatch``, ``invalid-labels``,
            ``no-trainable-parameters``.
        DataError: ``empty-retain-set``.
        RunError: ``non-finite-loss``.
    """
    for name, value in (
        ("steps_per_point", steps_per_point),
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("eval_batch_size", 1 if eval_batch_size is None else eval_batch_size),
        ("max_steps", 1 if max_steps is None else max_steps),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CausalUnlearnError(
                f"invalid-{name.replace('_', '-')}",
                f"{name} must be a positive integer, got {value!r}",
                f"e.g. {name}=1",
            )
    if not _is_number(lr) or not math.isfinite(lr) or lr <= 0:
        raise CausalUnlearnError(
            "invalid-lr", f"lr must be a positive finite number, got {lr!r}", "e.g. lr=1e-3"
        )
    seed = _check_seed(seed)
    if not evaluators:
        raise CausalUnlearnError(
            "no-evaluators",
            "relearning_curve needs at least one (x, y) to measure",
            "e.g. evaluators={'forget': (x_forget, y_forget)}",
        )
    if "step" in evaluators:
        raise CausalUnlearnError(
            "invalid-evaluator-name",
            "the evaluator name 'step' is reserved for the step column",
            "rename it, e.g. 'forget'",
        )
    x_retain = torch.as_tensor(x_retain)
    y_retain = _as_labels(y_retain)
    if len(x_retain) != len(y_retain):
        raise CausalUnlearnError(
            "length-mismatch",
            f"{len(x_retain)} retain inputs but {len(y_retain)} labels",
            "pass the inputs and labels of the same rows",
        )
    if len(x_retain) == 0:
        raise DataError(
            "empty-retain-set",
            "the retain set is empty, so there is nothing to fine-tune on",
            "pass the retain rows of the split",
        )

    device = _model_device(model)
    learner = copy.deepcopy(model)
    params = [p for p in learner.parameters() if p.requires_grad]
    if not params:
        raise CausalUnlearnError(
            "no-trainable-parameters",
            f"{type(model).__name__} has no parameter with requires_grad=True",
            "unfreeze the parameters to fine-tune",
        )
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    curve: dict[str, list[Any]] = {"step": [], **{name: [] for name in evaluators}}

    def measure(step: int) -> None:
        curve["step"].append(step)
        for name, (x, y) in evaluators.items():
            logits = predict(learner, x, batch_size=eval_batch_size, device=device)
            curve[name].append(accuracy(logits, y))

    measure(0)
    learner.train()
    step = 0
    last = epochs * math.ceil(len(x_retain) / batch_size)
    if max_steps is not None:
        last = min(last, max_steps)
    for epoch in range(epochs):
        if step == last:
            break
        order = torch.randperm(len(x_retain), generator=generator)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            inputs = x_retain[rows.to(x_retain.device)].to(device)
            targets = y_retain[rows].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(learner(inputs), targets)
            if not bool(torch.isfinite(loss)):
                raise RunError(
                    "non-finite-loss",
                    f"the relearning loss is {loss.item()} at epoch {epoch}, step {step + 1}",
                    "lower lr, or check the model and retain data for NaN/inf",
                )
            loss.backward()
            optimizer.step()
            step += 1
            if step % steps_per_point == 0:
                measure(step)
            if step == last:
                break
    if curve["step"][-1] != step:
        measure(step)
    return curve


# --------------------------------------------------------------------------------------------------
# Helpers


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: Any, name: str, code: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise CausalUnlearnError(
            code, f"{name} = {value!r} is not a finite number", "pass accuracies in percent"
        )
    return number


def _step_list(steps: Sequence[int]) -> list[int]:
    points = list(steps)
    for i, step in enumerate(points):
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise CausalUnlearnError(
                "invalid-steps",
                f"steps[{i}] = {step!r} is not a non-negative integer",
                "pass optimiser step counts, e.g. curve['step']",
            )
        if i and step <= points[i - 1]:
            raise CausalUnlearnError(
                "invalid-steps",
                f"steps must increase strictly, but steps[{i - 1}] = {points[i - 1]} and"
                f" steps[{i}] = {step}",
                "pass the steps in the order they were measured",
            )
    return [int(step) for step in points]
