"""Tuning grids: ``--grid PATH=V1,V2`` parsing, the default grid, and the candidates' entries.

Part of the tuning protocol (:mod:`causalunlearn.studies.tuning`). A candidate is one
combination of the grid's values, applied as dotted-path overrides after the method's preset for
the real dataset and scenario; each becomes one :class:`~causalunlearn.studies.entries.Entry` of
a sweep.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from causalunlearn.errors import RunError
from causalunlearn.graph import spec as S
from causalunlearn.graph.edit import parse_value
from causalunlearn.methods.dispatch import Method, with_overrides, with_preset
from causalunlearn.studies.entries import Entry, auto_preset

__all__ = [
    "DEFAULT_FACTORS",
    "Candidate",
    "candidate_entries",
    "candidate_label",
    "default_grid",
    "grid_candidates",
    "parse_grid",
]

#: The default grid: every stage learning rate of the current preset times these, together.
DEFAULT_FACTORS = (0.01, 0.1, 1.0, 10.0)


@dataclass(frozen=True)
class Candidate:
    """One configuration of a tuning grid.

    Attributes:
        label: Its name in the sweep and the table, ``<method>[path=value,...]``.
        overrides: Dotted-path overrides applied after the method's preset.
    """

    label: str
    overrides: dict[str, Any]


def _bad_grid(item: str, why: str) -> RunError:
    return RunError(
        "bad-grid",
        f"cannot read --grid {item!r}: {why}",
        "write PATH=V1,V2,... with a graph field path, e.g. --grid stages.unlearn.lr=1e-4,1e-3,1e-2"
        " (repeat --grid for more fields; the grid is their product)",
    )


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """Parse ``PATH=V1,V2,...`` items (CLI ``--grid``) into ``{path: [values]}``.

    Values are typed like ``--set`` values (``1e-3`` is a float).

    Raises:
        RunError: ``bad-grid`` for an item without ``=``, an empty path or value, a path given
            twice or a value listed twice.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        path, sep, values = str(item).partition("=")
        path = path.strip()
        if not sep:
            raise _bad_grid(item, "no '=' between the field path and the values")
        if not path or " " in path:
            raise _bad_grid(item, "the field path before '=' is empty or has spaces")
        if path in grid:
            raise _bad_grid(item, f"'{path}' is given twice; list all its values in one --grid")
        texts = [v.strip() for v in values.split(",")]
        if not values.strip() or any(not t for t in texts):
            raise _bad_grid(item, "an empty value in the comma-separated list")
        parsed = [parse_value(t) for t in texts]
        if len({json.dumps(v, sort_keys=True, default=str) for v in parsed}) != len(parsed):
            raise _bad_grid(item, "a value is listed twice")
        grid[path] = parsed
    return grid


def _round(value: float) -> float:
    return float(f"{value:.6g}")  # 4e-4 × 0.1 is 4e-5, not 4.0000000000000003e-05


def default_grid(method: Method) -> list[dict[str, Any]]:
    """The default candidates of a graph: every stage's ``lr`` × each of :data:`DEFAULT_FACTORS`.

    All stages are scaled together, so every graph gets ``len(DEFAULT_FACTORS)`` candidates
    whatever its number of stages (the same budget per method); the factor 1 is the graph as
    given (with its preset applied, pass the resolved graph).

    Raises:
        RunError: ``no-default-grid`` for a method entry (no stages, no learning rate).
    """
    if not isinstance(method, S.Graph):
        raise RunError(
            "no-default-grid",
            f"'{method.name}' is a method entry, not a graph: it has no learning rate to scale",
            f"give the grid, with {len(DEFAULT_FACTORS)} values for the same budget as the"
            " default grid of a graph, e.g. --grid params.alpha=0.3,1,3,10",
        )
    return [
        {f"stages.{stage.id}.lr": _round(stage.lr * factor) for stage in method.stages}
        for factor in DEFAULT_FACTORS
    ]


def grid_candidates(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of a ``{path: [values]}`` grid (the product, first path outermost)."""
    paths = list(grid)
    return [dict(zip(paths, values, strict=True)) for values in itertools.product(*grid.values())]


def _short(path: str) -> str:
    head, _, rest = path.partition(".")
    return rest if head in ("stages", "params", "schedule") and rest else path


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def candidate_label(name: str, overrides: Mapping[str, Any]) -> str:
    """``name[path=value,...]`` with ``stages.``/``params.``/``schedule.`` dropped from paths."""
    shorts = [_short(p) for p in overrides]
    keys = shorts if len(set(shorts)) == len(shorts) else list(overrides)
    body = ",".join(f"{k}={_value_text(v)}" for k, v in zip(keys, overrides.values(), strict=True))
    return f"{name}[{body}]"


def _apply(method: Method, overrides: Mapping[str, Any]) -> Method:
    return with_overrides(method, overrides)


def _preset_applied(method: Method, preset: str | None) -> Method:
    return with_preset(method, preset) if preset else method


def candidate_entries(
    method: Method,
    dataset: str,
    scenario: str,
    grid: Mapping[str, Sequence[Any]] | None = None,
    source: str = "",
) -> tuple[list[Entry], list[Candidate], str | None]:
    """The sweep entries of a tuning grid.

    Each entry's method is ``method`` with its auto preset for the *real* ``dataset`` and
    ``scenario`` applied, then the candidate's overrides (the entry itself has no preset, so the
    view's name does not change it).

    Args:
        method: A graph or method entry (no preset applied).
        dataset: The real dataset.
        scenario: The real scenario.
        grid: ``{path: [values]}`` (:func:`parse_grid`), or None for :func:`default_grid`.
        source: Where the method was read from (recorded in each entry).

    Returns:
        The entries, the candidates (same order) and the preset applied (or None).

    Raises:
        RunError: ``bad-grid`` for an empty grid or two candidates that make the same method;
            the graph's own error for an unknown path or a bad value.
    """
    preset = auto_preset(method, dataset, scenario)
    base = _preset_applied(method, preset)
    if grid is None:
        combos = default_grid(base)
    else:
        if not grid:
            raise _bad_grid("", "the grid is empty")
        combos = grid_candidates(grid)
    entries, candidates, digests = [], [], {}
    for overrides in combos:
        label = candidate_label(method.name, overrides)
        resolved = _apply(base, overrides)
        if resolved.digest() in digests:
            raise _bad_grid(
                label, f"it gives the same method as {digests[resolved.digest()]}; drop one value"
            )
        digests[resolved.digest()] = label
        candidates.append(Candidate(label, dict(overrides)))
        entries.append(Entry(label, resolved, None, source=source or method.name))
    return entries, candidates, preset
