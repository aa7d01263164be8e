"""Draw a graph (or the difference between two graphs) with Graphviz.

The picture reads without a legend:

- **Data nodes** are cylinders: plain streams in blue, derived streams (made by do-operations) in
  yellow with their do-operations listed (``do: add_noise U[0, 1)``). A grey arrow labelled
  ``derive`` joins a derived stream to its source, a dotted line labelled ``paired`` to the stream
  its rows are aligned with. **Model nodes:** a representation is an ellipse, the output a double
  circle, the parameters a 3-D box.
- **Mechanism edges** (the model: data → representation → output) are solid black arrows.
- **Intervention edges** are dashed and coloured by what they do to their stream (see
  :func:`~causalunlearn.graph.causal.classify`): *cut* red, *preserve* blue, *ascend* orange,
  *penalty* grey. Each edge is drawn as a small rounded **term** box (its id, ``weight ×
  divergence``, softmax axis and reduction) between its **reference** (the stream the reference
  is computed on, or a diamond for a random model or a fixed distribution) and its **target**;
  the arrow into the target is labelled with the twin-network node it acts on (``Z[forget]``).
- **Stages** are boxes (Graphviz clusters ``cluster_<stage>``) around their terms, titled with
  their place in the schedule and their optimiser (``stage 1/2 · representation``,
  ``adam · lr 4e-4 · wd 1e-4``).
- A **diff** (``base=``) draws the union of both graphs: what the base has and the graph lacks is
  grey, dotted and struck through (``✗ removed``); what is new is green (``+ added``); changed
  settings are listed in bold red on their element (``w 0.5 → 1``).

Building DOT text needs only the ``graphviz`` Python package; writing SVG/PNG/PDF needs the
Graphviz ``dot`` program. The package is imported on first use (``graphviz-missing`` when it is
not installed), so importing this module, and ``causalunlearn``, does not need it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, cast

from causalunlearn.atomic import atomic_write
from causalunlearn.errors import CausalUnlearnError
from causalunlearn.graph import spec as S
from causalunlearn.graph.causal import classify
from causalunlearn.graph.edit import graph_diff
from causalunlearn.graph.scene import (
    _ADDED,
    _FONT,
    _INSTALL_HINT,
    _REMOVED,
    EFFECT_COLOURS,
    FORMATS,
    _annotate,
    _html,
    _Line,
    _num,
    _scene,
    _styled,
    _title,
    graphviz_package,
)

if TYPE_CHECKING:
    import graphviz

__all__ = [
    "EFFECT_COLOURS",
    "FORMATS",
    "mimebundle",
    "render",
    "summary_text",
    "to_digraph",
    "to_dot",
]


# ------------------------------------------------------------------------------------------------
def to_digraph(graph: S.Graph, *, base: S.Graph | None = None) -> graphviz.Digraph:
    """The diagram as a ``graphviz.Digraph`` (see the module docstring for its grammar).

    Args:
        graph: The graph to draw.
        base: When given, draw the union of ``base`` and ``graph`` and mark what ``graph``
            removes, adds and changes relative to ``base``.
    """
    elements, clusters = _scene(graph)
    status = dict.fromkeys([*elements, *(c.key for c in clusters.values())], "same")
    notes: dict[str, list[str]] = {}
    title = _title(graph)
    if base is not None:
        base_elements, base_clusters = _scene(base)
        for key, el in base_elements.items():
            if key not in elements:
                elements[key] = el
                status[key] = "removed"
        for key in elements:
            if key not in base_elements and status[key] != "removed":
                status[key] = "added"
        for st_id, el in base_clusters.items():
            if st_id not in clusters:
                clusters[st_id] = el
                status[el.key] = "removed"
        for st_id, el in clusters.items():
            if st_id not in base_clusters:
                status[el.key] = "added"
        owners = [el.owner for el in [*elements.values(), *clusters.values()] if el.owner]
        notes, rest = _annotate(graph_diff(base, graph), owners)
        title.append(
            _Line(
                f"difference from {base.name}: ✗ removed (grey, struck) · + added (green) · "
                "changed settings in red",
                "small",
            )
        )
        style = {"✗": "removed", "+": "added"}
        title += [_Line(text, style.get(text[:1], "change")) for text in rest]

    gv = graphviz_package()
    dot = gv.Digraph(
        name=re.sub(r"[^A-Za-z0-9_.-]", "_", graph.name),
        graph_attr={
            "rankdir": "LR",
            "label": _html(title, left=True),
            "labelloc": "t",
            "labeljust": "l",
            "fontname": _FONT,
            "nodesep": "0.35",
            "ranksep": "0.6",
            "newrank": "true",
            "compound": "true",
        },
        node_attr={"fontname": _FONT, "fontsize": "11", "margin": "0.12,0.06"},
        edge_attr={"fontname": _FONT, "fontsize": "10", "arrowsize": "0.8"},
    )
    order = [*graph.schedule.order, *(base.schedule.order if base else ()), *clusters]
    ordered = sorted(clusters.values(), key=lambda c: order.index(c.key.split(":", 1)[1]))
    stage_graphs = {}
    for cl in ordered:
        sub = gv.Digraph(name=str(cl.dot))
        label, _ = _styled(cl, status[cl.key], notes.get(cl.owner or "", []), left=True)
        removed = status[cl.key] == "removed"
        colour = {"removed": _REMOVED, "added": _ADDED}.get(status[cl.key], "#888888")
        sub.attr(
            label=label,
            labeljust="l",
            style="rounded,dotted" if removed else "rounded,filled",
            color=colour,
            fillcolor="#fafafa",
            penwidth="1" if removed else "2.5" if notes.get(cl.owner or "") else "1.5",
            fontsize="11",
        )
        stage_graphs[cl.key.split(":", 1)[1]] = sub
    data_rank = []
    for key, el in elements.items():
        label, attrs = _styled(el, status[key], notes.get(el.owner or "", []))
        holder = stage_graphs.get(el.cluster, dot) if el.cluster else dot
        if el.is_edge:
            tail, head = cast(tuple[str, str], el.dot)  # an edge's DOT ids
            if el.lines or status[key] != "same":
                attrs["label"] = label
            dot.edge(tail, head, **attrs)
        else:
            holder.node(str(el.dot), label=label, **attrs)
            if key.startswith("node:") and "cylinder" == attrs.get("shape"):
                data_rank.append(str(el.dot))
    for sub in stage_graphs.values():
        dot.subgraph(sub)
    if data_rank:
        # Data streams on the left, in declaration order, so the picture reads source → loss.
        dot.body.append("\t{rank=min; " + "; ".join(data_rank) + "}\n")
    return dot


def to_dot(graph: S.Graph, *, base: S.Graph | None = None) -> str:
    """DOT text of the diagram (built with the ``graphviz`` package; needs no ``dot`` program).

    Args:
        graph: The graph to draw.
        base: When given, draw the difference from ``base`` (see the module docstring).

    Returns:
        The DOT source.
    """
    return to_digraph(graph, base=base).source


def _format_of(path: Path, format: str | None) -> str:
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise CausalUnlearnError(
            "unknown-format",
            f"cannot render '{path}' as '{fmt or '(no suffix)'}'",
            "use a file name ending in " + ", ".join(f".{f}" for f in FORMATS),
        )
    return fmt


def _write_atomic(path: Path, data: bytes) -> None:
    atomic_write(path, data)


def _pipe(digraph: graphviz.Digraph, fmt: str) -> bytes:
    gv = graphviz_package()
    try:
        return digraph.pipe(format=fmt, quiet=True)
    except gv.ExecutableNotFound:
        raise CausalUnlearnError(
            "dot-not-found",
            f"the Graphviz 'dot' program is needed to write {fmt.upper()} and was not found",
            _INSTALL_HINT,
        ) from None
    except gv.CalledProcessError as err:
        stderr = (err.stderr or b"").decode(errors="replace").strip()
        raise CausalUnlearnError(
            "dot-failed", f"Graphviz 'dot' failed: {stderr or err}", "report this as a bug"
        ) from None


def render(
    graph: S.Graph,
    path: str | os.PathLike[str],
    *,
    base: S.Graph | None = None,
    format: str | None = None,
) -> Path:
    """Draw a graph (or its difference from ``base``) to a file, atomically.

    Args:
        graph: The graph to draw.
        path: Output file; its suffix picks the format (``.svg``, ``.png``, ``.pdf``, ``.dot``).
        base: When given, draw the difference from ``base``.
        format: Overrides the suffix.

    Returns:
        The path written.

    Raises:
        CausalUnlearnError: ``unknown-format``; ``dot-not-found`` when SVG/PNG/PDF is asked and
            the Graphviz ``dot`` program is missing (``.dot`` needs nothing).
    """
    path = Path(path)
    fmt = _format_of(path, format)
    digraph = to_digraph(graph, base=base)
    if fmt in ("dot", "gv"):
        data = digraph.source.encode()
    else:
        if fmt == "png":
            digraph.graph_attr["dpi"] = "144"
        data = _pipe(digraph, fmt)
    _write_atomic(path, data)
    return path


def summary_text(graph: S.Graph) -> str:
    """A few plain-text lines: name, summary, and each stage's terms with their effect."""
    lines = [
        f"Graph {graph.name!r}" + (f": {' '.join(graph.summary.split())}" if graph.summary else "")
    ]
    data = ", ".join(n.id for n in graph.nodes_of_kind("data"))
    lines.append(f"  data: {data}; mechanisms: {len(graph.mechanisms)}")
    for st_id in graph.schedule.order:
        terms = ", ".join(
            f"{e.id} ({classify(graph, e)}, {_num(e.signed_weight)})" for e in graph.terms_of(st_id)
        )
        lines.append(f"  stage {st_id}: {terms}")
    return "\n".join(lines)


def mimebundle(graph: S.Graph) -> dict[str, str]:
    """Jupyter display data: SVG when Graphviz ``dot`` is installed, and a text summary always.

    Never raises: a notebook shows the text when drawing fails.
    """
    bundle = {"text/plain": summary_text(graph)}
    try:
        bundle["image/svg+xml"] = to_digraph(graph).pipe(format="svg", quiet=True).decode()
    except Exception:  # noqa: BLE001 - a display hook must not raise; the text is shown instead
        pass
    return bundle
