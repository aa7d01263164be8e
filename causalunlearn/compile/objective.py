"""Compile a graph into a PyTorch objective: per stage, the weighted sum of its edges' terms.

``compile_objective(graph, model)`` returns an :class:`Objective` (an ``nn.Module``) that owns
the model being unlearned (f_θ), a frozen copy of the original (f₀: eval mode, no gradients) and
any randomly initialised reference models. ``objective.stage_loss(stage, batch)`` evaluates one
stage on one batch with fresh forwards — one forward per (model, stream), shared by the stage's
terms — and returns the weighted loss with the unweighted value of each term for logging.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any, cast

import torch
from torch import nn

from causalunlearn.compile.divergences import get_divergence
from causalunlearn.compile.keys import MODEL, ORIGINAL, ModelKey, StreamKey
from causalunlearn.compile.references import get_reference
from causalunlearn.errors import CausalUnlearnError, ModelError
from causalunlearn.graph import spec as S
from causalunlearn.graph.validate import row_group
from causalunlearn.models.representation import capture_representation, resolve_layer_path

Batch = dict[StreamKey, tuple[torch.Tensor, torch.Tensor]]
#: Node id → value of one forward of one model (every representation node and the output).
Forwards = dict[str, torch.Tensor]


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
        self._cache: dict[tuple[ModelKey, StreamKey], Forwards] = {}

    def stream_key(self, stream: str, aligned_to: S.Intervention | None = None) -> StreamKey:
        """The key of the rows of ``stream`` as the edge ``aligned_to`` reads them.

        A paired reference stream of another row group is read permuted into the order of the
        edge's data stream (``StreamKey(stream, aligned_to=edge.data)``); otherwise the
        stream's own rows (``StreamKey(stream)``).
        """
        if aligned_to is None or aligned_to.reference is None or aligned_to.data is None:
            return StreamKey(stream)
        nodes = self.objective.graph.node_map
        if aligned_to.reference.align == "paired" and row_group(nodes, stream) != row_group(
            nodes, aligned_to.data
        ):
            return StreamKey(stream, aligned_to=aligned_to.data)
        return StreamKey(stream)

    def forwards(self, model_key: ModelKey, key: StreamKey) -> Forwards:
        """Every node value of one forward of ``model_key`` on the batch rows of ``key``.

        Computed on first use and cached for the rest of the stage.
        """
        cache_key = (model_key, key)
        if cache_key not in self._cache:
            self._cache[cache_key] = self.objective.forward_nodes(model_key, self.batch[key][0])
        return self._cache[cache_key]

    def provide(self, model_key: ModelKey, values: Mapping[StreamKey, Forwards]) -> None:
        """Serve these forwards of ``model_key`` (stream key → node values) from now on.

        For an executor that computes forwards its own way (one concatenated forward of
        several streams, split back by rows).
        """
        self._cache.update({(model_key, key): v for key, v in values.items()})

    def with_forwards(
        self, model_key: ModelKey, values: Mapping[StreamKey, Forwards]
    ) -> StageContext:
        """A copy of this context that serves these forwards of ``model_key`` instead.

        This context is left as it is (stacked variants evaluate each variant's terms on a
        copy holding that variant's forwards).
        """
        view = copy.copy(self)
        view._cache = dict(self._cache)
        view.provide(model_key, values)
        return view

    def value(
        self,
        model_key: ModelKey,
        stream: str,
        node: str,
        aligned_to: S.Intervention | None = None,
    ) -> torch.Tensor:
        """The value of model node ``node`` of model ``model_key`` on the rows of ``stream``.

        Args:
            model_key: :data:`~causalunlearn.compile.keys.MODEL`,
                :data:`~causalunlearn.compile.keys.ORIGINAL` or ``ModelKey.random(seed)``.
            stream: The data node whose rows are read.
            node: The model node (representation or output) whose value is returned.
            aligned_to: The edge reading them: a paired reference stream is then read in the
                row order of the edge's data stream (see :meth:`stream_key`).
        """
        return self.forwards(model_key, self.stream_key(stream, aligned_to))[node]

    def labels(self, stream: str, aligned_to: S.Intervention | None = None) -> torch.Tensor:
        """The labels of the rows of ``stream`` in this batch."""
        return self.batch[self.stream_key(stream, aligned_to)][1]


class Objective(nn.Module):
    """A compiled graph. See :func:`compile_objective`.

    Attributes:
        graph: The graph it was compiled from.
        model: The model being unlearned (trained in place).
        original: Frozen copy of the model at compile time (``None`` if no edge needs it).
        references: Frozen randomly initialised models, by :attr:`ModelKey.name` of their
            ``ModelKey.random(seed)`` (read them with :meth:`model_of`).
        layers: Representation node id → resolved module path.
    """

    def __init__(
        self, graph: S.Graph, model: nn.Module, *, seed: int = 0, original: nn.Module | None = None
    ):
        super().__init__()
        self.graph = graph
        self.model = model
        self.layers = {
            # a representation node always names its layer (the graph layer checks it)
            n.id: resolve_layer_path(model, cast(str, n.layer))
            for n in graph.nodes_of_kind("representation")
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
                name = ModelKey.random(e.reference.seed).name
                if name not in self.references:
                    self.references[name] = _random_copy(model, seed + e.reference.seed)
        for e in graph.interventions:
            get_divergence(e.divergence.kind)
            if e.reference is not None:
                get_reference(e.reference.kind)
        self._open_captures: dict[ModelKey, dict[str, Any]] = {}
        #: Callables used instead of the module for a forward (``torch.compile`` wrappers).
        self.runners: dict[ModelKey, Any] = {}

    def model_of(self, key: ModelKey) -> nn.Module:
        """The model behind ``key``: the trained model, the frozen original or the frozen
        random model of ``ModelKey.random(seed)``.

        Raises:
            TypeError: when ``key`` is not a :class:`~causalunlearn.compile.keys.ModelKey`.
            KeyError: for a frozen model the objective lacks (no edge of the graph uses it).
        """
        if not isinstance(key, ModelKey):
            raise TypeError(
                f"models are named by a ModelKey (MODEL, ORIGINAL, ModelKey.random(seed)),"
                f" not {key!r}"
            )
        if key == MODEL:
            return self.model
        if key == ORIGINAL:
            if self.original is None:
                raise KeyError("no original model: no edge or do-operation of the graph reads it")
            return self.original
        return self.references[key.name]

    @contextmanager
    def keep_captures(self, model_keys: tuple[ModelKey, ...] = (MODEL,)) -> Iterator[None]:
        """Keep the representation hooks of these models registered for the whole context.

        Inside it, :meth:`forward_nodes` reuses the hooks instead of registering and removing
        them at every forward (and a ``torch.compile`` wrapper sees one fixed set of hooks).
        """
        with ExitStack() as stack:
            for key in model_keys:
                model = self.model_of(key)
                self._open_captures[key] = {
                    nid: stack.enter_context(capture_representation(model, path))
                    for nid, path in self.layers.items()
                }
            try:
                yield
            finally:
                for key in model_keys:
                    self._open_captures.pop(key, None)

    def forward_nodes(self, model_key: ModelKey, x: torch.Tensor) -> Forwards:
        """One forward of model ``model_key`` on ``x``: every representation node and the output.

        Frozen models run without gradients.
        """
        model = self.model_of(model_key)
        run = self.runners.get(model_key, model)
        grad = torch.no_grad() if model_key.frozen else torch.enable_grad()
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
            value = ctx.value(MODEL, cast(str, edge.data), edge.target)  # a data edge
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
            batch: :class:`~causalunlearn.compile.keys.StreamKey` → ``(x, y)`` rows of this
                batch (as :attr:`Streams.rows <causalunlearn.compile.materialise.Streams.rows>`).
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
        return cast(torch.Tensor, total), terms  # a stage has terms (the graph layer checks it)

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
        optimizers: dict[str, torch.optim.Optimizer] = {}
        for stage in self.graph.stages:
            params = self.stage_parameters(stage)
            opt: torch.optim.Optimizer
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
                cast(Any, module).reset_parameters()
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
