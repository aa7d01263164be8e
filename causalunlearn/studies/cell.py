"""One cell of a study: unlearn with one method on one (dataset, scenario, seed), and score it.

``causalunlearn run`` (every seed of a run), ``compare``/``ablate`` (every cell of a sweep) and
``tune`` (every candidate on the validation task) all go through :func:`run_cell`, and score
the original and the oracle with :func:`score_model`: a number means the same thing whichever
command printed it.

A cell is a pure function of its inputs: the method, the models (the cached original and
oracle), the split, the seed and the :class:`~causalunlearn.studies.settings.StudySettings`.
Every random draw is seeded from the seed, and torch's global generator is seeded with it
before the unlearning and before the scoring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from causalunlearn.data import TensorData
from causalunlearn.data.splits import Split
from causalunlearn.engine.verbs import Unlearned
from causalunlearn.errors import CausalUnlearnError
from causalunlearn.methods.dispatch import Method, unlearn_with
from causalunlearn.metrics.accuracy import predict
from causalunlearn.metrics.catalogue import AVERAGE_GAP, keys
from causalunlearn.metrics.evaluate import scores_from_logits
from causalunlearn.metrics.gaps import activation_distance, average_gap, tow
from causalunlearn.metrics.per_class import per_class_report
from causalunlearn.metrics.probe import random_init_probe, representation_probe
from causalunlearn.metrics.relearn import relearn_time, relearning_curve
from causalunlearn.studies.settings import (
    CURVE_EVAL_ROWS,
    CURVE_EVERY,
    CURVE_STEPS,
    RELEARN_CAP,
    RELEARN_EVAL_ROWS,
    RELEARN_EVERY,
    RELEARN_FRACTION,
    StudySettings,
)


@dataclass
class CellInputs:
    """Everything a cell needs besides the method and the seed.

    Attributes:
        data: The dataset.
        split: The forget / retain split of this seed.
        original: The original model (eval mode), the one every method starts from.
        original_metrics: :func:`score_model` of the original (its forget accuracy sets the
            relearn threshold).
        oracle: The retrain oracle, or ``None`` (then no comparison with it is made).
        oracle_metrics: :func:`score_model` of the oracle, or ``None``.
        oracle_forget_logits: The oracle's outputs on the forget rows (CPU), or ``None``.
        reference_oracles: ``R×F×C`` outputs of oracles ``1..K−1`` on the forget rows
            (``settings.oracles`` = K ≥ 3): the distribution ``oracle_margin_z`` is measured
            against (:mod:`causalunlearn.studies.oracles`), or ``None``.
        reference_logits: ``role → {"train", "test"}`` outputs of the original and the oracle
            on every row, for the attacks that score them against the cell's own shadows
            (``settings.lira_shadows``); may be empty otherwise.
        model_name: The registered model (LiRA's shadows are built from it); ``None``: the
            settings' model or the dataset's default.
        cache: The :class:`~causalunlearn.studies.model_cache.ModelCache` that keeps LiRA's
            trained shadows for every method of the sweep; ``None``: each cell trains its own.
    """

    data: TensorData
    split: Split
    original: nn.Module
    original_metrics: dict[str, float]
    oracle: nn.Module | None = None
    oracle_metrics: dict[str, float] | None = None
    oracle_forget_logits: torch.Tensor | None = None
    reference_oracles: torch.Tensor | None = None
    reference_logits: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    model_name: str | None = None
    cache: Any = None


@dataclass
class CellOutcome:
    """What :func:`run_cell` returns: the unlearning result and every metric of it, the
    unlearned model's outputs (``logits``: ``{"train", "test"}``, CPU, dataset order; saved as
    per-example outputs, :mod:`causalunlearn.studies.outputs`) and the LiRA shadows' statistics
    when the attack ran (``shadows``, a :class:`~causalunlearn.studies.shadows.ShadowStats`)."""

    result: Unlearned
    metrics: dict[str, float]
    extra: dict[str, Any]
    logits: dict[str, torch.Tensor] = field(default_factory=dict)
    shadows: Any = None


def score_model(
    net: nn.Module,
    data: TensorData,
    split: Split,
    seed: int,
    settings: StudySettings,
    *,
    device: torch.device,
    oracle_forget_logits: torch.Tensor | None = None,
    original_forget_acc: float | None = None,
    keep_logits: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Every metric of one model (the catalogue's keys), from one pass over train and test rows.

    With ``oracle_forget_logits`` also the activation distance to the oracle on the forget rows;
    with ``settings.relearn`` the relearn time (threshold: ``RELEARN_FRACTION`` × the original's
    forget accuracy, ``original_forget_acc``, or the model's own when that is ``None``); with
    ``settings.curves`` the CaMU paper's relearning curve (in ``extra``). With ``keep_logits``
    (a dict) the pass's outputs are also left there, under ``"train"`` and ``"test"`` (CPU, rows
    in dataset order), so a caller needs no second forward over rows already predicted (e.g.
    :func:`oracle_forget_logits` for the oracle's activation-distance reference).

    Always: ``extra["per_class"]``, the confusion matrix, per-class accuracy and support of the
    forget, retain and test rows (:func:`~causalunlearn.metrics.per_class.per_class_report`).
    With ``settings.probe`` the representation probe (``probe_acc``, details in
    ``extra["probe"]``; :func:`probe_scores`).

    Returns:
        ``(metrics, extra)``.
    """
    logits_train = predict(net, data.train_x, device=device).cpu()
    logits_test = predict(net, data.test_x, device=device).cpu()
    if keep_logits is not None:
        keep_logits.update(train=logits_train, test=logits_test)
    metrics = scores_from_logits(
        logits_train,
        logits_test,
        data,
        split,
        seed=seed,
        attacker=settings.attacker,
        extended=True,
    )
    extra: dict[str, Any] = {
        "per_class": per_class_report(
            logits_train,
            data.train_y,
            split.forget,
            split.retain,
            logits_test,
            data.test_y,
            data.num_classes,
        )
    }
    if settings.probe:
        metrics["probe_acc"], extra["probe"] = probe_scores(net, data, split, seed, device=device)
    forget = torch.as_tensor(split.forget.copy())
    if oracle_forget_logits is not None:
        metrics["activation_distance"] = activation_distance(
            logits_train[forget], oracle_forget_logits
        )
    if settings.relearn:
        x_f, y_f = data.train_x[forget], data.train_y[forget]
        rows = torch.randperm(len(forget), generator=torch.Generator().manual_seed(seed))
        rows = rows[:RELEARN_EVAL_ROWS]
        threshold = RELEARN_FRACTION * (original_forget_acc or metrics["forget_acc"])
        curve = relearning_curve(
            net,
            x_f,
            y_f,
            {"forget": (x_f[rows], y_f[rows])},
            steps_per_point=RELEARN_EVERY,
            epochs=math.ceil(RELEARN_CAP * 32 / max(1, len(forget))) + 1,
            seed=seed,
            max_steps=RELEARN_CAP,
        )
        metrics["relearn_steps"] = float(
            relearn_time(curve["forget"], threshold, steps=curve["step"], cap=RELEARN_CAP)
        )
        extra["relearn_threshold"] = threshold
    if settings.curves:
        extra["relearning_curve"] = retain_relearning_curve(net, data, split, seed)
    return metrics, extra


def retain_relearning_curve(
    net: nn.Module, data: TensorData, split: Split, seed: int
) -> dict[str, list[Any]]:
    """The CaMU paper's relearning curve: forget and test accuracy while fine-tuning on retain
    rows (at most ``CURVE_STEPS`` steps, a point every ``CURVE_EVERY``)."""
    gen = torch.Generator().manual_seed(seed)
    retain = torch.as_tensor(split.retain.copy())
    forget = torch.as_tensor(split.forget.copy())
    test_rows = torch.randperm(len(data.test_y), generator=gen)[:CURVE_EVAL_ROWS]
    forget_rows = forget[torch.randperm(len(forget), generator=gen)[:CURVE_EVAL_ROWS]]
    return relearning_curve(
        net,
        data.train_x[retain],
        data.train_y[retain],
        {
            "forget": (data.train_x[forget_rows], data.train_y[forget_rows]),
            "test": (data.test_x[test_rows], data.test_y[test_rows]),
        },
        steps_per_point=CURVE_EVERY,
        seed=seed,
        max_steps=CURVE_STEPS,
    )


def probe_scores(
    net: nn.Module | None,
    data: TensorData,
    split: Split,
    seed: int,
    *,
    device: torch.device,
    model_name: str | None = None,
) -> tuple[float, dict[str, Any]]:
    """The representation probe of ``net``
    (:func:`~causalunlearn.metrics.probe.representation_probe`) or, with ``net=None``, of a
    randomly initialised ``model_name`` (the floor,
    :func:`~causalunlearn.metrics.probe.random_init_probe`): its accuracy and its details.

    A split with too few rows for the probe gives NaN and the reason (as the attacks do).
    """
    try:
        if net is None:
            result = random_init_probe(str(model_name), data, split, seed=seed, device=device)
        else:
            result = representation_probe(net, data, split, seed=seed, device=device)
    except CausalUnlearnError as err:
        if err.code != "too-little-data-for-probe":
            raise
        return math.nan, {"error": err.code, "message": err.message}
    return result.accuracy, result.as_dict()


def score_random_init(
    data: TensorData,
    split: Split,
    seed: int,
    settings: StudySettings,
    *,
    device: torch.device,
    model_name: str | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """The metrics of the ``random_init`` role: the probe of a randomly initialised network of
    the run's architecture (``build_model(..., seed=seed)``, the weights the original started
    from), on the rows every other model of the seed is probed on. Empty without
    ``settings.probe``."""
    if not settings.probe:
        return {}, {}
    from causalunlearn.engine.verbs import model_name_for

    name = model_name or model_name_for(data, settings.model)
    accuracy, details = probe_scores(None, data, split, seed, device=device, model_name=name)
    return {"probe_acc": accuracy}, {"probe": details}


def oracle_forget_logits(
    oracle: nn.Module,
    data: TensorData,
    split: Split,
    device,
    kept: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The oracle's outputs on the forget rows (CPU): the reference of the activation distance.

    ``kept`` is the ``keep_logits`` dict of the oracle's :func:`score_model`: when that pass ran
    (its metrics were not cached), the forget rows are taken from its training-row outputs
    instead of being predicted a second time.
    """
    forget_rows = torch.as_tensor(split.forget.copy())
    if kept and "train" in kept:
        return kept["train"][forget_rows]
    return predict(oracle, data.train_x[forget_rows], device=device).cpu()


def run_cell(
    method: Method,
    inputs: CellInputs,
    seed: int,
    settings: StudySettings,
    *,
    device: torch.device,
    progress: bool = False,
    callbacks: Sequence[Any] = (),
) -> CellOutcome:
    """Unlearn with ``method`` from ``inputs.original`` and score the result: the one cell.

    Metrics: every one of :func:`score_model`, ``unlearn_seconds`` (counterfactuals + loop, the
    official unlearning time) and, when the oracle's metrics are given, ``average_gap`` and
    ``tow`` against them. ``callbacks`` see the unlearning loop
    (:mod:`causalunlearn.engine.callbacks`; the caller calls their ``on_end``).

    Raises:
        RunError: ``non-finite-loss`` (a sweep records it as a failed cell), and whatever the
            method's own checks raise.
    """
    torch.manual_seed(seed)
    result = unlearn_with(
        method,
        inputs.original,
        inputs.data,
        inputs.split,
        seed=seed,
        device=device,
        progress=progress,
        executor=settings.executor,
        callbacks=callbacks,
    )
    torch.manual_seed(seed)
    kept: dict[str, torch.Tensor] = {}
    metrics, extra = score_model(
        result.model,
        inputs.data,
        inputs.split,
        seed,
        settings,
        device=device,
        oracle_forget_logits=inputs.oracle_forget_logits,
        original_forget_acc=inputs.original_metrics["forget_acc"],
        keep_logits=kept,
    )
    metrics["unlearn_seconds"] = result.seconds["total"]
    if inputs.oracle_metrics is not None:
        metrics["average_gap"] = average_gap(metrics, inputs.oracle_metrics, keys(AVERAGE_GAP))
        metrics["tow"] = tow(metrics, inputs.oracle_metrics)
    if inputs.reference_oracles is not None:
        z, details = oracle_z_of(kept["train"], inputs, seed)
        metrics.update(z)
        if details:
            extra["oracle_distance"] = details
    shadows = None
    if settings.lira_shadows:
        shadows = cell_lira(method, inputs, seed, settings, kept, metrics, extra, device)
    return CellOutcome(result, metrics, extra, kept, shadows)


def oracle_z_of(
    logits_train: torch.Tensor, inputs: CellInputs, seed: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """``oracle_margin_z`` of a model (its outputs on every training row) against
    ``inputs.reference_oracles`` (:func:`causalunlearn.studies.oracles.oracle_z`)."""
    from causalunlearn.studies.oracles import oracle_z_rows

    return oracle_z_rows(
        logits_train, inputs.reference_oracles, inputs.data, inputs.split, seed=seed
    )


def cell_lira(method, inputs: CellInputs, seed, settings, kept, metrics, extra, device):
    """The U-LiRA attack of a cell (random removal only): shadows that train on random halves
    and unlearn with ``method`` (:mod:`causalunlearn.studies.shadows`); ``lira_auc`` and
    ``lira_tpr_1fpr`` of the unlearned model go into ``metrics``, every scored model's details
    (the original and the oracle from ``inputs.reference_logits``) into ``extra["lira"]``.
    Returns the shadows' statistics, or ``None`` for class removal (not attacked)."""
    from causalunlearn.engine.verbs import model_name_for
    from causalunlearn.studies.shadows import (
        LiraBudget,
        attackable,
        lira_metrics,
        shadow_statistics,
    )

    data, split = inputs.data, inputs.split
    if not attackable(split):
        return None
    stats = shadow_statistics(
        method,
        data,
        split,
        model=inputs.model_name or model_name_for(data, settings.model),
        recipe=settings.recipe,
        budget=LiraBudget(settings.lira_shadows, settings.lira_epochs),
        seed=seed,
        device=device,
        executor=settings.executor,
        cache=inputs.cache,
    )
    scored, details = lira_metrics(stats, kept["train"], kept["test"], data.train_y, data.test_y)
    metrics.update(scored)
    extra["lira"] = {
        "unlearned": details,
        "seconds": stats.seconds,
        "shadows_trained": stats.trained,
    }
    for role, logits in inputs.reference_logits.items():
        extra["lira"][role] = lira_metrics(
            stats, logits["train"], logits["test"], data.train_y, data.test_y
        )[1]
    return stats
