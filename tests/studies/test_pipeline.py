"""The pipeline end to end on the embedded digits: caches, run folders, presets, bad input, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from causalunlearn.cli import main
from causalunlearn.data import load_dataset, make_split
from causalunlearn.engine import verbs as pipeline
from causalunlearn.engine.verbs import unlearn
from causalunlearn.errors import CausalUnlearnError, CausalUnlearnWarning, DataError, RunError
from causalunlearn.graph import load_graph
from causalunlearn.metrics.evaluate import evaluate
from causalunlearn.metrics.gaps import mean_std
from causalunlearn.models.zoo import build_model, save_state
from causalunlearn.recipes import Recipe
from causalunlearn.studies.experiment import RunSettings, markdown_table, run_experiment

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"
FAST = Recipe(epochs=5)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture()
def settings(tmp_path):
    return RunSettings(
        dataset="digits", seeds=(0,), recipe=FAST, cache_dir=str(tmp_path / "cache"), progress=False
    )


def test_oracle_never_sees_forget_data(digits, monkeypatch):
    seen = {}
    real = pipeline.materialise

    def spy(graph, data, split, **kw):
        streams = real(graph, data, split, **kw)
        seen["labels"] = streams.of("data")[1]
        return streams

    monkeypatch.setattr(pipeline, "materialise", spy)
    split = make_split(digits.train_y, "class:3", 0, digits.num_classes)
    pipeline.train_from_scratch(
        digits,
        split,
        "retain",
        model="mlp",
        recipe=Recipe(epochs=1),
        seed=0,
        device=torch.device("cpu"),
        progress=False,
    )
    assert len(seen["labels"]) == len(split.retain) and not torch.any(seen["labels"] == 3)


def test_digits_preset_forgets_the_class_and_keeps_the_rest(tmp_path):
    graph = load_graph(CAMU, preset="digits-class")
    manifest = run_experiment(
        graph,
        RunSettings(
            dataset="digits", seeds=(0, 1, 2), cache_dir=str(tmp_path), progress=False, oracle=False
        ),
    )
    for row in manifest["per_seed"]:
        original, unlearned = row["metrics"]["original"], row["metrics"]["unlearned"]
        assert unlearned["test_forgotten_classes_acc"] <= 5.0
        assert original["test_retained_classes_acc"] - unlearned["test_retained_classes_acc"] <= 3.0


def test_run_folder_manifest_and_refusal_to_overwrite(tmp_path, settings):
    out = tmp_path / "run"
    graph = load_graph(CAMU, preset="digits-class")
    manifest = run_experiment(graph, settings, out)
    files = {p.name for p in out.iterdir()}
    assert {"manifest.json", "results.md", "split-seed0.json", "unlearned-seed0.pt"} <= files
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["graph"]["digest"] == graph.digest()
    assert (
        saved["per_seed"][0]["split"]["digest"]
        == make_split(load_dataset("digits").train_y, "class:0", 0, 10).digest()
    )
    assert set(saved["per_seed"][0]["metrics"]) == {"original", "unlearned", "oracle"}
    assert saved["per_seed"][0]["losses"]["representation"]
    assert {"torch", "causalunlearn", "python"} <= set(saved["versions"])
    assert "retrain oracle" in (out / "results.md").read_text()
    assert (
        manifest["summary"]["unlearned"]["forget_acc"]["mean"]
        == saved["summary"]["unlearned"]["forget_acc"]["mean"]
    )

    before = (out / "manifest.json").read_bytes()
    with pytest.raises(RunError) as err:
        run_experiment(graph, settings, out)
    assert err.value.code == "run-exists"
    # A failing run, even with overwrite, leaves the earlier finished run as it was.
    broken = load_graph(CAMU, overrides={"nodes.Z.layer": "no.such.layer"})
    with pytest.raises(CausalUnlearnError):
        run_experiment(broken, settings, out, overwrite=True)
    assert (out / "manifest.json").read_bytes() == before
    # Nothing hidden is left but the folder's (inert, documented) lock file.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [".run.lock"]


def test_split_file_reloads_to_the_same_split(tmp_path, settings):
    from causalunlearn.data.splits import Split

    out = tmp_path / "run"
    run_experiment(load_graph(CAMU, preset="digits-class"), settings, out)
    split = Split.load(out / "split-seed0.json")
    assert (
        split.digest()
        == json.loads((out / "manifest.json").read_text())["per_seed"][0]["split"]["digest"]
    )


def test_bring_your_own_checkpoint_and_forget_indices(tmp_path, digits):
    model = build_model("mlp", digits.num_classes, digits.input_shape, seed=7)
    ckpt = save_state(model, tmp_path / "mine.pt")
    indices = tmp_path / "forget.txt"
    indices.write_text("\n".join(map(str, range(0, 200, 2))))
    out = tmp_path / "byo"
    # An untrained network brought as the "original": the run says so, loudly.
    with pytest.warns(CausalUnlearnWarning, match="below the built-in original"):
        code = _run_byo(CAMU, indices, ckpt, tmp_path, out)
    assert code == 0
    row = json.loads((out / "manifest.json").read_text())["per_seed"][0]
    assert row["split"]["forget"] == 100
    assert row["models"]["original"]["path"] == str(ckpt)


def _run_byo(graph, indices, ckpt, tmp_path, out) -> int:
    return main(
        [
            "run",
            str(graph),
            "--dataset",
            "digits",
            "--scenario",
            f"indices:{indices}",
            "--checkpoint",
            str(ckpt),
            "--no-oracle",
            "--cache-dir",
            str(tmp_path / "c"),
            "--out",
            str(out),
            "--no-progress",
        ]
    )


@pytest.mark.parametrize(
    ("scenario", "code"),
    [
        ("class:42", "unknown-class"),
        ("random:1.5", "bad-fraction"),
        ("perclass:0=0.0", None),
        ("klass:0", "bad-scenario"),
    ],
)
def test_bad_scenarios_are_refused_with_codes(scenario, code, settings):
    settings.scenario = scenario
    with pytest.raises(DataError) as err:
        run_experiment(load_graph(CAMU), settings)
    if code:
        assert err.value.code == code
    else:
        assert err.value.code in {"bad-fraction", "empty-forget-set"}


def test_missing_data_root_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("CAUSALUNLEARN_DATA_ROOT", raising=False)
    with pytest.raises(DataError) as err:
        run_experiment(
            load_graph(CAMU), RunSettings(dataset="mnist", cache_dir=str(tmp_path), progress=False)
        )
    assert err.value.code in {"missing-data-root", "data-not-found"}
    assert "--data-root" in str(err.value) or "CAUSALUNLEARN_DATA_ROOT" in str(err.value)


def test_cli_run_prints_the_table(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "run",
            str(CAMU),
            "--dataset",
            "digits",
            "--scenario",
            "class:0",
            "--preset",
            "digits-class",
            "--seeds",
            "0",
            "--cache-dir",
            str(tmp_path / "c"),
            "--epochs-original",
            "5",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and "| Forget acc (train) |" in text and (out / "manifest.json").is_file()
    assert (
        main(
            [
                "run",
                str(CAMU),
                "--out",
                str(out),
                "--cache-dir",
                str(tmp_path / "c"),
                "--no-progress",
            ]
        )
        == 1
    )
    assert "run-exists" in capsys.readouterr().err


def test_cli_run_set_typo_is_a_clear_error(tmp_path, capsys):
    code = main(
        [
            "run",
            str(CAMU),
            "--set",
            "stages.output.lrr=1e-3",
            "--out",
            str(tmp_path / "x"),
            "--no-progress",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "unknown-override-path" in err and "lr" in err


def test_evaluate_reports_official_metrics(digits):
    split = make_split(digits.train_y, "random:0.2", 0, digits.num_classes)
    model = build_model("mlp", digits.num_classes, digits.input_shape, seed=0)
    report = evaluate(model, digits, split, seed=0)
    assert math.isnan(report["test_forgotten_classes_acc"])  # random removal: no forgotten class
    assert 0 <= report["mia_acc"] <= 100
    result = unlearn(load_graph(CAMU), model, digits, split, seed=0, progress=False)
    assert result.seconds["total"] >= result.seconds["loop"] > 0
    assert result.model is not model


def test_mean_std_and_table():
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == 2.0 and s == pytest.approx(1.0)  # sample std, ddof=1
    assert math.isnan(mean_std([5.0])[1])
    assert "–" in markdown_table(
        {
            "graph": {"name": "g"},
            "dataset": "d",
            "scenario": "s",
            "model": "m",
            "seeds": [0],
            "summary": {"unlearned": {"unlearn_seconds": {"mean": 1.0, "std": float("nan")}}},
        }
    )
