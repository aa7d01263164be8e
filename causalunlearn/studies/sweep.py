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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from causalunlearn.atomic import atomic_write, write_json
from causalunlearn.data import default_cache_dir, resolve_data_root
from causalunlearn.errors import CausalUnlearnError, RunError, shown
from causalunlearn.numerics import applied, limit_threads
from causalunlearn.plugins import imported_plugins
from causalunlearn.studies.backends import Backend, parse_backend
from causalunlearn.studies.backends.plan import Plan, SweepProgress, run_plan
from causalunlearn.studies.backends.tasks import CellSpec, ContextKey, Job
from causalunlearn.studies.comparison import ROLE_LABELS, comparison_markdown, sweep_comparisons
from causalunlearn.studies.entries import (
    Entry,
)
from causalunlearn.studies.model_cache import ModelCache
from causalunlearn.studies.outdir import sweep_folder
from causalunlearn.studies.outputs import beside, write_payload
from causalunlearn.studies.records import (
    SWEEP_FORMAT,
    SweepSummary,
)
from causalunlearn.studies.seeds import CellSeeds
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.shadows import reference_lira
from causalunlearn.studies.summary import _stats, best_per_column, seed_variance, summary_markdown

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


def _stored_reference(path: Path) -> dict[str, Any] | None:
    """The reference file at ``path``, or ``None`` (missing, or unreadable: derived data, it is
    recomputed, not a reason to stop)."""
    if not path.is_file():
        return None
    try:
        return read_cell(path)
    except RunError as err:
        _log.warning("%s; recomputing it", err.message)
        return None


def _with_cell_lira(oracle: dict[str, Any] | None, cell: dict[str, Any]) -> dict[str, Any] | None:
    """The oracle's metrics a cell's gaps are measured against: the reference file's, plus, with
    ``--lira-shadows``, the oracle's LiRA scores on *this cell's* shadows (they unlearned with the
    cell's method, so the reference file has none)."""
    details = cell.get("extra", {}).get("lira", {}).get("oracle")
    if oracle is None or not details:
        return oracle
    return {**oracle, **reference_lira(details)}


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
        backend: Backend | str | None = None,
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
        self.backend = parse_backend(backend)
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

        The cells run on the sweep's backend (:mod:`causalunlearn.studies.backends`: in this
        process, or on Ray) as a task graph: each original and oracle trained once, then scored
        (from the model cache's metrics when it has them), then the cells, each written here as
        it arrives.

        The folder is claimed first (:func:`causalunlearn.studies.outdir.sweep_folder`: created,
        or resumed when it is a sweep folder; anything else is refused before computing) and
        locked until the summary is written, so two sweeps never write one folder. The
        settings' numerics and thread limits (:mod:`causalunlearn.numerics`) are applied before
        any tensor work and recorded in every cell; the numerics in effect before are restored
        at the end.
        """
        with sweep_folder(self.out), applied(self.settings.numerics):
            with limit_threads(self.settings.threads):
                return self._run_claimed()

    def _run_claimed(self) -> SweepSummary:
        todo = []
        for entry, dataset, scenario, seed in self.cells():
            identity = self._identity(entry, dataset, scenario)
            path = self.cell_path(entry.label, dataset, scenario, seed)
            if self._finished(path, identity) is None:  # raises on a mismatched cell
                todo.append((entry, dataset, scenario, seed, identity, path))
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "sweep.json", self.describe())
        plan = Plan(self._job())
        for entry, dataset, scenario, seed, identity, path in todo:
            spec = self._cell_spec(entry, dataset, scenario, seed, identity)
            plan.add(spec, path, self.reference_path(dataset, scenario, seed), _stored_reference)
        total = len(self.cells())
        progress = SweepProgress(total, total - len(todo), enabled=self.settings.progress)

        # Per-example outputs (studies/outputs.py) come back as arrays: written beside the file
        # first, so a reference or cell on disk always has its outputs.
        def on_reference(path: Path, reference: dict[str, Any], changed: bool) -> None:
            payload = reference.pop("_outputs", None)
            if changed:
                if payload is not None:
                    reference["outputs"] = write_payload(beside(path), payload)
                write_json(path, reference)

        def on_cell(_spec: CellSpec, path: Path, cell: dict[str, Any]) -> None:
            payload = cell.pop("_outputs", None)
            if payload is not None:
                cell["outputs"] = write_payload(beside(path), payload)
            write_json(path, cell)
            if self.on_cell is not None:
                self.on_cell(cell)

        try:
            run_plan(
                plan, self.backend, on_reference=on_reference, on_cell=on_cell, progress=progress
            )
        finally:
            progress.close()
        return self.summarise()

    def _cell_spec(self, entry: Entry, dataset: str, scenario: str, seed, identity) -> CellSpec:
        """A cell of ``cells()`` as its task takes it: the (dataset, scenario, training seed,
        split seed) whose models and references it uses, and the unlearning seed."""
        seeds = CellSeeds.of(seed)
        ctx = ContextKey(dataset, scenario, train_seed=seeds.train, split_seed=seeds.split)
        return CellSpec(entry, ctx, seeds, seeds.unlearn, identity, seeds.record())

    def _job(self) -> Job:
        """What every task shares. Workers get the data and cache folders as this process
        resolves them (a worker's environment may differ), and draw no bars."""
        s = self.settings
        threads = self.backend.threads_per_cell(s.threads)
        cache = ModelCache(Path(self.cache.root).absolute())
        if self.backend.kind == "local":
            return Job(s, cache, threads, (), s.data_root, s.cache_dir, s.progress)
        root = resolve_data_root(s.data_root)
        return Job(
            s,
            cache,
            threads,
            imported_plugins(),  # this process has them loaded; Ray's workers load them first
            None if root is None else str(root.absolute()),
            str(Path(s.cache_dir or default_cache_dir()).absolute()),
            progress=False,
        )

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
        atomic_write(
            self.out / "summary.md",
            summary_markdown(summary) + "\n" + comparison_markdown(summary),
        )
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
                # nested seeds: the variance by seed (None without parts to draw)
                plots.variance_figure(table, self.out / "plots" / f"variance-{stem}.png"),
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
            per_class = table.get("per_class") or {}
            if per_class:  # the test confusion matrices, summed over seeds
                paths.append(
                    plots.confusion_matrices(
                        {
                            ROLE_LABELS.get(k, k): v["test"]["confusion"]
                            for k, v in per_class.items()
                        },
                        f"Test confusion matrices, {table['dataset']}, {table['scenario']}"
                        " (summed over seeds)",
                        self.out / "plots" / f"confusion-{stem}.png",
                    )
                )
            written += [str(p.relative_to(self.out)) for p in paths if p is not None]
        return written

    def _klom(
        self,
        dataset: str,
        scenario: str,
        cells: Sequence[tuple[Path, dict[str, Any]]],
        keys: Sequence[CellSeeds],
    ) -> dict[str, Any] | None:
        """``oracle_klom`` of one method's finished cells (``(path, cell)``, seeds ``keys``):
        :func:`~causalunlearn.studies.oracles.group_klom` of the outputs saved beside the cells
        and their references, no model loaded. ``None`` where it cannot apply (fewer than two
        cells, or fewer than ``KLOM_MIN_ORACLES`` oracles among their training seeds' K each,
        or cells whose forget rows differ); ``{"missing": why}`` when an outputs file cannot be
        read (a sweep of a version that did not save them)."""
        from causalunlearn.metrics.oracle_distribution import KLOM_MIN_ORACLES
        from causalunlearn.studies.oracles import group_klom, oracle_seeds
        from causalunlearn.studies.outputs import load_outputs

        oracles = {s for k in keys for s in oracle_seeds(k.train, self.settings.oracles)}
        if len(cells) < 2 or len(oracles) < KLOM_MIN_ORACLES:
            return None  # decided without reading a file: a sweep without --oracles pays nothing
        references: dict[Path, Any] = {}
        members = []
        try:
            for (path, cell), key in zip(cells, keys, strict=True):
                ref = beside(self.reference_path(dataset, scenario, key))
                if ref not in references:
                    references[ref] = load_outputs(ref)
                outs = load_outputs(beside(path), split_digest=cell["split"]["digest"])
                members.append((outs, references[ref], key.train))
        except CausalUnlearnError as err:
            return {"missing": f"[{err.code}] {err.message}"}
        klom = group_klom(members, seed=keys[0].train)
        if klom is None:
            return None
        return {**klom, "seeds": [k.name(self.settings.nested) for k in keys]}

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
        if any("random_init" in m for _, m, _ in refs):  # the probe's floor (--probe)
            rows["random_init"] = _stats([m.get("random_init", {}) for _, m, _ in refs], None)
            rows["random_init"]["seeds"] = rows["original"]["seeds"]
        distribution: dict[str, Any] = {}  # per method: its oracle_klom (one for all seeds)
        for entry in self.entries:
            cells, failed, paths = [], [], []
            for seeds in cell_seeds:
                path = self.cell_path(entry.label, dataset, scenario, seeds)
                if path.is_file():
                    cell = read_cell(path)
                    if cell.get("status") == "failed":
                        failed.append(cell)
                    else:
                        cells.append(cell)
                        paths.append(path)
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
            oracles = [
                _with_cell_lira(oracle_by_models.get(k.models), c)
                for k, c in zip(keys, cells, strict=True)
            ]
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
            klom = self._klom(dataset, scenario, list(zip(paths, cells, strict=True)), keys)
            if klom is not None:
                distribution[entry.label] = klom
                if "value" in klom:  # one value for the group: no ±, no gap
                    rows[entry.label]["oracle_klom"] = {
                        "mean": klom["value"],
                        "std": float("nan"),
                        "n": klom["n_models"],
                        "ci": klom["ci"],
                    }
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
        if distribution:  # --oracles K: the methods' oracle_klom, interval and seeds
            table["oracle_distribution"] = distribution
        table.update(sweep_comparisons(self, dataset, scenario, methods))  # per-class, paired
        return table
