"""The one field table (``graph/schema.py``) and "validated once per graph".

The table is the only place a field's type, allowed values and bounds are written; these tests
check that the YAML reader and the Python value checks both follow it, that it matches the
dataclasses, and that building a graph runs the semantic checks once, not once per layer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from causalunlearn.errors import GraphError
from causalunlearn.graph import graph_from_dict, load_graph, schema
from causalunlearn.graph import spec as S
from causalunlearn.graph import validate as V
from causalunlearn.methods.registry import Param

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
CAMU = GRAPHS / "camu.yaml"
ABLATION = GRAPHS / "ablations" / "no-cut-forget-z.yaml"


# Validated once ---------------------------------------------------------------------------------
@pytest.fixture
def semantic_calls(monkeypatch):
    """Count the calls of the semantic checks (``validate.semantic_problems``)."""
    calls = []
    real = V.semantic_problems

    def counting(c, **parts):
        calls.append(parts["name"])
        return real(c, **parts)

    monkeypatch.setattr(V, "semantic_problems", counting)
    return calls


def _presets_in_file(path: Path) -> int:
    return len(yaml.safe_load(path.read_text()).get("presets") or {})


def test_loading_camu_checks_the_graph_once_and_each_preset_once(semantic_calls):
    presets = _presets_in_file(CAMU)
    assert presets >= 6  # the authors' six, at least
    load_graph(CAMU)
    # Before the field table: 34 (the reader's checks, then Graph.__post_init__'s, each of
    # them checking every preset twice more).
    assert len(semantic_calls) == 1 + presets


def test_loading_camu_with_a_preset_checks_two_graphs_once_each(semantic_calls):
    presets = _presets_in_file(CAMU)
    graph = load_graph(CAMU, preset="mnist-class")
    assert graph.stage("output").lr == 1e-3
    # camu.yaml, then camu with the preset applied (which keeps its presets): 85 before.
    assert len(semantic_calls) == 2 * (1 + presets)


def test_loading_an_ablation_checks_the_base_and_the_ablation_once_each(semantic_calls):
    base_presets = _presets_in_file(CAMU)
    assert yaml.safe_load(ABLATION.read_text())["extends"] == "../camu.yaml"
    graph = load_graph(ABLATION)
    assert graph.provenance is not None and "cut_forget_z" not in graph.intervention_map
    # The base on its own (its problems are reported against its file), then the ablation;
    # attaching the provenance re-checks nothing. 85 before.
    assert len(semantic_calls) == (1 + base_presets) + (1 + len(graph.presets))


def test_python_graph_is_checked_once_and_replace_of_provenance_not_again(semantic_calls):
    graph = load_graph(CAMU)
    presets = len(graph.presets)
    semantic_calls.clear()
    parts = {f.name: getattr(graph, f.name) for f in dataclasses.fields(graph)}
    again = S.Graph(**parts)  # the very parts of a checked graph: nothing to check again
    assert again == graph and semantic_calls == []
    rebuilt = S.Graph(**{**parts, "nodes": tuple(list(graph.nodes))})  # equal, not the same
    assert rebuilt == graph
    assert len(semantic_calls) == 1 + presets
    semantic_calls.clear()
    moved = dataclasses.replace(graph, provenance=S.Provenance(base="elsewhere.yaml"))
    assert moved == graph and semantic_calls == []  # nothing that is checked changed
    renamed = dataclasses.replace(graph, name="camu-renamed")
    assert renamed.name == "camu-renamed"
    assert len(semantic_calls) == 1 + presets  # a changed field is checked again


def test_a_changed_python_graph_is_still_checked():
    graph = load_graph(CAMU)
    edge = dataclasses.replace(graph.intervention("cut_forget_y"), target="Yy")
    with pytest.raises(GraphError) as info:
        dataclasses.replace(
            graph,
            interventions=tuple(edge if e.id == edge.id else e for e in graph.interventions),
        )
    assert info.value.codes == ["unknown-node"]


# The table and the dataclasses ----------------------------------------------------------------
@pytest.mark.parametrize("cls", list(schema.TABLE), ids=lambda c: c.__name__)
def test_table_lists_every_dataclass_field_with_its_default(cls):
    declared = {f.name: f for f in dataclasses.fields(cls) if f.name not in ("id", "provenance")}
    table = schema.fields_of(cls)
    assert set(table) == set(declared)
    for name, f in declared.items():
        expected = schema.REQUIRED if f.default is dataclasses.MISSING else f.default
        assert table[name].default == expected, (cls.__name__, name)


def test_a_dataclass_field_without_a_table_line_fails_at_import():
    @dataclasses.dataclass(frozen=True)
    class Widened(S.Mask):
        colour: str = "red"

    with pytest.raises(TypeError, match="colour"):
        schema._complete({Widened: dict(schema.TABLE[S.Mask])})


def test_method_parameters_are_table_fields():
    param = Param(float, 0.5, "a weight", minimum=0.0)
    assert isinstance(param, schema.Field)
    assert param.check(2) == (2.0, None)
    assert param.check(-1) == (None, "must be >= 0, got -1.0")


# Reader and Python checks follow the same table ------------------------------------------------
_BAD = {str: 3, int: "3", float: "0.5", bool: "yes"}


def _scalar_fields():
    """Every scalar field of the stage, schedule, divergence and mask of a shipped graph."""
    salun = load_graph(GRAPHS / "baselines" / "salun.yaml")
    stage = salun.stages[0]
    edge = salun.interventions[0]
    where = {
        S.Stage: (("stages", stage.id), stage),
        S.Mask: (("stages", stage.id, "mask"), stage.mask),
        S.Schedule: (("schedule",), salun.schedule),
        S.Divergence: (("interventions", edge.id, "divergence"), edge.divergence),
        S.Intervention: (("interventions", edge.id), edge),
    }
    for cls, (path, obj) in where.items():
        for name, f in schema.fields_of(cls).items():
            if f.kind in _BAD:
                yield pytest.param(salun, cls, path, obj, name, f, id=f"{cls.__name__}.{name}")


@pytest.mark.parametrize(("graph", "cls", "path", "obj", "name", "f"), list(_scalar_fields()))
def test_a_wrong_type_is_the_same_problem_in_yaml_and_in_python(graph, cls, path, obj, name, f):
    plain = graph.to_dict(full=True)
    section = plain
    for key in path:
        section = section[key]
    section[name] = _BAD[f.kind]
    with pytest.raises(GraphError) as from_yaml:
        graph_from_dict(plain)
    where = ".".join((*path, name))
    assert (from_yaml.value.problems[0].code, from_yaml.value.problems[0].where) == (
        "wrong-type",
        where,
    )

    bad = dataclasses.replace(obj, **{name: _BAD[f.kind]})
    with pytest.raises(GraphError) as from_python:
        _rebuild_with(graph, cls, path, bad)
    # A Python-built graph stops after the value checks; the reader goes on with the default
    # (and may find more), so the first problem is compared.
    first = from_yaml.value.problems[0]
    assert [(p.code, p.where, p.message, p.hint) for p in from_python.value.problems] == [
        (first.code, first.where, first.message, first.hint)
    ]


def _rebuild_with(graph: S.Graph, cls: type, path: tuple[str, ...], bad) -> S.Graph:
    if cls is S.Schedule:
        return dataclasses.replace(graph, schedule=bad)
    if cls in (S.Stage, S.Mask):
        stage = graph.stage(path[1])
        stage = bad if cls is S.Stage else dataclasses.replace(stage, mask=bad)
        return dataclasses.replace(
            graph, stages=tuple(stage if s.id == stage.id else s for s in graph.stages)
        )
    edge = graph.intervention(path[1])
    edge = bad if cls is S.Intervention else dataclasses.replace(edge, divergence=bad)
    return dataclasses.replace(
        graph, interventions=tuple(edge if e.id == edge.id else e for e in graph.interventions)
    )


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("stages", "output", "lr"), 0.0, "lr must be > 0, got 0.0"),
        (("stages", "output", "weight_decay"), -1.0, "weight_decay must be >= 0, got -1.0"),
        (("schedule", "batch_size"), 0, "batch_size must be >= 1, got 0"),
        (("nodes", "forget", "repeat"), 0, "repeat must be >= 1, got 0"),
    ],
)
def test_bounds_come_from_the_table(path, value, message):
    plain = load_graph(CAMU).to_dict(full=True)
    section = plain
    for key in path[:-1]:
        section = section[key]
    section[path[-1]] = value
    with pytest.raises(GraphError) as info:
        graph_from_dict(plain)
    assert [(p.code, p.where, p.message) for p in info.value.problems] == [
        ("bad-value", ".".join(path), message)
    ]


def test_a_required_field_given_as_null_is_reported():
    plain = load_graph(CAMU).to_dict()
    plain["stages"]["output"]["lr"] = None
    with pytest.raises(GraphError) as info:
        graph_from_dict(plain)
    assert [(p.code, p.where) for p in info.value.problems] == [
        ("missing-field", "stages.output.lr")
    ]


def test_odd_values_in_nested_sections_are_problems_not_crashes():
    plain = load_graph(CAMU).to_dict()
    plain["citation"] = ["CaMU"]
    plain["nodes"]["counterfactual"]["do"][0]["op"] = ["add_noise"]
    with pytest.raises(GraphError) as info:
        graph_from_dict(plain)
    assert sorted((p.code, p.where) for p in info.value.problems) == [
        ("unknown-op", "nodes.counterfactual.do.0.op"),
        ("wrong-type", "citation"),
    ]
