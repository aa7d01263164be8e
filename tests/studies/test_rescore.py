"""``causalunlearn rescore``: metrics recomputed from saved outputs equal the stored ones,
tampered numbers are restored, and a rescore that cannot run leaves the folder as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from causalunlearn.cli import main
from causalunlearn.errors import RunError
from causalunlearn.methods import load_any
from causalunlearn.recipes import Recipe
from causalunlearn.studies.experiment import RunSettings, run_experiment
from causalunlearn.studies.rescore import FROM_OUTPUTS, NOT_FROM_OUTPUTS, rescore

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A digits run with relearn time (kept by a rescore) and 3 oracles (oracle_margin_z)."""
    base = tmp_path_factory.mktemp("rescore")
    settings = RunSettings(
        dataset="digits",
        scenario="class:0",
        seeds=(0,),
        recipe=Recipe(epochs=2),
        # shared with tests/metrics/test_oracle_distribution.py's run (the same models)
        cache_dir=str(tmp_path_factory.getbasetemp() / "digits-three-oracles"),
        progress=False,
        threads=1,
        relearn=True,
        oracles=3,
    )
    run_experiment(load_any(CAMU, preset="digits-class"), settings, base / "run")
    return base / "run"


@pytest.fixture
def run_copy(finished_run, tmp_path):
    shutil.copytree(finished_run, tmp_path / "run")
    return tmp_path / "run"


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_rescoring_a_fresh_run_reproduces_every_number(run_copy):
    before = _manifest(run_copy)
    report = rescore(run_copy)
    assert report.kind == "run" and report.models == 3
    assert report.changed == []  # every recomputed metric equals the stored one, exactly
    assert {"relearn_steps", "unlearn_seconds"} <= report.kept
    after = _manifest(run_copy)
    assert after["per_seed"][0]["metrics"] == before["per_seed"][0]["metrics"]
    assert after["summary"] == before["summary"] and after["rescored"]["changed"] == []
    recomputed = set(after["per_seed"][0]["metrics"]["unlearned"]) & set(FROM_OUTPUTS)
    expected = {"forget_acc", "mia_efficacy_svc", "activation_distance", "oracle_margin_z"}
    assert expected <= recomputed
    assert set(NOT_FROM_OUTPUTS) & recomputed == set()


def test_a_tampered_number_is_restored_and_reported(run_copy):
    manifest = _manifest(run_copy)
    true = manifest["per_seed"][0]["metrics"]["unlearned"]["forget_acc"]
    true_gap = manifest["per_seed"][0]["metrics"]["unlearned"]["average_gap"]
    manifest["per_seed"][0]["metrics"]["unlearned"]["forget_acc"] = 12.5
    manifest["per_seed"][0]["metrics"]["unlearned"]["average_gap"] = 99.0
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    report = rescore(run_copy)
    changed = {(role, key): (old, new) for _, role, key, old, new in report.changed}
    assert changed == {
        ("unlearned", "forget_acc"): (12.5, true),
        ("unlearned", "average_gap"): (99.0, true_gap),
    }
    after = _manifest(run_copy)
    assert after["per_seed"][0]["metrics"]["unlearned"]["forget_acc"] == true
    assert after["summary"]["unlearned"]["forget_acc"]["mean"] == true
    assert f"{true:.2f}" in (run_copy / "results.md").read_text()


def test_what_cannot_be_rescored_is_refused_and_nothing_is_lost(run_copy, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError) as err:
        rescore(tmp_path / "empty")
    assert err.value.code == "not-a-result-folder"
    original = (run_copy / "manifest.json").read_bytes()
    (run_copy / "outputs-seed0.npz").write_bytes(b"not a zip archive")
    with pytest.raises(RunError) as err:
        rescore(run_copy)
    assert err.value.code == "corrupt-outputs"
    assert (run_copy / "manifest.json").read_bytes() == original  # old numbers kept
    manifest = json.loads(original)
    manifest["per_seed"][0].pop("outputs")  # a run made before outputs were saved
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunError) as err:
        rescore(run_copy)
    assert err.value.code == "outputs-missing" and "--overwrite" in err.value.hint


def test_a_split_mismatch_is_named(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    manifest = _manifest(run)
    manifest["per_seed"][0]["split"]["digest"] = "0123456789ab"
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunError) as err:
        rescore(run)
    assert err.value.code == "outputs-split-mismatch"


def test_the_command_line(run_copy, tmp_path, capsys):
    assert main(["rescore", str(run_copy)]) == 0
    out = capsys.readouterr().out
    assert "rescored 3 model(s) of the run folder" in out and "no value changed" in out
    assert "relearn_steps" in out  # named as kept
    assert main(["rescore", str(tmp_path / "nothing")]) == 1
    assert "[not-a-result-folder]" in capsys.readouterr().err


def test_a_sweep_is_rescored_cell_by_cell_and_summarised_again(tmp_path):
    from causalunlearn.studies.entries import load_entry
    from causalunlearn.studies.settings import StudySettings
    from causalunlearn.studies.sweep import Sweep

    out = tmp_path / "sweep"
    settings = StudySettings(
        seeds=(0,),
        recipe=Recipe(epochs=2),
        cache_dir=str(tmp_path / "cache"),
        progress=False,
        threads=1,
        oracles=3,
    )
    entries = [load_entry(f"{CAMU}@digits-class")]
    Sweep(entries, ["digits"], ["class:0"], settings, out, plots=False).run()
    (cell_path,) = (out / "runs").rglob("seed0.json")
    (ref_path,) = (out / "references").rglob("seed0.json")
    assert cell_path.with_name("seed0.outputs.npz").is_file()
    assert ref_path.with_name("seed0.outputs.npz").is_file()
    cell = json.loads(cell_path.read_text())
    assert cell["outputs"]["roles"] == ["unlearned"] and "oracle_margin_z" in cell["metrics"]
    reference = json.loads(ref_path.read_text())
    assert reference["outputs"]["roles"] == ["oracle", "original"]
    assert rescore(out).changed == []
    true = cell["metrics"]["test_acc"]
    cell["metrics"]["test_acc"] = 1.0
    cell_path.write_text(json.dumps(cell))
    report = rescore(out)
    assert [(k, old, new) for _, _, k, old, new in report.changed] == [("test_acc", 1.0, true)]
    summary = json.loads((out / "summary.json").read_text())
    row = summary["tables"][0]["rows"][cell["method"]["label"]]
    assert row["test_acc"]["mean"] == true and "oracle_margin_z" in row
    assert "per-example evaluation" in (out / "summary.md").read_text()
    ref_path.with_name("seed0.outputs.npz").unlink()
    with pytest.raises(RunError) as err:
        rescore(out)
    assert err.value.code == "outputs-missing"
