"""causalunlearn.results: the long and wide tables of a run folder and a sweep folder, and the CSV
of ``compare --csv``, checked value by value against the manifest and cell files they read."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
from pathlib import Path

import pytest

import causalunlearn
from causalunlearn.cli import main
from causalunlearn.errors import RunError
from causalunlearn.graph import load_graph
from causalunlearn.recipes import Recipe
from causalunlearn.studies.experiment import RunSettings, run_experiment
from causalunlearn.studies.results import COLUMNS, GROUP_METRICS, INDEX, result_rows, results

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"
FINETUNE = ROOT / "graphs" / "baselines" / "finetune.yaml"
FAST = Recipe(epochs=1)
ROLES = ("original", "unlearned", "oracle")


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("results-run")
    settings = RunSettings(
        dataset="digits",
        seeds=(0,),
        recipe=FAST,
        cache_dir=str(tmp / "cache"),
        progress=False,
        threads=1,
    )
    run_experiment(load_graph(CAMU, preset="digits-class"), settings, tmp / "run")
    return tmp / "run"


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("results-sweep")
    argv = ["compare", str(CAMU), str(FINETUNE), "--seeds", "0", "--epochs-original", "1"]
    argv += ["--cache-dir", str(tmp / "cache"), "--out", str(tmp / "sweep"), "--no-plots"]
    argv += ["--threads", "1", "--csv", str(tmp / "long.csv")]
    assert main(argv) == 0
    return tmp / "sweep", tmp / "long.csv"


def test_run_folder_long_and_wide(run_folder):
    pytest.importorskip("pandas", reason="pandas is not installed (the [pandas] extra)")
    manifest = json.loads((run_folder / "manifest.json").read_text())
    metrics = manifest["per_seed"][0]["metrics"]
    long = causalunlearn.results(run_folder)
    assert list(long.columns) == list(COLUMNS)
    assert len(long) == sum(len(metrics[r]) for r in ROLES)
    assert set(long.method) == {"camu"} and set(long.dataset) == {"digits"}
    assert set(long.scenario) == {"class:0"} and set(long.seed) == {0}
    assert list(dict.fromkeys(long.model)) == list(ROLES)
    for row in long.itertuples():
        assert _same(row.value, metrics[row.model][row.metric]), (row.model, row.metric)
    assert str(long.value.dtype) == "float64" and str(long.seed.dtype) == "int64"
    # the manifest.json file itself is accepted too
    assert results(run_folder / "manifest.json").equals(long)

    wide = results(run_folder, wide=True)
    keys = list(dict.fromkeys(k for r in ROLES for k in metrics[r]))
    assert wide.shape == (3, len(INDEX) + len(keys))
    assert list(wide.columns) == [*INDEX, *keys]
    assert list(wide.model) == list(ROLES)
    for row in wide.to_dict("records"):
        for key in keys:
            expected = metrics[row["model"]].get(key, math.nan)
            assert _same(row[key], expected), (row["model"], key)
    assert math.isnan(wide.loc[wide.model == "original", "unlearn_seconds"].item())


def test_sweep_folder_long_wide_and_csv(sweep_folder):
    pytest.importorskip("pandas", reason="pandas is not installed (the [pandas] extra)")
    folder, csv_file = sweep_folder
    long = results(folder)
    cells = {
        m: json.loads((folder / "runs" / m / "digits" / "class-0" / "seed0.json").read_text())
        for m in ("camu", "finetune")
    }
    ref = json.loads((folder / "references" / "digits" / "class-0" / "seed0.json").read_text())
    expected = {
        m: {"original": ref["metrics"]["original"], "unlearned": cell["metrics"]}
        | {"oracle": ref["metrics"]["oracle"]}
        for m, cell in cells.items()
    }
    assert set(long.method) == {"camu", "finetune"}
    assert len(long) == sum(len(v) for e in expected.values() for v in e.values())
    for row in long.itertuples():
        assert _same(row.value, expected[row.method][row.model][row.metric])
    wide = results(folder, wide=True)
    assert wide.shape[0] == 2 * 3  # two methods × three models, one seed
    assert set(zip(wide.method, wide.model, strict=True)) == {
        (m, r) for m in ("camu", "finetune") for r in ROLES
    }
    # the original's numbers are the same reference under both methods
    originals = wide[wide.model == "original"].drop(columns="method")
    assert originals.iloc[0].equals(originals.iloc[1])

    with csv_file.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(COLUMNS)
    plain = result_rows(folder)
    assert len(rows) == len(plain) == len(long)
    for got, want in zip(rows, plain, strict=True):
        assert got["method"] == want["method"] and got["metric"] == want["metric"]
        assert got["model"] == want["model"] and int(got["seed"]) == want["seed"]
        value = math.nan if got["value"] == "" else float(got["value"])
        assert _same(value, want["value"])


def test_errors_name_the_fix(tmp_path, monkeypatch, run_folder):
    with pytest.raises(RunError) as err:
        result_rows(tmp_path)
    assert err.value.code == "not-a-results-folder"
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)  # import pandas fails
    with pytest.raises(RunError) as err:
        results(run_folder)
    assert err.value.code == "pandas-missing"
    assert "pip install causalunlearn[pandas]" in err.value.hint
    assert result_rows(run_folder)  # the plain rows need no pandas


# ---- group metrics (oracle_klom, --oracles K): one value per run / sweep method -------------

KLOM_SEEDS = (0, 1)


@pytest.fixture(scope="module")
def klom_folders(tmp_path_factory):
    """Digits class 0, CaMU, seeds 0 and 1, 8 oracles per split (9 distinct: training seeds
    0..8 share the one retain set): a sweep and a run of the same settings and cache (the run
    trains nothing), each with an ``oracle_klom`` for its two seeds."""
    from causalunlearn.metrics.oracle_distribution import KLOM_MIN_ORACLES
    from causalunlearn.studies.entries import load_entry
    from causalunlearn.studies.settings import StudySettings
    from causalunlearn.studies.sweep import Sweep

    tmp = tmp_path_factory.mktemp("results-klom")
    shared = {
        "seeds": KLOM_SEEDS,
        "recipe": FAST,
        "cache_dir": str(tmp / "cache"),
        "progress": False,
        "threads": 1,
        "oracles": KLOM_MIN_ORACLES,
    }
    entries = [load_entry(f"{CAMU}@digits-class"), load_entry(f"{FINETUNE}@digits-class")]
    sweep = Sweep(
        entries, ["digits"], ["class:0"], StudySettings(**shared), tmp / "sweep", plots=False
    )
    sweep.run()
    settings = RunSettings(dataset="digits", scenario="class:0", **shared)
    run_experiment(load_graph(CAMU, preset="digits-class"), settings, tmp / "run")
    return tmp / "sweep", tmp / "run"


def _klom_rows(rows):
    return [r for r in rows if r["metric"] == "oracle_klom"]


def test_run_folder_repeats_its_klom_on_each_seed(klom_folders):
    _, run = klom_folders
    manifest = json.loads((run / "manifest.json").read_text())
    klom = manifest["oracle_distribution"]
    assert klom["seeds"] == list(KLOM_SEEDS) and math.isfinite(klom["value"])
    assert manifest["summary"]["unlearned"]["oracle_klom"]["mean"] == klom["value"]
    rows = result_rows(run)
    found = _klom_rows(rows)
    assert [(r["model"], r["seed"]) for r in found] == [("unlearned", s) for s in KLOM_SEEDS]
    assert all(r["value"] == klom["value"] for r in found)
    # every per-seed value is still there, each once: only the group value was added
    per_seed = sum(len(e["metrics"][m]) for e in manifest["per_seed"] for m in e["metrics"])
    assert len(rows) == per_seed + len(KLOM_SEEDS)


def test_sweep_folder_repeats_each_methods_klom_on_its_cells(klom_folders, tmp_path):
    sweep, run = klom_folders
    table = json.loads((sweep / "summary.json").read_text())["tables"][0]
    assert set(table["oracle_distribution"]) == {"camu", "finetune"}
    rows = result_rows(sweep)
    got: dict[tuple[str, int], float] = {}
    for r in _klom_rows(rows):
        assert r["model"] == "unlearned"
        got[(r["method"], r["seed"])] = r["value"]
    want = {
        (label, s): table["oracle_distribution"][label]["value"]
        for label in ("camu", "finetune")
        for s in KLOM_SEEDS
    }
    assert got == want
    assert got[("camu", 0)] != got[("finetune", 0)]  # each method its own group
    # the sweep's camu group and the run of the same seeds, K and cache: one number
    (from_run,) = {r["value"] for r in _klom_rows(result_rows(run))}
    assert got[("camu", 0)] == pytest.approx(from_run, rel=1e-9)

    if importlib.util.find_spec("pandas") is not None:
        wide = results(sweep, wide=True)
        assert "oracle_klom" in wide.columns
        unlearned = wide[wide.model == "unlearned"]
        by_cell = {(r["method"], r["seed"]): r["oracle_klom"] for r in unlearned.to_dict("records")}
        assert by_cell == want
        assert wide[wide.model != "unlearned"].oracle_klom.isna().all()
        long = results(sweep)
        assert set(long[long.metric.isin(GROUP_METRICS)].model) == {"unlearned"}

    # a group names its seeds: a cell outside them gets no value; no summary, no group value
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["tables"][0]["oracle_distribution"]["camu"]["seeds"] = [1]
    (copy / "summary.json").write_text(json.dumps(summary))
    assert {(r["method"], r["seed"]) for r in _klom_rows(result_rows(copy))} == {
        ("camu", 1),
        ("finetune", 0),
        ("finetune", 1),
    }
    (copy / "summary.json").unlink()
    assert _klom_rows(result_rows(copy)) == []
    assert len(result_rows(copy)) == len(rows) - len(want)


def test_no_oracles_no_group_rows(run_folder, sweep_folder):
    """Without --oracles (K = 1) nothing reaches 8 oracles: no oracle_klom row anywhere."""
    assert "oracle_klom" in GROUP_METRICS
    assert _klom_rows(result_rows(run_folder)) == []
    assert _klom_rows(result_rows(sweep_folder[0])) == []
