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
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from causalunlearn.compile.materialise import Streams
from causalunlearn.compile.objective import Objective
from causalunlearn.errors import RunError
from causalunlearn.graph.validate import _row_group


@dataclass
class TrainLog:
    """What a run of the loop did.

    Attributes:
        steps: Optimiser steps per stage.
        seconds: Wall time of the loop.
        losses: Stage → list of ``{"step", "epoch", term: mean unweighted value}`` rows, one
            per ``log_every`` steps (means over those steps).
    """

    steps: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    losses: dict[str, list[dict[str, float]]] = field(default_factory=dict)


def _phases(objective: Objective) -> list[tuple[tuple[str, ...], list[str]]]:
    graph = objective.graph
    phases: list[tuple[tuple[str, ...], list[str]]] = []
    for sid in graph.schedule.order:
        streams = graph.stage(sid).zip or graph.schedule.zip
        groups = tuple(dict.fromkeys(_row_group(graph.node_map, s) for s in streams))
        if phases and phases[-1][0] == groups:
            phases[-1][1].append(sid)
        else:
            phases.append((groups, [sid]))
    return phases


Masks = dict[torch.nn.Parameter, torch.Tensor]


def _stage_masks(masks, order) -> dict[str, Masks]:
    """Per-stage masks from ``{stage id: {param: mask}}`` or ``{param: mask}`` (every stage)."""
    if not masks:
        return {}
    if all(isinstance(k, str) for k in masks):
        return {sid: dict(m) for sid, m in masks.items() if m}
    return {sid: dict(masks) for sid in order}


def _masked_step(optimizer: torch.optim.Optimizer, masks: Masks) -> None:
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


def run_schedule(
    objective: Objective,
    streams: Streams,
    *,
    seed: int = 0,
    progress: bool = True,
    log_every: int = 50,
    masks: dict[str, Masks] | Masks | None = None,
    description: str = "",
) -> TrainLog:
    """Run the graph's schedule on the materialised streams, updating ``objective.model``.

    Args:
        objective: The compiled objective (its model is trained in place).
        streams: The materialised data.
        seed: Seed of the shuffling generator.
        progress: Show a tqdm progress bar.
        log_every: Average term values over this many steps per log row.
        masks: Optional parameter masks, ``{stage id: {parameter: mask}}`` (a plain
            ``{parameter: mask}`` applies to every stage): only the entries where the mask is
            non-zero change in that stage's steps (see the module docstring).
        description: Label of the progress bar.

    Raises:
        RunError: ``non-finite-loss`` naming the term, stage, epoch and step.
    """
    graph = objective.graph
    schedule = graph.schedule
    optimizers = objective.make_optimizers()
    masks = _stage_masks(masks, schedule.order)
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
    sums: dict[str, dict[str, float]] = {s: {} for s in schedule.order}
    counts: dict[str, int] = {s: 0 for s in schedule.order}
    objective.model.train()
    start = time.perf_counter()
    bar = tqdm(
        total=total,
        disable=not progress,
        desc=description or graph.name,
        leave=False,
    )
    try:
        for epoch in range(schedule.epochs):
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
                    batch = {}
                    for g in groups:
                        idx = perms[g][b * bs : (b + 1) * bs]
                        for key in streams.groups[g]:
                            x, y = streams.rows[key]
                            batch[key] = (x[idx], y[idx])
                    for sid in active:
                        _step(
                            objective,
                            optimizers[sid],
                            sid,
                            batch,
                            masks.get(sid),
                            epoch,
                            log,
                            sums,
                            counts,
                            log_every,
                        )
                        bar.update(1)
    finally:
        bar.close()
    log.seconds = time.perf_counter() - start
    for sid in schedule.order:
        _flush(log, sid, sums, counts, epoch=schedule.epochs - 1)
    return log


def _step(objective, optimizer, sid, batch, masks, epoch, log, sums, counts, log_every) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss, terms = objective.stage_loss(sid, batch)
    if not torch.isfinite(loss):
        bad = [k for k, v in terms.items() if not torch.isfinite(v)] or list(terms)
        raise RunError(
            "non-finite-loss",
            f"loss of stage '{sid}' is {loss.item()} at epoch {epoch}, step {log.steps[sid]}"
            f" (term(s): {', '.join(bad)})",
            "lower the stage's learning rate, or check the data and the term's divergence",
        )
    loss.backward()
    if masks:
        _masked_step(optimizer, masks)
    else:
        optimizer.step()
    log.steps[sid] += 1
    acc = sums[sid]
    for k, v in terms.items():
        acc[k] = acc.get(k, 0.0) + float(v)
    counts[sid] += 1
    if counts[sid] >= log_every:
        _flush(log, sid, sums, counts, epoch)


def _flush(log: TrainLog, sid: str, sums, counts, epoch: int) -> None:
    if counts[sid] == 0:
        return
    row = {"step": log.steps[sid], "epoch": epoch}
    row.update({k: v / counts[sid] for k, v in sums[sid].items()})
    log.losses[sid].append(row)
    sums[sid] = {}
    counts[sid] = 0
