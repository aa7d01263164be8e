"""Causal views of a graph: the twin-network expansion as networkx / pgmpy DAGs, and the check.

**Twin-network reading.** Each data node is a stream of rows fed to the *same* model, so every
model node is expanded per stream: ``Z[forget]``, ``Y[forget]``, ``Z[retain_sample]``, ... An
intervention on the forget stream's representation then cuts only that stream's path.

Each intervention edge becomes its own node ``do:<edge id>`` with edges ``reference stream →
do:<id> → target[data]``, so mechanism and intervention edges never collapse onto one node pair
(pgmpy keeps one edge per pair).

**What the check means.** It is a statement about the *objective*, computed on this expansion
with pgmpy (``do``, ``is_dconnected``) and networkx (paths): an edge whose reference carries no
information specific to the rows of its data stream (the original model on other rows, labels
redrawn by a do-operation, a random model, a fixed distribution) is a *cut*: ``do(target[data])``.
An edge that ties a stream to its own factual value (original model or labels on the same rows)
*preserves* it; an ascent term on the stream's own labels *pushes away* without cutting. The
check reports whether every directed path from forget data to an output is cut, and whether the
retain streams keep an open, preserved path.

**Inert mechanisms.** The model runs on a stream only where a term reads it (``data:``), or on
the forget set, which it is evaluated on whatever the objective says. A mechanism edge declared
for any other stream (a derived node used only as a reference, e.g. labels redrawn from forget
rows) is *inert*: it is drawn in the expansion (``inert=True``) but opens no path, and the report
lists it.

**What it does not establish** (also in :meth:`CausalReport.summary`): that the trained weights
forget. It reads which terms exist, not their weights, learning rates, epochs or the modules a
stage trains; a cut at a representation alone does not make any term act on the forget rows'
output (representation-only CaMU passes and barely forgets); the frozen
original model itself was trained on the forget set, and a relabel that avoids the paired forget
label (CaMU) is not modelled as information flow. Metrics measure the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import networkx as nx

from causalunlearn.graph import spec as S


def expanded(node: str, stream: str) -> str:
    """Name of model node ``node`` on data stream ``stream`` (e.g. ``Z[forget]``)."""
    return f"{node}[{stream}]"


def _lineage(graph: S.Graph, name: str) -> list[str]:
    """``name`` and the data nodes it is derived from, nearest first."""
    chain = [name]
    while name in graph.node_map and graph.node_map[name].derived_from:
        name = cast(str, graph.node_map[name].derived_from)  # not None: the loop's condition
        if name in chain:
            break
        chain.append(name)
    return chain


def _is_forget_stream(graph: S.Graph, name: str) -> bool:
    root = graph.node_map.get(_lineage(graph, name)[-1])
    return root is not None and root.split == "forget"


def classify(graph: S.Graph, edge: S.Intervention) -> str:
    """How an edge acts on its stream: ``cut``, ``preserve``, ``ascend`` or ``penalty``.

    See the module docstring for the rule.
    """
    ref = edge.reference
    if edge.data is None or ref is None:
        return "penalty"
    ascend = edge.maximise or edge.weight < 0
    if ref.kind in ("random_model", "distribution"):
        return "cut"
    chain = _lineage(graph, cast(str, ref.stream))  # references of the other kinds read a stream
    if edge.data not in chain:
        return "cut"
    if ref.kind == "labels":
        redrawn = any(
            op.op in ("relabel", "adversarial")
            for n in chain[: chain.index(edge.data)]
            for op in graph.node_map[n].do
        )
        if redrawn:
            return "cut"
    return "ascend" if ascend else "preserve"


def live_streams(graph: S.Graph) -> set[str]:
    """The data streams the trained model runs on: those a term reads (``data:``), and every
    forget set (the model is evaluated on it whatever the objective says)."""
    live = {e.data for e in graph.interventions if e.data is not None}
    live |= {n.id for n in graph.nodes if n.kind == "data" and n.split == "forget"}
    return live


def inert_mechanisms(graph: S.Graph) -> tuple[tuple[str, str], ...]:
    """Declared mechanism edges from a data stream that no term runs the model on.

    Such an edge changes nothing the objective computes (the stream may still be a reference,
    read by the frozen original or as labels), so it opens no path in :func:`causal_check`.
    """
    live = live_streams(graph)
    return tuple(
        (s, t)
        for s, t in graph.mechanisms
        if s in graph.node_map and graph.node_map[s].kind == "data" and s not in live
    )


def _entry_nodes(graph: S.Graph) -> list[str]:
    """Model nodes that data flows into (used for streams without mechanism edges)."""
    entries = [t for s, t in graph.mechanisms if graph.node_map[s].kind == "data"]
    if entries:
        return list(dict.fromkeys(entries))
    reps = [n.id for n in graph.nodes_of_kind("representation")]
    return reps[:1] or [n.id for n in graph.nodes_of_kind("output")]


def to_networkx(graph: S.Graph) -> nx.DiGraph:
    """The twin-network expansion of ``graph`` as a networkx DiGraph.

    Node attribute ``kind``: ``data``, ``representation``, ``output``, ``parameters`` or
    ``intervention``; model nodes carry ``model_node`` and ``stream``. Edge attribute ``kind``:
    ``mechanism``, ``derivation`` or ``intervention`` (with ``edge`` id and ``effect``). A forget
    stream that the graph never feeds to the model is added with the model's mechanisms
    (``implicit=True``): the model is applied to forget data whether or not the objective says so.
    The expansion of a stream that no term runs the model on (see :func:`inert_mechanisms`) is
    drawn with ``inert=True`` on its model nodes and mechanism edges.
    """
    g = nx.DiGraph(name=graph.name)
    data = [n for n in graph.nodes if n.kind == "data"]
    if not any(n.split == "forget" for n in data):
        data.append(S.Node("forget", "data", split="forget"))
        g.add_node("forget", kind="data", split="forget", implicit=True)
    for n in data:
        g.add_node(
            n.id,
            kind="data",
            split=n.split,
            derived=n.is_derived,
            implicit=g.nodes.get(n.id, {}).get("implicit", False),
        )
        if n.derived_from:
            g.add_edge(n.derived_from, n.id, kind="derivation")
    for n in graph.nodes:
        if n.kind == "parameters":
            g.add_node(n.id, kind="parameters")
    model_edges = [(s, t) for s, t in graph.mechanisms if graph.node_map[s].kind != "data"]
    fed = {s for s, _ in graph.mechanisms if graph.node_map[s].kind == "data"}
    live = live_streams(graph)
    for n in data:
        targets = [t for s, t in graph.mechanisms if s == n.id]
        if not targets and n.split == "forget" and n.id not in fed:
            targets = _entry_nodes(graph)
            g.nodes[n.id]["implicit"] = True
        if not targets:
            continue
        inert = n.id not in live and n.id in graph.node_map
        for t in targets:
            g.add_node(
                expanded(t, n.id),
                kind=graph.node_map[t].kind,
                model_node=t,
                stream=n.id,
                inert=inert,
            )
            g.add_edge(n.id, expanded(t, n.id), kind="mechanism", inert=inert)
        # Model-internal mechanisms, expanded for this stream (all downstream model nodes).
        for s, t in model_edges:
            for x in (s, t):
                g.add_node(
                    expanded(x, n.id),
                    kind=graph.node_map[x].kind,
                    model_node=x,
                    stream=n.id,
                    inert=inert,
                )
            g.add_edge(expanded(s, n.id), expanded(t, n.id), kind="mechanism", inert=inert)
    for e in graph.interventions:
        effect = classify(graph, e)
        target = e.target if e.data is None else expanded(e.target, e.data)
        if target not in g:
            g.add_node(
                target, kind=graph.node_map[e.target].kind, model_node=e.target, stream=e.data
            )
        node = f"do:{e.id}"
        g.add_node(node, kind="intervention", edge=e.id, effect=effect, stage=e.stage)
        if e.reference is not None and e.reference.stream is not None:
            g.add_edge(e.reference.stream, node, kind="intervention", edge=e.id, effect=effect)
        g.add_edge(node, target, kind="intervention", edge=e.id, effect=effect)
    return g


def cut_targets(graph: S.Graph) -> list[str]:
    """Expanded model nodes that the objective intervenes on (``do``), in edge order."""
    return list(
        dict.fromkeys(
            expanded(e.target, cast(str, e.data))  # a cut acts on a stream
            for e in graph.interventions
            if classify(graph, e) == "cut"
        )
    )


def to_pgmpy(graph: S.Graph, intervened: bool = False) -> Any:
    """The twin-network expansion as a ``pgmpy.base.DAG``.

    Args:
        graph: The graph.
        intervened: Apply pgmpy's ``do`` to every cut target and to every cutting ``do:`` node
            (removing their incoming edges), then reconnect the cutting intervention nodes to
            their targets: the graph the objective trains towards.
    """
    from pgmpy.base import DAG  # lazy: pgmpy imports torch and pandas

    nxg = to_networkx(graph)
    dag = DAG()
    dag.add_nodes_from(nxg.nodes)
    dag.add_edges_from(nxg.edges)
    if not intervened:
        return dag
    targets = cut_targets(graph)
    if not targets:
        return dag
    # A cutting edge sets its target to a value that, by the rule of ``classify``, carries no
    # information specific to the rows of its stream: its ``do:`` node is exogenous too, so a
    # reference computed from forget rows (a random teacher on forget, labels redrawn from forget
    # rows) does not reopen the path it cuts.
    cutters = [n for n, a in nxg.nodes(data=True) if a.get("effect") == "cut"]
    dag = dag.do(targets + cutters)
    for node in targets:
        for src, _, attrs in nxg.in_edges(node, data=True):
            if attrs.get("kind") == "intervention" and nxg.nodes[src].get("effect") == "cut":
                dag.add_edge(src, node)
    return dag


@dataclass(frozen=True)
class CausalReport:
    """Result of :func:`causal_check`.

    Attributes:
        effects: Edge id → ``cut`` / ``preserve`` / ``ascend`` / ``penalty``.
        intervened: Expanded nodes set by ``do`` (e.g. ``Z[forget]``).
        open_forget_paths: Directed paths from forget data to an output that stay open.
        retain_streams: Retain stream → whether it keeps an open path to an output *and* a
            preserving edge on it.
        forget_cut: No forget data node is d-connected to any output node after the do.
        retain_preserved: Every retain stream fed to the model is preserved (False if none).
        inert_mechanisms: Declared mechanism edges from streams no term runs the model on
            (:func:`inert_mechanisms`): left out of the paths above.
        notes: What this graph's verdict does not establish, beyond :data:`NOT_ESTABLISHED`
            (e.g. every cut is at a representation, none at an output).
    """

    effects: dict[str, str]
    intervened: tuple[str, ...]
    open_forget_paths: tuple[tuple[str, ...], ...]
    retain_streams: dict[str, bool] = field(default_factory=dict)
    forget_cut: bool = False
    retain_preserved: bool = False
    inert_mechanisms: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Forget paths all cut and retain paths preserved."""
        return self.forget_cut and self.retain_preserved

    def summary(self) -> str:
        """A few human-readable lines: the verdict, then what it does and does not establish."""
        lines = [f"forget paths cut: {'yes' if self.forget_cut else 'NO'}"]
        lines += [f"  open: {' → '.join(p)}" for p in self.open_forget_paths]
        lines.append(f"retain preserved: {'yes' if self.retain_preserved else 'NO'}")
        lines += [
            f"  {s}: {'preserved' if ok else 'not preserved'}"
            for s, ok in self.retain_streams.items()
        ]
        lines += [f"  do({n})" for n in self.intervened]
        if self.inert_mechanisms:
            lines.append("inert (no term runs the model on these rows; they open no path):")
            lines += [f"  mechanism {s} → {t}" for s, t in self.inert_mechanisms]
        lines.append(f"{'establishes' if self.ok else 'a pass would establish'}: {ESTABLISHES}")
        lines.append("does not establish:")
        lines += [f"  - {note}" for note in (*self.notes, *NOT_ESTABLISHED)]
        return "\n".join(lines)


#: What a passing check says, in words (the last lines of :meth:`CausalReport.summary`).
ESTABLISHES = (
    "the objective's terms set every forget → output path of the graph by do() (no forget data"
    " stays d-connected to an output) and tie each retain stream to its own factual value"
)
#: What no verdict of the check says.
NOT_ESTABLISHED = (
    "that the trained model forgets: the check reads which terms exist, not their weights,"
    " learning rates, epochs or the modules a stage trains; measure forgetting with the metrics"
    " (forget accuracy, membership inference, gap to the retrain oracle)",
    "anything about the frozen original, which was itself trained on the forget set",
)


def causal_check(graph: S.Graph) -> CausalReport:
    """Check that the objective cuts every forget → output path and preserves retain paths.

    Uses pgmpy's ``do`` and ``is_dconnected`` on the intervened twin network, and networkx's
    ``all_simple_paths`` to list the open paths. See the module docstring for what it means.
    """
    nxg = to_networkx(graph)
    dag = to_pgmpy(graph, intervened=True)
    # An inert expansion (a stream no term runs the model on) opens no path.
    dag.remove_nodes_from([n for n, a in nxg.nodes(data=True) if a.get("inert")])
    dnx = nx.DiGraph(dag.edges())
    dnx.add_nodes_from(dag.nodes())
    outputs = [
        n
        for n, a in nxg.nodes(data=True)
        if a.get("kind") == "output" and a.get("stream") and not a.get("inert")
    ]
    forget_nodes = [
        n for n, a in nxg.nodes(data=True) if a.get("kind") == "data" and _forget(graph, nxg, n)
    ]
    open_paths = []
    dconnected = False
    for f in forget_nodes:
        for y in outputs:
            if dag.is_dconnected(f, y):
                dconnected = True
            open_paths += [tuple(p) for p in nx.all_simple_paths(dnx, f, y)]
    effects = {e.id: classify(graph, e) for e in graph.interventions}
    retain = {}
    for n in graph.nodes:
        if n.kind != "data" or n.is_derived or n.split not in ("retain", "train"):
            continue
        stream_outputs = [y for y in outputs if nxg.nodes[y]["stream"] == n.id]
        if not stream_outputs:
            continue
        path_open = any(nx.has_path(dnx, n.id, y) for y in stream_outputs)
        kept = any(effects[e.id] == "preserve" and e.data == n.id for e in graph.interventions)
        retain[n.id] = path_open and kept
    forget_cut = not dconnected and not open_paths
    return CausalReport(
        effects=effects,
        intervened=tuple(cut_targets(graph)),
        open_forget_paths=tuple(open_paths),
        retain_streams=retain,
        forget_cut=forget_cut,
        retain_preserved=bool(retain) and all(retain.values()),
        inert_mechanisms=inert_mechanisms(graph),
        notes=_notes(graph, effects, forget_cut),
    )


def _notes(graph: S.Graph, effects: dict[str, str], forget_cut: bool) -> tuple[str, ...]:
    """What this graph's verdict in particular leaves open."""
    notes = []
    forget_terms = [
        e for e in graph.interventions if e.data is not None and _is_forget_stream(graph, e.data)
    ]
    on_output = [e for e in forget_terms if graph.node_map[e.target].kind == "output"]
    if forget_cut and forget_terms and not on_output:
        cuts = sorted({f"{e.target}[{e.data}]" for e in forget_terms if effects[e.id] == "cut"})
        notes.append(
            f"that predictions on forget rows change: every cut is at a representation"
            f" ({', '.join(cuts)}) and no term acts on an output of forget data, so the output"
            f" may keep predicting the forget labels (representation-only CaMU passes this check"
            f" and barely forgets)"
        )
    return tuple(notes)


def _forget(graph: S.Graph, nxg: nx.DiGraph, name: str) -> bool:
    if name not in graph.node_map:
        return nxg.nodes[name].get("split") == "forget"
    return _is_forget_stream(graph, name)
