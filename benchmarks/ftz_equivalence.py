"""Does flush-to-zero change any number? The check that decides its default (issue 13).

Not a benchmark (nothing here is timed): for each seed, the original model is trained once with
the numerics off (the toolkit's 20-epoch recipe, cached), then CaMU is run from those same
weights (``--checkpoint``) with ``--no-flush-denormal`` and with ``--flush-denormal``, on class-0
removal (preset ``mnist-class``) and random 10 % removal (``mnist-random``), without an oracle
(every accuracy and MIA of the run table; the oracle gaps follow from them). The same weights on
both sides isolate what the setting does to unlearning and evaluation; what it does to training
an original shows in the originals' test accuracy (``--train``: one original trained with the
setting on, against the seed-to-seed spread of the ones trained with it off).

Prints, per scenario and metric, the largest |on − off| over the seeds, against the bounds the
issue sets (±0.1 point for accuracies, ±1 point for MIA), and writes the JSON to
``benchmarks/results/ftz-equivalence.json``.

Usage::

    CAUSALUNLEARN_DATA_ROOT=/path/to/data python benchmarks/ftz_equivalence.py \\
        [--seeds 0,1,2] [--threads 1] [--train]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAMU = ROOT / "graphs" / "camu.yaml"
SCENARIOS = {"class:0": "mnist-class", "random:0.1": "mnist-random"}
#: The issue's bounds, in points: accuracies ±0.1, membership-inference metrics ±1.
ACC_BOUND, MIA_BOUND = 0.1, 1.0


def run(args: list[str], threads: int) -> dict:
    """One ``causalunlearn run`` process; its manifest."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "causalunlearn.cli", "run", str(CAMU), "--dataset", "mnist"]
        cmd += [*args, "--no-oracle", "--no-progress", "--threads", str(threads), "--out", str(out)]
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["_wall_s"] = time.perf_counter() - t
        return manifest


def bound(key: str) -> float:
    """The allowed |on − off| of a metric, in points."""
    return MIA_BOUND if "mia" in key else ACC_BOUND


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--train", action="store_true", help="also train seed 0's original with the setting on"
    )
    parser.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "ftz-equivalence.json")
    )
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    report: dict = {
        "command": "python benchmarks/ftz_equivalence.py " + " ".join(argv or sys.argv[1:])
    }
    report["runs"] = []
    originals: dict[int, dict] = {}
    for seed in seeds:
        # trains (or loads) the cached original of this seed with the numerics off
        first = run(
            ["--scenario", "class:0", "--preset", "mnist-class", "--seeds", str(seed)], args.threads
        )
        info = first["per_seed"][0]["models"]["original"]
        originals[seed] = {
            "path": info["path"],
            "test_acc": first["per_seed"][0]["metrics"]["original"]["test_acc"],
        }
        for scenario, preset in SCENARIOS.items():
            for setting in ("--no-flush-denormal", "--flush-denormal"):
                m = run(
                    ["--scenario", scenario, "--preset", preset, "--seeds", str(seed)]
                    + ["--checkpoint", info["path"], setting],
                    args.threads,
                )
                report["runs"].append(
                    {
                        "seed": seed,
                        "scenario": scenario,
                        "flush": setting == "--flush-denormal",
                        "numerics": m.get("numerics"),
                        "metrics": m["per_seed"][0]["metrics"],
                        "wall_s": m["_wall_s"],
                    }
                )
                print(f"seed {seed} {scenario} {setting}: {m['_wall_s']:.1f} s", flush=True)
    report["originals"] = originals
    changes: dict = {}
    for scenario in SCENARIOS:
        for seed in seeds:
            pair = {
                r["flush"]: r
                for r in report["runs"]
                if r["seed"] == seed and r["scenario"] == scenario
            }
            for role in ("original", "unlearned"):
                off, on = pair[False]["metrics"][role], pair[True]["metrics"][role]
                for key, value in off.items():
                    if isinstance(value, float) and key != "unlearn_seconds" and key in on:
                        d = abs(on[key] - value)
                        slot = changes.setdefault(scenario, {}).setdefault(f"{role}.{key}", 0.0)
                        changes[scenario][f"{role}.{key}"] = max(slot, d)
    report["largest_change"] = changes
    report["within_bounds"] = all(
        d <= bound(k) for per in changes.values() for k, d in per.items() if "seconds" not in k
    )
    if args.train:
        spread = [o["test_acc"] for o in originals.values()]
        trained = run(
            [
                "--scenario",
                "class:0",
                "--preset",
                "mnist-class",
                "--seeds",
                str(seeds[0]),
                "--flush-denormal",
            ],
            args.threads,
        )
        report["training"] = {
            "off_test_acc_by_seed": {s: o["test_acc"] for s, o in originals.items()},
            "off_spread": [min(spread), max(spread)],
            "flush_test_acc_seed": trained["per_seed"][0]["metrics"]["original"]["test_acc"],
        }
    print("\nlargest |flush − off| over seeds", seeds, "(points; bound ±0.1 accuracy, ±1 MIA)")
    for scenario, per in changes.items():
        print(f"\n{scenario}")
        for key, d in sorted(per.items()):
            flag = "" if d <= bound(key) else "  ← over the bound"
            print(f"  {key:40} {d:8.3f}{flag}")
    print("\nwithin bounds:", report["within_bounds"])
    if "training" in report:
        print("training:", report["training"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.partial")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    os.replace(tmp, out)
    print("JSON:", out)
    return report


if __name__ == "__main__":
    main()
