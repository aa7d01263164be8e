"""TensorBoard logs of runs and sweep cells (--log-dir), and the error without tensorboard.

The event files are read back with TensorBoard's own reader and compared with the run's
manifest and cell files, which are written independently of the callbacks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from causalunlearn.cli import main
from causalunlearn.errors import RunError
from causalunlearn.graph import load_graph
from causalunlearn.recipes import Recipe
from causalunlearn.studies import tracking
from causalunlearn.studies.entries import load_entry
from causalunlearn.studies.experiment import RunSettings, run_experiment
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.sweep import Sweep

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"
SSD = ROOT / "graphs" / "baselines" / "ssd.yaml"
FAST = Recipe(epochs=1)


def _events(folder: Path):
    pytest.importorskip(
        "tensorboard", reason="tensorboard is not installed (the [tensorboard] extra)"
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list(folder.glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def _scalar(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_a_run_logs_terms_epochs_final_metrics_yaml_and_diagram(tmp_path):
    pytest.importorskip(
        "tensorboard", reason="tensorboard is not installed (the [tensorboard] extra)"
    )
    graph = load_graph(CAMU, preset="digits-class")
    settings = RunSettings(
        dataset="digits",
        seeds=(0,),
        recipe=FAST,
        cache_dir=str(tmp_path / "cache"),
        progress=False,
        threads=1,
        log_dir=str(tmp_path / "tb"),
    )
    manifest = run_experiment(graph, settings, tmp_path / "run")
    folder = tmp_path / "tb" / "camu" / "digits" / "class-0" / "seed0"
    acc = _events(folder)
    tags = acc.Tags()
    seed = manifest["per_seed"][0]
    total = sum(seed["steps"].values())
    # term values at the sync points: the last one is at the run's last step
    loss = _scalar(acc, "terms/output/loss")
    assert loss[-1][0] == total and len(loss) >= 2
    # per-epoch means: CaMU's digits preset runs 2 epochs; the output stage logs every step
    rows = seed["losses"]["output"]
    term = next(k for k in rows[0] if k not in ("step", "epoch"))
    epochs = _scalar(acc, f"epoch/output/{term}")
    assert [e for e, _ in epochs] == [0, 1]
    for epoch, value in epochs:
        mine = [r[term] for r in rows if r["epoch"] == epoch]
        assert value == pytest.approx(sum(mine) / len(mine), rel=1e-5)
    # final metrics of all three models, as in the manifest
    for role in ("original", "unlearned", "oracle"):
        for key in ("forget_acc", "test_acc"):
            [(_, value)] = _scalar(acc, f"final/{role}/{key}")
            assert value == pytest.approx(seed["metrics"][role][key], rel=1e-6)
    [text] = acc.Tensors("method/yaml/text_summary")
    assert "representation" in text.tensor_proto.string_val[0].decode()
    if shutil.which("dot"):
        assert tags["images"] == ["method/diagram"]
    else:
        assert tags["images"] == []


def test_sweep_cells_each_get_a_log_and_a_method_entry_has_no_diagram(tmp_path):
    pytest.importorskip(
        "tensorboard", reason="tensorboard is not installed (the [tensorboard] extra)"
    )
    settings = StudySettings(
        seeds=(0,), recipe=FAST, progress=False, threads=1, log_dir=str(tmp_path / "tb")
    )
    entries = [load_entry(str(CAMU)), load_entry(str(SSD))]
    Sweep(entries, ["digits"], ["class:0"], settings, tmp_path / "sweep", plots=False).run()
    for entry in entries:
        folder = tmp_path / "tb" / entry.label / "digits" / "class-0" / "seed0"
        acc = _events(folder)
        cell = json.loads(
            (
                tmp_path / "sweep" / "runs" / entry.label / "digits" / "class-0" / "seed0.json"
            ).read_text()
        )
        [(_, value)] = _scalar(acc, "final/unlearned/forget_acc")
        assert value == pytest.approx(cell["metrics"]["forget_acc"], rel=1e-6)
        assert _scalar(acc, "final/oracle/forget_acc")
        has_terms = any(t.startswith("terms/") for t in acc.Tags()["scalars"])
        assert has_terms == (entry.label == "camu")  # SSD runs no loop
        if entry.label != "camu":
            assert acc.Tags()["images"] == []


def test_log_dir_without_tensorboard_is_a_coded_error_naming_the_extra(monkeypatch, capsys):
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(
        tracking.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else real(name, *a),
    )
    with pytest.raises(RunError) as err:
        StudySettings(log_dir="tb")
    assert err.value.code == "tensorboard-missing"
    assert "causalunlearn[tensorboard]" in err.value.hint
    assert main(["run", str(CAMU), "--log-dir", "tb", "--no-oracle"]) == 1
    printed = capsys.readouterr().err
    assert "tensorboard-missing" in printed and "pip install causalunlearn[tensorboard]" in printed
