"""Per-class tables and paired comparisons of a sweep's methods (``compare`` summaries).

Both read what the cells already hold, so they cost no unlearning and no model:

- **per-class accuracy** (:mod:`causalunlearn.metrics.per_class`): each model's
  ``extra["per_class"]`` (cells: the unlearned model; references: the original and the oracle),
  averaged over seeds per class and part (forget / retain / test); the test confusion matrices
  are summed over seeds for the figure.
- **paired comparison** (:func:`causalunlearn.metrics.paired.paired_bootstrap`): each method
  against the reference method — ``camu`` when the sweep has it, else its first method — on the
  rows both classified: the per-example outputs saved beside each cell
  (:mod:`causalunlearn.studies.outputs`) give each row's correctness, strata are the cells' seeds
  (the same file stem: the same training, split and unlearning seeds, hence the same rows).
  Cells without saved outputs (made before they were saved) are named, not compared.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics.catalogue import metric
from causalunlearn.metrics.paired import N_BOOT, paired_bootstrap
from causalunlearn.metrics.per_class import PER_CLASS_PARTS

#: The reference method of the paired comparison when the sweep has it.
REFERENCE_METHOD = "camu"
#: The accuracies compared, with the rows each is computed on.
PAIRED_METRICS = (("forget_acc", "forget"), ("retain_acc", "retain"), ("test_acc", "test"))
#: Seed of the paired bootstrap's draws (the comparison is a pure function of the cells).
PAIRED_SEED = 0
#: Row labels of the reference models.
ROLE_LABELS = {"original": "original", "oracle": "retrain oracle"}


def per_class_stats(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Mean and sample std over seeds of each class's accuracy, per part; the test confusion
    matrices summed. ``reports``: one :func:`~causalunlearn.metrics.per_class.per_class_report`
    per seed (``None`` entries skipped); ``None`` when there is none."""
    reports = [r for r in reports if r]
    if not reports:
        return None
    out: dict[str, Any] = {"n": len(reports)}
    for part in PER_CLASS_PARTS:
        acc = np.array(
            [[math.nan if a is None else a for a in r[part]["accuracy"]] for r in reports],
            dtype=np.float64,
        )
        with warnings.catch_warnings():  # a class with no row in any seed: NaN, no warning
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(acc, axis=0)
            std = np.nanstd(acc, axis=0, ddof=1) if len(reports) > 1 else np.full_like(mean, np.nan)
        out[part] = {"mean": mean.tolist(), "std": std.tolist()}
    out["test"]["confusion"] = np.sum(
        [np.asarray(r["test"]["confusion"], dtype=np.int64) for r in reports], axis=0
    ).tolist()
    return out


def correctness(path: Any, split_digest: str | None) -> dict[str, np.ndarray]:
    """Per-row correctness of the unlearned model of a cell's outputs archive, per part.

    Raises:
        RunError: ``outputs-missing``, ``corrupt-outputs``, ``outputs-split-mismatch``
            (:func:`causalunlearn.studies.outputs.load_outputs`).
    """
    from causalunlearn.studies.outputs import load_outputs

    outputs = load_outputs(path, split_digest=split_digest)
    logits = outputs.logits["unlearned"]
    train = logits["train"].argmax(axis=1) == outputs.train_y
    return {
        "forget": train[np.asarray(outputs.split.forget, dtype=np.int64)],
        "retain": train[np.asarray(outputs.split.retain, dtype=np.int64)],
        "test": logits["test"].argmax(axis=1) == outputs.test_y,
    }


def paired_comparison(
    cells: Mapping[str, Mapping[str, tuple[Any, Mapping[str, Any]]]],
    methods: Sequence[str],
    *,
    n_boot: int = N_BOOT,
) -> dict[str, Any] | None:
    """Each method against the reference method (module docstring).

    Args:
        cells: Label → stratum (the cell file's stem) → ``(outputs archive path, cell)`` of its
            finished cells.
        methods: The labels in table order.
        n_boot: Bootstrap replicates.

    Returns:
        ``{"reference": label, "n_boot", "seed", "methods": {label: {metric key:
        PairedDifference.as_dict()} or {"missing": why}}}``; ``None`` with fewer than two
        methods.
    """
    labels = [m for m in methods if m in cells and cells[m]]
    if len(labels) < 2:
        return None
    reference = REFERENCE_METHOD if REFERENCE_METHOD in labels else labels[0]
    loaded: dict[tuple[str, str], dict[str, np.ndarray] | str] = {}

    def rows(label: str, stratum: str) -> dict[str, np.ndarray] | str:
        if (label, stratum) not in loaded:
            path, cell = cells[label][stratum]
            try:
                loaded[label, stratum] = correctness(path, cell.get("split", {}).get("digest"))
            except CausalUnlearnError as err:
                loaded[label, stratum] = f"{stratum}: [{err.code}] {err.message}"
        return loaded[label, stratum]

    out: dict[str, Any] = {"reference": reference, "n_boot": n_boot, "seed": PAIRED_SEED}
    out["methods"] = {}
    for label in labels:
        if label == reference:
            continue
        strata = [s for s in cells[reference] if s in cells[label]]
        if not strata:
            out["methods"][label] = {"missing": f"no seed in common with {reference}"}
            continue
        mine = {s: rows(label, s) for s in strata}
        theirs = {s: rows(reference, s) for s in strata}
        problems = [v for v in (*mine.values(), *theirs.values()) if isinstance(v, str)]
        if problems:
            out["methods"][label] = {"missing": problems[0]}
            continue
        result: dict[str, Any] = {}
        for key, part in PAIRED_METRICS:
            a = {s: mine[s][part] for s in strata}  # type: ignore[index]
            b = {s: theirs[s][part] for s in strata}  # type: ignore[index]
            if not all(len(v) for v in a.values()):
                continue  # e.g. no retain rows
            result[key] = paired_bootstrap(a, b, n_boot=n_boot, seed=PAIRED_SEED).as_dict()
        result["seeds"] = strata
        out["methods"][label] = result
    return out


def sweep_comparisons(sweep: Any, dataset: str, scenario: str, methods: Sequence[str]) -> dict:
    """The ``per_class`` and ``paired`` entries of the summary table of ``(dataset, scenario)``
    of ``sweep`` (a :class:`~causalunlearn.studies.sweep.Sweep`), from its finished cells and
    references."""
    from causalunlearn.studies.outputs import beside
    from causalunlearn.studies.sweep import read_cell

    seeds = sweep.settings.cell_seeds()
    references: dict[Any, dict[str, Any]] = {}
    for seed in seeds:
        path = sweep.reference_path(dataset, scenario, seed)
        if path not in references and path.is_file():
            references[path] = read_cell(path)
    per_class: dict[str, Any] = {}
    for role in ROLE_LABELS:
        extras = [ref.get("extra", {}).get(role, {}) for ref in references.values()]
        stats = per_class_stats([e.get("per_class") for e in extras])
        if stats:
            per_class[role] = stats
    cells: dict[str, dict[str, tuple[Any, dict[str, Any]]]] = {}
    for label in methods:
        found = {}
        for seed in seeds:
            path = sweep.cell_path(label, dataset, scenario, seed)
            if path.is_file():
                cell = read_cell(path)
                if cell.get("status") == "finished":
                    found[path.stem] = (beside(path), cell)
        cells[label] = found
        stats = per_class_stats([c.get("extra", {}).get("per_class") for _, c in found.values()])
        if stats:
            per_class[label] = stats
    return {"per_class": per_class, "paired": paired_comparison(cells, methods)}


def _number(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def per_class_markdown(per_class: Mapping[str, Any], heading: str) -> list[str]:
    """Markdown lines of a per-class test accuracy table under ``heading``: a row per model
    (``per_class``: label → :func:`per_class_stats`), a column per class; empty when there is
    nothing."""
    if not per_class:
        return []
    classes = len(next(iter(per_class.values()))["test"]["mean"])
    lines = [
        heading,
        "",
        "Mean over seeds, percent (sample std and the forget / retain rows in the JSON; the"
        " test confusion matrices, summed over seeds, in the confusion figure).",
        "",
        "| model | " + " | ".join(str(c) for c in range(classes)) + " |",
        "|---" * (classes + 1) + "|",
    ]
    for label, stats in per_class.items():
        cells = " | ".join(_number(v) for v in stats["test"]["mean"])
        lines.append(f"| {ROLE_LABELS.get(label, label)} | {cells} |")
    lines.append("")
    return lines


def comparison_markdown(summary: Mapping[str, Any]) -> str:
    """The per-class and paired sections of ``summary.md`` (empty when no table has them)."""
    lines: list[str] = []
    for table in summary["tables"]:
        where = f"{table['dataset']}, {table['scenario']}"
        heading = f"### {where}: per-class test accuracy"
        lines += per_class_markdown(table.get("per_class") or {}, heading)
        paired = table.get("paired")
        if paired and paired["methods"]:
            keys = [k for k, _ in PAIRED_METRICS]
            lines += [
                f"### {where}: paired comparison with {paired['reference']}",
                "",
                f"Δ = method − {paired['reference']} in points: mean over seeds [95 % interval,"
                f" bootstrap over rows stratified by seed, {paired['n_boot']} replicates];"
                " **bold** where the interval excludes 0. Row noise only: the seeds' spread"
                " is the ± of the tables above.",
                "",
                "| method | " + " | ".join(metric(k).short for k in keys) + " |",
                "|---" * (len(keys) + 1) + "|",
            ]
            for label, result in paired["methods"].items():
                if "missing" in result:
                    lines.append(f"| {label} | not compared: {result['missing']} |")
                    continue
                texts = []
                for key in keys:
                    d = result.get(key)
                    if d is None:
                        texts.append("–")
                        continue
                    text = f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"
                    texts.append(f"**{text}**" if d["low"] > 0 or d["high"] < 0 else text)
                lines.append(f"| {label} | " + " | ".join(texts) + " |")
            lines.append("")
    return "\n".join(lines)
