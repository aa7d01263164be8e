"""A sweep as a task graph, run on a backend with as many tasks at once as it has slots.

The graph, per context (a dataset, scenario, training seed and split seed; see
:class:`~causalunlearn.studies.backends.tasks.ContextKey`)::

    original (one per dataset and training seed, shared by the scenarios)  ─┐
    oracle   (one per context)                                               ├─► reference ─► cells
    oracles 1..K−1 (``--oracles K``: the oracles of training seeds s+1..s+K−1) ┘

An extra oracle is the oracle of another training seed on the same split, so it is one model
task shared with the context of that seed (when the sweep has it) and trained on a worker of
its own, not inside the reference task, where a worker would wait on another's file lock.

A task is handed to the backend once its inputs exist, so the cells of a context start as soon
as its two models are trained and scored, while other contexts' models still train. Ready tasks
go out in the sweep's order (context first, then originals, oracles, references, cells): one
slot (the local backend) runs today's order exactly. The driver (this process) gets each result
as it arrives: it writes the reference and cell files (:func:`run_plan`'s callbacks) and draws
the progress (:class:`SweepProgress`). On any error, and on Ctrl-C, the tasks still running are
cancelled before the error goes on: only finished cells are on disk, and a rerun resumes.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from causalunlearn.progress import duration, progress_bar
from causalunlearn.studies.backends import Backend
from causalunlearn.studies.backends.tasks import (
    CellSpec,
    ContextKey,
    Job,
    Outcome,
    cell_task,
    forget_loaded,
    model_task,
    reference_task,
)
from causalunlearn.studies.oracles import oracle_seeds

_log = logging.getLogger("causalunlearn.studies.sweep")

#: The task functions by kind (what a backend runs).
TASKS: dict[str, Callable[..., Outcome]] = {
    "model": model_task,
    "reference": reference_task,
    "cell": cell_task,
}


class Pool(Protocol):
    """What :func:`run_plan` needs of a backend."""

    #: Tasks at once (``None``: as many as the backend takes).
    slots: int | None

    def submit(self, kind: str, *args: Any) -> Any:
        """Start a task (``TASKS[kind](job, *args)``); return a handle."""

    def wait(self, handles: list[Any]) -> tuple[Any, Outcome]:
        """One finished task among ``handles``: its handle and its outcome."""

    def cancel(self, handles: list[Any]) -> None:
        """Stop the tasks of ``handles`` (their results are never used)."""

    def close(self) -> None:
        """Release the backend."""


class LocalPool:
    """The local backend: each task runs in this process when it is waited for."""

    slots = 1

    def __init__(self, job: Job) -> None:
        self.job = job
        self.queued: dict[int, tuple[str, tuple[Any, ...]]] = {}
        self.count = 0

    def submit(self, kind: str, *args: Any) -> int:
        self.count += 1
        self.queued[self.count] = (kind, args)
        return self.count

    def wait(self, handles: list[int]) -> tuple[int, Outcome]:
        handle = handles[0]
        kind, args = self.queued.pop(handle)
        return handle, TASKS[kind](self.job, *args)

    def cancel(self, handles: list[int]) -> None:
        for handle in handles:
            self.queued.pop(handle, None)

    def close(self) -> None:
        forget_loaded()  # the data and models of the last context: not kept after the sweep


class SweepProgress:
    """Cells done / running / failed and an estimate of the time left: a bar on a terminal,
    else one log line per finished cell (INFO).

    Args:
        total: Cells of the sweep.
        done: Cells already finished before this run (resumed).
        enabled: Draw a bar (where one is seen; the log lines do not depend on it).
    """

    def __init__(self, total: int, done: int, *, enabled: bool) -> None:
        self.total, self.done, self.before = total, done, done
        self.running = self.failed = 0
        self.start = time.monotonic()
        self.first_cell: float | None = None  # when the first cell went to a worker
        self.bar = progress_bar(
            total=total, initial=done, enabled=enabled, desc="sweep", unit="run"
        )

    def left(self, now: float | None = None) -> float | None:
        """Seconds left, from this run's rate: wall time since the first cell went to a worker
        per finished cell (training the originals and oracles before any cell can start is not
        a cell's cost, so it does not inflate the estimate); ``None`` before the first cell."""
        finished = self.done - self.before
        if finished == 0 or self.first_cell is None:
            return None
        now = time.monotonic() if now is None else now
        return (now - self.first_cell) / finished * (self.total - self.done)

    def _postfix(self) -> None:
        self.bar.set_postfix_str(f"running {self.running}, failed {self.failed}")

    def started(self) -> None:
        """A cell went to a worker."""
        if self.first_cell is None:
            self.first_cell = time.monotonic()
        self.running += 1
        self._postfix()

    def finished(self, spec: CellSpec, cell: dict[str, Any]) -> None:
        """A cell came back (finished or failed)."""
        self.running -= 1
        self.done += 1
        failed = cell.get("status") == "failed"
        self.failed += failed
        self._postfix()
        self.bar.update(1)
        if self.bar.disable:  # no bar drawn (logs, CI, nohup): one line per cell, with ETA
            left = self.left()
            ctx = spec.ctx
            _log.info(
                "[%d/%d] %s %s %s seed %s %s (running %d, failed %d); %s so far, %s",
                self.done,
                self.total,
                spec.entry.label,
                ctx.dataset,
                ctx.scenario,
                spec.seed,
                "FAILED" if failed else "done",
                self.running,
                self.failed,
                duration(time.monotonic() - self.start),
                f"about {duration(left)} left" if left and self.done < self.total else "done",
            )

    def close(self) -> None:
        """Remove the bar."""
        self.bar.close()


@dataclass
class _Context:
    key: ContextKey
    order: int
    reference_path: Path
    stored: dict[str, Any] | None
    cells: list[tuple[CellSpec, Path]] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Plan:
    """The work a sweep still has: its contexts and their missing cells, in run order.

    Attributes:
        job: What every task shares.
    """

    job: Job
    contexts: dict[ContextKey, _Context] = field(default_factory=dict)

    def add(
        self,
        spec: CellSpec,
        path: Path,
        reference_path: Path,
        stored: Callable[[Path], dict[str, Any] | None],
    ) -> None:
        """A missing cell, written to ``path``; its context's reference lives at
        ``reference_path`` (``stored`` reads what is there)."""
        ctx = self.contexts.get(spec.ctx)
        if ctx is None:
            ctx = _Context(spec.ctx, len(self.contexts), reference_path, stored(reference_path))
            self.contexts[spec.ctx] = ctx
        ctx.cells.append((spec, path))

    def cells(self) -> int:
        """Missing cells."""
        return sum(len(c.cells) for c in self.contexts.values())


def _original_key(ctx: ContextKey) -> tuple[str, int]:
    """Originals are trained on the whole training set: one per dataset and training seed."""
    return ctx.dataset, ctx.train_seed


def run_plan(
    plan: Plan,
    backend: Backend,
    *,
    on_reference: Callable[[Path, dict[str, Any], bool], None],
    on_cell: Callable[[CellSpec, Path, dict[str, Any]], None],
    progress: SweepProgress,
) -> None:
    """Run every task of ``plan`` on ``backend``.

    Args:
        on_reference: Called with the reference file's path, the reference and whether it
            changed (the driver writes it then), before that context's cells start.
        on_cell: Called with each cell as it arrives (the driver writes its file).
        progress: Told of every cell that starts and ends.

    Raises:
        CausalUnlearnError: The first error a task stopped with (the others are cancelled).
    """
    if not plan.contexts:
        return
    pool: Pool
    if backend.kind == "ray":
        from causalunlearn.studies.backends.ray_backend import RayPool

        pool = RayPool(backend, plan.job, cells=plan.cells())
    else:
        pool = LocalPool(plan.job)
    ready: list[tuple[int, int, int, str, tuple[Any, ...], Any]] = []
    seq = [0]

    def push(ctx: _Context, stage: int, kind: str, args: tuple[Any, ...], then: Any) -> None:
        seq[0] += 1
        heapq.heappush(ready, (ctx.order, stage, seq[0], kind, args, then))

    waiting: dict[Any, list[tuple[_Context, str]]] = {}  # model key → contexts that need it

    needs: dict[ContextKey, int] = {}  # context → models its reference waits for

    def model_done(key: Any, info: dict[str, Any]) -> None:
        for ctx, which in waiting.pop(key):
            ctx.models[which] = info
            if len(ctx.models) == needs[ctx.key]:
                recorded = {k: ctx.models[k] for k in ("original", "oracle")}
                push(ctx, 2, "reference", (ctx.key, ctx.stored, recorded), ctx)

    count = plan.job.settings.oracles
    for ctx in plan.contexts.values():
        # (name in ctx.models, the waiting key, the task's context, the task's model kind)
        models = [
            ("original", _original_key(ctx.key), ctx.key, "original"),
            ("oracle", ctx.key, ctx.key, "oracle"),
        ]
        for seed in oracle_seeds(ctx.key.train_seed, count)[1:]:
            other = replace(ctx.key, train_seed=seed)
            models.append((f"oracle-{seed}", other, other, "oracle"))
        needs[ctx.key] = len(models)
        for which, key, of, kind in models:
            if key not in waiting:
                waiting[key] = []
                push(ctx, 0 if kind == "original" else 1, "model", (of, kind), key)
            waiting[key].append((ctx, which))

    running: dict[Any, tuple[str, Any, Any]] = {}
    try:
        while ready or running:
            while ready and (pool.slots is None or len(running) < pool.slots):
                _order, _stage, _seq, kind, args, then = heapq.heappop(ready)
                running[pool.submit(kind, *args)] = (kind, args, then)
                if kind == "cell":
                    progress.started()
            handle, outcome = pool.wait(list(running))
            kind, args, then = running.pop(handle)
            if outcome.error is not None:
                raise outcome.error
            if kind == "model":
                model_done(then, outcome.value)
            elif kind == "reference":
                reference, changed = outcome.value
                on_reference(then.reference_path, reference, changed)
                for spec, path in then.cells:
                    push(then, 3, "cell", (spec, reference), (spec, path))
            else:
                spec, path = then
                cell = {**outcome.value, "worker": outcome.worker}
                progress.finished(spec, cell)
                on_cell(spec, path, cell)
    except BaseException:
        pool.cancel(list(running))
        raise
    finally:
        pool.close()
