"""YAML input/output of graphs: safe, typed, strict, with line numbers, and ``extends``.

- Safe: built on ``yaml.SafeLoader``; any explicit tag such as ``!!python/object`` is reported
  as ``unsafe-yaml-tag`` (with its line) and nothing is constructed.
- Typed: PyYAML's YAML 1.1 resolver reads ``1e-3`` as a *string*; this loader reads it as a float.
- Strict: duplicate keys are errors (``duplicate-key``), never silently overwritten.
- Located: every problem names its key path and ``file:line``.
- ``extends``: an ablation file names a base graph, ``remove``s entries and ``set``s dotted paths;
  nothing else may differ (see ``docs/graph-format.md``).
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path as FsPath
from typing import Any

import yaml

from causalunlearn.errors import GraphError, Problem
from causalunlearn.graph import spec as S

_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_SAFE_TAGS = {
    "tag:yaml.org,2002:" + t
    for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
}
_MERGE_TAG = "tag:yaml.org,2002:merge"
EXTENDS_FIELDS = ("format", "extends", "name", "summary", "citation", "remove", "set")


class _Loader(yaml.SafeLoader):
    """SafeLoader with exponent floats and duplicate-key detection."""

    yaml_implicit_resolvers = {
        k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, int]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        # Only the mapping's own keys count: a key that overrides one brought in by a merge
        # (``<<: *base``) is YAML's intended use, not a duplicate.
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                self.duplicates.append((str(key), key_node.start_mark.line + 1))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _walk(
    node: yaml.Node,
    path: tuple[str, ...],
    lines: dict,
    problems: list,
    source: str,
    seen: set[int] | None = None,
    stack: tuple[int, ...] = (),
) -> None:
    """Check every node's tag (keys included) and record key lines.

    Aliases share node objects: each is walked once (``seen``), so a "billion laughs" document
    stays linear, and an alias that contains itself is reported instead of recursing forever.
    """
    seen = set() if seen is None else seen
    where = f"{'.'.join(path) or '<root>'} ({source}:{node.start_mark.line + 1})"
    if id(node) in stack:
        problems.append(
            Problem("yaml-syntax", where, "an alias refers to itself", "graph files are trees")
        )
        return
    if id(node) in seen:
        return
    seen.add(id(node))
    stack = (*stack, id(node))
    if node.tag not in _SAFE_TAGS:
        problems.append(
            Problem(
                "unsafe-yaml-tag",
                where,
                f"tag '{node.tag}' is not allowed",
                "graph files hold plain data only; remove the tag",
            )
        )
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.tag == _MERGE_TAG:  # ``<<: *anchor``: plain YAML, its value is walked
                _walk(value, path, lines, problems, source, seen, stack)
                continue
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "<complex key>"
            sub = (*path, name)
            lines.setdefault(sub, key.start_mark.line + 1)
            _walk(key, sub, lines, problems, source, seen, stack)
            _walk(value, sub, lines, problems, source, seen, stack)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, str(i))
            lines.setdefault(sub, item.start_mark.line + 1)
            _walk(item, sub, lines, problems, source, seen, stack)


def read_yaml(text: str, source: str = "<yaml>") -> tuple[Any, dict[tuple[str, ...], int]]:
    """Parse YAML text safely; return the data and a map from key path to line number.

    Raises:
        GraphError: ``yaml-syntax``, ``unsafe-yaml-tag`` or ``duplicate-key`` (all at once).
    """
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
            what = getattr(err, "problem", None) or str(err)
            raise GraphError(
                [
                    Problem(
                        "yaml-syntax",
                        where,
                        f"YAML syntax error: {what}",
                        "check indentation and brackets",
                    )
                ],
                source,
            ) from None
        if node is None:
            return None, {}
        lines: dict[tuple[str, ...], int] = {}
        problems: list[Problem] = []
        _walk(node, (), lines, problems, source)
        if problems:
            raise GraphError(problems, source)
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as err:  # e.g. a merge key whose value is not a mapping
            mark = getattr(err, "problem_mark", None)
            where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
            what = getattr(err, "problem", None) or str(err)
            raise GraphError(
                [Problem("yaml-syntax", where, f"YAML error: {what}")], source
            ) from None
        if loader.duplicates:
            raise GraphError(
                [
                    Problem(
                        "duplicate-key",
                        f"{source}:{line}",
                        f"key '{key}' appears twice",
                        "keep one",
                    )
                    for key, line in loader.duplicates
                ],
                source,
            )
        return data, lines
    finally:
        loader.dispose()


def load_yaml_text(text: str, source: str = "<yaml>") -> Any:
    """Parse one YAML value with the graph's typing (used for ``--set`` values)."""
    return read_yaml(text, source)[0]


def _resolve(path: FsPath | None, text: str, source: str, depth: int = 0) -> tuple[dict, dict, Any]:
    """Read a graph file; resolve ``extends``. Returns (plain dict, lines, provenance)."""
    from causalunlearn.graph.edit import apply_overrides_to_dict, apply_removals_to_dict
    from causalunlearn.graph.parse import Collector, _mapping, graph_from_dict

    data, lines = read_yaml(text, source)
    if not isinstance(data, dict) or "extends" not in data:
        return data, lines, None
    if depth > 8:
        raise GraphError(
            [Problem("cycle", source, "'extends' chain is too deep or circular")], source
        )
    c = Collector(source, lines)
    _mapping(c, data, (), EXTENDS_FIELDS, ("format", "extends", "name"))
    c.raise_if_any()
    base_path = (path.parent if path else FsPath.cwd()) / str(data["extends"])
    if not base_path.is_file():
        raise GraphError(
            [
                Problem(
                    "unknown-base",
                    f"extends ({source}:{lines.get(('extends',), '?')})",
                    f"base graph '{data['extends']}' not found at {base_path}",
                    "paths in 'extends' are relative to the file that names them",
                )
            ],
            source,
        )
    base_plain, _, base_prov = _resolve(base_path, base_path.read_text(), base_path.name, depth + 1)
    # Validate the base on its own first, so its problems are reported against its file.
    plain = graph_from_dict(base_plain, base_path.name).to_dict(full=True)
    removals = data.get("remove") or {}
    overrides = data.get("set") or {}
    if not isinstance(removals, dict) or not isinstance(overrides, dict):
        raise GraphError([Problem("wrong-type", source, "'remove' and 'set' are mappings")], source)
    try:
        plain = apply_removals_to_dict(plain, removals)
        plain = apply_overrides_to_dict(plain, overrides)
    except GraphError as err:  # locate each problem at its 'remove'/'set' entry in this file
        raise GraphError([_locate(p, source, lines) for p in err.problems], source) from None
    for key in ("format", "name", "summary", "citation"):
        if key in data:
            plain[key] = data[key]
    removed = tuple(
        f"{sec}.{i}" if sec != "mechanisms" else f"mechanisms.{i[0]}->{i[1]}"
        for sec, ids in removals.items()
        for i in ids
    )
    prov = S.Provenance(
        base=os.path.normpath(base_path), removed=removed, overridden=tuple(overrides)
    )
    # A problem inside an overridden value points at its 'set' line; any other at this file.
    set_lines = {tuple(str(k).split(".")): lines[("set", str(k))] for k in overrides}
    return plain, set_lines, prov


def _locate(problem: Problem, source: str, lines: dict) -> Problem:
    """``problem`` with the ``file:line`` of the ``remove``/``set`` entry it is about."""
    key = tuple(problem.where.split(".", 1)) if problem.where.startswith("remove.") else None
    line = lines.get(key) if key else lines.get(("set", problem.where))
    where = f"{problem.where} ({source}:{line})" if line else f"{problem.where} ({source})"
    return replace(problem, where=where)


def load_graph(
    source: str | FsPath,
    *,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> S.Graph:
    """Load a graph file (or YAML text), resolve ``extends``, apply a preset and overrides.

    Args:
        source: Path to a ``.yaml`` file, or YAML text (anything containing a newline).
        preset: Name of a preset of the graph to apply (e.g. ``mnist-class``).
        overrides: Dotted-path overrides applied after the preset.

    Returns:
        The validated graph.

    Raises:
        GraphError: With every problem found; nothing is half-loaded.
    """
    from causalunlearn.graph.edit import apply_overrides, with_preset
    from causalunlearn.graph.parse import graph_from_dict

    text_given = isinstance(source, str) and "\n" in source
    if text_given:
        path, text, name = None, str(source), "<text>"
    else:
        path = FsPath(source)
        if not path.is_file():
            raise GraphError(
                [
                    Problem(
                        "file-not-found",
                        str(path),
                        "no such graph file",
                        "see `causalunlearn graphs`",
                    )
                ]
            )
        text, name = path.read_text(), path.name
    plain, lines, prov = _resolve(path, text, name)
    graph = graph_from_dict(plain, name, lines)
    if prov is not None:
        graph = replace(graph, provenance=prov)
    if preset:
        graph = with_preset(graph, preset)
    if overrides:
        graph = apply_overrides(graph, overrides)
    return graph


class _Dumper(yaml.SafeDumper):
    """Block style for sections, flow style for small leaf mappings and lists."""


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    leaf = all(not isinstance(v, (dict, list)) for v in data.values()) and len(str(data)) <= 90
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=leaf)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flat = all(not isinstance(v, dict) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def dump_yaml(graph: S.Graph, full: bool = False) -> str:
    """The graph as YAML text; loading it back gives an equal graph."""
    return yaml.dump(
        graph.to_dict(full=full), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )


def save_graph(graph: S.Graph, path: str | FsPath) -> None:
    """Write a graph as YAML atomically (temporary file, then rename)."""
    from causalunlearn.atomic import atomic_write

    atomic_write(path, dump_yaml(graph))
