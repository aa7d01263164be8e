"""Benchmark of stacked weight variants: K separate runs against one stacked run (vmap).

Not a test. Prints a table and ratios; every figure comes from one run on one machine. The K
variants are CaMU (``graphs/camu.yaml``, class-0 removal, seed 0) and its ablations by weight:
the base graph, then each intervention edge at weight 0, then (for a larger ``--k``) each edge
at twice its weight. Both sides run the same work:

- separate: ``unlearn(variant_k, ..., executor="fast")`` for k = 1..K, one after the other;
- stacked: one ``unlearn_stacked(variants, ...)`` of the same K graphs (its check that they
  differ only in weights is timed with it).

Each side is timed ``--repeats`` times, interleaved, after one untimed warm-up of each; the
table shows the fastest repeat (the machine may be shared: the lower time is the truer one)
and the median. ``total`` is the whole call (model copy, counterfactuals, loop, unstacking);
``loop`` the training loop alone. The largest weight difference between each stacked variant
and its separate run is printed as a check that both sides did the same work.

Usage::

    python benchmarks/bench_stacked.py [--k 3] [--threads 1] [--device cpu] [--save]
    python benchmarks/bench_stacked.py --dataset mnist --data-root /path/to/data
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from causalunlearn.data import load_dataset, make_split
from causalunlearn.device import pick_device
from causalunlearn.engine.stacked import unlearn_stacked, weight_variants
from causalunlearn.engine.verbs import train_from_scratch, unlearn
from causalunlearn.graph import load_graph
from causalunlearn.recipes import Recipe
from causalunlearn.studies.model_cache import ModelCache

ROOT = Path(__file__).resolve().parents[1]
CAMU = ROOT / "graphs" / "camu.yaml"
PRESETS = {"digits": "digits-class", "mnist": "mnist-class"}


def camu_weights(graph, k: int) -> list[dict[str, float]]:
    """The first ``k`` of: base, each edge at weight 0, each edge at twice its weight."""
    edges = [e.id for e in graph.interventions]
    pool = [{}] + [{e: 0.0} for e in edges]
    pool += [{e: 2 * graph.intervention(e).weight} for e in edges]
    if not 1 <= k <= len(pool):
        raise SystemExit(f"--k must be between 1 and {len(pool)} for {graph.name}")
    return pool[:k]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(
        (p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


def original_model(dataset: str, data, split, device: torch.device):
    """The original: digits' MLP trained here (5 epochs, < 1 s); MNIST's cached CNN."""
    if dataset == "digits":
        model, _ = train_from_scratch(
            data,
            split,
            "train",
            model="mlp",
            recipe=Recipe(epochs=5),
            seed=0,
            device=device,
            progress=False,
        )
        return model
    model, _ = ModelCache().get(
        data,
        split,
        "original",
        model="cnn",
        recipe=Recipe(),
        seed=0,
        device=device,
        progress=True,
    )
    return model


def run_separate(variants, original, data, split, device: torch.device):
    _sync(device)
    start = time.perf_counter()
    results = [
        unlearn(g, original, data, split, seed=0, progress=False, executor="fast", device=device)
        for g in variants
    ]
    _sync(device)
    total = time.perf_counter() - start
    return results, total, sum(r.seconds["loop"] for r in results)


def run_stacked(variants, original, data, split, device: torch.device):
    _sync(device)
    start = time.perf_counter()
    results = unlearn_stacked(
        variants, original, data, split, seed=0, device=device, progress=False
    )
    _sync(device)
    return results, time.perf_counter() - start, results[0].seconds["loop"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="digits", choices=sorted(PRESETS))
    parser.add_argument("--data-root", default=None, help="default: $CAUSALUNLEARN_DATA_ROOT")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--k", type=int, default=5, help="number of variants (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per side")
    parser.add_argument(
        "--save", action="store_true", help="write JSON to benchmarks/results/ (else print only)"
    )
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    torch.set_num_threads(args.threads)

    data = load_dataset(
        args.dataset, data_root=args.data_root or os.environ.get("CAUSALUNLEARN_DATA_ROOT")
    )
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    original = original_model(args.dataset, data, split, device)
    graph = load_graph(CAMU, preset=PRESETS[args.dataset])
    weights = camu_weights(graph, args.k)
    variants = weight_variants(graph, weights)

    run_separate(variants, original, data, split, device)  # warm-up (untimed)
    run_stacked(variants, original, data, split, device)
    times: dict[str, dict[str, list[float]]] = {
        "separate": {"total": [], "loop": []},
        "stacked": {"total": [], "loop": []},
    }
    for _ in range(args.repeats):
        separate, total, loop = run_separate(variants, original, data, split, device)
        times["separate"]["total"].append(total)
        times["separate"]["loop"].append(loop)
        stacked, total, loop = run_stacked(variants, original, data, split, device)
        times["stacked"]["total"].append(total)
        times["stacked"]["loop"].append(loop)
    diffs = [_max_diff(a.model, b.model) for a, b in zip(stacked, separate, strict=True)]

    best = {side: {k: min(v) for k, v in t.items()} for side, t in times.items()}
    report = {
        "command": "python benchmarks/bench_stacked.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "dataset": args.dataset,
        "preset": PRESETS[args.dataset],
        "device": str(device),
        "k": args.k,
        "variants": [", ".join(f"{e}={w:g}" for e, w in v.items()) or "base" for v in weights],
        "steps_per_run": separate[0].log.steps,
        "repeats": args.repeats,
        "times_s": times,
        "best_s": best,
        "ratios": {
            "stacked_over_separate_total": best["stacked"]["total"] / best["separate"]["total"],
            "stacked_over_separate_loop": best["stacked"]["loop"] / best["separate"]["loop"],
            "stacked_over_one_run_total": best["stacked"]["total"]
            / (best["separate"]["total"] / args.k),
        },
        "max_weight_diff_stacked_vs_separate": max(diffs),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "loadavg": os.getloadavg(),
        },
    }
    print(table(report))
    if args.save:
        out = ROOT / "benchmarks" / "results" / f"stacked-{args.dataset}-{device.type}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.partial")
        tmp.write_text(json.dumps(report, indent=2, default=str))
        os.replace(tmp, out)
        print(f"\nJSON: {out}")
    return report


def table(r: dict) -> str:
    """The report as a Markdown table and ratio lines."""
    k, t, best, rat = r["k"], r["times_s"], r["best_s"], r["ratios"]
    lines = [
        f"CaMU {r['dataset']} class 0 ({r['preset']}), {k} variants: {'; '.join(r['variants'])}",
        f"device {r['device']}, {r['machine']['threads']} thread(s), torch {r['machine']['torch']},"
        f" {r['repeats']} repeats, steps per run {r['steps_per_run']}",
        "",
        "| mode | runs | total s (best) | total s (median) | loop s (best) | total s per variant |",
        "|---|---|---|---|---|---|",
    ]
    for side, runs in (("separate", k), ("stacked", 1)):
        lines.append(
            f"| {side} | {runs} | {best[side]['total']:.3f} |"
            f" {statistics.median(t[side]['total']):.3f} | {best[side]['loop']:.3f} |"
            f" {best[side]['total'] / k:.3f} |"
        )
    lines += [
        "",
        f"- stacked / separate: total {rat['stacked_over_separate_total']:.2f},"
        f" loop {rat['stacked_over_separate_loop']:.2f}",
        f"- stacked run of {k} variants / one separate run:"
        f" {rat['stacked_over_one_run_total']:.2f}",
        f"- largest weight difference, stacked vs separate: "
        f"{r['max_weight_diff_stacked_vs_separate']:.1e}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
