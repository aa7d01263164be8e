"""References: what an intervention edge matches the model against, as a registry.

A reference function ``fn(context, edge) -> Target`` reads the batch of the edge's reference
stream (row-aligned with the edge's data stream when it passes ``aligned_to=edge``) and returns
a detached :class:`Target`: ``ctx.value(model_key, stream, node, aligned_to=edge)`` for a model
node's value (``model_key`` a :class:`~causalunlearn.compile.keys.ModelKey`: ``MODEL``,
``ORIGINAL`` or ``ModelKey.random(seed)``), ``ctx.labels(stream, aligned_to=edge)`` for labels.
Register your own with :func:`register_reference`: one call implements it and adds its name to
the graph format's vocabulary (see ``docs/extending.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch

from causalunlearn.compile.keys import MODEL, ORIGINAL, ModelKey
from causalunlearn.graph import spec as S
from causalunlearn.graph import vocab
from causalunlearn.registry import Implementations

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

#: The reference implementations, keyed by the names in
#: :data:`causalunlearn.graph.vocab.REFERENCES`.
REFERENCES: Implementations[ReferenceFn, vocab.Term] = Implementations(
    "reference",
    vocab.REFERENCES,
    lambda name, fn: vocab.Term(name, vocab.first_line(fn.__doc__)),
    label="reference kind",
    hint="register one with causalunlearn.register_reference",
)


def register_reference(name: str, *, doc: str | None = None, overwrite: bool = False) -> Any:
    """Decorator: register a reference kind under ``name``; graphs may then name it.

    A new name is added to the vocabulary the graph layer validates against
    (:data:`causalunlearn.graph.vocab.REFERENCES`), so this one call is all a new reference kind
    needs (see the module docstring for what the function receives).

    Args:
        name: The name graphs use (``reference: {<name>: stream}``).
        doc: One line on what it means (default: the first line of the function's docstring).
        overwrite: Replace a reference kind registered under ``name``.

    Raises:
        CausalUnlearnError: ``duplicate-reference`` when ``name`` is taken and ``overwrite`` is
            false.
    """
    declaration = vocab.Term(name, doc) if doc is not None else None
    return REFERENCES.register(name, overwrite=overwrite, declaration=declaration)


def get_reference(name: str) -> ReferenceFn:
    """The registered reference kind ``name`` (``unknown-reference`` with a did-you-mean hint)."""
    return REFERENCES.get(name)


@register_reference("original")
def original(ctx: StageContext, edge: S.Intervention) -> Target:
    """The frozen original model f₀ at ``at`` (default: the edge's target) on the reference rows."""
    ref = cast(S.Reference, edge.reference)  # a reference kind is called for an edge's reference
    node = ref.at or edge.target
    return Target(
        "logits", ctx.value(ORIGINAL, cast(str, ref.stream), node, aligned_to=edge).detach()
    )


@register_reference("random_model")
def random_model(ctx: StageContext, edge: S.Intervention) -> Target:
    """A randomly initialised copy of the model (Bad-Teacher's incompetent teacher), frozen."""
    ref = cast(S.Reference, edge.reference)
    node = ref.at or edge.target
    key = ModelKey.random(ref.seed)
    return Target("logits", ctx.value(key, cast(str, ref.stream), node, aligned_to=edge).detach())


@register_reference("labels")
def labels(ctx: StageContext, edge: S.Intervention) -> Target:
    """The labels of the reference stream's rows."""
    stream = cast(str, cast(S.Reference, edge.reference).stream)
    return Target("labels", ctx.labels(stream, aligned_to=edge))


@register_reference("distribution")
def distribution(ctx: StageContext, edge: S.Intervention) -> Target:
    """A fixed distribution over the target's axis (``uniform``: 1/K for each of K entries)."""
    value = ctx.value(MODEL, cast(str, edge.data), edge.target)
    k = value.shape[1]
    return Target("probs", torch.full_like(value, 1.0 / k).detach())
