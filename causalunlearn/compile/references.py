"""References: what an intervention edge matches the model against, as a registry.

A reference function ``fn(context, edge) -> Target`` reads the batch of the edge's reference
stream (row-aligned with the edge's data stream when it passes ``aligned_to=edge``) and returns
a detached :class:`Target`: ``ctx.value(model_key, stream, node, aligned_to=edge)`` for a model
node's value (``model_key`` a :class:`~causalunlearn.compile.keys.ModelKey`: ``MODEL``,
``ORIGINAL`` or ``ModelKey.random(seed)``), ``ctx.labels(stream, aligned_to=edge)`` for labels.
Register your own with :func:`register_reference` (see ``docs/extending.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from causalunlearn.compile.keys import MODEL, ORIGINAL, ModelKey
from causalunlearn.errors import CausalUnlearnError, did_you_mean
from causalunlearn.graph import spec as S

if TYPE_CHECKING:
    from causalunlearn.compile.objective import StageContext


@dataclass
class Target:
    """A reference value.

    Attributes:
        kind: ``labels`` (int64 class ids), ``logits`` (softmaxed by the divergence, with its
            temperature) or ``probs`` (already a distribution).
        value: The tensor (no gradient).
    """

    kind: str
    value: torch.Tensor


ReferenceFn = Callable[["StageContext", S.Intervention], Target]
REFERENCES: dict[str, ReferenceFn] = {}


def register_reference(name: str) -> Callable[[ReferenceFn], ReferenceFn]:
    """Decorator: register a reference kind under ``name`` (and allow it in graph files)."""

    def deco(fn: ReferenceFn) -> ReferenceFn:
        REFERENCES[name] = fn
        if name not in S.REFERENCE_KINDS:
            S.REFERENCE_KINDS = (*S.REFERENCE_KINDS, name)
        return fn

    return deco


def get_reference(name: str) -> ReferenceFn:
    """The registered reference kind ``name``."""
    if name not in REFERENCES:
        raise CausalUnlearnError(
            "unknown-reference", f"no reference kind '{name}'", did_you_mean(name, REFERENCES)
        )
    return REFERENCES[name]


@register_reference("original")
def original(ctx: StageContext, edge: S.Intervention) -> Target:
    """The frozen original model f₀ at ``at`` (default: the edge's target) on the reference rows."""
    node = edge.reference.at or edge.target
    return Target(
        "logits", ctx.value(ORIGINAL, edge.reference.stream, node, aligned_to=edge).detach()
    )


@register_reference("random_model")
def random_model(ctx: StageContext, edge: S.Intervention) -> Target:
    """A randomly initialised copy of the model (Bad-Teacher's incompetent teacher), frozen."""
    node = edge.reference.at or edge.target
    key = ModelKey.random(edge.reference.seed)
    return Target("logits", ctx.value(key, edge.reference.stream, node, aligned_to=edge).detach())


@register_reference("labels")
def labels(ctx: StageContext, edge: S.Intervention) -> Target:
    """The labels of the reference stream's rows."""
    return Target("labels", ctx.labels(edge.reference.stream, aligned_to=edge))


@register_reference("distribution")
def distribution(ctx: StageContext, edge: S.Intervention) -> Target:
    """A fixed distribution over the target's axis (``uniform``: 1/K for each of K entries)."""
    value = ctx.value(MODEL, edge.data, edge.target)
    k = value.shape[1]
    return Target("probs", torch.full_like(value, 1.0 / k).detach())
