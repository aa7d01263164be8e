"""Non-mutating edits of graphs: dotted-path overrides, presets, edge edits, and structural diffs.

Every helper returns a *new* validated graph (like pgmpy's ``do``); the original is untouched.
Overrides address the full YAML form, e.g. ``stages.output.lr`` or
``interventions.cut_forget_z.weight``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from causalunlearn.errors import GraphError, Problem, did_you_mean
from causalunlearn.graph import spec as S

#: Sections whose entries are keyed by id: an override may add a new entry there.
KEYED_SECTIONS = ("nodes", "interventions", "stages", "presets")


def parse_value(text: str) -> Any:
    """Parse a command-line value with the graph's YAML typing (``1e-3`` is a float).

    Args:
        text: The text after ``=`` in ``--set path=value``.
    """
    from causalunlearn.graph.yamlio import load_yaml_text

    return load_yaml_text(text, source="--set")


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``path=value`` strings (CLI ``--set``) into an overrides dict.

    Raises:
        GraphError: ``bad-override`` when an item has no ``=``.
    """
    out, problems = {}, []
    for item in items:
        path, sep, value = item.partition("=")
        if not sep or not path.strip():
            problems.append(
                Problem(
                    "bad-override", item, "expected path=value", "e.g. --set stages.output.lr=5e-5"
                )
            )
            continue
        out[path.strip()] = parse_value(value)
    if problems:
        raise GraphError(problems)
    return out


def apply_overrides_to_dict(plain: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict:
    """Apply dotted-path overrides to the plain (YAML) form of a graph; return a new dict.

    Every path must exist in the full form, except a new entry directly under a keyed section
    (``interventions.my_edge``). Unknown paths are reported together with a did-you-mean hint.

    Raises:
        GraphError: ``unknown-override-path`` for each path that does not exist.
    """
    out = copy.deepcopy(dict(plain))
    problems = []
    for path, value in overrides.items():
        keys = str(path).split(".")
        cursor: Any = out
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            if not isinstance(cursor, dict):
                problems.append(
                    Problem(
                        "unknown-override-path",
                        path,
                        f"'{'.'.join(keys[:depth])}' is not a mapping",
                    )
                )
                break
            may_add = last and depth == 1 and keys[0] in KEYED_SECTIONS
            if key not in cursor and not may_add:
                problems.append(
                    Problem(
                        "unknown-override-path",
                        path,
                        f"no field '{key}' at '{'.'.join(keys[:depth]) or '<graph>'}'",
                        did_you_mean(key, cursor),
                    )
                )
                break
            if last:
                cursor[key] = copy.deepcopy(value)
            else:
                if cursor[key] is None:
                    cursor[key] = {}
                cursor = cursor[key]
    if problems:
        raise GraphError(problems, "overrides")
    return out


def apply_overrides(graph: S.Graph, overrides: Mapping[str, Any]) -> S.Graph:
    """Return a new validated graph with dotted-path overrides applied.

    Args:
        graph: The base graph.
        overrides: ``{"stages.output.lr": 5e-5, ...}``.
    """
    if not overrides:
        return graph
    return _rebuild(graph, apply_overrides_to_dict(graph.to_dict(full=True), overrides))


def with_preset(graph: S.Graph, name: str) -> S.Graph:
    """Return the graph with preset ``name`` applied (e.g. ``mnist-class``).

    Raises:
        GraphError: ``unknown-preset`` with the presets the graph has.
    """
    presets = dict(graph.presets)
    if name not in presets:
        raise GraphError(
            [
                Problem(
                    "unknown-preset",
                    "presets",
                    f"graph '{graph.name}' has no preset '{name}'",
                    did_you_mean(name, presets),
                )
            ]
        )
    return apply_overrides(graph, dict(presets[name]))


def apply_removals_to_dict(plain: Mapping[str, Any], removals: Mapping[str, Any]) -> dict:
    """Remove entries from the plain (full YAML) form of a graph; return a new dict.

    ``removals`` maps a section to ids: ``{"interventions": [...], "nodes": [...],
    "stages": [...], "mechanisms": [[source, target], ...]}``. Removing a node also removes the
    mechanism edges that touch it. A stage left with no intervention edges is removed too (from
    ``stages`` and ``schedule.order``) with the preset entries that point into it, so that
    "remove this edge" is always a complete ablation.

    Raises:
        GraphError: ``unknown-id`` for each id that is not in the graph.
    """
    out = copy.deepcopy(dict(plain))
    problems = []
    for section, ids in removals.items():
        if section == "mechanisms":
            pairs = [list(p) for p in out["mechanisms"]]
            for pair in ids:
                if list(pair) not in pairs:
                    problems.append(
                        Problem("unknown-id", "remove.mechanisms", f"no mechanism edge {pair}")
                    )
            out["mechanisms"] = [p for p in pairs if p not in [list(q) for q in ids]]
            continue
        if section not in ("nodes", "interventions", "stages"):
            problems.append(
                Problem(
                    "unknown-field",
                    f"remove.{section}",
                    f"cannot remove from '{section}'",
                    did_you_mean(section, ("nodes", "interventions", "stages", "mechanisms")),
                )
            )
            continue
        entries = out.get(section) or {}
        for key in ids:
            if key not in entries:
                problems.append(
                    Problem(
                        "unknown-id",
                        f"remove.{section}",
                        f"no entry '{key}' in {section}",
                        did_you_mean(key, entries),
                    )
                )
            else:
                del entries[key]
        if section == "nodes":
            out["mechanisms"] = [p for p in out["mechanisms"] if not set(p) & set(ids)]
    if problems:
        raise GraphError(problems, "removals")
    used = {e.get("stage") for e in out["interventions"].values()}
    gone = [s for s in out["stages"] if s not in used]
    for stage in gone:
        del out["stages"][stage]
    out["schedule"]["order"] = [s for s in out["schedule"]["order"] if s in out["stages"]]
    for name, overrides in (out.get("presets") or {}).items():
        out["presets"][name] = {
            p: v
            for p, v in overrides.items()
            if not any(p.startswith(f"stages.{g}.") for g in gone)
        }
    return out


def remove_intervention(graph: S.Graph, edge_id: str) -> S.Graph:
    """Return a new graph without intervention edge ``edge_id`` (an ablation).

    A stage left with no edges is removed too; see :func:`apply_removals_to_dict`.
    """
    return _rebuild(
        graph, apply_removals_to_dict(graph.to_dict(full=True), {"interventions": [edge_id]})
    )


def remove_node(graph: S.Graph, node_id: str) -> S.Graph:
    """Return a new graph without node ``node_id`` and its mechanism edges.

    Raises:
        GraphError: When edges still refer to the node (remove or re-point them first).
    """
    return _rebuild(graph, apply_removals_to_dict(graph.to_dict(full=True), {"nodes": [node_id]}))


def _rebuild(graph: S.Graph, plain: dict) -> S.Graph:
    from causalunlearn.graph.parse import graph_from_dict

    return replace(graph_from_dict(plain, "edit"), provenance=graph.provenance)


def replace_intervention(graph: S.Graph, edge: S.Intervention) -> S.Graph:
    """Return a new graph with the edge of the same id replaced by ``edge``."""
    _require(graph.intervention_map, edge.id, "intervention edge")
    return replace(
        graph, interventions=tuple(edge if e.id == edge.id else e for e in graph.interventions)
    )


def set_weight(graph: S.Graph, edge_id: str, weight: float) -> S.Graph:
    """Return a new graph where intervention ``edge_id`` has weight ``weight``."""
    _require(graph.intervention_map, edge_id, "intervention edge")
    return replace_intervention(graph, replace(graph.intervention(edge_id), weight=float(weight)))


def set_stage(graph: S.Graph, stage_id: str, **settings: Any) -> S.Graph:
    """Return a new graph with stage settings changed, e.g. ``set_stage(g, "output", lr=5e-5)``."""
    return apply_overrides(graph, {f"stages.{stage_id}.{k}": v for k, v in settings.items()})


def _require(mapping: Mapping[str, Any], key: str, what: str) -> None:
    if key not in mapping:
        raise GraphError(
            [Problem("unknown-id", key, f"no {what} '{key}'", did_you_mean(key, mapping))]
        )


# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """One difference between two graphs at a dotted path.

    Attributes:
        path: Dotted path in the full YAML form (``interventions.cut_forget_z``).
        kind: ``removed``, ``added`` or ``changed``.
        old: Value in the base graph (``None`` when added).
        new: Value in the other graph (``None`` when removed).
    """

    path: str
    kind: str
    old: Any = None
    new: Any = None


def graph_diff(base: S.Graph, other: S.Graph) -> list[Change]:
    """Structural difference between two graphs (name, summary and citation are ignored).

    Entries of keyed sections (a node, an edge, a stage, a preset) are added or removed as a
    whole; inside an entry each changed field is reported; mechanism edges are compared as a set.
    """
    a, b = base.to_dict(full=True), other.to_dict(full=True)
    changes: list[Change] = []
    for section in KEYED_SECTIONS:
        ea, eb = a.get(section) or {}, b.get(section) or {}
        for key in ea:
            if key not in eb:
                changes.append(Change(f"{section}.{key}", "removed", ea[key], None))
        for key in eb:
            if key not in ea:
                changes.append(Change(f"{section}.{key}", "added", None, eb[key]))
            else:
                _diff_leaves(f"{section}.{key}", ea[key], eb[key], changes)
    ma, mb = [tuple(p) for p in a["mechanisms"]], [tuple(p) for p in b["mechanisms"]]
    changes += [
        Change(f"mechanisms.{s}->{t}", "removed", [s, t]) for s, t in ma if (s, t) not in mb
    ]
    changes += [
        Change(f"mechanisms.{s}->{t}", "added", None, [s, t]) for s, t in mb if (s, t) not in ma
    ]
    _diff_leaves("schedule", a["schedule"], b["schedule"], changes)
    return changes


def _diff_leaves(prefix: str, x: Any, y: Any, out: list[Change]) -> None:
    if isinstance(x, dict) and isinstance(y, dict):
        for key in dict.fromkeys([*x, *y]):
            path = f"{prefix}.{key}"
            if key not in y:  # e.g. a preset entry dropped with its stage
                out.append(Change(path, "removed", x[key], None))
            elif key not in x:
                out.append(Change(path, "added", None, y[key]))
            else:
                _diff_leaves(path, x[key], y[key], out)
    elif x != y:
        out.append(Change(prefix, "changed", x, y))
