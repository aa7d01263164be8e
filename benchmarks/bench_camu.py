"""Benchmark of compiled-graph execution: CaMU on MNIST against the compute floor (issue 5).

Not a test. Prints a table and writes JSON; every figure comes from one run on one machine:

- compute floor: forward+backward (and forward+backward+Adam step) of the MNIST CNN at batch
  32 and at the concatenated batch the fast executor runs (64 for CaMU), and eval forwards;
- CaMU, MNIST class-0 removal (``graphs/camu.yaml``, preset ``mnist-class``, seed 0, the cached
  20-epoch original): split / counterfactuals (materialise) / unlearning loop / evaluation wall
  times, samples/s and peak RSS, for the ``fast`` and the ``reference`` executor;
- original training per epoch against the floor (full: one epoch; ``--quick``: a fixed number
  of steps, extrapolated to an epoch);
- unlearning cost as a fraction of retraining (class-0 and random-10% removal);
- unlearning loop time against forget-set size (random 1..40%, one epoch each), plotted;
- a torch.profiler summary of the fast loop;
- CPU numerics (issue 13), first: each part of the issue's table (split, counterfactuals,
  loop, evaluation of one model, whole ``causalunlearn run`` process) with the numerics off,
  with flush-to-zero, and with flush-to-zero + channels_last, alternated (A B C A B C) over
  ``--repeats`` rounds (the minimum of each part is reported); the loop against the compute
  floor of the same *trained* weights (fwd+bwd+Adam at the loop's batch, same numerics); the
  ratios of every part to the numerics-off run and, on MNIST, to the official CaMU code's
  anchor figures (measured on this project's 2-core machine, issue 13); and, with
  ``--train-epochs N``, original training seconds per epoch with and without flush-to-zero.

Usage::

    CAUSALUNLEARN_DATA_ROOT=/path/to/data python benchmarks/bench_camu.py [--quick] [--out F]
    python benchmarks/bench_camu.py --dataset digits --quick   # smoke check, numerics only
    CAUSALUNLEARN_DATA_ROOT=... python benchmarks/bench_camu.py --numerics-only --threads 2 \
        --repeats 2 --train-epochs 20                          # the issue-13 table
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from causalunlearn.data import load_dataset, make_split
from causalunlearn.device import pick_device
from causalunlearn.engine.verbs import model_name_for, train_from_scratch, unlearn
from causalunlearn.graph import load_graph
from causalunlearn.metrics.evaluate import evaluate
from causalunlearn.models.zoo import build_model
from causalunlearn.numerics import CpuNumerics, applied
from causalunlearn.recipes import Recipe
from causalunlearn.studies.cell import score_model
from causalunlearn.studies.model_cache import ModelCache
from causalunlearn.studies.settings import StudySettings

ROOT = Path(__file__).resolve().parents[1]
CAMU = ROOT / "graphs" / "camu.yaml"
CPU = torch.device("cpu")
#: The device every timed part runs on (``--device``; the CPU by default).
DEVICE = CPU


def _sync() -> None:
    """Wait for queued GPU work, so wall times measure it (nothing to do on the CPU)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def peak_rss(out: dict, key: str, every: float = 0.01):
    """Sample the process RSS every ``every`` s; store the peak and its rise above the start."""
    start = _rss_bytes()
    peak = [start]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            stop.wait(every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        peak[0] = max(peak[0], _rss_bytes())
        out[key] = {"peak_rss_mib": peak[0] / 2**20, "rise_mib": (peak[0] - start) / 2**20}


def floor(
    batch: int,
    steps: int,
    with_step: bool,
    *,
    model_name: str = "cnn",
    num_classes: int = 10,
    input_shape: tuple[int, ...] = (1, 28, 28),
    state: dict | None = None,
    channels_last: bool = False,
) -> float:
    """Seconds per forward+backward (+ Adam step) of a model (default: a fresh MNIST CNN; with
    ``state``, those trained weights: their subnormals are what flush-to-zero removes; with
    ``channels_last``, model and inputs in that memory format, as a training loop would run)."""
    model = build_model(model_name, num_classes, input_shape, seed=0)
    if state is not None:
        model.load_state_dict(state)
    model = model.to(DEVICE)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *input_shape, generator=g)
    y = torch.randint(0, num_classes, (batch,), generator=g)
    x, y = x.to(DEVICE), y.to(DEVICE)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        if with_step:
            opt.step()

    for _ in range(max(5, steps // 10)):
        one()
    _sync()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    _sync()
    return (time.perf_counter() - start) / steps


def eval_floor(rows: int = 8192) -> float:
    """Seconds per row of inference forwards of the CNN at batch 1024."""
    model = build_model("cnn", 10, (1, 28, 28), seed=0).to(DEVICE).eval()
    x = torch.randn(rows, 1, 28, 28).to(DEVICE)
    with torch.inference_mode():
        model(x[:1024])
        _sync()
        start = time.perf_counter()
        for i in range(0, rows, 1024):
            model(x[i : i + 1024])
        _sync()
    return (time.perf_counter() - start) / rows


def camu_run(graph, original, data, scenario: str, executor: str, evaluate_it: bool = True):
    """One timed CaMU run: split, materialise, loop, evaluation."""
    record: dict = {"executor": executor, "scenario": scenario}
    t = time.perf_counter()
    split = make_split(data.train_y, scenario, 0, data.num_classes)
    record["split_s"] = time.perf_counter() - t
    with peak_rss(record, "memory_unlearn"):
        result = unlearn(
            graph, original, data, split, seed=0, progress=False, executor=executor, device=DEVICE
        )
    record["materialise_s"] = result.seconds["materialise"]
    record["loop_s"] = result.seconds["loop"]
    record["unlearn_total_s"] = result.seconds["total"]
    record["steps"] = result.log.steps
    record["forget_rows"] = len(split.forget)
    n_rows = sum(result.log.steps.values()) * graph.schedule.batch_size
    record["loop_samples_per_s"] = 2 * n_rows / record["loop_s"]  # forget + retain-sample rows
    record["plan"] = result.log.plan
    if evaluate_it:
        t = time.perf_counter()
        with peak_rss(record, "memory_evaluate"):
            record["metrics"] = evaluate(result.model, data, split, seed=0, device=DEVICE)
        record["evaluate_s"] = time.perf_counter() - t
        record["pipeline_s"] = record["split_s"] + record["unlearn_total_s"] + record["evaluate_s"]
    return record, split


def training_epoch(data, steps: int | None) -> dict:
    """Original training (the recipe's loop) for one epoch or ``steps`` steps, extrapolated."""
    if steps is not None:
        rows = steps * 32
        sub = replace(data, train_x=data.train_x[:rows], train_y=data.train_y[:rows])
    else:
        sub, rows = data, data.train_x.shape[0]
    split = make_split(sub.train_y, "class:0", 0, sub.num_classes)
    t = time.perf_counter()
    _, log = train_from_scratch(
        sub,
        split,
        "train",
        model="cnn",
        recipe=Recipe(epochs=1),
        seed=0,
        device=DEVICE,
        progress=False,
    )
    wall = time.perf_counter() - t
    scale = data.train_x.shape[0] / rows
    return {
        "rows_timed": rows,
        "extrapolated": steps is not None,
        "loop_s": log.seconds,
        "wall_s": wall,
        "epoch_s": log.seconds * scale,
        "steps_timed": log.steps["train"],
    }


def profile_fast(graph, original, data, split, top: int = 15) -> list[dict]:
    """torch.profiler over one epoch of the fast CaMU loop: top ops by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    g1 = load_graph(CAMU, preset="mnist-class", overrides={"schedule.epochs": 1})
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE.type == "cuda" else [])
    with profile(activities=activities) as prof:
        unlearn(g1, original, data, split, seed=0, progress=False, executor="fast", device=DEVICE)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [
        {
            "op": e.key,
            "self_cpu_ms": e.self_cpu_time_total / 1e3,
            "share": e.self_cpu_time_total / total,
            "calls": e.count,
        }
        for e in events[:top]
    ]


#: The official CaMU code on this project's machine kind (2 cores, Intel Xeon, idle, 2 torch
#: threads, MNIST class-0 removal, seed 0, 20-epoch original; issue 13), seconds.
OFFICIAL_ANCHOR = {
    "whole_s": (98.7, 98.7),
    "split_s": (40.0, 51.0),
    "unlearn_s": (27.1, 27.4),
    "evaluate_s": (19.0, 22.0),
}
#: The issue-13 targets (absolute seconds; loop as a ratio to the floor).
TARGETS = {"whole_s": 24.0, "evaluate_s": 8.0, "loop_over_floor": 1.2}
NUMERICS = {
    "off": CpuNumerics(),
    "flush": CpuNumerics(flush_denormal=True),
    "flush+channels_last": CpuNumerics(flush_denormal=True, channels_last=True),
}
PARTS = ("split_s", "materialise_s", "loop_s", "unlearn_s", "evaluate_s", "whole_s", "target_s")


def whole_process(
    dataset: str,
    preset: str,
    checkpoint: str | None,
    numerics: CpuNumerics,
    threads: int,
    cache: str | None,
) -> float:
    """Wall seconds of one ``causalunlearn run … --no-oracle`` process (import to exit), from
    the given original's weights (``--checkpoint``: the same weights for every setting), or,
    with ``checkpoint=None``, from the cached original (the issue's target run: once its metrics
    are cached too, the process scores the unlearned model only)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "causalunlearn.cli", "run", str(CAMU)]
        cmd += ["--dataset", dataset, "--scenario", "class:0", "--preset", preset]
        cmd += ["--seeds", "0", "--no-oracle", "--no-progress"]
        cmd += ["--checkpoint", checkpoint] if checkpoint else []
        cmd += ["--threads", str(threads), "--device", DEVICE.type]
        cmd += ["--cache-dir", cache] if cache else []
        cmd += ["--flush-denormal" if numerics.flush_denormal else "--no-flush-denormal"]
        cmd += ["--channels-last"] if numerics.channels_last else []
        cmd += ["--out", str(Path(tmp) / "run")]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        return time.perf_counter() - start


def predict_batches(
    rows: int = 8192,
    batches: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096),
    state=None,
    x: torch.Tensor | None = None,
) -> dict:
    """Rows/s of ``predict`` on the MNIST CNN per batch size and numerics setting, best of 2:
    fresh weights unless ``state`` (the trained original's), random MNIST-shaped inputs unless
    ``x`` (real rows)."""
    from causalunlearn.metrics.accuracy import predict

    net = build_model("cnn", 10, (1, 28, 28), seed=0)
    if state is not None:
        net.load_state_dict(state)
    net = net.to(DEVICE).eval()
    if x is None:
        x = torch.randn(rows, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    x = x[:rows]
    rows = len(x)
    predict(net, x[:2048], device=DEVICE)  # warm-up
    table: dict = {}
    for name, numerics in NUMERICS.items():
        with applied(numerics):
            table[name] = {}
            for bs in batches:
                best = math.inf
                for _ in range(2):
                    t = time.perf_counter()
                    predict(net, x, batch_size=bs, device=DEVICE)
                    _sync()
                    best = min(best, time.perf_counter() - t)
                table[name][bs] = rows / best
    return table


def numerics_parts(graph, original, data, model_name: str, numerics: CpuNumerics) -> dict:
    """The in-process parts of one run under ``numerics``: split, counterfactuals, loop,
    evaluation of the unlearned model (``score_model``, every metric a run reports), and the
    loop's compute floor on the original's trained weights."""
    record: dict = {}
    with applied(numerics):
        t = time.perf_counter()
        split = make_split(data.train_y, "class:0", 0, data.num_classes)
        record["split_s"] = time.perf_counter() - t
        result = unlearn(graph, original, data, split, seed=0, progress=False, device=DEVICE)
        record["materialise_s"] = result.seconds["materialise"]
        record["loop_s"] = result.seconds["loop"]
        record["unlearn_s"] = result.seconds["total"]
        steps = sum(result.log.steps.values())
        record["steps"] = steps
        t = time.perf_counter()
        metrics, _ = score_model(
            result.model, data, split, 0, StudySettings(seeds=(0,), progress=False), device=DEVICE
        )
        record["evaluate_s"] = time.perf_counter() - t
        record["metrics"] = metrics
        state = {k: v.detach().cpu().clone() for k, v in original.state_dict().items()}
        per_step = floor(
            2 * graph.schedule.batch_size,
            min(steps, 200),
            True,
            model_name=model_name,
            num_classes=data.num_classes,
            input_shape=tuple(data.input_shape),
            state=state,
        )
        record["floor_loop_s"] = steps * per_step
    return record


def numerics_report(args, data, original, original_path: str, model_name: str) -> dict:
    """Every part with each of ``NUMERICS``, alternated over ``args.repeats`` rounds."""
    preset = f"{data.name}-class" if data.name != "digits" else "digits-class"
    graph = load_graph(CAMU, preset=preset)
    rounds: dict[str, list[dict]] = {name: [] for name in NUMERICS}
    if args.repeats == 1:  # one untimed round first, so the first setting pays no warm-up
        numerics_parts(graph, original, data, model_name, NUMERICS["off"])
    if not args.no_whole:  # untimed: caches the original's metrics for the target run
        whole_process(data.name, preset, None, NUMERICS["off"], args.threads, args.cache_dir)
    for _ in range(args.repeats):
        for name, numerics in NUMERICS.items():  # A B C A B C: drift hits every setting alike
            record = numerics_parts(graph, original, data, model_name, numerics)
            if not args.no_whole:
                record["whole_s"] = whole_process(
                    data.name, preset, original_path, numerics, args.threads, args.cache_dir
                )
                if name == "off":  # the others are other cache entries (their own originals)
                    record["target_s"] = whole_process(
                        data.name, preset, None, numerics, args.threads, args.cache_dir
                    )
            rounds[name].append(record)
    best = {
        name: {k: min(r[k] for r in recs) for k in PARTS if k in recs[0]}
        for name, recs in rounds.items()
    }
    for name, b in best.items():
        b["floor_loop_s"] = min(r["floor_loop_s"] for r in rounds[name])
        b["loop_over_floor"] = b["loop_s"] / b["floor_loop_s"]
    ratios = {
        name: {
            k: best[name][k] / best["off"][k]
            for k in best["off"]
            if k.endswith("_s") and k in best[name]
        }
        for name in NUMERICS
    }
    report = {
        "dataset": data.name,
        "preset": preset,
        "repeats": args.repeats,
        "rounds": rounds,
        "best": best,
        "ratio_to_off": ratios,
        # the flushed and plain runs must agree (docs/performance.md: ±0.1 accuracy, ±1 MIA)
        "metric_change": {
            name: {
                k: rounds[name][0]["metrics"][k] - rounds["off"][0]["metrics"][k]
                for k in rounds["off"][0]["metrics"]
                if isinstance(rounds["off"][0]["metrics"][k], float)
            }
            for name in NUMERICS
        },
    }
    if data.name == "mnist":
        report["official_anchor_s"] = OFFICIAL_ANCHOR
        report["targets"] = TARGETS
    if args.train_epochs:
        report["training"] = {}
        split = make_split(data.train_y, "class:0", 0, data.num_classes)
        for name in ("off", "flush"):
            with applied(NUMERICS[name]):
                _, log = train_from_scratch(
                    data,
                    split,
                    "train",
                    model=model_name,
                    recipe=Recipe(epochs=args.train_epochs),
                    seed=0,
                    device=DEVICE,
                    progress=False,
                )
            report["training"][name] = {
                "epochs": args.train_epochs,
                "loop_s": log.seconds,
                "s_per_epoch": log.seconds / args.train_epochs,
            }
        tr = report["training"]
        tr["flush_over_off"] = tr["flush"]["loop_s"] / tr["off"]["loop_s"]
    return report


def numerics_table(r: dict) -> str:
    """The numerics report as the issue-13 table (best of the rounds) and its ratios."""
    best, ratio = r["best"], r["ratio_to_off"]
    names = list(best)
    anchor = r.get("official_anchor_s")
    lines = [
        f"CPU numerics, CaMU {r['dataset']} class 0 ({r['preset']}), seconds, best of"
        f" {r['repeats']} round(s); ratio to numerics off in brackets",
        "",
        "| part |"
        + (" official CaMU code |" if anchor else "")
        + "".join(f" {n} |" for n in names),
        "|---|" + ("---|" if anchor else "") + "---|" * len(names),
    ]
    labels = {
        "whole_s": "whole process (`run … --no-oracle`, --checkpoint)",
        "split_s": "split construction",
        "unlearn_s": "counterfactuals + unlearning",
        "materialise_s": "  counterfactuals",
        "loop_s": "  unlearning loop",
        "evaluate_s": "evaluation (one model)",
        "target_s": "target run (`run … --no-oracle`, original and its metrics cached)",
    }
    for key, label in labels.items():
        if key not in best["off"]:
            continue
        row = f"| {label} |"
        if anchor:
            lo, hi = anchor.get(key, (None, None)) if key in anchor else (None, None)
            row += " – |" if lo is None else (f" {lo:g} |" if lo == hi else f" {lo:g}–{hi:g} |")
        row += "".join(
            f" {best[n][key]:.2f} ({ratio[n][key]:.2f}×) |" if key in best[n] else " – |"
            for n in names
        )
        lines.append(row)
    lines.append(
        "| loop / floor (fwd+bwd+Adam, trained weights) |"
        + (" – |" if anchor else "")
        + "".join(f" {best[n]['loop_over_floor']:.2f} |" for n in names)
    )
    if anchor and "whole_s" in best["off"]:
        lines += [
            "",
            "- whole process vs the official code's 98.7 s: "
            + ", ".join(f"{n} {98.7 / best[n]['whole_s']:.2f}× faster" for n in names)
            + f" (target ≥ 4×: ≤ {TARGETS['whole_s']:g} s)",
        ]
    if anchor and "target_s" in best["off"]:
        t = best["off"]["target_s"]
        lines.append(
            f"- target run (original and its metrics cached): {t:.1f} s = {98.7 / t:.2f}× faster"
            f" than the official code, {t / best['off']['whole_s']:.2f}× of the numerics-off"
            " whole process (targets ≤ 24 s, ≤ 0.34×)"
        )
    change = r["metric_change"]
    worst = {
        n: max((abs(v), k) for k, v in change[n].items() if not math.isnan(v))
        for n in names
        if n != "off" and change[n]
    }
    for n, (v, k) in worst.items():
        lines.append(f"- {n}: largest metric change vs off {v:.3f} points ({k})")
    if "training" in r:
        t = r["training"]
        lines.append(
            f"- original training ({t['off']['epochs']} epochs): off {t['off']['s_per_epoch']:.1f}"
            f" s/epoch, flush {t['flush']['s_per_epoch']:.1f} s/epoch ="
            f" {t['flush_over_off']:.2f}× (target ≤ 0.8×)"
        )
    return "\n".join(lines)


def plot_scaling(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    xs = [p["forget_fraction"] * 100 for p in points]
    ax.plot(xs, [p["loop_s"] for p in points], "o-", label="unlearning loop (fast)")
    ax.plot(xs, [p["floor_s"] for p in points], "s--", label="compute floor (fwd+bwd+Adam)")
    ax.set_xlabel("forget set (% of MNIST train, random)")
    ax.set_ylabel("seconds (1 epoch)")
    ax.set_title("CaMU unlearning time vs forget size (CPU, 1 thread)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer points, a few minutes")
    parser.add_argument("--out", default=None, help="JSON output path")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "img" / "perf-scaling.png"))
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--dataset",
        default="mnist",
        choices=["mnist", "digits"],
        help="mnist (default) or digits (a smoke check: the numerics section only)",
    )
    parser.add_argument(
        "--numerics-only", action="store_true", help="only the CPU-numerics section (issue 13)"
    )
    parser.add_argument(
        "--repeats", type=int, help="alternated rounds of the numerics section (quick 1, else 2)"
    )
    parser.add_argument(
        "--train-epochs",
        type=int,
        default=0,
        help="also time original training for N epochs with and without flush-to-zero",
    )
    parser.add_argument(
        "--no-whole", action="store_true", help="skip the whole-process (subprocess) timings"
    )
    parser.add_argument("--cache-dir", help="cache of datasets and models (else the default)")
    parser.add_argument(
        "--predict-only",
        action="store_true",
        help="only predict's rows/s per batch size and numerics (fresh MNIST CNN, random inputs)",
    )
    parser.add_argument(
        "--layout-only",
        action="store_true",
        help="only fwd+bwd+Adam ms/step on the trained MNIST CNN, contiguous vs channels_last",
    )
    parser.add_argument(
        "--trained",
        action="store_true",
        help="with --predict-only: the cached MNIST original's weights on real MNIST test rows",
    )
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = pick_device(args.device)
    torch.set_num_threads(args.threads)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 2
    numerics_only = args.numerics_only or args.dataset != "mnist"
    out = Path(
        args.out
        or ROOT
        / "benchmarks"
        / "results"
        / f"camu-{DEVICE.type}{'' if args.dataset == 'mnist' else '-' + args.dataset}"
        f"{'-numerics' if numerics_only else ''}{'-quick' if args.quick else ''}.json"
    )
    report: dict = {
        "command": "python benchmarks/bench_camu.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": str(DEVICE),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "uptime_before": subprocess.run(["uptime"], capture_output=True, text=True).stdout,
        },
    }
    if args.layout_only:  # channels_last in training: fwd+bwd+Adam on the trained weights
        data = load_dataset("mnist", progress=False, cache_dir=args.cache_dir)
        original, _ = _original(args, data, model_name_for(data, None))
        state = {k: v.detach().cpu() for k, v in original.state_dict().items()}
        rows = {}
        for name in ("off", "flush"):
            with applied(NUMERICS[name]):
                for batch in (32, 64):
                    for layout in (False, True, False, True):  # A B A B
                        key = f"{name} batch {batch} {'channels_last' if layout else 'contiguous'}"
                        t = floor(batch, 100, True, state=state, channels_last=layout)
                        rows[key] = min(rows.get(key, math.inf), t * 1e3)
        report["train_step_ms"] = rows
        _write(report, out.with_name(f"layout-{DEVICE.type}.json"))
        for key, ms in rows.items():
            print(f"{key:45} {ms:7.2f} ms/step")
        return report
    if args.predict_only:
        if args.trained:  # the cached original's weights on real MNIST test rows
            data = load_dataset("mnist", progress=False, cache_dir=args.cache_dir)
            original, _ = _original(args, data, model_name_for(data, None))
            state = {k: v.detach().cpu() for k, v in original.state_dict().items()}
            report["predict_weights"] = "trained original (mnist, seed 0), mnist test rows"
            report["predict_rows_per_s"] = predict_batches(state=state, x=data.test_x)
        else:
            report["predict_weights"] = "fresh weights, random inputs"
            report["predict_rows_per_s"] = predict_batches()
        name = f"predict-{DEVICE.type}{'-trained' if args.trained else ''}.json"
        _write(report, out.with_name(name))
        for name, row in report["predict_rows_per_s"].items():
            print(f"{name:20}", "  ".join(f"{bs}: {v:,.0f}" for bs, v in row.items()))
        return report
    if numerics_only:
        data = load_dataset(args.dataset, progress=False, cache_dir=args.cache_dir)
        model_name = model_name_for(data, None)
        original, original_path = _original(args, data, model_name)
        report["numerics"] = numerics_report(args, data, original, original_path, model_name)
        _write(report, out)
        print(numerics_table(report["numerics"]))
        print(f"\nJSON: {out}")
        return report

    sections = ["floor", "camu-class fast", "camu-class reference", "training", "random-10%"]
    fractions = [0.01, 0.05, 0.10] if args.quick else [0.01, 0.05, 0.10, 0.20, 0.40]
    sections += [f"scaling {f:.0%}" for f in fractions] + ([] if args.no_profile else ["profile"])
    bar = tqdm(total=len(sections), desc="benchmark")

    n_floor = 60 if args.quick else 200

    def measure_floor() -> dict:
        return {
            "fwd_bwd_s_b32": floor(32, n_floor, False),
            "fwd_bwd_s_b64": floor(64, n_floor, False),
            "step_s_b32": floor(32, n_floor, True),
            "step_s_b64": floor(64, n_floor, True),
            "eval_s_per_row": eval_floor(),
        }

    # The floor is measured at the start and again at the end of the run; the ratios use the
    # faster of the two (the machine is shared: the lower time is the truer floor, and it
    # makes our ratios larger, not smaller).
    report["floor_start"] = measure_floor()
    bar.update()

    fl = dict(report["floor_start"])  # replaced by the min of start and end below
    data = load_dataset("mnist", progress=False, cache_dir=args.cache_dir)
    original, original_path = _original(args, data, "cnn")
    report["original"] = {"path": original_path}
    report["numerics"] = numerics_report(args, data, original, original_path, "cnn")
    graph = load_graph(CAMU, preset="mnist-class")

    runs = {}
    for executor in ("fast", "reference"):
        runs[executor], split = camu_run(graph, original, data, "class:0", executor)
        bar.update()
    report["camu_class0"] = runs
    report["floor_end"] = measure_floor()
    fl = {k: min(report["floor_start"][k], report["floor_end"][k]) for k in fl}
    for b in (32, 64):
        fl[f"fwd_bwd_samples_per_s_b{b}"] = b / fl[f"fwd_bwd_s_b{b}"]
    report["floor"] = fl
    steps = sum(runs["fast"]["steps"].values())
    concat = 2 * graph.schedule.batch_size
    floor_loop = {
        "fwd_bwd": steps * fl[f"fwd_bwd_s_b{concat}"],
        "step": steps * fl[f"step_s_b{concat}"],
    }
    report["ratios"] = {
        "fast_over_reference_loop": runs["fast"]["loop_s"] / runs["reference"]["loop_s"],
        "fast_over_reference_pipeline": runs["fast"]["pipeline_s"]
        / runs["reference"]["pipeline_s"],
        "floor_loop_fwd_bwd_s": floor_loop["fwd_bwd"],
        "floor_loop_step_s": floor_loop["step"],
        "fast_over_floor_fwd_bwd": runs["fast"]["loop_s"] / floor_loop["fwd_bwd"],
        "fast_over_floor_step": runs["fast"]["loop_s"] / floor_loop["step"],
        "reference_over_floor_step": runs["reference"]["loop_s"] / floor_loop["step"],
    }

    training = training_epoch(data, 300 if args.quick else None)
    n_train = data.train_x.shape[0]
    training["floor_epoch_fwd_bwd_s"] = (n_train / 32) * fl["fwd_bwd_s_b32"]
    training["floor_epoch_step_s"] = (n_train / 32) * fl["step_s_b32"]
    training["over_floor_fwd_bwd"] = training["epoch_s"] / training["floor_epoch_fwd_bwd_s"]
    training["over_floor_step"] = training["epoch_s"] / training["floor_epoch_step_s"]
    report["training"] = training
    bar.update()

    # Unlearning vs retraining: the oracle is the 20-epoch recipe on the retain set; its time
    # is the measured per-epoch time scaled by |retain| / |train| and 20 epochs.
    retrain = {}
    epoch_s = training["epoch_s"]
    cls = runs["fast"]
    retain_rows = n_train - cls["forget_rows"]
    retrain["class0"] = {
        "unlearn_s": cls["unlearn_total_s"],
        "retrain_estimate_s": 20 * epoch_s * retain_rows / n_train,
    }
    graph_random = load_graph(CAMU, preset="mnist-random")
    epochs_random = graph_random.schedule.epochs
    if args.quick:  # one epoch, extrapolated to the preset's epochs
        graph_random_run = load_graph(CAMU, preset="mnist-random", overrides={"schedule.epochs": 1})
    else:
        graph_random_run = graph_random
    rnd, _ = camu_run(graph_random_run, original, data, "random:0.1", "fast", evaluate_it=False)
    scale = epochs_random / graph_random_run.schedule.epochs
    rnd_unlearn = rnd["materialise_s"] + rnd["loop_s"] * scale
    retrain["random10"] = {
        "unlearn_s": rnd_unlearn,
        "epochs": epochs_random,
        "extrapolated_from_epochs": graph_random_run.schedule.epochs,
        "retrain_estimate_s": 20 * epoch_s * (n_train - rnd["forget_rows"]) / n_train,
    }
    for v in retrain.values():
        v["fraction"] = v["unlearn_s"] / v["retrain_estimate_s"]
    report["unlearn_vs_retrain"] = retrain
    bar.update()

    points = []
    g1 = load_graph(CAMU, preset="mnist-random", overrides={"schedule.epochs": 1})
    for f in fractions:
        rec, _ = camu_run(g1, original, data, f"random:{f}", "fast", evaluate_it=False)
        n_steps = sum(rec["steps"].values())
        points.append(
            {
                "forget_fraction": f,
                "forget_rows": rec["forget_rows"],
                "steps": n_steps,
                "materialise_s": rec["materialise_s"],
                "loop_s": rec["loop_s"],
                "floor_s": n_steps * fl[f"step_s_b{concat}"],
                "loop_samples_per_s": rec["loop_samples_per_s"],
            }
        )
        bar.update()
    report["scaling"] = points
    plot_scaling(points, Path(args.plot))
    report["scaling_plot"] = str(args.plot)

    if not args.no_profile:
        report["profile_fast_1epoch"] = profile_fast(graph, original, data, split)
        bar.update()
    bar.close()
    _write(report, out)
    print(numerics_table(report["numerics"]) + "\n")
    print(table(report))
    print(f"\nJSON: {out}\nplot: {args.plot}")
    return report


def _original(args, data, model_name: str) -> tuple[torch.nn.Module, str]:
    """The cached original (trained with the numerics off: the weights every setting starts
    from; digits ``--quick``: 2 epochs, else the 20-epoch recipe) and its file."""
    cache = ModelCache(Path(args.cache_dir) / "models") if args.cache_dir else ModelCache()
    recipe = Recipe(epochs=2) if args.quick and data.name == "digits" else Recipe()
    with applied(CpuNumerics()):
        original, info = cache.get(
            data,
            make_split(data.train_y, "class:0", 0, data.num_classes),
            "original",
            model=model_name,
            recipe=recipe,
            seed=0,
            device=DEVICE,
            progress=not args.quick,
        )
    return original, info["path"]


def _write(report: dict, out: Path) -> None:
    report["machine"]["uptime_after"] = subprocess.run(
        ["uptime"], capture_output=True, text=True
    ).stdout
    report["machine"]["ru_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.partial")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    os.replace(tmp, out)


def table(r: dict) -> str:
    """The report as Markdown tables."""
    fl, runs, rat = r["floor"], r["camu_class0"], r["ratios"]
    lines = [
        "| compute floor (MNIST CNN, 1 thread) | ms/step | samples/s |",
        "|---|---|---|",
    ]
    for b in (32, 64):
        lines.append(
            f"| fwd+bwd, batch {b} | {fl[f'fwd_bwd_s_b{b}'] * 1e3:.2f} |"
            f" {b / fl[f'fwd_bwd_s_b{b}']:.0f} |"
        )
        lines.append(
            f"| fwd+bwd+Adam, batch {b} | {fl[f'step_s_b{b}'] * 1e3:.2f} |"
            f" {b / fl[f'step_s_b{b}']:.0f} |"
        )
    lines.append(f"| eval forward, batch 1024 | — | {1 / fl['eval_s_per_row']:.0f} |")
    lines += [
        "",
        "| CaMU MNIST class 0 | split s | counterfactuals s | loop s | evaluate s |"
        " pipeline s | loop samples/s | peak RSS MiB (unlearn / eval) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ex, run in runs.items():
        lines.append(
            f"| {ex} | {run['split_s']:.3f} | {run['materialise_s']:.3f} | {run['loop_s']:.2f} |"
            f" {run['evaluate_s']:.2f} | {run['pipeline_s']:.2f} |"
            f" {run['loop_samples_per_s']:.0f} | {run['memory_unlearn']['peak_rss_mib']:.0f} /"
            f" {run['memory_evaluate']['peak_rss_mib']:.0f} |"
        )
    lines += [
        "",
        f"- loop floor ({sum(runs['fast']['steps'].values())} stage steps at batch 64):"
        f" fwd+bwd {rat['floor_loop_fwd_bwd_s']:.2f} s,"
        f" fwd+bwd+Adam {rat['floor_loop_step_s']:.2f} s",
        f"- fast / reference loop: {rat['fast_over_reference_loop']:.2f};"
        f" pipeline: {rat['fast_over_reference_pipeline']:.2f}",
        f"- fast / floor: {rat['fast_over_floor_fwd_bwd']:.2f} (fwd+bwd),"
        f" {rat['fast_over_floor_step']:.2f} (fwd+bwd+Adam);"
        f" reference / floor (fwd+bwd+Adam): {rat['reference_over_floor_step']:.2f}",
    ]
    t = r["training"]
    lines.append(
        f"- original training: {t['epoch_s']:.1f} s/epoch"
        f"{' (extrapolated from ' + str(t['rows_timed']) + ' rows)' if t['extrapolated'] else ''};"
        f" floor {t['floor_epoch_fwd_bwd_s']:.1f} s (fwd+bwd), {t['floor_epoch_step_s']:.1f} s"
        f" (+Adam); ratio {t['over_floor_fwd_bwd']:.2f} / {t['over_floor_step']:.2f}"
    )
    for k, v in r["unlearn_vs_retrain"].items():
        lines.append(
            f"- {k}: unlearning {v['unlearn_s']:.1f} s vs retrain (20 epochs, estimated)"
            f" {v['retrain_estimate_s']:.0f} s = {100 * v['fraction']:.1f}%"
        )
    lines += [
        "",
        "| forget % | rows | steps | loop s | floor s | loop/floor |",
        "|---|---|---|---|---|---|",
    ]
    for p in r["scaling"]:
        lines.append(
            f"| {100 * p['forget_fraction']:.0f} | {p['forget_rows']} | {p['steps']} |"
            f" {p['loop_s']:.2f} | {p['floor_s']:.2f} | {p['loop_s'] / p['floor_s']:.2f} |"
        )
    if "profile_fast_1epoch" in r:
        lines += ["", "| top ops, fast loop (torch.profiler) | self CPU ms | share | calls |"]
        lines.append("|---|---|---|---|")
        for e in r["profile_fast_1epoch"]:
            lines.append(
                f"| {e['op']} | {e['self_cpu_ms']:.0f} | {100 * e['share']:.1f}% | {e['calls']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
