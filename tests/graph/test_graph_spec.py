"""The graph spec and its YAML form: round trips, Python ≡ YAML, strict typed loading, edits.

Expected values are written out by hand from ``graphs/camu.yaml`` (or computed from the YAML
text), never read back from the code under test.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from causalunlearn.errors import GraphError
from causalunlearn.graph import (
    Citation,
    Divergence,
    DoOp,
    Graph,
    Intervention,
    Node,
    Reference,
    Schedule,
    Stage,
    apply_overrides,
    dump_yaml,
    graph_diff,
    graph_from_dict,
    graph_to_dict,
    load_graph,
    parse_assignments,
    read_yaml,
    remove_intervention,
    replace_intervention,
    save_graph,
    set_stage,
    set_weight,
    with_preset,
)
from causalunlearn.graph.yamlio import load_yaml_text

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
CAMU = GRAPHS / "camu.yaml"
ABLATIONS = sorted((GRAPHS / "ablations").glob("*.yaml"))
CAMU_TEXT = CAMU.read_text()


def _line_of(text: str, needle: str) -> int:
    """1-based line of the first line of ``text`` that contains ``needle``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


def _errors(text: str) -> GraphError:
    with pytest.raises(GraphError) as info:
        load_graph(text)
    return info.value


def _camu_with(old: str, new: str) -> str:
    assert CAMU_TEXT.count(old) == 1, old
    return CAMU_TEXT.replace(old, new)


# Round trips ------------------------------------------------------------------------------------
def test_ablation_files_exist():
    names = {p.name for p in ABLATIONS}
    assert {
        "no-keep-retain-z.yaml",
        "no-cut-forget-z.yaml",
        "no-keep-retain-y.yaml",
        "no-cut-forget-y.yaml",
        "no-counterfactual.yaml",
    } <= names


@pytest.mark.parametrize("path", [CAMU, *ABLATIONS], ids=lambda p: p.stem)
def test_yaml_object_yaml_object_round_trip(path, tmp_path):
    graph = load_graph(path)
    text = graph.to_yaml()
    again = load_graph(text)
    assert again == graph
    assert again.to_yaml() == text  # the dump is a fixed point
    assert load_graph(dump_yaml(graph, full=True)) == graph  # defaults written out: same graph
    assert graph_from_dict(graph_to_dict(graph)) == graph
    save_graph(graph, tmp_path / "saved.yaml")
    assert load_graph(tmp_path / "saved.yaml") == graph
    assert [p.name for p in tmp_path.iterdir()] == ["saved.yaml"]  # no temporary left behind


def _camu_in_python() -> Graph:
    kl = Divergence("kl", direction="reference_to_model", softmax_over="features", reduction="sum")
    ce = Divergence("cross_entropy", softmax_over="classes", reduction="mean")
    return Graph(
        name="camu",
        summary="CaMU two-stage objective as in the authors' code",
        citation=Citation(
            title="CaMU: Disentangling Causal Effects in Deep Model Unlearning",
            venue="SDM 2024",
            arxiv="2401.17504",
            url="https://github.com/ShaofeiShen768/CaMU",
            authors="Shaofei Shen, Chenhao Zhang, Alina Bialkowski, Weitong Chen, Miao Xu",
        ),
        nodes=(
            Node("forget", "data", split="forget"),
            Node("retain_sample", "data", split="retain", sample="same_size_as_forget"),
            Node(
                "counterfactual",
                "data",
                derived_from="retain_sample",
                paired_with="forget",
                do=(
                    DoOp.make("add_noise", dist="uniform", low=0.0, high=1.0, clip=False),
                    DoOp.make("relabel", avoid="paired_label", draw="uniform_other_classes"),
                ),
            ),
            Node("Z", "representation", layer="representation"),
            Node("Y", "output"),
        ),
        mechanisms=(("forget", "Z"), ("retain_sample", "Z"), ("counterfactual", "Z"), ("Z", "Y")),
        interventions=(
            Intervention(
                "keep_retain_z",
                stage="representation",
                data="retain_sample",
                target="Z",
                weight=0.5,
                reference=Reference("original", stream="retain_sample"),
                divergence=kl,
            ),
            Intervention(
                "cut_forget_z",
                stage="representation",
                data="forget",
                target="Z",
                weight=0.5,
                reference=Reference("original", stream="counterfactual", align="paired"),
                divergence=kl,
            ),
            Intervention(
                "keep_retain_y",
                stage="output",
                data="retain_sample",
                target="Y",
                weight=0.9,
                reference=Reference("labels", stream="retain_sample"),
                divergence=ce,
            ),
            Intervention(
                "cut_forget_y",
                stage="output",
                data="forget",
                target="Y",
                weight=0.01,
                reference=Reference("labels", stream="counterfactual", align="paired"),
                divergence=ce,
            ),
        ),
        stages=(
            Stage("representation", optimizer="adam", lr=4.0e-4, weight_decay=1.0e-4),
            Stage("output", optimizer="adam", lr=1.0e-3, weight_decay=1.0e-4),
        ),
        schedule=Schedule(
            order=("representation", "output"),
            epochs=2,
            batch_size=32,
            zip=("forget", "retain_sample"),
        ),
        presets=tuple(
            (
                name,
                (
                    ("stages.output.lr", out),
                    ("stages.representation.lr", rep),
                    ("schedule.epochs", ep),
                ),
            )
            for name, out, rep, ep in [
                ("mnist-class", 1e-3, 4e-4, 2),
                ("mnist-random", 5e-4, 4e-4, 10),
                ("fashion-mnist-class", 1e-3, 4e-4, 2),
                ("fashion-mnist-random", 5e-4, 4e-4, 10),
                ("cifar-class", 5e-5, 1e-5, 2),
                ("cifar-random", 1e-4, 1e-5, 10),
            ]
        ),
    )


def test_graph_built_in_python_equals_yaml_and_round_trips():
    built = _camu_in_python()
    loaded = load_graph(CAMU)
    # camu.yaml may carry presets beyond the authors' six (e.g. for the digits demo).
    authors_only = dataclasses.replace(
        loaded, presets=tuple(p for p in loaded.presets if p[0] in AUTHORS_PRESETS)
    )
    assert built == authors_only
    assert built.digest() == authors_only.digest()
    assert load_graph(built.to_yaml()) == built


def test_one_edge_written_three_ways_is_one_edge():
    block = _camu_with(
        "    weight: 0.01\n    reference: {labels: counterfactual, align: paired}\n"
        "    divergence: {kind: cross_entropy, reduction: mean}",
        "    weight: 1e-2\n    reference:\n      labels: counterfactual\n      align: paired\n"
        "    divergence:\n      kind: cross_entropy",
    )
    explicit = _camu_with(
        "    divergence: {kind: cross_entropy, reduction: mean}\n  cut_forget_y:",
        "    divergence: {kind: cross_entropy, reduction: mean, softmax_over: classes,"
        " temperature: 1.0, direction: reference_to_model}\n    maximise: false\n"
        "    note: ''\n  cut_forget_y:",
    )
    base = load_graph(CAMU)
    assert load_graph(block) == base
    assert load_graph(explicit) == base


def test_python_graph_is_validated_at_construction():
    good = _camu_in_python()
    bad_edge = dataclasses.replace(good.intervention("keep_retain_y"), target="Yy")
    with pytest.raises(GraphError) as info:
        dataclasses.replace(
            good, interventions=(*good.interventions[:2], bad_edge, good.interventions[3])
        )
    assert info.value.codes == ["unknown-node"]
    assert "did you mean 'Y'" in info.value.problems[0].hint


def _with_node(graph: Graph, node: Node) -> Graph:
    return dataclasses.replace(
        graph, nodes=tuple(node if n.id == node.id else n for n in graph.nodes)
    )


def _with_edge(graph: Graph, **changes) -> Graph:
    edge = dataclasses.replace(graph.intervention("cut_forget_y"), **changes)
    return replace_intervention(graph, edge)


@pytest.mark.parametrize(
    ("build", "code", "where"),
    [
        (
            lambda g: _with_edge(g, divergence=Divergence("xent")),
            "bad-value",
            "interventions.cut_forget_y.divergence.kind",
        ),
        (
            lambda g: _with_edge(
                g, reference=Reference("labels", stream="counterfactual", align="zip")
            ),
            "bad-value",
            "interventions.cut_forget_y.reference.align",
        ),
        (lambda g: _with_edge(g, weight="0.01"), "wrong-type", "interventions.cut_forget_y.weight"),
        (lambda g: _with_node(g, Node("Y", "outptu")), "bad-value", "nodes.Y.kind"),
        (
            lambda g: _with_node(
                g, dataclasses.replace(g.node("counterfactual"), do=(DoOp.make("add_nosie"),))
            ),
            "unknown-op",
            "nodes.counterfactual.do.0",
        ),
        (
            lambda g: _with_node(
                g,
                dataclasses.replace(
                    g.node("counterfactual"), do=(DoOp.make("relabel", avoid="own_labels"),)
                ),
            ),
            "bad-value",
            "nodes.counterfactual.do.0.avoid",
        ),
        (
            lambda g: dataclasses.replace(
                g, schedule=dataclasses.replace(g.schedule, zip="forget")
            ),
            "wrong-type",
            "schedule.zip",
        ),
        (lambda g: dataclasses.replace(g, nodes=list(g.nodes)), "wrong-type", "nodes"),
        (
            lambda g: dataclasses.replace(g, format="causalunlearn.graph/v2"),
            "unsupported-format",
            "format",
        ),
    ],
)
def test_python_graph_gets_the_parser_value_checks(build, code, where):
    with pytest.raises(GraphError) as info:
        build(load_graph(CAMU))
    assert [(p.code, p.where) for p in info.value.problems] == [(code, where)]


# Typed, strict, safe YAML ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-3", 0.001),
        ("5.0e-5", 5.0e-5),
        ("1E3", 1000.0),
        ("-2.5e+2", -250.0),
        (".5", 0.5),
        ("3", 3),
    ],
)
def test_numbers_are_typed(text, value):
    parsed = load_yaml_text(text)
    assert parsed == value
    assert type(parsed) is type(value)
    graph = load_graph(_camu_with("weight: 0.9", f"weight: {text}"))
    assert graph.intervention("keep_retain_y").weight == float(value)


@pytest.mark.parametrize("text", [".inf", "-.inf", ".nan", ".NaN"])
def test_non_finite_weight_is_rejected(text):
    err = _errors(_camu_with("weight: 0.9", f"weight: {text}"))
    assert err.codes == ["non-finite"]
    assert err.problems[0].where.startswith("interventions.keep_retain_y.weight")


def test_quoted_number_is_a_wrong_type_with_a_hint():
    err = _errors(_camu_with("weight: 0.9", "weight: '1e-3'"))
    assert err.codes == ["wrong-type"]
    assert "without quotes" in err.problems[0].hint


def test_duplicate_key_is_an_error_with_its_line():
    text = _camu_with("    weight: 0.9\n", "    weight: 0.9\n    weight: 0.8\n")
    err = _errors(text)
    assert err.codes == ["duplicate-key"]
    assert "'weight'" in err.problems[0].message
    assert err.problems[0].where.endswith(f":{_line_of(text, 'weight: 0.8')}")


def test_merge_keys_are_plain_yaml_and_not_duplicates():
    text = _camu_with(
        "  representation: {optimizer: adam, lr: 4.0e-4, weight_decay: 1.0e-4}\n"
        "  output: {optimizer: adam, lr: 1.0e-3, weight_decay: 1.0e-4}",
        "  representation: &adam {optimizer: adam, lr: 4.0e-4, weight_decay: 1.0e-4}\n"
        "  output: {<<: *adam, lr: 1.0e-3}",
    )
    assert load_graph(text) == load_graph(CAMU)


def test_alias_that_contains_itself_is_reported():
    err = _errors(CAMU_TEXT + "loop: &loop [*loop]\n")
    assert err.codes == ["yaml-syntax"]


@pytest.mark.parametrize("as_key", [False, True], ids=["value", "key"])
def test_unsafe_tag_is_refused_and_nothing_runs(tmp_path, as_key):
    marker = tmp_path / "executed"
    tag = f'!!python/object/apply:os.system ["touch {marker}"]'
    extra = f"? {tag}\n: 1\n" if as_key else f"note: {tag}\n"
    text = CAMU_TEXT + extra
    with pytest.raises(GraphError) as info:
        read_yaml(text, "evil.yaml")
    assert info.value.codes == ["unsafe-yaml-tag"]
    assert f"evil.yaml:{_line_of(text, 'python/object')}" in info.value.problems[0].where
    assert not marker.exists()
    assert _errors(text).codes == ["unsafe-yaml-tag"]
    assert not marker.exists()


def test_yaml_syntax_error_carries_the_line():
    text = _camu_with("  Y: {kind: output}", "  Y: {kind: output")
    err = _errors(text)
    assert err.codes == ["yaml-syntax"]
    # PyYAML notices the missing brace where the next line starts.
    assert f"<text>:{_line_of(text, 'Y: {kind: output') + 1}:" in err.problems[0].where


@pytest.mark.parametrize(
    ("old", "new", "path", "suggestion", "also"),
    [
        ("weight: 0.9", "wieght: 0.9", "interventions.keep_retain_y.wieght", "weight", set()),
        # 'lrr' also leaves the stage without its required 'lr'
        ("adam, lr: 1.0e-3", "adam, lrr: 1.0e-3", "stages.output.lrr", "lr", {"missing-field"}),
        (
            "data, split: forget}",
            "data, spilt: forget}",
            "nodes.forget.spilt",
            "split",
            {"derived-without-source"},
        ),
        ("schedule: {order:", "schedule: {ordre:", "schedule.ordre", "order", {"missing-field"}),
    ],
)
def test_unknown_field_gets_did_you_mean_and_file_line(tmp_path, old, new, path, suggestion, also):
    text = _camu_with(old, new)
    file = tmp_path / "typo.yaml"
    file.write_text(text)
    with pytest.raises(GraphError) as info:
        load_graph(file)
    assert set(info.value.codes) == {"unknown-field", *also}
    (problem,) = [p for p in info.value.problems if p.code == "unknown-field"]
    assert problem.where == f"{path} (typo.yaml:{_line_of(text, new)})"
    assert f"'{suggestion}'" in problem.hint


def test_semantic_problem_location_is_file_and_line(tmp_path):
    text = _camu_with("    target: Y\n    weight: 0.9", "    target: Yy\n    weight: 0.9")
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(GraphError) as info:
        load_graph(file)
    (problem,) = info.value.problems
    assert problem.code == "unknown-node"
    assert (
        problem.where
        == f"interventions.keep_retain_y.target (bad.yaml:{_line_of(text, 'target: Yy')})"
    )
    assert "bad.yaml" in str(info.value)


# Presets and overrides ---------------------------------------------------------------------------
def _at(plain: dict, dotted: str):
    for key in dotted.split("."):
        plain = plain[key]
    return plain


AUTHORS_PRESETS = {  # the authors' hyperparameters (mission.md), not read from the file
    "mnist-class": {
        "stages.output.lr": 1e-3,
        "stages.representation.lr": 4e-4,
        "schedule.epochs": 2,
    },
    "mnist-random": {
        "stages.output.lr": 5e-4,
        "stages.representation.lr": 4e-4,
        "schedule.epochs": 10,
    },
    "fashion-mnist-class": {
        "stages.output.lr": 1e-3,
        "stages.representation.lr": 4e-4,
        "schedule.epochs": 2,
    },
    "fashion-mnist-random": {
        "stages.output.lr": 5e-4,
        "stages.representation.lr": 4e-4,
        "schedule.epochs": 10,
    },
    "cifar-class": {
        "stages.output.lr": 5e-5,
        "stages.representation.lr": 1e-5,
        "schedule.epochs": 2,
    },
    "cifar-random": {
        "stages.output.lr": 1e-4,
        "stages.representation.lr": 1e-5,
        "schedule.epochs": 10,
    },
}


def test_camu_has_the_authors_presets():
    presets = {name: dict(ov) for name, ov in load_graph(CAMU).presets}
    assert {name: presets.get(name) for name in AUTHORS_PRESETS} == AUTHORS_PRESETS


@pytest.mark.parametrize("name", [name for name, _ in load_graph(CAMU).presets])
def test_preset_changes_its_values_and_nothing_else(name):
    base = load_graph(CAMU)
    plain = base.to_dict(full=True)
    preset = base.preset(name)
    applied = with_preset(base, name)
    changed = {c.path: (c.old, c.new) for c in graph_diff(base, applied)}
    expected = {
        path: (_at(plain, path), value)
        for path, value in preset.items()
        if _at(plain, path) != value
    }
    assert changed == expected
    for path, value in preset.items():
        assert _at(applied.to_dict(full=True), path) == value
    assert load_graph(CAMU, preset=name) == applied
    assert base == load_graph(CAMU)


def test_cifar_preset_really_changes_the_graph():
    applied = with_preset(load_graph(CAMU), "cifar-random")
    assert applied.stage("output").lr == 1e-4
    assert applied.stage("representation").lr == 1e-5
    assert applied.schedule.epochs == 10


def test_unknown_preset_has_a_hint():
    with pytest.raises(GraphError) as info:
        with_preset(load_graph(CAMU), "cifar-klass")
    assert info.value.codes == ["unknown-preset"]
    assert "cifar-class" in info.value.problems[0].hint


def test_parse_assignments_types_values():
    parsed = parse_assignments(
        [
            "stages.output.lr=5e-5",
            "schedule.epochs=10",
            "interventions.cut_forget_y.maximise=true",
            " name = camu-x",
        ]
    )
    assert parsed == {
        "stages.output.lr": 5e-5,
        "schedule.epochs": 10,
        "interventions.cut_forget_y.maximise": True,
        "name": "camu-x",
    }
    assert type(parsed["stages.output.lr"]) is float
    assert type(parsed["schedule.epochs"]) is int


def test_parse_assignments_without_equals_sign():
    with pytest.raises(GraphError) as info:
        parse_assignments(["stages.output.lr"])
    assert info.value.codes == ["bad-override"]


def test_dotted_overrides_apply_with_the_field_type():
    base = load_graph(CAMU)
    graph = apply_overrides(
        base, parse_assignments(["stages.output.lr=5e-5", "interventions.cut_forget_y.weight=1"])
    )
    assert graph.stage("output").lr == 5e-5
    assert graph.intervention("cut_forget_y").weight == 1.0
    assert type(graph.intervention("cut_forget_y").weight) is float
    assert {c.path for c in graph_diff(base, graph)} == {
        "stages.output.lr",
        "interventions.cut_forget_y.weight",
    }
    assert load_graph(CAMU, overrides={"stages.output.lr": 5e-5}).stage("output").lr == 5e-5
    with pytest.raises(GraphError) as info:
        apply_overrides(base, parse_assignments(["schedule.epochs=2.5"]))
    assert info.value.codes == ["wrong-type"]


@pytest.mark.parametrize(
    ("path", "hint"),
    [
        ("stages.output.lrr", "'lr'"),
        ("stages.outptu.lr", "'output'"),
        ("schedul.epochs", "'schedule'"),
    ],
)
def test_unknown_override_path(path, hint):
    with pytest.raises(GraphError) as info:
        apply_overrides(load_graph(CAMU), {path: 1.0})
    assert info.value.codes == ["unknown-override-path"]
    assert info.value.problems[0].where == path
    assert hint in info.value.problems[0].hint


# Non-mutating edits, digest, frozen objects -----------------------------------------------------
def _edits(graph: Graph):
    cut_y = graph.intervention("cut_forget_y")
    return {
        "remove_intervention": (
            remove_intervention(graph, "cut_forget_y"),
            {("interventions.cut_forget_y", "removed")},
        ),
        "set_weight": (
            set_weight(graph, "cut_forget_y", 0.1),
            {("interventions.cut_forget_y.weight", "changed")},
        ),
        "set_stage": (
            set_stage(graph, "output", lr=5e-5, weight_decay=0.0),
            {("stages.output.lr", "changed"), ("stages.output.weight_decay", "changed")},
        ),
        "replace_intervention": (
            replace_intervention(graph, dataclasses.replace(cut_y, weight=0.2, maximise=True)),
            {
                ("interventions.cut_forget_y.weight", "changed"),
                ("interventions.cut_forget_y.maximise", "changed"),
            },
        ),
    }


@pytest.mark.parametrize(
    "edit", ["remove_intervention", "set_weight", "set_stage", "replace_intervention"]
)
def test_edits_return_new_graphs_and_leave_the_original(edit):
    graph = load_graph(CAMU)
    digest = graph.digest()
    edited, expected = _edits(graph)[edit]
    assert isinstance(edited, Graph)
    assert {(c.path, c.kind) for c in graph_diff(graph, edited)} == expected
    assert graph == load_graph(CAMU)
    assert graph.digest() == digest
    assert graph.intervention("cut_forget_y").weight == 0.01


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda g: set_weight(g, "cut_forget_y", math.nan), "non-finite"),
        (lambda g: set_stage(g, "output", lr=-1.0), "bad-value"),
        (lambda g: remove_intervention(g, "cut_forget_yy"), "unknown-id"),
        (lambda g: set_weight(g, "cut_forget_yy", 0.1), "unknown-id"),
        (
            lambda g: replace_intervention(
                g, dataclasses.replace(g.interventions[0], stage="nope")
            ),
            "unknown-stage",
        ),
    ],
)
def test_invalid_edits_are_rejected(call, code):
    with pytest.raises(GraphError) as info:
        call(load_graph(CAMU))
    assert info.value.codes == [code]


def test_digest_is_stable_and_follows_the_content():
    first, second = load_graph(CAMU), load_graph(CAMU)
    assert first.digest() == second.digest()
    assert len(first.digest()) == 16
    assert load_graph(first.to_yaml()).digest() == first.digest()
    assert set_weight(first, "cut_forget_y", 0.02).digest() != first.digest()
    assert set_weight(first, "cut_forget_y", 0.01).digest() == first.digest()
    ablation = load_graph(GRAPHS / "ablations" / "no-cut-forget-y.yaml")
    assert load_graph(ablation.to_yaml()).digest() == ablation.digest()  # provenance not hashed


def test_graph_objects_are_frozen():
    graph = load_graph(CAMU)
    with pytest.raises(dataclasses.FrozenInstanceError):
        graph.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        graph.interventions[0].weight = 2.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        graph.stage("output").lr = 1.0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        graph.nodes.append(Node("x", "output"))  # type: ignore[attr-defined]
    assert graph == load_graph(CAMU)


# The directory of invalid graphs ----------------------------------------------------------------
INVALID = sorted((Path(__file__).resolve().parents[1] / "invalid_graphs").glob("*.yaml"))


def _expected_codes(path: Path) -> set[str]:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect:"), f"{path.name} must start with '# expect: code, ...'"
    return {code.strip() for code in first.removeprefix("# expect:").split(",")}


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_graph_reports_exactly_its_codes(path):
    with pytest.raises(GraphError) as info:
        load_graph(path)
    assert set(info.value.codes) == _expected_codes(path)
    for problem in info.value.problems:  # every problem says where, naming the file
        assert path.name in problem.where, problem


def test_invalid_graphs_cover_every_required_code():
    covered = set().union(*(_expected_codes(p) for p in INVALID))
    required = {
        "yaml-syntax", "unsafe-yaml-tag", "duplicate-key", "unknown-field", "missing-field",
        "wrong-type", "bad-value", "unknown-node", "wrong-node-kind", "cycle", "unknown-stage",
        "non-finite", "empty-graph", "derived-without-source", "unknown-op", "bad-reference",
        "bad-alignment", "stream-not-zipped", "stage-without-terms", "unsupported-format",
    }  # fmt: skip
    assert required <= covered
    assert any(len(_expected_codes(p)) >= 4 for p in INVALID)


def test_cycle_message_names_the_cycle():
    with pytest.raises(GraphError) as info:
        load_graph(Path(__file__).resolve().parents[1] / "invalid_graphs" / "cycle.yaml")
    (problem,) = info.value.problems
    names = problem.message.split(": ", 1)[1].split(" → ")
    assert names[0] == names[-1]
    assert sorted(names[:-1]) == ["H", "Z"]


def test_several_problems_come_in_one_exception():
    path = Path(__file__).resolve().parents[1] / "invalid_graphs" / "several-problems.yaml"
    with pytest.raises(GraphError) as info:
        load_graph(path)
    text = str(info.value)
    assert text.startswith(f"{len(info.value.problems)} problem(s) in graph several-problems.yaml")
    wheres = {p.code: p.where for p in info.value.problems}
    lines = path.read_text()
    assert wheres["unknown-node"].endswith(f":{_line_of(lines, 'target: Yy')})")
    assert wheres["non-finite"].endswith(f":{_line_of(lines, 'weight: -.inf')})")
    assert wheres["bad-value"].endswith(f":{_line_of(lines, 'lr: -1.0e-3')})")
    for problem in info.value.problems:
        assert f"[{problem.code}]" in text


def test_diff_reports_a_dropped_preset_entry_as_removed():
    from causalunlearn.graph import graph_diff, load_graph, remove_intervention

    base = load_graph(Path(__file__).resolve().parents[2] / "graphs" / "camu.yaml")
    ablated = remove_intervention(remove_intervention(base, "keep_retain_z"), "cut_forget_z")
    changes = {c.path: c.kind for c in graph_diff(base, ablated)}
    assert changes["presets.mnist-class.stages.representation.lr"] == "removed"
    assert changes["stages.representation"] == "removed"


# Equal graphs have equal digests (issue 12 §4) ----------------------------------------------------
SHIPPED = sorted(
    p for p in GRAPHS.rglob("*.yaml") if "causalunlearn.graph/v1" in p.read_text()
)  # graphs/baselines/{ssd,head-zero}.yaml are method entries (causalunlearn.method/v1)


def _with_ints(value, converted: list):
    """``value`` rebuilt as a user would write it in Python: every integral float an int
    (``weight=1``, ``low=0``), each spec object made again through its constructor."""
    if isinstance(value, float) and value.is_integer():
        converted.append(value)
        return int(value)
    if isinstance(value, tuple):
        return tuple(_with_ints(v, converted) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value)(
            **{
                f.name: _with_ints(getattr(value, f.name), converted)
                for f in dataclasses.fields(value)
                if f.name != "provenance"
            }
        )
    return value


def test_shipped_graph_list_is_complete():
    names = {str(p.relative_to(GRAPHS)) for p in SHIPPED}
    assert {"camu.yaml", "baselines/scrub.yaml", "ablations/no-cut-forget-y.yaml"} <= names
    # Two method entries (causalunlearn.method/v1) are not graphs: ssd.yaml and head-zero.yaml.
    assert len(SHIPPED) == len(list(GRAPHS.rglob("*.yaml"))) - 2


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(GRAPHS)))
def test_shipped_graph_built_both_ways_has_one_digest(path):
    loaded = load_graph(path)
    for preset in (None, *(name for name, _ in loaded.presets)):
        from_yaml = with_preset(loaded, preset) if preset else loaded
        converted: list = []
        in_python = _with_ints(from_yaml, converted)
        assert converted, "no integral float to write as an int: the test would prove nothing"
        assert in_python == from_yaml
        assert in_python.digest() == from_yaml.digest(), preset
        reloaded = load_graph(in_python.to_yaml())
        assert reloaded == in_python
        assert reloaded.digest() == in_python.digest(), preset


def test_integer_valued_numbers_written_in_python_hash_as_their_floats():
    base = load_graph(CAMU)
    noise = DoOp.make("add_noise", dist="uniform", low=0, high=1, clip=False)
    counterfactual = base.node("counterfactual")
    nodes = tuple(
        dataclasses.replace(n, do=(noise, *counterfactual.do[1:])) if n is counterfactual else n
        for n in base.nodes
    )
    edges = tuple(
        dataclasses.replace(e, weight=1) if e.id == "keep_retain_z" else e
        for e in base.interventions
    )
    presets = (("mine", (("stages.output.lr", 1), ("interventions.cut_forget_y.weight", 2))),)
    ints = dataclasses.replace(base, nodes=nodes, interventions=edges, presets=presets)
    floats = set_weight(base, "keep_retain_z", 1.0)
    floats = dataclasses.replace(
        floats,
        presets=(
            ("mine", (("stages.output.lr", 1.0), ("interventions.cut_forget_y.weight", 2.0))),
        ),
    )
    assert ints.node("counterfactual").do[0].get("low") == 0  # written as the int 0
    assert isinstance(ints.node("counterfactual").do[0].get("low"), int)
    assert ints == floats
    assert ints.digest() == floats.digest()
    assert load_graph(ints.to_yaml()).digest() == ints.digest()
    assert set_weight(ints, "keep_retain_z", 2).digest() != ints.digest()  # content still counts
    # A negative zero is the same number.
    assert (
        set_weight(base, "cut_forget_y", -0.0).digest()
        == set_weight(base, "cut_forget_y", 0.0).digest()
    )


# Refused inputs that were accepted or mis-reported (issue 12 §4) ----------------------------------
SCRUB = GRAPHS / "baselines" / "scrub.yaml"


def test_negative_weight_with_maximise_is_refused_from_yaml_and_python():
    text = SCRUB.read_text()
    assert text.count("    weight: 16.0\n") == 1
    with pytest.raises(GraphError) as info:
        load_graph(text.replace("    weight: 16.0\n", "    weight: -16.0\n"))
    (problem,) = info.value.problems
    assert problem.code == "conflicting-ascent"
    assert problem.where.startswith("interventions.push_forget_y.maximise")
    assert "weight: 16, maximise: true" in problem.hint
    with pytest.raises(GraphError) as info:
        set_weight(load_graph(SCRUB), "push_forget_y", -1)
    assert info.value.codes == ["conflicting-ascent"]
    # Either sign alone is an ascent, and accepted.
    assert set_weight(load_graph(SCRUB), "push_forget_y", 1).interventions[0].signed_weight == -1
    minus = set_weight(load_graph(CAMU), "cut_forget_y", -1)
    assert minus.intervention("cut_forget_y").signed_weight == -1


@pytest.mark.parametrize("length", [129, 1025, 100_000])
@pytest.mark.parametrize("written", ["plain", "quoted", "explicit"])
def test_a_long_id_names_the_limit(length, written):
    from causalunlearn.graph.parse import MAX_ID_LENGTH

    name = "f" * length
    key = {"plain": name, "quoted": f'"{name}"', "explicit": f"? {name}\n  "}[written]
    text = CAMU_TEXT.replace("\n  forget:", f"\n  {key}:", 1)
    error = _errors(text)
    assert error.codes[0] == "id-too-long"
    assert str(MAX_ID_LENGTH) in error.problems[0].message or "1024" in error.problems[0].message
    assert f"{length} characters" in error.problems[0].message
    assert len(str(error)) < 3000  # the id is not echoed in full
    assert "yaml-syntax" not in error.codes


def test_a_long_id_in_python_names_the_limit():
    base = load_graph(CAMU)
    long_node = Node("y" * 5000, "output")
    with pytest.raises(GraphError) as info:
        dataclasses.replace(base, nodes=(*base.nodes, long_node))
    assert info.value.codes == ["id-too-long"]
    assert "at most 128" in info.value.problems[0].message
    assert len(str(info.value)) < 1000
    ok = dataclasses.replace(base, nodes=(*base.nodes, Node("y" * 128, "output")))
    assert ok.node("y" * 128).kind == "output"


def test_extends_naming_a_folder_or_a_device_says_so(tmp_path):
    (tmp_path / "sub").mkdir()
    head = "format: causalunlearn.graph/v1\nname: x\n"
    cases = {"sub": "is a folder", "/dev/null": "not a regular file"}
    for base, words in cases.items():
        (tmp_path / "g.yaml").write_text(f"{head}extends: {base}\n")
        with pytest.raises(GraphError) as info:
            load_graph(tmp_path / "g.yaml")
        (problem,) = info.value.problems
        assert problem.code == "not-a-file"
        assert words in problem.message
        assert "not found" not in problem.message
    (tmp_path / "g.yaml").write_text(f"{head}extends: missing.yaml\n")
    with pytest.raises(GraphError) as info:
        load_graph(tmp_path / "g.yaml")
    assert info.value.codes == ["unknown-base"]


def test_loading_a_folder_or_a_device_says_so(tmp_path):
    for path, words in ((tmp_path, "is a folder"), (Path("/dev/null"), "not a regular file")):
        with pytest.raises(GraphError) as info:
            load_graph(path)
        assert info.value.codes == ["not-a-file"]
        assert words in info.value.problems[0].message
    with pytest.raises(GraphError) as info:
        load_graph(tmp_path / "missing.yaml")
    assert info.value.codes == ["file-not-found"]
