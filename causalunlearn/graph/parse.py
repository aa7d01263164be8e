"""Plain data (the YAML form) ↔ :class:`~causalunlearn.graph.spec.Graph`.

:func:`graph_from_dict` reads every field with its type, collects *every* problem (unknown fields
with a did-you-mean hint, wrong types, bad values, then the semantic checks of
:mod:`causalunlearn.graph.validate`) and raises one :class:`~causalunlearn.errors.GraphError`.
:func:`graph_to_dict` is its inverse: ``graph_from_dict(graph_to_dict(g)) == g``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any

from causalunlearn.errors import GraphError, Problem, did_you_mean, shown
from causalunlearn.graph import spec as S

Path = tuple[str, ...]

TOP_FIELDS = (
    "format",
    "name",
    "summary",
    "citation",
    "nodes",
    "mechanisms",
    "interventions",
    "stages",
    "schedule",
    "presets",
)
NODE_FIELDS = {
    "data": ("kind", "split", "sample", "repeat", "derived_from", "paired_with", "do"),
    "representation": ("kind", "layer"),
    "output": ("kind",),
    "parameters": ("kind",),
}
REFERENCE_FIELDS = (*S.REFERENCE_KINDS, "align", "at", "seed")
_MISSING = object()


class Collector:
    """Collects problems with locations (dotted paths, with YAML line numbers when known)."""

    def __init__(self, source: str | None = None, lines: Mapping[Path, int] | None = None):
        self.source = source
        self.from_file = lines is not None  # name the file even where no line is known
        self.lines = lines or {}
        self.problems: list[Problem] = []
        #: Entries declared in the source that could not be built, by section (``"*"``: the
        #: whole section was unreadable). The semantic checks stay silent about them, so one
        #: mistake is reported once, not again at every place that names the entry.
        self.unbuilt: dict[str, set[str]] = {}

    def mark_unbuilt(self, section: str, name: str = "*") -> None:
        """Record that entry ``name`` of ``section`` was declared but could not be built."""
        self.unbuilt.setdefault(section, set()).add(name)

    def is_unbuilt(self, section: str, name: str = "*") -> bool:
        """Whether ``name`` (or the whole ``section``) was declared but could not be built."""
        ids = self.unbuilt.get(section, set())
        return "*" in ids or name in ids

    def where(self, path: Path) -> str:
        """Dotted path plus ``(file:line)`` when the YAML position is known."""
        text = ".".join(path) or "<graph>"
        probe = tuple(path)
        while probe and probe not in self.lines:
            probe = probe[:-1]
        if probe in self.lines:
            text += f" ({self.source or 'line'}:{self.lines[probe]})"
        elif self.from_file and self.source:
            text += f" ({self.source})"
        return text

    def add(self, code: str, path: Path, message: str, hint: str = "") -> None:
        """Record one problem."""
        self.problems.append(Problem(code, self.where(path), message, hint))

    def raise_if_any(self) -> None:
        """Raise a GraphError holding every recorded problem, if there is one."""
        if self.problems:
            raise GraphError(self.problems, self.source)


def _mapping(c: Collector, value: Any, path: Path, allowed: tuple[str, ...], required=()) -> dict:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        c.add("wrong-type", path, f"expected a mapping, got {type(value).__name__}")
        return {}
    for key in value:
        if key not in allowed:
            c.add(
                "unknown-field",
                (*path, str(key)),
                f"unknown field {shown(key)}",
                did_you_mean(key, allowed),
            )
    for key in required:
        if key not in value:
            c.add("missing-field", path, f"missing required field '{key}'")
    return dict(value)


def _get(
    c: Collector,
    m: Mapping,
    key: str,
    path: Path,
    kind: type,
    default: Any = _MISSING,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """Read ``m[key]`` as ``kind`` (float accepts int; bool is never a number)."""
    if key not in m or m[key] is None:
        if default is _MISSING:
            return None
        return default
    value = m[key]
    where = (*path, key)
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        c.add(
            "wrong-type",
            where,
            f"expected {kind.__name__}, got {type(value).__name__} {shown(value)}",
            "write numbers without quotes, e.g. 1.0e-3" if kind in (int, float) else "",
        )
        return default if default is not _MISSING else None
    if kind is float and not math.isfinite(value):
        c.add("non-finite", where, f"{key} must be a finite number, got {value}")
        return default if default is not _MISSING else None
    if choices is not None and value not in choices:
        c.add(
            "bad-value", where, f"{shown(value)} is not a valid {key}", did_you_mean(value, choices)
        )
        return default if default is not _MISSING else None
    return value


def _str_list(c: Collector, m: Mapping, key: str, path: Path) -> tuple[str, ...] | None:
    if key not in m or m[key] is None:
        return None
    value = m[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        c.add("wrong-type", (*path, key), f"expected a list of names, got {shown(value)}")
        return None
    return tuple(value)


def _parse_do(c: Collector, raw: Any, path: Path) -> S.DoOp | None:
    if not isinstance(raw, Mapping) or "op" not in raw:
        c.add("wrong-type", path, "a do-operation is a mapping with an 'op' field")
        return None
    op = raw["op"]
    if op not in S.DO_OPS:
        c.add(
            "unknown-op",
            (*path, "op"),
            f"unknown do-operation {shown(op)}",
            did_you_mean(op, S.DO_OPS),
        )
        return None
    params_spec = S.DO_OPS[op]
    m = _mapping(c, raw, path, ("op", *params_spec))
    params = {}
    for name, (kind, default, choices) in params_spec.items():
        params[name] = _get(c, m, name, path, kind, default, choices)
    return S.DoOp(op, tuple(sorted(params.items())))


def _parse_node(c: Collector, node_id: str, raw: Any, path: Path) -> S.Node | None:
    if not isinstance(raw, Mapping):
        c.add("wrong-type", path, f"node {shown(node_id)} must be a mapping with a 'kind'")
        c.mark_unbuilt("nodes", node_id)
        return None
    kind = _get(c, raw, "kind", path, str, None, S.NODE_KINDS)
    if kind is None:
        c.mark_unbuilt("nodes", node_id)
        if "kind" not in raw:
            c.add(
                "missing-field",
                path,
                "missing required field 'kind'",
                "kinds: " + ", ".join(S.NODE_KINDS),
            )
        return None
    m = _mapping(c, raw, path, NODE_FIELDS[kind])
    if kind != "data":
        layer = (
            _get(c, m, "layer", path, str, "representation") if kind == "representation" else None
        )
        return S.Node(node_id, kind, layer=layer)
    do_raw = m.get("do") or []
    if not isinstance(do_raw, list):
        c.add("wrong-type", (*path, "do"), "'do' must be a list of operations")
        do_raw = []
        c.mark_unbuilt("do", node_id)
    ops = tuple(op for i, r in enumerate(do_raw) if (op := _parse_do(c, r, (*path, "do", str(i)))))
    if len(ops) != len(do_raw):
        c.mark_unbuilt("do", node_id)
    return S.Node(
        node_id,
        "data",
        split=_get(c, m, "split", path, str, None, S.SPLITS),
        sample=_get(c, m, "sample", path, str, "all", S.SAMPLES),
        repeat=_get(c, m, "repeat", path, int, 1),
        derived_from=_get(c, m, "derived_from", path, str, None),
        paired_with=_get(c, m, "paired_with", path, str, None),
        do=ops,
    )


def _parse_reference(c: Collector, raw: Any, path: Path) -> S.Reference | None:
    if raw is None:
        return None
    c.mark_unbuilt("references", path[1])  # cleared below once the reference is built
    if not isinstance(raw, Mapping):
        c.add(
            "wrong-type",
            path,
            f"a reference is a mapping, got {type(raw).__name__} {shown(raw)}",
            "e.g. {original: retain_sample} or {labels: counterfactual, align: paired}",
        )
        return None
    m = _mapping(c, raw, path, REFERENCE_FIELDS)
    kinds = [k for k in S.REFERENCE_KINDS if k in m]
    if len(kinds) != 1:
        c.add(
            "bad-reference",
            path,
            "a reference names exactly one of: " + ", ".join(S.REFERENCE_KINDS),
            "e.g. {original: retain_sample} or {labels: counterfactual, align: paired}",
        )
        return None
    kind = kinds[0]
    if kind == "distribution":
        dist = _get(c, m, kind, path, str, None, S.DISTRIBUTIONS)
        stream = None
    else:
        dist, stream = None, _get(c, m, kind, path, str, None)
    c.unbuilt["references"].discard(path[1])
    return S.Reference(
        kind,
        stream=stream,
        distribution=dist,
        align=_get(c, m, "align", path, str, "same", S.ALIGNS),
        at=_get(c, m, "at", path, str, None),
        seed=_get(c, m, "seed", path, int, 0),
    )


def default_softmax_axis(divergence_kind: str, target_kind: str | None) -> str:
    """The softmax axis used when a divergence does not name one."""
    if divergence_kind == "kl":
        return "features" if target_kind == "representation" else "classes"
    if divergence_kind == "cross_entropy":
        return "classes"
    return "none"


def _parse_intervention(c: Collector, edge_id: str, raw: Any, path: Path, node_kinds) -> Any:
    edge = _build_intervention(c, edge_id, raw, path, node_kinds)
    if edge is None:
        c.mark_unbuilt("interventions", edge_id)
        stage = raw.get("stage") if isinstance(raw, Mapping) else None
        c.mark_unbuilt("stage-users", stage if isinstance(stage, str) else "*")
    return edge


def _build_intervention(c: Collector, edge_id: str, raw: Any, path: Path, node_kinds) -> Any:
    if not isinstance(raw, Mapping):
        c.add("wrong-type", path, f"intervention edge {shown(edge_id)} must be a mapping")
        return None
    m = _mapping(
        c,
        raw,
        path,
        tuple(f for f in S.field_names(S.Intervention) if f != "id"),
        required=("stage", "target", "divergence"),
    )
    target = _get(c, m, "target", path, str, None)
    dm = _mapping(
        c, m.get("divergence"), (*path, "divergence"), S.field_names(S.Divergence), ("kind",)
    )
    dpath = (*path, "divergence")
    dkind = _get(c, dm, "kind", dpath, str, None, S.DIVERGENCE_KINDS)
    divergence = None
    if dkind is not None:
        axis = default_softmax_axis(dkind, node_kinds.get(target))
        divergence = S.Divergence(
            dkind,
            direction=_get(c, dm, "direction", dpath, str, "reference_to_model", S.DIRECTIONS),
            softmax_over=_get(c, dm, "softmax_over", dpath, str, axis, S.SOFTMAX_AXES),
            temperature=_get(c, dm, "temperature", dpath, float, 1.0),
            reduction=_get(c, dm, "reduction", dpath, str, "mean", S.REDUCTIONS),
        )
    values = dict(
        stage=_get(c, m, "stage", path, str, None),
        target=target,
        data=_get(c, m, "data", path, str, None),
        reference=_parse_reference(c, m.get("reference"), (*path, "reference")),
        weight=_get(c, m, "weight", path, float, 1.0),
        maximise=_get(c, m, "maximise", path, bool, False),
        note=_get(c, m, "note", path, str, ""),
    )
    if divergence is None or values["stage"] is None or target is None:
        return None
    return S.Intervention(edge_id, divergence=divergence, **values)


def _parse_stage(c: Collector, stage_id: str, raw: Any, path: Path) -> S.Stage | None:
    m = _mapping(
        c, raw, path, tuple(f for f in S.field_names(S.Stage) if f != "id"), ("optimizer", "lr")
    )
    mask = None
    if m.get("mask") is not None:
        mpath = (*path, "mask")
        mm = _mapping(c, m["mask"], mpath, S.field_names(S.Mask), ("kind", "data"))
        kind = _get(c, mm, "kind", mpath, str, None, S.MASK_KINDS)
        data = _get(c, mm, "data", mpath, str, None)
        if kind and data:
            mask = S.Mask(kind, data, _get(c, mm, "keep", mpath, float, 0.5))
    optimizer = _get(c, m, "optimizer", path, str, None, S.OPTIMIZERS)
    lr = _get(c, m, "lr", path, float, None)
    if optimizer is None or lr is None or not isinstance(raw, Mapping):
        c.mark_unbuilt("stages", stage_id)
        return None
    return S.Stage(
        stage_id,
        optimizer=optimizer,
        lr=lr,
        weight_decay=_get(c, m, "weight_decay", path, float, 0.0),
        momentum=_get(c, m, "momentum", path, float, 0.0),
        modules=_str_list(c, m, "modules", path),
        mask=mask,
        zip=_str_list(c, m, "zip", path),
        epochs=_get(c, m, "epochs", path, int, None),
    )


def _keyed(c: Collector, raw: Any, path: Path) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        c.add("wrong-type", path, f"'{path[-1]}' must be a mapping from id to definition")
        c.mark_unbuilt(path[-1])
        return {}
    return {str(k): v for k, v in raw.items()}


def graph_from_dict(
    data: Any, source: str | None = None, lines: Mapping[Path, int] | None = None
) -> S.Graph:
    """Build a validated :class:`Graph` from plain data (the YAML form).

    Args:
        data: The mapping read from YAML (or written in Python).
        source: File name used in problem locations.
        lines: Map from key path to YAML line number, for locations.

    Raises:
        GraphError: Listing every problem found.
    """
    from causalunlearn.graph.validate import semantic_problems

    c = Collector(source, lines)
    if not data:
        c.add("empty-graph", (), "the graph is empty", "start from graphs/camu.yaml")
        c.raise_if_any()
    if not isinstance(data, Mapping):
        c.add("wrong-type", (), f"a graph is a mapping of sections, got {type(data).__name__}")
        c.raise_if_any()
    top = _mapping(c, data, (), TOP_FIELDS, ("format", "name"))
    fmt = _get(c, top, "format", (), str, None)
    if fmt is not None and fmt != S.FORMAT:
        c.add(
            "unsupported-format",
            ("format",),
            f"format {shown(fmt)} is not supported",
            f"use '{S.FORMAT}'",
        )
    raw_nodes = _keyed(c, top.get("nodes"), ("nodes",))
    node_kinds = {k: v.get("kind") for k, v in raw_nodes.items() if isinstance(v, Mapping)}
    nodes = tuple(n for k, v in raw_nodes.items() if (n := _parse_node(c, k, v, ("nodes", k))))

    mechanisms = []
    raw_mech = top.get("mechanisms") or []
    if not isinstance(raw_mech, list):
        c.add("wrong-type", ("mechanisms",), "mechanisms must be a list of [source, target] pairs")
        raw_mech = []
    for i, pair in enumerate(raw_mech):
        if isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair):
            mechanisms.append((pair[0], pair[1]))
        else:
            c.add(
                "wrong-type",
                ("mechanisms", str(i)),
                f"expected [source, target], got {shown(pair)}",
            )

    interventions = tuple(
        e
        for k, v in _keyed(c, top.get("interventions"), ("interventions",)).items()
        if (e := _parse_intervention(c, k, v, ("interventions", k), node_kinds))
    )
    stages = tuple(
        s
        for k, v in _keyed(c, top.get("stages"), ("stages",)).items()
        if (s := _parse_stage(c, k, v, ("stages", k)))
    )
    if top.get("schedule") is None:
        c.add(
            "missing-field",
            (),
            "missing required field 'schedule'",
            "e.g. schedule: {order: [...]}",
        )
        c.mark_unbuilt("schedule")
    elif not isinstance(top["schedule"], Mapping):
        c.mark_unbuilt("schedule")
    # schedule.order is required; the semantic check reports it (for Python-built graphs too).
    sm = _mapping(c, top.get("schedule"), ("schedule",), S.field_names(S.Schedule))
    schedule = S.Schedule(
        order=_str_list(c, sm, "order", ("schedule",)) or (),
        epochs=_get(c, sm, "epochs", ("schedule",), int, 1),
        batch_size=_get(c, sm, "batch_size", ("schedule",), int, 32),
        zip=_str_list(c, sm, "zip", ("schedule",)) or (),
        shuffle=_get(c, sm, "shuffle", ("schedule",), bool, True),
    )
    citation = None
    if top.get("citation") is not None:
        cm = _mapping(c, top["citation"], ("citation",), S.field_names(S.Citation), ("title",))
        citation = S.Citation(
            **{k: str(v) for k, v in cm.items() if k in S.field_names(S.Citation)}
        )
    presets = []
    for name, overrides in _keyed(c, top.get("presets"), ("presets",)).items():
        if not isinstance(overrides, Mapping):
            c.add("wrong-type", ("presets", name), "a preset is a mapping of dotted.path: value")
            continue
        presets.append((name, tuple((str(k), v) for k, v in overrides.items())))

    parts = dict(
        name=_get(c, top, "name", (), str, ""),
        summary=_get(c, top, "summary", (), str, ""),
        citation=citation,
        nodes=nodes,
        mechanisms=tuple(mechanisms),
        interventions=interventions,
        stages=stages,
        schedule=schedule,
        presets=tuple(presets),
        format=fmt or S.FORMAT,
    )
    semantic_problems(c, **parts)
    c.raise_if_any()
    return S.Graph(**parts)


# ------------------------------------------------------------------------------------------------
def _plain(obj: Any, cls: type, full: bool, skip: tuple[str, ...] = ("id",)) -> dict[str, Any]:
    """A spec dataclass as a dict, leaving out fields at their default unless ``full``."""
    out = {}
    for f in fields(cls):
        if f.name in skip or f.name == "provenance":
            continue
        value = getattr(obj, f.name)
        if not full and f.default is not MISSING and value == f.default:
            continue
        if isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def _reference_to_dict(ref: S.Reference, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {ref.kind: ref.distribution if ref.kind == "distribution" else ref.stream}
    for name, default in (("align", "same"), ("at", None), ("seed", 0)):
        value = getattr(ref, name)
        if full or value != default:
            out[name] = value
    return out


def graph_to_dict(graph: S.Graph, full: bool = False) -> dict[str, Any]:
    """The YAML form of a graph; ``full`` writes every field, defaults included."""
    nodes = {}
    for n in graph.nodes:
        d = {"kind": n.kind}
        if n.kind == "representation":
            d["layer"] = n.layer
        elif n.kind == "data":
            d.update(_plain(n, S.Node, full, skip=("id", "kind", "layer", "do")))
            if n.do or full:
                d["do"] = [{"op": op.op, **dict(op.params)} for op in n.do]
        nodes[n.id] = d
    interventions = {}
    for e in graph.interventions:
        d = _plain(e, S.Intervention, full, skip=("id", "divergence", "reference"))
        d = {"stage": d.pop("stage"), "data": e.data, "target": e.target, **d}
        if e.data is None and not full:
            del d["data"]
        if e.reference is not None or full:
            d["reference"] = e.reference and _reference_to_dict(e.reference, full)
        div = _plain(e.divergence, S.Divergence, full, skip=())
        target_kind = graph.node_map[e.target].kind if e.target in graph.node_map else None
        axis = e.divergence.softmax_over
        if not full and (
            e.divergence.kind == "kl"
            or axis != default_softmax_axis(e.divergence.kind, target_kind)
        ):
            div["softmax_over"] = axis
        elif not full:
            div.pop("softmax_over", None)
        d["divergence"] = div
        interventions[e.id] = d
    stages = {}
    for s in graph.stages:
        d = _plain(s, S.Stage, full, skip=("id", "mask"))
        if s.mask is not None or full:
            d["mask"] = s.mask and _plain(s.mask, S.Mask, full, skip=())
        stages[s.id] = d
    out: dict[str, Any] = {"format": graph.format, "name": graph.name}
    if graph.summary or full:
        out["summary"] = graph.summary
    if graph.citation is not None:
        out["citation"] = _plain(graph.citation, S.Citation, full, skip=())
    out["nodes"] = nodes
    out["mechanisms"] = [list(p) for p in graph.mechanisms]
    out["interventions"] = interventions
    out["stages"] = stages
    out["schedule"] = _plain(graph.schedule, S.Schedule, full, skip=())
    if graph.presets or full:
        out["presets"] = {name: dict(ov) for name, ov in graph.presets}
    return out
