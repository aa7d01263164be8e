"""Scene building for :mod:`causalunlearn.graph.render`: elements, labels and diff annotations.

Split from ``render.py`` to keep modules small; see that module for the visual grammar.
"""

from __future__ import annotations

import hashlib
import html
import re
import textwrap
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, cast

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.graph import spec as S
from causalunlearn.graph.causal import classify, expanded
from causalunlearn.graph.edit import Change

#: Colour of an intervention edge by its effect (``classify``).
EFFECT_COLOURS = {
    "cut": "#d62728",
    "preserve": "#1f77b4",
    "ascend": "#ff7f0e",
    "penalty": "#7f7f7f",
}
_EFFECT_FILLS = {"cut": "#fde0dd", "preserve": "#deebf7", "ascend": "#fee6ce", "penalty": "#eeeeee"}
_REMOVED, _ADDED, _CHANGED = "#a0a0a0", "#2ca02c", "#c00000"
_FONT = "Helvetica"
#: Output formats :func:`render` writes (``dot``/``gv`` is DOT text and needs no ``dot`` program).
FORMATS = ("svg", "png", "pdf", "dot", "gv")
_INSTALL_HINT = (
    "install Graphviz: apt-get install graphviz / brew install graphviz / "
    "conda install graphviz; or write .dot"
)


def graphviz_package() -> ModuleType:
    """The ``graphviz`` Python package, imported on first use.

    Only drawing needs it: ``import causalunlearn``, loading, checking and unlearning with a
    graph work where it is not installed (a GPU machine with a fixed image, say).

    Raises:
        CausalUnlearnError: ``graphviz-missing`` when the package cannot be imported.
    """
    try:
        import graphviz
    except ImportError:
        raise CausalUnlearnError(
            "graphviz-missing",
            "drawing a graph (DOT text, SVG, PNG, PDF) needs the graphviz Python package, which"
            " is not installed",
            "pip install graphviz (a dependency of causalunlearn; the Graphviz 'dot' program is"
            " needed too for SVG/PNG/PDF); loading, checking and unlearning need neither",
        ) from None
    return graphviz


# ------------------------------------------------------------------------------------------------
# Text helpers
def _num(x: float) -> str:
    """A compact number: ``0.5``, ``0.01``, ``4e-4``, ``1e-5``, ``1000``, ``−1`` (leading minus)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if x != 0 and abs(x) < 1e-2:
        mantissa, exponent = f"{abs(x):.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        text = f"{mantissa}e{int(exponent)}"
    else:
        text = f"{abs(x):g}"
    return ("−" if x < 0 else "") + text


def _value(v: Any) -> str:
    """A setting's value as short text (for change annotations)."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_value(x)}" for k, x in v.items() if x is not None) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def _dot_id(prefix: str, name: str) -> str:
    """A DOT node id: readable for plain names, made safe (and unique) for odd ones."""
    if re.fullmatch(r"[A-Za-z0-9_]+", name):
        return f"{prefix}_{name}"
    digest = hashlib.sha1(name.encode()).hexdigest()[:6]
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}_{digest}"


def _esc_string(text: str) -> str:
    """Text for a Graphviz escString attribute (tooltips), where ``\\N`` would mean the name."""
    return cast(str, graphviz_package().escape(text))


@dataclass
class _Line:
    """One line of an HTML-like label: ``style`` is title / text / small / change."""

    text: str
    style: str = "text"


def _html(
    lines: list[_Line], strike: bool = False, colour: str | None = None, left: bool = False
) -> str:
    """An HTML-like Graphviz label; every user string is escaped here."""
    parts = []
    for line in lines:
        # Entities for markup; a doubled backslash, since dot expands \N, \G... in labels too.
        text = html.escape(line.text, quote=True).replace("\\", "\\\\")
        if strike and line.style not in ("change", "removed", "added"):
            text = f"<S>{text}</S>"
        if line.style == "title":
            text = f"<B>{text}</B>"
        elif line.style == "small":
            text = f'<FONT POINT-SIZE="9">{text}</FONT>'
        elif line.style == "change":
            text = f'<FONT COLOR="{_CHANGED}"><B>{text}</B></FONT>'
        elif line.style == "removed":
            text = f'<FONT COLOR="{_REMOVED}"><B>{text}</B></FONT>'
        elif line.style == "added":
            text = f'<FONT COLOR="{_ADDED}"><B>{text}</B></FONT>'
        parts.append(text)
    # ``<BR ALIGN="LEFT"/>`` ends a line and left-aligns it (the title reads like a caption).
    body = '<BR ALIGN="LEFT"/>'.join([*parts, ""]) if left else "<BR/>".join(parts)
    if colour:
        body = f'<FONT COLOR="{colour}">{body}</FONT>'
    return f"<{body}>"


# ------------------------------------------------------------------------------------------------
# The scene: every drawable element of one graph, keyed so that two graphs can be merged.
@dataclass
class _Element:
    """A node or edge of the picture.

    Attributes:
        key: Stable key, shared by the same element in two graphs (``node:Z``, ``term:cut_z``).
        dot: DOT node id (nodes) or ``(tail, head)`` DOT ids (edges).
        lines: Label lines.
        attrs: Graphviz attributes (colours, shape, style).
        cluster: The stage whose cluster holds it (``None``: top level).
        owner: The dotted path in the YAML form whose changes are annotated here.
    """

    key: str
    dot: str | tuple[str, str]
    lines: list[_Line] = field(default_factory=list)
    attrs: dict[str, str] = field(default_factory=dict)
    cluster: str | None = None
    owner: str | None = None

    @property
    def is_edge(self) -> bool:
        return isinstance(self.dot, tuple)


def _do_text(op: S.DoOp) -> str:
    """A do-operation in a few characters: ``add_noise U[0, 1)``, ``relabel ≠ paired label``."""
    get = op.get
    if op.op == "add_noise":
        if get("dist") == "uniform":
            text = f"add_noise U[{_num(get('low'))}, {_num(get('high'))})"
        else:
            text = f"add_noise N(0, {_num(get('std'))}²)"
        return text + (", clipped" if get("clip") else "")
    if op.op == "relabel":
        avoid = {"paired_label": " ≠ paired label", "own_label": " ≠ own label"}.get(
            get("avoid"), ""
        )
        draw = "" if get("draw") == "uniform_other_classes" else f" ({get('draw')})"
        return f"relabel{avoid}{draw}"
    if op.op == "adversarial":
        steps = f", {get('steps')} steps" if get("attack") == "pgd" else ""
        return f"adversarial {get('attack')} ε={_num(get('eps'))}{steps} on f₀"
    return " ".join([op.op, *(f"{k}={_value(v)}" for k, v in op.params)])


def _data_lines(n: S.Node) -> list[_Line]:
    lines = [_Line(n.id, "title")]
    if n.is_derived:
        src = f"from {n.derived_from}" + (f" · paired ↔ {n.paired_with}" if n.paired_with else "")
        lines.append(_Line(src, "small"))
        lines += [_Line(f"do: {_do_text(op)}", "text") for op in n.do]
    else:
        text = f"{n.split} split" + (" · sample of |forget| rows" if n.sample != "all" else "")
        lines.append(_Line(text, "small"))
    if n.repeat != 1:
        lines.append(_Line(f"rows × {n.repeat}", "small"))
    return lines


def _divergence_text(e: S.Intervention) -> tuple[str, str]:
    """``("0.5 × KL(ref ‖ model)", "softmax over features · sum")`` for a term."""
    d = e.divergence
    name = {"kl": "KL", "cross_entropy": "CE", "mse": "MSE", "l1": "ℓ1"}.get(d.kind, d.kind)
    if d.kind == "kl":
        formula = "KL(ref ‖ model)" if d.direction == "reference_to_model" else "KL(model ‖ ref)"
    elif e.reference is None:
        formula = f"{name}({e.target})"
    else:
        formula = f"{name}(model, ref)"
    weight = e.signed_weight
    head = f"{_num(weight)} × {formula}"  # a leading minus is ascent
    details = []
    if d.softmax_over and d.softmax_over != "none" and d.kind in ("kl", "cross_entropy"):
        details.append(f"softmax over {d.softmax_over}")
    if d.temperature != 1.0:
        details.append(f"T={_num(d.temperature)}")
    details.append(d.reduction)
    return head, " · ".join(details)


def _reference_text(e: S.Intervention) -> str:
    ref = e.reference
    assert ref is not None
    text = (
        "original f₀" if ref.kind == "original" else "labels" if ref.kind == "labels" else ref.kind
    )
    if ref.at and ref.at != e.target:
        text += f" @{ref.at}"
    return text + (" · paired rows" if ref.align == "paired" else "")


def _stage_lines(graph: S.Graph, st: S.Stage) -> list[_Line]:
    order = graph.schedule.order
    place = f"stage {order.index(st.id) + 1}/{len(order)} · " if st.id in order else "stage "
    opt = f"{st.optimizer} · lr {_num(st.lr)}"
    if st.weight_decay:
        opt += f" · wd {_num(st.weight_decay)}"
    if st.momentum:
        opt += f" · momentum {_num(st.momentum)}"
    lines = [_Line(place + st.id, "title"), _Line(opt, "small")]
    if st.modules is not None:
        lines.append(_Line("updates " + ", ".join(st.modules), "small"))
    if st.mask is not None:
        keep = f"{st.mask.keep:.0%}"
        lines.append(_Line(f"mask: {st.mask.kind} on {st.mask.data}, keep {keep}", "small"))
    if st.zip is not None:
        lines.append(_Line("streams " + " ∥ ".join(st.zip), "small"))
    if st.epochs is not None:
        lines.append(_Line(f"first {st.epochs} epoch(s) only", "small"))
    return lines


def _scene(graph: S.Graph) -> tuple[dict[str, _Element], dict[str, _Element]]:
    """The elements of one graph: (nodes and edges by key, stage clusters by stage id)."""
    els: dict[str, _Element] = {}

    def add(el: _Element) -> None:
        els[el.key] = el

    node_ids = {n.id: _dot_id("n", n.id) for n in graph.nodes}
    for n in graph.nodes:
        if n.kind == "data":
            fill = "#fff5cc" if n.is_derived else "#e8f1fb"
            attrs = {"shape": "cylinder", "style": "filled", "fillcolor": fill}
            lines = _data_lines(n)
        elif n.kind == "representation":
            attrs = {"shape": "ellipse", "style": "filled", "fillcolor": "#f2f2f2"}
            layer = "" if n.layer in (None, "representation") else f" · layer {n.layer}"
            lines = [_Line(n.id, "title"), _Line(f"representation{layer}", "small")]
        elif n.kind == "output":
            attrs = {"shape": "doublecircle", "style": "filled", "fillcolor": "#f2f2f2"}
            lines = [_Line(n.id, "title"), _Line("output", "small")]
        else:
            attrs = {"shape": "box3d", "style": "filled", "fillcolor": "#f2f2f2"}
            lines = [_Line(n.id, "title"), _Line("parameters θ", "small")]
        add(_Element(f"node:{n.id}", node_ids[n.id], lines, attrs, owner=f"nodes.{n.id}"))
        grey = {"color": "#777777", "fontcolor": "#777777"}
        if n.derived_from in node_ids:
            edge = (node_ids[n.derived_from], node_ids[n.id])
            add(_Element(f"derive:{n.id}", edge, [_Line("derive", "small")], {**grey}))
            els[f"derive:{n.id}"].attrs["arrowhead"] = "onormal"
        if n.paired_with in node_ids:
            # Pairing aligns rows; it is no causal arrow and must not pull the layout around.
            edge = (node_ids[n.paired_with], node_ids[n.id])
            pair = {**grey, "style": "dotted", "dir": "none", "constraint": "false"}
            add(_Element(f"pair:{n.id}", edge, [_Line("paired", "small")], pair))
    solid = {"color": "black", "style": "solid", "penwidth": "1.4"}
    for s, t in graph.mechanisms:
        add(_Element(f"mech:{s}->{t}", (node_ids[s], node_ids[t]), [], solid))
    for e in graph.interventions:
        effect = classify(graph, e)
        colour = EFFECT_COLOURS[effect]
        term = _dot_id("t", e.id)
        head, details = _divergence_text(e)
        lines = [_Line(e.id, "title"), _Line(f"{effect} · {head}"), _Line(details, "small")]
        if e.note:
            lines.append(_Line(textwrap.shorten(e.note, 60), "small"))
        tooltip = f"{e.id}: {head} ({details}); model on {e.data}, stage {e.stage}"
        attrs = {
            "shape": "box",
            "style": "rounded,filled,dashed",
            "color": colour,
            "fillcolor": _EFFECT_FILLS[effect],
            "penwidth": "1.4",
            "tooltip": _esc_string(tooltip + (f" — {e.note}" if e.note else "")),
        }
        add(_Element(f"term:{e.id}", term, lines, attrs, e.stage, f"interventions.{e.id}"))
        dashed = {"style": "dashed", "color": colour, "fontcolor": colour, "penwidth": "1.4"}
        ref = e.reference
        if ref is not None and ref.kind in ("original", "labels") and ref.stream in node_ids:
            edge, label = (node_ids[ref.stream], term), [_Line(_reference_text(e), "small")]
            add(_Element(f"ref:{e.id}:{ref.stream}", edge, label, {**dashed, "arrowhead": "none"}))
        elif ref is not None:
            # A reference that is no stream of the graph starts at a small diamond of its own.
            if ref.kind == "random_model":
                what = f"random model on {ref.stream} · seed +{ref.seed}"
            else:
                what = f"{ref.distribution or ref.kind} distribution"
            source = _dot_id("r", e.id)
            diamond = {"shape": "diamond", "style": "filled", "fillcolor": colour, "color": colour}
            diamond.update(width="0.22", height="0.22", fixedsize="true", tooltip=_esc_string(what))
            add(_Element(f"refnode:{e.id}", source, [], diamond, e.stage))
            add(_Element(f"ref:{e.id}:{ref.kind}", (source, term), [_Line(what, "small")], dashed))
        # Labelled with the twin-network node it acts on: Z[forget], "do" when it cuts (used only
        # when the edge reads a data stream).
        acted_on = expanded(e.target, cast(str, e.data))
        on = [_Line(("do " if effect == "cut" else "") + acted_on, "small")]
        edge = (term, node_ids[e.target])
        key = f"target:{e.id}:{e.target}:{e.data}"
        add(_Element(key, edge, on if e.data else [], {**dashed, "penwidth": "2"}))
    clusters = {
        st.id: _Element(f"stage:{st.id}", _dot_id("cluster", st.id), _stage_lines(graph, st))
        for st in graph.stages
    }
    for st_id, el in clusters.items():
        el.owner = f"stages.{st_id}"
    return els, clusters


def _title(graph: S.Graph) -> list[_Line]:
    lines = [_Line(graph.name, "title")]
    if graph.summary:
        summary = textwrap.shorten(" ".join(graph.summary.split()), 400, placeholder=" …")
        lines += [_Line(t) for t in textwrap.wrap(summary, 110)]
    sch = graph.schedule
    zipped = f" · streams {' ∥ '.join(sch.zip)}" if sch.zip else ""
    streams = {sid: tuple(graph.stage(sid).zip or sch.zip) for sid in sch.order}
    if len(set(streams.values())) <= 1:
        order = f"per batch: {' → '.join(sch.order)}"
    else:  # stages with their own streams run as their own passes (see train.py)
        passes = [f"{sid} over {' ∥ '.join(streams[sid])}" for sid in sch.order]
        order = f"each epoch, in turn: {' → '.join(passes)}"
        zipped = ""
    lines.append(
        _Line(f"{order} · {sch.epochs} epoch(s) · batch {sch.batch_size}" + zipped, "small")
    )
    return lines


# ------------------------------------------------------------------------------------------------
# Diffs
def _owner_of(path: str, owners: list[str]) -> str | None:
    """The longest owner path that ``path`` is or lies under (ids may contain dots)."""
    hits = [o for o in owners if path == o or path.startswith(o + ".")]
    return max(hits, key=len) if hits else None


def _change_text(change: Change, owner: str | None) -> str:
    rel = change.path[len(owner) + 1 :] if owner and change.path != owner else change.path
    rel = "w" if rel == "weight" else rel
    return textwrap.shorten(f"{rel} {_value(change.old)} → {_value(change.new)}", 90)


def _annotate(changes: list[Change], owners: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Changed settings by owner path; the rest (schedule, presets) for the title."""
    by_owner: dict[str, list[str]] = {}
    rest: list[str] = []
    presets = 0
    moved: dict[str, list[str]] = {"removed": [], "added": []}
    for ch in changes:
        if ch.kind != "changed":
            if ch.path.startswith("presets."):
                presets += 1
            else:
                moved[ch.kind].append(ch.path)
            continue
        owner = _owner_of(ch.path, owners)
        if ch.path.startswith("presets."):
            presets += 1
        elif owner is None:
            rest.append(_change_text(ch, None))
        else:
            by_owner.setdefault(owner, []).append(_change_text(ch, owner))
    for kind, mark in (("removed", "✗"), ("added", "+")):
        if moved[kind]:
            rest.insert(0, textwrap.shorten(f"{mark} {kind}: " + ", ".join(moved[kind]), 140))
    if presets:
        rest.append(f"presets: {presets} entr{'y' if presets == 1 else 'ies'} differ")
    return by_owner, rest


def _styled(
    el: _Element, status: str, notes: list[str], left: bool = False
) -> tuple[str, dict[str, str]]:
    """The label and attributes of an element given its diff status and change notes."""
    attrs = dict(el.attrs)
    lines = list(el.lines)
    marked = el.is_edge or bool(lines)  # a bare marker node (a diamond) stays bare
    if status == "removed":
        lines = [_Line("✗ removed", "removed"), *lines] if marked else lines
        attrs.update(color=_REMOVED, fontcolor=_REMOVED, penwidth="1")
        if el.is_edge:
            attrs["style"] = "dotted"
        else:
            style = [s for s in attrs.get("style", "").split(",") if s not in ("dashed", "")]
            attrs["style"] = ",".join([*style, "dotted"])
            attrs["fillcolor"] = "white"
        return _html(lines, strike=True, colour=_REMOVED, left=left), attrs
    if status == "added":
        lines = [_Line("+ added", "added"), *lines] if marked else lines
        attrs.update(color=_ADDED, penwidth="2.5")
        if el.is_edge:
            attrs["fontcolor"] = _ADDED
    if notes:
        lines += [_Line(n, "change") for n in notes]
        attrs["penwidth"] = "2.5"  # the colour keeps saying what the element is
    return _html(lines, left=left), attrs
