"""The one training loop: original training, the retrain oracle and unlearning all run here.

A compiled :class:`~causalunlearn.compile.objective.Objective` and its materialised
:class:`~causalunlearn.compile.materialise.Streams` are run by the graph's schedule:

- Stages run in ``schedule.order``. Consecutive stages iterating the same streams form a
  *phase* and run per batch one after the other (CaMU: representation then output, each with
  fresh forwards after the previous step); a stage with its own ``zip`` runs its own pass.
- Per stage and batch: ``zero_grad(set_to_none=True)``, the stage's loss, backward, the
  parameter mask if any, one optimiser step. With ``set_to_none`` a parameter that gets no
  gradient in a stage (CaMU's classifier head in the representation stage) is left untouched
  by Adam, as in the authors' torch-2 environment.
- A stage's mask (SalUn) multiplies the gradients, and after the step every masked-out entry
  is put back to its value before the step: weight decay (coupled or decoupled) and momentum
  would otherwise still move it. Masked-out weights of a masked stage never change.
- Zipped streams are each reshuffled every epoch with a seeded generator; an epoch ends with
  the shortest stream (Python ``zip`` semantics, last partial batch kept).
- The model is in train mode, frozen references in eval mode.
- A non-finite loss stops the run with the term, stage, epoch and step named.
- Training from scratch may add (:class:`~causalunlearn.recipes.Recipe`) a per-epoch learning
  rate schedule (``cosine``: epoch ``e`` of ``E`` at ``lr · (1 + cos(π e / E)) / 2``), a batch
  augmentation of the inputs (:mod:`causalunlearn.data.augment`; only for graphs without frozen
  models, whose outputs are computed on the stored inputs) and a checkpoint after every epoch
  that a later call resumes from (:mod:`causalunlearn.engine.resume`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from causalunlearn.compile.keys import MODEL
from causalunlearn.compile.materialise import Streams
from causalunlearn.compile.objective import Objective
from causalunlearn.engine.callbacks import CallbackLike
from causalunlearn.engine.plan import build_plan, check_executor
from causalunlearn.engine.resume import EpochCheckpoint, random_state, set_random_state
from causalunlearn.engine.step import AMP_DTYPES, Masks, Runner, stage_masks
from causalunlearn.errors import RunError
from causalunlearn.graph.validate import row_group
from causalunlearn.progress import LoopProgress

_log = logging.getLogger(__name__)


@dataclass
class TrainLog:
    """What a run of the loop did.

    Attributes:
        steps: Optimiser steps per stage.
        seconds: Wall time of the loop.
        losses: Stage → list of ``{"step", "epoch", term: mean unweighted value}`` rows, one
            per ``log_every`` steps (means over those steps).
        plan: The execution plan the run used (:meth:`ExecutionPlan.describe`).
    """

    steps: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    losses: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)


def _phases(objective: Objective) -> list[tuple[tuple[str, ...], list[str]]]:
    graph = objective.graph
    phases: list[tuple[tuple[str, ...], list[str]]] = []
    for sid in graph.schedule.order:
        streams = graph.stage(sid).zip or graph.schedule.zip
        groups = tuple(dict.fromkeys(row_group(graph.node_map, s) for s in streams))
        if phases and phases[-1][0] == groups:
            phases[-1][1].append(sid)
        else:
            phases.append((groups, [sid]))
    return phases


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """The learning-rate multiplier of epoch ``epoch`` (0-based) of ``epochs``.

    ``constant``: 1. ``cosine``: ``(1 + cos(π · epoch / epochs)) / 2`` (Loshchilov & Hutter's
    SGDR without restarts, stepped per epoch; 1 in the first epoch, towards 0 in the last).
    """
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    raise RunError(
        "unknown-lr-schedule",
        f"no learning-rate schedule '{schedule}'",
        "use lr_schedule='constant' or 'cosine'",
    )


def _check_augment(augment: Any, plan: Any) -> None:
    frozen = [f"{m}:{s}" for p in plan.stages.values() for m, s in p.frozen]
    if augment is not None and frozen:
        raise RunError(
            "augment-with-frozen-model",
            f"batch augmentation was asked for a graph whose terms read frozen models"
            f" ({', '.join(frozen[:4])}); their outputs are of the stored, unaugmented inputs",
            "augment only when training from scratch (Recipe.augment); unlearning graphs run on"
            " the stored inputs",
        )


def run_schedule(
    objective: Objective,
    streams: Streams,
    *,
    seed: int = 0,
    progress: bool = True,
    log_every: int = 50,
    masks: dict[str, Masks] | Masks | None = None,
    description: str = "",
    executor: str = "fast",
    sync_every: int = 50,
    amp: str | None = None,
    callbacks: Sequence[CallbackLike] = (),
    lr_schedule: str = "constant",
    augment: Any = None,
    checkpoint: EpochCheckpoint | None = None,
) -> TrainLog:
    """Run the graph's schedule on the materialised streams, updating ``objective.model``.

    Args:
        objective: The compiled objective (its model is trained in place).
        streams: The materialised data.
        seed: Seed of the shuffling generator.
        progress: Show a progress bar (on a terminal or in Jupyter). Where no bar is drawn
            (stderr not a terminal, or ``progress=False``) a loop that runs long logs one INFO
            line per epoch with the elapsed time and the time left
            (:class:`causalunlearn.progress.LoopProgress`).
        log_every: Average term values over this many steps per log row.
        masks: Optional parameter masks, ``{stage id: {parameter: mask}}`` (a plain
            ``{parameter: mask}`` applies to every stage): only the entries where the mask is
            non-zero change in that stage's steps (see the module docstring).
        description: Label of the progress bar and the epoch lines.
        executor: ``fast`` (default: the execution plan of :mod:`causalunlearn.engine.step`) or
            ``reference`` (the faithful per-stream, per-step-read path, the oracle).
        sync_every: Fast executor: steps between host reads of the logged values (and of the
            non-finite check).
        amp: ``None`` (fp32) or ``"bf16"`` (autocast of the stage losses).
        callbacks: Trackers called at the executor's host reads of the term values and after
            every epoch (:mod:`causalunlearn.engine.callbacks`; none by default).
        lr_schedule: ``constant`` (default) or ``cosine``: every stage's learning rate times
            :func:`lr_factor` of the epoch, set at the start of each epoch.
        augment: A :class:`causalunlearn.data.augment.BatchAugment` applied to the inputs of
            every batch (training from scratch; ``None``: the stored inputs).
        checkpoint: Save the run's state after every epoch there, and resume from it if it
            holds a state of this run (:mod:`causalunlearn.engine.resume`). The caller deletes
            it once the result is saved.

    Raises:
        RunError: ``non-finite-loss`` naming the term, stage, epoch and step (also in its
            ``details``: ``stage``, ``epoch``, ``step``, ``loss``, ``terms``);
            ``unknown-executor``; ``unknown-amp``; ``unknown-lr-schedule``;
            ``augment-with-frozen-model``.
    """
    check_executor(executor)
    lr_factor(lr_schedule, 0, 1)  # an unknown schedule stops before any work
    if amp is not None and amp not in AMP_DTYPES:
        raise RunError(
            "unknown-amp",
            f"no autocast mode '{amp}'",
            f"use amp=None (fp32) or one of: {', '.join(AMP_DTYPES)}",
        )
    graph = objective.graph
    schedule = graph.schedule
    optimizers = objective.make_optimizers()
    masks = stage_masks(masks, schedule.order)
    device = streams.rows[next(iter(streams.rows))][0].device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    phases = _phases(objective)
    bs = schedule.batch_size
    total = sum(
        min(math.ceil(streams.size(g) / bs) for g in groups)
        * sum(1 for s in stages if graph.stage(s).epochs is None or epoch < graph.stage(s).epochs)
        for epoch in range(schedule.epochs)
        for groups, stages in phases
    )
    log = TrainLog(steps={s: 0 for s in schedule.order}, losses={s: [] for s in schedule.order})
    objective.model.train()
    start = time.perf_counter()
    plan = build_plan(objective, streams, executor, sync_every)
    _check_augment(augment, plan)
    log.plan = plan.describe()
    keep = (MODEL,) if executor == "fast" else ()
    base_lr = {sid: [g["lr"] for g in opt.param_groups] for sid, opt in optimizers.items()}
    first_epoch, seconds_before = 0, 0.0
    saved = checkpoint.load() if checkpoint is not None else None
    meter: LoopProgress | None = None
    try:
        with objective.keep_captures(keep):
            runner = Runner(
                objective, streams, plan, optimizers, masks, log, log_every, amp, callbacks
            )
            if saved is not None:
                first_epoch, seconds_before = _restore(
                    saved, objective, optimizers, generator, augment, runner, device
                )
                total -= sum(log.steps.values())
                _log.info(
                    "%s: resuming after epoch %d/%d from %s",
                    description or graph.name,
                    first_epoch,
                    schedule.epochs,
                    checkpoint.path if checkpoint else "",
                )
            meter = LoopProgress(
                description or graph.name,
                total=total,
                epochs=schedule.epochs,
                enabled=progress,
                logger=_log,
            )
            for epoch in range(first_epoch, schedule.epochs):
                if lr_schedule != "constant":
                    factor = lr_factor(lr_schedule, epoch, schedule.epochs)
                    for sid, opt in optimizers.items():
                        for group, lr in zip(opt.param_groups, base_lr[sid], strict=True):
                            group["lr"] = lr * factor
                for groups, stage_ids in phases:
                    active = [
                        s
                        for s in stage_ids
                        if graph.stage(s).epochs is None or epoch < graph.stage(s).epochs
                    ]
                    if not active:
                        continue
                    perms = {
                        g: (
                            torch.randperm(streams.size(g), generator=generator)
                            if schedule.shuffle
                            else torch.arange(streams.size(g))
                        ).to(device)
                        for g in groups
                    }
                    n_batches = min(math.ceil(streams.size(g) / bs) for g in groups)
                    for b in range(n_batches):
                        batch, rows = runner.batch(
                            {g: perms[g][b * bs : (b + 1) * bs] for g in groups}
                        )
                        if augment is not None:
                            batch = {k: (augment(x), y) for k, (x, y) in batch.items()}
                        for sid in active:
                            runner.step(sid, batch, rows, epoch)
                            meter.step()
                meter.epoch_done(epoch + 1)
                runner.end_epoch(epoch, seconds_before + time.perf_counter() - start)
                done = epoch + 1
                if (
                    checkpoint is not None
                    and done < schedule.epochs
                    and done % checkpoint.every == 0
                ):
                    runner.sync()  # the non-finite check runs before a state is kept
                    checkpoint.save(
                        _state(
                            done,
                            seconds_before + time.perf_counter() - start,
                            objective,
                            optimizers,
                            generator,
                            augment,
                            runner,
                            device,
                        )
                    )
            runner.finish(schedule.epochs - 1)
    finally:
        if meter is not None:
            meter.close()
    log.seconds = seconds_before + time.perf_counter() - start
    return log


def _state(
    epochs_done: int,
    seconds: float,
    objective: Objective,
    optimizers: dict[str, torch.optim.Optimizer],
    generator: torch.Generator,
    augment: Any,
    runner: Runner,
    device: torch.device,
) -> dict[str, Any]:
    """Everything the rest of the run depends on (:mod:`causalunlearn.engine.resume`)."""
    return {
        "epochs_done": epochs_done,
        "seconds": seconds,
        "model": objective.model.state_dict(),
        "optimizers": {sid: opt.state_dict() for sid, opt in optimizers.items()},
        "shuffle_generator": generator.get_state(),
        "augment": augment.state_dict() if augment is not None else None,
        "random": random_state(device),
        "log": {
            "steps": dict(runner.log.steps),
            "losses": runner.log.losses,
            "sums": runner.sums,
            "counts": runner.counts,
        },
    }


def _restore(
    state: dict[str, Any],
    objective: Objective,
    optimizers: dict[str, torch.optim.Optimizer],
    generator: torch.Generator,
    augment: Any,
    runner: Runner,
    device: torch.device,
) -> tuple[int, float]:
    """Load :func:`_state` into this run; return the epochs done and the loop time so far."""
    objective.model.load_state_dict(state["model"])
    for sid, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][sid])
    generator.set_state(state["shuffle_generator"])
    if augment is not None and state.get("augment") is not None:
        augment.load_state_dict(state["augment"])
    set_random_state(state["random"], device)
    saved = state["log"]
    runner.log.steps.update(saved["steps"])
    runner.log.losses.update({sid: list(rows) for sid, rows in saved["losses"].items()})
    runner.sums.update({sid: dict(v) for sid, v in saved["sums"].items()})
    runner.counts.update(saved["counts"])
    return int(state["epochs_done"]), float(state["seconds"])
