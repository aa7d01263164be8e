"""Sweep files: a sweep's grid written down (``causalunlearn compare --sweep FILE``).

A sweep file (YAML, read safely; unknown fields are errors) says what the flags say::

    format: causalunlearn.sweep/v1
    methods: [camu, baselines/finetune, graphs/camu.yaml@mnist-class]
    ablate: camu                    # optional: adds one ablation per intervention edge
    datasets: [mnist, fashion-mnist]
    scenarios: ["class:0", "random:0.1"]
    seeds: [0, 1, 2]
    relearn: true                   # optional: relearn time
    curves: true                    # optional: relearning curves
    set:                            # optional: overrides, as compare --set
      - schedule.epochs=3           # every method that has the path
      - scrub:stages.max.lr=1e-4    # one method, by its label in the sweep

Methods are shipped names (``camu``, ``baselines/scrub``) or file paths, each optionally with
``@PRESET`` (``@-``: no preset). :func:`sweep_entries` turns methods and an ablated graph into
the sweep's entries, exactly as ``compare`` and ``ablate`` do, and applies the ``set`` items
(:func:`~causalunlearn.studies.entries.with_assignments`; the file's first, then the flags').
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from causalunlearn.errors import RunError, did_you_mean
from causalunlearn.methods.dispatch import causal_graph
from causalunlearn.studies.entries import (
    Entry,
    ablation_entries,
    load_entry,
    load_method_file,
    with_assignments,
)
from causalunlearn.studies.records import SWEEP_FORMAT

FIELDS = (
    "format",
    "methods",
    "ablate",
    "datasets",
    "scenarios",
    "seeds",
    "relearn",
    "curves",
    "set",
)
#: What a sweep runs when neither the flags nor the file say.
DEFAULT_DATASETS = ("digits",)
DEFAULT_SCENARIOS = ("class:0",)
DEFAULT_SEEDS = (0, 1, 2)
#: Where ``compare`` writes when no ``--out`` is given.
DEFAULT_COMPARE_FOLDER = "runs/compare"


@dataclass(frozen=True)
class SweepFile:
    """The fields of a sweep file (every one optional; empty means "not given")."""

    methods: tuple[str, ...] = ()
    ablate: str | None = None
    datasets: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    relearn: bool = False
    curves: bool = False
    set: tuple[str, ...] = ()  # named as the file names it


def read_sweep_file(path: str | Path) -> SweepFile:
    """Read and check a sweep file.

    Raises:
        RunError: ``missing-sweep-file``, ``bad-sweep-file`` (not a mapping, an unknown field
            with a did-you-mean hint, another format, a field of the wrong type).
        GraphError: ``not-utf8``, ``binary-file``, ``yaml-syntax``, ... for a file that is not
            YAML text.
    """
    from causalunlearn.graph.yamlio import load_yaml_text, read_text_file

    file = Path(path)
    if not file.is_file():
        raise RunError("missing-sweep-file", f"no sweep file at {path}", "check the path")
    data = load_yaml_text(read_text_file(file, "sweep file"), source=str(path))
    if not isinstance(data, dict):
        raise RunError(
            "bad-sweep-file", f"{path} is not a mapping", "see `causalunlearn compare --help`"
        )
    for key in data:
        if key not in FIELDS:
            raise RunError(
                "bad-sweep-file",
                f"{path}: unknown field '{key}'; {did_you_mean(key, FIELDS)}",
                f"fields: {', '.join(FIELDS)}",
            )
    if data.get("format", SWEEP_FORMAT) != SWEEP_FORMAT:
        raise RunError("bad-sweep-file", f"{path}: format must be {SWEEP_FORMAT}", "fix the format")
    for key in ("methods", "datasets", "scenarios", "seeds", "set"):
        if key in data and not isinstance(data[key], list):
            raise RunError(
                "bad-sweep-file", f"{path}: '{key}' must be a list", f"e.g. {key}: [...]"
            )
    for key in ("relearn", "curves"):
        if key in data and not isinstance(data[key], bool):
            raise RunError(
                "bad-sweep-file", f"{path}: '{key}' must be true or false", f"e.g. {key}: true"
            )
    if not all(isinstance(item, str) for item in data.get("set", [])):
        raise RunError(
            "bad-sweep-file",
            f"{path}: each 'set' item is one PATH=VALUE or METHOD:PATH=VALUE string",
            "e.g. set: [schedule.epochs=3, camu:stages.output.lr=1e-4]",
        )
    if "ablate" in data and not isinstance(data["ablate"], str):
        raise RunError("bad-sweep-file", f"{path}: 'ablate' names one graph", "e.g. ablate: camu")
    return SweepFile(
        methods=tuple(str(m) for m in data.get("methods", [])),
        ablate=data.get("ablate"),
        datasets=tuple(str(d) for d in data.get("datasets", [])),
        scenarios=tuple(str(s) for s in data.get("scenarios", [])),
        seeds=tuple(data.get("seeds", [])),
        relearn=bool(data.get("relearn", False)),
        curves=bool(data.get("curves", False)),
        set=tuple(data.get("set", [])),
    )


def sweep_entries(
    methods: Sequence[str] = (),
    ablate: str | None = None,
    *,
    preset: str | None = "auto",
    assignments: Sequence[str] = (),
) -> list[Entry]:
    """The entries of a sweep: each of ``methods`` (``PATH`` or ``PATH@PRESET``), then, with
    ``ablate``, that graph and one ablation per intervention edge (labels already among the
    methods are not repeated); then the ``assignments`` (``--set`` items, ``PATH=VALUE`` or
    ``METHOD:PATH=VALUE``) applied by :func:`~causalunlearn.studies.entries.with_assignments`.

    Raises:
        RunError: ``no-methods`` when nothing is given; ``unknown-override-path`` and
            ``unknown-set-method`` from the assignments.
    """
    entries = [load_entry(str(spec)) for spec in methods]
    if ablate:
        graph = causal_graph(load_method_file(ablate))
        if graph is None:
            raise RunError(
                "not-a-graph",
                f"{ablate} is a method entry: it has no intervention edges to ablate",
                "ablate a graph file, e.g. camu",
            )
        seen = {e.label for e in entries}
        entries += [
            e for e in ablation_entries(graph, source=ablate, preset=preset) if e.label not in seen
        ]
    if not entries:
        raise RunError(
            "no-methods",
            "no graph or method file given",
            "e.g. causalunlearn compare camu baselines/finetune",
        )
    return with_assignments(entries, assignments)


def default_ablate_folder(graph_name: str) -> str:
    """Where ``ablate`` writes when no ``--out`` is given."""
    return f"runs/ablate-{graph_name}"
