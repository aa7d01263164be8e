"""The graph spec: frozen, validated data that describes one unlearning method.

A :class:`Graph` holds data / representation / output / parameters **nodes**, **mechanism edges**
(how the model maps data to representation to output), **intervention edges** (each compiles to
one weighted loss term), **stages** (one optimiser step each per batch) and a **schedule**. The
semantics are pinned down in ``docs/concepts.md``; the field reference is ``docs/graph-format.md``.

This module does not import torch: validating and rendering a graph is instant.

Constructing a :class:`Graph` in Python validates it (every problem at once, as a
:class:`~causalunlearn.errors.GraphError`); the YAML loader builds the same objects. How each
field is read and checked (type, default, allowed values, bounds) is the table in
:mod:`causalunlearn.graph.schema`.
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

from causalunlearn.graph import vocab

FORMAT = "causalunlearn.graph/v1"

NODE_KINDS = ("data", "representation", "output", "parameters")
SPLITS = ("forget", "retain", "test", "train")
SAMPLES = ("all", "same_size_as_forget")
ALIGNS = ("same", "paired")
DISTRIBUTIONS = ("uniform",)
DIRECTIONS = ("reference_to_model", "model_to_reference")
SOFTMAX_AXES = ("features", "classes", "none")
REDUCTIONS = ("sum", "mean", "batchmean")
OPTIMIZERS = ("adam", "adamw", "sgd")
MASK_KINDS = ("gradient_saliency",)

#: The open vocabularies: reference kinds, divergence kinds and do-operations (``op -> schema``
#: with each parameter's type, default and allowed values), as the live registries of
#: :mod:`causalunlearn.graph.vocab` (the same objects, never rebound; registering a new kind
#: adds to them). The torch-side implementations live in ``causalunlearn.compile``.
REFERENCE_KINDS = vocab.REFERENCES
DIVERGENCE_KINDS = vocab.DIVERGENCES
DO_OPS = vocab.DO_OPS


@dataclass(frozen=True)
class DoOp:
    """One do-operation that makes a derived data node (applied in order, once, before training).

    Attributes:
        op: Operation name, one of :data:`DO_OPS` (``add_noise``, ``relabel``, ``adversarial``).
        params: The operation's parameters as sorted ``(name, value)`` pairs, defaults filled in.
    """

    op: str
    params: tuple[tuple[str, Any], ...] = ()

    def get(self, name: str) -> Any:
        """Return parameter ``name`` (its default when not given)."""
        for key, value in self.params:
            if key == name:
                return value
        return DO_OPS.get(self.op).default(name)

    @classmethod
    def make(cls, op: str, **params: Any) -> DoOp:
        """Build a do-operation from keyword parameters, filling in defaults."""
        spec = DO_OPS.get(op, None)
        full = {name: p.default for name, p in spec.params.items()} if spec else {}
        full.update(params)
        return cls(op, tuple(sorted(full.items())))


@dataclass(frozen=True)
class Node:
    """A node of the graph.

    Attributes:
        id: Stable identifier (the key in the YAML ``nodes`` mapping).
        kind: ``data`` (a stream of (input, label) rows), ``representation`` (a named layer of the
            model), ``output`` (the logits) or ``parameters`` (the model's weights, for terms
            with no data such as an l1 penalty).
        split: For data nodes read from the dataset: ``forget``, ``retain``, ``test`` or
            ``train`` (all training data). ``None`` for derived nodes.
        sample: ``all`` rows of the split, or ``same_size_as_forget`` (a seeded random sample of
            the split as large as the forget set; CaMU's retain sample D_s).
        repeat: Rows are repeated this many times (CIFAR-100 class removal repeats forget 10x).
        derived_from: For derived data nodes: the data node whose rows are transformed.
        paired_with: For derived data nodes: the data node whose rows they are aligned with.
            Row i of this node corresponds to row i of ``paired_with`` (a seeded random
            permutation pairing, without replacement).
        do: The do-operations that make a derived node, applied in order.
        layer: For representation nodes: a module path of the model, or ``representation`` for
            the layer the model declares.
    """

    id: str
    kind: str
    split: str | None = None
    sample: str = "all"
    repeat: int = 1
    derived_from: str | None = None
    paired_with: str | None = None
    do: tuple[DoOp, ...] = ()
    layer: str | None = None

    @property
    def is_derived(self) -> bool:
        """Whether this is a derived data node (made by do-operations)."""
        return self.kind == "data" and self.derived_from is not None


@dataclass(frozen=True)
class Reference:
    """What an intervention edge matches the model against.

    Attributes:
        kind: ``original`` (the frozen original model at ``at`` on ``stream``), ``labels`` (the
            labels of ``stream``), ``random_model`` (a randomly initialised copy of the model, as
            Bad-Teacher's incompetent teacher) or ``distribution`` (a fixed distribution, e.g.
            ``uniform``).
        stream: The data node the reference is computed on (``None`` for distributions).
        distribution: The distribution name for ``kind: distribution``.
        align: ``same``: row i of the edge's data ↔ row i of ``stream`` (same stream or its
            derived twin). ``paired``: the two streams are aligned by the run's seeded pairing.
        at: The node of the reference model to read (defaults to the edge's target).
        seed: Initialisation seed offset for ``random_model`` (added to the run seed).
    """

    kind: str
    stream: str | None = None
    distribution: str | None = None
    align: str = "same"
    at: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class Divergence:
    """How the model's value is compared with the reference.

    Attributes:
        kind: ``kl``, ``cross_entropy``, ``mse`` or ``l1`` (a norm of the target, e.g. of the
            parameters; needs no reference).
        direction: For KL: ``reference_to_model`` is KL(reference ‖ model), as CaMU and
            PyTorch's ``KLDivLoss(model_log_probs, reference_probs)``; ``model_to_reference`` is
            KL(model ‖ reference).
        softmax_over: The axis turned into a distribution before comparing (``None``: the
            target's natural axis, filled in when the graph is built): ``features`` (a
            representation's dimensions), ``classes`` (an output's logits) or ``none``.
        temperature: Softmax temperature (both sides), as in distillation.
        reduction: ``sum`` over batch and dimensions, ``mean`` over the batch (and elements),
            or ``batchmean`` (sum divided by batch size).
    """

    kind: str
    direction: str = "reference_to_model"
    softmax_over: str | None = None
    temperature: float = 1.0
    reduction: str = "mean"


@dataclass(frozen=True)
class Intervention:
    """An intervention edge: one loss term ``weight × divergence(model[target](data), ref)``.

    Attributes:
        id: Stable identifier (the key in the YAML ``interventions`` mapping).
        stage: The stage (optimiser step) the term belongs to.
        data: The data stream the model is evaluated on (``None`` for parameter terms).
        target: The node of the model that is matched (representation, output or parameters).
        reference: What the target is matched against (``None`` for norms).
        divergence: How it is compared.
        weight: The term's weight; a negative weight is gradient ascent.
        maximise: Ascend instead of descend on this term (same as negating the weight, but
            logged as a positive value).
        note: Free text shown in the diagram tooltip and docs.
    """

    id: str
    stage: str
    target: str
    divergence: Divergence
    data: str | None = None
    reference: Reference | None = None
    weight: float = 1.0
    maximise: bool = False
    note: str = ""

    @property
    def signed_weight(self) -> float:
        """The weight with the ascent sign applied (what multiplies the term in the loss)."""
        return -self.weight if self.maximise else self.weight


@dataclass(frozen=True)
class Mask:
    """A parameter mask: the stage updates only the selected weights (SalUn's saliency map).

    Attributes:
        kind: ``gradient_saliency``: |∂ CE/∂θ|, the cross-entropy gradient on ``data``
            (labels of the stream) at the original weights, computed once before training.
        data: The data stream the saliency is measured on.
        keep: The fraction of weights kept trainable (the largest saliencies), in (0, 1].
    """

    kind: str
    data: str
    keep: float = 0.5


@dataclass(frozen=True)
class Stage:
    """An optimisation stage: per batch, fresh forwards, zero_grad, the stage's loss, one step.

    Attributes:
        id: Stable identifier (the key in the YAML ``stages`` mapping).
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        lr: Learning rate.
        weight_decay: Weight decay of the optimiser (coupled L2 for adam/sgd).
        momentum: SGD momentum.
        modules: Module paths whose parameters the stage owns (``None``: all parameters).
        mask: Optional parameter mask (SalUn).
        zip: Data streams this stage iterates (default: the schedule's ``zip``).
        epochs: Run only in the first ``epochs`` epochs (SCRUB's max steps); ``None``: all.
    """

    id: str
    optimizer: str
    lr: float
    weight_decay: float = 0.0
    momentum: float = 0.0
    modules: tuple[str, ...] | None = None
    mask: Mask | None = None
    zip: tuple[str, ...] | None = None
    epochs: int | None = None


@dataclass(frozen=True)
class Schedule:
    """How the stages run.

    Attributes:
        order: Stage ids in the order they run on each batch.
        epochs: Number of passes over the zipped streams.
        batch_size: Rows per stream per batch.
        zip: Data streams iterated together; an epoch ends with the shortest, each is reshuffled
            every epoch. Paired/derived streams travel with the stream they are aligned with.
        shuffle: Reshuffle the streams every epoch.
    """

    order: tuple[str, ...]
    epochs: int = 1
    batch_size: int = 32
    zip: tuple[str, ...] = ()
    shuffle: bool = True


@dataclass(frozen=True)
class Citation:
    """Where a method comes from."""

    title: str
    venue: str = ""
    arxiv: str = ""
    url: str = ""
    authors: str = ""


@dataclass(frozen=True)
class Provenance:
    """How a graph was made from a base graph (``extends``); not part of graph equality."""

    base: str
    removed: tuple[str, ...] = ()
    overridden: tuple[str, ...] = ()


@dataclass(frozen=True)
class Graph:
    """A causal unlearning graph: frozen and validated at construction.

    Attributes:
        name: Short name of the method.
        nodes: The nodes, in declaration order.
        mechanisms: Mechanism edges ``(source, target)``: data → representation → output.
        interventions: Intervention edges (loss terms), in declaration order.
        stages: Optimisation stages.
        schedule: How the stages run.
        summary: One-line description.
        citation: Where the method comes from.
        presets: Named override sets ``{name: ((dotted.path, value), ...)}`` as pairs.
        format: Schema version.
        provenance: Base graph and declared edits when made with ``extends`` (not compared).

    Raises:
        GraphError: With every problem found, when the graph is invalid.
    """

    name: str
    nodes: tuple[Node, ...]
    mechanisms: tuple[tuple[str, str], ...]
    interventions: tuple[Intervention, ...]
    stages: tuple[Stage, ...]
    schedule: Schedule
    summary: str = ""
    citation: Citation | None = None
    presets: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    format: str = FORMAT
    provenance: Provenance | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Checks run once per graph: not again for parts the YAML reader has just checked
        # (``from_checked_parts``), nor for the very parts of a checked graph (``replace(graph,
        # provenance=...)``, which changes nothing that is checked).
        self._resolve_softmax_axes()
        if not _PRECHECKED.get() and not _parts_checked(self):
            from causalunlearn.graph.validate import check_graph

            check_graph(self)
        _remember_checked(self)

    @classmethod
    def from_checked_parts(cls, **parts: Any) -> Graph:
        """Build a graph from parts that have just passed every check (the YAML reader's and
        the semantic ones), without running them again."""
        token = _PRECHECKED.set(True)
        try:
            return cls(**parts)
        finally:
            _PRECHECKED.reset(token)

    def _resolve_softmax_axes(self) -> None:
        """Fill in ``softmax_over=None`` with the target's natural axis, as the YAML loader does,
        so a graph built in Python equals the same graph loaded from YAML."""
        from dataclasses import replace

        from causalunlearn.graph.parse import default_softmax_axis

        kinds = {n.id: n.kind for n in self.nodes if isinstance(n, Node)}
        edges, changed = [], False
        for e in self.interventions:
            if isinstance(e, Intervention) and isinstance(e.divergence, Divergence):
                if e.divergence.softmax_over is None:
                    axis = default_softmax_axis(e.divergence.kind, kinds.get(e.target))
                    e = replace(e, divergence=replace(e.divergence, softmax_over=axis))
                    changed = True
            edges.append(e)
        if changed and isinstance(self.interventions, tuple):
            object.__setattr__(self, "interventions", tuple(edges))

    # Lookups -------------------------------------------------------------------------------
    @cached_property
    def node_map(self) -> dict[str, Node]:
        """Nodes by id."""
        return {n.id: n for n in self.nodes}

    @cached_property
    def intervention_map(self) -> dict[str, Intervention]:
        """Intervention edges by id."""
        return {e.id: e for e in self.interventions}

    @cached_property
    def stage_map(self) -> dict[str, Stage]:
        """Stages by id."""
        return {s.id: s for s in self.stages}

    def node(self, node_id: str) -> Node:
        """The node with id ``node_id``."""
        return self.node_map[node_id]

    def intervention(self, edge_id: str) -> Intervention:
        """The intervention edge with id ``edge_id``."""
        return self.intervention_map[edge_id]

    def stage(self, stage_id: str) -> Stage:
        """The stage with id ``stage_id``."""
        return self.stage_map[stage_id]

    def terms_of(self, stage_id: str) -> tuple[Intervention, ...]:
        """The intervention edges of one stage, in declaration order."""
        return tuple(e for e in self.interventions if e.stage == stage_id)

    def nodes_of_kind(self, kind: str) -> tuple[Node, ...]:
        """Nodes of one kind, in declaration order."""
        return tuple(n for n in self.nodes if n.kind == kind)

    def preset(self, name: str) -> dict[str, Any]:
        """The overrides of preset ``name`` as a dict."""
        return dict(dict(self.presets)[name])

    # Conversions (thin wrappers; the implementations live in their modules) ----------------
    def to_dict(self, full: bool = False) -> dict[str, Any]:
        """The graph as plain data (the YAML form). ``full`` includes fields at their default."""
        from causalunlearn.graph.parse import graph_to_dict

        return graph_to_dict(self, full=full)

    def to_yaml(self) -> str:
        """The graph as YAML text that loads back to an equal graph."""
        from causalunlearn.graph.yamlio import dump_yaml

        return dump_yaml(self)

    def digest(self) -> str:
        """A short sha256 of the canonical form (names, weights, settings; not provenance).

        Equal graphs have equal digests: a number is hashed as the type of its field in the
        format (``weight=1`` as ``1.0``, as the YAML reader reads it; see
        :func:`canonical_numbers`), so a graph built in Python with integers and its YAML
        reload share one digest.
        """
        import hashlib
        import json

        text = json.dumps(canonical_numbers(self.to_dict(full=True)), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_networkx(self):  # noqa: ANN201 - networkx type
        """The twin-network expansion as a ``networkx.DiGraph`` (see ``causal.py``)."""
        from causalunlearn.graph.causal import to_networkx

        return to_networkx(self)

    def to_pgmpy(self, intervened: bool = False):  # noqa: ANN201 - pgmpy type
        """The twin-network expansion as a ``pgmpy`` DAG (imports pgmpy lazily)."""
        from causalunlearn.graph.causal import to_pgmpy

        return to_pgmpy(self, intervened=intervened)

    def to_dot(self) -> str:
        """DOT text of the diagram (needs no ``dot`` program)."""
        from causalunlearn.graph.render import to_dot

        return to_dot(self)

    def _repr_mimebundle_(self, include=None, exclude=None):  # noqa: ANN001, ANN202
        from causalunlearn.graph.render import mimebundle

        return mimebundle(self)


#: Set while :meth:`Graph.from_checked_parts` builds a graph whose parts were just checked.
_PRECHECKED: ContextVar[bool] = ContextVar("causalunlearn_graph_prechecked", default=False)
#: Graphs that passed the checks, by the identities of their compared fields (weakly held: an
#: entry lives as long as its graph, so the ids it is filed under cannot be reused meanwhile).
_CHECKED: weakref.WeakValueDictionary[tuple[int, ...], Graph] = weakref.WeakValueDictionary()
_CHECKED_FIELDS = tuple(f.name for f in fields(Graph) if f.compare)


def _parts_checked(graph: Graph) -> bool:
    """Whether every compared field of ``graph`` is the very object of a checked graph's."""
    values = [getattr(graph, name) for name in _CHECKED_FIELDS]
    seen = _CHECKED.get(tuple(map(id, values)))
    return seen is not None and all(
        getattr(seen, name) is value for name, value in zip(_CHECKED_FIELDS, values, strict=True)
    )


def _remember_checked(graph: Graph) -> None:
    _CHECKED[tuple(id(getattr(graph, name)) for name in _CHECKED_FIELDS)] = graph


def field_names(cls: type) -> tuple[str, ...]:
    """Names of a spec dataclass's fields, in order (used by the parser and the docs)."""
    return tuple(f.name for f in fields(cls) if f.name not in ("provenance",))


def canonical_numbers(plain: dict[str, Any]) -> dict[str, Any]:
    """The full plain form of a graph with every number written as its field's type.

    A float field holding an integer (``weight=1``, ``DoOp.make("add_noise", low=0)``, a preset
    ``stages.x.lr: 1``) becomes that float, and ``-0.0`` becomes ``0.0``: the values the YAML
    reader gives, where ``1 == 1.0`` already makes the graphs equal. Values whose field is not a
    float are left as they are, so a graph read from YAML hashes as before.

    Args:
        plain: ``graph.to_dict(full=True)``.
    """
    from causalunlearn.graph import schema

    def node_field(path: tuple[str, ...]) -> Any:
        # nodes.<id>.do.<i>.<param>: the parameter of that operation (found in ``plain``).
        if len(path) == 5 and path[2] == "do" and path[3].isdigit():
            ops = (plain.get("nodes", {}).get(path[1]) or {}).get("do") or []
            op = ops[int(path[3])].get("op") if int(path[3]) < len(ops) else None
            return schema.do_fields(op).get(path[4]) if isinstance(op, str) else None
        return schema.fields_of(Node).get(path[2]) if len(path) == 3 else None

    def kind_at(path: tuple[str, ...]) -> Any:
        """The kind of the field at a full-form key path (``None`` when not a scalar field)."""
        f = None
        if path[:1] == ("schedule",) and len(path) == 2:
            f = schema.fields_of(Schedule).get(path[1])
        elif path[:1] == ("stages",) and len(path) == 3:
            f = schema.fields_of(Stage).get(path[2])
        elif path[:1] == ("stages",) and len(path) == 4 and path[2] == "mask":
            f = schema.fields_of(Mask).get(path[3])
        elif path[:1] == ("interventions",) and len(path) == 3:
            f = schema.fields_of(Intervention).get(path[2])
        elif path[:1] == ("interventions",) and len(path) == 4 and path[2] == "divergence":
            f = schema.fields_of(Divergence).get(path[3])
        elif path[:1] == ("interventions",) and len(path) == 4 and path[2] == "reference":
            f = schema.fields_of(Reference).get(path[3])
        elif path[:1] == ("nodes",) and len(path) >= 3:
            f = node_field(path)
        return f.kind if f is not None else None

    def walk(value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, str(i))) for i, v in enumerate(value)]
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if is_number and kind_at(path) is float:
            return float(value) + 0.0  # ``+ 0.0`` turns -0.0 into 0.0
        return value

    out = {k: walk(v, (k,)) for k, v in plain.items() if k != "presets"}
    presets = plain.get("presets")
    if isinstance(presets, dict):
        # A preset's dotted paths address the same full form: each value is read as its field.
        out["presets"] = {
            name: {
                key: walk(value, tuple(str(key).split(".")))
                for key, value in (overrides or {}).items()
            }
            for name, overrides in presets.items()
        }
    elif "presets" in plain:
        out["presets"] = presets
    return out
