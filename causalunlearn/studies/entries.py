"""The methods of a sweep: graph or method files, presets per dataset and scenario, ablations.

An :class:`Entry` names one method of a sweep (``causalunlearn compare GRAPH...``); its preset
is chosen per dataset and scenario (``auto``: ``<dataset family>-<class|random>`` when the file
has it). :func:`ablation_entries` makes CaMU-style ablations: the graph and one copy per
intervention edge with that edge removed. :func:`with_assignments` applies ``--set`` items
(``PATH=VALUE`` to every method that has the path, ``METHOD:PATH=VALUE`` to one): an entry
keeps them as ``overrides``, applied after its preset, so they are part of the resolved method
and of its digest (a sweep's cell identity).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from causalunlearn.errors import GraphError, RunError, did_you_mean
from causalunlearn.graph import spec as S
from causalunlearn.graph.edit import parse_assignments, remove_intervention
from causalunlearn.methods.dispatch import (
    Method,
    preset_names,
    renamed,
    with_overrides,
    with_preset,
)

#: Problem codes meaning "this method has no such path" (a graph's, a method entry's).
_NO_SUCH_PATH = frozenset({"unknown-override-path", "unknown-param"})


@dataclass(frozen=True)
class Entry:
    """One method of a sweep.

    Attributes:
        label: Its name in tables, plots and folder names (unique in the sweep).
        method: A graph or a non-training method entry (a
            :data:`~causalunlearn.methods.dispatch.Method`), without a preset applied.
        preset: ``"auto"`` (the preset named ``<dataset family>-<class|random>`` when the file has
            one, else the base values), a preset name, or ``None`` (base values).
        remove: Intervention edge removed after the preset is applied (an ablation).
        source: Where it came from (a file path, or a description).
        overrides: Dotted-path overrides applied after the preset (and before ``remove``):
            ``(("stages.output.lr", 5e-5), ...)``; a mapping is accepted and converted.
    """

    label: str
    method: Method
    preset: str | None = "auto"
    remove: str | None = None
    source: str = ""
    overrides: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.overrides, Mapping):
            object.__setattr__(self, "overrides", tuple(self.overrides.items()))

    def resolve(self, dataset: str, scenario: str) -> tuple[Method, str | None]:
        """The method with its preset for ``dataset``/``scenario`` and then its overrides
        applied, and the preset used."""
        preset = self.preset
        if preset == "auto":
            preset = auto_preset(self.method, dataset, scenario)
        method = with_preset(self.method, preset) if preset else self.method
        if self.overrides:
            method = with_overrides(method, dict(self.overrides))
        if self.remove:
            if not isinstance(method, S.Graph):  # an input check: ablations remove edges
                raise RunError(
                    "not-a-graph",
                    f"{self.label}: only a graph has edges to remove, not {method.name}",
                    "ablate a graph file",
                )
            method = renamed(remove_intervention(method, self.remove), self.label)
        return method, preset


def dataset_family(dataset: str) -> str:
    """``cifar`` for the CIFAR datasets, the dataset name otherwise (preset name prefix); a
    validation view (``mnist-val20-s100``) has the family of its base dataset."""
    from causalunlearn.data.views import view_base  # lazy: keeps this module free of torch

    return "cifar" if dataset.startswith("cifar") else view_base(dataset)


def auto_preset(method: Method, dataset: str, scenario: str) -> str | None:
    """The preset ``<family>-class`` (class removal) or ``<family>-random`` if the file has it."""
    kind = "class" if scenario.startswith("class:") else "random"
    name = f"{dataset_family(dataset)}-{kind}"
    return name if name in preset_names(method) else None


def load_entry(spec: str, *, label: str | None = None) -> Entry:
    """An :class:`Entry` from ``PATH`` or ``PATH@PRESET`` (``PATH@-``: no preset)."""
    path, _, preset = spec.partition("@")
    method = load_method_file(path)
    chosen: str | None = "auto"
    if preset:
        chosen = None if preset == "-" else preset
        names = preset_names(method)
        if chosen and chosen not in names:
            raise RunError(
                "unknown-preset",
                f"{path} has no preset '{chosen}'; {did_you_mean(chosen, names)}",
                f"presets: {', '.join(names) or 'none'}; or PATH@- for none",
            )
    return Entry(label or method.name, method, chosen, source=path)


def load_method_file(path: str) -> Method:
    """A graph file or a non-training method entry file (e.g. graphs/baselines/ssd.yaml)."""
    from causalunlearn.methods import load_any

    return load_any(path)


def ablation_entries(
    graph: S.Graph, *, source: str = "", preset: str | None = "auto"
) -> list[Entry]:
    """The graph itself and one ablation per intervention edge (that edge removed)."""
    entries = [Entry(graph.name, graph, preset, source=source)]
    for edge in graph.interventions:
        label = f"{graph.name}-no-{edge.id.replace('_', '-')}"
        entries.append(Entry(label, graph, preset, remove=edge.id, source=f"{source} − {edge.id}"))
    return entries


def has_path(method: Method, path: str, value: Any) -> bool:
    """Whether ``path`` is a field of ``method`` (``value`` is checked when it is).

    Raises:
        GraphError: When the path exists but ``value`` is not valid there.
    """
    try:
        with_overrides(method, {path: value})
    except GraphError as err:
        if err.problems and all(p.code in _NO_SUCH_PATH for p in err.problems):
            return False
        raise
    return True


def with_assignments(entries: Sequence[Entry], items: Iterable[str]) -> list[Entry]:
    """The entries with ``--set`` items applied, in order (a later value of a path wins).

    ``PATH=VALUE`` goes to every entry whose method has ``PATH`` (e.g. ``stages.output.lr``
    reaches every graph with an ``output`` stage, not SSD); ``METHOD:PATH=VALUE`` to the entry
    labelled ``METHOD`` only (where baselines name their stages differently). Values are read as
    YAML scalars, as ``run --set`` reads them. Every value is checked against the method it goes
    to before anything runs.

    Raises:
        RunError: ``unknown-override-path`` when no method of the sweep has a ``PATH`` (naming
            the methods); ``unknown-set-method`` for a ``METHOD:`` that is no label of the sweep.
        GraphError: ``bad-override`` (no ``=``); for ``METHOD:PATH=VALUE``, the method's own
            ``unknown-override-path`` (with a did-you-mean hint); a value the method refuses.
    """
    out = list(entries)
    labels = [e.label for e in out]
    for item in items:
        label, path, value = _split_assignment(str(item), labels)
        targets = [i for i, e in enumerate(out) if label is None or e.label == label]
        if label is not None:  # one method: its own error says what is wrong with the path
            with_overrides(out[targets[0]].method, {path: value})
        else:
            targets = [i for i in targets if has_path(out[i].method, path, value)]
            if not targets:
                raise RunError(
                    "unknown-override-path",
                    f"--set {path}=…: no method of the sweep has '{path}' (methods: "
                    f"{', '.join(labels)})",
                    "check the path against the method files (the YAML field names), or give"
                    " it to one method as METHOD:PATH=VALUE",
                    details={"path": path, "methods": labels},
                )
        for i in targets:
            out[i] = replace(out[i], overrides=(*out[i].overrides, (path, value)))
    return out


def _split_assignment(item: str, labels: Sequence[str]) -> tuple[str | None, str, Any]:
    """``METHOD:PATH=VALUE`` or ``PATH=VALUE`` → (label or ``None``, path, parsed value).

    A ``:`` before the path names a method only when what precedes it is a label of the sweep
    or has no ``.`` (a stage id may itself contain ``:``, as in ``stages.st:1.lr``).
    """
    left, _, _ = item.partition("=")
    head, colon, rest = left.partition(":")
    label = None
    if colon and (head in labels or "." not in head):
        if head not in labels:
            close = did_you_mean(head, labels)
            raise RunError(
                "unknown-set-method",
                f"--set {head}:…: no method '{head}' in the sweep"
                + (f"; {close}" if close else ""),
                f"methods: {', '.join(labels)} (METHOD:PATH=VALUE takes a method's label)",
            )
        label, item = head, item[len(head) + 1 :]
    ((path, value),) = parse_assignments([item]).items()
    return label, path, value
