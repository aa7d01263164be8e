"""K retrain oracles per split, and the oracle-distribution metrics built on them.

``StudySettings(oracles=K)`` (``--oracles K``) trains K oracles on the same retain set with the
training seeds ``seed, seed + 1, …, seed + K − 1`` (:func:`oracle_seeds`). Oracle 0 is the
run's usual oracle; the model cache keys an oracle by its retain set and training seed
(:class:`~causalunlearn.studies.model_cache.ModelCache`), so oracles are shared wherever those
agree: under class removal every split seed has the same retain set, and the K oracles of seed 0
are oracles of seeds 1, 2, … too. **Cost:** K − 1 more oracle trainings per retain set
(once; then cached), and K − 1 prediction passes over the forget rows per scoring.

Metrics (:mod:`causalunlearn.metrics.oracle_distribution`):

- ``oracle_margin_z`` (per cell, K ≥ 3): median over forget rows of |z| of the model's
  correct-class margin against oracles ``1..K−1``; the oracle's own row is oracle 0 against the
  same references, so a method that matches retraining matches the oracle's value. The 95 %
  bootstrap interval is kept in the cell's ``extra["oracle_distance"]``.
- ``oracle_klom`` (per run, and per method of a sweep table, K ≥ 8 and ≥ 2 seeds sharing their
  forget rows): median over forget rows of KL(oracles ‖ unlearned models) between Gaussian fits
  of the margins, the unlearned models being those of the run's seeds (a sweep: of the method's
  finished cells) and the oracles every distinct oracle of those seeds. A run computes it while
  it runs; a sweep's summary and ``causalunlearn rescore`` from the saved outputs
  (:func:`group_klom`), without any forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from causalunlearn.data import TensorData
from causalunlearn.data.splits import Split
from causalunlearn.metrics.accuracy import predict
from causalunlearn.metrics.oracle_distribution import (
    KLOM_MIN_ORACLES,
    logit_margin,
    oracle_distance,
)
from causalunlearn.recipes import Recipe

if TYPE_CHECKING:
    from causalunlearn.studies.outputs import Outputs

#: The fewest oracles that give ``oracle_margin_z`` (two references besides oracle 0).
MIN_ORACLES_Z = 3


def oracle_seeds(seed: int, count: int) -> list[int]:
    """Training seeds of the ``count`` oracles of split seed ``seed``."""
    return [seed + k for k in range(count)]


def extra_oracles(
    cache,
    data: TensorData,
    split: Split,
    *,
    count: int,
    model: str,
    recipe: Recipe,
    seed: int,
    device: torch.device,
    progress: bool = False,
) -> list[tuple[nn.Module, dict[str, Any]]]:
    """Oracles ``1..count−1`` (trained and cached on a miss), with their cache records."""
    return [
        cache.get(
            data,
            split,
            "oracle",
            model=model,
            recipe=recipe,
            seed=s,
            device=device,
            progress=progress,
        )
        for s in oracle_seeds(seed, count)[1:]
    ]


def forget_logits(nets: list[nn.Module], data: TensorData, split: Split, device) -> torch.Tensor:
    """``len(nets)×F×C``: each model's logits on the forget rows (CPU, forget order)."""
    rows = torch.as_tensor(split.forget.copy())
    x = data.train_x[rows]
    if not nets:
        return torch.empty(0, len(rows), data.num_classes)
    return torch.stack([predict(net, x, device=device).cpu() for net in nets])


def margins_of(logits_stack: Any, y: Any) -> np.ndarray:
    """Margins of a ``K×F×C`` stack of logits on the rows of labels ``y`` (``K×F``)."""
    stack = torch.as_tensor(np.asarray(logits_stack))
    return np.stack([logit_margin(stack[k], y) for k in range(stack.shape[0])])


def oracle_z(
    model_forget_logits: Any, reference_logits: Any, forget_y: Any, *, seed: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """``({"oracle_margin_z": median |z|}, details)`` of one model against the reference oracles
    (``R×F×C``, R ≥ 2); ``({}, {})`` when there are fewer than two references."""
    if np.asarray(reference_logits).shape[0] < MIN_ORACLES_Z - 1:
        return {}, {}
    margins = logit_margin(model_forget_logits, forget_y)
    result = oracle_distance(margins, margins_of(reference_logits, forget_y), seed=seed)
    return {"oracle_margin_z": result.value}, result.as_dict()


def oracle_z_rows(
    logits_train: Any, reference_logits: Any, data: TensorData, split: Split, *, seed: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """:func:`oracle_z` of a model from its outputs on every training row (dataset order)."""
    if reference_logits is None:
        return {}, {}
    forget = torch.as_tensor(split.forget.copy())
    y = data.train_y[forget]
    return oracle_z(torch.as_tensor(logits_train)[forget], reference_logits, y, seed=seed)


def run_klom(
    unlearned_forget_logits: list[Any], oracle_forget_logits: list[Any], forget_y: Any, *, seed: int
) -> dict[str, Any] | None:
    """The run-level KLoM (module docstring) or ``None`` when it does not apply.

    Args:
        unlearned_forget_logits: One ``F×C`` per seed.
        oracle_forget_logits: One ``F×C`` per distinct oracle of those seeds.
        forget_y: The forget rows' labels (shared by the seeds).
    """
    if len(unlearned_forget_logits) < 2 or len(oracle_forget_logits) < KLOM_MIN_ORACLES:
        return None
    models = np.stack([logit_margin(z, forget_y) for z in unlearned_forget_logits])
    oracles = np.stack([logit_margin(z, forget_y) for z in oracle_forget_logits])
    return oracle_distance(models, oracles, seed=seed).as_dict()


def group_klom(
    members: Sequence[tuple[Outputs, Outputs, int]], *, seed: int
) -> dict[str, Any] | None:
    """:func:`run_klom` of several unlearned models from their saved outputs
    (:mod:`causalunlearn.studies.outputs`): no model is loaded, nothing is predicted.

    Args:
        members: Per unlearned model (a run's seed, a sweep's finished cell), in table order:
            the archive holding it (role ``unlearned``), the archive holding its oracles (role
            ``oracle``: oracle 0 on every training row; ``oracles.forget``: oracles 1..K−1 on the
            forget rows; for a run both are the seed's one archive, for a sweep cell its
            reference's), and the training seed of its oracle 0.
        seed: Seed of the bootstrap interval (a run's first seed, a sweep group's first cell's
            training seed).

    Returns:
        :func:`run_klom`'s result, or ``None`` when it does not apply: fewer than two models,
        models whose forget rows differ (random removal under several split seeds), or fewer
        than :data:`KLOM_MIN_ORACLES` distinct oracles.

    The oracles are told apart by training seed: the forget rows being one, so is the retain
    set (its complement), and the model cache keys an oracle by its retain set and training
    seed, so the oracle ``k`` of training seed ``t`` is the oracle 0 of seed ``t + k``. A model
    met twice keeps its first place and its last outputs (as :func:`run_klom`'s callers do).
    """
    if len(members) < 2:
        return None
    forget = members[0][0].split.forget
    for model, refs, _ in members:
        for outs in (model, refs):
            if len(outs.split.forget) != len(forget) or not np.array_equal(
                outs.split.forget, forget
            ):
                return None
    rows = np.asarray(forget, dtype=np.int64)
    distinct: dict[int, np.ndarray] = {}
    for _, refs, train_seed in members:
        if "oracle" in refs.logits:
            distinct[train_seed] = refs.logits["oracle"]["train"][rows]
        for k, logits in enumerate(refs.arrays.get("oracles.forget", ()), start=1):
            distinct[train_seed + k] = logits
    return run_klom(
        [model.logits["unlearned"]["train"][rows] for model, _, _ in members],
        list(distinct.values()),
        members[0][0].train_y[rows],
        seed=seed,
    )
