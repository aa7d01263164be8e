"""Stacked weight variants: K variants of one graph trained at once with ``torch.func.vmap``.

An ablation study of a graph (CaMU and CaMU without each of its terms) is K runs that share
everything but the intervention-edge weights: the same original model, split, seed, data
streams, shuffles and schedule. :func:`unlearn_stacked` runs them as *one* run:

- the trained model's parameters are stacked, K copies along a new leading axis;
- every forward of the trained model is one ``vmap`` over the K copies of a
  ``torch.func.functional_call`` of the model (the representation hooks fire inside it);
- each stage's terms are computed per variant inside a ``vmap`` over the K outputs, and the
  variant's loss is ``Σ_j w_kj · term_kj`` with its own (signed) weights ``w_k``; the K losses
  are summed and one backward pass gives every copy its own gradient (the copies share no
  parameter, so the sum's gradient on copy k is the gradient of variant k's loss);
- each stage's optimiser is built on the stacked tensors. Adam, AdamW and SGD (with weight
  decay and momentum) are elementwise: their state and update of an entry read only that
  entry's parameter, gradient and state, and every variant takes the same steps, so one
  optimiser on stacked tensors is K independent optimisers (``tests/engine/test_stacked.py`` checks
  this for each optimiser);
- the frozen original's outputs and the materialised streams are computed once and shared.

The schedule loop, the fast executor (:class:`~causalunlearn.engine.step.Runner`: batching, the
execution plan, precomputed frozen outputs, the deferred non-finite check and the log rows),
:func:`~causalunlearn.compile.materialise.materialise` and the optimiser construction of
:class:`~causalunlearn.compile.objective.Objective` are reused as they are: a
:class:`StackedObjective` is an ``Objective`` whose trained-model forwards, stage losses and
stage parameters are the stacked ones, run by :func:`~causalunlearn.engine.loop.run_schedule`.

Each variant's final weights and logged term values equal a separate
``unlearn(variant_graph, ..., executor="fast")`` run to float rounding (batched instead of
plain matrix products; ``tests/engine/test_stacked.py`` checks 1e-5).
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from causalunlearn.compile.divergences import get_divergence
from causalunlearn.compile.keys import MODEL, ModelKey, StreamKey
from causalunlearn.compile.materialise import materialise
from causalunlearn.compile.objective import Batch, Forwards, Objective, StageContext
from causalunlearn.compile.references import get_reference
from causalunlearn.data import TensorData
from causalunlearn.data.splits import Split
from causalunlearn.device import pick_device
from causalunlearn.engine.loop import TrainLog, run_schedule
from causalunlearn.engine.plan import FastContext, batch_dependent_layers
from causalunlearn.engine.verbs import Unlearned
from causalunlearn.errors import RunError
from causalunlearn.graph import spec as S
from causalunlearn.graph.edit import graph_diff, set_weight

__all__ = ["StackedObjective", "unlearn_stacked", "weight_variants"]

_WEIGHT_PATH = re.compile(r"^interventions\.([^.]+)\.weight$")


def weight_variants(graph: S.Graph, weights: Sequence[Mapping[str, float]]) -> list[S.Graph]:
    """One graph per ``{edge id: weight}`` map: ``graph`` with those edges' weights set.

    An empty map is ``graph`` itself. Each graph is made with
    :func:`~causalunlearn.graph.edit.set_weight`, so it is validated and an unknown edge id
    stops with a ``GraphError`` (``unknown-id``, with a did-you-mean hint).
    """
    out = []
    for overrides in weights:
        variant = graph
        for edge_id, weight in overrides.items():
            variant = set_weight(variant, edge_id, weight)
        out.append(variant)
    return out


def _check_variants(variants: Sequence[Any]) -> list[str]:
    """Refuse what cannot be stacked; return a short label per variant (for messages)."""
    if not variants:
        raise RunError(
            "no-variants",
            "unlearn_stacked got no variants",
            "pass a list of graphs, or a graph and weights=[{...}, ...]",
        )
    for k, g in enumerate(variants):
        if not isinstance(g, S.Graph):
            raise RunError(
                "stacked-needs-graphs",
                f"variant {k} is a {type(g).__name__}, not a graph: only graphs (trained"
                " objectives) can be stacked",
                "run a non-training method entry (e.g. SSD) with its own run function",
            )
    base = variants[0]
    masked = [s.id for s in base.stages if s.mask is not None]
    if masked:
        raise RunError(
            "stacked-masked-stage",
            f"graph '{base.name}' has masked stage(s) {', '.join(masked)} (saliency masks):"
            " stacked variants do not support parameter masks",
            "run a masked graph (e.g. SalUn) with unlearn(), one variant at a time",
        )
    labels = ["base"]
    for k, g in enumerate(variants[1:], start=1):
        changed = []
        for change in graph_diff(base, g):
            if change.path.startswith("presets."):
                continue  # presets are inert in a resolved graph: they do not change a run
            match = _WEIGHT_PATH.match(change.path)
            if match and change.kind == "changed":
                changed.append(f"{match.group(1)}={change.new:g}")
                continue
            raise RunError(
                "stacked-variants-differ",
                f"variant {k} ('{g.name}') differs from the first graph at {change.path}"
                f" ({change.kind}: {change.old!r} -> {change.new!r}); stacked variants may"
                " differ only in intervention weights",
                "make each variant with set_weight(graph, edge_id, weight) (an ablation is"
                " weight 0), or run this graph on its own with unlearn()",
            )
        labels.append(", ".join(changed) or "base")
    return labels


class StackedObjective(Objective):
    """An :class:`Objective` that trains K weight variants of its graph at once.

    ``model`` is the template: its module structure and hooks are used, its parameters are
    not trained. The trained parameters are :attr:`stacked` (name → tensor of shape
    ``K × parameter shape``), variant k's being ``stacked[name][k]``.

    In train mode, a forward of the trained model (:meth:`forward_nodes` with ``MODEL``)
    returns every node with the variant axis second (``N × K × …``: rows stay first, so the
    fast executor's concatenated forward splits its rows by stream unchanged). In eval mode
    (the execution plan's two-row probe) it is the template's plain forward.

    Args:
        variants: The K graphs (the first is compiled; all must differ from it only in
            intervention weights, see :func:`unlearn_stacked`).
        model: The trained original model (the template; its parameters are copied K times).
        seed: Seed of randomly initialised reference models.
    """

    def __init__(self, variants: Sequence[S.Graph], model: nn.Module, *, seed: int = 0):
        super().__init__(variants[0], model, seed=seed)
        self.variants = tuple(variants)
        k = len(self.variants)
        self.stacked: dict[str, torch.Tensor] = {
            name: p.detach()
            .unsqueeze(0)
            .repeat(k, *([1] * p.dim()))
            .requires_grad_(p.requires_grad)
            for name, p in model.named_parameters()
        }
        dtype = next(iter(self.stacked.values())).dtype if self.stacked else torch.float32
        device = next(model.parameters()).device if self.stacked else torch.device("cpu")
        #: Stage id → ``K × terms`` signed weights, in the order of ``graph.terms_of(stage)``.
        self.weights: dict[str, torch.Tensor] = {
            stage.id: torch.tensor(
                [
                    [v.intervention(e.id).signed_weight for e in self.graph.terms_of(stage.id)]
                    for v in self.variants
                ],
                dtype=dtype,
                device=device,
            )
            for stage in self.graph.stages
        }
        #: Logged value name (``v<k>/<edge id>``, ``v<k>:loss``; see :meth:`stage_loss`) → k.
        self.term_variants: dict[str, int] = {}
        for k in range(len(self.variants)):
            self.term_variants[f"v{k}:loss"] = k
            for edge in self.graph.interventions:
                self.term_variants[f"v{k}/{edge.id}"] = k
        # The variant's parameters while a vmapped function runs (``None`` outside).
        self._current: dict[str, torch.Tensor] | None = None
        self._in_terms = False
        self.runners[MODEL] = self._functional_forward

    @property
    def k(self) -> int:
        """Number of variants."""
        return len(self.variants)

    def _functional_forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._current is None:
            return self.model(x)
        return functional_call(self.model, self._current, (x,))

    def forward_nodes(self, model_key: ModelKey, x: torch.Tensor) -> Forwards:
        """As :meth:`Objective.forward_nodes`; the trained model runs all K variants (see the
        class docstring): one ``vmap`` of the same forward, with the runner swapped for a
        ``functional_call`` on the variant's parameters."""
        if model_key != MODEL or not self.model.training:
            return super().forward_nodes(model_key, x)
        if self._in_terms:
            raise RunError(
                "stacked-unplanned-forward",
                "a term asked for a forward of the trained model that the execution plan did"
                " not foresee",
                "report this with the graph: its terms must read the same streams every step",
            )

        # The representation hooks fire inside functional_call, and the base forward_nodes reads
        # what they captured inside this same vmapped function, so the captured values leave
        # vmap as ordinary outputs (a capture read after vmap returned would be unusable).
        def one(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            self._current = params
            try:
                return Objective.forward_nodes(self, MODEL, x)
            finally:
                self._current = None

        # randomness="same": a dropout mask is drawn once and shared by the K variants.
        return vmap(one, out_dims=1, randomness="same")(self.stacked)

    def term_value(self, ctx: StageContext, edge: S.Intervention) -> torch.Tensor:
        """As :meth:`Objective.term_value`; a ``parameters`` target reads the variant's
        parameters inside the stage's ``vmap``."""
        if self._current is None or self.graph.node_map[edge.target].kind != "parameters":
            return super().term_value(ctx, edge)
        template = dict(self.model.named_parameters())
        value = [p for name, p in self._current.items() if template[name].requires_grad]
        reference = None
        if edge.reference is not None:
            reference = get_reference(edge.reference.kind)(ctx, edge)
        return get_divergence(edge.divergence.kind)(value, reference, edge.divergence)

    def variant_terms(self, stage: str, ctx: FastContext) -> torch.Tensor:
        """The unweighted term values of every variant, ``K × terms`` (``graph.terms_of``
        order), with gradients to :attr:`stacked`."""
        edges = self.graph.terms_of(stage)
        # Every trained-model forward the plan foresees runs now, all K variants at once (the
        # fast executor's concatenated forward has already run and is in the cache).
        outputs = {key: ctx.forwards(MODEL, key) for key in ctx.plan.model_streams}

        def one(values: dict[StreamKey, Forwards], params: dict[str, torch.Tensor]):
            view = ctx.with_forwards(MODEL, values)
            self._current, self._in_terms = params, True
            try:
                return torch.stack([self.term_value(view, e) for e in edges])
            finally:
                self._current, self._in_terms = None, False

        return vmap(one, in_dims=(1, 0), randomness="same")(outputs, self.stacked)

    def stage_loss(
        self, stage: str, batch: Batch, ctx: StageContext | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The sum of the K variants' losses of one stage, and every variant's values.

        Variant k's loss is ``Σ_j w_kj · term_kj`` (:attr:`weights`, signed), as
        :meth:`Objective.stage_loss` computes for one graph; that method is not reused because
        it reads each weight as a Python float of the one graph, and here the weights are a
        per-variant tensor. The terms dict holds ``v<k>/<edge id>`` (unweighted term values,
        detached, for the log) and ``v<k>:loss`` (variant k's loss, so that the non-finite
        check names the variant even when only the weighted sum overflows).

        Raises:
            RunError: ``stacked-needs-fast-executor`` without the fast executor's context.
        """
        if not isinstance(ctx, FastContext):
            raise RunError(
                "stacked-needs-fast-executor",
                "stacked variants run under the fast executor only",
                "use unlearn_stacked(), which runs run_schedule(..., executor='fast')",
            )
        values = self.variant_terms(stage, ctx)
        losses = (self.weights[stage] * values).sum(1)
        names = [e.id for e in self.graph.terms_of(stage)]
        detached = values.detach()
        terms: dict[str, torch.Tensor] = {}
        for k in range(self.k):
            terms.update({f"v{k}/{name}": detached[k, j] for j, name in enumerate(names)})
            terms[f"v{k}:loss"] = losses[k].detach()
        return losses.sum(), terms

    def stage_parameters(self, stage: S.Stage) -> list[torch.Tensor]:
        """The stacked tensors of the parameters the stage trains (as the template's)."""
        names = {id(p): name for name, p in self.model.named_parameters()}
        return [self.stacked[names[id(p)]] for p in super().stage_parameters(stage)]

    def unstack(self, k: int) -> nn.Module:
        """Variant ``k`` as an ordinary model (a copy of the template with its weights)."""
        model = copy.deepcopy(self.model)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(self.stacked[name][k])
        return model.eval()


def _split_log(log: TrainLog, k: int) -> TrainLog:
    """Variant ``k``'s log in the form of :func:`~causalunlearn.engine.verbs.unlearn`'s."""
    prefix = f"v{k}/"
    losses = {
        sid: [
            {
                key[len(prefix) :] if key.startswith(prefix) else key: value
                for key, value in row.items()
                if key in ("step", "epoch") or key.startswith(prefix)
            }
            for row in rows
        ]
        for sid, rows in log.losses.items()
    }
    return TrainLog(dict(log.steps), log.seconds, losses, dict(log.plan))


def unlearn_stacked(
    variants: S.Graph | Sequence[S.Graph],
    model: nn.Module,
    data: TensorData,
    split: Split,
    *,
    weights: Sequence[Mapping[str, float]] | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> list[Unlearned]:
    """Run K weight variants of one graph at once (see the module docstring).

    Either ``unlearn_stacked([g0, g1, g2], model, data, split)`` with graphs that differ from
    the first only in intervention-edge weights, or ``unlearn_stacked(graph, model, data,
    split, weights=[{}, {"cut_forget_z": 0.0}])`` with one ``{edge id: weight}`` map per variant
    (``{}``: the graph itself).

    Variant k gives the same model and the same log as ``unlearn(variants[k], model, data,
    split, seed=seed, executor="fast")``, to float rounding: the same original, streams
    (materialised once from the first graph), shuffles and optimiser steps.

    An ablation that removes an intervention edge is the variant with that edge's weight 0:
    the loss is then the same function as without the term (its value is still computed, times
    0). What can differ from running the graph *with the edge removed* (``remove_intervention``,
    ``graphs/ablations/``): if the removal also drops a materialised stream (the edge was the
    only reader of a counterfactual node or of a paired reference), that file's run draws its
    pairings, counterfactuals and shuffles from a shorter random sequence, so its streams differ;
    and if every edge of a stage has weight 0, the stacked variant still takes that stage's
    optimiser steps (zero loss gradient, but weight decay moves the weights), where the removal
    drops the stage. The stacked run equals the base graph with that weight set to 0 exactly.

    Args:
        variants: The graphs, or one graph when ``weights`` is given.
        model: The trained original model (left as it is).
        data: The dataset.
        split: Forget / retain / retain-sample indices.
        weights: Per-variant ``{edge id: weight}`` maps applied to ``variants`` (one graph).
        seed: Seed of the pairing, the do-operations, the shuffling and random references.
        device: The run's device (default: CUDA when present, else CPU).
        progress: Show a progress bar.

    Returns:
        One :class:`~causalunlearn.engine.verbs.Unlearned` per variant, in order (eval-mode
        models for :func:`~causalunlearn.metrics.evaluate.evaluate`). Their ``seconds`` are those
        of the one stacked run (``materialise``, ``loop``, ``total``), shared by all variants.

    Raises:
        RunError: ``stacked-variants-differ`` naming the first field that differs other than a
            weight; ``stacked-batch-dependent`` for a model with batch normalisation;
            ``stacked-masked-stage``; ``stacked-needs-graphs`` for a method entry;
            ``non-finite-loss`` naming the variant(s), stage, epoch and step.
        GraphError: ``unknown-id`` when a weight map names an unknown edge.
    """
    if weights is not None:
        if not isinstance(variants, S.Graph):
            raise RunError(
                "stacked-needs-graphs",
                f"weights= needs one base graph, got a {type(variants).__name__}",
                "pass unlearn_stacked(graph, model, data, split, weights=[...])",
            )
        variants = weight_variants(variants, weights)
    elif isinstance(variants, S.Graph):
        variants = [variants]
    variants = list(variants)
    labels = _check_variants(variants)
    dependent = batch_dependent_layers(model)
    if dependent:
        raise RunError(
            "stacked-batch-dependent",
            f"{type(model).__name__} has batch-dependent layers ({', '.join(dependent[:5])}):"
            " vmap cannot run train-mode batch normalisation (it updates running statistics"
            " in place)",
            "run each variant with unlearn(), or use a model with per-row normalisation"
            " (LayerNorm/GroupNorm)",
        )
    device = pick_device(device)
    start = time.perf_counter()
    objective = StackedObjective(variants, copy.deepcopy(model).to(device), seed=seed)
    t0 = time.perf_counter()
    streams = materialise(
        objective.graph,
        data.to(device),
        split,
        seed=seed,
        device=device,
        original=objective.original,
    )
    t1 = time.perf_counter()
    try:
        log = run_schedule(
            objective,
            streams,
            seed=seed,
            progress=progress,
            log_every=1,
            description=f"{objective.graph.name} x{objective.k} stacked",
            executor="fast",
        )
    except RunError as err:
        if err.code != "non-finite-loss":
            raise
        terms = err.details.get("terms", ())
        bad = sorted({objective.term_variants[t] for t in terms if t in objective.term_variants})
        named = ", ".join(f"{k} ({labels[k]})" for k in bad) or "unknown"
        raise RunError(
            "non-finite-loss",
            f"stacked variant(s) {named}: {err.message}",
            err.hint + "; or rerun without that variant",
            details={**err.details, "variants": bad},
        ) from err
    objective.model.eval()
    seconds = {"materialise": t1 - t0, "loop": log.seconds, "total": time.perf_counter() - start}
    return [
        Unlearned(objective.unstack(k), _split_log(log, k), dict(seconds))
        for k in range(objective.k)
    ]
