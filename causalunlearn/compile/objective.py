"""Compile a graph into a PyTorch objective: per stage, the weighted sum of its edges' terms.

``compile_objective(graph, model)`` returns an :class:`Objective` (an ``nn.Module``) that owns
the model being unlearned (f_θ), a frozen copy of the original (f₀: eval mode, no gradients) and
any randomly initialised reference models. ``objective.stage_loss(stage, batch)`` evaluates one
stage on one batch with fresh forwards — one forward per (model, stream), shared by the stage's
terms — and returns the weighted loss with the unweighted value of each term for logging.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn

from causalunlearn.compile.divergences import get_divergence
from causalunlearn.compile.references import get_reference
from causalunlearn.errors import CausalUnlearnError, ModelError
from causalunlearn.graph import spec as S
from causalunlearn.graph.validate import _row_group
from causalunlearn.models.representation import capture_representation, resolve_layer_path

Batch = dict[str, tuple[torch.Tensor, torch.Tensor]]


def _frozen(model: nn.Module) -> nn.Module:
    clone = copy.deepcopy(model)
    clone.eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


class StageContext:
    """Forwards of one stage on one batch, computed once per (model, stream) and shared."""

    def __init__(self, objective: Objective, batch: Batch) -> None:
        self.objective = objective
        self.batch = batch
        self._cache: dict[tuple[str, str], dict[str, torch.Tensor]] = {}

    def _key(self, stream: str, edge: S.Intervention | None) -> str:
        ref = edge.reference if edge is not None else None
        nodes = self.objective.graph.node_map
        if (
            ref is not None
            and ref.align == "paired"
            and edge.data is not None
            and _row_group(nodes, stream) != _row_group(nodes, edge.data)
        ):
            return f"{stream}@{edge.data}"
        return stream

    def value(
        self, model_key: str, stream: str, node: str, aligned_to: S.Intervention | None = None
    ):
        """The value of model node ``node`` of model ``model_key`` on the rows of ``stream``."""
        key = self._key(stream, aligned_to)
        cache_key = (model_key, key)
        if cache_key not in self._cache:
            self._cache[cache_key] = self.objective.forward_nodes(model_key, self.batch[key][0])
        return self._cache[cache_key][node]

    def labels(self, stream: str, aligned_to: S.Intervention | None = None) -> torch.Tensor:
        """The labels of the rows of ``stream`` in this batch."""
        return self.batch[self._key(stream, aligned_to)][1]


class Objective(nn.Module):
    """A compiled graph. See :func:`compile_objective`.

    Attributes:
        graph: The graph it was compiled from.
        model: The model being unlearned (trained in place).
        original: Frozen copy of the model at compile time (``None`` if no edge needs it).
        references: Frozen randomly initialised models by key ``random:<seed>``.
        layers: Representation node id → resolved module path.
    """

    def __init__(
        self, graph: S.Graph, model: nn.Module, *, seed: int = 0, original: nn.Module | None = None
    ):
        super().__init__()
        self.graph = graph
        self.model = model
        self.layers = {
            n.id: resolve_layer_path(model, n.layer) for n in graph.nodes_of_kind("representation")
        }
        needs_original = any(
            (e.reference is not None and e.reference.kind == "original")
            for e in graph.interventions
        ) or any(op.op == "adversarial" for n in graph.nodes for op in n.do)
        self.original = (
            (original if original is not None else _frozen(model)) if needs_original else None
        )
        if self.original is not None:
            self.original = _frozen(self.original) if self.original.training else self.original
        self.references = nn.ModuleDict()
        for e in graph.interventions:
            if e.reference is not None and e.reference.kind == "random_model":
                key = f"random:{e.reference.seed}"
                if key not in self.references:
                    self.references[key] = _random_copy(model, seed + e.reference.seed)
        for e in graph.interventions:
            get_divergence(e.divergence.kind)
            if e.reference is not None:
                get_reference(e.reference.kind)
        self._open_captures: dict[str, dict[str, Any]] = {}
        #: Callables used instead of the module for a forward (``torch.compile`` wrappers).
        self.runners: dict[str, Any] = {}

    def _model(self, key: str) -> nn.Module:
        if key == "model":
            return self.model
        if key == "original":
            return self.original
        return self.references[key]

    @contextmanager
    def keep_captures(self, model_keys: tuple[str, ...] = ("model",)) -> Iterator[None]:
        """Keep the representation hooks of these models registered for the whole context.

        Inside it, :meth:`forward_nodes` reuses the hooks instead of registering and removing
        them at every forward (and a ``torch.compile`` wrapper sees one fixed set of hooks).
        """
        with ExitStack() as stack:
            for key in model_keys:
                model = self._model(key)
                self._open_captures[key] = {
                    nid: stack.enter_context(capture_representation(model, path))
                    for nid, path in self.layers.items()
                }
            try:
                yield
            finally:
                for key in model_keys:
                    self._open_captures.pop(key, None)

    def forward_nodes(self, model_key: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One forward of model ``model_key`` on ``x``: every representation node and the output.

        Frozen models run without gradients.
        """
        model = self._model(model_key)
        run = self.runners.get(model_key, model)
        grad = torch.enable_grad() if model_key == "model" else torch.no_grad()
        with grad, ExitStack() as stack:
            caps = self._open_captures.get(model_key)
            if caps is None:
                caps = {
                    nid: stack.enter_context(capture_representation(model, path))
                    for nid, path in self.layers.items()
                }
            logits = run(x)
            out = {nid: cap.value for nid, cap in caps.items()}
        for n in self.graph.nodes_of_kind("output"):
            out[n.id] = logits
        return out

    def term_value(self, ctx: StageContext, edge: S.Intervention) -> torch.Tensor:
        """The unweighted value of one intervention edge on the context's batch."""
        divergence = get_divergence(edge.divergence.kind)
        if self.graph.node_map[edge.target].kind == "parameters":
            value: Any = [p for p in self.model.parameters() if p.requires_grad]
        else:
            value = ctx.value("model", edge.data, edge.target)
        reference = None
        if edge.reference is not None:
            reference = get_reference(edge.reference.kind)(ctx, edge)
        return divergence(value, reference, edge.divergence)

    def stage_loss(
        self, stage: str, batch: Batch, ctx: StageContext | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted loss of one stage on one batch, and each term's unweighted (detached) value.

        Args:
            stage: Stage id.
            batch: Stream key → ``(x, y)`` rows of this batch.
            ctx: The context serving the forwards (default: a fresh :class:`StageContext`;
                the fast executor passes one that reuses precomputed frozen outputs).

        Returns:
            ``(loss, {edge id: value})``; ``loss = Σ signed_weight × value`` over the stage's edges.
        """
        ctx = ctx if ctx is not None else StageContext(self, batch)
        total: torch.Tensor | float = 0.0
        terms = {}
        for edge in self.graph.terms_of(stage):
            value = self.term_value(ctx, edge)
            terms[edge.id] = value.detach()
            total = total + edge.signed_weight * value
        return total, terms

    def forward(self, stage: str, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Same as :meth:`stage_loss`."""
        return self.stage_loss(stage, batch)

    def stage_parameters(self, stage: S.Stage) -> list[nn.Parameter]:
        """The parameters a stage's optimiser owns (``modules`` or all of the model's)."""
        if stage.modules is None:
            return [p for p in self.model.parameters() if p.requires_grad]
        params = []
        for path in stage.modules:
            try:
                params += list(self.model.get_submodule(path).parameters())
            except AttributeError:
                raise CausalUnlearnError(
                    "unknown-module",
                    f"stage '{stage.id}' names module '{path}',"
                    f" which {type(self.model).__name__} lacks",
                    "use module paths from model.named_modules()",
                ) from None
        return params

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One optimiser per stage, as the graph's stages say (CaMU: two Adams)."""
        optimizers = {}
        for stage in self.graph.stages:
            params = self.stage_parameters(stage)
            if stage.optimizer == "sgd":
                opt = torch.optim.SGD(
                    params, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay
                )
            elif stage.optimizer == "adamw":
                opt = torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay)
            else:
                opt = torch.optim.Adam(params, lr=stage.lr, weight_decay=stage.weight_decay)
            optimizers[stage.id] = opt
        return optimizers


def _random_copy(model: nn.Module, seed: int) -> nn.Module:
    """A frozen copy of ``model`` with every parameter re-initialised from ``seed``.

    Every module with a ``reset_parameters`` method is reset (PyTorch's default initialisation,
    also clearing batch-norm running statistics) on the CPU with only the CPU generator seeded,
    then the copy is moved back to the model's device: the same seed gives the same random model
    on every device, and the global CUDA generator is left alone.

    Raises:
        ModelError: ``random-model-not-reset`` when a parameter belongs to no module that can
            reset it: such a "random" model would silently keep the trained (original) values.
    """
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    clone = copy.deepcopy(model).to("cpu")
    covered: set[int] = set()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        for module in clone.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
                covered.update(id(p) for p in module.parameters(recurse=False))
    missed = [name for name, p in clone.named_parameters() if id(p) not in covered]
    if missed:
        raise ModelError(
            "random-model-not-reset",
            f"a random reference model cannot re-initialise {', '.join(missed[:5])}"
            + (f" and {len(missed) - 5} more" if len(missed) > 5 else "")
            + f" of {type(model).__name__}: no module owning them has reset_parameters()",
            "give the module that owns those parameters a reset_parameters() method",
        )
    return _frozen(clone.to(device))


def compile_objective(
    graph: S.Graph, model: nn.Module, *, seed: int = 0, original: nn.Module | None = None
) -> Objective:
    """Compile ``graph`` into an :class:`Objective` for ``model``.

    Args:
        graph: A validated graph.
        model: The trained model to unlearn; its representation layers must exist.
        seed: Seed for randomly initialised reference models.
        original: The frozen original model (default: a copy of ``model`` as it is now).

    Raises:
        ModelError: ``missing-representation-layer`` when a representation node names a layer
            the model lacks.
    """
    return Objective(graph, model, seed=seed, original=original)
