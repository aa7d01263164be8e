"""The execution plan of a compiled graph, decided once before training.

:func:`build_plan` finds, by evaluating each stage's terms once on a two-row probe batch, which
(model, stream) forwards every stage needs, then decides for the fast executor which streams of
the trained model share one concatenated forward (not with batch-dependent layers) and which
frozen-model outputs are computed once (:func:`precompute_frozen`). :class:`FastContext` serves
a stage's forwards from that plan. See :mod:`causalunlearn.engine.step` for the executors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from causalunlearn.compile.keys import MODEL, ModelKey, StreamKey
from causalunlearn.compile.materialise import Streams
from causalunlearn.compile.objective import Forwards, Objective, StageContext
from causalunlearn.errors import RunError

EXECUTORS = ("fast", "reference")

#: Largest total size of precomputed frozen-model outputs; above it the frozen models run per
#: batch instead (e.g. a 512-d representation of 100k rows is 200 MB in float32).
PRECOMPUTE_BUDGET_BYTES = 1 << 30
#: Rows per forward when precomputing frozen-model outputs.
PRECOMPUTE_CHUNK = 1024

#: Module types whose train-mode output for a row depends on the other rows of the batch.
BATCH_DEPENDENT_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm,)


@dataclass(frozen=True)
class StagePlan:
    """How one stage runs under the fast executor.

    Attributes:
        stage: Stage id.
        model_streams: Stream keys the trained model is evaluated on, in first-use order.
        concatenate: Whether those streams share one forward (their rows concatenated).
        frozen: ``(model key, stream key)`` pairs of frozen models read by the stage.
    """

    stage: str
    model_streams: tuple[StreamKey, ...]
    concatenate: bool
    frozen: tuple[tuple[ModelKey, StreamKey], ...]


@dataclass(frozen=True)
class ExecutionPlan:
    """What the executor will do, decided once before training.

    Attributes:
        executor: ``fast`` or ``reference``.
        stages: Stage id → :class:`StagePlan`.
        batch_dependent: Module paths of batch-dependent layers of the model (non-empty means
            no concatenation).
        precomputed: ``(model key, stream key)`` pairs whose frozen outputs are computed once.
        sync_every: Steps between host reads of the logged values.
        notes: Why something was not optimised, in words.
    """

    executor: str
    stages: dict[str, StagePlan]
    batch_dependent: tuple[str, ...] = ()
    precomputed: tuple[tuple[ModelKey, StreamKey], ...] = ()
    sync_every: int = 1
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> dict[str, Any]:
        """The plan as plain data (for logs and manifests)."""
        return {
            "executor": self.executor,
            "sync_every": self.sync_every,
            "batch_dependent": list(self.batch_dependent),
            "precomputed": [f"{m}:{s}" for m, s in self.precomputed],
            "stages": {
                sid: {
                    "model_streams": [str(s) for s in p.model_streams],
                    "concatenate": p.concatenate,
                    "frozen": [f"{m}:{s}" for m, s in p.frozen],
                }
                for sid, p in self.stages.items()
            },
            "notes": list(self.notes),
        }


def check_executor(executor: str) -> None:
    """Raise ``RunError(unknown-executor)`` unless ``executor`` is ``fast`` or ``reference``."""
    if executor not in EXECUTORS:
        raise RunError(
            "unknown-executor",
            f"no executor '{executor}'",
            "use executor='fast' (default) or 'reference' (the faithful oracle)",
        )


def batch_dependent_layers(model: nn.Module) -> tuple[str, ...]:
    """Paths of the modules whose train-mode output depends on other rows of the batch.

    Batch normalisation in train mode (any :data:`BATCH_DEPENDENT_TYPES`), plus any module
    that declares ``batch_dependent = True`` (for a user's own layer).
    """
    return tuple(
        name or type(model).__name__
        for name, m in model.named_modules()
        if isinstance(m, BATCH_DEPENDENT_TYPES) or getattr(m, "batch_dependent", False)
    )


class _Recorder(StageContext):
    """A stage context that records which (model, stream) forwards the terms ask for."""

    def __init__(self, objective: Objective, batch) -> None:
        super().__init__(objective, batch)
        self.asked: list[tuple[ModelKey, StreamKey]] = []

    def forwards(self, model_key: ModelKey, key: StreamKey) -> Forwards:
        if (model_key, key) not in self.asked:
            self.asked.append((model_key, key))
        return super().forwards(model_key, key)


def build_plan(
    objective: Objective, streams: Streams, executor: str = "fast", sync_every: int = 50
) -> ExecutionPlan:
    """Decide, once, how each stage's forwards run (see the module docstring).

    The forwards a stage needs are found by evaluating its terms once on a two-row probe batch
    (so custom references and divergences are planned like the built-in ones).
    """
    check_executor(executor)
    graph = objective.graph
    probe = {k: (x[:2], y[:2]) for k, (x, y) in streams.rows.items()}
    stages = {}
    was_training = objective.model.training
    objective.model.eval()  # the probe must not touch batch-norm running statistics
    try:
        for stage in graph.stages:
            ctx = _Recorder(objective, probe)
            with torch.no_grad():
                for edge in graph.terms_of(stage.id):
                    objective.term_value(ctx, edge)
            model_streams = tuple(s for m, s in ctx.asked if m == MODEL)
            frozen = tuple((m, s) for m, s in ctx.asked if m != MODEL)
            stages[stage.id] = StagePlan(stage.id, model_streams, False, frozen)
    finally:
        objective.model.train(was_training)
    if executor == "reference":
        return ExecutionPlan("reference", stages, sync_every=1)
    notes = []
    dependent = batch_dependent_layers(objective.model)
    shapes_ok = True
    for sid, p in stages.items():
        shapes = {tuple(streams.rows[s][0].shape[1:]) for s in p.model_streams}
        dtypes = {streams.rows[s][0].dtype for s in p.model_streams}
        if len(shapes) > 1 or len(dtypes) > 1:
            shapes_ok = False
            notes.append(f"stage '{sid}': streams differ in input shape; separate forwards")
    if dependent:
        notes.append(
            "separate forwards per stream: batch-dependent layers in train mode ("
            + ", ".join(dependent[:5])
            + ("..." if len(dependent) > 5 else "")
            + "); concatenating would change their batch statistics"
        )
    if not dependent and shapes_ok:
        stages = {
            sid: StagePlan(sid, p.model_streams, len(p.model_streams) > 1, p.frozen)
            for sid, p in stages.items()
        }
    wanted = tuple(dict.fromkeys(f for p in stages.values() for f in p.frozen))
    per_row = _bytes_per_row(objective, streams, wanted)
    total = sum(per_row[w] * streams.rows[w[1]][0].shape[0] for w in wanted)
    precomputed = wanted if total <= PRECOMPUTE_BUDGET_BYTES else ()
    if wanted and not precomputed:
        notes.append(
            f"frozen outputs ({total / 2**20:.0f} MiB) exceed PRECOMPUTE_BUDGET_BYTES:"
            " frozen models run per batch"
        )
    return ExecutionPlan(
        "fast", stages, dependent, precomputed, max(1, int(sync_every)), tuple(notes)
    )


def _bytes_per_row(objective, streams, wanted) -> dict[tuple[ModelKey, StreamKey], int]:
    out = {}
    for model_key, key in wanted:
        with torch.no_grad():
            values = objective.forward_nodes(model_key, streams.rows[key][0][:1])
        out[(model_key, key)] = sum(v.numel() * v.element_size() for v in values.values())
    return out


def precompute_frozen(
    objective: Objective, streams: Streams, plan: ExecutionPlan
) -> dict[tuple[ModelKey, StreamKey], Forwards]:
    """Every node value of the plan's frozen (model, stream) pairs, on all rows, once."""
    tables: dict[tuple[ModelKey, StreamKey], Forwards] = {}
    for model_key, key in plan.precomputed:
        x = streams.rows[key][0]
        parts: dict[str, list[torch.Tensor]] = {}
        for start in range(0, x.shape[0], PRECOMPUTE_CHUNK):
            values = objective.forward_nodes(model_key, x[start : start + PRECOMPUTE_CHUNK])
            for node, v in values.items():
                parts.setdefault(node, []).append(v.detach())
        tables[(model_key, key)] = {node: torch.cat(vs) for node, vs in parts.items()}
    return tables


class FastContext(StageContext):
    """Stage context of the fast executor: frozen values from tables, one model forward."""

    def __init__(self, objective, batch, rows, tables, stage_plan: StagePlan) -> None:
        super().__init__(objective, batch)
        self.rows = rows
        self.tables = tables
        self.plan = stage_plan
        if stage_plan.concatenate:
            self._concatenated_forward()

    def _concatenated_forward(self) -> None:
        keys = self.plan.model_streams
        xs = [self.batch[k][0] for k in keys]
        values = self.objective.forward_nodes(MODEL, torch.cat(xs))
        sizes = [x.shape[0] for x in xs]
        split = {node: v.split(sizes) for node, v in values.items()}
        self.provide(
            MODEL,
            {key: {node: parts[i] for node, parts in split.items()} for i, key in enumerate(keys)},
        )

    def value(self, model_key, stream, node, aligned_to=None):
        key = self.stream_key(stream, aligned_to)
        table = self.tables.get((model_key, key))
        if table is not None:
            return table[node][self.rows[key]]
        return self.forwards(model_key, key)[node]
