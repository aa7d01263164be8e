"""The tasks of a sweep: pure functions of small picklable specs, run by any backend.

Three kinds, in the order the task graph needs them:

- :func:`model_task` makes sure an original or oracle is in the model cache (trains it on a
  miss; :class:`~causalunlearn.studies.model_cache.ModelCache`'s fingerprint key and file lock
  make two processes that need one model at once train it once);
- :func:`reference_task` scores the original and the oracle of a context (a dataset, scenario,
  training seed and split seed), reading the scores from the model cache's metrics when they
  are there;
- :func:`cell_task` unlearns with one method and scores the result
  (:func:`~causalunlearn.studies.cell.run_cell`) and returns the cell file's content.

Each task sets up its process itself: the user's ``--import`` modules, the CPU numerics
(:func:`causalunlearn.numerics.applied`) and the thread count
(:func:`causalunlearn.numerics.limit_threads`), and each cell seeds torch (``run_cell``). Tasks
write nothing but the model cache; they return JSON data in an :class:`Outcome`, and an error
of bad input (a :class:`~causalunlearn.errors.CausalUnlearnError`) comes back as data too, to
be raised again by the driver. A diverged cell (``non-finite-loss``) is a result: a failed cell.

A process keeps what its tasks loaded (:data:`KEEP` datasets and contexts: the data, the split
and the two models), so a worker loads a dataset once, not once per cell.
"""

from __future__ import annotations

import os
import socket
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from causalunlearn.data import TensorData, load_dataset, make_split
from causalunlearn.data.splits import Split
from causalunlearn.device import pick_device
from causalunlearn.engine.callbacks import notify_end
from causalunlearn.engine.verbs import model_name_for
from causalunlearn.errors import CausalUnlearnError, RunError
from causalunlearn.methods.dispatch import trains
from causalunlearn.numerics import applied, current, limit_threads
from causalunlearn.plugins import import_again
from causalunlearn.studies.cell import (
    CellInputs,
    oracle_forget_logits,
    run_cell,
    score_random_init,
)
from causalunlearn.studies.entries import Entry
from causalunlearn.studies.model_cache import ModelCache
from causalunlearn.studies.oracles import extra_oracles, oracle_z_rows
from causalunlearn.studies.oracles import forget_logits as oracles_forget_logits
from causalunlearn.studies.outputs import outputs_payload, predicted, reference_outputs
from causalunlearn.studies.records import CELL_FORMAT, SweepCell, versions
from causalunlearn.studies.references import reference_scores
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.tracking import tracked

#: Errors that make a cell a failed cell instead of stopping the sweep: a diverged method is a
#: result, and a method that does not apply to the cell's scenario (the trivial head-zero on a
#: random split) is a "not applicable" entry of the table. Both are deterministic, so they are
#: recorded once and never retried.
FAILURE_CODES = ("non-finite-loss", "class-removal-only")
#: Datasets and contexts a process keeps loaded (the most recently used).
KEEP = 2


@dataclass(frozen=True)
class ContextKey:
    """What the models and references of a cell are made from.

    Attributes:
        dataset: Registered dataset name.
        scenario: The scenario (``class:0``, ``random:0.1``).
        train_seed: Seed of the original's (and the oracle's) training, and of their scoring.
        split_seed: Seed of the split (which rows are forgotten, the retain sample).
    """

    dataset: str
    scenario: str
    train_seed: int
    split_seed: int


@dataclass(frozen=True)
class Job:
    """What every task of one sweep shares (sent to each worker once).

    Attributes:
        settings: The study settings.
        cache: The model cache (on a cluster, a folder every node sees).
        threads: Threads of each task (torch and scikit-learn's pools).
        plugins: The ``--import`` modules to load first
            (:func:`~causalunlearn.plugins.imported_plugins`).
        data_root: Where datasets are read (the settings', or as the driver resolved it: a
            worker's environment may differ).
        data_cache: Where parsed datasets are cached (likewise).
        progress: Draw bars (training, decoding): never in a worker.
    """

    settings: StudySettings
    cache: ModelCache
    threads: int
    plugins: tuple[tuple[str, str], ...] = ()
    data_root: str | None = None
    data_cache: str | None = None
    progress: bool = False


@dataclass
class Outcome:
    """What a task returns: its value, or the error it stopped with, and where it ran.

    Attributes:
        value: JSON data (a model's cache info, a reference, a cell).
        error: The :class:`~causalunlearn.errors.CausalUnlearnError` the task stopped with.
        worker: ``host``, ``pid``, ``started`` (epoch seconds), ``seconds`` (wall time),
            ``datasets_loaded`` (datasets this process has loaded so far); a backend may add
            more (Ray: ``node``).
    """

    value: Any = None
    error: CausalUnlearnError | None = None
    worker: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Loaded:
    """A context in memory: data, split, the two models, the oracle's forget outputs."""

    data: TensorData
    split: Split
    model_name: str
    models: dict[str, tuple[nn.Module, dict[str, Any]]] = field(default_factory=dict)
    forget_logits: torch.Tensor | None = None
    reference_oracles: torch.Tensor | None = None  # oracles 1..K-1 on the forget rows
    logits: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # every row


_DATASETS: OrderedDict[tuple[Any, ...], TensorData] = OrderedDict()
_CONTEXTS: OrderedDict[tuple[Any, ...], _Loaded] = OrderedDict()
_LOADS: list[int] = [0]


def _remember(store: OrderedDict, key: tuple[Any, ...], value: Any) -> Any:
    store[key] = value
    store.move_to_end(key)
    while len(store) > KEEP:
        store.popitem(last=False)
    return value


def forget_loaded() -> None:
    """Drop every dataset and context this process keeps (the local backend, when done)."""
    _DATASETS.clear()
    _CONTEXTS.clear()


def datasets_loaded() -> int:
    """How many datasets this process has loaded for tasks so far."""
    return _LOADS[0]


def dataset(job: Job, name: str) -> TensorData:
    """The dataset ``name``, loaded once per process and data folders."""
    key = (name, job.data_root, job.data_cache)
    if key in _DATASETS:
        _DATASETS.move_to_end(key)
        return _DATASETS[key]
    data = load_dataset(name, job.data_root, cache_dir=job.data_cache, progress=job.progress)
    _LOADS[0] += 1
    return _remember(_DATASETS, key, data)


def _context(job: Job, ctx: ContextKey) -> _Loaded:
    s = job.settings
    key = (ctx, str(job.cache.root), repr(s.key()), job.data_root, job.data_cache, s.device)
    if key in _CONTEXTS:
        _CONTEXTS.move_to_end(key)
        return _CONTEXTS[key]
    data = dataset(job, ctx.dataset)
    split = make_split(data.train_y, ctx.scenario, ctx.split_seed, data.num_classes)
    return _remember(_CONTEXTS, key, _Loaded(data, split, model_name_for(data, s.model)))


def _model(job: Job, ctx: ContextKey, which: str) -> tuple[nn.Module, dict[str, Any]]:
    loaded = _context(job, ctx)
    if which not in loaded.models:
        s = job.settings
        loaded.models[which] = job.cache.get(
            loaded.data,
            loaded.split,
            which,
            model=loaded.model_name,
            recipe=s.recipe,
            seed=ctx.train_seed,
            device=pick_device(s.device),
            progress=job.progress,
        )
    return loaded.models[which]


def _reference_oracles(job: Job, ctx: ContextKey) -> torch.Tensor | None:
    """Oracles ``1..K−1`` of ``ctx`` on its forget rows (``settings.oracles`` = K > 1; trained
    and cached on a miss, :mod:`causalunlearn.studies.oracles`), once per process."""
    loaded, s = _context(job, ctx), job.settings
    if s.oracles > 1 and loaded.reference_oracles is None:
        device = pick_device(s.device)
        models = extra_oracles(
            job.cache,
            loaded.data,
            loaded.split,
            count=s.oracles,
            model=loaded.model_name,
            recipe=s.recipe,
            seed=ctx.train_seed,
            device=device,
            progress=s.progress,
        )
        loaded.reference_oracles = oracles_forget_logits(
            [m for m, _ in models], loaded.data, loaded.split, device
        )
    return loaded.reference_oracles


@contextmanager
def _set_up(job: Job) -> Iterator[int]:
    """The process as the task needs it: plugins loaded, numerics and threads set."""
    import_again(job.plugins)
    with applied(job.settings.numerics), limit_threads(job.threads) as threads:
        yield threads


def _outcome(work, job: Job) -> Outcome:
    started, clock = time.time(), time.perf_counter()
    out = Outcome()
    try:
        with _set_up(job) as threads:
            out.value = work(threads)
    except CausalUnlearnError as err:
        out.error = err
    out.worker = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": started,
        "seconds": time.perf_counter() - clock,
        "datasets_loaded": datasets_loaded(),
    }
    return out


def model_task(job: Job, ctx: ContextKey, which: str) -> Outcome:
    """Make sure the ``which`` model (``original`` or ``oracle``) of ``ctx`` is cached.

    Returns:
        An :class:`Outcome` whose value is the cache's info (``cached``: it was there,
        ``seconds`` of training, ``path``, ``fingerprint``).
    """
    return _outcome(lambda _threads: dict(_model(job, ctx, which)[1]), job)


def reference_task(
    job: Job,
    ctx: ContextKey,
    stored: dict[str, Any] | None,
    models: dict[str, dict[str, Any]],
) -> Outcome:
    """The reference of ``ctx``: the original's and oracle's scores (the original first: its
    forget accuracy is the oracle's relearn threshold).

    Args:
        stored: The reference file the sweep folder holds, or ``None``: returned as it is when
            its identity (split, model, settings) is this context's.
        models: The :func:`model_task` info of both models (recorded in the reference).

    Returns:
        An :class:`Outcome` whose value is ``(reference, changed)``.
    """

    def work(_threads: int) -> tuple[dict[str, Any], bool]:
        loaded, s = _context(job, ctx), job.settings
        identity = {"split": loaded.split.digest(), "model": loaded.model_name, "settings": s.key()}
        if stored is not None and stored.get("identity") == identity:
            return stored, False
        reference: dict[str, Any] = {
            "identity": identity,
            "models": {k: dict(v) for k, v in models.items()},
            "metrics": {},
            "extra": {},
        }
        original_forget = None
        refs = _reference_oracles(job, ctx)
        device = pick_device(s.device)
        for which in ("original", "oracle"):
            net, info = _model(job, ctx, which)
            kept: dict[str, torch.Tensor] = {}
            metrics, extra, cached = reference_scores(
                net,
                info["path"],
                job.cache,
                loaded.data,
                loaded.split,
                ctx.train_seed,
                s,
                device=device,
                original_forget=original_forget,
                kept=kept,
            )
            # per-example outputs (studies/outputs.py): the scoring pass's, else those stored
            # beside the cached model, else one pass
            loaded.logits[which] = reference_outputs(
                net, loaded.data, device, kept, cache=job.cache, model_path=info["path"]
            )
            z, _ = oracle_z_rows(
                loaded.logits[which]["train"], refs, loaded.data, loaded.split, seed=ctx.train_seed
            )
            metrics.update(z)
            reference["metrics"][which] = metrics
            reference["extra"][which] = extra
            reference["models"].setdefault(which, dict(info))["metrics_cached"] = cached
            original_forget = reference["metrics"]["original"]["forget_acc"]
        if s.probe:  # the probe's floor: a random-init network of the same architecture
            reference["metrics"]["random_init"], reference["extra"]["random_init"] = (
                score_random_init(
                    loaded.data,
                    loaded.split,
                    ctx.train_seed,
                    s,
                    device=device,
                    model_name=loaded.model_name,
                )
            )
        # Arrays, not JSON: the driver writes them beside the reference file and records them.
        reference["_outputs"] = outputs_payload(
            loaded.logits,
            data=loaded.data,
            split=loaded.split,
            arrays={} if refs is None else {"oracles.forget": refs},
        )
        return reference, True

    return _outcome(work, job)


@dataclass(frozen=True)
class CellSpec:
    """One cell: a method on a context, with its unlearning seed.

    Attributes:
        entry: The method.
        ctx: The context whose models and split it uses.
        seed: The seed part of the sweep's key of the cell (progress lines, tracking folders).
        unlearn_seed: The seed of the unlearning and of the scoring of the unlearned model.
        identity: What its numbers depend on (checked on resume).
        record: The seed fields of the cell's file (``{"seed": 0}``).
    """

    entry: Entry
    ctx: ContextKey
    seed: Any
    unlearn_seed: int
    identity: dict[str, Any]
    record: dict[str, Any]


def failed_cell(spec: CellSpec, err: RunError) -> SweepCell:
    """The file of a cell whose run stopped with ``err`` (one of :data:`FAILURE_CODES`)."""
    return {
        "format": CELL_FORMAT,
        "status": "failed",
        "identity": spec.identity,
        "method": {"label": spec.entry.label, "source": spec.entry.source},
        "dataset": spec.ctx.dataset,
        "scenario": spec.ctx.scenario,
        **spec.record,
        "error": {"code": err.code, "message": str(err)},
        "finished": time.time(),
    }


def cell_task(job: Job, spec: CellSpec, reference: dict[str, Any]) -> Outcome:
    """Unlearn and score one cell (:func:`~causalunlearn.studies.cell.run_cell`).

    Args:
        reference: The context's reference (:func:`reference_task`): the original's metrics
            set the relearn threshold, the oracle's the gaps.

    Returns:
        An :class:`Outcome` whose value is the cell file's content (finished or failed).
    """

    def work(threads: int) -> SweepCell:
        s, ctx, entry = job.settings, spec.ctx, spec.entry
        loaded = _context(job, ctx)
        original, _ = _model(job, ctx, "original")
        oracle, _ = _model(job, ctx, "oracle")
        device = pick_device(s.device)
        if loaded.forget_logits is None:
            loaded.forget_logits = oracle_forget_logits(oracle, loaded.data, loaded.split, device)
        inputs = CellInputs(
            loaded.data,
            loaded.split,
            original,
            reference["metrics"]["original"],
            oracle,
            reference["metrics"]["oracle"],
            loaded.forget_logits,
            reference_oracles=_reference_oracles(job, ctx),
            model_name=loaded.model_name,
            cache=job.cache,  # LiRA's trained shadows, shared by the sweep's methods
        )
        if s.lira_shadows:  # the references are scored against the cell's shadows too
            for which, net in (("original", original), ("oracle", oracle)):
                if which not in loaded.logits:
                    loaded.logits[which] = predicted(net, loaded.data, device)
            inputs.reference_logits = dict(loaded.logits)
        method, _preset = entry.resolve(ctx.dataset, ctx.scenario)
        where = (ctx.dataset, ctx.scenario, spec.seed)
        try:
            with tracked(s.log_dir, method, entry.label, *where) as cbs:
                outcome = run_cell(
                    method, inputs, spec.unlearn_seed, s, device=device, callbacks=cbs
                )
                final = {"original": inputs.original_metrics, "unlearned": outcome.metrics}
                if inputs.oracle_metrics is not None:
                    final["oracle"] = inputs.oracle_metrics
                notify_end(cbs, final)
        except RunError as err:
            if err.code not in FAILURE_CODES:
                raise
            return failed_cell(spec, err)
        result, split = outcome.result, loaded.split
        return {
            "format": CELL_FORMAT,
            "status": "finished",
            "identity": spec.identity,
            "method": {"label": entry.label, "source": entry.source, "resolved": method.to_dict()},
            "dataset": ctx.dataset,
            "scenario": ctx.scenario,
            **spec.record,
            "model": loaded.model_name,
            "recipe": asdict(s.recipe),
            "device": str(device),
            "executor": s.executor if trains(method) else None,
            "numerics": current().key(),
            "threads": threads,
            "split": {
                "digest": split.digest(),
                "forget": len(split.forget),
                "retain": len(split.retain),
            },
            "metrics": outcome.metrics,
            "extra": outcome.extra,
            "seconds": result.seconds,
            "steps": result.log.steps,
            "versions": versions(),
            "finished": time.time(),
            # Arrays, not JSON: the driver writes them beside the cell file and records them.
            "_outputs": outputs_payload(
                {"unlearned": outcome.logits},
                data=loaded.data,
                split=split,
                arrays={} if outcome.shadows is None else outcome.shadows.arrays(),
            ),
        }

    return _outcome(work, job)
