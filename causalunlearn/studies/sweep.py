"""Sweeps: many methods × datasets × scenarios × seeds, cached, resumable, summarised.

``causalunlearn compare`` and ``causalunlearn ablate`` run a :class:`Sweep`. Its folder::

    OUT/sweep.json                                   the grid and settings
    OUT/references/<dataset>/<scenario>/seed<S>.json original and retrain-oracle metrics
    OUT/runs/<method>/<dataset>/<scenario>/seed<S>.json   one manifest per run (cell)
        (nested seeds: seed<T>-split<S>.json and seed<T>-split<S>-unlearn<U>.json, see
        :class:`~causalunlearn.studies.seeds.CellSeeds`)
    OUT/summary.json, OUT/summary.md                 mean ± std, gap to oracle, best marked
    OUT/plots/*.png                                  metric bars, relearning curves, ablations

A *cell* is one method on one dataset, scenario and
:class:`~causalunlearn.studies.seeds.CellSeeds` (training, split and unlearning seed; the paired
cells of ``seeds`` have one seed for all three). Every file is written atomically, a
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
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from causalunlearn.atomic import atomic_write, write_json
from causalunlearn.data import load_dataset, make_split
from causalunlearn.device import pick_device
from causalunlearn.engine.callbacks import notify_end
from causalunlearn.engine.verbs import model_name_for
from causalunlearn.errors import RunError, shown
from causalunlearn.methods.dispatch import trains
from causalunlearn.numerics import applied, current, limit_threads
from causalunlearn.studies.cell import CellInputs, oracle_forget_logits, run_cell, score_model
from causalunlearn.studies.entries import (
    Entry,
)
from causalunlearn.studies.model_cache import ModelCache
from causalunlearn.studies.outdir import sweep_folder
from causalunlearn.studies.records import (
    CELL_FORMAT,
    SWEEP_FORMAT,
    SweepCell,
    SweepSummary,
    versions,
)
from causalunlearn.studies.seeds import CellSeeds
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.summary import _stats, best_per_column, seed_variance, summary_markdown
from causalunlearn.studies.tracking import tracked

#: Errors that make a run a failed cell instead of stopping the sweep.
FAILURES = (RunError,)
FAILURE_CODES = ("non-finite-loss",)


def _failed_cell(entry, dataset, scenario, seed, identity, err: RunError) -> SweepCell:
    if getattr(err, "code", None) not in FAILURE_CODES:
        raise err
    return {
        "format": CELL_FORMAT,
        "status": "failed",
        "identity": identity,
        "method": {"label": entry.label, "source": entry.source},
        "dataset": dataset,
        "scenario": scenario,
        **CellSeeds.of(seed).record(),
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
    """What the cells of one (dataset, scenario, seed) share: models, split, references."""

    inputs: CellInputs
    model_name: str
    reference: dict[str, Any]


class Sweep:
    """A grid of cells (see the module docstring). ``run()`` computes what is missing."""

    def __init__(
        self,
        entries: Sequence[Entry],
        datasets: Sequence[str],
        scenarios: Sequence[str],
        settings: StudySettings,
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
        if not entries or not datasets or not scenarios or not settings.cell_seeds():
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
        self._threads: int | None = None  # the thread count of the run in progress (recorded)
        self.cache = (
            ModelCache(Path(settings.cache_dir) / "models") if settings.cache_dir else ModelCache()
        )

    # -- layout ---------------------------------------------------------------------------------

    def cell_path(self, label: str, dataset: str, scenario: str, seed: int | CellSeeds) -> Path:
        """Where a cell's manifest lives (an integer ``seed`` is the paired cell of it)."""
        stem = CellSeeds.of(seed).stem
        return self.out / "runs" / label / dataset / _safe(scenario) / f"{stem}.json"

    def reference_path(self, dataset: str, scenario: str, seed: int | CellSeeds) -> Path:
        """Where the original's and oracle's metrics of a (dataset, scenario, training seed,
        split seed) live: one file for every unlearning seed."""
        stem = CellSeeds.of(seed).reference_stem
        return self.out / "references" / dataset / _safe(scenario) / f"{stem}.json"

    def cells(self) -> list[tuple[Entry, str, str, CellSeeds]]:
        """Every cell, in run order: dataset, scenario, training seed, split seed outermost
        (each original, split and oracle loaded once), then the unlearning seed and the method.

        The last item is the cell's :class:`~causalunlearn.studies.seeds.CellSeeds`: its
        ``models`` (``(train, split)``) decide the original, oracle, split and references, its
        ``unlearn`` the unlearning run.
        """
        return [
            (e, d, sc, seeds)
            for d in self.datasets
            for sc in self.scenarios
            for seeds in self.settings.cell_seeds()
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

    def run(self) -> SweepSummary:
        """Compute every missing cell, then write the summary (and plots); return the summary.

        The folder is claimed first (:func:`causalunlearn.studies.outdir.sweep_folder`: created,
        or resumed when it is a sweep folder; anything else is refused before computing) and
        locked until the summary is written, so two sweeps never write one folder. The
        settings' numerics and thread limits (:mod:`causalunlearn.numerics`) are applied before
        any tensor work and recorded in every cell; the numerics in effect before are restored
        at the end.
        """
        with sweep_folder(self.out), applied(self.settings.numerics):
            with limit_threads(self.settings.threads) as threads:
                self._threads = threads
                return self._run_claimed()

    def _run_claimed(self) -> SweepSummary:
        from causalunlearn.progress import progress_bar

        todo = []
        for entry, dataset, scenario, seed in self.cells():
            identity = self._identity(entry, dataset, scenario)
            path = self.cell_path(entry.label, dataset, scenario, seed)
            if self._finished(path, identity) is None:  # raises on a mismatched cell
                todo.append((entry, dataset, scenario, seed, identity, path))
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "sweep.json", self.describe())
        total = len(self.cells())
        bar = progress_bar(
            total=total,
            initial=total - len(todo),
            enabled=self.settings.progress,
            desc="sweep",
            unit="run",
        )
        contexts: dict[tuple[str, str, tuple[int, int]], _Context] = {}
        started, done = time.monotonic(), 0
        try:
            for entry, dataset, scenario, seed, identity, path in todo:
                key = (dataset, scenario, CellSeeds.of(seed).models)  # one per original+split
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
                if bar.disable:  # no bar drawn (logs, CI, nohup): one line per run, with ETA
                    elapsed = time.monotonic() - started
                    _log.info(
                        "[%d/%d] %s %s %s seed %s done; %.1f min so far, about %.1f min left",
                        total - len(todo) + done,
                        total,
                        entry.label,
                        dataset,
                        scenario,
                        seed,
                        elapsed / 60,
                        elapsed / done * (len(todo) - done) / 60,
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
                {
                    "label": e.label,
                    "source": e.source,
                    "preset": e.preset,
                    "remove": e.remove,
                    **({"overrides": dict(e.overrides)} if e.overrides else {}),
                }
                for e in self.entries
            ],
            "datasets": self.datasets,
            "scenarios": self.scenarios,
            **self.settings.seed_plan(),
            "settings": self.settings.key(),
        }

    def _context(self, dataset: str, scenario: str, seed: int | CellSeeds) -> _Context:
        # The seeds that decide the context: the split's, and the training seed of the
        # original and the oracle (which also scores them); the unlearning seed is the cell's.
        seeds = CellSeeds.of(seed)
        s = self.settings
        device = pick_device(s.device)
        data = load_dataset(dataset, s.data_root, cache_dir=s.cache_dir, progress=s.progress)
        split = make_split(data.train_y, scenario, seeds.split, data.num_classes)
        model_name = model_name_for(data, s.model)
        models, info = {}, {}
        for which in ("original", "oracle"):
            models[which], info[which] = self.cache.get(
                data,
                split,
                which,
                model=model_name,
                recipe=s.recipe,
                seed=seeds.train,
                device=device,
                progress=s.progress,
            )
        ref_path = self.reference_path(dataset, scenario, seeds)
        identity = {"split": split.digest(), "model": model_name, "settings": s.key()}
        reference = None
        if ref_path.is_file():
            try:
                reference = read_cell(ref_path)
            except RunError as err:  # derived data: recomputed, not a reason to stop
                _log.warning("%s; recomputing it", err.message)
        kept: dict[str, Any] = {}  # the oracle's outputs, when it is scored here
        if reference is None or reference.get("identity") != identity:
            reference = {"identity": identity, "models": info, "metrics": {}}
            original_forget = None
            for which in ("original", "oracle"):  # the original first: its forget accuracy
                metrics, extra = score_model(
                    models[which],
                    data,
                    split,
                    seeds.train,
                    s,
                    device=device,
                    original_forget_acc=original_forget,
                    keep_logits=kept if which == "oracle" else None,
                )
                reference["metrics"][which] = metrics
                reference.setdefault("extra", {})[which] = extra
                original_forget = reference["metrics"]["original"]["forget_acc"]
            write_json(ref_path, reference)
        inputs = CellInputs(
            data,
            split,
            models["original"],
            reference["metrics"]["original"],
            models["oracle"],
            reference["metrics"]["oracle"],
            oracle_forget_logits(models["oracle"], data, split, device, kept),
        )
        return _Context(inputs, model_name, reference)

    def _run_cell(self, entry, ctx: _Context, dataset, scenario, seed, identity) -> SweepCell:
        seeds = CellSeeds.of(seed)  # ctx holds the models of seeds.models; the run: seeds.unlearn
        s = self.settings
        device = pick_device(s.device)
        method, preset = entry.resolve(dataset, scenario)
        with tracked(s.log_dir, method, entry.label, dataset, scenario, seeds) as callbacks:
            outcome = run_cell(
                method, ctx.inputs, seeds.unlearn, s, device=device, callbacks=callbacks
            )
            final = {"original": ctx.inputs.original_metrics, "unlearned": outcome.metrics}
            if ctx.inputs.oracle_metrics is not None:
                final["oracle"] = ctx.inputs.oracle_metrics
            notify_end(callbacks, final)
        result, split = outcome.result, ctx.inputs.split
        return {
            "format": CELL_FORMAT,
            "status": "finished",
            "identity": identity,
            "method": {"label": entry.label, "source": entry.source, "resolved": method.to_dict()},
            "dataset": dataset,
            "scenario": scenario,
            **seeds.record(),
            "model": ctx.model_name,
            "recipe": asdict(s.recipe),
            "device": str(device),
            "executor": s.executor if trains(method) else None,
            "numerics": current().key(),
            "threads": self._threads,
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
        }

    # -- summary --------------------------------------------------------------------------------

    def summarise(self) -> SweepSummary:
        """Read every finished cell and write ``summary.json`` / ``summary.md`` (and plots)."""
        tables = []
        for dataset in self.datasets:
            for scenario in self.scenarios:
                tables.append(self._table(dataset, scenario))
        summary: SweepSummary = {
            "format": SWEEP_FORMAT,
            "tables": tables,
            "describe": self.describe(),
        }
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
        nested = self.settings.nested
        cell_seeds = self.settings.cell_seeds()
        refs = []  # per (training seed, split seed): its metrics and extras
        for train, split in dict.fromkeys(c.models for c in cell_seeds):
            path = self.reference_path(dataset, scenario, CellSeeds(train, split, split))
            if path.is_file():
                ref = read_cell(path)
                refs.append(((train, split), ref["metrics"], ref.get("extra", {})))
        oracle_by_models = {models: m["oracle"] for models, m, _ in refs}
        rows: dict[str, Any] = {}
        curves = {}
        failures: dict[str, Any] = {}
        variance: dict[str, Any] = {}
        for role in ("original", "oracle"):
            rows[role] = _stats([m[role] for _, m, _ in refs], None)
            rows[role]["seeds"] = [f"{t}/{s}" if nested else t for (t, s), _, _ in refs]
            runs = [extra.get(role, {}).get("relearning_curve") for _, _, extra in refs]
            if runs and all(runs):
                curves[role] = runs
            if nested:
                variance[role] = seed_variance(
                    [(models, m[role]) for models, m, _ in refs], ("train", "split")
                )
        for entry in self.entries:
            cells, failed = [], []
            for seeds in cell_seeds:
                path = self.cell_path(entry.label, dataset, scenario, seeds)
                if path.is_file():
                    cell = read_cell(path)
                    (failed if cell.get("status") == "failed" else cells).append(cell)
            if failed:
                failures[entry.label] = {
                    "seeds": [CellSeeds.of_record(c).name(nested) for c in failed],
                    "errors": sorted({c["error"]["code"] for c in failed}),
                }
            if not cells:
                if failed:
                    rows[entry.label] = {"seeds": []}
                continue
            keys = [CellSeeds.of_record(c) for c in cells]
            per_seed = [c["metrics"] for c in cells]
            oracles = [oracle_by_models.get(k.models) for k in keys]
            rows[entry.label] = _stats(per_seed, oracles)
            rows[entry.label]["seeds"] = [k.name(nested) for k in keys]
            if nested:
                variance[entry.label] = seed_variance(
                    [
                        ((k.train, k.split, k.unlearn), m)
                        for k, m in zip(keys, per_seed, strict=True)
                    ]
                )
            if all("relearning_curve" in c["extra"] for c in cells):
                curves[entry.label] = [c["extra"]["relearning_curve"] for c in cells]
        methods = [e.label for e in self.entries if e.label in rows]
        best = best_per_column(rows, methods)
        table = {
            "failures": failures,
            "dataset": dataset,
            "scenario": scenario,
            "methods": methods,
            "rows": rows,
            "best": best,
            "curves": curves,
        }
        if nested:  # paired seeds cannot be told apart: no decomposition (docs/sweeps.md)
            table["variance"] = variance
        return table
