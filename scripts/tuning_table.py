"""Collect `causalunlearn tune` reports into the tables of docs/baselines.md, and write the
chosen values into the baseline graph files' presets.

    python scripts/tuning_table.py runs/tune            # print the markdown tables
    python scripts/tuning_table.py runs/tune --apply    # also rewrite the presets

Each ``runs/tune/<method>-<dataset>-<class|random>/tuning.json`` is one tuning run (made by
``causalunlearn tune graphs/baselines/<method>.yaml --dataset D --scenario S``). ``--apply``
replaces the line of the preset the run tuned (``mnist-class: {...}``) with the run's
``preset_line`` in the graph file it read, or adds it under ``presets:`` when the file has no
such preset; every other line (comments included) is left as it is.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from causalunlearn.studies.seeds import seed_plan_text
from causalunlearn.studies.tuning_grid import DEFAULT_FACTORS

SCENARIOS = [
    ("digits", "class:0"),
    ("mnist", "class:0"),
    ("mnist", "random:0.1"),
    ("fashion-mnist", "class:0"),
    ("fashion-mnist", "random:0.1"),
    ("cifar10", "class:0"),
]


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _overrides(overrides: dict) -> str:
    parts = [
        f"{k.split('.', 1)[1] if k.startswith(('stages.', 'params.')) else k}={_value(v)}"
        for k, v in overrides.items()
    ]
    return ", ".join(parts)


def load(root: Path) -> list[dict]:
    reports = []
    for path in sorted(root.glob("*/tuning.json")):
        report = json.loads(path.read_text())
        report["_path"] = str(path)
        reports.append(report)
    return reports


def _seeds(task: dict) -> str:
    """``seed 100, 101`` (paired tuning seeds, as before), or the nested seeds in words."""
    if "seeds" in task:
        return f"seed {', '.join(map(str, task['seeds']))}"
    return seed_plan_text(task)


def table(reports: list[dict], dataset: str, scenario: str) -> str:
    rows = [
        r for r in reports if r["task"]["dataset"] == dataset and r["task"]["scenario"] == scenario
    ]
    if not rows:
        return ""
    task = rows[0]["task"]
    lines = [
        f"**{dataset}, {scenario}** (validation task: {task['validation_view']}, "
        f"{task['proxy_scenario']}, {_seeds(task)})",
        "",
        "| method | shipped before | candidates: avg gap (– = diverged) | chosen | avg gap"
        " | margin |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["method"]):
        cands = r["candidates"]
        before = next((c for c in cands if _is_factor_one(r, c)), None)
        cells = ", ".join(
            f"{_overrides(c['overrides'])}: "
            + ("–" if c["diverged"] else f"{c['average_gap']:.2f}")
            for c in cands
        )
        chosen = r.get("chosen")
        best = next((c for c in cands if chosen and c["label"] == chosen["label"]), None)
        lines.append(
            "| {m} | {b} | {c} | {ch} | {g} | {mg} |".format(
                m=r["method"],
                b=_overrides(before["overrides"]) if before else "–",
                c=cells,
                ch=_overrides(chosen["overrides"]) if chosen else "none (all diverged)",
                g=f"{best['average_gap']:.2f}" if best else "–",
                mg=f"{r['margin']:.2f}" if r.get("margin") is not None else "–",
            )
        )
    return "\n".join(lines) + "\n"


def _is_factor_one(report: dict, cand: dict) -> bool:
    """The candidate equal to the file's shipped value: factor 1 of the default grid."""
    if report.get("grid") != "default":
        return False
    return report["candidates"].index(cand) == DEFAULT_FACTORS.index(1.0)


def apply(report: dict) -> str | None:
    """Write the report's preset line into its graph file; returns what changed."""
    line = report.get("preset_line")
    if not line or not report.get("chosen"):
        return None
    path = Path(report["source"])
    preset = line.split(":", 1)[0]
    text = path.read_text()
    pattern = re.compile(rf"^  {re.escape(preset)}: \{{.*\}}$", re.M)
    if pattern.search(text):
        new = pattern.sub(lambda _m: "  " + line, text, count=1)
    elif re.search(rf"^  {re.escape(preset)}:\s*$", text, re.M):
        return f"{path}: {preset} is written as a block; edit it by hand to: {line}"
    else:
        block = re.search(r"^presets:\n((?:  .*\n)*)", text, re.M)
        if block is None:
            new = text.rstrip("\n") + f"\npresets:\n  {line}\n"
        else:
            end = block.end()
            new = text[:end] + f"  {line}\n" + text[end:]
    if new != text:
        path.write_text(new)
        return f"wrote {path}: {line}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--apply", action="store_true")
    args = parser.parse_args()
    reports = load(args.root)
    for dataset, scenario in SCENARIOS:
        out = table(reports, dataset, scenario)
        if out:
            print(out)
    if args.apply:
        for report in reports:
            changed = apply(report)
            if changed:
                print(changed)


if __name__ == "__main__":
    main()
