"""Sweeps (compare / ablate): resume, identity checks, summaries, plots, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from causalunlearn.cli import main
from causalunlearn.errors import RunError
from causalunlearn.graph import load_graph
from causalunlearn.graph.edit import apply_overrides, graph_diff
from causalunlearn.studies.entries import Entry, ablation_entries, auto_preset, load_entry
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.summary import _stats
from causalunlearn.studies.sweep import Sweep

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"
FINETUNE = ROOT / "graphs" / "baselines" / "finetune.yaml"


def _entries() -> list[Entry]:
    return [load_entry(str(CAMU)), load_entry(str(FINETUNE))]


def _settings(**kw) -> StudySettings:
    return StudySettings(seeds=(0, 1), progress=False, threads=1, **kw)


def _cell_numbers(out: Path) -> dict[str, dict]:
    """Every cell's metrics without wall times, by path."""
    cells = {}
    for path in sorted((out / "runs").rglob("seed*.json")):
        metrics = json.loads(path.read_text())["metrics"]
        metrics.pop("unlearn_seconds")
        cells[str(path.relative_to(out))] = metrics
    return cells


def test_interrupted_sweep_resumes_to_the_same_results(tmp_path):
    def sweep(out, on_cell=None):
        settings = _settings(relearn=True)
        return Sweep(
            _entries(), ["digits"], ["class:0"], settings, out, plots=False, on_cell=on_cell
        )

    whole = tmp_path / "whole"
    sweep(whole).run()

    parts = tmp_path / "parts"
    done = []

    def stop_after_two(cell):
        done.append(cell)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(parts, stop_after_two).run()
    # Two finished cells on disk, nothing half written, no summary yet.
    assert len(list((parts / "runs").rglob("seed*.json"))) == 2
    assert not [p for p in parts.rglob("*") if p.name.startswith(".")]
    assert not (parts / "summary.json").exists()

    resumed = []
    sweep(parts, resumed.append).run()
    assert len(resumed) == 2  # only the missing cells ran
    assert _cell_numbers(parts) == _cell_numbers(whole)
    assert len(_cell_numbers(whole)) == 4

    def table(out):
        rows = json.loads((out / "summary.json").read_text())["tables"][0]["rows"]
        for row in rows.values():
            row.pop("unlearn_seconds", None)
        return rows

    assert table(parts) == table(whole)


def test_a_cell_of_another_graph_is_refused_then_recomputed_with_overwrite(tmp_path):
    camu = load_graph(CAMU)
    Sweep([Entry("m", camu, None)], ["digits"], ["class:0"], _settings(), tmp_path).run()
    changed = apply_overrides(camu, {"stages.output.lr": 5e-4})
    with pytest.raises(RunError) as err:
        Sweep([Entry("m", changed, None)], ["digits"], ["class:0"], _settings(), tmp_path).run()
    assert err.value.code == "sweep-mismatch"
    ran = []
    Sweep(
        [Entry("m", changed, None)],
        ["digits"],
        ["class:0"],
        _settings(),
        tmp_path,
        overwrite=True,
        on_cell=ran.append,
    ).run()
    assert len(ran) == 2
    assert all(c["identity"]["digest"] == changed.digest() for c in ran)


def test_summary_rows_best_marks_and_plots(tmp_path):
    summary = Sweep(_entries(), ["digits"], ["class:0"], _settings(curves=True), tmp_path).run()
    table = summary["tables"][0]
    rows = table["rows"]
    assert set(rows) == {"original", "oracle", "camu", "finetune"}
    # Gap of a method = mean over seeds of |value - same seed's oracle|, from the files.
    for label in ("camu", "finetune"):
        gaps = []
        for seed in (0, 1):
            cell = json.loads(
                (tmp_path / "runs" / label / "digits" / "class-0" / f"seed{seed}.json").read_text()
            )
            ref = json.loads(
                (tmp_path / "references" / "digits" / "class-0" / f"seed{seed}.json").read_text()
            )
            gaps.append(abs(cell["metrics"]["forget_acc"] - ref["metrics"]["oracle"]["forget_acc"]))
        assert rows[label]["forget_acc"]["gap"] == pytest.approx(sum(gaps) / 2)
    # The best-marked method has the smallest gap.
    best = table["best"]["forget_acc"]
    smallest = min(rows[m]["forget_acc"]["gap"] for m in ("camu", "finetune"))
    assert all(rows[m]["forget_acc"]["gap"] == smallest for m in best)
    # Both remove class 0 to the oracle's 0 % here (fine-tune at its tuned digits lr 0.1, through
    # the retain rows alone): a tie, and every tied method is marked, in table order.
    assert rows["camu"]["forget_acc"]["gap"] == rows["finetune"]["forget_acc"]["gap"] == 0
    assert best == ["camu", "finetune"]
    text = (tmp_path / "summary.md").read_text()
    assert "**" in text and "retrain oracle" in text and "Δ" in text
    for name in summary["plots"]:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("relearn" in p for p in summary["plots"])


def test_stats_use_sample_std_and_same_seed_oracle():
    per_seed = [{"forget_acc": 10.0}, {"forget_acc": 20.0}, {"forget_acc": 30.0}]
    oracles = [{"forget_acc": 12.0}, {"forget_acc": 15.0}, {"forget_acc": 30.0}]
    stat = _stats(per_seed, oracles)["forget_acc"]
    assert stat["mean"] == 20.0
    assert stat["std"] == pytest.approx(10.0)  # ddof=1: sqrt((100 + 0 + 100) / 2)
    assert stat["gap"] == pytest.approx((2 + 5 + 0) / 3)
    assert "gap" not in _stats(per_seed, None)["forget_acc"]


def test_ablation_entries_remove_one_edge_each():
    camu = load_graph(CAMU)
    entries = ablation_entries(camu)
    assert [e.label for e in entries][0] == "camu"
    assert len(entries) == 1 + len(camu.interventions)
    for entry in entries[1:]:
        graph, preset = entry.resolve("mnist", "class:0")
        assert preset == "mnist-class"
        full, _ = entries[0].resolve("mnist", "class:0")
        removed = [c for c in graph_diff(full, graph) if c.kind == "removed"]
        assert [c.path for c in removed if c.path.startswith("interventions.")] == [
            f"interventions.{entry.remove}"
        ]
        assert graph.name == entry.label


def test_auto_preset_by_dataset_family_and_scenario():
    camu = load_graph(CAMU)
    finetune = load_graph(FINETUNE)
    assert auto_preset(camu, "digits", "class:0") == "digits-class"
    assert auto_preset(camu, "fashion-mnist", "random:0.1") == "fashion-mnist-random"
    assert auto_preset(camu, "cifar10-jpeg", "class:3") == "cifar-class"
    assert auto_preset(finetune, "digits", "random:0.1") is None
    with pytest.raises(RunError) as err:
        load_entry(f"{CAMU}@mnist-clas")
    assert err.value.code == "unknown-preset" and "mnist-class" in str(err.value)


def test_duplicate_labels_are_refused():
    with pytest.raises(RunError) as err:
        Sweep(_entries() + _entries()[:1], ["digits"], ["class:0"], _settings(), "unused")
    assert err.value.code == "duplicate-method"


def test_cli_compare_with_a_sweep_file_and_ablate(tmp_path, capsys):
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(
        f"format: causalunlearn.sweep/v1\nmethods: [{FINETUNE}]\ndatasets: [digits]\n"
        "scenarios: ['class:1']\nseeds: [0]\n"
    )
    out = tmp_path / "cmp"
    assert main(["compare", str(CAMU), "--sweep", str(sweep_file), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| finetune |" in printed and "| camu |" in printed
    assert (out / "runs" / "camu" / "digits" / "class-1" / "seed0.json").is_file()

    sweep_file.write_text("methods: []\nseed: [0]\n")
    assert main(["compare", "--sweep", str(sweep_file), "--out", str(out)]) == 1
    assert "unknown field 'seed'" in capsys.readouterr().err

    out = tmp_path / "abl"
    assert main(["ablate", str(CAMU), "--seeds", "0", "--out", str(out)]) == 0
    labels = {p.name for p in (out / "runs").iterdir()}
    assert labels == {
        "camu",
        *(f"camu-no-{e.id.replace('_', '-')}" for e in load_graph(CAMU).interventions),
    }
    assert (out / "plots" / "ablation-digits-class-0.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    # An ablation without the forget output term keeps class 0 better than full CaMU.
    rows = summary["tables"][0]["rows"]
    assert rows["camu-no-cut-forget-y"]["forget_acc"]["mean"] > rows["camu"]["forget_acc"]["mean"]
    assert not math.isnan(rows["camu"]["average_gap"]["mean"])


def test_the_python_example_of_the_sweeps_page_runs(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "sweeps.md").read_text()
    block = text.split("## From Python")[1].split("```python")[1].split("```")[0]
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(block.replace('"runs/py"', repr(str(tmp_path))), "sweeps.md", "exec"), namespace)  # noqa: S102
    rows = namespace["summary"]["tables"][0]["rows"]
    assert {"finetune", "ssd", "camu", "camu-no-cut-forget-y"} <= set(rows)
    assert set(rows["camu"]["forget_acc"]) >= {"mean", "std", "n", "gap", "gap_std"}


def test_a_diverging_method_is_a_failed_run_not_a_crashed_sweep(tmp_path):
    neggrad = apply_overrides(
        load_graph(ROOT / "graphs" / "baselines" / "neggrad.yaml"),
        {"stages.unlearn.lr": 1e4, "schedule.epochs": 5},
    )
    entries = [Entry("blowup", neggrad, None), load_entry(str(FINETUNE))]
    summary = Sweep(entries, ["digits"], ["class:0"], _settings(), tmp_path).run()
    cell = json.loads(
        (tmp_path / "runs" / "blowup" / "digits" / "class-0" / "seed0.json").read_text()
    )
    assert cell["status"] == "failed" and cell["error"]["code"] == "non-finite-loss"
    table = summary["tables"][0]
    assert table["failures"]["blowup"]["seeds"] == [0, 1]
    assert "finetune" in table["rows"] and "forget_acc" in table["rows"]["finetune"]
    assert "blowup (failed on seed 0, 1: non-finite-loss)" in (tmp_path / "summary.md").read_text()
    ran = []  # a failed run is deterministic: resuming does not repeat it
    Sweep(entries, ["digits"], ["class:0"], _settings(), tmp_path, on_cell=ran.append).run()
    assert ran == []


def test_a_class_only_method_on_a_random_split_is_a_failed_cell_not_a_stopped_sweep(tmp_path):
    # head-zero raises [class-removal-only] on a random split: the grid goes on, the class
    # scenario has its row, the random one names the reason, and a resume does not retry it.
    entries = [load_entry(str(ROOT / "graphs" / "baselines" / "head-zero.yaml"))]
    settings = StudySettings(seeds=(0,), progress=False, threads=1)
    scenarios = ["class:0", "random:0.1"]
    summary = Sweep(entries, ["digits"], scenarios, settings, tmp_path).run()
    runs = tmp_path / "runs" / "head-zero" / "digits"
    assert json.loads((runs / "class-0" / "seed0.json").read_text())["status"] == "finished"
    cell = json.loads((runs / "random-0.1" / "seed0.json").read_text())
    assert cell["status"] == "failed" and cell["error"]["code"] == "class-removal-only"
    by_scenario = {t["scenario"]: t for t in summary["tables"]}
    assert by_scenario["class:0"]["rows"]["head-zero"]["forget_acc"]["mean"] == 0.0
    assert by_scenario["random:0.1"]["failures"]["head-zero"]["errors"] == ["class-removal-only"]
    ran = []
    Sweep(entries, ["digits"], scenarios, settings, tmp_path, on_cell=ran.append).run()
    assert ran == []


def test_summary_only_summarises_without_computing(tmp_path, capsys):
    out = tmp_path / "s"
    args = ["compare", str(FINETUNE), "--seeds", "0,1", "--out", str(out), "--no-plots"]
    assert main([*args[:3], "0", *args[4:]]) == 0  # seed 0 only
    capsys.readouterr()
    assert main([*args, "--summary-only"]) == 0  # seed 1 is not computed, only summarised
    assert not (out / "runs" / "finetune" / "digits" / "class-0" / "seed1.json").exists()
    assert "| finetune (seeds 0 only) |" in capsys.readouterr().out


def test_the_sweep_files_of_the_results_page_name_every_shipped_method():
    from causalunlearn.studies.sweep_file import read_sweep_file

    shipped = {
        str(p.relative_to(ROOT))
        for folder in ("graphs/ablations", "graphs/baselines")
        for p in (ROOT / folder).glob("*.yaml")
    } | {"graphs/camu.yaml"}
    folder = ROOT / "docs" / "sweeps-results"
    files = sorted(folder.glob("grid-*.yaml"))  # the grids; other files are smaller studies
    assert len(files) == 4
    for path in sorted(set(folder.glob("*.yaml")) - set(files)):
        for method in read_sweep_file(str(path)).methods:
            graph, _, preset = method.partition("@")  # PATH or PATH@PRESET
            assert graph in shipped, (path.name, method)
            if preset:
                load_entry(str(ROOT / method))  # the named preset exists
    # head-zero is defined for class removal only ([class-removal-only] on a random split).
    class_only = {"graphs/baselines/head-zero.yaml"}
    for path in files:
        sweep = read_sweep_file(str(path))
        wanted = shipped if "-class" in path.name else shipped - class_only
        assert set(sweep.methods) == wanted, path.name
        assert sweep.seeds == (0, 1, 2)
        for method in sweep.methods:
            load_entry(str(ROOT / method))  # every entry loads
