"""The GPU suite (issue 17): CaMU's GPU paths measured on one machine, in one short command.

Not a test (its ``--smoke`` mode is: ``tests/test_gpu_suite.py``). Three parts run in this
order; the JSON report (and a Markdown summary beside it) is written atomically after each,
and after each configuration, K and seed inside a part (marked ``partial``), so a run stopped by
a time limit still brings back everything that finished:

1. ``camu`` — CaMU, MNIST class-0 removal (``graphs/camu.yaml``, preset ``mnist-class``, seed
   0): the reference executor in eager fp32 against the fast executor in eager fp32, with bf16
   autocast, with ``compile``, with ``cuda_graphs``, and with ``cuda_graphs`` + bf16. Per
   configuration: the unlearning loop's wall time (cold: the first run, compilation included;
   warm: the fastest of ``--repeats``), steps/s, GPU utilisation sampled during the loop
   (``nvidia-smi``), the mean of every logged term and the final metrics. Checks: every
   configuration's term means and accuracies against fast eager fp32 within :data:`TOLERANCES`,
   and the speed-up of the best fast configuration over the reference (target ≥ 10×).
2. ``stacked`` — K = 1, 4, 16 weightings of CaMU's four intervention edges on MNIST
   (:func:`weightings`): K separate fast runs against one ``unlearn_stacked`` run; wall times,
   ratio, and the largest weight difference between each stacked variant and its separate run.
3. ``cifar`` — CaMU on CIFAR-10 (JPEG) class-0 removal with the zoo's CIFAR ResNet-18 and the
   official ``cifar-class`` preset: the original and the retrain oracle trained with the
   authors' recipe (Adam 1e-3, batch 32) for as many epochs as fit in ``--budget-s`` (at most
   20, the official count; the number is recorded), then unlearning and the metrics of the
   three models; further seeds while the budget lasts.

Nothing here needs the network, Graphviz or pgmpy: datasets are read from ``--data-root`` (a
folder carried to the GPU machine, see docs/performance.md, "GPU"), and the MNIST original can
be carried too (``--original``: the CPU benchmarks' 20-epoch original, so both compare the same
weights; without it one is trained here). ``--prepare DIR`` fills such a folder from this
machine's data root and model cache.

Usage::

    python benchmarks/gpu_suite.py --smoke                       # CPU, digits, seconds
    python benchmarks/gpu_suite.py --prepare cache/gpu-carry     # the folder to carry
    python3 benchmarks/gpu_suite.py --data-root cache/gpu-carry/data \\
        --original cache/gpu-carry/mnist-cnn-original.pt --budget-s 240 --deadline-s 540
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runs from a plain checkout (the GPU machine installs nothing)
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from causalunlearn.atomic import atomic_write, write_json  # noqa: E402
from causalunlearn.data import TensorData, load_dataset, make_split  # noqa: E402
from causalunlearn.device import pick_device  # noqa: E402
from causalunlearn.engine.stacked import unlearn_stacked, weight_variants  # noqa: E402
from causalunlearn.engine.verbs import train_from_scratch, unlearn  # noqa: E402
from causalunlearn.errors import CausalUnlearnError  # noqa: E402
from causalunlearn.graph import load_graph  # noqa: E402
from causalunlearn.metrics.evaluate import evaluate  # noqa: E402
from causalunlearn.models.zoo import build_model, load_state  # noqa: E402
from causalunlearn.recipes import Recipe  # noqa: E402

CAMU = ROOT / "graphs" / "camu.yaml"
PARTS = ("camu", "stacked", "cifar")
REPORT_FORMAT = "causalunlearn.gpu-suite/v1"
NVIDIA_SMI = ("nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits")

#: Part 1's configurations: name → keyword arguments of ``unlearn``.
CONFIGS: dict[str, dict[str, Any]] = {
    "reference-eager-fp32": {"executor": "reference"},
    "fast-eager-fp32": {"executor": "fast"},
    "fast-eager-bf16": {"executor": "fast", "amp": "bf16"},
    "fast-compile-fp32": {"executor": "fast", "compile": True},
    "fast-cuda-graphs-fp32": {"executor": "fast", "cuda_graphs": True},
    "fast-cuda-graphs-bf16": {"executor": "fast", "cuda_graphs": True, "amp": "bf16"},
}
#: What every configuration is compared with.
BASELINE = "fast-eager-fp32"
#: Tolerances against fast eager fp32. ``term_rel``: relative difference of each logged term's
#: mean over the run; ``acc_points``: accuracies (retain, forget, test, per class group), in
#: points; ``mia_points``: the membership attack (its attacker is a fitted model: noisier).
#: fp32 configurations differ only in summation order; bf16 keeps 8 bits of mantissa.
TOLERANCES = {
    "fp32": {"term_rel": 0.02, "acc_points": 1.0, "mia_points": 5.0},
    "bf16": {"term_rel": 0.10, "acc_points": 2.0, "mia_points": 5.0},
}
#: The speed-up of the best fast configuration over the reference that issue 17 asks for.
SPEEDUP_TARGET = 10.0


# ------------------------------------------------------------------------------------------------
# Small tools


class UtilisationSampler:
    """Samples GPU utilisation (percent) in a thread while its ``with`` block runs.

    ``command`` prints one integer per GPU per line (``nvidia-smi --query-gpu=utilization.gpu
    --format=csv,noheader,nounits``); the first line's is kept. A missing or failing command is
    recorded in ``error`` and sampling stops; the block itself is never disturbed.

    Args:
        command: The command to run (default :data:`NVIDIA_SMI`).
        every: Seconds between samples.
    """

    def __init__(self, command: Sequence[str] = NVIDIA_SMI, every: float = 0.2) -> None:
        self.command = list(command)
        self.every = every
        self.samples: list[float] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> float | None:
        """One reading, or ``None`` (and ``error`` set) when the command gives none."""
        try:
            done = subprocess.run(
                self.command, capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.SubprocessError) as err:
            self.error = f"{type(err).__name__}: {err}"
            return None
        match = re.search(r"-?\d+(\.\d+)?", done.stdout or "")
        if done.returncode != 0 or match is None:
            self.error = f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[:200]}"
            return None
        return float(match.group(0))

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self.sample()
            if value is None:
                return
            self.samples.append(value)
            self._stop.wait(self.every)

    def __enter__(self) -> UtilisationSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict[str, Any]:
        """``mean`` and ``max`` percent, the number of ``samples``, and ``error`` if any."""
        values = self.samples
        return {
            "mean": sum(values) / len(values) if values else None,
            "max": max(values) if values else None,
            "samples": len(values),
            "error": self.error,
        }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _term_means(losses: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """Each logged term's mean over the run, keyed ``stage/term`` (steps and epochs left out)."""
    means: dict[str, float] = {}
    for stage, rows in losses.items():
        names = {k for row in rows for k in row if k not in ("step", "epoch")}
        for name in sorted(names):
            values = [row[name] for row in rows if name in row]
            means[f"{stage}/{name}"] = sum(values) / len(values) if values else math.nan
    return means


def _max_weight_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(
        (p.detach().float() - q.detach().float()).abs().max().item()
        for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


def compare(
    base: dict[str, Any], other: dict[str, Any], tolerance: dict[str, float]
) -> dict[str, Any]:
    """``other``'s term means and metrics against ``base``'s, with pass/fail per tolerance.

    Returns:
        ``term_rel_max`` (largest relative term-mean difference), ``acc_points_max``,
        ``mia_points_max``, the ``tolerance`` used and ``within`` (all three inside it).
    """
    rel = [
        abs(other["terms"][k] - v) / max(abs(v), 1e-12)
        for k, v in base["terms"].items()
        if k in other["terms"] and math.isfinite(v)
    ]
    acc, mia = [], []
    for key, value in base["metrics"].items():
        theirs = other["metrics"].get(key)
        if not isinstance(value, float) or not isinstance(theirs, float):
            continue
        if not (math.isfinite(value) and math.isfinite(theirs)):
            continue
        (mia if key.startswith("mia") else acc).append(abs(theirs - value))
    result = {
        "term_rel_max": max(rel, default=0.0),
        "acc_points_max": max(acc, default=0.0),
        "mia_points_max": max(mia, default=0.0),
        "tolerance": tolerance,
    }
    result["within"] = (
        result["term_rel_max"] <= tolerance["term_rel"]
        and result["acc_points_max"] <= tolerance["acc_points"]
        and result["mia_points_max"] <= tolerance["mia_points"]
    )
    return result


def weightings(graph: Any, k: int) -> list[dict[str, float]]:
    """``k`` weightings of the graph's intervention edges, in this order: the graph itself;
    each edge at 0 (its ablation), at twice and at half its weight; each stage's edges all at 0;
    every edge at twice, then at half its weight. CaMU (4 edges, 2 stages) has 17."""
    edges = [e.id for e in graph.interventions]
    weight = {e: graph.intervention(e).weight for e in edges}
    pool: list[dict[str, float]] = [{}]
    pool += [{e: 0.0} for e in edges]
    pool += [{e: 2 * weight[e]} for e in edges]
    pool += [{e: 0.5 * weight[e]} for e in edges]
    for stage in graph.schedule.order:
        pool.append({e.id: 0.0 for e in graph.terms_of(stage)})
    pool.append({e: 2 * weight[e] for e in edges})
    pool.append({e: 0.5 * weight[e] for e in edges})
    if not 1 <= k <= len(pool):
        raise ValueError(f"k must be between 1 and {len(pool)} for graph {graph.name!r}")
    return pool[:k]


def epochs_that_fit(
    seconds_left: float, epoch_s: float, *, retain_fraction: float, reserve_s: float, cap: int
) -> int:
    """Training epochs of one original plus its oracle (on ``retain_fraction`` of the rows)
    that fit in ``seconds_left`` after ``reserve_s`` (unlearning and scoring); 0: none fit."""
    per_epoch = epoch_s * (1.0 + retain_fraction)
    if per_epoch <= 0:
        return cap
    return max(0, min(cap, int((seconds_left - reserve_s) // per_epoch)))


def synthetic_cifar(rows: int = 96, size: int = 4, seed: int = 0) -> TensorData:
    """A CIFAR-shaped stand-in for ``--smoke``: 10 classes, 3×size×size inputs, class-dependent
    means (so training learns something), 1/4 as many test rows."""
    g = torch.Generator().manual_seed(seed)

    def part(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 10
        centre = torch.randn(10, 3, 1, 1, generator=torch.Generator().manual_seed(seed + 1))
        x = centre[y] + 0.5 * torch.randn(n, 3, size, size, generator=g)
        return x, y

    train_x, train_y = part(rows)
    test_x, test_y = part(max(20, rows // 4))
    return TensorData(
        "cifar10-synthetic",
        train_x,
        train_y,
        test_x,
        test_y,
        tuple(f"class{i}" for i in range(10)),
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        source="benchmarks/gpu_suite.py --smoke",
    )


# ------------------------------------------------------------------------------------------------
# The parts


class Suite:
    """The state the parts share: arguments, device, datasets and the original."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.smoke = args.smoke
        self.device = torch.device("cpu") if args.smoke else pick_device(args.device)
        self.start = time.perf_counter()
        self._mnist: tuple[TensorData, Any, torch.nn.Module, dict[str, Any]] | None = None
        self.report: dict[str, Any] | None = None
        self.out: Path | None = None

    def keep(self, part: str, record: dict[str, Any]) -> None:
        """Write the report with ``record`` as part ``part`` so far (marked ``partial``): a run
        cut off inside a part still brings back its finished configurations, Ks and seeds."""
        if self.report is None or self.out is None:
            return
        self.report["parts"][part] = {**record, "partial": True}
        _write(self.report, self.out, self.elapsed())

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def seconds_left(self) -> float:
        """Until ``--deadline-s`` (from the start of the suite), or infinity without one."""
        if self.args.deadline_s is None:
            return math.inf
        return self.args.deadline_s - self.elapsed()

    def sampler(self) -> UtilisationSampler:
        command = self.args.utilisation_command or NVIDIA_SMI
        return UtilisationSampler(command.split() if isinstance(command, str) else command)

    def mnist(self) -> tuple[TensorData, Any, torch.nn.Module, dict[str, Any]]:
        """MNIST (digits in smoke mode), its class-0 split, the original and how it was got."""
        if self._mnist is not None:
            return self._mnist
        t = time.perf_counter()
        if self.smoke:
            data = load_dataset("digits", progress=False)
        else:
            data = load_dataset(
                "mnist",
                data_root=self.args.data_root,
                cache_dir=self.args.cache_dir,
                progress=False,
            )
        split = make_split(data.train_y, "class:0", 0, data.num_classes)
        load_s = time.perf_counter() - t
        model = "mlp" if self.smoke else "cnn"
        info: dict[str, Any] = {"dataset": data.name, "model": model, "load_s": load_s}
        t = time.perf_counter()
        if self.args.original and not self.smoke:
            original = build_model(model, data.num_classes, data.input_shape, seed=0)
            load_state(original, self.args.original)
            original = original.to(self.device).eval()
            info["original"] = {"from": str(self.args.original)}
        else:
            recipe = Recipe(epochs=2 if self.smoke else 20)
            original, log = train_from_scratch(
                data,
                split,
                "train",
                model=model,
                recipe=recipe,
                seed=0,
                device=self.device,
                progress=False,
            )
            info["original"] = {"trained": recipe.key(), "loop_s": log.seconds}
        info["original"]["seconds"] = time.perf_counter() - t
        self._mnist = (data, split, original, info)
        return self._mnist

    def preset(self, data: TensorData, scenario: str = "class") -> str:
        return f"{'digits' if self.smoke else 'mnist'}-{scenario}"


def part_camu(suite: Suite) -> dict[str, Any]:
    """Part 1: the executors and run options of CaMU on MNIST class 0 (see the module)."""
    data, split, original, info = suite.mnist()
    graph = load_graph(CAMU, preset=suite.preset(data))
    device = suite.device
    repeats = 1 if suite.smoke else suite.args.repeats
    report: dict[str, Any] = {
        **info,
        "preset": suite.preset(data),
        "forget_rows": len(split.forget),
        "repeats": repeats,
        "configs": {},
    }
    for name, options in CONFIGS.items():
        if suite.args.configs and name not in suite.args.configs:
            continue
        if suite.smoke and options.get("compile"):
            report["configs"][name] = {"skipped": "compiling takes tens of seconds on a CPU"}
            continue
        record: dict[str, Any] = {"options": options, "runs": []}
        try:
            for _ in range(repeats):
                with suite.sampler() as util:
                    _sync(device)
                    t = time.perf_counter()
                    result = unlearn(
                        graph,
                        original,
                        data,
                        split,
                        seed=0,
                        device=device,
                        progress=False,
                        **options,
                    )
                    _sync(device)
                    wall = time.perf_counter() - t
                steps = sum(result.log.steps.values())
                record["runs"].append(
                    {
                        "wall_s": wall,
                        "loop_s": result.seconds["loop"],
                        "materialise_s": result.seconds["materialise"],
                        "steps": steps,
                        "utilisation": util.summary(),
                    }
                )
            loops = [r["loop_s"] for r in record["runs"]]
            record["cold_loop_s"] = loops[0]
            record["warm_loop_s"] = min(loops)
            record["steps_per_s"] = record["runs"][0]["steps"] / record["warm_loop_s"]
            record["utilisation"] = record["runs"][-1]["utilisation"]
            record["terms"] = _term_means(result.log.losses)
            t = time.perf_counter()
            record["metrics"] = evaluate(result.model, data, split, seed=0, device=device)
            record["evaluate_s"] = time.perf_counter() - t
        except CausalUnlearnError as err:
            record = {"options": options, "skipped": f"[{err.code}] {err.message}"}
        except Exception as err:  # noqa: BLE001 - one failing configuration must not end the suite
            record = {
                "options": options,
                "error": f"{type(err).__name__}: {err}"[:2000],
                "traceback": traceback.format_exc()[-4000:],
            }
        report["configs"][name] = record
        suite.keep("camu", report)
        print(f"[camu] {name}: {_brief(record)}", flush=True)
    configs = report["configs"]
    base = configs.get(BASELINE, {})
    if "terms" in base:
        report["checks"] = {
            name: compare(base, rec, TOLERANCES["bf16" if rec["options"].get("amp") else "fp32"])
            for name, rec in configs.items()
            if "terms" in rec and name != BASELINE
        }
    ref = configs.get("reference-eager-fp32", {})
    fast = {
        n: r["warm_loop_s"]
        for n, r in configs.items()
        if n != "reference-eager-fp32" and "warm_loop_s" in r
    }
    if "warm_loop_s" in ref and fast:
        best = min(fast, key=lambda n: fast[n])
        report["speedup"] = {
            "best": best,
            "reference_loop_s": ref["warm_loop_s"],
            "best_loop_s": fast[best],
            "ratio": ref["warm_loop_s"] / fast[best],
            "target": SPEEDUP_TARGET,
            "met": ref["warm_loop_s"] / fast[best] >= SPEEDUP_TARGET,
            "per_config": {n: ref["warm_loop_s"] / s for n, s in fast.items()},
        }
    return report


def part_stacked(suite: Suite) -> dict[str, Any]:
    """Part 2: K weight variants of CaMU, separate runs against one stacked run."""
    data, split, original, info = suite.mnist()
    graph = load_graph(CAMU, preset=suite.preset(data))
    device = suite.device
    report: dict[str, Any] = {"dataset": info["dataset"], "preset": suite.preset(data), "k": {}}
    # One untimed stacked run first: CUDA/cuDNN warm-up and vmap's first trace are not K's cost.
    unlearn_stacked(
        graph, original, data, split, weights=[{}], seed=0, device=device, progress=False
    )
    for k in suite.args.k:
        weights = weightings(graph, k)
        variants = weight_variants(graph, weights)
        _sync(device)
        t = time.perf_counter()
        separate = [
            unlearn(g, original, data, split, seed=0, device=device, progress=False)
            for g in variants
        ]
        _sync(device)
        separate_s = time.perf_counter() - t
        with suite.sampler() as util:
            t = time.perf_counter()
            stacked = unlearn_stacked(
                variants, original, data, split, seed=0, device=device, progress=False
            )
            _sync(device)
            stacked_s = time.perf_counter() - t
        diffs = [_max_weight_diff(a.model, b.model) for a, b in zip(stacked, separate, strict=True)]
        report["k"][str(k)] = {
            "variants": [", ".join(f"{e}={w:g}" for e, w in v.items()) or "base" for v in weights],
            "separate_s": separate_s,
            "separate_loop_s": sum(r.seconds["loop"] for r in separate),
            "stacked_s": stacked_s,
            "stacked_loop_s": stacked[0].seconds["loop"],
            "stacked_over_separate": stacked_s / separate_s,
            "max_weight_diff": max(diffs),
            "stacked_utilisation": util.summary(),
        }
        print(f"[stacked] K={k}: {_brief(report['k'][str(k)])}", flush=True)
        suite.keep("stacked", report)
    return report


def part_cifar(suite: Suite) -> dict[str, Any]:
    """Part 3: CaMU on CIFAR-10 class 0 with ResNet-18, as many epochs and seeds as fit."""
    args, device = suite.args, suite.device
    budget_start = time.perf_counter()
    budget = min(args.budget_s, max(0.0, suite.seconds_left() - args.margin_s))
    t = time.perf_counter()
    if suite.smoke:
        data = synthetic_cifar()
    else:
        data = load_dataset(
            "cifar10", data_root=args.data_root, cache_dir=args.cache_dir, progress=False
        )
    model_name = "resnet18"
    graph = load_graph(CAMU, preset="cifar-class")
    report: dict[str, Any] = {
        "dataset": data.name,
        "model": model_name,
        "preset": "cifar-class",
        "budget_s": budget,
        "load_s": time.perf_counter() - t,
        "seeds": {},
    }
    # Seconds per training step of the recipe (batch 32, Adam), warm, to size the epochs.
    base = Recipe()
    probe_steps, warm_up = (2, 1) if suite.smoke else (args.probe_steps, 5)
    net = build_model(model_name, data.num_classes, data.input_shape, seed=0).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=base.lr, weight_decay=base.weight_decay)
    x = data.train_x[: base.batch_size].to(device)
    y = data.train_y[: base.batch_size].to(device)
    for i in range(probe_steps + warm_up):
        if i == warm_up:
            _sync(device)
            t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    _sync(device)
    step_s = (time.perf_counter() - t) / probe_steps
    steps_per_epoch = math.ceil(data.train_x.shape[0] / base.batch_size)
    report["probe"] = {"step_s": step_s, "epoch_s_estimate": step_s * steps_per_epoch}
    del net, opt
    cap = 1 if suite.smoke else 20
    for seed in range(args.max_seeds):
        left = budget - (time.perf_counter() - budget_start)
        split = make_split(data.train_y, "class:0", seed, data.num_classes)
        retain_fraction = len(split.retain) / data.train_x.shape[0]
        epochs = epochs_that_fit(
            left,
            report["probe"]["epoch_s_estimate"],
            retain_fraction=retain_fraction,
            reserve_s=args.reserve_s,
            cap=cap,
        )
        if epochs < 1 or (seed > 0 and epochs < report["seeds"]["0"]["epochs"]):
            report["stopped"] = (
                f"seed {seed}: {left:.0f} s left, not enough for"
                f" {'one epoch' if epochs < 1 else 'as many epochs as seed 0'}"
            )
            break
        recipe = base.with_epochs(epochs)
        record: dict[str, Any] = {"epochs": epochs, "recipe": recipe.key()}
        models = {}
        for which, on in (("original", "train"), ("oracle", "retain")):
            t = time.perf_counter()
            models[which], log = train_from_scratch(
                data,
                split,
                on,
                model=model_name,
                recipe=recipe,
                seed=seed,
                device=device,
                progress=False,
            )
            _sync(device)
            record[f"{which}_train_s"] = time.perf_counter() - t
        t = time.perf_counter()
        with suite.sampler() as util:
            result = unlearn(
                graph, models["original"], data, split, seed=seed, device=device, progress=False
            )
            _sync(device)
        record["unlearn_s"] = time.perf_counter() - t
        record["unlearn_seconds"] = result.seconds
        record["unlearn_utilisation"] = util.summary()
        t = time.perf_counter()
        record["metrics"] = {
            which: evaluate(m, data, split, seed=seed, device=device)
            for which, m in (
                ("original", models["original"]),
                ("unlearned", result.model),
                ("oracle", models["oracle"]),
            )
        }
        record["evaluate_s"] = time.perf_counter() - t
        report["seeds"][str(seed)] = record
        suite.keep("cifar", report)
        print(f"[cifar] seed {seed}: {_brief(record)}", flush=True)
    report["seconds"] = time.perf_counter() - budget_start
    return report


RUNNERS: dict[str, Callable[[Suite], dict[str, Any]]] = {
    "camu": part_camu,
    "stacked": part_stacked,
    "cifar": part_cifar,
}


def _brief(record: dict[str, Any]) -> str:
    keys = (
        "skipped",
        "error",
        "warm_loop_s",
        "cold_loop_s",
        "separate_s",
        "stacked_s",
        "max_weight_diff",
        "epochs",
        "original_train_s",
        "unlearn_s",
    )
    shown = {k: record[k] for k in keys if k in record}
    return ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()
    )


# ------------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, Any]:
    """Where the suite ran."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "loadavg": os.getloadavg(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    return info


def markdown(report: dict[str, Any]) -> str:
    """The report's figures as Markdown tables (what finished so far)."""
    lines = [
        f"# GPU suite: {report['machine'].get('gpu', report['device'])}",
        "",
        f"`{report['command']}`",
        "",
    ]
    camu = report["parts"].get("camu", {})
    if "configs" in camu:
        lines += [
            f"## CaMU {camu['dataset']} class 0 ({camu['preset']}), {camu['repeats']} repeat(s)",
            "",
            "| configuration | loop s (warm) | loop s (cold) | steps/s | GPU util % (mean/max) |"
            " vs reference | within tolerance |",
            "|---|---|---|---|---|---|---|",
        ]
        speed = camu.get("speedup", {}).get("per_config", {})
        checks = camu.get("checks", {})
        for name, rec in camu["configs"].items():
            if "warm_loop_s" not in rec:
                why = rec.get("skipped") or rec.get("error", "")
                lines.append(f"| {name} | — | — | — | — | — | {why[:80]} |")
                continue
            util = rec["utilisation"]
            u = "—" if util["mean"] is None else f"{util['mean']:.0f}/{util['max']:.0f}"
            ratio = speed.get(name)
            check = checks.get(name)
            lines.append(
                f"| {name} | {rec['warm_loop_s']:.3f} | {rec['cold_loop_s']:.3f} |"
                f" {rec['steps_per_s']:.0f} | {u} | {'—' if ratio is None else f'{ratio:.1f}×'} |"
                f" {'baseline' if check is None else ('yes' if check['within'] else 'NO')} |"
            )
        if "speedup" in camu:
            s = camu["speedup"]
            lines += [
                "",
                f"Best fast configuration: {s['best']}, {s['ratio']:.1f}× the reference"
                f" (target ≥ {s['target']:g}×).",
            ]
    stacked = report["parts"].get("stacked", {})
    if "k" in stacked:
        lines += [
            "",
            f"## Stacked weight variants ({stacked['preset']})",
            "",
            "| K | separate s | stacked s | stacked / separate | max weight diff |",
            "|---|---|---|---|---|",
        ]
        for k, rec in stacked["k"].items():
            lines.append(
                f"| {k} | {rec['separate_s']:.2f} | {rec['stacked_s']:.2f} |"
                f" {rec['stacked_over_separate']:.2f} | {rec['max_weight_diff']:.1e} |"
            )
    cifar = report["parts"].get("cifar", {})
    if "seeds" in cifar:
        lines += [
            "",
            f"## CaMU {cifar['dataset']} class 0, {cifar['model']} ({cifar['preset']})",
            "",
            "| seed | epochs | model | retain | forget | test | MIA |",
            "|---|---|---|---|---|---|---|",
        ]
        for seed, rec in cifar["seeds"].items():
            for which, m in rec["metrics"].items():
                lines.append(
                    f"| {seed} | {rec['epochs']} | {which} | {m.get('retain_acc', math.nan):.2f} |"
                    f" {m.get('forget_acc', math.nan):.2f} | {m.get('test_acc', math.nan):.2f} |"
                    f" {m.get('mia_acc', math.nan):.2f} |"
                )
        if cifar.get("stopped"):
            lines += ["", f"Stopped: {cifar['stopped']}"]
    for part, rec in report["parts"].items():
        if "error" in rec:
            lines += ["", f"Part {part} failed: {rec['error'][:300]}"]
    return "\n".join(lines) + "\n"


def _write(report: dict[str, Any], out: Path, elapsed_s: float) -> None:
    report["machine"]["loadavg_last"] = os.getloadavg()
    report["elapsed_s"] = elapsed_s
    write_json(out, report)
    atomic_write(out.with_suffix(".md"), markdown(report))


def default_out(smoke: bool) -> Path:
    """``$OUT/gpu_suite.json`` where the device tool sets ``OUT``, else benchmarks/results/."""
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / "gpu_suite.json"
    return ROOT / "benchmarks" / "results" / ("gpu-suite-smoke.json" if smoke else "gpu-suite.json")


# ------------------------------------------------------------------------------------------------
# The carry folder


def prepare(folder: Path, data_root: str | None, cache_dir: str | None) -> dict[str, str]:
    """Fill ``folder`` with what the GPU machine needs: MNIST's idx files, the CIFAR-10 JPEG
    archive and the cached 20-epoch MNIST original (if this machine has one).

    Returns:
        What was copied, source → destination.
    """
    from causalunlearn.data import resolve_data_root
    from causalunlearn.studies.model_cache import ModelCache

    root = resolve_data_root(data_root)
    if root is None:
        raise SystemExit("--prepare needs --data-root (or $CAUSALUNLEARN_DATA_ROOT)")
    copied: dict[str, str] = {}
    for sub, pattern in (("mnist", "*-ubyte.gz"), ("cifar10-jpeg", "cifar10-jpeg.tar.gz")):
        for src in sorted((root / sub).glob(pattern)):
            dst = folder / "data" / sub / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            copied[str(src)] = str(dst)
    data = load_dataset("mnist", data_root=root, cache_dir=cache_dir, progress=False)
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    cache = ModelCache(Path(cache_dir) / "models") if cache_dir else ModelCache()
    path = cache.path(data, split, "original", model="cnn", recipe=Recipe(), seed=0)
    if path.is_file():
        dst = folder / "mnist-cnn-original.pt"
        shutil.copyfile(path, dst)
        copied[str(path)] = str(dst)
    return copied


# ------------------------------------------------------------------------------------------------


def _parts(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    aliases = {"1": "camu", "2": "stacked", "3": "cifar"}
    names = [aliases.get(n, n) for n in names]
    bad = [n for n in names if n not in PARTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"parts are {', '.join(PARTS)} (or 1, 2, 3), got {text!r}")
    return [p for p in PARTS if p in names]


def _configs(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    bad = [n for n in names if n not in CONFIGS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"configurations are {', '.join(CONFIGS)}; got {text!r}")
    return names


def _ks(text: str) -> list[int]:
    try:
        values = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--k takes counts such as 1,4,16, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-root",
        default=os.environ.get("CAUSALUNLEARN_DATA_ROOT"),
        help="folder with mnist/ and cifar10-jpeg/ (else $CAUSALUNLEARN_DATA_ROOT)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON report (default: $OUT/gpu_suite.json"
        " when OUT is set, else benchmarks/results/gpu-suite.json)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CPU, digits and tiny synthetic CIFAR-shaped data: seconds",
    )
    parser.add_argument(
        "--parts",
        type=_parts,
        default=list(PARTS),
        help="comma-separated: camu, stacked, cifar (or 1, 2, 3); default all",
    )
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--original", help="state dict of the MNIST CNN original (else trained)")
    parser.add_argument("--cache-dir", help="dataset cache (else $CAUSALUNLEARN_CACHE)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per part-1 configuration")
    parser.add_argument(
        "--configs",
        type=_configs,
        help=f"part 1's configurations, comma-separated (default all: {', '.join(CONFIGS)})",
    )
    parser.add_argument("--k", type=_ks, default=[1, 4, 16], help="part 2's K values")
    parser.add_argument(
        "--budget-s", type=float, default=240.0, help="seconds for part 3 (data loading included)"
    )
    parser.add_argument(
        "--deadline-s",
        type=float,
        help="seconds from the start by which the suite must end: part 3 gets"
        " at most what is left minus --margin-s",
    )
    parser.add_argument("--margin-s", type=float, default=30.0)
    parser.add_argument(
        "--reserve-s",
        type=float,
        default=30.0,
        help="part 3: seconds kept per seed for unlearning and scoring",
    )
    parser.add_argument("--max-seeds", type=int, default=3, help="part 3: at most this many seeds")
    parser.add_argument(
        "--probe-steps", type=int, default=40, help="part 3: timed training steps that size it"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--utilisation-command", help="command printing GPU utilisation (default: nvidia-smi ...)"
    )
    parser.add_argument(
        "--prepare",
        type=Path,
        metavar="DIR",
        help="copy the data and the MNIST original the suite needs into DIR",
    )
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.prepare:
        copied = prepare(args.prepare, args.data_root, args.cache_dir)
        for src, dst in copied.items():
            print(f"{src} -> {dst}")
        return {"prepared": copied}
    if args.smoke:
        args.k = [k for k in args.k if k <= 4] or [1]
        args.max_seeds = min(args.max_seeds, 1)
    if args.threads:
        torch.set_num_threads(args.threads)
    suite = Suite(args)
    out = args.out or default_out(args.smoke)
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "command": "python benchmarks/gpu_suite.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": str(suite.device),
        "smoke": args.smoke,
        "machine": machine(),
        "parts": {},
    }
    suite.report, suite.out = report, out
    for part in args.parts:
        t = time.perf_counter()
        print(f"[suite] part {part} starts at {suite.elapsed():.0f} s", flush=True)
        try:
            record = RUNNERS[part](suite)
        except Exception as err:  # noqa: BLE001 - later parts still run; the error is reported
            record = {
                "error": f"{type(err).__name__}: {err}"[:2000],
                "traceback": traceback.format_exc()[-4000:],
            }
            print(f"[suite] part {part} failed: {record['error']}", flush=True)
        record["part_s"] = time.perf_counter() - t
        report["parts"][part] = record
        _write(report, out, suite.elapsed())
    print(markdown(report), flush=True)
    print(f"JSON: {out}", flush=True)
    return report


if __name__ == "__main__":
    main()
