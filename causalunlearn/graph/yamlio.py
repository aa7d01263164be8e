"""YAML input/output of graphs: safe, typed, strict, with line numbers, and ``extends``.

- Safe: built on ``yaml.SafeLoader``; any explicit tag such as ``!!python/object`` is reported
  as ``unsafe-yaml-tag`` (with its line) and nothing is constructed.
- Typed: PyYAML's YAML 1.1 resolver reads ``1e-3`` as a *string*; this loader reads it as a float.
- Strict: duplicate keys are errors (``duplicate-key``), never silently overwritten.
- Located: every problem names its key path and ``file:line``.
- Bounded: a file is UTF-8 text (``not-utf8``, ``binary-file`` otherwise) of at most
  :data:`MAX_FILE_BYTES`; nesting is at most :data:`MAX_DEPTH` levels (``yaml-too-deep``); a
  document whose aliases would expand to more than :data:`MAX_NODES` nodes (a "billion laughs"
  bomb) is refused (``yaml-too-large``), counted without expanding anything.
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

from causalunlearn.errors import GraphError, Problem, shown
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

#: The most nodes a YAML document may hold with its aliases expanded. The largest shipped graph
#: has under 300; a "billion laughs" file of 1 kB would have 10**8.
MAX_NODES = 20_000
#: The deepest nesting of mappings and lists (shipped graphs nest 6 deep). PyYAML composes
#: recursively, so without a bound a file of 1000 ``[`` ends in a ``RecursionError``.
MAX_DEPTH = 64
#: The largest graph or sweep file read (shipped graphs are a few kB).
MAX_FILE_BYTES = 8 * 1024 * 1024


class _TooLarge(yaml.YAMLError):
    """The document passes a bound of this loader (``code`` names which)."""

    def __init__(self, code: str, message: str, mark: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.problem_mark = code, message, mark


class _Loader(yaml.SafeLoader):
    """SafeLoader with exponent floats and duplicate-key detection."""

    yaml_implicit_resolvers = {
        k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, int]] = []
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> its node count with aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        # Bound the nesting before PyYAML's recursive composer overflows the stack, and count
        # each node's size with aliases expanded from its children's sizes (an alias returns a
        # node already counted): linear in the file, however much the aliases would expand.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooLarge(
                    "yaml-too-deep",
                    f"mappings and lists nest deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,
                )
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if id(node) not in self._sizes:
            if isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = node.value
            else:
                children = []
            size = 1 + sum(self._sizes.get(id(child), 1) for child in children)
            self._sizes[id(node)] = size
            if size > MAX_NODES:
                raise _TooLarge(
                    "yaml-too-large",
                    f"the document expands to more than {MAX_NODES} nodes with its aliases"
                    f" (&anchor/*alias) resolved",
                    node.start_mark,
                )
        return node

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


_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def read_text_file(path: FsPath, what: str = "graph file") -> str:
    """The text of a graph (or sweep) file: UTF-8, at most :data:`MAX_FILE_BYTES`.

    Args:
        path: The file.
        what: What the file is, for the messages.

    Raises:
        GraphError: ``unreadable-file``, ``yaml-too-large``, ``binary-file`` (NUL bytes) or
            ``not-utf8`` (naming the line of the first bad byte).
    """
    where = str(path)

    def fail(code: str, message: str, hint: str) -> GraphError:
        return GraphError([Problem(code, where, message, hint)], path.name)

    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise fail(
                "yaml-too-large",
                f"the {what} has {size} bytes, more than the {MAX_FILE_BYTES} read",
                "graph files are small text files; is this the file you meant?",
            )
        data = path.read_bytes()
    except OSError as err:
        raise fail(
            "unreadable-file", f"the {what} cannot be read: {err.strerror or err}", ""
        ) from None
    save = "save it as UTF-8 text (your editor's encoding menu, or `iconv -f LATIN1 -t UTF-8`)"
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            raise fail(
                "not-utf8",
                f"the {what} is {encoding} encoded, not UTF-8",
                f"save it as UTF-8 text (your editor's encoding menu, or "
                f"`iconv -f {encoding} -t UTF-8`)",
            )
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise fail(
            "binary-file",
            f"the {what} holds NUL bytes (first on line {line}): binary or UTF-16/32, not text",
            f"give a YAML text file; {save}",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise fail(
            "not-utf8",
            f"the {what} is not UTF-8: byte {data[err.start]:#04x} on line {line}",
            save,
        ) from None


def _located(err: yaml.YAMLError, source: str) -> str:
    mark = getattr(err, "problem_mark", None)
    return f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source


#: PyYAML reads a key written without ``?`` only when it is at most this long: a longer one is
#: a syntax error ("mapping values are not allowed here") that hides the real cause.
_YAML_KEY_LIMIT = 1024


def _long_key(text: str, mark: Any) -> tuple[str, str] | None:
    """``(message, hint)`` when the syntax error at ``mark`` is a key past PyYAML's limit."""
    from causalunlearn.graph.parse import MAX_ID_LENGTH

    if mark is None or mark.column <= _YAML_KEY_LIMIT:
        return None
    lines = text.splitlines()
    if mark.line >= len(lines):
        return None
    key = lines[mark.line][: mark.column].strip().lstrip("-").strip().strip("'\"")
    if len(key) <= _YAML_KEY_LIMIT or lines[mark.line][mark.column : mark.column + 1] != ":":
        return None
    return (
        f"a key of {len(key)} characters ({key[:32]!r}…): keys are at most {_YAML_KEY_LIMIT}"
        f" characters in YAML, and ids of nodes, edges, stages and presets at most"
        f" {MAX_ID_LENGTH}",
        "give it a short name, e.g. 'forget' or 'cut_forget_y'",
    )


def read_yaml(text: str, source: str = "<yaml>") -> tuple[Any, dict[tuple[str, ...], int]]:
    """Parse YAML text safely; return the data and a map from key path to line number.

    Raises:
        GraphError: ``yaml-syntax``, ``unsafe-yaml-tag`` or ``duplicate-key`` (all at once);
            ``bad-character`` for a control character, ``yaml-too-deep`` or ``yaml-too-large``
            for a document past :data:`MAX_DEPTH` or :data:`MAX_NODES`.
    """
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as err:  # a control character such as NUL
        line = text[: err.position].count("\n") + 1
        raise GraphError(
            [
                Problem(
                    "bad-character",
                    f"{source}:{line}",
                    f"character #x{err.character:04x} is not allowed in YAML",
                    "graph files are plain text; remove the character (is the file binary?)",
                )
            ],
            source,
        ) from None
    try:
        try:
            node = loader.get_single_node()
        except _TooLarge as err:
            hint = (
                f"graph files nest a few levels deep; {MAX_DEPTH} is the limit"
                if err.code == "yaml-too-deep"
                else f"graph files hold a few hundred nodes; {MAX_NODES} is the limit"
            )
            raise GraphError(
                [Problem(err.code, _located(err, source), err.message, hint)], source
            ) from None
        except RecursionError:  # a backstop: MAX_DEPTH keeps PyYAML's composer well inside
            raise GraphError(
                [Problem("yaml-too-deep", source, "mappings and lists nest too deep", "")], source
            ) from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
            too_long = _long_key(text, mark)
            if too_long is not None:
                raise GraphError([Problem("id-too-long", where, *too_long)], source) from None
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
        except ValueError as err:  # e.g. an integer of more than 4300 digits
            raise GraphError(
                [
                    Problem(
                        "yaml-syntax",
                        source,
                        f"a value cannot be read: {shown(str(err))}",
                        "numbers in graph files are short",
                    )
                ],
                source,
            ) from None
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


_LIST_GRAPHS = "give a graph file (.yaml); see `causalunlearn graphs`"


def not_a_file(path: FsPath) -> str | None:
    """Why ``path``, which exists, is not a regular file (``None`` when it does not exist).

    Such a path is never opened: reading a FIFO would wait forever, ``/dev/zero`` never ends.
    """
    try:
        if path.is_dir():
            return "is a folder, not a file"
        if path.exists():
            return "is not a regular file (a device, pipe or socket)"
    except OSError as err:  # e.g. a path too long, or a component that cannot be searched
        return f"cannot be read: {err.strerror or err}"
    return None


def _resolve(path: FsPath | None, text: str, source: str, depth: int = 0) -> tuple[dict, dict, Any]:
    """Read a graph file; resolve ``extends``. Returns (plain dict, lines, provenance)."""
    from causalunlearn.graph.edit import apply_overrides_to_dict, apply_removals_to_dict
    from causalunlearn.graph.parse import Collector, graph_from_dict, read_mapping

    data, lines = read_yaml(text, source)
    if not isinstance(data, dict) or "extends" not in data:
        return data, lines, None
    if depth > 8:
        raise GraphError(
            [Problem("cycle", source, "'extends' chain is too deep or circular")], source
        )
    c = Collector(source, lines)
    read_mapping(c, data, (), EXTENDS_FIELDS, ("format", "extends", "name"))
    c.raise_if_any()
    base_path = (path.parent if path else FsPath.cwd()) / str(data["extends"])
    if not base_path.is_file():
        where = f"extends ({source}:{lines.get(('extends',), '?')})"
        what = not_a_file(base_path)
        if what is None:
            problem = Problem(
                "unknown-base",
                where,
                f"base graph '{data['extends']}' not found at {base_path}",
                "paths in 'extends' are relative to the file that names them",
            )
        else:
            problem = Problem(
                "not-a-file",
                where,
                f"base graph '{data['extends']}' at {base_path} {what}",
                "'extends' names a graph file (.yaml), relative to the file that names it",
            )
        raise GraphError([problem], source)
    base_text = read_text_file(base_path)
    base_plain, _, base_prov = _resolve(base_path, base_text, base_path.name, depth + 1)
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
        source: Path to a ``.yaml`` file, a shipped name (``camu``, ``ablations/no-cut-forget-z``;
            :func:`~causalunlearn.graph.shipped.shipped_graphs`), or YAML text (anything
            containing a newline).
        preset: Name of a preset of the graph to apply (e.g. ``mnist-class``).
        overrides: Dotted-path overrides applied after the preset.

    Returns:
        The validated graph.

    Raises:
        GraphError: With every problem found; nothing is half-loaded.
    """
    from causalunlearn.graph.edit import apply_overrides, with_preset
    from causalunlearn.graph.parse import graph_from_dict
    from causalunlearn.graph.shipped import resolve_source

    text_given = isinstance(source, str) and "\n" in source
    if text_given:
        path, text, name = None, str(source), "<text>"
    else:
        path = FsPath(resolve_source(source))  # a shipped name (camu, baselines/scrub) or a path
        if not path.is_file():
            what = not_a_file(path)
            raise GraphError(
                [
                    Problem("file-not-found", str(path), "no such graph file", _LIST_GRAPHS)
                    if what is None
                    else Problem("not-a-file", str(path), f"the graph file {what}", _LIST_GRAPHS)
                ]
            )
        text, name = read_text_file(path), path.name
    plain, lines, prov = _resolve(path, text, name)
    graph = graph_from_dict(plain, name, lines)
    if prov is not None:
        graph = replace(graph, provenance=prov)
    if preset:
        graph = with_preset(graph, preset)
    if overrides:
        graph = apply_overrides(graph, overrides)
    return graph


class YamlDumper(yaml.SafeDumper):
    """Block style for sections, flow style for small leaf mappings and lists."""


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    leaf = all(not isinstance(v, (dict, list)) for v in data.values()) and len(str(data)) <= 90
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=leaf)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flat = all(not isinstance(v, dict) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


YamlDumper.add_representer(dict, _represent_dict)
YamlDumper.add_representer(list, _represent_list)


def dump_yaml(graph: S.Graph, full: bool = False) -> str:
    """The graph as YAML text; loading it back gives an equal graph."""
    return yaml.dump(
        graph.to_dict(full=full), Dumper=YamlDumper, sort_keys=False, allow_unicode=True, width=100
    )


def save_graph(graph: S.Graph, path: str | FsPath) -> None:
    """Write a graph as YAML atomically (temporary file, then rename)."""
    from causalunlearn.atomic import atomic_write

    atomic_write(path, dump_yaml(graph))
