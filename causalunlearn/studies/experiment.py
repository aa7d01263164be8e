"""Run a graph on a dataset and scenario over seeds; write the run folder (manifest, table, models).

A run folder holds ``manifest.json`` (resolved graph and its hash, seeds, split digests,
versions, per-seed metrics of the original / unlearned / retrained models, times, per-step
losses), ``results.md`` (the table), ``split-seed<S>.json`` and ``unlearned-seed<S>.pt``.
The folder is built under a temporary name and swapped in at the end, so a failed run never
leaves half a folder and never replaces an earlier finished one.
"""

from __future__ import annotations

import contextlib
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from causalunlearn.atomic import atomic_write, write_json
from causalunlearn.data import load_dataset, make_split
from causalunlearn.data.splits import Split
from causalunlearn.device import pick_device
from causalunlearn.engine.verbs import model_name_for, unlearn
from causalunlearn.errors import RunError
from causalunlearn.graph import spec as S
from causalunlearn.metrics.accuracy import predict
from causalunlearn.metrics.catalogue import AVERAGE_GAP, RUN_TABLE, keys
from causalunlearn.metrics.evaluate import evaluate
from causalunlearn.metrics.gaps import activation_distance, average_gap, mean_std, tow
from causalunlearn.models.zoo import build_model, load_state, save_state
from causalunlearn.recipes import Recipe
from causalunlearn.studies.model_cache import ModelCache
from causalunlearn.studies.outdir import run_folder

MANIFEST_FORMAT = "causalunlearn.run/v1"
ROLES = ("original", "unlearned", "oracle")


@dataclass
class RunSettings:
    """Everything a run needs besides the graph.

    Attributes:
        dataset: Registered dataset name (``digits``, ``mnist``, ``fashion-mnist``, ...).
        scenario: ``class:0``, ``random:0.1``, ``perclass:...`` or ``indices:FILE``.
        seeds: Seeds; each seeds the original model, the split, the unlearning and the oracle.
        model: Registered model name (default per dataset).
        recipe: Training recipe of the original and the oracle.
        data_root: Data root (else ``CAUSALUNLEARN_DATA_ROOT``).
        cache_dir: Cache of datasets and models (else ``CAUSALUNLEARN_CACHE``).
        device: ``cpu``, ``cuda`` or ``None`` (CUDA when present).
        attacker: Membership-inference attacker (``gbdt`` or ``xgboost``).
        checkpoint: A user's trained original (state_dict) instead of training one.
        oracle: Also train (or load) the retrain oracle.
        progress: Show progress bars.
        threads: CPU threads for torch (``None``: torch's default). Small models at batch 32
            gain nothing from intra-op threads, and on a busy machine an oversubscribed pool
            is many times slower (docs/troubleshooting.md), so the demo uses 1.
        executor: ``fast`` (default) or ``reference`` (the faithful oracle: one forward per
            term, a read per step); both give the same losses within 1e-5 (docs/performance.md).
    """

    dataset: str = "digits"
    scenario: str = "class:0"
    seeds: Sequence[int] = (0,)
    model: str | None = None
    recipe: Recipe = field(default_factory=Recipe)
    data_root: str | None = None
    cache_dir: str | None = None
    device: str | None = None
    attacker: str = "gbdt"
    checkpoint: str | None = None
    oracle: bool = True
    progress: bool = True
    threads: int | None = None
    executor: str = "fast"


def versions() -> dict[str, str]:
    """Versions of the software a run used."""
    import numpy
    import sklearn

    import causalunlearn

    return {
        "causalunlearn": causalunlearn.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per role and metric: ``{"mean", "std"}`` over seeds (sample std, ddof=1)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for role in ROLES:
        rows = [r["metrics"][role] for r in per_seed if role in r["metrics"]]
        if not rows:
            continue
        out[role] = {}
        for key in rows[0]:
            m, s = mean_std([row[key] for row in rows])
            out[role][key] = {"mean": m, "std": s}
    times = [r["seconds"]["unlearn_total"] for r in per_seed]
    m, s = mean_std(times)
    out.setdefault("unlearned", {})["unlearn_seconds"] = {"mean": m, "std": s}
    return out


def _fmt(stat: dict[str, float] | None, digits: int = 2) -> str:
    if stat is None or math.isnan(stat["mean"]):
        return "–"
    if math.isnan(stat["std"]):
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown_table(manifest: dict[str, Any]) -> str:
    """The run's results as a Markdown table (original / unlearned / retrain oracle)."""
    summary = manifest["summary"]
    name = manifest["graph"]["name"]
    seeds = manifest["seeds"]
    lines = [
        f"**{name}** on {manifest['dataset']} ({manifest['scenario']}), model {manifest['model']},"
        f" seeds {', '.join(map(str, seeds))} (mean ± sample std, percent)",
        "",
        f"| metric | original | {name} | retrain oracle |",
        "|---|---|---|---|",
    ]
    for m in RUN_TABLE:
        cells = [_fmt(summary.get(role, {}).get(m.key)) for role in ROLES]
        lines.append(f"| {m.label} | {' | '.join(cells)} |")
    lines.append(
        f"| Unlearning time (s) | – | {_fmt(summary['unlearned'].get('unlearn_seconds'))} | – |"
    )
    return "\n".join(lines) + "\n"


def run_experiment(
    graph: S.Graph | Any,
    settings: RunSettings,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run ``graph`` for every seed; return the manifest and write the run folder to ``out``.

    ``graph`` may also be a non-training method entry (``causalunlearn.methods.MethodEntry``,
    e.g. SSD): it is run and evaluated the same way.

    Per seed: split (seeded), original model (cached or ``settings.checkpoint``), unlearning,
    retrain oracle (cached), and the official metrics of all three.

    ``out`` is checked before anything is computed, and replaced only when it is absent, an
    empty folder, or (with ``overwrite``) a run folder of causalunlearn
    (:func:`causalunlearn.studies.outdir.run_folder` has the whole table).

    Raises:
        RunError: ``run-exists`` when ``out`` holds a finished run and ``overwrite`` is False;
            ``out-not-ours``, ``out-is-file``, ``out-is-sweep``, ``busy``, ... (see
            :func:`~causalunlearn.studies.outdir.run_folder`) when ``out`` cannot be used.
    """
    if not settings.seeds:
        raise RunError("no-seeds", "no seeds given", "e.g. --seeds 0,1,2")
    with contextlib.ExitStack() as stack:
        staging = None
        if out is not None:  # every check of the folder happens here, before any computing
            staging = stack.enter_context(run_folder(out, overwrite=overwrite))
        device = pick_device(settings.device)
        if settings.threads:
            torch.set_num_threads(settings.threads)
        data = load_dataset(
            settings.dataset,
            settings.data_root,
            cache_dir=settings.cache_dir,
            progress=settings.progress,
        )
        model_name = model_name_for(data, settings.model)
        cache = (
            ModelCache(Path(settings.cache_dir) / "models") if settings.cache_dir else ModelCache()
        )
        started = time.time()
        per_seed = [
            _one_seed(graph, settings, data, model_name, cache, device, seed, staging)
            for seed in settings.seeds
        ]
        manifest = {
            "format": MANIFEST_FORMAT,
            "status": "finished",
            "graph": {"name": graph.name, "digest": graph.digest(), "resolved": graph.to_dict()},
            "dataset": data.name,
            "scenario": settings.scenario,
            "model": model_name,
            "recipe": asdict(settings.recipe),
            "device": str(device),
            "seeds": list(settings.seeds),
            "versions": versions(),
            "started": started,
            "seconds": time.time() - started,
            "per_seed": per_seed,
        }
        manifest["summary"] = summarise(per_seed)
        if staging is not None:
            write_json(staging / "manifest.json", manifest)
            atomic_write(staging / "results.md", markdown_table(manifest))
        return manifest


def _one_seed(graph, settings, data, model_name, cache, device, seed, staging) -> dict[str, Any]:
    split: Split = make_split(data.train_y, settings.scenario, seed, data.num_classes)

    def cached(which: str):
        return cache.get(
            data,
            split,
            which,
            model=model_name,
            recipe=settings.recipe,
            seed=seed,
            device=device,
            progress=settings.progress,
        )

    def score(model) -> dict[str, float]:
        return evaluate(
            model, data, split, seed=seed, attacker=settings.attacker, device=device, extended=True
        )

    if settings.checkpoint:
        original = build_model(model_name, data.num_classes, data.input_shape, seed=seed)
        load_state(original, settings.checkpoint)
        original, info_o = (
            original.to(device).eval(),
            {"cached": True, "seconds": 0.0, "path": settings.checkpoint},
        )
    else:
        original, info_o = cached("original")
    if isinstance(graph, S.Graph):
        result = unlearn(
            graph,
            original,
            data,
            split,
            seed=seed,
            device=device,
            progress=settings.progress,
            executor=settings.executor,
        )
    else:  # a non-training method entry (causalunlearn.methods), e.g. SSD
        result = graph.run(
            original, data, split, seed=seed, device=device, progress=settings.progress
        )
    metrics = {"original": score(original), "unlearned": score(result.model)}
    info_r = None
    if settings.oracle:
        oracle, info_r = cached("oracle")
        metrics["oracle"] = score(oracle)
        forget = torch.as_tensor(split.forget.copy())
        x_forget = data.train_x[forget]
        metrics["unlearned"]["activation_distance"] = activation_distance(
            predict(result.model, x_forget, device=device), predict(oracle, x_forget, device=device)
        )
        metrics["unlearned"]["average_gap"] = average_gap(
            metrics["unlearned"], metrics["oracle"], keys(AVERAGE_GAP)
        )
        metrics["unlearned"]["tow"] = tow(metrics["unlearned"], metrics["oracle"])
    if staging is not None:
        split.save(staging / f"split-seed{seed}.json")
        save_state(result.model, staging / f"unlearned-seed{seed}.pt")
    return {
        "seed": seed,
        "split": {
            "digest": split.digest(),
            "file": f"split-seed{seed}.json",
            "forget": len(split.forget),
            "retain": len(split.retain),
            "retain_sample": len(split.retain_sample),
        },
        "metrics": metrics,
        "seconds": {
            "materialise": result.seconds["materialise"],
            "loop": result.seconds["loop"],
            "unlearn_total": result.seconds["materialise"] + result.seconds["loop"],
        },
        "executor": settings.executor,
        "models": {"original": info_o, "oracle": info_r},
        "steps": result.log.steps,
        "losses": result.log.losses,
        "info": getattr(result, "info", {}),
    }
