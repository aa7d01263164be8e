"""Semantic checks of a graph: references, node kinds, cycles, stages, alignment, presets.

Every check appends to one :class:`~causalunlearn.graph.parse.Collector`, so a user sees every
problem at once. Cycle detection uses networkx (``find_cycle``), not hand-written search. Types,
allowed values and number bounds come from the field table (:mod:`causalunlearn.graph.schema`).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, cast

import networkx as nx

from causalunlearn.errors import did_you_mean
from causalunlearn.graph import schema
from causalunlearn.graph import spec as S
from causalunlearn.graph.schema import Issue

# Which node kinds a mechanism edge may join (model structure: data → Z → Ŷ).
_MECHANISM_KINDS = {
    ("data", "representation"),
    ("data", "output"),
    ("representation", "representation"),
    ("representation", "output"),
}


def check_graph(graph: S.Graph) -> None:
    """Validate a constructed graph; raise GraphError with every problem found.

    Args:
        graph: The graph to check.

    Raises:
        GraphError: When any problem is found.
    """
    from causalunlearn.graph.parse import Collector

    c = Collector(graph.provenance.base if graph.provenance else None)
    # A graph built in Python skips the parser's type and value checks: redo them here (a
    # loaded graph passes them by construction), and stop before checks that assume them.
    _check_values(c, graph)
    c.raise_if_any()
    semantic_problems(
        c,
        name=graph.name,
        summary=graph.summary,
        citation=graph.citation,
        nodes=graph.nodes,
        mechanisms=graph.mechanisms,
        interventions=graph.interventions,
        stages=graph.stages,
        schedule=graph.schedule,
        presets=graph.presets,
        format=graph.format,
    )
    c.raise_if_any()


def _check_values(c, graph: S.Graph) -> None:
    """Check field types and allowed values of every spec object, as the YAML reader does."""
    if graph.format != S.FORMAT:
        c.add("unsupported-format", ("format",), f"format '{graph.format}' is not supported")
    _visit(c, graph, ())


def _visit(c, obj: Any, path: tuple[str, ...]) -> None:
    """Check the fields of one spec object by the table, then the objects it holds."""
    from causalunlearn.graph.parse import value_problem

    table = schema.fields_of(type(obj))
    inner: list[tuple[Any, tuple[str, ...]]] = []
    for f in fields(obj):
        if f.name not in table:
            continue
        spec, value, where = table[f.name], getattr(obj, f.name), (*path, f.name)
        if value is None:
            if not spec.optional:  # a missing value is not one of the allowed ones either
                what = "choice" if spec.allowed is not None else "empty"
                value_problem(c, where, f.name, value, Issue(what, spec))
        elif spec.kind in (str, int, float, bool):
            issue = spec.convert(value)[1]
            if issue is not None:
                value_problem(c, where, f.name, value, issue)
        elif spec.kind in (schema.NAMES, schema.ITEMS):
            if not isinstance(value, tuple):
                c.add("wrong-type", where, f"expected a tuple, got {type(value).__name__}")
                continue
            for i, item in enumerate(value):
                if isinstance(item, S.DoOp):
                    _check_do(c, item, (*where, str(i)))
                elif is_dataclass(item):
                    inner.append((item, (*where, getattr(item, "id", None) or str(i))))
        elif not isinstance(value, spec.kind):
            c.add("wrong-type", where, f"expected {spec.type_name()}, got {type(value).__name__}")
        else:
            inner.append((value, where))
    for item, where in inner:
        if type(item) in schema.TABLE:
            _visit(c, item, where)


def _check_do(c, op: S.DoOp, path: tuple[str, ...]) -> None:
    from causalunlearn.graph.parse import value_problem

    if not isinstance(op.op, str) or op.op not in S.DO_OPS:
        c.add("unknown-op", path, f"unknown do-operation '{op.op}'", did_you_mean(op.op, S.DO_OPS))
        return
    spec = schema.do_fields(op.op)
    for name, value in op.params:
        if name not in spec:
            c.add(
                "unknown-field", (*path, name), f"unknown field '{name}'", did_you_mean(name, spec)
            )
            continue
        issue = spec[name].convert(value)[1]
        if issue is not None:
            value_problem(c, (*path, name), name, value, issue)


def _check_bounds(c, obj: Any, path: tuple[str, ...]) -> None:
    """Report every number of a spec object outside its bounds in the table (``lr > 0``)."""
    from causalunlearn.graph.parse import value_problem

    for name, spec in schema.fields_of(type(obj)).items():
        value = getattr(obj, name)
        if (issue := spec.bound_issue(value)) is not None:
            value_problem(c, (*path, name), name, value, issue)


def _unique(c, items, section: str) -> None:
    seen = set()
    for item in items:
        if item.id in seen:
            c.add("duplicate-id", (section, item.id), f"two {section} share the id '{item.id}'")
        seen.add(item.id)


def _ref(c, nodes, name, path, kinds=("data",), what="node") -> bool:
    """Check that ``name`` names a node of one of ``kinds``; return whether it does."""
    if name is None:
        return False
    if name not in nodes:
        if not c.is_unbuilt("nodes", name):
            c.add("unknown-node", path, f"unknown {what} '{name}'", did_you_mean(name, nodes))
        return False
    if nodes[name].kind not in kinds:
        c.add(
            "wrong-node-kind",
            path,
            f"'{name}' is a {nodes[name].kind} node; expected {' or '.join(kinds)}",
        )
        return False
    return True


def _aligned_root(nodes: dict[str, S.Node], name: str) -> str:
    """Follow ``derived_from`` links without pairing: rows stay aligned with the source's rows."""
    seen = set()
    while name in nodes and nodes[name].is_derived and nodes[name].paired_with is None:
        if name in seen:
            break
        seen.add(name)
        name = cast(str, nodes[name].derived_from)  # a derived node names its source
    return name


def row_group(nodes: dict[str, S.Node], name: str) -> str:
    """The stream whose batches carry ``name``'s rows (paired nodes travel with their partner)."""
    seen = set()
    while name in nodes and name not in seen:
        seen.add(name)
        node = nodes[name]
        if node.paired_with is not None:
            name = node.paired_with
        elif node.is_derived:
            name = cast(str, node.derived_from)
        else:
            break
    return name


def _pairable(nodes: dict[str, S.Node], a: str, b: str) -> bool:
    """Whether two streams may be aligned row by row through the run's seeded pairing."""
    if row_group(nodes, a) == row_group(nodes, b):
        return True
    na, nb = nodes[_aligned_root(nodes, a)], nodes[_aligned_root(nodes, b)]
    sizes = {(n.split, n.sample) for n in (na, nb)}
    return ("forget", "all") in sizes and any(s[1] == "same_size_as_forget" for s in sizes)


def _check_nodes(c, nodes: dict[str, S.Node]) -> None:
    for n in nodes.values():
        path = ("nodes", n.id)
        if n.kind != "data":
            if n.kind == "representation" and not n.layer:
                c.add("missing-field", path, "a representation node names its layer")
            continue
        if n.split is None and n.derived_from is None:
            c.add(
                "derived-without-source",
                path,
                f"data node '{n.id}' has neither a split nor a 'derived_from' source",
                "give it 'split: forget|retain|test|train' or 'derived_from: <data node>'",
            )
        if n.split is not None and n.derived_from is not None:
            c.add("conflicting-fields", path, "a data node has a split or a source, not both")
        if n.do and n.derived_from is None and n.split is not None:  # else reported above
            c.add("conflicting-fields", (*path, "do"), "do-operations need 'derived_from'")
        if n.derived_from is not None and not n.do and not c.is_unbuilt("do", n.id):
            c.add("missing-field", path, f"derived node '{n.id}' has no 'do' operations")
        _ref(c, nodes, n.derived_from, (*path, "derived_from"), what="source node")
        _ref(c, nodes, n.paired_with, (*path, "paired_with"), what="paired node")
        _check_bounds(c, n, path)
        for i, op in enumerate(n.do):
            if op.op == "relabel" and op.get("avoid") == "paired_label" and n.paired_with is None:
                c.add(
                    "missing-field",
                    (*path, "do", str(i)),
                    "relabel with avoid: paired_label needs 'paired_with' on the node",
                )
            if (
                op.op == "add_noise"
                and op.get("dist") == "uniform"
                and op.get("low") >= op.get("high")
            ):
                c.add("bad-value", (*path, "do", str(i)), "uniform noise needs low < high")


def _check_mechanisms(c, nodes, mechanisms) -> None:
    dag = nx.DiGraph()
    for i, (src, dst) in enumerate(mechanisms):
        path = ("mechanisms", str(i))
        ok = True
        for name in (src, dst):
            if name not in nodes:
                if not c.is_unbuilt("nodes", name):
                    c.add("unknown-node", path, f"unknown node '{name}'", did_you_mean(name, nodes))
                ok = False
        if ok and (nodes[src].kind, nodes[dst].kind) not in _MECHANISM_KINDS:
            c.add(
                "wrong-node-kind",
                path,
                f"a mechanism edge cannot go from a {nodes[src].kind} node"
                f" to a {nodes[dst].kind} node",
                "mechanisms describe the model: data → representation → output",
            )
        dag.add_edge(src, dst)
    for n in nodes.values():
        if n.kind == "data" and n.derived_from in nodes:
            dag.add_edge(n.derived_from, n.id)
    try:
        cycle = nx.find_cycle(dag)
    except nx.NetworkXNoCycle:
        return
    names = [u for u, _ in cycle] + [cycle[0][0]]
    c.add(
        "cycle",
        ("mechanisms",),
        "the graph has a cycle: " + " → ".join(names),
        "a causal graph must be acyclic; remove one edge of the cycle",
    )


def _check_intervention(c, nodes, stages, e: S.Intervention) -> None:
    path = ("interventions", e.id)
    if e.stage not in stages and not c.is_unbuilt("stages", e.stage):
        c.add(
            "unknown-stage",
            (*path, "stage"),
            f"unknown stage '{e.stage}'",
            did_you_mean(e.stage, stages),
        )
    kinds = ("representation", "output", "parameters")
    target_ok = _ref(c, nodes, e.target, (*path, "target"), kinds, "target node")
    target_kind = nodes[e.target].kind if target_ok else None
    if e.data is not None:
        _ref(c, nodes, e.data, (*path, "data"), what="data node")
    elif target_kind in ("representation", "output"):
        c.add("missing-field", path, f"edge '{e.id}' targets a model node but names no data stream")
    _check_bounds(c, e, path)
    if e.maximise and e.weight < 0:
        # The two signs cancel: the term descends, while the check and the diagram, reading
        # either sign as ascent, would call it "ascend".
        c.add(
            "conflicting-ascent",
            (*path, "maximise"),
            f"edge '{e.id}' has a negative weight ({e.weight:g}) and maximise: true; the two"
            " signs cancel and the term would descend",
            f"to ascend, write 'weight: {-e.weight:g}, maximise: true' (or 'weight: {e.weight:g}'"
            " without maximise); to descend, drop both signs",
        )
    div, ref = e.divergence, e.reference
    _check_bounds(c, div, (*path, "divergence"))
    if div.kind == "cross_entropy" and target_kind not in (None, "output"):
        c.add(
            "wrong-node-kind",
            (*path, "target"),
            f"cross-entropy needs an output node; '{e.target}' is a {target_kind} node",
            "use kl or mse for representations",
        )
    if div.kind == "l1":
        if ref is not None:
            c.add("bad-reference", (*path, "reference"), "an l1 term takes no reference")
    elif ref is None and not c.is_unbuilt("references", e.id):
        c.add("missing-field", path, f"a {div.kind} term needs a 'reference'")
    if div.kind in ("kl", "cross_entropy") and div.softmax_over == "none":
        c.add(
            "bad-value",
            (*path, "divergence", "softmax_over"),
            f"{div.kind} compares distributions; softmax_over cannot be 'none'",
            "use 'features' for representations and 'classes' for outputs",
        )
    axis_for = {"features": "representation", "classes": "output"}
    misfit = div.kind == "cross_entropy" and target_kind not in (None, "output")  # reported above
    if target_kind in axis_for.values() and div.softmax_over in axis_for and not misfit:
        if axis_for[div.softmax_over] != target_kind:
            c.add(
                "bad-value",
                (*path, "divergence", "softmax_over"),
                f"softmax over {div.softmax_over} does not fit a {target_kind} node",
                "use 'features' for representations and 'classes' for outputs",
            )
    if ref is None:
        return
    rpath = (*path, "reference")
    if ref.kind == "labels" and div.kind != "cross_entropy":
        c.add("bad-reference", rpath, f"labels are matched with cross_entropy, not {div.kind}")
    if ref.kind == "distribution" and ref.distribution is None:
        c.add("bad-reference", rpath, "name the distribution, e.g. {distribution: uniform}")
    if ref.at is not None:
        _ref(c, nodes, ref.at, (*rpath, "at"), ("representation", "output"), "reference node")
    if ref.stream is not None and _ref(c, nodes, ref.stream, rpath, what="reference stream"):
        if e.data in nodes and nodes[e.data].kind == "data":
            data = cast(str, e.data)  # a node id: it is in nodes
            same = _aligned_root(nodes, ref.stream) == _aligned_root(nodes, data)
            if ref.align == "same" and not same and row_group(nodes, ref.stream) != e.data:
                c.add(
                    "bad-alignment",
                    (*rpath, "align"),
                    f"rows of '{ref.stream}' are not rows of '{e.data}'",
                    "use align: paired (a seeded pairing of two equal-size streams)",
                )
            if ref.align == "paired" and not _pairable(nodes, data, ref.stream):
                c.add(
                    "bad-alignment",
                    (*rpath, "align"),
                    f"'{ref.stream}' cannot be paired row by row with '{e.data}'",
                    "pair streams of equal size: forget with a same_size_as_forget sample, "
                    "or a derived node with paired_with",
                )


def _check_stages(c, nodes, stages, interventions, schedule) -> None:
    used = {e.stage for e in interventions}
    for s in stages.values():
        path = ("stages", s.id)
        _check_bounds(c, s, path)
        if s.mask is not None:
            _ref(c, nodes, s.mask.data, (*path, "mask", "data"), what="data node")
            _check_bounds(c, s.mask, (*path, "mask"))
        for name in s.zip or ():
            _ref(c, nodes, name, (*path, "zip"), what="data node")
        # With no edges at all, "empty-graph" already says it.
        if interventions and s.id not in used and not c.is_unbuilt("stage-users", s.id):
            c.add(
                "stage-without-terms",
                path,
                f"stage '{s.id}' has no intervention edges",
                f"remove the stage or give an edge 'stage: {s.id}'",
            )
        if s.id not in schedule.order and schedule.order:  # an empty order is reported below
            c.add("stage-not-scheduled", path, f"stage '{s.id}' is not in schedule.order")
    spath = ("schedule",)
    if c.is_unbuilt("schedule"):
        return
    if not schedule.order:
        c.add("missing-field", spath, "schedule.order lists the stages to run")
    for name in schedule.order:
        if name not in stages and not c.is_unbuilt("stages", name):
            c.add(
                "unknown-stage",
                (*spath, "order"),
                f"unknown stage '{name}'",
                did_you_mean(name, stages),
            )
    if len(set(schedule.order)) != len(schedule.order):
        c.add("bad-value", (*spath, "order"), "a stage appears twice in schedule.order")
    _check_bounds(c, schedule, spath)
    for name in schedule.zip:
        _ref(c, nodes, name, (*spath, "zip"), what="data node")
    for e in interventions:
        if e.data not in nodes or e.stage not in stages:
            continue
        streams = stages[e.stage].zip or schedule.zip
        groups = {row_group(nodes, s) for s in streams if s in nodes}
        if row_group(nodes, e.data) not in groups:
            c.add(
                "stream-not-zipped",
                ("interventions", e.id, "data"),
                f"stream '{e.data}' is not iterated by stage '{e.stage}'",
                f"add '{row_group(nodes, e.data)}' to schedule.zip (or the stage's zip)",
            )


def _check_presets(c, presets, parts: dict[str, Any]) -> None:
    from causalunlearn.errors import GraphError
    from causalunlearn.graph.edit import apply_overrides_to_dict
    from causalunlearn.graph.parse import graph_from_dict

    if not presets:
        return
    plain = _parts_to_dict({**parts, "presets": ()})
    for name, overrides in presets:
        try:
            graph_from_dict(apply_overrides_to_dict(plain, dict(overrides)))
        except GraphError as err:
            for p in err.problems:
                c.add(p.code, ("presets", name), p.message, p.hint)


def _parts_to_dict(parts: dict[str, Any]) -> dict[str, Any]:
    from causalunlearn.graph.parse import graph_to_dict

    graph = object.__new__(S.Graph)
    for key, value in parts.items():
        object.__setattr__(graph, key, value)
    object.__setattr__(graph, "provenance", None)
    return graph_to_dict(graph, full=True)


def semantic_problems(c, **parts: Any) -> None:
    """Append every semantic problem of a graph's parts to collector ``c``.

    Args:
        c: The problem collector.
        **parts: The fields of a :class:`Graph` (``nodes``, ``interventions``, ...).
    """
    from causalunlearn.graph.parse import MAX_ID_LENGTH, id_too_long

    nodes_list, interventions = parts["nodes"], parts["interventions"]
    stages_list, schedule = parts["stages"], parts["schedule"]
    # Ids past the limit (a graph built in Python; the reader reports and drops them) are
    # reported alone: every later check would echo them.
    long_ids = [
        (section, str(name))
        for section, names in (
            ("nodes", [n.id for n in nodes_list]),
            ("interventions", [e.id for e in interventions]),
            ("stages", [s.id for s in stages_list]),
            ("presets", [name for name, _ in parts["presets"]]),
        )
        for name in names
        if len(str(name)) > MAX_ID_LENGTH
    ]
    for section, name in long_ids:
        id_too_long(c, section, name)
    if long_ids:
        return
    if (not nodes_list and not c.unbuilt.get("nodes")) or (
        not interventions and not c.unbuilt.get("interventions")
    ):
        c.add(
            "empty-graph",
            (),
            "the graph has no " + ("nodes" if not nodes_list else "intervention edges"),
            "an objective needs at least one intervention edge; see graphs/camu.yaml",
        )
    for items, section in (
        (nodes_list, "nodes"),
        (interventions, "interventions"),
        (stages_list, "stages"),
    ):
        _unique(c, items, section)
    nodes = {n.id: n for n in nodes_list}
    stages = {s.id: s for s in stages_list}
    _check_nodes(c, nodes)
    _check_mechanisms(c, nodes, parts["mechanisms"])
    for e in interventions:
        _check_intervention(c, nodes, stages, e)
    _check_stages(c, nodes, stages, interventions, schedule)
    if not c.problems:
        _check_presets(c, parts["presets"], parts)
