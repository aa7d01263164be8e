"""Summary tables of a sweep: statistics over seeds, gaps to the oracle, best per column.

:meth:`causalunlearn.studies.sweep.Sweep.summarise` reads the finished cells and uses these to
build one table per (dataset, scenario), written as ``summary.json`` and ``summary.md``. A
sweep of nested seeds also gets, per method and metric, the split of the variance between its
training, split and unlearning seeds (:func:`seed_variance`; a table's ``variance``). With
``--oracles K`` a method may also get one value for all its seeds, ``oracle_klom``
(:data:`GROUP_COLUMNS`; the table's ``oracle_distribution`` has its interval and seeds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from causalunlearn.metrics.catalogue import SUMMARY_COLUMNS, SUMMARY_GROUPS, metrics
from causalunlearn.metrics.gaps import mean_std
from causalunlearn.studies.seeds import LEVELS, variance_components

#: Metrics of a whole group of cells (one method on one dataset and scenario, its seeds
#: together), not of one cell: one value per row (``{"mean", "std": NaN, "n", "ci"}``, shown
#: without ±), marked best like the other columns and shown after the per-example table's
#: per-cell columns (:meth:`~causalunlearn.studies.sweep.Sweep._table` computes them).
GROUP_COLUMNS = metrics(("oracle_klom",))
#: The tables of ``summary.md``: the catalogue's groups, the per-example one (the group that
#: shows ``oracle_margin_z``) followed by :data:`GROUP_COLUMNS`.
SUMMARY_TABLES = tuple(
    (title, (*group, *GROUP_COLUMNS) if any(m.key == "oracle_margin_z" for m in group) else group)
    for title, group in SUMMARY_GROUPS
)


def best_per_column(rows: dict[str, Any], methods: list[str]) -> dict[str, list[str]]:
    """Per metric, the methods with the best value: smallest gap where the oracle's value is
    ideal, else lowest (or, for ToW, highest) mean; ties are all marked."""
    best: dict[str, list[str]] = {}
    for m in (*SUMMARY_COLUMNS, *GROUP_COLUMNS):
        key, ideal = m.key, m.ideal
        scored = []
        for label in methods:
            stat = rows[label].get(key)
            if stat is None:
                continue
            value = stat.get("gap") if ideal == "oracle" else stat["mean"]
            if value is None or math.isnan(value):
                continue
            scored.append((-value if ideal == "high" else value, label))
        if scored:  # every method tied with the best is marked
            top = min(scored)[0]
            best[key] = [label for value, label in scored if value <= top + 1e-9]
    return best


def _stats(per_seed: list[dict[str, Any]], oracles: list[dict[str, Any] | None] | None):
    """Per metric: mean, sample std (ddof=1) and, against the same seed's oracle, mean |gap|."""
    out: dict[str, Any] = {}
    keys = [m.key for m in SUMMARY_COLUMNS]
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


def seed_variance(
    cells: Sequence[tuple[tuple[int, ...], dict[str, Any]]], levels: Sequence[str] = LEVELS
) -> dict[str, Any]:
    """Per summary metric, :func:`~causalunlearn.studies.seeds.variance_components` over cells.

    Args:
        cells: ``(seeds, metrics)`` per cell, ``seeds`` a tuple in the order of ``levels``.
        levels: The seeds' names (``train, split, unlearn``; a reference has no unlearning).

    Wall times (unit ``s``) are left out: their spread is the machine's load, not the seeds'.
    Metrics with fewer than two values are left out.
    """
    out: dict[str, Any] = {}
    for m in SUMMARY_COLUMNS:
        if m.unit == "s":
            continue
        values = {seeds: metrics.get(m.key) for seeds, metrics in cells}
        numbers = {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}
        parts = variance_components(numbers, levels)
        if parts is not None:
            out[m.key] = parts
    return out


def variance_text(parts: dict[str, Any] | None, digits: int = 2) -> str:
    """One decomposition in a table cell: the shares (%) of training · split · unlearning seed
    (``–`` for a fixed seed) and ``σ``, the square root of the components' sum."""
    if parts is None:
        return "–"
    if not parts.get("balanced") or any("+" in name for name in parts["levels"]):
        return "n/a"  # unbalanced (cells missing), or seeds that change together
    by_level = {c["name"]: c for c in parts["components"]}
    shares = []
    for level in LEVELS:
        comp = by_level.get(level)
        if comp is None:
            shares.append("–")
        elif comp["share"] is None:
            shares.append("0")
        else:
            shares.append(f"{100 * comp['share']:.0f}")
    return f"{'·'.join(shares)} (σ {math.sqrt(parts['total']):.{digits}f})"


def expected_cells(describe: dict[str, Any], *, references: bool = False) -> int:
    """How many cells each method has in a sweep of this ``sweep.json`` (paired or nested);
    with ``references``, how many references (one per training and split seed)."""
    if "seeds" in describe:
        return len(describe["seeds"])
    levels = LEVELS[:2] if references else LEVELS
    return math.prod(len(describe.get(f"{level}_seeds", [0])) for level in levels)


def _variance_lines(table: dict[str, Any], labels: dict[str, Any]) -> list[str]:
    variance = table.get("variance")
    if not variance:
        return []
    keys = [m.key for m in SUMMARY_COLUMNS if any(m.key in v for v in variance.values())]
    if not keys:
        return []
    lines = [
        f"### {table['dataset']}, {table['scenario']}: where the variance comes from",
        "",
        "Share (%) of the training · split · unlearning seed in the variance of one cell"
        " (nested random-effects ANOVA; – : that seed is fixed; n/a: cells missing), and σ ="
        " √(sum of the components). The original and the oracle have no unlearning seed.",
        "",
        "| method | " + " | ".join(labels[k][0] for k in keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for label in ["original", "oracle", *table["methods"]]:
        if label not in variance:
            continue
        name = {"original": "original", "oracle": "retrain oracle"}.get(label, label)
        cells = [variance_text(variance[label].get(k)) for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _klom_lines(table: dict[str, Any]) -> list[str]:
    """The note under the per-example table on its KLoM column: what one value is, each
    method's interval, and why a method has none."""
    found = table.get("oracle_distribution") or {}
    if not found:
        return []
    parts = []
    for label, klom in found.items():
        if "missing" in klom:
            parts.append(f"{label}: not computed ({klom['missing']})")
        else:
            low, high = klom["ci"]
            seeds = ", ".join(map(str, klom["seeds"]))
            parts.append(
                f"{label} [{low:.2f}, {high:.2f}] ({klom['n_models']} seeds: {seeds};"
                f" {klom['n_oracles']} oracles)"
            )
    return [
        "KLoM: one value per method, no ±: the unlearned models of its seeds together against"
        " every distinct oracle of their references (median over forget rows of the Gaussian"
        " KL of the margins, nats; ideal 0). 95 % bootstrap interval over forget rows: "
        + "; ".join(parts)
        + ".",
        "",
    ]


def _cell_text(stat: dict[str, Any] | None, *, gap: bool, bold: bool, digits: int = 2) -> str:
    if stat is None or stat["mean"] is None or math.isnan(stat["mean"]):
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    if stat.get("std") is not None and not math.isnan(stat["std"]):
        text += f" ± {stat['std']:.{digits}f}"
    if gap and stat.get("gap") is not None:
        text += f" (Δ{stat['gap']:.{digits}f})"
    return f"**{text}**" if bold else text


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary tables as Markdown (see :meth:`Sweep.summarise`)."""
    labels = {m.key: (m.short, m.ideal) for m in (*SUMMARY_COLUMNS, *GROUP_COLUMNS)}
    lines = [
        "Mean ± sample std (ddof=1) over seeds; accuracies and attacks in percent. Δ = mean over"
        " seeds of |metric − the same seed's retrain oracle|; the oracle row's ± is the noise"
        " floor. **Bold**: best per column (smallest Δ where the oracle's value is ideal;"
        " lowest time, distance and average gap; highest ToW). Avg gap averages Δ over forget,"
        " retain, test accuracy and MIA-efficacy. Act. dist.: mean L2 distance of softmax"
        " outputs to the oracle's on the forget rows.",
        "",
    ]
    if "seeds" not in summary["describe"]:  # nested seeds
        lines[-1:-1] = [
            "",
            "Nested seeds: the statistics are over every cell of a method (training × split ×"
            " unlearning seeds), Δ is against the oracle of the cell's training and split seed;"
            " the last table of each scenario says which seed the variance comes from.",
        ]
    for table in summary["tables"]:
        rows = table["rows"]
        for title, group in SUMMARY_TABLES:
            keys = [m.key for m in group if any(m.key in rows[r] for r in rows)]
            if not keys:
                continue
            lines.append(f"### {table['dataset']}, {table['scenario']}: {title}")
            lines.append("")
            lines.append("| method | " + " | ".join(labels[k][0] for k in keys) + " |")
            lines.append("|---" * (len(keys) + 1) + "|")
            for label in ["original", "oracle", "random_init", *table["methods"]]:
                if label not in rows or (
                    label == "random_init" and not any(k in rows[label] for k in keys)
                ):
                    continue
                cells = [
                    _cell_text(
                        rows[label].get(k),
                        gap=labels[k][1] == "oracle" and label not in ("original", "oracle"),
                        bold=label in table["best"].get(k, ()),
                    )
                    for k in keys
                ]
                name = {
                    "original": "original",
                    "oracle": "retrain oracle",
                    "random_init": "random-init network (probe floor)",
                }.get(label, label)
                seeds = rows[label].get("seeds")
                failed = table.get("failures", {}).get(label)
                if failed:
                    name += (
                        f" (failed on seed {', '.join(map(str, failed['seeds']))}:"
                        f" {', '.join(failed['errors'])})"
                    )
                elif seeds is not None and len(seeds) < expected_cells(
                    summary["describe"], references=label in ("original", "oracle")
                ):
                    name += f" (seeds {', '.join(map(str, seeds))} only)"
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines.append("")
            if any(m in group for m in GROUP_COLUMNS):
                lines += _klom_lines(table)
        lines += _variance_lines(table, labels)
    return "\n".join(lines)
