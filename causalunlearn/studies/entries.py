"""The methods of a sweep: graph or method files, presets per dataset and scenario, ablations.

An :class:`Entry` names one method of a sweep (``causalunlearn compare GRAPH...``); its preset
is chosen per dataset and scenario (``auto``: ``<dataset family>-<class|random>`` when the file
has it). :func:`ablation_entries` makes CaMU-style ablations: the graph and one copy per
intervention edge with that edge removed.
"""

from __future__ import annotations

from dataclasses import dataclass

from causalunlearn.errors import RunError, did_you_mean
from causalunlearn.graph import spec as S
from causalunlearn.graph.edit import remove_intervention
from causalunlearn.methods.dispatch import Method, preset_names, renamed, with_preset


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
    """

    label: str
    method: Method
    preset: str | None = "auto"
    remove: str | None = None
    source: str = ""

    def resolve(self, dataset: str, scenario: str) -> tuple[Method, str | None]:
        """The method with its preset for ``dataset``/``scenario`` applied, and the preset used."""
        preset = self.preset
        if preset == "auto":
            preset = auto_preset(self.method, dataset, scenario)
        method = with_preset(self.method, preset) if preset else self.method
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
