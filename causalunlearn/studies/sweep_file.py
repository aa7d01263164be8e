"""Sweep files: a sweep's grid written down (``causalunlearn compare --sweep FILE``).

A sweep file (YAML, read safely; unknown fields are errors) says what the flags say::

    format: causalunlearn.sweep/v1
    methods: [camu, baselines/finetune, graphs/camu.yaml@mnist-class]
    ablate: camu                    # optional: adds one ablation per intervention edge
    datasets: [mnist, fashion-mnist]
    scenarios: ["class:0", "random:0.1"]
    seeds: [0, 1, 2]                # paired seeds; or, nested (docs/sweeps.md, Seed protocol):
    # train_seeds: [0, 1, 2]        #   originals; split_seeds: [0]; unlearn_seeds: [0, 1]
    relearn: true                   # optional: relearn time
    curves: true                    # optional: relearning curves
    probe: true                     # optional: representation probe
    oracles: 3                      # optional: oracles per split (compare --oracles K)
    set:                            # optional: overrides, as compare --set
      - schedule.epochs=3           # every method that has the path
      - scrub:stages.max.lr=1e-4    # one method, by its label in the sweep

Methods are shipped names (``camu``, ``baselines/scrub``) or file paths, each optionally with
``@PRESET`` (``@-``: no preset). :func:`sweep_entries` turns methods and an ablated graph into
the sweep's entries, exactly as ``compare`` and ``ablate`` do, and applies the ``set`` items
(:func:`~causalunlearn.studies.entries.with_assignments`; the file's first, then the flags').
:func:`seed_fields` decides the seeds: those of the flags when any seed flag is given, else
the file's, else :data:`DEFAULT_SEEDS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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
from causalunlearn.studies.seeds import NESTED_FIELDS, check_seed_list

FIELDS = (
    "format",
    "methods",
    "ablate",
    "datasets",
    "scenarios",
    "seeds",
    "train_seeds",
    "split_seeds",
    "unlearn_seeds",
    "relearn",
    "curves",
    "probe",
    "oracles",
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
    train_seeds: tuple[int, ...] = ()
    split_seeds: tuple[int, ...] = ()
    unlearn_seeds: tuple[int, ...] = ()
    relearn: bool = False
    curves: bool = False
    probe: bool = False
    oracles: int = 1
    set: tuple[str, ...] = ()  # named as the file names it


def read_sweep_file(path: str | Path) -> SweepFile:
    """Read and check a sweep file.

    Raises:
        RunError: ``missing-sweep-file``, ``bad-sweep-file`` (not a mapping, an unknown field
            with a did-you-mean hint, another format, a field of the wrong type);
            ``no-seeds``, ``bad-seed``, ``duplicate-seeds`` (a seed list), ``mixed-seeds``
            (``seeds`` with nested seeds), each naming the file.
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
    seed_keys = ("seeds", *NESTED_FIELDS.values())
    for key in ("methods", "datasets", "scenarios", *seed_keys, "set"):
        if key in data and not isinstance(data[key], list):
            raise RunError(
                "bad-sweep-file", f"{path}: '{key}' must be a list", f"e.g. {key}: [...]"
            )
    for key in ("relearn", "curves", "probe"):
        if key in data and not isinstance(data[key], bool):
            raise RunError(
                "bad-sweep-file", f"{path}: '{key}' must be true or false", f"e.g. {key}: true"
            )
    oracles = data.get("oracles", 1)
    if isinstance(oracles, bool) or not isinstance(oracles, int) or oracles < 1:
        raise RunError(
            "bad-sweep-file",
            f"{path}: 'oracles' is a whole number of oracles per split, at least 1",
            "e.g. oracles: 3",
        )
    if not all(isinstance(item, str) for item in data.get("set", [])):
        raise RunError(
            "bad-sweep-file",
            f"{path}: each 'set' item is one PATH=VALUE or METHOD:PATH=VALUE string",
            "e.g. set: [schedule.epochs=3, camu:stages.output.lr=1e-4]",
        )
    if "ablate" in data and not isinstance(data["ablate"], str):
        raise RunError("bad-sweep-file", f"{path}: 'ablate' names one graph", "e.g. ablate: camu")
    for key in seed_keys:
        if key in data:
            check_seed_list(data[key], f"{path}: {key}", f"{key}: [0, 1, 2]")
    nested = [key for key in NESTED_FIELDS.values() if key in data]
    if "seeds" in data and nested:
        raise RunError(
            "mixed-seeds",
            f"{path}: seeds and {', '.join(nested)} are both given: seeds makes paired cells"
            " (one seed for training, split and unlearning), the nested seeds set each on its own",
            "keep either seeds or train_seeds / split_seeds / unlearn_seeds (an unset one is 0)",
        )
    return SweepFile(
        methods=tuple(str(m) for m in data.get("methods", [])),
        ablate=data.get("ablate"),
        datasets=tuple(str(d) for d in data.get("datasets", [])),
        scenarios=tuple(str(s) for s in data.get("scenarios", [])),
        seeds=tuple(data.get("seeds", [])),
        train_seeds=tuple(data.get("train_seeds", [])),
        split_seeds=tuple(data.get("split_seeds", [])),
        unlearn_seeds=tuple(data.get("unlearn_seeds", [])),
        relearn=bool(data.get("relearn", False)),
        curves=bool(data.get("curves", False)),
        probe=bool(data.get("probe", False)),
        oracles=oracles,
        set=tuple(data.get("set", [])),
    )


def seed_fields(
    file: SweepFile | None = None,
    *,
    seeds: Sequence[int] | None = None,
    train_seeds: Sequence[int] | None = None,
    split_seeds: Sequence[int] | None = None,
    unlearn_seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The seed fields of a sweep's :class:`~causalunlearn.studies.settings.StudySettings`.

    The flags' (the keyword arguments; ``None``: not given) when any is given, else the
    sweep file's, else ``seeds`` = :data:`DEFAULT_SEEDS`: the flags replace the file's seeds
    as a whole, so ``--seeds`` on the command line overrides a file's nested seeds and the
    other way round. ``seeds`` together with a nested list is refused when the settings are
    built (``mixed-seeds``).
    """
    flags = {
        "seeds": seeds,
        "train_seeds": train_seeds,
        "split_seeds": split_seeds,
        "unlearn_seeds": unlearn_seeds,
    }
    if any(v is not None for v in flags.values()):
        return {k: tuple(v) for k, v in flags.items() if v is not None}
    if file is not None:
        given = {k: getattr(file, k) for k in flags if getattr(file, k)}
        if given:
            return given
    return {"seeds": DEFAULT_SEEDS}


def _distinct_preset_labels(entries: list[Entry]) -> list[Entry]:
    """One graph at several presets (``camu.yaml`` and ``camu.yaml@cifar-class-resnet20``): each
    entry whose label repeats and whose preset was named is labelled ``NAME@PRESET``; the entry
    with the automatic preset keeps the plain name. Other labels are left as they are."""
    labels = [e.label for e in entries]
    return [
        replace(e, label=f"{e.label}@{e.preset or '-'}")
        if labels.count(e.label) > 1 and e.preset != "auto"
        else e
        for e in entries
    ]


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
    entries = _distinct_preset_labels([load_entry(str(spec)) for spec in methods])
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
