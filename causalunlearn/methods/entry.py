"""Method entries: a non-training unlearning method (SSD, ...) with its settings, as a file.

A method entry is the counterpart of a graph for methods that no objective describes: it names a
registered method (:mod:`causalunlearn.methods.registry`), its parameters, a summary, a citation
and presets, and it runs on the same footing as a graph (same data, split, seed, device and result
type as :func:`causalunlearn.engine.verbs.unlearn`). The file format::

    format: causalunlearn.method/v1
    name: ssd
    method: ssd                      # registry key
    summary: One line
    citation: {title: ..., venue: ..., arxiv: ...}
    params: {alpha: 10.0, lambda: 1.0}
    presets:
      digits-class: {params.alpha: 5.0}

Files are read with the graph layer's safe, typed, strict YAML reader (duplicate keys, unsafe tags
and syntax errors reported with line numbers); unknown fields and unknown parameters are errors
with a did-you-mean hint. This module does not import torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

import yaml

from causalunlearn.errors import CausalUnlearnError, GraphError, Problem, did_you_mean
from causalunlearn.graph import spec as S
from causalunlearn.graph.parse import Collector, get_field, read_mapping
from causalunlearn.graph.shipped import missing_file_hint, resolve_source
from causalunlearn.graph.yamlio import read_text_file, read_yaml
from causalunlearn.methods.registry import RegisteredMethod, get_method

if TYPE_CHECKING:
    import torch
    from torch import nn

    from causalunlearn.data import TensorData
    from causalunlearn.data.splits import Split
    from causalunlearn.methods.result import MethodResult

#: Schema version of method entry files.
METHOD_FORMAT = "causalunlearn.method/v1"
METHOD_FIELDS = ("format", "name", "method", "summary", "citation", "params", "presets")
CITATION_FIELDS = S.field_names(S.Citation)


class MethodError(GraphError):
    """A method entry (file, object or override) has one or more problems.

    A :class:`~causalunlearn.errors.GraphError` (so the CLI reports it like a bad graph) whose
    message says "method entry".
    """

    def __init__(self, problems: list[Problem] | tuple[Problem, ...], source: str | None = None):
        super().__init__(problems, source)
        head = f"{len(self.problems)} problem(s) in method entry" + (f" {source}" if source else "")
        body = "\n".join(f"  {p}".replace("\n", "\n  ") for p in self.problems)
        Exception.__init__(self, f"{head}:\n{body}")
        self.message = head


def _check_params(
    c: Collector,
    method: RegisteredMethod,
    raw: Mapping[str, Any],
    path: tuple[str, ...],
    wheres: Mapping[str, tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """Declared parameters only, each converted to its type; problems go to ``c``.

    A problem is located at ``wheres[key]`` when given, else at ``path.key``.
    """
    out: dict[str, Any] = {}
    for key, value in raw.items():
        where = (wheres or {}).get(key, (*path, str(key)))
        if key not in method.params:
            c.add(
                "unknown-param",
                where,
                f"method '{method.name}' has no parameter '{key}'",
                did_you_mean(str(key), method.params) or "it takes no parameters",
            )
            continue
        converted, error = method.params[key].check(value)
        if error:
            code = "wrong-type" if error.startswith("expected") else "bad-value"
            c.add(code, where, f"parameter '{key}' {error}", method.params[key].doc)
            continue
        out[str(key)] = converted
    return out


def _override_params(
    c: Collector, method: RegisteredMethod, overrides: Mapping[str, Any], path: tuple[str, ...]
) -> dict[str, Any]:
    """``{"params.alpha": 5}`` → ``{"alpha": 5.0}``, checked; problems go to ``c``."""
    raw: dict[str, Any] = {}
    wheres: dict[str, tuple[str, ...]] = {}
    for key, value in overrides.items():
        head, dot, name = str(key).partition(".")
        if head != "params" or not dot or not name:
            c.add(
                "unknown-override-path",
                (*path, str(key)),
                f"'{key}' is not a parameter path",
                "a method entry's overrides are 'params.NAME', e.g. params.alpha",
            )
            continue
        raw[name] = value
        wheres[name] = (*path, str(key))
    return _check_params(c, method, raw, path, wheres)


@dataclass(frozen=True)
class MethodEntry:
    """A non-training unlearning method with its settings: frozen and checked.

    Attributes:
        name: Short name of the entry (shown in tables and run folders).
        method: Registry key of the method (``ssd``).
        params: Every declared parameter of the method, defaults filled in.
        summary: One-line description.
        citation: ``title``, ``venue``, ``arxiv``, ``url``, ``authors`` (strings).
        presets: Named override sets, stored as a graph stores them: ``((name, ((dotted.path,
            value), ...)), ...)`` (a ``{name: {path: value}}`` mapping is accepted and converted).
        source: The file the entry was read from (not compared, not hashed).
        format: Schema version.

    Raises:
        MethodError: When the method is unknown or a parameter / preset is invalid.
    """

    name: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    citation: dict[str, str] = field(default_factory=dict)
    presets: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    source: str = field(default="", compare=False)
    format: str = METHOD_FORMAT

    def __post_init__(self) -> None:
        c = Collector(self.source or None)
        registered = _lookup(c, self.method, ("method",))
        if registered is not None:
            checked = _check_params(c, registered, self.params, ("params",))
            params = {**registered.defaults(), **checked}
            object.__setattr__(self, "params", params)
        presets = self.presets.items() if isinstance(self.presets, Mapping) else self.presets
        stored = tuple((str(k), tuple(dict(v).items())) for k, v in presets)
        if registered is not None:
            for preset, overrides in stored:
                _override_params(c, registered, dict(overrides), ("presets", preset))
        object.__setattr__(self, "citation", dict(self.citation))
        object.__setattr__(self, "presets", stored)
        _raise(c)

    # Views ---------------------------------------------------------------------------------
    @property
    def registered(self) -> RegisteredMethod:
        """The registry record of :attr:`method` (function and declared parameters)."""
        return get_method(self.method)

    def to_dict(self, full: bool = True) -> dict[str, Any]:
        """The entry as plain data (the YAML form); ``load_method`` of it gives an equal entry.

        ``full`` is accepted for symmetry with ``Graph.to_dict``: parameters are always listed
        in full (defaults filled in).
        """
        out: dict[str, Any] = {"format": self.format, "name": self.name, "method": self.method}
        if self.summary:
            out["summary"] = self.summary
        if self.citation:
            out["citation"] = dict(self.citation)
        out["params"] = dict(self.params)
        if self.presets:
            out["presets"] = {k: dict(v) for k, v in self.presets}
        return out

    def to_yaml(self) -> str:
        """The entry as YAML text that loads back to an equal entry."""
        from causalunlearn.graph.yamlio import YamlDumper

        return yaml.dump(
            self.to_dict(), Dumper=YamlDumper, sort_keys=False, allow_unicode=True, width=100
        )

    def digest(self) -> str:
        """A short sha256 of name, method and (resolved) parameters, like ``Graph.digest()``."""
        canonical = {"name": self.name, "method": self.method, "params": self.params}
        text = json.dumps(canonical, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # Edits ---------------------------------------------------------------------------------
    def with_overrides(self, overrides: Mapping[str, Any] | None) -> MethodEntry:
        """A new entry with dotted-path overrides applied, e.g. ``{"params.alpha": 5}``.

        Raises:
            MethodError: ``unknown-override-path``, ``unknown-param``, ``wrong-type``,
                ``bad-value`` (every problem at once).
        """
        if not overrides:
            return self
        c = Collector(self.source or None)
        changed = _override_params(c, self.registered, overrides, ())
        _raise(c)
        return replace(self, params={**self.params, **changed})

    def with_preset(self, name: str) -> MethodEntry:
        """A new entry with preset ``name`` applied.

        Raises:
            MethodError: ``unknown-preset`` naming the presets the entry has.
        """
        presets = dict(self.presets)
        if name not in presets:
            have = ", ".join(sorted(presets)) or "none"
            hint = did_you_mean(name, presets)
            raise MethodError(
                [
                    Problem(
                        "unknown-preset",
                        "presets",
                        f"method entry '{self.name}' has no preset '{name}' (it has: {have})",
                        hint,
                    )
                ],
                self.source or None,
            )
        return self.with_overrides(dict(presets[name]))

    def preset(self, name: str) -> dict[str, Any]:
        """The overrides of preset ``name`` as a dict (as ``Graph.preset``)."""
        return dict(dict(self.presets)[name])

    # Running -------------------------------------------------------------------------------
    def run(
        self,
        model: nn.Module,
        data: TensorData,
        split: Split,
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
        progress: bool = True,
    ) -> MethodResult:
        """Unlearn ``split.forget`` from ``model`` with this method; the argument is left as it is.

        The same footing as :func:`causalunlearn.engine.verbs.unlearn`: the model is deep-copied to
        ``device`` (default: CUDA when present, else CPU), the method edits the copy, and the
        copy comes back in eval mode.

        Returns:
            A :class:`~causalunlearn.methods.result.MethodResult` (an
            :class:`~causalunlearn.engine.verbs.Unlearned`): the model, a ``TrainLog`` with no
            optimiser steps (``seconds`` = the method's time), ``seconds`` with ``materialise``
            (moving the data to the device), ``loop`` (the method itself) and ``total``, and
            ``info``, what the method reports (e.g. SSD's number of dampened weights).
        """
        import copy
        import time

        from causalunlearn.device import pick_device
        from causalunlearn.engine.loop import TrainLog
        from causalunlearn.methods.result import MethodResult

        device = pick_device(device)
        start = time.perf_counter()
        working = copy.deepcopy(model).to(device)
        t0 = time.perf_counter()
        data = data.to(device)
        t1 = time.perf_counter()
        info = self.registered.fn(
            working, data, split, dict(self.params), seed=seed, device=device, progress=progress
        )
        t2 = time.perf_counter()
        working.eval()
        seconds = {"materialise": t1 - t0, "loop": t2 - t1, "total": time.perf_counter() - start}
        log = TrainLog(steps={}, seconds=t2 - t1, losses={})
        return MethodResult(working, log, seconds, info=dict(info or {}))


def _raise(c: Collector) -> None:
    if c.problems:
        # The collector names the document's root "<graph>"; here it is a method entry.
        problems = [
            replace(p, where=p.where.replace("<graph>", "<method entry>", 1)) for p in c.problems
        ]
        raise MethodError(problems, c.source)


def _lookup(c: Collector, name: Any, path: tuple[str, ...]) -> RegisteredMethod | None:
    if not isinstance(name, str):
        c.add("wrong-type", path, f"expected a method name, got {name!r}")
        return None
    try:
        return get_method(name)
    except CausalUnlearnError as err:
        if err.code != "unknown-method":
            raise
        c.add(err.code, path, err.message, err.hint)
        return None


def _any_mapping(c: Collector, value: Any, path: tuple[str, ...]) -> dict:
    """``value`` as a dict with any keys (a ``wrong-type`` problem when it is not a mapping)."""
    keys = tuple(map(str, value)) if isinstance(value, Mapping) else ()
    return read_mapping(c, value, path, keys)


def method_from_dict(
    data: Any, source: str | None = None, lines: Mapping[tuple[str, ...], int] | None = None
) -> MethodEntry:
    """Build a :class:`MethodEntry` from its plain (YAML) form, reporting every problem at once.

    Raises:
        MethodError: ``unknown-field`` (with a did-you-mean hint), ``missing-field``,
            ``bad-format``, ``unknown-method``, ``unknown-param``, ``wrong-type``, ``bad-value``,
            ``unknown-override-path`` — each with its ``file:line``.
    """
    c = Collector(source, lines)
    m = read_mapping(c, data, (), METHOD_FIELDS, ("format", "name", "method"))
    fmt = get_field(c, m, "format", (), str, None)
    if fmt == S.FORMAT:  # a graph: its fields are not worth listing one by one
        c.problems = []
        c.add(
            "bad-format",
            ("format",),
            f"'{fmt}' is a graph, not a method entry",
            "load it with load_graph, or load_any for either kind",
        )
        _raise(c)
    if fmt is not None and fmt != METHOD_FORMAT:
        hint = f"method entry files start with 'format: {METHOD_FORMAT}'"
        c.add("bad-format", ("format",), f"unknown format '{fmt}'", hint)
    name = get_field(c, m, "name", (), str, None)
    summary = get_field(c, m, "summary", (), str, "")
    registered = _lookup(c, m["method"], ("method",)) if m.get("method") is not None else None
    citation_raw = read_mapping(c, m.get("citation"), ("citation",), CITATION_FIELDS)
    citation = {
        k: v
        for k in citation_raw
        if k in CITATION_FIELDS
        and (v := get_field(c, citation_raw, k, ("citation",), str)) is not None
    }
    params: dict[str, Any] = {}
    params_raw = _any_mapping(c, m.get("params"), ("params",))
    presets_raw = _any_mapping(c, m.get("presets"), ("presets",))
    presets: dict[str, dict[str, Any]] = {}
    for preset, overrides in presets_raw.items():
        overrides = _any_mapping(c, overrides, ("presets", str(preset)))
        presets[str(preset)] = dict(overrides)
        if registered is not None:
            _override_params(c, registered, overrides, ("presets", str(preset)))
    if registered is not None:
        params = _check_params(c, registered, params_raw, ("params",))
    _raise(c)
    return MethodEntry(
        name=name,
        method=registered.name,
        params=params,
        summary=summary,
        citation=citation,
        presets=presets,
        source=source or "",
    )


def _read(source: str | FsPath) -> tuple[FsPath | None, str, str]:
    """``(path, text, name)`` of a file path, a shipped name or YAML text (with a newline)."""
    resolved = resolve_source(source)
    if isinstance(resolved, str):
        return None, resolved, "<text>"
    if not resolved.is_file():
        hint = missing_file_hint(resolved)
        raise MethodError([Problem("file-not-found", str(resolved), "no such file", hint)])
    return resolved, read_text_file(resolved), resolved.name


def load_method(
    source: str | FsPath,
    preset: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> MethodEntry:
    """Load a method entry file (or YAML text), apply a preset, then overrides.

    Args:
        source: Path to a ``.yaml`` file with ``format: causalunlearn.method/v1``, the name of a
            shipped one (``baselines/ssd``, see :func:`~causalunlearn.graph.shipped_graphs`),
            or YAML text.
        preset: Name of a preset of the entry (e.g. ``digits-class``).
        overrides: ``{"params.NAME": value}`` applied after the preset.

    Raises:
        MethodError: With every problem found (see :func:`method_from_dict`); YAML problems
            (``yaml-syntax``, ``unsafe-yaml-tag``, ``duplicate-key``) as a ``GraphError``.
    """
    path, text, name = _read(source)
    data, lines = read_yaml(text, name)
    entry = method_from_dict(data, name, lines)
    if path is not None:
        entry = replace(entry, source=str(path))
    if preset:
        entry = entry.with_preset(preset)
    return entry.with_overrides(overrides)


def _format_of(source: str | FsPath) -> Any:
    path, text, name = _read(source)
    data, _ = read_yaml(text, name)
    return data.get("format") if isinstance(data, dict) else None


def is_method_file(source: str | FsPath) -> bool:
    """Whether ``source`` (a path, a shipped name or YAML text) is a method entry.

    That is, whether it declares ``format: causalunlearn.method/v1``.

    A file that cannot be read or parsed is not a method file (the graph loader then reports
    its problems).
    """
    try:
        return _format_of(source) == METHOD_FORMAT
    except CausalUnlearnError:
        return False


def load_any(
    source: str | FsPath,
    preset: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> S.Graph | MethodEntry:
    """Load a graph or a method entry, whichever ``format`` it declares.

    Args:
        source: A file path (``graphs/camu.yaml``), the name of a shipped method — its path
            under ``graphs/`` without ``.yaml``: ``camu``, ``ablations/no-cut-forget-z``,
            ``baselines/scrub`` (see :func:`~causalunlearn.graph.shipped_graphs`) — or YAML
            text. An existing path wins over a shipped name.
        preset: Name of a preset of the graph or entry.
        overrides: Dotted-path overrides applied after the preset.

    Returns:
        A :class:`~causalunlearn.graph.spec.Graph` (``causalunlearn.graph/v1`` or no format, as
        :func:`~causalunlearn.graph.load_graph` accepts) or a :class:`MethodEntry`.

    Raises:
        GraphError: ``unknown-graph`` for a name that is neither a file nor a shipped method
            (with a did-you-mean hint), ``file-not-found`` for a missing ``.yaml`` path, and
            every problem of the file (a :class:`MethodError` for a method entry).
    """
    resolved = resolve_source(source)
    if isinstance(resolved, FsPath) and not resolved.is_file():
        hint = missing_file_hint(resolved)
        raise GraphError([Problem("file-not-found", str(resolved), "no such graph file", hint)])
    if is_method_file(resolved):
        return load_method(resolved, preset=preset, overrides=overrides)
    from causalunlearn.graph.yamlio import load_graph

    return load_graph(resolved, preset=preset, overrides=dict(overrides or {}) or None)
