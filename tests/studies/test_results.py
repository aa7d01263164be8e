"""causalunlearn.results: the long and wide tables of a run folder and a sweep folder, and the CSV
of ``compare --csv``, checked value by value against the manifest and cell files they read."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

import causalunlearn
from causalunlearn.cli import main
from causalunlearn.errors import RunError
from causalunlearn.graph import load_graph
from causalunlearn.recipes import Recipe
from causalunlearn.studies.experiment import RunSettings, run_experiment
from causalunlearn.studies.results import COLUMNS, INDEX, result_rows, results

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
