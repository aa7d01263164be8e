"""Sweeps: many methods × datasets × scenarios × seeds, cached, resumable, summarised.

``causalunlearn compare`` and ``causalunlearn ablate`` run a :class:`Sweep`. Its folder::

    OUT/sweep.json                                   the grid and settings
    OUT/references/<dataset>/<scenario>/seed<S>.json original and retrain-oracle metrics
    OUT/runs/<method>/<dataset>/<scenario>/seed<S>.json   one manifest per run (cell)
    OUT/summary.json, OUT/summary.md                 mean ± std, gap to oracle, best marked
    OUT/plots/*.png                                  metric bars, relearning curves, ablations

A *cell* is one method on one dataset, scenario and seed. Every file is written atomically, a
cell only once it is complete, so an interrupted sweep leaves finished cells and nothing half
written; running it again skips them (resume) and computes the rest. A cell is a pure function
of its settings and seed (every random draw is seeded, and torch's global generator is seeded
at the start of each cell), so the resumed sweep ends with the same numbers as one that was
never interrupted. A cell file made with a different graph or settings is an error, not a
silent mix (``--overwrite`` recomputes it).

Original models and oracles come from :class:`~causalunlearn.studies.model_cache.ModelCache`
(trained once per architecture, training data, recipe and seed), so a new method added to a
finished sweep costs only its own runs.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from causalunlearn.atomic import atomic_write, write_json
from causalunlearn.data import load_dataset, make_split
from causalunlearn.device import pick_device
from causalunlearn.engine.verbs import model_name_for, unlearn
from causalunlearn.errors import RunError, shown
from causalunlearn.graph import spec as S
from causalunlearn.metrics.accuracy import predict
from causalunlearn.metrics.catalogue import AVERAGE_GAP, keys
from causalunlearn.metrics.evaluate import scores_from_logits
from causalunlearn.metrics.gaps import activation_distance, average_gap, tow
from causalunlearn.metrics.relearn import relearn_time, relearning_curve
from causalunlearn.recipes import Recipe
from causalunlearn.studies.entries import (
    Entry,
)
from causalunlearn.studies.model_cache import ModelCache
from causalunlearn.studies.outdir import sweep_folder
from causalunlearn.studies.summary import _stats, best_per_column, summary_markdown

SWEEP_FORMAT = "causalunlearn.sweep/v1"
CELL_FORMAT = "causalunlearn.cell/v1"

#: Relearn time: Adam (lr 1e-3, batch 32) fine-tuning on the forget rows, forget accuracy
#: measured every RELEARN_EVERY steps, until it reaches RELEARN_FRACTION × the original's;
#: censored at RELEARN_CAP steps (reported as cap + 1).
RELEARN_EVERY = 5
RELEARN_CAP = 200
RELEARN_FRACTION = 0.9
#: Forget accuracy during relearning is measured on this many forget rows (a seeded sample;
#: all of them when fewer), training still uses every forget row.
RELEARN_EVAL_ROWS = 1000

#: The relearning curve of the CaMU paper: one epoch of fine-tuning on retain data (Adam 1e-3,
#: batch 32), accuracies every CURVE_EVERY steps, at most CURVE_STEPS steps.
CURVE_EVERY = 20
CURVE_STEPS = 400
CURVE_EVAL_ROWS = 2000


@dataclass
class SweepSettings:
    """Settings shared by every cell of a sweep (their digest guards resumed cells).

    Attributes:
        seeds: Seeds (each seeds the split, the original, the unlearning and the oracle).
        model: Registered model (default per dataset).
        recipe: Training recipe of originals and oracles.
        attacker: Attacker of the official CaMU attack (``gbdt`` or ``xgboost``).
        relearn: Also measure relearn time (fine-tuning on the forget rows).
        curves: Also record the CaMU paper's relearning curve (fine-tuning on retain rows).
        data_root, cache_dir, device, threads, progress, executor: As in ``RunSettings``
            (the executor is recorded in each run's file, not in its identity: both executors
            compute the same numbers, to 1e-5 — tests/test_executor.py).
    """

    seeds: Sequence[int] = (0, 1, 2)
    model: str | None = None
    recipe: Recipe = field(default_factory=Recipe)
    attacker: str = "gbdt"
    relearn: bool = False
    curves: bool = False
    data_root: str | None = None
    cache_dir: str | None = None
    device: str | None = None
    threads: int | None = None
    progress: bool = True
    executor: str = "fast"

    def key(self) -> dict[str, Any]:
        """What a cell's numbers depend on besides the method, dataset, scenario and seed."""
        return {
            "model": self.model,
            "recipe": self.recipe.key(),
            "attacker": self.attacker,
            "relearn": self.relearn
            and {
                "every": RELEARN_EVERY,
                "cap": RELEARN_CAP,
                "fraction": RELEARN_FRACTION,
                "eval_rows": RELEARN_EVAL_ROWS,
            },
            "curves": self.curves
            and {"every": CURVE_EVERY, "steps": CURVE_STEPS, "eval_rows": CURVE_EVAL_ROWS},
        }


#: Errors that make a run a failed cell instead of stopping the sweep.
FAILURES = (RunError,)
FAILURE_CODES = ("non-finite-loss",)


def _failed_cell(entry, dataset, scenario, seed, identity, err: RunError) -> dict[str, Any]:
    if getattr(err, "code", None) not in FAILURE_CODES:
        raise err
    return {
        "format": CELL_FORMAT,
        "status": "failed",
        "identity": identity,
        "method": {"label": entry.label, "source": entry.source},
        "dataset": dataset,
        "scenario": scenario,
        "seed": seed,
        "error": {"code": err.code, "message": str(err)},
        "finished": time.time(),
    }


_log = logging.getLogger(__name__)


def read_cell(path: Path) -> dict[str, Any]:
    """A sweep folder's JSON file (a cell or a reference), checked to be a JSON object.

    Raises:
        RunError: ``corrupt-cell`` naming the file (truncated by a full disk, edited by hand, ...)
            and how to recompute it.
    """
    try:
        cell = json.loads(path.read_bytes())
    except (OSError, ValueError) as err:  # ValueError: JSON and UTF-8 decoding errors
        why = shown(str(err))
    else:
        if isinstance(cell, dict):
            return cell
        why = f"it holds a {type(cell).__name__}, not a JSON object"
    raise RunError(
        "corrupt-cell",
        f"sweep file {path} cannot be read ({why})",
        "delete that file and run the sweep again to recompute it (the other cells are kept),"
        " or rerun with --overwrite to recompute every unreadable cell",
    )


def _safe(text: str) -> str:
    return text.replace(":", "-").replace(",", "_").replace("/", "_").replace("=", "")


@dataclass
class _Context:
    """What every cell of one (dataset, scenario, seed) shares."""

    data: Any
    split: Any
    model_name: str
    original: torch.nn.Module
    oracle: torch.nn.Module
    oracle_forget_logits: torch.Tensor
    reference: dict[str, Any]


class Sweep:
    """A grid of cells (see the module docstring). ``run()`` computes what is missing."""

    def __init__(
        self,
        entries: Sequence[Entry],
        datasets: Sequence[str],
        scenarios: Sequence[str],
        settings: SweepSettings,
        out: str | Path,
        *,
        overwrite: bool = False,
        plots: bool = True,
        on_cell: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        labels = [e.label for e in entries]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise RunError(
                "duplicate-method",
                f"methods named twice in the sweep: {', '.join(dupes)}",
                "give each a distinct label (a graph's `name`, or PATH@PRESET for presets)",
            )
        if not entries or not datasets or not scenarios or not settings.seeds:
            raise RunError(
                "empty-sweep",
                "a sweep needs at least one method, dataset, scenario and seed",
                "e.g. causalunlearn compare graphs/camu.yaml --dataset digits --seeds 0,1,2",
            )
        self.entries = list(entries)
        self.datasets = list(datasets)
        self.scenarios = list(scenarios)
        self.settings = settings
        self.out = Path(out)
        self.overwrite = overwrite
        self.on_cell = on_cell
        self.plots = plots
        self.cache = (
            ModelCache(Path(settings.cache_dir) / "models") if settings.cache_dir else ModelCache()
        )

    # -- layout ---------------------------------------------------------------------------------

    def cell_path(self, label: str, dataset: str, scenario: str, seed: int) -> Path:
        """Where a cell's manifest lives."""
        return self.out / "runs" / label / dataset / _safe(scenario) / f"seed{seed}.json"

    def reference_path(self, dataset: str, scenario: str, seed: int) -> Path:
        """Where the original's and oracle's metrics of a (dataset, scenario, seed) live."""
        return self.out / "references" / dataset / _safe(scenario) / f"seed{seed}.json"

    def cells(self) -> list[tuple[Entry, str, str, int]]:
        """Every cell, in run order (dataset, scenario, seed outermost: models loaded once)."""
        return [
            (e, d, sc, seed)
            for d in self.datasets
            for sc in self.scenarios
            for seed in self.settings.seeds
            for e in self.entries
        ]

    def _identity(self, entry: Entry, dataset: str, scenario: str) -> dict[str, Any]:
        method, preset = entry.resolve(dataset, scenario)
        return {
            "method": entry.label,
            "digest": method.digest(),
            "preset": preset,
            "settings": self.settings.key(),
        }

    def _finished(self, path: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        try:
            cell = read_cell(path)
        except RunError:
            if self.overwrite:  # recomputed like a cell of other settings
                return None
            raise
        if cell.get("identity") == identity:
            return cell
        if self.overwrite:
            return None
        raise RunError(
            "sweep-mismatch",
            f"{path} was computed with another graph or settings"
            f" ({cell.get('identity')} ≠ {identity})",
            "use another --out for the new sweep, or --overwrite to recompute such cells",
        )

    # -- running --------------------------------------------------------------------------------
    # A run that stops with a non-finite loss is written as a *failed* cell (its error named);
    # the sweep goes on, resuming skips it like a finished one (it is deterministic), and the
    # summary says which seeds failed.

    def run(self) -> dict[str, Any]:
        """Compute every missing cell, then write the summary (and plots); return the summary.

        The folder is claimed first (:func:`causalunlearn.studies.outdir.sweep_folder`: created,
        or resumed when it is a sweep folder; anything else is refused before computing) and
        locked until the summary is written, so two sweeps never write one folder.
        """
        with sweep_folder(self.out):
            return self._run_claimed()

    def _run_claimed(self) -> dict[str, Any]:
        from tqdm.auto import tqdm

        if self.settings.threads:
            torch.set_num_threads(self.settings.threads)
        todo = []
        for entry, dataset, scenario, seed in self.cells():
            identity = self._identity(entry, dataset, scenario)
            path = self.cell_path(entry.label, dataset, scenario, seed)
            if self._finished(path, identity) is None:  # raises on a mismatched cell
                todo.append((entry, dataset, scenario, seed, identity, path))
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "sweep.json", self.describe())
        total = len(self.cells())
        bar = tqdm(
            total=total,
            initial=total - len(todo),
            disable=not self.settings.progress,
            desc="sweep",
            unit="run",
        )
        contexts: dict[tuple[str, str, int], _Context] = {}
        started, done = time.monotonic(), 0
        try:
            for entry, dataset, scenario, seed, identity, path in todo:
                key = (dataset, scenario, seed)
                if key not in contexts:
                    contexts.clear()  # one (dataset, scenario, seed) in memory at a time
                    contexts[key] = self._context(dataset, scenario, seed)
                bar.set_postfix_str(f"{entry.label} {dataset} {scenario} seed {seed}")
                try:
                    cell = self._run_cell(entry, contexts[key], dataset, scenario, seed, identity)
                except FAILURES as err:  # a diverged method is a result, not a crash
                    cell = _failed_cell(entry, dataset, scenario, seed, identity, err)
                write_json(path, cell)
                bar.update(1)
                done += 1
                if not self.settings.progress:  # logs (CI, nohup): one line per run, with ETA
                    elapsed = time.monotonic() - started
                    print(
                        f"[{total - len(todo) + done}/{total}] {entry.label} {dataset} {scenario}"
                        f" seed {seed} done; {elapsed / 60:.1f} min so far, about"
                        f" {elapsed / done * (len(todo) - done) / 60:.1f} min left",
                        file=sys.stderr,
                        flush=True,
                    )
                if self.on_cell is not None:
                    self.on_cell(cell)
        finally:
            bar.close()
        summary = self.summarise()
        return summary

    def describe(self) -> dict[str, Any]:
        """The grid as JSON (``sweep.json``)."""
        return {
            "format": SWEEP_FORMAT,
            "methods": [
                {"label": e.label, "source": e.source, "preset": e.preset, "remove": e.remove}
                for e in self.entries
            ],
            "datasets": self.datasets,
            "scenarios": self.scenarios,
            "seeds": list(self.settings.seeds),
            "settings": self.settings.key(),
        }

    def _context(self, dataset: str, scenario: str, seed: int) -> _Context:
        s = self.settings
        device = pick_device(s.device)
        data = load_dataset(dataset, s.data_root, cache_dir=s.cache_dir, progress=s.progress)
        split = make_split(data.train_y, scenario, seed, data.num_classes)
        model_name = model_name_for(data, s.model)
        models, info = {}, {}
        for which in ("original", "oracle"):
            models[which], info[which] = self.cache.get(
                data,
                split,
                which,
                model=model_name,
                recipe=s.recipe,
                seed=seed,
                device=device,
                progress=s.progress,
            )
        ref_path = self.reference_path(dataset, scenario, seed)
        identity = {"split": split.digest(), "model": model_name, "settings": s.key()}
        reference = None
        if ref_path.is_file():
            try:
                reference = read_cell(ref_path)
            except RunError as err:  # derived data: recomputed, not a reason to stop
                _log.warning("%s; recomputing it", err.message)
        if reference is None or reference.get("identity") != identity:
            reference = {"identity": identity, "models": info, "metrics": {}}
            original_forget = None
            for which in ("original", "oracle"):  # the original first: its forget accuracy
                metrics, extra = self._score(
                    models[which], data, split, seed, None, original_forget
                )
                reference["metrics"][which] = metrics
                reference.setdefault("extra", {})[which] = extra
                original_forget = reference["metrics"]["original"]["forget_acc"]
            write_json(ref_path, reference)
        forget_rows = torch.as_tensor(split.forget.copy())
        oracle_forget = predict(models["oracle"], data.train_x[forget_rows], device=device).cpu()
        return _Context(
            data, split, model_name, models["original"], models["oracle"], oracle_forget, reference
        )

    def _score(self, net, data, split, seed, oracle_forget_logits, original_forget_acc):
        """Every metric of one model; with the oracle's forget logits, the oracle comparisons."""
        s = self.settings
        device = pick_device(s.device)
        logits_train = predict(net, data.train_x, device=device).cpu()
        logits_test = predict(net, data.test_x, device=device).cpu()
        metrics = scores_from_logits(
            logits_train, logits_test, data, split, seed=seed, attacker=s.attacker, extended=True
        )
        extra: dict[str, Any] = {}
        forget = torch.as_tensor(split.forget.copy())
        if oracle_forget_logits is not None:
            metrics["activation_distance"] = activation_distance(
                logits_train[forget], oracle_forget_logits
            )
        if s.relearn:
            x_f, y_f = data.train_x[forget], data.train_y[forget]
            rows = torch.randperm(len(forget), generator=torch.Generator().manual_seed(seed))
            rows = rows[:RELEARN_EVAL_ROWS]
            threshold = RELEARN_FRACTION * (original_forget_acc or metrics["forget_acc"])
            curve = relearning_curve(
                net,
                x_f,
                y_f,
                {"forget": (x_f[rows], y_f[rows])},
                steps_per_point=RELEARN_EVERY,
                epochs=math.ceil(RELEARN_CAP * 32 / max(1, len(forget))) + 1,
                seed=seed,
                max_steps=RELEARN_CAP,
            )
            metrics["relearn_steps"] = float(
                relearn_time(curve["forget"], threshold, steps=curve["step"], cap=RELEARN_CAP)
            )
            extra["relearn_threshold"] = threshold
        if s.curves:
            extra["relearning_curve"] = self._curve(net, data, split, seed)
        return metrics, extra

    def _curve(self, net, data, split, seed) -> dict[str, list[Any]]:
        gen = torch.Generator().manual_seed(seed)
        retain = torch.as_tensor(split.retain.copy())
        forget = torch.as_tensor(split.forget.copy())
        test_rows = torch.randperm(len(data.test_y), generator=gen)[:CURVE_EVAL_ROWS]
        forget_rows = forget[torch.randperm(len(forget), generator=gen)[:CURVE_EVAL_ROWS]]
        return relearning_curve(
            net,
            data.train_x[retain],
            data.train_y[retain],
            {
                "forget": (data.train_x[forget_rows], data.train_y[forget_rows]),
                "test": (data.test_x[test_rows], data.test_y[test_rows]),
            },
            steps_per_point=CURVE_EVERY,
            seed=seed,
            max_steps=CURVE_STEPS,
        )

    def _run_cell(self, entry, ctx: _Context, dataset, scenario, seed, identity) -> dict[str, Any]:
        s = self.settings
        device = pick_device(s.device)
        method, preset = entry.resolve(dataset, scenario)
        torch.manual_seed(seed)
        if isinstance(method, S.Graph):
            result = unlearn(
                method,
                ctx.original,
                ctx.data,
                ctx.split,
                seed=seed,
                device=device,
                progress=False,
                executor=s.executor,
            )
        else:
            result = method.run(
                ctx.original, ctx.data, ctx.split, seed=seed, device=device, progress=False
            )
        torch.manual_seed(seed)
        metrics, extra = self._score(
            result.model,
            ctx.data,
            ctx.split,
            seed,
            ctx.oracle_forget_logits,
            ctx.reference["metrics"]["original"]["forget_acc"],
        )
        oracle = ctx.reference["metrics"]["oracle"]
        metrics["unlearn_seconds"] = result.seconds["total"]
        metrics["average_gap"] = average_gap(metrics, oracle, keys(AVERAGE_GAP))
        metrics["tow"] = tow(metrics, oracle)
        from causalunlearn.studies.experiment import versions

        return {
            "format": CELL_FORMAT,
            "status": "finished",
            "identity": identity,
            "method": {"label": entry.label, "source": entry.source, "resolved": method.to_dict()},
            "dataset": dataset,
            "scenario": scenario,
            "seed": seed,
            "model": ctx.model_name,
            "recipe": asdict(s.recipe),
            "device": str(device),
            "executor": s.executor if isinstance(method, S.Graph) else None,
            "split": {
                "digest": ctx.split.digest(),
                "forget": len(ctx.split.forget),
                "retain": len(ctx.split.retain),
            },
            "metrics": metrics,
            "extra": extra,
            "seconds": result.seconds,
            "steps": result.log.steps,
            "versions": versions(),
            "finished": time.time(),
        }

    # -- summary --------------------------------------------------------------------------------

    def summarise(self) -> dict[str, Any]:
        """Read every finished cell and write ``summary.json`` / ``summary.md`` (and plots)."""
        tables = []
        for dataset in self.datasets:
            for scenario in self.scenarios:
                tables.append(self._table(dataset, scenario))
        summary = {"format": SWEEP_FORMAT, "tables": tables, "describe": self.describe()}
        if self.plots:
            summary["plots"] = self.draw(summary)
        write_json(self.out / "summary.json", summary)
        atomic_write(self.out / "summary.md", summary_markdown(summary))
        return summary

    def draw(self, summary: dict[str, Any]) -> list[str]:
        """Write the plots of every table; return their paths relative to the sweep folder."""
        from causalunlearn.studies import plots

        written = []
        for table in summary["tables"]:
            if not table["methods"]:
                continue
            stem = f"{table['dataset']}-{_safe(table['scenario'])}"
            paths = [
                plots.metric_bars(table, self.out / "plots" / f"bars-{stem}.png"),
                plots.relearning_curves(table, self.out / "plots" / f"relearn-{stem}.png"),
            ]
            ablations = [e for e in self.entries if e.remove]
            if ablations:
                base = next((e for e in self.entries if not e.remove), None)
                graphs = {
                    e.label: e.resolve(table["dataset"], table["scenario"])[0]
                    for e in ([base] if base else []) + ablations
                }
                paths.append(
                    plots.ablation_figure(
                        table,
                        graphs,
                        base.label if base else "",
                        self.out / "plots" / f"ablation-{stem}.png",
                    )
                )
            written += [str(p.relative_to(self.out)) for p in paths if p is not None]
        return written

    def _table(self, dataset: str, scenario: str) -> dict[str, Any]:
        refs = []
        for seed in self.settings.seeds:
            path = self.reference_path(dataset, scenario, seed)
            if path.is_file():
                ref = read_cell(path)
                refs.append((seed, ref["metrics"], ref.get("extra", {})))
        oracle_by_seed = {seed: m["oracle"] for seed, m, _ in refs}
        rows: dict[str, Any] = {}
        curves = {}
        failures: dict[str, Any] = {}
        for role in ("original", "oracle"):
            rows[role] = _stats([m[role] for _, m, _ in refs], None)
            rows[role]["seeds"] = [seed for seed, _, _ in refs]
            runs = [extra.get(role, {}).get("relearning_curve") for _, _, extra in refs]
            if runs and all(runs):
                curves[role] = runs
        for entry in self.entries:
            cells, failed = [], []
            for seed in self.settings.seeds:
                path = self.cell_path(entry.label, dataset, scenario, seed)
                if path.is_file():
                    cell = read_cell(path)
                    (failed if cell.get("status") == "failed" else cells).append(cell)
            if failed:
                failures[entry.label] = {
                    "seeds": [c["seed"] for c in failed],
                    "errors": sorted({c["error"]["code"] for c in failed}),
                }
            if not cells:
                if failed:
                    rows[entry.label] = {"seeds": []}
                continue
            per_seed = [c["metrics"] for c in cells]
            oracles = [oracle_by_seed.get(c["seed"]) for c in cells]
            rows[entry.label] = _stats(per_seed, oracles)
            rows[entry.label]["seeds"] = [c["seed"] for c in cells]
            if all("relearning_curve" in c["extra"] for c in cells):
                curves[entry.label] = [c["extra"]["relearning_curve"] for c in cells]
        methods = [e.label for e in self.entries if e.label in rows]
        best = best_per_column(rows, methods)
        return {
            "failures": failures,
            "dataset": dataset,
            "scenario": scenario,
            "methods": methods,
            "rows": rows,
            "best": best,
            "curves": curves,
        }
