"""Plain data (the YAML form) ↔ :class:`~causalunlearn.graph.spec.Graph`.

:func:`graph_from_dict` reads every field with its type, collects *every* problem (unknown fields
with a did-you-mean hint, wrong types, bad values, then the semantic checks of
:mod:`causalunlearn.graph.validate`) and raises one :class:`~causalunlearn.errors.GraphError`.
:func:`graph_to_dict` is its inverse: ``graph_from_dict(graph_to_dict(g)) == g``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, cast

from causalunlearn.errors import GraphError, Problem, did_you_mean, shown
from causalunlearn.graph import schema
from causalunlearn.graph import spec as S
from causalunlearn.graph.schema import Field, Issue
from causalunlearn.plugins import IMPORT_HINT
from causalunlearn.registry import Registry

Path = tuple[str, ...]

_MISSING = object()
_SCALAR_KINDS = (str, int, float, bool)

#: The longest id of a node, edge, stage or preset. Ids name streams in messages, diagrams and
#: run files; the longest shipped one has 20 characters.
MAX_ID_LENGTH = 128
#: Sections whose keys are ids (checked against :data:`MAX_ID_LENGTH`).
ID_SECTIONS = ("nodes", "interventions", "stages", "presets")


def short_id(name: str) -> str:
    """``name`` cut for a message when it is longer than :data:`MAX_ID_LENGTH`."""
    if len(name) <= MAX_ID_LENGTH:
        return name
    return f"{name[:32]}…({len(name)} characters)"


def id_too_long(c: Collector, section: str, name: str) -> None:
    """Report id ``name`` of ``section`` as longer than :data:`MAX_ID_LENGTH` (``id-too-long``)."""
    c.add(
        "id-too-long",
        (section, name),
        f"an id of {len(name)} characters ({name[:32]!r}…); ids have at most {MAX_ID_LENGTH}",
        "give it a short name (letters, digits, '_' or '-'), e.g. 'forget' or 'cut_forget_y'",
    )


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
        text = ".".join(short_id(str(part)) for part in path) or "<graph>"
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


def _kind_hint(value: Any, allowed: Any) -> str:
    """Did-you-mean over the allowed names; for names users can register (divergence and
    reference kinds, do-operations), also how to load the module that registers them."""
    hint = did_you_mean(value, cast(Iterable[str], allowed))
    if isinstance(allowed, Registry):
        hint = f"{hint}; {IMPORT_HINT}" if hint else IMPORT_HINT
    return hint


def read_mapping(
    c: Collector, value: Any, path: Path, allowed: tuple[str, ...], required=()
) -> dict:
    """``value`` as a mapping with only ``allowed`` keys and every ``required`` one (problems
    go to ``c``; ``None`` reads as empty). Method entries and ``extends`` files reuse it."""
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


def value_problem(c: Collector, where: Path, key: str, value: Any, issue: Issue) -> None:
    """Report what is wrong with ``value`` of field ``key`` (the one wording for graphs read from
    YAML and graphs built in Python)."""
    f = issue.field
    if issue.what == "type":
        c.add(
            "wrong-type",
            where,
            f"expected {f.type_name()}, got {type(value).__name__} {shown(value)}",
            "write numbers without quotes, e.g. 1.0e-3" if f.kind in (int, float) else "",
        )
    elif issue.what == "non-finite":
        c.add("non-finite", where, f"{key} must be a finite number, got {value}")
    elif issue.what == "choice":
        c.add(
            "bad-value",
            where,
            f"{shown(value)} is not a valid {key}",
            _kind_hint(value, f.allowed),
        )
    elif issue.what == "bound":
        c.add("bad-value", where, f"{key} must be {f.bound_text()}, got {shown(value)}")
    else:
        c.add("bad-value", where, f"{key} may not be empty")


def _read(c: Collector, m: Mapping, key: str, path: Path, f: Field, default: Any = _MISSING) -> Any:
    """Read ``m[key]`` as field ``f`` says; a missing or null key, or a bad value (reported),
    gives ``default`` (the field's own when not given; ``None`` for a required field)."""
    fallback = f.missing_value if default is _MISSING else default
    if key not in m or m[key] is None:
        if f.required and key in m:  # a missing key is reported with the mapping's keys
            c.add("missing-field", (*path, key), f"required field '{key}' is empty")
        return fallback
    value = m[key]
    if f.kind == schema.NAMES:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            c.add("wrong-type", (*path, key), f"expected a list of names, got {shown(value)}")
            return fallback
        return tuple(value)
    value, issue = f.convert(value)
    if issue is not None:
        value_problem(c, (*path, key), key, m[key], issue)
        return fallback
    return value


def _read_fields(
    c: Collector,
    m: Mapping,
    cls: type,
    path: Path,
    names: tuple[str, ...] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every scalar and list-of-names field of ``cls`` (or those in ``names``), read from ``m``
    in the table's order; nested objects are read by their own functions."""
    out = {}
    for name, f in schema.fields_of(cls).items():
        if (names is None or name in names) and (f.kind in _SCALAR_KINDS or f.kind == schema.NAMES):
            out[name] = _read(c, m, name, path, f, (defaults or {}).get(name, _MISSING))
    return out


def get_field(
    c: Collector,
    m: Mapping,
    key: str,
    path: Path,
    kind: type,
    default: Any = _MISSING,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """Read ``m[key]`` as ``kind`` (float accepts int; bool is never a number), for mappings
    that are not in the schema table (method entries)."""
    f = Field(kind, None if default is _MISSING else default, choices=choices)
    return _read(c, m, key, path, replace(f, finite=kind is float))


def _parse_do(c: Collector, raw: Any, path: Path) -> S.DoOp | None:
    if not isinstance(raw, Mapping) or "op" not in raw:
        c.add("wrong-type", path, "a do-operation is a mapping with an 'op' field")
        return None
    op = raw["op"]
    if not isinstance(op, str) or op not in S.DO_OPS:
        c.add(
            "unknown-op",
            (*path, "op"),
            f"unknown do-operation {shown(op)}",
            _kind_hint(op, S.DO_OPS),
        )
        return None
    params_spec = schema.do_fields(op)
    m = read_mapping(c, raw, path, ("op", *params_spec))
    params = {name: _read(c, m, name, path, f) for name, f in params_spec.items()}
    return S.DoOp(op, tuple(sorted(params.items())))


def _parse_node(c: Collector, node_id: str, raw: Any, path: Path) -> S.Node | None:
    if not isinstance(raw, Mapping):
        c.add("wrong-type", path, f"node {shown(node_id)} must be a mapping with a 'kind'")
        c.mark_unbuilt("nodes", node_id)
        return None
    kind = _read(c, raw, "kind", path, schema.field(S.Node, "kind"))
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
    keys = schema.node_keys(kind)
    m = read_mapping(c, raw, path, keys)
    values = _read_fields(c, m, S.Node, path, tuple(k for k in keys if k != "kind"))
    if kind != "data":
        return S.Node(node_id, kind, **values)
    do_raw = m.get("do") or []
    if not isinstance(do_raw, list):
        c.add("wrong-type", (*path, "do"), "'do' must be a list of operations")
        do_raw = []
        c.mark_unbuilt("do", node_id)
    ops = tuple(op for i, r in enumerate(do_raw) if (op := _parse_do(c, r, (*path, "do", str(i)))))
    if len(ops) != len(do_raw):
        c.mark_unbuilt("do", node_id)
    return S.Node(node_id, "data", do=ops, **values)


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
    m = read_mapping(c, raw, path, schema.reference_keys())
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
    # The kind is the key; its value is the stream (the distribution for ``distribution``).
    value_field = "distribution" if kind == "distribution" else "stream"
    values = {value_field: _read(c, m, kind, path, schema.field(S.Reference, value_field))}
    c.unbuilt["references"].discard(path[1])
    modifiers = tuple(k for k in schema.reference_keys() if k not in S.REFERENCE_KINDS)
    return S.Reference(kind, **values, **_read_fields(c, m, S.Reference, path, modifiers))


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
    m = read_mapping(c, raw, path, schema.keys(S.Intervention), schema.required(S.Intervention))
    values = _read_fields(c, m, S.Intervention, path)
    dpath = (*path, "divergence")
    dm = read_mapping(c, m.get("divergence"), dpath, schema.keys(S.Divergence), ("kind",))
    divergence = None
    dkind = _read(c, dm, "kind", dpath, schema.field(S.Divergence, "kind"))
    if dkind is not None:
        # Without softmax_over, the target's natural axis (the same rule as Python-built graphs).
        axis = default_softmax_axis(dkind, node_kinds.get(values["target"]))
        names = tuple(k for k in schema.keys(S.Divergence) if k != "kind")
        rest = _read_fields(c, dm, S.Divergence, dpath, names, {"softmax_over": axis})
        divergence = S.Divergence(dkind, **rest)
    reference = _parse_reference(c, m.get("reference"), (*path, "reference"))
    if divergence is None or values["stage"] is None or values["target"] is None:
        return None
    return S.Intervention(edge_id, divergence=divergence, reference=reference, **values)


def _parse_stage(c: Collector, stage_id: str, raw: Any, path: Path) -> S.Stage | None:
    m = read_mapping(c, raw, path, schema.keys(S.Stage), schema.required(S.Stage))
    mask = None
    if m.get("mask") is not None:
        mpath = (*path, "mask")
        mm = read_mapping(c, m["mask"], mpath, schema.keys(S.Mask), schema.required(S.Mask))
        mask_values = _read_fields(c, mm, S.Mask, mpath)
        if mask_values["kind"] and mask_values["data"]:
            mask = S.Mask(**mask_values)
    values = _read_fields(c, m, S.Stage, path)
    if values["optimizer"] is None or values["lr"] is None or not isinstance(raw, Mapping):
        c.mark_unbuilt("stages", stage_id)
        return None
    return S.Stage(stage_id, mask=mask, **values)


def _keyed(c: Collector, raw: Any, path: Path) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        c.add("wrong-type", path, f"'{path[-1]}' must be a mapping from id to definition")
        c.mark_unbuilt(path[-1])
        return {}
    out = {}
    for key, value in raw.items():
        name = str(key)
        if path[-1] in ID_SECTIONS and len(name) > MAX_ID_LENGTH:
            # Reported once here; the entry is left out and everything naming it stays silent.
            id_too_long(c, path[-1], name)
            c.mark_unbuilt(path[-1], name)
            if path[-1] == "interventions":
                c.mark_unbuilt("stage-users", "*")
            continue
        out[name] = value
    return out


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
    top = read_mapping(c, data, (), schema.keys(S.Graph), schema.required(S.Graph))
    fmt = _read(c, top, "format", (), schema.field(S.Graph, "format"), None)
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
    sm = read_mapping(c, top.get("schedule"), ("schedule",), schema.keys(S.Schedule))
    schedule = S.Schedule(**_read_fields(c, sm, S.Schedule, ("schedule",)))
    citation = None
    if top.get("citation") is not None:
        keys = schema.keys(S.Citation)
        cm = read_mapping(c, top["citation"], ("citation",), keys, schema.required(S.Citation))
        # Free text: a number (an unquoted arXiv id) is read as its text. Without a title (a
        # problem reported above) there is no citation to build.
        if "title" in cm:
            citation = S.Citation(**{k: str(v) for k, v in cm.items() if k in keys})
    presets = []
    for name, overrides in _keyed(c, top.get("presets"), ("presets",)).items():
        if not isinstance(overrides, Mapping):
            c.add("wrong-type", ("presets", name), "a preset is a mapping of dotted.path: value")
            continue
        presets.append((name, tuple((str(k), v) for k, v in overrides.items())))

    parts = dict(
        name=_read(c, top, "name", (), schema.field(S.Graph, "name"), ""),
        summary=_read(c, top, "summary", (), schema.field(S.Graph, "summary")),
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
    return S.Graph.from_checked_parts(**parts)


# ------------------------------------------------------------------------------------------------
def _plain(
    obj: Any,
    cls: type,
    full: bool,
    skip: tuple[str, ...] = (),
    names: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """A spec object's format fields (or those in ``names``) as a dict, in the table's order,
    leaving out fields at their default unless ``full``."""
    out = {}
    for name, f in schema.fields_of(cls).items():
        if name in skip or (names is not None and name not in names):
            continue
        value = getattr(obj, name)
        if not full and f.default is not schema.REQUIRED and value == f.default:
            continue
        if isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def _reference_to_dict(ref: S.Reference, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {ref.kind: ref.distribution if ref.kind == "distribution" else ref.stream}
    modifiers = tuple(k for k in schema.reference_keys() if k not in S.REFERENCE_KINDS)
    out.update(_plain(ref, S.Reference, full, names=modifiers))
    return out


def graph_to_dict(graph: S.Graph, full: bool = False) -> dict[str, Any]:
    """The YAML form of a graph; ``full`` writes every field, defaults included."""
    nodes = {}
    for n in graph.nodes:
        d: dict[str, Any] = {"kind": n.kind}
        if n.kind == "representation":
            d["layer"] = n.layer  # always written: its default differs in YAML and Python
        elif n.kind == "data":
            d.update(_plain(n, S.Node, full, ("kind", "do"), schema.node_keys("data")))
            if n.do or full:
                d["do"] = [{"op": op.op, **dict(op.params)} for op in n.do]
        nodes[n.id] = d
    interventions = {}
    for e in graph.interventions:
        d = _plain(e, S.Intervention, full, skip=("divergence", "reference"))
        d = {"stage": d.pop("stage"), "data": e.data, "target": e.target, **d}
        if e.data is None and not full:
            del d["data"]
        if e.reference is not None or full:
            d["reference"] = e.reference and _reference_to_dict(e.reference, full)
        div = _plain(e.divergence, S.Divergence, full)
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
        d = _plain(s, S.Stage, full, skip=("mask",))
        if s.mask is not None or full:
            d["mask"] = s.mask and _plain(s.mask, S.Mask, full)
        stages[s.id] = d
    out: dict[str, Any] = {"format": graph.format, "name": graph.name}
    if graph.summary or full:
        out["summary"] = graph.summary
    if graph.citation is not None:
        out["citation"] = _plain(graph.citation, S.Citation, full)
    out["nodes"] = nodes
    out["mechanisms"] = [list(p) for p in graph.mechanisms]
    out["interventions"] = interventions
    out["stages"] = stages
    out["schedule"] = _plain(graph.schedule, S.Schedule, full)
    if graph.presets or full:
        out["presets"] = {name: dict(ov) for name, ov in graph.presets}
    return out
