"""The graph layer: spec, YAML I/O, validation, edits, causal views and rendering.

Importing this package does not import torch (pgmpy, which does, is imported lazily).
"""

from causalunlearn.graph.edit import (
    Change,
    apply_overrides,
    graph_diff,
    parse_assignments,
    remove_intervention,
    remove_node,
    replace_intervention,
    set_stage,
    set_weight,
    with_preset,
)
from causalunlearn.graph.parse import graph_from_dict, graph_to_dict
from causalunlearn.graph.spec import (
    FORMAT,
    Citation,
    Divergence,
    DoOp,
    Graph,
    Intervention,
    Mask,
    Node,
    Reference,
    Schedule,
    Stage,
)
from causalunlearn.graph.validate import check_graph
from causalunlearn.graph.yamlio import dump_yaml, load_graph, read_yaml, save_graph

__all__ = [
    "FORMAT",
    "Change",
    "Citation",
    "Divergence",
    "DoOp",
    "Graph",
    "Intervention",
    "Mask",
    "Node",
    "Reference",
    "Schedule",
    "Stage",
    "apply_overrides",
    "check_graph",
    "dump_yaml",
    "graph_diff",
    "graph_from_dict",
    "graph_to_dict",
    "load_graph",
    "parse_assignments",
    "read_yaml",
    "remove_intervention",
    "remove_node",
    "replace_intervention",
    "save_graph",
    "set_stage",
    "set_weight",
    "with_preset",
]
