"""Divergences: how a model value is compared with its reference, as a registry.

A divergence is a function ``fn(value, reference, spec) -> scalar tensor`` where ``value`` is
the model's tensor at the edge's target (``N×D`` representation, ``N×C`` logits, or a list of
parameters), ``reference`` a :class:`~causalunlearn.compile.references.Target` (labels, logits
or probabilities, detached) and ``spec`` the edge's
:class:`~causalunlearn.graph.spec.Divergence` (softmax axis, temperature, reduction, direction).
Register your own with :func:`register_divergence`; one call both implements the divergence and
adds its name to the graph format's vocabulary (:data:`causalunlearn.graph.vocab.DIVERGENCES`),
so a graph may then name it as ``divergence: {kind: <name>}`` (see ``docs/extending.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F

from causalunlearn.compile.references import Target
from causalunlearn.errors import CausalUnlearnError
from causalunlearn.graph import spec as S
from causalunlearn.graph import vocab
from causalunlearn.registry import Implementations

DivergenceFn = Callable[[torch.Tensor, "Target | None", S.Divergence], torch.Tensor]

#: The divergence implementations, keyed by the names in
#: :data:`causalunlearn.graph.vocab.DIVERGENCES`.
DIVERGENCES: Implementations[DivergenceFn, vocab.Term] = Implementations(
    "divergence",
    vocab.DIVERGENCES,
    lambda name, fn: vocab.Term(name, vocab.first_line(fn.__doc__)),
    hint="register one with causalunlearn.register_divergence",
)


def register_divergence(name: str, *, doc: str | None = None, overwrite: bool = False) -> Any:
    """Decorator: register a divergence under ``name``; graphs may then name it.

    A new name is added to the vocabulary the graph layer validates against
    (:data:`causalunlearn.graph.vocab.DIVERGENCES`), so this one call is all a new divergence
    needs. Example::

        @register_divergence("cosine")
        def cosine(value, reference, spec):
            return (1 - F.cosine_similarity(value, reference.value, dim=1)).mean()

    Args:
        name: The name graphs use (``divergence: {kind: <name>}``).
        doc: One line on what it means (default: the first line of the function's docstring).
        overwrite: Replace a divergence registered under ``name``.

    Raises:
        CausalUnlearnError: ``duplicate-divergence`` when ``name`` is taken and ``overwrite`` is
            false.
    """
    declaration = vocab.Term(name, doc) if doc is not None else None
    return DIVERGENCES.register(name, overwrite=overwrite, declaration=declaration)


def get_divergence(name: str) -> DivergenceFn:
    """The registered divergence ``name`` (``unknown-divergence`` with a did-you-mean hint)."""
    return DIVERGENCES.get(name)


def reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-element values: ``sum``; ``mean`` over all elements; ``batchmean`` = sum / N."""
    if reduction == "sum":
        return values.sum()
    if reduction == "batchmean":
        return values.sum() / values.shape[0]
    return values.mean()


def _log_probs(x: torch.Tensor, spec: S.Divergence) -> torch.Tensor:
    return F.log_softmax(x / spec.temperature, dim=1)


def _reference_log_probs(ref: Target, spec: S.Divergence) -> torch.Tensor:
    if ref.kind == "logits":
        return F.log_softmax(ref.value / spec.temperature, dim=1)
    if ref.kind == "probs":
        return ref.value.clamp_min(1e-12).log()
    raise CausalUnlearnError(
        "bad-reference", f"a KL/soft term needs a distribution, got {ref.kind}"
    )


@register_divergence("kl")
def kl(value: torch.Tensor, ref: Target, spec: S.Divergence) -> torch.Tensor:
    """Kullback-Leibler divergence between softmax distributions along axis 1.

    ``reference_to_model``: KL(p_ref ‖ p_model) = Σ p_ref (log p_ref − log p_model), which is
    PyTorch's ``KLDivLoss(log_softmax(model), softmax(reference))`` as in CaMU's official code
    (softmax over the representation's dimensions, ``reduction="sum"``). ``model_to_reference``
    swaps the arguments. Temperature T divides both sides' logits (no T² factor; scale the
    edge's weight if you want Hinton's convention).
    """
    log_q = _log_probs(value, spec)
    log_p = _reference_log_probs(ref, spec)
    if spec.direction == "model_to_reference":
        log_p, log_q = log_q, log_p
    return reduce(F.kl_div(log_q, log_p, reduction="none", log_target=True), spec.reduction)


@register_divergence("cross_entropy")
def cross_entropy(value: torch.Tensor, ref: Target, spec: S.Divergence) -> torch.Tensor:
    """Cross-entropy of the model's softmax(logits / T) against labels or a soft reference.

    Labels: −log p_model[y] per row (PyTorch ``cross_entropy``), reduced over the batch
    (``mean`` is the batch mean, as CaMU's ``CrossEntropyLoss()``). Soft references (an
    original or random model, a fixed distribution): −Σ p_ref log p_model per row.
    """
    logits = value / spec.temperature
    if ref.kind == "labels":
        per_row = F.cross_entropy(logits, ref.value, reduction="none")
    else:
        per_row = -(_reference_log_probs(ref, spec).exp() * F.log_softmax(logits, dim=1)).sum(1)
    return reduce(per_row, spec.reduction)


@register_divergence("mse")
def mse(value: torch.Tensor, ref: Target, spec: S.Divergence) -> torch.Tensor:
    """Squared error between the model value and the reference (after softmax if asked)."""
    if spec.softmax_over not in (None, "none"):
        value = F.softmax(value / spec.temperature, dim=1)
        target = _reference_log_probs(ref, spec).exp()
    else:
        target = (
            ref.value if ref.kind != "labels" else F.one_hot(ref.value, value.shape[1]).to(value)
        )
    return reduce((value - target) ** 2, spec.reduction)


@register_divergence("l1")
def l1(
    value: torch.Tensor | list[torch.Tensor], ref: Target | None, spec: S.Divergence
) -> torch.Tensor:
    """ℓ1 norm Σ|θ| of the target (the model's parameters for a ``parameters`` node).

    ``mean`` divides by the number of elements; ``sum``/``batchmean`` give the plain norm.
    """
    tensors = value if isinstance(value, (list, tuple)) else [value]
    total = cast(torch.Tensor, sum(t.abs().sum() for t in tensors))
    if spec.reduction == "mean":
        total = total / sum(t.numel() for t in tensors)
    return total
