"""Benchmark of the sweep backends (issue 14): one scenario, ``local`` at 1 thread against
``ray`` with N workers at 1 thread each. Not a test.

Every figure comes from one run of this script on one machine, which prints them and writes
them as JSON:

- a warm-up sweep first (``--warmup-backend``, local by default) trains and scores the
  originals and oracles into the cache, so the two timed sweeps run only the unlearning cells
  ("originals and oracles cached");
- each timed sweep is one ``causalunlearn compare`` process under ``/usr/bin/time -v``: wall
  time, the largest single process's peak RSS (``time -v``), the peak RSS summed over the
  driver and every process it started (Ray's raylet, GCS and workers; sampled every 0.2 s);
- the time from the command to the first cell starting (the cells' ``worker.started``): the
  process start, imports and, for Ray, starting Ray and its workers;
- the speed-up (local wall / ray wall, of the whole command and from the first cell on) and
  whether the two sweeps' cells and summary tables are identical (every metric but the wall
  time ``unlearn_seconds``);
- ``uptime`` before and after: the machine may be shared; the load says how much.

Usage::

    python benchmarks/bench_sweep.py                              # digits, 4 methods, seeds 0,1
    python benchmarks/bench_sweep.py --methods all --seeds 0,1,2  # every shipped method
    CAUSALUNLEARN_DATA_ROOT=/path/to/data python benchmarks/bench_sweep.py --dataset mnist \\
        --methods all --seeds 0,1,2                               # the issue's MNIST figure
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The default methods: quick on digits, both kinds of method (graphs and SSD).
DEFAULT_METHODS = ("camu", "baselines/finetune", "baselines/neggrad", "baselines/ssd")


def shipped_methods() -> list[str]:
    """Every shipped graph and method entry file, as ``compare`` takes them."""
    files = sorted((ROOT / "graphs").rglob("*.yaml"))
    return [str(p) for p in files if "ablations" not in p.parts]


def _tree_rss(pid: int) -> int:
    """Summed RSS (bytes) of ``pid`` and every descendant, now."""
    parents, rss = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents[int(entry.name)] = int(fields[1])
        rss[int(entry.name)] = pages * os.sysconf("SC_PAGE_SIZE")
    tree, frontier = {pid}, {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - tree
        tree |= frontier
    return sum(rss.get(p, 0) for p in tree)


def timed(command: list[str], env: dict[str, str]) -> dict:
    """Run ``command`` under ``/usr/bin/time -v``; wall time, peak RSS (largest process and the
    sampled sum over the process tree) and the start time."""
    started = time.time()
    clock = time.perf_counter()
    proc = subprocess.Popen(
        ["/usr/bin/time", "-v", *command], env=env, stderr=subprocess.PIPE, text=True
    )
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - clock
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err[-4000:]}")
    largest = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    return {
        "command": " ".join(command),
        "started": started,
        "wall_s": wall,
        "peak_rss_largest_process_mb": int(largest.group(1)) / 1024 if largest else None,
        "peak_rss_process_tree_mb": peak[0] / 2**20,
    }


def cells(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs").rglob("seed*.json"))]


def numbers(out: Path) -> dict:
    """Cells' metrics and the summary tables without wall times."""
    per_cell = {}
    for path in sorted((out / "runs").rglob("seed*.json")):
        cell = json.loads(path.read_text())
        if cell.get("status") == "failed":  # a diverged method: its code is its result
            per_cell[str(path.relative_to(out))] = {"failed": cell["error"]["code"]}
            continue
        metrics = dict(cell["metrics"])
        metrics.pop("unlearn_seconds", None)
        per_cell[str(path.relative_to(out))] = metrics
    tables = json.loads((out / "summary.json").read_text())["tables"]
    for table in tables:
        for row in table["rows"].values():
            row.pop("unlearn_seconds", None)
    return {"cells": per_cell, "tables": tables}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--scenario", default="class:0")
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated shipped names or files, or 'all' (every shipped method)",
    )
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--warmup-backend",
        choices=("local", "ray"),
        default="local",
        help="backend of the untimed warm-up sweep (ray: --workers workers; it only fills the"
        " cache, so it may run in parallel)",
    )
    parser.add_argument(
        "--skip-warmup",
        action="store_true",
        help="no warm-up sweep: only when --cache-dir already holds every original, oracle and"
        " their scores (e.g. an earlier run of this script with the same methods and seeds)",
    )
    parser.add_argument("--cache-dir", help="model cache (default: a temporary folder)")
    parser.add_argument("--out", help="where the sweeps and the JSON go (default: temporary)")
    args = parser.parse_args(argv)
    methods = shipped_methods() if args.methods == "all" else args.methods.split(",")
    work = Path(args.out or tempfile.mkdtemp(prefix="bench-sweep-"))
    cache = args.cache_dir or str(work / "cache")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    base = [
        *(sys.executable, "-m", "causalunlearn.cli", "compare", *methods),
        *("--dataset", args.dataset, "--scenario", args.scenario, "--seeds", args.seeds),
        *("--threads", "1", "--no-plots", "--no-progress", "--cache-dir", cache),
    ]
    report: dict = {"uptime_before": uptime(), "methods": methods, "dataset": args.dataset}
    if not args.skip_warmup:
        print("warm-up (trains and scores the originals and oracles once) ...", file=sys.stderr)
    warm = [*base, "--out", str(work / "warm"), "--overwrite", "--backend", args.warmup_backend]
    if args.warmup_backend == "ray":
        warm += ["--workers", str(args.workers)]
    if args.skip_warmup:
        report["warmup"] = "skipped (--skip-warmup: the cache was warm)"
    else:
        report["warmup"] = timed(warm, env)
    runs = {
        "local": [*base, "--backend", "local", "--out", str(work / "local")],
        "ray": [
            *base,
            *("--backend", "ray", "--workers", str(args.workers), "--out", str(work / "ray")),
        ],
    }
    for name, command in runs.items():
        print(f"{name} ...", file=sys.stderr)
        run = timed(command, env)
        ran = cells(work / name)
        run["cells"] = len(ran)
        run["command_to_first_cell_s"] = min(c["worker"]["started"] for c in ran) - run["started"]
        run["workers_seen"] = len({(c["worker"]["host"], c["worker"]["pid"]) for c in ran})
        report[name] = run
    for name in runs:  # from the first cell starting to the end: the cells' own phase
        report[name]["cells_phase_s"] = (
            report[name]["wall_s"] - report[name]["command_to_first_cell_s"]
        )
    report["speedup"] = report["local"]["wall_s"] / report["ray"]["wall_s"]
    report["speedup_cells_phase"] = (
        report["local"]["cells_phase_s"] / report["ray"]["cells_phase_s"]
    )
    report["identical"] = numbers(work / "local") == numbers(work / "ray")
    report["uptime_after"] = uptime()
    report["cores"] = len(os.sched_getaffinity(0))
    (work / "bench_sweep.json").write_text(json.dumps(report, indent=2))
    for name in ("local", "ray"):
        r = report[name]
        print(
            f"{name:6} {r['cells']} cells: {r['wall_s']:.1f} s wall, first cell after"
            f" {r['command_to_first_cell_s']:.1f} s, peak RSS {r['peak_rss_process_tree_mb']:.0f}"
            f" MB (all processes), {r['peak_rss_largest_process_mb']:.0f} MB (largest)"
        )
    print(
        f"speed-up {report['speedup']:.2f}x (whole command), {report['speedup_cells_phase']:.2f}x"
        f" (from the first cell on), identical tables: {report['identical']}"
    )
    print(f"before: {report['uptime_before']}\nafter:  {report['uptime_after']}")
    print(f"report: {work / 'bench_sweep.json'}")
    return report


if __name__ == "__main__":
    main()
