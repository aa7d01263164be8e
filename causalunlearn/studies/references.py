"""The scores of an original or oracle, cached beside the model (a run's and a sweep's alike).

An original's or oracle's metrics depend only on the model, the split, the seed, the study
settings that change scoring, and the numerics; :meth:`ModelCache.metrics
<causalunlearn.studies.model_cache.ModelCache.metrics>` keeps them beside the model under the
key :func:`reference_key` makes. ``causalunlearn run`` and the sweeps (``compare``, ``ablate``,
``tune``) use the same key, so a model scored by one is not scored again by the other.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from causalunlearn.data import TensorData
from causalunlearn.data.splits import Split
from causalunlearn.numerics import current
from causalunlearn.studies.cell import score_model
from causalunlearn.studies.model_cache import ModelCache
from causalunlearn.studies.settings import StudySettings


def reference_key(
    split: Split, seed: int, settings: StudySettings, original_forget: float | None
) -> dict[str, Any]:
    """What an original's or oracle's scores depend on besides the model itself.

    ``original_forget`` (the original's forget accuracy) is part of it only with
    ``settings.relearn``: the oracle's relearn threshold is a fraction of it.
    """
    return {
        "split": split.digest(),
        "seed": seed,
        "settings": settings.key(),
        "original_forget_acc": original_forget if settings.relearn else None,
        "numerics": current().key(),
    }


def reference_scores(
    net: nn.Module,
    model_path: str | None,
    cache: ModelCache,
    data: TensorData,
    split: Split,
    seed: int,
    settings: StudySettings,
    *,
    device: torch.device,
    original_forget: float | None,
    kept: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, float], dict[str, Any], bool]:
    """:func:`~causalunlearn.studies.cell.score_model` of an original or oracle, read from the
    model cache's metrics when ``model_path`` (the cached model's file) has them.

    A model from elsewhere (``model_path=None``: a brought checkpoint) is scored every time.
    When it is scored, its outputs are left in ``kept`` (``score_model``'s ``keep_logits``).

    Returns:
        ``(metrics, extra, cached)``; ``cached`` says the scores were read, not computed.
    """

    def compute() -> tuple[dict[str, float], dict[str, Any]]:
        return score_model(
            net,
            data,
            split,
            seed,
            settings,
            device=device,
            original_forget_acc=original_forget,
            keep_logits=kept,
        )

    if model_path is None:
        metrics, extra = compute()
        return metrics, extra, False
    key = reference_key(split, seed, settings, original_forget)
    return cache.metrics(model_path, key, compute)
