"""Executors of a compiled graph: the fast execution plan and the faithful reference.

:func:`~causalunlearn.engine.loop.run_schedule` iterates epochs, phases and batches; an *executor*
runs one stage step on one batch. Two exist, selected by ``executor=``:

``reference``
    The faithful path, shaped like the authors' loop: the batch's rows are gathered per stream,
    every stage runs one forward per (model, stream) on them (the frozen original too), and each
    step reads its loss and term values on the host (``float()``), checking for a non-finite
    loss before the backward pass. It is the correctness oracle of the fast executor.

``fast`` (default)
    Built from an :class:`ExecutionPlan` made once before training:

    - *Frozen outputs once.* The frozen models (the original f₀, random teachers) only ever
      see materialised streams, which never change during a run, and run in eval mode, so
      their values at every node they are read at are computed once, in chunks, before
      training, and indexed per batch (bounded by :data:`PRECOMPUTE_BUDGET_BYTES`; above it,
      per-batch forwards as in the reference).
    - *One forward of the trained model per stage.* The streams a stage evaluates the model on
      (CaMU: forget and retain sample) are concatenated into one batch and one forward, and
      the outputs split back by rows — unless the model has a layer whose train-mode output
      for a row depends on the other rows of the batch (batch normalisation), where
      concatenation would change the statistics: then it keeps one forward per stream and the
      plan says why (:attr:`ExecutionPlan.batch_dependent`). Dropout is per-row, so it does
      not prevent concatenation, but the random masks then differ from the reference's draws.
    - *No host synchronisation per step.* Each step's loss and term values are stacked on the
      device; every ``sync_every`` steps (and at the end) they are read in one transfer, the
      log rows are written, and the non-finite check runs there: it finds the first bad step
      in the window and names its term, stage, epoch and step, as the reference does. The
      difference: the up to ``sync_every − 1`` steps after the bad one have already run, so the
      model's weights are not usable after the error (they are not in either executor).
    - The representation hooks stay registered for the whole run (no register/remove per
      forward).

    Numerically, the fast executor computes the same quantities in a different summation
    order (one larger GEMM instead of two, f₀ on large chunks): per-step losses and final
    weights agree with the reference to float rounding (``tests/engine/test_executor.py``).

Run options (for GPUs; on the CPU they either work or stop with a :class:`RunError`):
``amp="bf16"`` runs the stage losses under ``torch.autocast`` in bfloat16; ``compile=True``
wraps the trained model in ``torch.compile``; ``cuda_graphs=True`` compiles it with
``mode="reduce-overhead"`` (CUDA graphs), which needs a CUDA device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from causalunlearn.compile.keys import MODEL, StreamKey
from causalunlearn.compile.objective import Batch, Objective
from causalunlearn.engine.callbacks import CallbackLike, TermMeans
from causalunlearn.engine.plan import FastContext, precompute_frozen
from causalunlearn.errors import RunError
from causalunlearn.numerics import current as current_numerics

__all__ = ["AMP_DTYPES", "Masks", "Runner", "apply_run_options", "masked_step", "stage_masks"]

AMP_DTYPES = {"bf16": torch.bfloat16}

Masks = dict[torch.nn.Parameter, torch.Tensor]


def stage_masks(masks, order) -> dict[str, Masks]:
    """Per-stage masks from ``{stage id: {param: mask}}`` or ``{param: mask}`` (every stage)."""
    if not masks:
        return {}
    if all(isinstance(k, str) for k in masks):
        return {sid: dict(m) for sid, m in masks.items() if m}
    return {sid: dict(masks) for sid in order}


def masked_step(optimizer: torch.optim.Optimizer, masks: Masks) -> None:
    """One optimiser step that changes only the entries where the mask is non-zero.

    Gradients are multiplied by the mask (a soft mask scales them); entries where the mask is
    0 are restored after the step, exactly, whatever the optimiser's weight decay or momentum.
    """
    params = [p for g in optimizer.param_groups for p in g["params"] if p in masks]
    before = {}
    for p in params:
        if p.grad is not None:
            p.grad.mul_(masks[p])
        before[p] = p.detach().clone()
    optimizer.step()
    with torch.no_grad():
        for p in params:
            p.copy_(torch.where(masks[p] != 0, p, before[p]))


def _finite(v: float) -> bool:
    return v == v and abs(v) != float("inf")


class Runner:
    """Runs stage steps on batches for :func:`~causalunlearn.engine.loop.run_schedule`.

    Args:
        objective: The compiled objective.
        streams: The materialised streams.
        plan: The execution plan (its ``executor`` selects fast or reference behaviour).
        optimizers: Stage id → optimiser.
        masks: Stage id → parameter masks.
        log: The run's :class:`~causalunlearn.engine.loop.TrainLog` (filled in).
        log_every: Steps averaged per log row.
        amp: ``None`` or ``"bf16"`` (autocast of the stage losses).
        callbacks: Called at the host reads of the term values and at the end of each epoch
            (:mod:`causalunlearn.engine.callbacks`); none: no extra work.
    """

    def __init__(
        self,
        objective,
        streams,
        plan,
        optimizers,
        masks,
        log,
        log_every,
        amp=None,
        callbacks: Sequence[CallbackLike] = (),
    ):
        self.objective = objective
        self.streams = streams
        self.plan = plan
        self.optimizers = optimizers
        self.masks = masks
        self.log = log
        self.log_every = max(1, int(log_every))
        self.device = streams.rows[next(iter(streams.rows))][0].device
        self.amp = amp
        self.fast = plan.executor == "fast"
        self.tables = precompute_frozen(objective, streams, plan) if self.fast else {}
        self.sums: dict[str, dict[str, float]] = {s: {} for s in optimizers}
        self.counts: dict[str, int] = {s: 0 for s in optimizers}
        self.window: list[tuple[str, int, int, list[str], torch.Tensor]] = []
        self.callbacks = tuple(callbacks)
        self.since_sync = TermMeans()
        self.this_epoch = TermMeans()

    def batch(
        self, indices: dict[str, torch.Tensor]
    ) -> tuple[Batch, dict[StreamKey, torch.Tensor]]:
        """``(batch, rows)``: each stream key's ``(x, y)`` and row ids, from group row ids."""
        rows = {
            key: indices[g]
            for g, keys in self.streams.groups.items()
            if g in indices
            for key in keys
        }
        batch = {
            key: (self.streams.rows[key][0][i], self.streams.rows[key][1][i])
            for key, i in rows.items()
        }
        return batch, rows

    def step(self, sid: str, batch, rows, epoch: int) -> None:
        """One optimiser step of stage ``sid`` on a batch."""
        objective = self.objective
        optimizer = self.optimizers[sid]
        optimizer.zero_grad(set_to_none=True)
        autocast = (
            torch.autocast(self.device.type, dtype=AMP_DTYPES[self.amp])
            if self.amp
            else contextlib.nullcontext()
        )
        with autocast:
            ctx = (
                FastContext(objective, batch, rows, self.tables, self.plan.stages[sid])
                if self.fast
                else None
            )
            loss, terms = objective.stage_loss(sid, batch, ctx)
        step_no = self.log.steps[sid]
        if self.fast:
            values = torch.stack([loss.detach(), *terms.values()]).float()
            self.window.append((sid, epoch, step_no, list(terms), values))
        else:
            loss_value, term_values = float(loss.detach()), {k: float(v) for k, v in terms.items()}
            self._check(sid, epoch, step_no, loss_value, term_values)
        loss.backward()
        if self.masks.get(sid):
            masked_step(optimizer, self.masks[sid])
        else:
            optimizer.step()
        self.log.steps[sid] += 1
        if not self.fast:
            self._record(sid, epoch, self.log.steps[sid], term_values)
            if self.callbacks:  # the reference reads every step: each one is a sync point
                self._note(sid, loss_value, term_values)
                self._emit(epoch)
        elif len(self.window) >= self.plan.sync_every:
            self.sync()

    @staticmethod
    def _check(sid, epoch, step_no, loss: float, terms: dict[str, float]) -> None:
        if _finite(loss):
            return
        bad = [k for k, v in terms.items() if not _finite(v)] or list(terms)
        raise RunError(
            "non-finite-loss",
            f"loss of stage '{sid}' is {loss} at epoch {epoch}, step {step_no}"
            f" (term(s): {', '.join(bad)})",
            "lower the stage's learning rate, or check the data and the term's divergence",
            details={"stage": sid, "epoch": epoch, "step": step_no, "loss": loss, "terms": bad},
        )

    def sync(self) -> None:
        """Read the buffered step values in one transfer, check them and write log rows.

        The window is scanned in step order, so the first non-finite step is the one named.
        """
        if not self.window:
            return
        values = torch.cat([w[4] for w in self.window]).tolist()
        window, self.window = self.window, []
        at = 0
        for sid, epoch, step_no, names, _ in window:
            loss, terms = (
                values[at],
                dict(zip(names, values[at + 1 : at + 1 + len(names)], strict=True)),
            )
            at += 1 + len(names)
            self._check(sid, epoch, step_no, loss, terms)
            self._record(sid, epoch, step_no + 1, terms)
            if self.callbacks:
                self._note(sid, loss, terms)
        if self.callbacks:
            self._emit(window[-1][1])

    def _note(self, sid: str, loss: float, terms: dict[str, float]) -> None:
        self.since_sync.add(sid, loss, terms)
        self.this_epoch.add(sid, loss, terms)

    def _emit(self, epoch: int) -> None:
        terms = self.since_sync.take()
        step = sum(self.log.steps.values())
        for callback in self.callbacks:
            callback.on_sync(step, epoch, dict(terms))

    def end_epoch(self, epoch: int, seconds: float) -> None:
        """Callbacks only: read what is buffered and call ``on_epoch`` with the epoch's means."""
        if not self.callbacks:
            return
        self.sync()
        logs = self.this_epoch.take()
        logs.update(seconds=seconds, steps=sum(self.log.steps.values()))
        for callback in self.callbacks:
            callback.on_epoch(epoch, dict(logs))

    def _record(self, sid: str, epoch: int, steps_done: int, terms: dict[str, float]) -> None:
        acc = self.sums[sid]
        for k, v in terms.items():
            acc[k] = acc.get(k, 0.0) + v
        self.counts[sid] += 1
        if self.counts[sid] >= self.log_every:
            self.flush(sid, epoch, steps_done)

    def flush(self, sid: str, epoch: int, steps_done: int) -> None:
        """Write one log row of stage ``sid`` (mean of the accumulated steps)."""
        if self.counts[sid] == 0:
            return
        row: dict[str, float] = {"step": steps_done, "epoch": epoch}
        row.update({k: v / self.counts[sid] for k, v in self.sums[sid].items()})
        self.log.losses[sid].append(row)
        self.sums[sid] = {}
        self.counts[sid] = 0

    def finish(self, last_epoch: int) -> None:
        """Read what is still buffered and write the last partial log rows."""
        self.sync()
        for sid in self.log.losses:
            self.flush(sid, last_epoch, self.log.steps[sid])


class _Compiled:
    """A ``torch.compile`` wrapper whose first call turns a compiler failure into a RunError."""

    def __init__(self, module: nn.Module, mode: str | None) -> None:
        self.module = module
        self.compiled = torch.compile(module, mode=mode)
        self.mode = mode
        self.checked = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.checked:
            return self.compiled(x)
        try:
            out = self.compiled(x)
        except Exception as err:  # the compiler stack raises many kinds; name the fix once
            raise RunError(
                "compile-failed",
                f"torch.compile(mode={self.mode!r}) failed: {type(err).__name__}: {err}"[:500],
                "run with compile=False (eager); on the CPU the inductor backend needs a"
                " working C++ compiler",
            ) from err
        self.checked = True
        return out


class _ChannelsLast:
    """The trained model's forward with 4-D inputs in the ``channels_last`` memory format (its
    4-D weights were put in that format by :func:`apply_run_options`)."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.run(x)


def apply_run_options(
    objective: Objective,
    device: torch.device,
    *,
    compile: bool = False,
    cuda_graphs: bool = False,
    channels_last: bool | None = None,
) -> None:
    """Set up ``torch.compile`` / CUDA graphs / the memory format for the trained model.

    ``compile=True`` compiles the model (default mode); ``cuda_graphs=True`` compiles it with
    ``mode="reduce-overhead"``, which records CUDA graphs and therefore needs a CUDA device.
    The representation hooks are registered before the first compiled call (the fast executor
    keeps them for the whole run), so the compiled graph captures them. ``channels_last``
    (default: the run's :class:`~causalunlearn.numerics.CpuNumerics`) puts the trained model's
    4-D weights and every 4-D input of its forwards in the ``channels_last`` memory format: a
    conv net's training step on the CPU took 9.9 instead of 16.1 ms (MNIST CNN, batch 64, 2
    threads; docs/performance.md). A model without 4-D weights is left as it is. The model stays
    in that format afterwards (same values; ``predict`` and ``state_dict`` work either way).

    Raises:
        RunError: ``cuda-graphs-need-cuda`` when ``cuda_graphs`` is asked for off CUDA.
    """
    if cuda_graphs and device.type != "cuda":
        raise RunError(
            "cuda-graphs-need-cuda",
            f"CUDA graphs were requested but the run's device is {device}",
            "run on a CUDA device (device='cuda'), or drop cuda_graphs (use compile=True on CPU)",
        )
    if cuda_graphs:
        objective.runners[MODEL] = _Compiled(objective.model, "reduce-overhead")
    elif compile:
        objective.runners[MODEL] = _Compiled(objective.model, None)
    if channels_last is None:
        channels_last = current_numerics().channels_last
    if channels_last and any(p.dim() == 4 for p in objective.model.parameters()):
        objective.model.to(memory_format=torch.channels_last)
        objective.runners[MODEL] = _ChannelsLast(objective.runners.get(MODEL, objective.model))
