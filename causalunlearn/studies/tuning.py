"""The tuning protocol: choose a method's hyperparameters on a validation task, never on test.

A *validation task* is made from training data only (docs/baselines.md, "Tuning protocol"):

- its dataset is a validation view of the real one (:func:`causalunlearn.data.validation_view`):
  a seeded, class-stratified 20% of the training rows is its "test" set (the validation rows),
  the other 80% its training set; the real test set is never loaded into it;
- its forget set follows the real scenario's kind on a *proxy* target: class removal of class
  ``c`` is tuned on removing class ``(c + 1) mod C`` (or ``proxy_class``), random removal on a
  fresh random draw of the same fraction from the view's training rows (seeded by the tuning
  seeds, 100 by default, not the evaluation seeds);
- its seeds are a sweep's (docs/sweeps.md, "Seed protocol"): paired tuning seeds (``--seeds``,
  default 100: each seeds the split, original, oracle and unlearning of one cell), or nested
  ones (``--train-seeds I --split-seeds ... --unlearn-seeds J``: the cross product, so a
  hyperparameter is chosen over ``I`` originals × ``J`` unlearning runs each);
- its original and retrain oracle are trained on the view with the same recipe as the real ones
  (and cached under the view's own name).

Each candidate configuration (one point of the grid) is one method of a sweep
(:class:`~causalunlearn.studies.sweep.Sweep`) on that task; the chosen one has the smallest
**average gap** to the task's oracle (mean over the tuning cells — every seed, or every
training × split × unlearning seed — of ``average_gap``, each cell against the oracle of its own
training and split seed: forget, retain and validation accuracy and MIA-efficacy, in percentage
points), ties broken by the lower unlearning time. *Same budget per method*: the default grid
scales every stage learning rate of the method's current preset by 0.01, 0.1, 1 and 10
together, so every graph gets 4 candidates (epochs and batch size stay the preset's, i.e.
CaMU's budget on MNIST/Fashion-MNIST).

Grids and candidates are in :mod:`causalunlearn.studies.tuning_grid`.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from causalunlearn.atomic import atomic_write, write_json
from causalunlearn.data.splits import parse_scenario
from causalunlearn.errors import RunError
from causalunlearn.methods.dispatch import Method, preset_values
from causalunlearn.metrics.catalogue import AVERAGE_GAP, keys, metrics
from causalunlearn.studies.entries import dataset_family
from causalunlearn.studies.records import TUNING_FORMAT, TuningReport
from causalunlearn.studies.seeds import seed_plan_text
from causalunlearn.studies.tuning_grid import (
    DEFAULT_FACTORS,
    Candidate,
    candidate_entries,
    candidate_label,
    default_grid,
    grid_candidates,
    parse_grid,
)

__all__ = [
    "CRITERION",
    "DEFAULT_FACTORS",
    "Candidate",
    "TuningTask",
    "candidate_entries",
    "candidate_label",
    "default_grid",
    "grid_candidates",
    "parse_grid",
    "preset_line",
    "proxy_scenario",
    "select",
    "tune",
    "tuning_markdown",
    "tuning_seed_fields",
]

#: The selection criterion, as written into every tuning report.
CRITERION = (
    "smallest average gap to the validation task's retrain oracle (mean over the tuning cells —"
    " every tuning seed, or every training × split × unlearning seed — of the mean |gap| of"
    " forget, retain and validation accuracy and MIA-efficacy, percentage points); ties broken"
    " by the lower unlearning time"
)

#: The tuning seeds when none are given: not the evaluation seeds (0, 1, 2) of a sweep.
TUNING_SEEDS = (100,)


def tuning_seed_fields(
    *,
    seeds: Sequence[int] | None = None,
    train_seeds: Sequence[int] | None = None,
    split_seeds: Sequence[int] | None = None,
    unlearn_seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The seed fields of a tuning's :class:`~causalunlearn.studies.settings.StudySettings`:
    those of :func:`~causalunlearn.studies.sweep_file.seed_fields` (``compare``'s: paired
    ``seeds``, or the nested lists, an unset one 0), or ``seeds`` = :data:`TUNING_SEEDS` when
    none is given (``None``: not given). The settings check them (``mixed-seeds``, ...)."""
    from causalunlearn.studies.sweep_file import seed_fields

    given = {
        "seeds": seeds,
        "train_seeds": train_seeds,
        "split_seeds": split_seeds,
        "unlearn_seeds": unlearn_seeds,
    }
    if all(v is None for v in given.values()):
        return {"seeds": TUNING_SEEDS}
    return seed_fields(**given)


#: Columns of the tuning table: summary key, column label (test_acc is validation accuracy).
GAP_COLUMNS = tuple(
    (m.key, "Δ validation" if m.key == "test_acc" else f"Δ {m.short}")
    for m in metrics(("forget_acc", "retain_acc", "test_acc", "mia_efficacy_svc"))
)


@dataclass(frozen=True)
class TuningTask:
    """The validation task of a real (dataset, scenario).

    Attributes:
        dataset: The real dataset (e.g. ``mnist``).
        scenario: The real scenario (e.g. ``class:0``).
        view: The validation view's dataset name (e.g. ``mnist-val20-s100``).
        proxy: The task's scenario (e.g. ``class:1``).
        preset: The preset name the result is for (``<family>-<class|random>``).
    """

    dataset: str
    scenario: str
    view: str
    proxy: str
    preset: str


def proxy_scenario(
    scenario: str, num_classes: int, proxy_class: Sequence[int] | int | None = None
) -> str:
    """The validation task's scenario: the same kind as ``scenario``, another target.

    Class removal of classes ``c`` becomes removal of ``(c + 1) mod C`` (moving on to the next
    class not removed in the real scenario), or of ``proxy_class``; random removal keeps its
    fraction (the draw is made on the validation view, with the tuning seeds).

    Raises:
        RunError: ``bad-proxy-class`` (a proxy that is a real target, out of range, of another
            count, or given for random removal), ``unsupported-scenario`` (perclass, indices).
    """
    sc = parse_scenario(scenario)
    if sc.kind == "random":
        if proxy_class is not None:
            raise RunError(
                "bad-proxy-class",
                f"--proxy-class applies to class removal, not to {sc}",
                "drop --proxy-class: random removal is tuned on a fresh random draw",
            )
        return str(sc)
    if sc.kind != "class":
        raise RunError(
            "unsupported-scenario",
            f"tuning supports class:... and random:... scenarios, not {sc}",
            "tune on the closest class or random scenario",
        )
    targets = set(sc.classes)
    if proxy_class is not None:
        proxies = [proxy_class] if isinstance(proxy_class, int) else list(proxy_class)
        wrong = [p for p in proxies if p in targets or not 0 <= p < num_classes]
        if wrong or len(proxies) != len(sc.classes) or len(set(proxies)) != len(proxies):
            raise RunError(
                "bad-proxy-class",
                f"proxy class(es) {proxies} for {sc}: need {len(sc.classes)} distinct class(es)"
                f" in 0..{num_classes - 1}, none of {sorted(targets)}",
                "the forget class itself must never be used to tune its own removal",
            )
        return "class:" + ",".join(str(p) for p in sorted(proxies))
    if len(targets) >= num_classes:
        raise RunError(
            "bad-proxy-class", f"{sc} removes every class: no other class to tune on", ""
        )
    chosen: list[int] = []
    for c in sc.classes:
        p = (c + 1) % num_classes
        while p in targets or p in chosen:
            p = (p + 1) % num_classes
        chosen.append(p)
    return "class:" + ",".join(str(p) for p in sorted(chosen))


def _metric(row: Mapping[str, Any], key: str, field: str) -> float:
    stat = row.get(key) or {}
    value = stat.get(field)
    return float("nan") if value is None else float(value)


def select(rows: Mapping[str, Mapping[str, Any]], labels: Sequence[str]) -> str:
    """The chosen candidate (:data:`CRITERION`) among ``labels`` of a sweep summary table.

    A candidate without a finite average gap (e.g. an attack skipped) ranks last; one without a
    row (its loss diverged) is not a choice.

    Raises:
        RunError: ``no-candidate`` when no candidate has a row.
    """
    scored = []
    for order, label in enumerate(labels):
        if label not in rows:
            continue
        gap = _metric(rows[label], "average_gap", "mean")
        seconds = _metric(rows[label], "unlearn_seconds", "mean")
        scored.append(
            (
                gap if math.isfinite(gap) else math.inf,
                seconds if math.isfinite(seconds) else math.inf,
                order,
                label,
            )
        )
    if not scored:
        raise RunError("no-candidate", "no candidate of the grid has a finished run", "")
    return min(scored)[3]


def _yaml_number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, float):
        return json.dumps(value) if isinstance(value, (bool, type(None))) else str(value)
    if value != 0 and not 1e-2 <= abs(value) < 1e4:
        mantissa, exponent = f"{value:.6e}".split("e")
        mantissa = mantissa.rstrip("0")
        return f"{mantissa}{'0' if mantissa.endswith('.') else ''}e{int(exponent)}"
    text = f"{value:g}"
    return text if any(ch in text for ch in ".e") else text + ".0"


def preset_line(name: str, preset_values: Mapping[str, Any], chosen: Mapping[str, Any]) -> str:
    """The preset to paste into the graph file, ``name: {path: value, ...}`` (YAML flow style).

    Args:
        name: Preset name (``mnist-class``).
        preset_values: The preset's current overrides (empty if it has none).
        chosen: The chosen candidate's overrides (they win).
    """
    merged = {**dict(preset_values), **dict(chosen)}
    body = ", ".join(f"{path}: {_yaml_number(value)}" for path, value in merged.items())
    return f"{name}: {{{body}}}"


def _preset_values(method: Method, preset: str | None) -> dict[str, Any]:
    return preset_values(method, preset) if preset else {}


def _fmt(value: float, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def default_tuning_folder(method_name: str, dataset: str, scenario: str) -> str:
    """Where ``causalunlearn tune`` writes when no ``--out`` is given:
    ``runs/tune-<method>-<dataset>-<class|random>``."""
    return f"runs/tune-{method_name}-{dataset}-{scenario.partition(':')[0]}"


def tune(
    method: Method,
    dataset: str,
    scenario: str,
    settings: Any,
    out: str | Path,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    val_fraction: float = 0.2,
    view_seed: int = 100,
    proxy_class: Sequence[int] | int | None = None,
    overwrite: bool = False,
    source: str = "",
    backend: Any = None,
) -> TuningReport:
    """Run the tuning protocol (module docstring) and write ``tuning.json`` / ``tuning.md``.

    Args:
        method: A graph or method entry, without a preset applied.
        dataset: The real dataset (registered name).
        scenario: The real scenario (``class:C...`` or ``random:F``).
        settings: :class:`~causalunlearn.studies.settings.StudySettings`: its seeds are the
            tuning seeds, paired or nested (:func:`tuning_seed_fields`; the choice averages
            over all their cells); ``model`` defaults to the real dataset's model.
        out: The tuning folder (a sweep folder plus ``tuning.json`` and ``tuning.md``).
        grid: ``{path: [values]}``, or None for :func:`default_grid`.
        val_fraction: Share of the training rows held out as validation rows.
        view_seed: Seed of the hold-out draw.
        proxy_class: The class(es) removed in the validation task (class removal only).
        overwrite: Recompute cells made with other settings (as ``compare --overwrite``).
        source: Where the method was read from (recorded).
        backend: Where the candidates run: a
            :class:`~causalunlearn.studies.backends.Backend`, ``"local"`` (default) or
            ``"ray"`` (as a sweep's).

    Returns:
        The report written to ``tuning.json``.

    Raises:
        RunError: ``no-candidate`` when every candidate diverged — after writing the report
            (``chosen`` and ``preset_line`` are null in it).
    """
    from dataclasses import replace

    from causalunlearn.data import load_dataset, validation_view_name
    from causalunlearn.engine.verbs import model_name_for
    from causalunlearn.studies.sweep import Sweep

    out = Path(out)
    # Everything that can be checked without data first (a bad grid fails in a second).
    entries, candidates, preset = candidate_entries(method, dataset, scenario, grid, source)
    view = validation_view_name(dataset, val_fraction, view_seed)
    kind = "class" if parse_scenario(scenario).kind == "class" else "random"
    preset_name = f"{dataset_family(dataset)}-{kind}"
    # The real dataset is loaded for its number of classes and name only.
    base = load_dataset(
        dataset, settings.data_root, cache_dir=settings.cache_dir, progress=settings.progress
    )
    proxy = proxy_scenario(scenario, base.num_classes, proxy_class)
    task = TuningTask(dataset, str(parse_scenario(scenario)), view, proxy, preset_name)
    # The view's name is not in the model table: its base dataset's model is the one to tune.
    model = settings.model or model_name_for(types.SimpleNamespace(name=base.name), None)
    settings = replace(settings, model=model)
    del base
    # A candidate whose loss diverges on any seed is a failed run in the sweep (it does not stop
    # the others) and cannot be chosen.
    sweep = Sweep(
        entries, [view], [proxy], settings, out, overwrite=overwrite, plots=False, backend=backend
    )
    summary = sweep.run()
    table = summary["tables"][0]
    rows = table["rows"]
    diverged = {
        label: f"non-finite loss on seed(s) {', '.join(map(str, info['seeds']))}"
        for label, info in table.get("failures", {}).items()
    }
    labels = [c.label for c in candidates if c.label not in diverged]
    # Every candidate diverged: the report is still written (what was tried is a result), then
    # the tuning stops with an error; nothing is chosen and no preset line is proposed.
    chosen = select(rows, labels) if labels else None
    oracle = rows.get("oracle", {})
    floor = {k: _metric(oracle, k, "std") for k in keys(AVERAGE_GAP)}
    finite = [v for v in floor.values() if math.isfinite(v)]
    report_rows = []
    for candidate in candidates:
        row = rows.get(candidate.label, {})
        report_rows.append(
            {
                "label": candidate.label,
                "overrides": candidate.overrides,
                "average_gap": _metric(row, "average_gap", "mean"),
                "average_gap_std": _metric(row, "average_gap", "std"),
                "gaps": {k: _metric(row, k, "gap") for k, _ in GAP_COLUMNS},
                "unlearn_seconds": _metric(row, "unlearn_seconds", "mean"),
                "seeds": row.get("seeds", []),
                "diverged": diverged.get(candidate.label),
            }
        )
    winner = next((c for c in candidates if c.label == chosen), None)
    ranked = sorted(
        (r["average_gap"] for r in report_rows if math.isfinite(r["average_gap"])),
    )
    report: TuningReport = {
        "format": TUNING_FORMAT,
        "method": method.name,
        "source": source,
        "task": {
            "dataset": task.dataset,
            "scenario": task.scenario,
            "validation_view": task.view,
            "val_fraction": val_fraction,
            "view_seed": view_seed,
            "proxy_scenario": task.proxy,
            **settings.seed_plan(),  # as sweep.json: seeds, or the three nested lists
            "model": model,
            "recipe": settings.recipe.key(),
        },
        "criterion": CRITERION,
        "grid": "default" if grid is None else {k: list(v) for k, v in grid.items()},
        "budget": (
            f"{len(candidates)} candidates; epochs and batch size as the preset"
            f" {preset or '(none: the file values)'}"
            + (
                f"; default grid = every stage lr × {', '.join(f'{f:g}' for f in DEFAULT_FACTORS)}"
                if grid is None
                else ""
            )
        ),
        "base_preset": preset,
        "candidates": report_rows,
        "chosen": {"label": chosen, "overrides": winner.overrides} if winner else None,
        "margin": ranked[1] - ranked[0] if len(ranked) > 1 else None,
        "oracle_std": floor,
        "noise_floor": sum(finite) / len(finite) if finite else None,
        "preset_line": (
            preset_line(preset_name, _preset_values(method, preset), winner.overrides)
            if winner
            else None
        ),
        "sweep": str(out),
    }
    write_json(out / "tuning.json", report)
    atomic_write(out / "tuning.md", tuning_markdown(report))
    if winner is None:
        raise RunError(
            "no-candidate",
            f"every candidate of the grid diverged (non-finite loss); nothing was chosen (report:"
            f" {out / 'tuning.md'})",
            "give a grid of lower learning rates with --grid (or fewer epochs of the diverging"
            " stage); the graph file's preset is left as it is",
        )
    return report


def tuning_markdown(report: Mapping[str, Any]) -> str:
    """The tuning report as Markdown: the task, one row per candidate, the choice, the preset."""
    t = report["task"]
    lines = [
        f"### Tuning {report['method']} for {t['dataset']}, {t['scenario']}",
        "",
        f"Validation task: {t['validation_view']} ({t['val_fraction']:.0%} of the training rows"
        f" held out, seed {t['view_seed']}), scenario {t['proxy_scenario']},"
        f" {seed_plan_text(t)}, model {t['model']}, recipe {t['recipe']}.",
        f"Criterion: {report['criterion']}. Budget: {report['budget']}.",
        "",
        "| candidate | "
        + " | ".join(label for _, label in GAP_COLUMNS)
        + " | avg gap | time (s) |",
        "|---" * (len(GAP_COLUMNS) + 3) + "|",
    ]
    chosen = (report.get("chosen") or {}).get("label")
    for row in report["candidates"]:
        cells = [_fmt(row["gaps"][k]) for k, _ in GAP_COLUMNS]
        gap = _fmt(row["average_gap"])
        if math.isfinite(row.get("average_gap_std", math.nan)):
            gap += f" ± {_fmt(row['average_gap_std'])}"
        if row.get("diverged"):
            gap = "diverged (non-finite loss)"
        name = f"**{row['label']}** (chosen)" if row["label"] == chosen else row["label"]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {gap} | {_fmt(row['unlearn_seconds'])} |"
        )
    floor = report.get("noise_floor")
    spread = report.get("oracle_std", {})
    lines.append(
        "| noise floor: retrain oracle's sample std over the seeds | "
        + " | ".join(_fmt(spread.get(k, math.nan)) for k, _ in GAP_COLUMNS)
        + f" | {_fmt(floor if floor is not None else math.nan)} | |"
    )
    nested = "seeds" not in t
    lines += [
        "",
        "Noise floor (sample std of the retrain oracle over the tuning seeds"
        + (" — its training × split seeds" if nested else "")
        + ", mean over the four metrics): "
        + (
            f"{floor:.2f} points."
            if floor is not None
            else (
                "n/a with one training and split seed (use --train-seeds 100,101,102 to"
                " measure it)."
                if nested
                else "n/a with one seed (use --seeds 100,101,102 to measure it)."
            )
        ),
    ]
    if nested:
        lines.append(
            "Nested seeds: a candidate's avg gap ± is the mean ± sample std over all its cells;"
            " summary.md in this folder says which seed the variance comes from."
        )
    margin = report.get("margin")
    if margin is not None:
        note = ""
        if floor is not None and margin < floor:
            note = " — within the noise floor: the choice is not clear-cut"
        lines.append(f"Margin of the chosen candidate over the next: {margin:.2f} points{note}.")
    if chosen is None:
        lines += ["", "Chosen: none — every candidate diverged; no preset line is proposed.", ""]
        return "\n".join(lines)
    lines += [
        "",
        f"Chosen: `{chosen}`. Preset line for the graph file:",
        "",
        "```yaml",
        report["preset_line"],
        "```",
        "",
    ]
    return "\n".join(lines)
