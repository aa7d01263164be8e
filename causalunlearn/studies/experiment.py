"""Run a graph on a dataset and scenario over seeds; write the run folder (manifest, table, models).

A run folder holds ``manifest.json`` (resolved graph and its hash, seeds, split digests,
versions, per-seed metrics of the original / unlearned / retrained models, times, per-step
losses, per-class accuracies and confusion matrices), ``results.md`` (the table, then the
per-class test accuracies), ``confusion.png`` (each model's test confusion matrix, summed over
seeds), ``split-seed<S>.json`` and ``unlearned-seed<S>.pt``.
The folder is built under a temporary name and swapped in at the end, so a failed run never
leaves half a folder and never replaces an earlier finished one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from causalunlearn.atomic import atomic_write, write_json
from causalunlearn.data import load_dataset, make_split
from causalunlearn.data.splits import Split
from causalunlearn.device import pick_device
from causalunlearn.engine.callbacks import notify_end
from causalunlearn.engine.verbs import model_name_for
from causalunlearn.errors import ModelError, RunError
from causalunlearn.methods.dispatch import Method, trains
from causalunlearn.metrics.catalogue import OPTIONAL_RUN_ROWS, RUN_TABLE
from causalunlearn.metrics.gaps import mean_std
from causalunlearn.metrics.per_class import per_class_report
from causalunlearn.models.zoo import build_model, load_state, save_state
from causalunlearn.numerics import applied, current, limit_threads
from causalunlearn.studies.cell import (
    CellInputs,
    oracle_forget_logits,
    oracle_z_of,
    run_cell,
    score_random_init,
)
from causalunlearn.studies.comparison import ROLE_LABELS, per_class_markdown, per_class_stats
from causalunlearn.studies.model_cache import ModelCache
from causalunlearn.studies.oracles import extra_oracles, run_klom
from causalunlearn.studies.oracles import forget_logits as oracles_forget_logits
from causalunlearn.studies.outdir import run_folder
from causalunlearn.studies.outputs import (
    outputs_name,
    reference_outputs,
    save_outputs,
)
from causalunlearn.studies.records import MANIFEST_FORMAT, RunManifest, versions
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.shadows import reference_lira
from causalunlearn.studies.tracking import tracked

_log = logging.getLogger(__name__)
ROLES = ("original", "unlearned", "oracle")
#: The probe's floor (``--probe``): a randomly initialised network of the architecture.
RANDOM_INIT = "random_init"


@dataclass
class RunSettings(StudySettings):
    """Everything a run needs besides the method: the shared study settings
    (:class:`~causalunlearn.studies.settings.StudySettings`: seeds, model, recipe, attacker,
    relearn, curves, data_root, cache_dir, device, threads, numerics, progress, executor) and:

    Attributes:
        dataset: Registered dataset name (``digits``, ``mnist``, ``fashion-mnist``, ...).
        scenario: ``class:0``, ``random:0.1``, ``perclass:...`` or ``indices:FILE``.
        checkpoint: A user's trained original (state_dict) instead of training one.
        oracle: Also train (or load) the retrain oracle.

    A run's seeds default to ``(0,)``.
    """

    seeds: Sequence[int] = (0,)
    dataset: str = "digits"
    scenario: str = "class:0"
    checkpoint: str | None = None
    oracle: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise RunError(
                "missing-checkpoint",
                f"no checkpoint at {self.checkpoint}",
                "pass a state_dict saved with torch.save(model.state_dict(), path)",
            )


def default_run_folder(method_name: str, dataset: str, scenario: str) -> str:
    """Where ``causalunlearn run`` writes when no ``--out`` is given:
    ``runs/<method>-<dataset>-<scenario>`` with ``:``, ``,`` and ``/`` made safe."""
    safe = scenario.replace(":", "-").replace(",", "_").replace("/", "_")
    return f"runs/{method_name}-{dataset}-{safe}"


def summarise(
    per_seed: list[dict[str, Any]], klom: dict[str, Any] | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """Per role and metric: ``{"mean", "std"}`` over seeds (sample std, ddof=1); with ``klom``
    (the run-level ``oracle_klom``, one value for all seeds) also that, std NaN."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for role in (*ROLES, RANDOM_INIT):
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
    if klom is not None:
        out["unlearned"]["oracle_klom"] = {"mean": klom["value"], "std": float("nan")}
    return out


def _run_klom(per_seed: list[dict[str, Any]], data, settings) -> dict[str, Any] | None:
    """``oracle_klom`` of a run (studies/oracles.py): the unlearned models of every seed against
    every distinct oracle, when the seeds share their forget rows and there are K ≥ 8 oracles."""
    import numpy as np

    if len(per_seed) < 2 or any(
        not np.array_equal(p["forget"], per_seed[0]["forget"]) for p in per_seed
    ):
        return None
    oracles = {path: z for p in per_seed for path, z in p["oracles"].items()}
    y = data.train_y[torch.as_tensor(per_seed[0]["forget"].copy())]
    klom = run_klom(
        [p["unlearned"] for p in per_seed], list(oracles.values()), y, seed=settings.seeds[0]
    )
    return None if klom is None else {**klom, "seeds": list(settings.seeds)}


def per_class_summary(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Per role: each class's accuracy over seeds and the test confusion matrices summed
    (:func:`~causalunlearn.studies.comparison.per_class_stats` of the seeds' ``per_class``)."""
    out = {}
    for role in ROLES:
        stats = per_class_stats([p.get("per_class", {}).get(role) for p in per_seed])
        if stats:
            out[role] = stats
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
    floor = RANDOM_INIT in summary  # the probe's floor, in a fourth column
    roles = (*ROLES, RANDOM_INIT) if floor else ROLES
    lines = [
        f"**{name}** on {manifest['dataset']} ({manifest['scenario']}), model {manifest['model']},"
        f" seeds {', '.join(map(str, seeds))} (mean ± sample std, percent)",
        "",
        f"| metric | original | {name} | retrain oracle |" + (" random-init network |" * floor),
        "|---|---|---|---|" + "---|" * floor,
    ]
    optional = [m for m in OPTIONAL_RUN_ROWS if any(m.key in summary.get(r, {}) for r in ROLES)]
    for m in (*RUN_TABLE, *optional):
        cells = [_fmt(summary.get(role, {}).get(m.key)) for role in roles]
        lines.append(f"| {m.label} | {' | '.join(cells)} |")
    lines.append(
        f"| Unlearning time (s) | – | {_fmt(summary['unlearned'].get('unlearn_seconds'))} | – |"
        + " – |" * floor
    )
    per_class = {
        {"unlearned": name}.get(role, role): stats
        for role, stats in (manifest.get("per_class") or {}).items()
    }
    if per_class:
        lines += ["", *per_class_markdown(per_class, "**Per-class test accuracy**")]
    return "\n".join(lines) + "\n"


def run_experiment(
    method: Method,
    settings: RunSettings,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
) -> RunManifest:
    """Run ``method`` for every seed; return the manifest and write the run folder to ``out``.

    ``method`` is a graph or a non-training method entry (SSD): both run through the one cell
    function of every study (:func:`causalunlearn.studies.cell.run_cell`).

    Per seed: split (seeded), original model (cached or ``settings.checkpoint``), the retrain
    oracle (cached), the unlearning, and every metric of the three models. The metrics of a
    cached original or oracle are cached beside it (:meth:`ModelCache.metrics`), so a second
    run of the same settings scores only the unlearned model.

    ``settings.numerics`` and the thread limits (:func:`causalunlearn.numerics.limit_threads`:
    torch and scikit-learn's OpenMP/BLAS pools) are applied first, before any tensor work, and
    recorded in the manifest; the numerics in effect before are restored at the end.

    ``out`` is checked before anything is computed, and replaced only when it is absent, an
    empty folder, or (with ``overwrite``) a run folder of causalunlearn
    (:func:`causalunlearn.studies.outdir.run_folder` has the whole table).

    Raises:
        RunError: ``run-exists`` when ``out`` holds a finished run and ``overwrite`` is False;
            ``out-not-ours``, ``out-is-file``, ``out-is-sweep``, ``busy``, ... (see
            :func:`~causalunlearn.studies.outdir.run_folder`) when ``out`` cannot be used.
    """
    with contextlib.ExitStack() as stack:
        staging = None
        if out is not None:  # every check of the folder happens here, before any computing
            staging = stack.enter_context(run_folder(out, overwrite=overwrite))
        # Before any tensor work: torch's thread pool starts with the first parallel op.
        flush_supported = stack.enter_context(applied(settings.numerics))
        threads = stack.enter_context(limit_threads(settings.threads))
        device = pick_device(settings.device)
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
            _one_seed(method, settings, data, model_name, cache, device, seed, staging)
            for seed in settings.seeds
        ]
        manifest: RunManifest = {
            "format": MANIFEST_FORMAT,
            "status": "finished",
            "graph": {
                "name": method.name,
                "digest": method.digest(),
                "resolved": method.to_dict(),
            },
            "dataset": data.name,
            "scenario": settings.scenario,
            "model": model_name,
            "recipe": asdict(settings.recipe),
            "device": str(device),
            "numerics": {**current().key(), "flush_denormal_supported": flush_supported},
            "threads": threads,
            "seeds": list(settings.seeds),
            "versions": versions(),
            "started": started,
            "seconds": time.time() - started,
            "per_seed": per_seed,
            "settings": settings.key(),
        }
        klom = _run_klom([entry.pop("_klom") for entry in per_seed], data, settings)
        if klom is not None:
            manifest["oracle_distribution"] = klom
        manifest["summary"] = summarise(per_seed, klom)
        manifest["per_class"] = per_class_summary(per_seed)
        if staging is not None:
            write_json(staging / "manifest.json", manifest)
            atomic_write(staging / "results.md", markdown_table(manifest))
            if manifest["per_class"]:
                from causalunlearn.studies.plots import confusion_matrices

                confusion_matrices(
                    {
                        ROLE_LABELS.get(role, method.name): stats["test"]["confusion"]
                        for role, stats in manifest["per_class"].items()
                    },
                    f"Test confusion matrices, {data.name} ({settings.scenario}), summed over"
                    " seeds",
                    staging / "confusion.png",
                )
        return manifest


def _reference_scores(
    net,
    info,
    cache: ModelCache,
    data,
    split: Split,
    seed: int,
    settings,
    device,
    original_forget,
    kept: dict[str, torch.Tensor] | None = None,
) -> dict[str, float]:
    """:func:`~causalunlearn.studies.references.reference_scores` of an original or oracle (the
    sweeps' function and cache key): cached beside it when it comes from the model cache
    (``info``, which records whether they were read; a brought checkpoint, ``info=None``, is
    scored every time). When it is scored, its outputs are left in ``kept``."""
    from causalunlearn.studies.references import reference_scores

    scores, _, cached = reference_scores(
        net,
        None if info is None else info["path"],
        cache,
        data,
        split,
        seed,
        settings,
        device=device,
        original_forget=original_forget,
        kept=kept,
    )
    if info is not None:
        info["metrics_cached"] = cached
    return scores


#: A brought checkpoint this many points below the built-in original on the training rows was
#: most likely trained on other preprocessing or another split (docs/concepts.md, "Built-in
#: datasets"): its forget IDs then point at other rows.
CHECKPOINT_GAP_POINTS = 5.0
#: The built-in original is trained for the comparison when it is not cached and the training
#: set is at most this large (seconds on CPU); above it the check needs it cached.
CHECKPOINT_TRAIN_ROWS = 10_000


def _check_brought_checkpoint(model, data, split, settings, cache, model_name, seed, device):
    """Warn loudly when a brought checkpoint does much worse on the training rows than the
    toolkit's own original of the same dataset, model, recipe and seed."""
    import warnings

    from causalunlearn.errors import CausalUnlearnWarning
    from causalunlearn.metrics.accuracy import accuracy, predict

    path = cache.path(data, split, "original", model=model_name, recipe=settings.recipe, seed=seed)
    if not path.is_file() and len(data.train_y) > CHECKPOINT_TRAIN_ROWS:
        _log.info(
            "not compared with the built-in original (not cached: run once without --checkpoint"
            " to cache it); check that your checkpoint saw this toolkit's preprocessing and split"
            " (docs/concepts.md, 'Built-in datasets')"
        )
        return
    builtin, _ = cache.get(
        data,
        split,
        "original",
        model=model_name,
        recipe=settings.recipe,
        seed=seed,
        device=device,
        progress=settings.progress,
    )
    mine = accuracy(predict(model, data.train_x, device=device).cpu(), data.train_y)
    theirs = accuracy(predict(builtin, data.train_x, device=device).cpu(), data.train_y)
    if mine < theirs - CHECKPOINT_GAP_POINTS:
        message = (
            f"the checkpoint {settings.checkpoint} reaches {mine:.1f} % on the training rows of"
            f" {data.name}, {theirs - mine:.1f} points below the built-in original"
            f" ({theirs:.1f} %): it was probably trained on other preprocessing or another"
            " train/test split, so the forget IDs point at other rows and every number of this"
            " run is about a model that never saw them as training data; train it on the rows"
            " and preprocessing of docs/concepts.md ('Built-in datasets', load_dataset(...)"
            ".train_index gives the original row of each training row)"
        )
        _log.warning(message)
        warnings.warn(message, CausalUnlearnWarning, stacklevel=2)


def _one_seed(method, settings, data, model_name, cache, device, seed, staging) -> dict[str, Any]:
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

    if settings.checkpoint:
        original = build_model(model_name, data.num_classes, data.input_shape, seed=seed)
        load_state(original, settings.checkpoint)
        bad = [n for n, t in original.state_dict().items() if not torch.isfinite(t).all()]
        if bad:
            raise ModelError(
                "non-finite-checkpoint",
                f"the checkpoint {settings.checkpoint} holds NaN or infinite values in"
                f" {', '.join(bad[:3])}" + (f" and {len(bad) - 3} more" if len(bad) > 3 else ""),
                "the model you brought is broken, not the unlearning: export the trained model"
                " again (its training diverged, or the file was written during a failed step)",
            )
        original, info_o = (
            original.to(device).eval(),
            {"cached": True, "seconds": 0.0, "path": settings.checkpoint},
        )
        _check_brought_checkpoint(original, data, split, settings, cache, model_name, seed, device)
    else:
        original, info_o = cached("original")
    # The same scoring and the same cell as a sweep's: the original first (its forget accuracy is
    # the relearn threshold), then the oracle, then the unlearning (run_cell).
    metrics: dict[str, dict[str, float]] = {}
    brought = bool(settings.checkpoint)
    kept_o: dict[str, torch.Tensor] = {}
    metrics["original"] = _reference_scores(
        original,
        None if brought else info_o,
        cache,
        data,
        split,
        seed,
        settings,
        device,
        None,
        kept_o,
    )
    # Per-example outputs (studies/outputs.py): the scoring pass's logits, else those stored
    # beside the cached model, else one pass (each stored beside the cached model for next time).
    logits = {
        "original": reference_outputs(
            original,
            data,
            device,
            kept_o,
            cache=cache,
            model_path=None if brought else info_o["path"],
        )
    }
    info_r, oracle, oracle_metrics, forget_logits = None, None, None, None
    if settings.oracle:
        oracle, info_r = cached("oracle")
        kept: dict[str, torch.Tensor] = {}
        oracle_metrics = _reference_scores(
            oracle,
            info_r,
            cache,
            data,
            split,
            seed,
            settings,
            device,
            metrics["original"]["forget_acc"],
            kept,
        )
        forget_logits = oracle_forget_logits(oracle, data, split, device, kept)
        logits["oracle"] = reference_outputs(
            oracle, data, device, kept, cache=cache, model_path=info_r["path"]
        )
    inputs = CellInputs(
        data, split, original, metrics["original"], oracle, oracle_metrics, forget_logits
    )
    inputs.model_name = model_name
    inputs.cache = cache  # LiRA's trained shadows, shared with every other run and sweep
    extra_models = []
    if oracle is not None and settings.oracles > 1:  # oracles 1..K-1 (studies/oracles.py)
        extra_models = extra_oracles(
            cache,
            data,
            split,
            count=settings.oracles,
            model=model_name,
            recipe=settings.recipe,
            seed=seed,
            device=device,
            progress=settings.progress,
        )
        inputs.reference_oracles = oracles_forget_logits(
            [m for m, _ in extra_models], data, split, device
        )
        for role, scores in (("original", metrics["original"]), ("oracle", oracle_metrics)):
            scores.update(oracle_z_of(logits[role]["train"], inputs, seed)[0])
    if settings.lira_shadows:
        inputs.reference_logits = dict(logits)
    with tracked(settings.log_dir, method, method.name, data.name, settings.scenario, seed) as cbs:
        outcome = run_cell(
            method, inputs, seed, settings, device=device, progress=settings.progress, callbacks=cbs
        )
        metrics["unlearned"] = outcome.metrics
        if oracle_metrics is not None:
            metrics["oracle"] = oracle_metrics
        if settings.probe:  # the probe's floor (studies/cell.py)
            metrics[RANDOM_INIT] = score_random_init(
                data, split, seed, settings, device=device, model_name=model_name
            )[0]
        for role, details in outcome.extra.get("lira", {}).items():
            if role in metrics and role != "unlearned":  # the references, on this cell's shadows
                metrics[role] = {**metrics[role], **reference_lira(details)}
        notify_end(cbs, metrics)
    result = outcome.result
    logits["unlearned"] = outcome.logits
    arrays = {} if outcome.shadows is None else outcome.shadows.arrays()
    if inputs.reference_oracles is not None:
        arrays["oracles.forget"] = inputs.reference_oracles
    outputs = None
    if staging is not None:
        split.save(staging / f"split-seed{seed}.json")
        save_state(result.model, staging / f"unlearned-seed{seed}.pt")
        outputs = save_outputs(
            staging / outputs_name(seed), logits, data=data, split=split, arrays=arrays
        )
    forget = torch.as_tensor(split.forget.copy())
    klom_inputs = {  # for the run-level KLoM (run_experiment pops it before writing)
        "forget": split.forget,
        "unlearned": outcome.logits["train"][forget],
        "oracles": {
            info["path"]: m
            for info, m in zip(
                [info_r, *(i for _, i in extra_models)],
                [logits["oracle"]["train"][forget]]
                + ([] if inputs.reference_oracles is None else list(inputs.reference_oracles)),
                strict=False,
            )
            if info is not None
        }
        if oracle is not None
        else {},
    }
    return {
        "outputs": outputs,
        # the per-example metrics' details: bootstrap interval, attack sizes (studies/oracles.py,
        # studies/shadows.py)
        "evaluation": {k: v for k, v in outcome.extra.items() if k in ("oracle_distance", "lira")},
        "_klom": klom_inputs,
        "seed": seed,
        "split": {
            "digest": split.digest(),
            "file": f"split-seed{seed}.json",
            "forget": len(split.forget),
            "retain": len(split.retain),
            "retain_sample": len(split.retain_sample),
        },
        "metrics": metrics,
        "per_class": {  # from the outputs every model was scored on (no second pass)
            role: per_class_report(
                outs["train"],
                data.train_y,
                split.forget,
                split.retain,
                outs["test"],
                data.test_y,
                data.num_classes,
            )
            for role, outs in logits.items()
        },
        "seconds": {
            "materialise": result.seconds["materialise"],
            "loop": result.seconds["loop"],
            "unlearn_total": result.seconds["materialise"] + result.seconds["loop"],
        },
        "executor": settings.executor if trains(method) else None,
        "models": {"original": info_o, "oracle": info_r},
        "steps": result.log.steps,
        "losses": result.log.losses,
        "info": getattr(result, "info", {}),
    }
