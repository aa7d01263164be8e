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

Original models and oracles come from :class:`~causalunlearn.pipeline.ModelCache` (trained
once per dataset, model, recipe and seed), so a new method added to a finished sweep costs only
its own runs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from causalunlearn.atomic import atomic_write
from causalunlearn.data import load_dataset, make_split
from causalunlearn.errors import RunError, did_you_mean
from causalunlearn.graph import spec as S
from causalunlearn.graph.edit import remove_intervention, with_preset
from causalunlearn.metrics.accuracy import predict
from causalunlearn.metrics.gaps import activation_distance, average_gap, mean_std, tow
from causalunlearn.metrics.relearn import relearn_time, relearning_curve
from causalunlearn.pipeline import ModelCache, _model_name, pick_device, scores_from_logits, unlearn
from causalunlearn.recipes import Recipe

SWEEP_FORMAT = "causalunlearn.sweep/v1"
CELL_FORMAT = "causalunlearn.cell/v1"

#: Metrics of the summary, in column order: key, column label, what is ideal.
#: "oracle" means the retrain oracle's value is ideal (the gap to it is what is judged).
SUMMARY_METRICS: tuple[tuple[str, str, str], ...] = (
    ("forget_acc", "Forget acc", "oracle"),
    ("retain_acc", "Retain acc", "oracle"),
    ("test_acc", "Test acc", "oracle"),
    ("test_retained_classes_acc", "Test acc (kept classes)", "oracle"),
    ("mia_forget_member_rate", "MIA CaMU (forget→member)", "oracle"),
    ("mia_efficacy_svc", "MIA-efficacy (SVC)", "oracle"),
    ("mia_entropy_member_rate", "MIA entropy (member)", "oracle"),
    ("mia_loss_cv_acc", "MIA loss-CV acc", "oracle"),
    ("activation_distance", "Act. dist. to oracle", "low"),
    ("relearn_steps", "Relearn steps", "oracle"),
    ("average_gap", "Avg gap", "low"),
    ("tow", "ToW", "high"),
    ("unlearn_seconds", "Time (s)", "low"),
)

#: Metrics averaged into ``average_gap`` (percentage points): forget, retain and test accuracy
#: and SalUn's MIA-efficacy, as in SalUn's tables.
AVERAGE_GAP_KEYS = ("forget_acc", "retain_acc", "test_acc", "mia_efficacy_svc")

#: Relearn time: Adam (lr 1e-3, batch 32) fine-tuning on the forget rows, forget accuracy
#: measured every RELEARN_EVERY steps, until it reaches RELEARN_FRACTION × the original's;
#: censored at RELEARN_CAP steps (reported as cap + 1).
RELEARN_EVERY = 5
RELEARN_CAP = 200
RELEARN_FRACTION = 0.9

#: The relearning curve of the CaMU paper: one epoch of fine-tuning on retain data (Adam 1e-3,
#: batch 32), accuracies every CURVE_EVERY steps, at most CURVE_STEPS steps.
CURVE_EVERY = 20
CURVE_STEPS = 400
CURVE_EVAL_ROWS = 2000


@dataclass(frozen=True)
class Entry:
    """One method of a sweep.

    Attributes:
        label: Its name in tables, plots and folder names (unique in the sweep).
        method: A :class:`~causalunlearn.graph.spec.Graph` or a non-training method entry
            (``causalunlearn.methods.MethodEntry``), without a preset applied.
        preset: ``"auto"`` (the preset named ``<dataset family>-<class|random>`` when the file has
            one, else the base values), a preset name, or ``None`` (base values).
        remove: Intervention edge removed after the preset is applied (an ablation).
        source: Where it came from (a file path, or a description).
    """

    label: str
    method: Any
    preset: str | None = "auto"
    remove: str | None = None
    source: str = ""

    def resolve(self, dataset: str, scenario: str) -> tuple[Any, str | None]:
        """The method with its preset for ``dataset``/``scenario`` applied, and the preset used."""
        preset = self.preset
        if preset == "auto":
            preset = auto_preset(self.method, dataset, scenario)
        method = _with_preset(self.method, preset) if preset else self.method
        if self.remove:
            method = remove_intervention(method, self.remove)
            method = replace(method, name=self.label) if isinstance(method, S.Graph) else method
        return method, preset


def dataset_family(dataset: str) -> str:
    """``cifar`` for the CIFAR datasets, the dataset name otherwise (preset name prefix)."""
    return "cifar" if dataset.startswith("cifar") else dataset


def auto_preset(method: Any, dataset: str, scenario: str) -> str | None:
    """The preset ``<family>-class`` (class removal) or ``<family>-random`` if the file has it."""
    kind = "class" if scenario.startswith("class:") else "random"
    name = f"{dataset_family(dataset)}-{kind}"
    return name if name in preset_names(method) else None


def preset_names(method: Any) -> list[str]:
    """The preset names of a graph or method entry."""
    if isinstance(method, S.Graph):
        return [name for name, _ in method.presets]
    return list(getattr(method, "presets", None) or {})


def _with_preset(method: Any, name: str) -> Any:
    return with_preset(method, name) if isinstance(method, S.Graph) else method.with_preset(name)


def load_entry(spec: str, *, label: str | None = None) -> Entry:
    """An :class:`Entry` from ``PATH`` or ``PATH@PRESET`` (``PATH@-``: no preset)."""
    path, _, preset = spec.partition("@")
    method = load_method_file(path)
    chosen: str | None = "auto"
    if preset:
        chosen = None if preset == "-" else preset
        names = preset_names(method)
        if chosen and chosen not in names:
            raise RunError(
                "unknown-preset",
                f"{path} has no preset '{chosen}'; {did_you_mean(chosen, names)}",
                f"presets: {', '.join(names) or 'none'}; or PATH@- for none",
            )
    return Entry(label or method.name, method, chosen, source=path)


def load_method_file(path: str) -> Any:
    """A graph file or a non-training method entry file (e.g. graphs/baselines/ssd.yaml)."""
    try:
        from causalunlearn.methods import load_any
    except ImportError:  # pragma: no cover - methods package always ships
        from causalunlearn.graph import load_graph as load_any
    return load_any(path)


def ablation_entries(
    graph: S.Graph, *, source: str = "", preset: str | None = "auto"
) -> list[Entry]:
    """The graph itself and one ablation per intervention edge (that edge removed)."""
    entries = [Entry(graph.name, graph, preset, source=source)]
    for edge in graph.interventions:
        label = f"{graph.name}-no-{edge.id.replace('_', '-')}"
        entries.append(Entry(label, graph, preset, remove=edge.id, source=f"{source} − {edge.id}"))
    return entries


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
        data_root, cache_dir, device, threads, progress: As in ``RunSettings``.
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

    def key(self) -> dict[str, Any]:
        """What a cell's numbers depend on besides the method, dataset, scenario and seed."""
        return {
            "model": self.model,
            "recipe": self.recipe.key(),
            "attacker": self.attacker,
            "relearn": self.relearn,
            "curves": self.curves,
        }


def _safe(text: str) -> str:
    return text.replace(":", "-").replace(",", "_").replace("/", "_").replace("=", "")


def _write_json(path: Path, data: Any) -> None:
    from causalunlearn.experiment import _clean

    atomic_write(path, json.dumps(_clean(data), indent=2, default=str))


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
        cell = json.loads(path.read_text())
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

    def run(self) -> dict[str, Any]:
        """Compute every missing cell, then write the summary (and plots); return the summary."""
        from tqdm.auto import tqdm

        if self.settings.threads:
            torch.set_num_threads(self.settings.threads)
        self.out.mkdir(parents=True, exist_ok=True)
        _write_json(self.out / "sweep.json", self.describe())
        todo = []
        for entry, dataset, scenario, seed in self.cells():
            identity = self._identity(entry, dataset, scenario)
            path = self.cell_path(entry.label, dataset, scenario, seed)
            if self._finished(path, identity) is None:
                todo.append((entry, dataset, scenario, seed, identity, path))
        total = len(self.cells())
        bar = tqdm(
            total=total,
            initial=total - len(todo),
            disable=not self.settings.progress,
            desc="sweep",
            unit="run",
        )
        contexts: dict[tuple[str, str, int], _Context] = {}
        try:
            for entry, dataset, scenario, seed, identity, path in todo:
                key = (dataset, scenario, seed)
                if key not in contexts:
                    contexts.clear()  # one (dataset, scenario, seed) in memory at a time
                    contexts[key] = self._context(dataset, scenario, seed)
                bar.set_postfix_str(f"{entry.label} {dataset} {scenario} seed {seed}")
                cell = self._run_cell(entry, contexts[key], dataset, scenario, seed, identity)
                _write_json(path, cell)
                bar.update(1)
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
        model_name = _model_name(data, s.model)
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
        reference = json.loads(ref_path.read_text()) if ref_path.is_file() else None
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
            _write_json(ref_path, reference)
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
            threshold = RELEARN_FRACTION * (original_forget_acc or metrics["forget_acc"])
            curve = relearning_curve(
                net,
                x_f,
                y_f,
                {"forget": (x_f, y_f)},
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
                method, ctx.original, ctx.data, ctx.split, seed=seed, device=device, progress=False
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
        metrics["average_gap"] = average_gap(metrics, oracle, AVERAGE_GAP_KEYS)
        metrics["tow"] = tow(metrics, oracle)
        from causalunlearn.experiment import versions

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
        _write_json(self.out / "summary.json", summary)
        atomic_write(self.out / "summary.md", summary_markdown(summary))
        return summary

    def draw(self, summary: dict[str, Any]) -> list[str]:
        """Write the plots of every table; return their paths relative to the sweep folder."""
        from causalunlearn import plots

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
                refs.append((seed, json.loads(path.read_text())["metrics"]))
        oracle_by_seed = {seed: m["oracle"] for seed, m in refs}
        rows = {}
        for role in ("original", "oracle"):
            rows[role] = _stats([m[role] for _, m in refs], None)
        curves = {}
        for entry in self.entries:
            cells = []
            for seed in self.settings.seeds:
                path = self.cell_path(entry.label, dataset, scenario, seed)
                if path.is_file():
                    cells.append(json.loads(path.read_text()))
            if not cells:
                continue
            per_seed = [c["metrics"] for c in cells]
            oracles = [oracle_by_seed.get(c["seed"]) for c in cells]
            rows[entry.label] = _stats(per_seed, oracles)
            rows[entry.label]["seeds"] = [c["seed"] for c in cells]
            if all("relearning_curve" in c["extra"] for c in cells):
                curves[entry.label] = [c["extra"]["relearning_curve"] for c in cells]
        methods = [e.label for e in self.entries if e.label in rows]
        best = {}
        for key, _, ideal in SUMMARY_METRICS:
            scored = []
            for label in methods:
                stat = rows[label].get(key)
                if stat is None:
                    continue
                value = stat["gap"] if ideal == "oracle" else stat["mean"]
                if value is None or math.isnan(value):
                    continue
                scored.append((-value if ideal == "high" else value, label))
            if scored:  # every method tied with the best is marked
                top = min(scored)[0]
                best[key] = [label for value, label in scored if value <= top + 1e-9]
        return {
            "dataset": dataset,
            "scenario": scenario,
            "methods": methods,
            "rows": rows,
            "best": best,
            "curves": curves,
        }


def _stats(per_seed: list[dict[str, Any]], oracles: list[dict[str, Any] | None] | None):
    """Per metric: mean, sample std (ddof=1) and, against the same seed's oracle, mean |gap|."""
    out: dict[str, Any] = {}
    keys = [k for k, _, _ in SUMMARY_METRICS]
    for key in keys:
        values = [m.get(key) for m in per_seed]
        values = [float("nan") if v is None else v for v in values]
        if not values or all(math.isnan(v) for v in values):
            continue
        mean, std = mean_std(values)
        stat = {"mean": mean, "std": std, "n": len(values)}
        if oracles is not None:
            gaps = [
                abs(v - o[key])
                for v, o in zip(values, oracles, strict=True)
                if o is not None and o.get(key) is not None and not math.isnan(v)
            ]
            if gaps:
                stat["gap"], stat["gap_std"] = mean_std(gaps)
        out[key] = stat
    return out


def _cell_text(stat: dict[str, Any] | None, *, gap: bool, bold: bool, digits: int = 2) -> str:
    if stat is None or stat["mean"] is None or math.isnan(stat["mean"]):
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    if stat.get("std") is not None and not math.isnan(stat["std"]):
        text += f" ± {stat['std']:.{digits}f}"
    if gap and stat.get("gap") is not None:
        text += f" (Δ{stat['gap']:.{digits}f})"
    return f"**{text}**" if bold else text


#: The two tables of each (dataset, scenario) in ``summary.md``: accuracy, then privacy.
TABLE_GROUPS = (
    (
        "accuracy and cost",
        (
            "forget_acc",
            "retain_acc",
            "test_acc",
            "test_retained_classes_acc",
            "average_gap",
            "tow",
            "unlearn_seconds",
        ),
    ),
    (
        "privacy",
        (
            "mia_forget_member_rate",
            "mia_efficacy_svc",
            "mia_entropy_member_rate",
            "mia_loss_cv_acc",
            "activation_distance",
            "relearn_steps",
        ),
    ),
)


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary tables as Markdown (see :meth:`Sweep.summarise`)."""
    labels = {k: (label, ideal) for k, label, ideal in SUMMARY_METRICS}
    lines = [
        "Mean ± sample std (ddof=1) over seeds; accuracies and attacks in percent. Δ = mean over"
        " seeds of |metric − the same seed's retrain oracle|; the oracle row's ± is the noise"
        " floor. **Bold**: best per column (smallest Δ where the oracle's value is ideal;"
        " lowest time, distance and average gap; highest ToW). Avg gap averages Δ over forget,"
        " retain, test accuracy and MIA-efficacy. Act. dist.: mean L2 distance of softmax"
        " outputs to the oracle's on the forget rows.",
        "",
    ]
    for table in summary["tables"]:
        rows = table["rows"]
        for title, group in TABLE_GROUPS:
            keys = [k for k in group if any(k in rows[r] for r in rows)]
            if not keys:
                continue
            lines.append(f"### {table['dataset']}, {table['scenario']}: {title}")
            lines.append("")
            lines.append("| method | " + " | ".join(labels[k][0] for k in keys) + " |")
            lines.append("|---" * (len(keys) + 1) + "|")
            for label in ["original", "oracle", *table["methods"]]:
                if label not in rows:
                    continue
                cells = [
                    _cell_text(
                        rows[label].get(k),
                        gap=labels[k][1] == "oracle" and label not in ("original", "oracle"),
                        bold=label in table["best"].get(k, ()),
                    )
                    for k in keys
                ]
                name = {"original": "original", "oracle": "retrain oracle"}.get(label, label)
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


__all__ = [
    "AVERAGE_GAP_KEYS",
    "Entry",
    "SUMMARY_METRICS",
    "Sweep",
    "SweepSettings",
    "ablation_entries",
    "auto_preset",
    "load_entry",
    "summary_markdown",
]
