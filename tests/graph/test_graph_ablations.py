"""Each ablation differs from CaMU exactly where its ``remove``/``set`` says, and nowhere else.

The check is mechanical: :func:`undeclared` compares ``graph_diff(base, ablation)`` with the
declaration read from the ablation file and lists every difference the declaration does not
account for, and every declared edit that changed nothing. The consequences it accepts are
spelt out there: a removed node takes its mechanism edges with it; a stage left without edges is
removed, from ``schedule.order`` and from the presets too. Nothing else.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from causalunlearn.graph import (
    Graph,
    graph_diff,
    load_graph,
    read_yaml,
    remove_intervention,
    set_weight,
    with_preset,
)

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
CAMU = GRAPHS / "camu.yaml"
ABLATIONS = sorted((GRAPHS / "ablations").glob("*.yaml"))


@dataclasses.dataclass(frozen=True)
class Declaration:
    """What an ablation file says it changes."""

    removals: dict[str, list]
    overrides: dict[str, object]

    @classmethod
    def of(cls, path: Path) -> Declaration:
        data, _ = read_yaml(path.read_text(), path.name)
        return cls(dict(data.get("remove") or {}), dict(data.get("set") or {}))

    def removed(self, section: str) -> set[str]:
        return set(self.removals.get(section, ()))


def undeclared(base: Graph, ablation: Graph, declared: Declaration) -> list[str]:
    """Differences between ``base`` and ``ablation`` not covered by ``declared`` (and vice versa).

    Returns:
        One line per problem; empty when the ablation differs exactly where it says.
    """
    problems = []
    removed_nodes = declared.removed("nodes")
    removed_edges = declared.removed("interventions")
    removed_mechanisms = {tuple(p) for p in declared.removals.get("mechanisms", ())}
    # Stages whose every edge is declared removed (and that are not re-populated by 'set').
    emptied = {
        s.id
        for s in base.stages
        if {e.id for e in base.terms_of(s.id)} <= removed_edges
        and not any(e.stage == s.id for e in ablation.interventions)
    } | declared.removed("stages")
    used: set[str] = set()

    def covered(change) -> str | None:
        """The declaration entry that accounts for ``change`` (None: not accounted for)."""
        section, _, rest = change.path.partition(".")
        if change.kind == "removed" and section in ("nodes", "interventions", "stages"):
            if rest in declared.removed(section):
                return f"{section}.{rest}"
            if section == "stages" and rest in emptied:
                return f"emptied stage {rest}"
        if section == "mechanisms" and change.kind == "removed":
            source, target = change.old
            if (source, target) in removed_mechanisms:
                return f"mechanisms.{source}->{target}"
            for node in (source, target):
                if node in removed_nodes:
                    return f"nodes.{node}"
        if change.path == "schedule.order" and emptied:
            if change.new == [s for s in change.old if s not in emptied]:
                return f"emptied stage {sorted(emptied)[0]}"
        if section == "presets" and change.kind == "removed":
            if any(f".stages.{s}." in f".{rest}" for s in emptied):
                return f"emptied stage {sorted(emptied)[0]}"
        for path in declared.overrides:
            if change.path == path or change.path.startswith(f"{path}."):
                return f"set {path}"
        return None

    for change in graph_diff(base, ablation):
        entry = covered(change)
        if entry is None:
            problems.append(f"undeclared {change.kind}: {change.path}")
        else:
            used.add(entry)
    for section, ids in declared.removals.items():
        for item in ids:
            key = (
                f"mechanisms.{item[0]}->{item[1]}"
                if section == "mechanisms"
                else f"{section}.{item}"
            )
            if key not in used:
                problems.append(f"declared removal without effect: {key}")
    for path in declared.overrides:
        if f"set {path}" not in used:
            problems.append(f"declared override without effect: {path}")
    return problems


@pytest.fixture(scope="module")
def camu() -> Graph:
    return load_graph(CAMU)


@pytest.mark.parametrize("path", ABLATIONS, ids=lambda p: p.stem)
def test_ablation_differs_only_where_declared(camu, path):
    ablation = load_graph(path)
    declared = Declaration.of(path)
    assert declared.removals or declared.overrides
    assert undeclared(camu, ablation, declared) == []
    assert Path(ablation.provenance.base).resolve() == CAMU
    assert set(ablation.provenance.overridden) == set(declared.overrides)


@pytest.mark.parametrize("path", ABLATIONS, ids=lambda p: p.stem)
def test_ablation_summary_names_what_it_changes(camu, path):
    ablation = load_graph(path)
    declared = Declaration.of(path)
    assert ablation.name != camu.name
    for section, ids in declared.removals.items():
        for item in ids:
            assert str(item) in ablation.summary, (section, item)
    for override, value in declared.overrides.items():
        entry = override.split(".")[1]  # e.g. the edge id in interventions.<id>.reference
        assert entry in ablation.summary
        if isinstance(value, dict):  # the new value is spelt out too
            for key, item in value.items():
                assert f"{key}: {item}" in ablation.summary


@pytest.mark.parametrize("path", ABLATIONS, ids=lambda p: p.stem)
def test_ablation_keeps_camu_presets(camu, path):
    ablation = load_graph(path)
    assert ablation.presets == camu.presets  # no ablation empties a stage
    for name, _ in camu.presets:  # a preset changes base and ablation alike
        base_p, abl_p = with_preset(camu, name), with_preset(ablation, name)
        assert graph_diff(base_p, abl_p) == graph_diff(camu, ablation)


def test_no_counterfactual_matches_forget_against_plain_retain_rows(camu):
    g = load_graph(GRAPHS / "ablations" / "no-counterfactual.yaml")
    assert "counterfactual" not in g.node_map
    assert ("counterfactual", "Z") not in g.mechanisms
    z, y = g.intervention("cut_forget_z"), g.intervention("cut_forget_y")
    assert (z.reference.kind, z.reference.stream, z.reference.align) == (
        "original",
        "retain_sample",
        "paired",
    )
    assert (y.reference.kind, y.reference.stream, y.reference.align) == (
        "labels",
        "retain_sample",
        "paired",
    )
    assert (z.weight, y.weight, z.divergence, y.divergence) == (
        0.5,
        0.01,
        camu.intervention("cut_forget_z").divergence,
        camu.intervention("cut_forget_y").divergence,
    )


@pytest.mark.parametrize(
    ("name", "edge"),
    [
        ("no-keep-retain-z", "keep_retain_z"),
        ("no-cut-forget-z", "cut_forget_z"),
        ("no-keep-retain-y", "keep_retain_y"),
        ("no-cut-forget-y", "cut_forget_y"),
    ],
)
def test_edge_ablation_equals_removing_the_edge_in_python(camu, name, edge):
    assert load_graph(GRAPHS / "ablations" / f"{name}.yaml").interventions == (
        remove_intervention(camu, edge).interventions
    )


# The checker itself can fail -------------------------------------------------------------------
def test_checker_flags_an_undeclared_change(camu):
    path = GRAPHS / "ablations" / "no-cut-forget-y.yaml"
    sneaky = set_weight(load_graph(path), "cut_forget_z", 0.7)
    assert undeclared(camu, sneaky, Declaration.of(path)) == [
        "undeclared changed: interventions.cut_forget_z.weight"
    ]


def test_checker_flags_an_extra_removal_and_a_stage_that_was_not_emptied(camu):
    declared = Declaration({"interventions": ["cut_forget_y"]}, {})
    too_much = remove_intervention(remove_intervention(camu, "cut_forget_y"), "keep_retain_y")
    assert set(undeclared(camu, too_much, declared)) == {
        "undeclared removed: interventions.keep_retain_y",
        "undeclared removed: stages.output",
        "undeclared changed: schedule.order",
    } | {f"undeclared removed: presets.{name}.stages.output.lr" for name, _ in camu.presets}


def test_checker_flags_a_declaration_without_effect(camu):
    declared = Declaration({}, {"interventions.cut_forget_y.weight": 0.01})
    assert undeclared(camu, camu, declared) == [
        "declared override without effect: interventions.cut_forget_y.weight"
    ]


def test_removing_both_edges_of_a_stage_removes_exactly_that_stage(camu, tmp_path):
    path = tmp_path / "no-representation-stage.yaml"
    path.write_text(
        "format: causalunlearn.graph/v1\n"
        f"extends: {CAMU}\n"
        "name: camu-output-only\n"
        "summary: CaMU without keep_retain_z and cut_forget_z (and its representation stage)\n"
        "remove:\n"
        "  interventions: [keep_retain_z, cut_forget_z]\n"
    )
    ablation = load_graph(path)
    assert undeclared(camu, ablation, Declaration.of(path)) == []
    changes = {(c.path, c.kind) for c in graph_diff(camu, ablation)}
    assert changes == {
        ("interventions.keep_retain_z", "removed"),
        ("interventions.cut_forget_z", "removed"),
        ("stages.representation", "removed"),
        ("schedule.order", "changed"),
    } | {(f"presets.{name}.stages.representation.lr", "removed") for name, _ in camu.presets}
    assert ablation.schedule.order == ("output",)
    assert [s.id for s in ablation.stages] == ["output"]
    for name, _ in camu.presets:  # what still applies of each preset is kept
        assert ablation.preset(name) == {
            k: v for k, v in camu.preset(name).items() if not k.startswith("stages.representation.")
        }
