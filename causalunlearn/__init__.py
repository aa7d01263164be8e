"""causalunlearn: causal machine unlearning of deep classifiers, written as graphs.

The pipeline, as verbs::

    graph = load_graph("graphs/camu.yaml", preset="digits-class")   # validate (graph layer)
    causal_check(graph); render(graph, "camu.svg")                  # check, draw
    result = unlearn(graph, model, data, split, seed=0)             # compile + run (torch)
    metrics = evaluate(result.model, data, split)                   # official metrics

The graph layer (``load_graph``, ``render``, ``causal_check``, ...) is imported eagerly and does
not import torch; everything that needs torch is imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from causalunlearn.errors import (
    CausalUnlearnError,
    DataError,
    GraphError,
    ModelError,
    Problem,
    RunError,
)
from causalunlearn.graph import (
    Graph,
    apply_overrides,
    dump_yaml,
    graph_diff,
    load_graph,
    remove_intervention,
    set_stage,
    set_weight,
    with_preset,
)
from causalunlearn.graph.causal import causal_check
from causalunlearn.graph.render import render, to_dot
from causalunlearn.graph.shipped import shipped_graphs
from causalunlearn.methods import MethodEntry, load_any
from causalunlearn.methods.dispatch import Method

__version__ = "0.1.0"

# Public names that need torch: name -> module, imported on first access.
_LAZY = {
    "compile_objective": "causalunlearn.compile.objective",
    "register_divergence": "causalunlearn.compile.divergences",
    "register_reference": "causalunlearn.compile.references",
    "register_do_op": "causalunlearn.compile.materialise",
    "materialise": "causalunlearn.compile.materialise",
    "run_schedule": "causalunlearn.engine.loop",
    "unlearn": "causalunlearn.engine.verbs",
    "unlearn_stacked": "causalunlearn.engine.stacked",
    "evaluate": "causalunlearn.metrics.evaluate",
    "register_attacker": "causalunlearn.metrics.mia",
    "register_method": "causalunlearn.methods.registry",
    "ModelCache": "causalunlearn.studies.model_cache",
    "StudySettings": "causalunlearn.studies.settings",
    "Sweep": "causalunlearn.studies.sweep",
    "load_entry": "causalunlearn.studies.entries",
    "ablation_entries": "causalunlearn.studies.entries",
    "summary_markdown": "causalunlearn.studies.summary",
    "markdown_table": "causalunlearn.studies.experiment",
    "tune": "causalunlearn.studies.tuning",
    "Recipe": "causalunlearn.recipes",
    "run_experiment": "causalunlearn.studies.experiment",
    "results": "causalunlearn.studies.results",
    "RunSettings": "causalunlearn.studies.experiment",
    "load_dataset": "causalunlearn.data",
    "register_dataset": "causalunlearn.data",
    "make_split": "causalunlearn.data",
    "build_model": "causalunlearn.models",
    "register_model": "causalunlearn.models",
}

__all__ = [
    "CausalUnlearnError",
    "Method",
    "MethodEntry",
    "load_any",
    "shipped_graphs",
    "DataError",
    "Graph",
    "GraphError",
    "ModelError",
    "Problem",
    "RunError",
    "apply_overrides",
    "causal_check",
    "dump_yaml",
    "graph_diff",
    "load_graph",
    "remove_intervention",
    "render",
    "set_stage",
    "set_weight",
    "to_dot",
    "with_preset",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'causalunlearn' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)
