"""``--set`` for sweeps: overrides on entries, applied after the preset, part of the identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from causalunlearn.errors import GraphError, RunError
from causalunlearn.graph import load_graph
from causalunlearn.graph.edit import apply_overrides
from causalunlearn.methods import load_any
from causalunlearn.studies.entries import Entry, has_path, with_assignments
from causalunlearn.studies.sweep_file import read_sweep_file, sweep_entries

METHODS = ["camu", "baselines/finetune", "baselines/ssd", "baselines/scrub"]


def _by_label(entries):
    return {e.label: e for e in entries}


def test_a_path_goes_to_every_method_that_has_it():
    entries = _by_label(sweep_entries(METHODS, assignments=["schedule.epochs=3"]))
    assert entries["ssd"].overrides == ()  # a method entry has no schedule
    for label in ("camu", "finetune", "scrub"):
        assert entries[label].overrides == (("schedule.epochs", 3),)
        method, _ = entries[label].resolve("digits", "class:0")
        assert method.schedule.epochs == 3


def test_overrides_apply_after_the_preset_and_change_the_digest():
    (plain,) = sweep_entries(["camu"])
    (changed,) = sweep_entries(["camu"], assignments=["stages.output.lr=5e-5"])
    method, preset = changed.resolve("digits", "class:0")
    assert preset == "digits-class"  # whose stages.output.lr is 1e-3: the override wins
    assert dict(load_any("camu").presets)["digits-class"][0] == ("stages.output.lr", 1e-3)
    assert method.stage("output").lr == 5e-5
    base = load_graph("camu", preset="digits-class")
    expected = apply_overrides(base, {"stages.output.lr": 5e-5})
    assert method.digest() == expected.digest()
    assert method.digest() != plain.resolve("digits", "class:0")[0].digest()


def test_method_colon_path_goes_to_that_method_only():
    items = ["scrub:stages.max.lr=1e-4", "ssd:params.alpha=5", "schedule.epochs=2"]
    entries = _by_label(sweep_entries(METHODS, assignments=items))
    assert entries["scrub"].overrides == (("stages.max.lr", 1e-4), ("schedule.epochs", 2))
    assert entries["ssd"].overrides == (("params.alpha", 5),)
    assert entries["ssd"].resolve("digits", "class:0")[0].params["alpha"] == 5.0
    assert entries["camu"].overrides == (("schedule.epochs", 2),)


def test_a_later_value_of_a_path_wins():
    (entry,) = sweep_entries(["camu"], assignments=["schedule.epochs=3", "camu:schedule.epochs=4"])
    assert entry.resolve("digits", "class:0")[0].schedule.epochs == 4


def test_a_path_no_method_has_names_the_methods():
    with pytest.raises(RunError) as err:
        sweep_entries(METHODS, assignments=["stages.outptu.lr=1e-3"])
    assert err.value.code == "unknown-override-path"
    assert "camu, finetune, ssd, scrub" in str(err.value) and "METHOD:PATH" in err.value.hint
    assert err.value.details == {
        "path": "stages.outptu.lr",
        "methods": ["camu", "finetune", "ssd", "scrub"],
    }


def test_unknown_method_and_a_path_that_method_lacks():
    with pytest.raises(RunError) as err:
        sweep_entries(METHODS, assignments=["scrubb:stages.max.lr=1e-4"])
    assert err.value.code == "unknown-set-method" and "did you mean 'scrub'" in str(err.value)
    with pytest.raises(GraphError) as err:  # the method's own error, with its hint
        sweep_entries(METHODS, assignments=["scrub:stages.maxx.lr=1e-4"])
    assert err.value.code == "unknown-override-path" and "did you mean 'max'" in str(err.value)


def test_bad_values_and_items_are_errors_before_anything_runs():
    with pytest.raises(GraphError) as err:
        sweep_entries(METHODS, assignments=["schedule.epochs=-1"])
    assert err.value.code == "bad-value"
    with pytest.raises(GraphError) as err:
        sweep_entries(METHODS, assignments=["ssd:params.alpha=abc"])
    assert err.value.code == "wrong-type"
    with pytest.raises(GraphError) as err:
        sweep_entries(METHODS, assignments=["schedule.epochs"])
    assert err.value.code == "bad-override"


def test_ablations_get_the_override_before_the_edge_is_removed():
    entries = sweep_entries(ablate="camu", assignments=["interventions.cut_forget_z.weight=0.7"])
    assert len(entries) == 5 and all(e.overrides for e in entries)
    full = entries[0].resolve("digits", "class:0")[0]
    assert full.intervention("cut_forget_z").weight == 0.7
    removed = _by_label(entries)["camu-no-cut-forget-z"].resolve("digits", "class:0")[0]
    assert "cut_forget_z" not in {i.id for i in removed.interventions}
    kept = _by_label(entries)["camu-no-keep-retain-z"].resolve("digits", "class:0")[0]
    assert kept.intervention("cut_forget_z").weight == 0.7


COLON = """
format: causalunlearn.graph/v1
name: colon
summary: a stage id with a colon
nodes:
  F: {kind: data, split: forget}
  R: {kind: data, split: retain}
  Y: {kind: output}
mechanisms: [[F, Y], [R, Y]]
interventions:
  keep:
    stage: 'st:1'
    data: R
    target: Y
    reference: {labels: R}
    divergence: {kind: cross_entropy}
stages:
  'st:1': {optimizer: sgd, lr: 0.1}
schedule: {order: ['st:1'], zip: [F, R]}
"""


def test_a_colon_inside_a_stage_id_is_part_of_the_path():
    (entry,) = with_assignments([Entry("colon", load_graph(COLON))], ["stages.st:1.lr=0.5"])
    assert entry.overrides == (("stages.st:1.lr", 0.5),)
    assert entry.resolve("digits", "class:0")[0].stage("st:1").lr == 0.5


def test_entry_accepts_a_mapping_and_has_path():
    entry = Entry("camu", load_any("camu"), overrides={"schedule.epochs": 3})
    assert entry.overrides == (("schedule.epochs", 3),)
    assert has_path(load_any("camu"), "stages.output.lr", 1e-3)
    assert not has_path(load_any("baselines/ssd"), "stages.output.lr", 1e-3)
    assert has_path(load_any("baselines/ssd"), "params.alpha", 5)
    assert not has_path(load_any("baselines/ssd"), "params.alphaa", 5)


def test_sweep_file_set_list(tmp_path: Path):
    file = tmp_path / "sweep.yaml"
    file.write_text(
        "methods: [camu, baselines/ssd]\nset: [schedule.epochs=3, ssd:params.alpha=5]\n"
    )
    read = read_sweep_file(file)
    assert read.set == ("schedule.epochs=3", "ssd:params.alpha=5")
    # the file's items first, then the flags' (which win)
    entries = _by_label(
        sweep_entries(read.methods, assignments=[*read.set, "camu:schedule.epochs=4"])
    )
    assert entries["camu"].resolve("digits", "class:0")[0].schedule.epochs == 4
    assert entries["ssd"].overrides == (("params.alpha", 5),)
    file.write_text("methods: [camu]\nset: schedule.epochs=3\n")
    with pytest.raises(RunError) as err:
        read_sweep_file(file)
    assert err.value.code == "bad-sweep-file" and "'set' must be a list" in str(err.value)
    file.write_text("methods: [camu]\nset: [{schedule.epochs: 3}]\n")
    with pytest.raises(RunError) as err:
        read_sweep_file(file)
    assert err.value.code == "bad-sweep-file" and "PATH=VALUE" in str(err.value)


def test_sweep_file_oracles_reach_the_settings(tmp_path: Path, monkeypatch):
    import causalunlearn.cli.sweep as cli_sweep
    from causalunlearn.cli import main

    file = tmp_path / "sweep.yaml"
    file.write_text("methods: [camu]\noracles: 3\n")
    assert read_sweep_file(file).oracles == 3
    seen = []
    monkeypatch.setattr(cli_sweep, "_run", lambda *a: seen.append(a[3].oracles) or 0)
    assert main(["compare", "--sweep", str(file), "--threads", "1"]) == 0
    assert main(["compare", "--sweep", str(file), "--oracles", "5", "--threads", "1"]) == 0
    file.write_text("methods: [camu]\n")
    assert main(["compare", "--sweep", str(file), "--threads", "1"]) == 0
    assert seen == [3, 5, 1]  # the file's count, the flag over it, the default
    for bad in ("0", "true", "'3'", "2.5"):
        file.write_text(f"methods: [camu]\noracles: {bad}\n")
        with pytest.raises(RunError) as err:
            read_sweep_file(file)
        assert err.value.code == "bad-sweep-file" and "'oracles'" in str(err.value), bad


def test_one_graph_at_two_presets_gets_two_labels():
    entries = sweep_entries(["camu", "camu@mnist-random", "baselines/finetune@mnist-class"])
    assert [e.label for e in entries] == ["camu", "camu@mnist-random", "finetune"]
    auto, named, _ = entries
    assert auto.resolve("mnist", "class:0")[1] == "mnist-class"
    assert named.resolve("mnist", "class:0")[1] == "mnist-random"  # the named one, not auto
    (alone,) = sweep_entries(["camu@mnist-random"])
    assert alone.label == "camu"  # a name that does not repeat keeps its folder name
    # @- (no preset) is a preset choice too; two identical specs still clash (in the study).
    assert [e.label for e in sweep_entries(["camu", "camu@-"])] == ["camu", "camu@-"]
    assert [e.label for e in sweep_entries(["camu@-", "camu@-"])] == ["camu@-", "camu@-"]
