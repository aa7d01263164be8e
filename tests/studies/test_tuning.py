"""The tuning protocol: validation views, proxy targets, grids, selection, `causalunlearn tune`."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch

from causalunlearn.cli import main
from causalunlearn.data import (
    load_dataset,
    make_split,
    parse_view_name,
    validation_rows,
    validation_view_name,
)
from causalunlearn.errors import DataError, GraphError, RunError
from causalunlearn.graph import load_graph
from causalunlearn.graph.edit import with_preset
from causalunlearn.methods import load_any
from causalunlearn.studies.entries import auto_preset, dataset_family
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.tuning import (
    DEFAULT_FACTORS,
    candidate_entries,
    parse_grid,
    preset_line,
    proxy_scenario,
    select,
    tune,
)

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"
NEGGRAD = ROOT / "graphs" / "baselines" / "neggrad.yaml"
SCRUB = ROOT / "graphs" / "baselines" / "scrub.yaml"
SSD = ROOT / "graphs" / "baselines" / "ssd.yaml"

#: The average gap's metrics, as SalUn defines it (stated here, not read from the package).
AVERAGE_GAP_KEYS = ("forget_acc", "retain_acc", "test_acc", "mia_efficacy_svc")


def _row_keys(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x.reshape(len(x), -1)}


def test_validation_view_holds_out_training_rows_only():
    base = load_dataset("digits")
    view = load_dataset("digits-val20-s100")
    assert view.name == "digits-val20-s100" and view.classes == base.classes
    kept, held = validation_rows(base.train_y, 0.2, 100)
    # Disjoint, and together exactly the training rows.
    assert not set(kept.tolist()) & set(held.tolist())
    assert sorted(kept.tolist() + held.tolist()) == list(range(len(base.train_y)))
    assert torch.equal(view.train_x, base.train_x[torch.as_tensor(kept)])
    assert torch.equal(view.test_x, base.train_x[torch.as_tensor(held)])
    assert torch.equal(view.test_y, base.train_y[torch.as_tensor(held)])
    # Independently of the indices: every row of the view is a training row, and no view row
    # is a test row that is not also in the training set (digits has a few duplicate images).
    train_rows, test_rows = _row_keys(base.train_x), _row_keys(base.test_x)
    view_rows = _row_keys(view.train_x) | _row_keys(view.test_x)
    assert view_rows <= train_rows
    assert not (view_rows & (test_rows - train_rows))
    # Stratified: round(20%) of every class is held out.
    for c in range(base.num_classes):
        n_c = int((base.train_y == c).sum())
        assert int((view.test_y == c).sum()) == round(0.2 * n_c)
    # Another seed holds out other rows; the name round-trips.
    assert not np.array_equal(validation_rows(base.train_y, 0.2, 101)[1], held)
    assert parse_view_name(validation_view_name("fashion-mnist", 0.25, 3)) == (
        "fashion-mnist",
        0.25,
        3,
    )
    assert len(load_dataset("digits-val25-s3").test_y) == sum(
        round(0.25 * int((base.train_y == c).sum())) for c in range(10)
    )
    with pytest.raises(DataError) as err:
        load_dataset("nosuch-val20-s1")
    assert err.value.code == "unknown-dataset"
    with pytest.raises(DataError) as err:
        validation_view_name("digits", 1.5, 0)
    assert err.value.code == "bad-fraction"


def test_views_resolve_their_base_family_presets():
    camu = load_graph(CAMU)
    assert dataset_family("mnist-val20-s100") == "mnist"
    assert dataset_family("fashion-mnist-val12.5-s7") == "fashion-mnist"
    assert auto_preset(camu, "mnist-val20-s100", "class:1") == "mnist-class"
    assert auto_preset(camu, "digits-val20-s100", "random:0.1") == "digits-random"


def test_proxy_target_differs_from_the_real_one():
    assert proxy_scenario("class:0", 10) == "class:1"
    assert proxy_scenario("class:9", 10) == "class:0"
    assert proxy_scenario("class:0,1", 10) == "class:2,3"  # never one of the real targets
    assert proxy_scenario("class:0", 10, proxy_class=[7]) == "class:7"
    assert proxy_scenario("random:0.1", 10) == "random:0.1"
    for scenario, proxy in (("class:0", [0]), ("class:0", [10]), ("random:0.1", [1])):
        with pytest.raises(RunError) as err:
            proxy_scenario(scenario, 10, proxy_class=proxy)
        assert err.value.code == "bad-proxy-class"
    with pytest.raises(RunError) as err:
        proxy_scenario("perclass:0=0.5", 10)
    assert err.value.code == "unsupported-scenario"


def test_default_grid_gives_every_graph_the_same_budget():
    sizes = {}
    for path in (CAMU, NEGGRAD, SCRUB):
        graph = load_graph(path)
        entries, candidates, preset = candidate_entries(graph, "mnist", "class:0")
        assert preset == "mnist-class"
        sizes[graph.name] = len(candidates)
        base = with_preset(graph, "mnist-class")
        for factor, entry in zip(DEFAULT_FACTORS, entries, strict=True):
            for stage, tuned in zip(base.stages, entry.method.stages, strict=True):
                assert tuned.lr == pytest.approx(stage.lr * factor)
            # Only learning rates change: epochs and batch size stay the preset's (the budget).
            assert entry.method.schedule == base.schedule
    assert len(set(sizes.values())) == 1 and sizes["camu"] == len(DEFAULT_FACTORS), sizes
    with pytest.raises(RunError) as err:
        candidate_entries(load_any(SSD), "digits", "class:0")
    assert err.value.code == "no-default-grid"
    _, candidates, _ = candidate_entries(
        load_any(SSD), "digits", "class:0", parse_grid(["params.alpha=1,3,10"])
    )
    assert [c.overrides["params.alpha"] for c in candidates] == [1.0, 3.0, 10.0]


@pytest.mark.parametrize(
    "spec, words",
    [
        ("stages.unlearn.lr", "no '='"),
        ("=1e-3", "empty"),
        ("stages.unlearn.lr=1e-3,,1e-2", "empty value"),
        ("stages.unlearn.lr=1e-3,0.001", "listed twice"),
    ],
)
def test_a_bad_grid_is_a_clear_error(spec, words, capsys):
    with pytest.raises(RunError) as err:
        parse_grid([spec])
    assert err.value.code == "bad-grid" and words in str(err.value)
    assert main(["tune", str(NEGGRAD), "--grid", spec, "--out", "unused"]) == 1
    assert "bad-grid" in capsys.readouterr().err


def test_grid_paths_are_checked_against_the_graph(capsys):
    with pytest.raises(RunError) as err:
        parse_grid(["schedule.epochs=2", "schedule.epochs=3"])
    assert "twice" in str(err.value)
    with pytest.raises(GraphError) as gerr:
        candidate_entries(
            load_graph(NEGGRAD), "digits", "class:0", parse_grid(["stages.unlern.lr=1e-3"])
        )
    assert "unknown-override-path" in str(gerr.value) and "unlearn" in str(gerr.value)
    assert main(["tune", str(NEGGRAD), "--grid", "stages.unlern.lr=1,2", "--out", "x"]) == 1
    assert "did you mean" in capsys.readouterr().err


def test_preset_line_merges_the_preset_and_the_choice():
    line = preset_line(
        "mnist-class", {"schedule.epochs": 2, "stages.output.lr": 1e-3}, {"stages.output.lr": 4e-5}
    )
    assert line == "mnist-class: {schedule.epochs: 2, stages.output.lr: 4.0e-5}"


def test_select_breaks_ties_by_time():
    rows = {
        "a": {"average_gap": {"mean": 2.0}, "unlearn_seconds": {"mean": 1.0}},
        "b": {"average_gap": {"mean": 1.0}, "unlearn_seconds": {"mean": 5.0}},
        "c": {"average_gap": {"mean": 1.0}, "unlearn_seconds": {"mean": 3.0}},
        "d": {"unlearn_seconds": {"mean": 0.1}},  # no average gap: last
    }
    assert select(rows, ["a", "b", "c", "d"]) == "c"
    assert select(rows, ["a", "d"]) == "a"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One small tuning run on digits class 0 (two seeds, three candidates)."""
    folder = tmp_path_factory.mktemp("tune")
    settings = StudySettings(
        seeds=(100, 101), progress=False, threads=1, cache_dir=str(folder / "cache")
    )
    report = tune(
        load_graph(NEGGRAD),
        "digits",
        "class:0",
        settings,
        folder / "out",
        grid=parse_grid(["stages.unlearn.lr=1e-3,3e-3,1e-2"]),
    )
    return report, folder / "out"


def test_tuning_runs_on_the_proxy_task_of_the_validation_view(tuned):
    report, out = tuned
    task = report["task"]
    assert task["validation_view"] == "digits-val20-s100" and task["proxy_scenario"] == "class:1"
    # Every run and reference is on the view; nothing on the real dataset.
    assert {p.name for p in (out / "references").iterdir()} == {"digits-val20-s100"}
    for label in (c["label"] for c in report["candidates"] if not c["diverged"]):
        assert {p.name for p in (out / "runs" / label).iterdir()} == {"digits-val20-s100"}
    # The task's forget set (re-derived from the view) holds class 1 and not the real class 0.
    view = load_dataset("digits-val20-s100")
    for seed in task["seeds"]:
        split = make_split(view.train_y, task["proxy_scenario"], seed, view.num_classes)
        forgotten = set(view.train_y[torch.as_tensor(split.forget.copy())].tolist())
        assert forgotten == {1}
        cell = json.loads(
            next((out / "runs").glob(f"*/digits-val20-s100/class-1/seed{seed}.json")).read_text()
        )
        assert cell["split"]["digest"] == split.digest()


def test_the_chosen_candidate_has_the_smallest_average_gap_in_the_written_rows(tuned):
    report, out = tuned
    seeds = report["task"]["seeds"]
    oracles = {
        s: json.loads(
            (out / "references" / "digits-val20-s100" / "class-1" / f"seed{s}.json").read_text()
        )["metrics"]["oracle"]
        for s in seeds
    }
    gaps = {}
    for candidate in report["candidates"]:
        label = candidate["label"]
        per_seed = []
        for seed in seeds:
            path = out / "runs" / label / "digits-val20-s100" / "class-1" / f"seed{seed}.json"
            if not path.is_file():
                break
            metrics = json.loads(path.read_text())["metrics"]
            # The average gap recomputed from the metrics and the same seed's oracle.
            mine = sum(abs(metrics[k] - oracles[seed][k]) for k in AVERAGE_GAP_KEYS) / 4
            assert metrics["average_gap"] == pytest.approx(mine)
            per_seed.append(mine)
        if len(per_seed) == len(seeds):
            gaps[label] = sum(per_seed) / len(per_seed)
            assert candidate["average_gap"] == pytest.approx(gaps[label])
        else:
            assert candidate["diverged"]
    assert len(gaps) >= 2, "the test needs two finished candidates to compare"
    best = min(gaps.values())
    assert gaps[report["chosen"]["label"]] == best
    # The noise floor is the oracle's sample std over the seeds, averaged over the metrics.
    floor = statistics.mean(
        statistics.stdev(oracles[s][k] for s in seeds) for k in AVERAGE_GAP_KEYS
    )
    assert report["noise_floor"] == pytest.approx(floor)
    chosen_lr = report["chosen"]["overrides"]["stages.unlearn.lr"]
    assert report["preset_line"].startswith("digits-class: {stages.unlearn.lr: ")
    assert float(report["preset_line"].split("lr: ")[1].split(",")[0]) == chosen_lr
    text = (out / "tuning.md").read_text()
    assert f"**{report['chosen']['label']}** (chosen)" in text
    assert all(c["label"] in text for c in report["candidates"])
    assert not math.isnan(report["noise_floor"])


def test_cli_tune_prints_the_table_and_the_preset(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["tune", str(NEGGRAD), "--seeds", "100", "--out", str(out), "--no-progress"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--threads", "1"]
    grid = ["--grid", "stages.unlearn.lr=1e-3,1e-2,1e-1"]
    assert main([*args, *grid]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "tuning.json").read_text())
    assert "| candidate |" in printed and "Criterion: smallest average gap" in printed
    assert report["preset_line"] in printed
    assert [c["label"] for c in report["candidates"]] == [
        "neggrad[unlearn.lr=0.001]",
        "neggrad[unlearn.lr=0.01]",
        "neggrad[unlearn.lr=0.1]",
    ]
    # Ascent at lr 0.1 diverges on this task: recorded, not chosen, the others still ran.
    assert report["candidates"][2]["diverged"] and "non-finite" in printed
    assert report["chosen"]["label"] != "neggrad[unlearn.lr=0.1]"
    # Running it again resumes: every cell is already there (no cell file rewritten).
    cells = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("seed*.json")}
    assert len(cells) == 3  # the diverged candidate's run is recorded as failed
    statuses = sorted(json.loads(p.read_text())["status"] for p in cells)
    assert statuses == ["failed", "finished", "finished"]
    assert main([*args, *grid]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("seed*.json")} == cells
    assert json.loads((out / "tuning.json").read_text())["chosen"] == report["chosen"]


def test_a_tuning_where_every_candidate_diverges_still_writes_its_report(tmp_path, capsys):
    out = tmp_path / "all-diverge"
    args = ["tune", str(NEGGRAD), "--seeds", "100", "--out", str(out), "--no-progress"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--threads", "1"]
    # Ascent at lr 0.1 already diverges on this task (test above); lr 1 diverges sooner.
    assert main([*args, "--grid", "stages.unlearn.lr=0.1,1.0"]) != 0
    captured = capsys.readouterr()
    assert "no-candidate" in captured.err and "tuning.md" in captured.err
    # The table of what was tried is printed before the error.
    assert "| candidate |" in captured.out and "Chosen: none" in captured.out
    report = json.loads((out / "tuning.json").read_text())
    assert report["chosen"] is None and report["preset_line"] is None
    assert [bool(c["diverged"]) for c in report["candidates"]] == [True, True]
    assert "Chosen: none" in (out / "tuning.md").read_text()


# -- nested seeds ------------------------------------------------------------------------------

NESTED = ["--train-seeds", "0,1", "--unlearn-seeds", "0,1"]
LRS = ("1e-3", "3e-3")


@pytest.fixture(scope="module")
def nested_tune(tmp_path_factory):
    """``causalunlearn tune --train-seeds 0,1 --unlearn-seeds 0,1`` on digits, two candidates
    (originals and oracles trained for one epoch, to stay fast)."""
    folder = tmp_path_factory.mktemp("nested-tune")
    args = ["tune", str(NEGGRAD), *NESTED, "--grid", f"stages.unlearn.lr={','.join(LRS)}"]
    args += ["--out", str(folder / "out"), "--cache-dir", str(folder / "cache")]
    args += ["--epochs-original", "1", "--threads", "1", "--no-progress"]
    assert main(args) == 0
    return args, folder / "out"


def _cell_files(out: Path, label: str) -> dict[tuple[int, int, int], Path]:
    folder = out / "runs" / label / "digits-val20-s100" / "class-1"
    return {
        (c["seeds"]["train"], c["seeds"]["split"], c["seeds"]["unlearn"])
        if "seeds" in c
        else (c["seed"],) * 3: p
        for p in folder.glob("*.json")
        for c in [json.loads(p.read_text())]
    }


def test_nested_tuning_chooses_on_the_mean_over_every_cell(nested_tune, capsys):
    args, out = nested_tune
    report = json.loads((out / "tuning.json").read_text())
    task = report["task"]
    # The seeds are recorded as compare records them (sweep.json): the three lists, no seeds.
    assert "seeds" not in task
    nested = ("train_seeds", "split_seeds", "unlearn_seeds")
    assert [task[k] for k in nested] == [[0, 1], [0], [0, 1]]
    describe = json.loads((out / "sweep.json").read_text())
    assert {k: describe[k] for k in nested} == {k: task[k] for k in nested}
    expected = {(t, 0, u) for t in (0, 1) for u in (0, 1)}
    refs = out / "references" / "digits-val20-s100" / "class-1"
    # One reference (original + oracle) per training seed: seed0.json, seed1-split0.json.
    oracles = {
        t: json.loads((refs / name).read_text())["metrics"]["oracle"]
        for t, name in ((0, "seed0.json"), (1, "seed1-split0.json"))
    }
    means = {}
    for candidate in report["candidates"]:
        files = _cell_files(out, candidate["label"])
        assert set(files) == expected  # 4 cells per candidate
        gaps = []
        for (t, _, _), path in files.items():
            cell = json.loads(path.read_text())
            assert cell["status"] == "finished"
            # Each cell's average gap, recomputed against its own original's oracle.
            mine = sum(abs(cell["metrics"][k] - oracles[t][k]) for k in AVERAGE_GAP_KEYS) / 4
            assert cell["metrics"]["average_gap"] == pytest.approx(mine)
            gaps.append(mine)
        means[candidate["label"]] = statistics.mean(gaps)
        assert candidate["average_gap"] == pytest.approx(means[candidate["label"]])
        assert candidate["average_gap_std"] == pytest.approx(statistics.stdev(gaps))
        assert len(candidate["seeds"]) == 4
    assert len(set(means.values())) == 2, "the test needs two candidates that differ"
    assert report["chosen"]["label"] == min(means, key=means.get)
    # The noise floor is the oracle's sample std over the two originals' oracles.
    floor = statistics.mean(
        statistics.stdev(oracles[t][k] for t in (0, 1)) for k in AVERAGE_GAP_KEYS
    )
    assert report["noise_floor"] == pytest.approx(floor)
    text = (out / "tuning.md").read_text()
    assert "training seeds 0, 1 × split seeds 0 × unlearning seeds 0, 1 (4 cells)" in text
    assert "where the variance comes from" in (out / "summary.md").read_text()
    # Resuming computes nothing: no cell file is rewritten.
    cells = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("seed*.json")}
    assert len(cells) == 8
    capsys.readouterr()
    assert main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("seed*.json")} == cells
    assert json.loads((out / "tuning.json").read_text())["chosen"] == report["chosen"]


@pytest.mark.parametrize(
    ("flags", "rc", "code"),
    [
        (["--seeds", "100", "--train-seeds", "0,1"], 1, "mixed-seeds"),
        (["--unlearn-seeds", "1,1"], 1, "duplicate-seeds"),
        (["--train-seeds", "0,-1"], 1, "bad-seed"),
        (["--split-seeds", ","], 2, "no-seeds"),
        (["--train-seeds", "a"], 2, "bad-seed"),
    ],
)
def test_bad_nested_seeds_are_the_errors_of_compare(flags, rc, code, tmp_path, capsys):
    """tune and compare refuse the same bad seeds with the same coded error, before computing."""
    errors = {}
    for command in (["tune", str(NEGGRAD)], ["compare", str(NEGGRAD)]):
        out = tmp_path / command[0]
        assert main([*command, *flags, "--out", str(out), "--no-progress"]) == rc
        err = capsys.readouterr().err
        assert f"[{code}]" in err, err
        errors[command[0]] = err.split(f"[{code}]", 1)[1].strip().splitlines()[0]
        assert not out.exists()  # nothing computed, no folder claimed
    if rc == 1:  # the same message (argparse's usage errors name the program)
        assert errors["tune"] == errors["compare"]


def test_tuning_seed_fields_default_and_the_flags():
    from causalunlearn.studies.tuning import TUNING_SEEDS, tuning_seed_fields

    assert tuning_seed_fields() == {"seeds": TUNING_SEEDS} == {"seeds": (100,)}
    assert tuning_seed_fields(seeds=[3]) == {"seeds": (3,)}
    assert tuning_seed_fields(train_seeds=[0, 1], unlearn_seeds=[2]) == {
        "train_seeds": (0, 1),
        "unlearn_seeds": (2,),
    }
    # Unset nested lists are 0, as in compare (StudySettings fills them).
    fields = tuning_seed_fields(train_seeds=[100, 101])
    assert StudySettings(**fields).seed_plan() == {
        "train_seeds": [100, 101],
        "split_seeds": [0],
        "unlearn_seeds": [0],
    }
