"""``compare`` / ``ablate --set``: overrides reach the methods' cells, bad ones stop first."""

from __future__ import annotations

import json
from pathlib import Path

from causalunlearn.cli import main

ROOT = Path(__file__).resolve().parents[2]
FINETUNE = str(ROOT / "graphs" / "baselines" / "finetune.yaml")
SSD = str(ROOT / "graphs" / "baselines" / "ssd.yaml")


def _fast(tmp_path: Path) -> list[str]:
    return ["--seeds", "0", "--epochs-original", "1", "--threads", "1", "--no-plots"] + [
        "--cache-dir",
        str(tmp_path / "cache"),
    ]


def _cell(out: Path, label: str) -> dict:
    return json.loads((out / "runs" / label / "digits" / "class-0" / "seed0.json").read_text())


def test_compare_set_reaches_each_method_and_is_part_of_the_identity(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", FINETUNE, SSD, "--out", str(out), *_fast(tmp_path)]
    sets = ["--set", "schedule.epochs=2", "--set", "ssd:params.alpha=5"]
    assert main([*argv, *sets]) == 0
    finetune, ssd = _cell(out, "finetune"), _cell(out, "ssd")
    assert finetune["method"]["resolved"]["schedule"]["epochs"] == 2
    assert ssd["method"]["resolved"]["params"]["alpha"] == 5.0
    assert "schedule" not in ssd["method"]["resolved"]  # schedule.epochs went to finetune only
    described = json.loads((out / "sweep.json").read_text())["methods"]
    assert {m["label"]: m.get("overrides") for m in described} == {
        "finetune": {"schedule.epochs": 2},
        "ssd": {"params.alpha": 5},
    }
    capsys.readouterr()
    # The same folder without the overrides: other methods, so the finished cells do not count.
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "sweep-mismatch" in err and "--overwrite" in err


def test_compare_set_a_path_no_method_has(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", FINETUNE, SSD, "--out", str(out), "--set", "stages.unlearnn.lr=1e-3"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "unknown-override-path" in err and "finetune, ssd" in err
    assert not out.exists()  # stopped before anything was computed or written


def test_compare_sweep_file_set(tmp_path, capsys):
    file = tmp_path / "sweep.yaml"
    file.write_text(f"methods: [{FINETUNE}]\nset: [schedule.epochs=2]\n")
    out = tmp_path / "cmp"
    argv = ["compare", "--sweep", str(file), "--out", str(out), *_fast(tmp_path)]
    assert main([*argv, "--set", "finetune:stages.unlearn.lr=0.002"]) == 0
    resolved = _cell(out, "finetune")["method"]["resolved"]
    assert resolved["schedule"]["epochs"] == 2 and resolved["stages"]["unlearn"]["lr"] == 0.002


def test_ablate_set_and_unknown_method(tmp_path, capsys):
    out = tmp_path / "abl"
    argv = ["ablate", "camu", "--out", str(out), "--set", "camuu:schedule.epochs=1"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "unknown-set-method" in err and "did you mean 'camu'" in err
    argv = ["ablate", "camu", "--out", str(out), "--set", "schedule.epochs=3", *_fast(tmp_path)]
    assert main(argv) == 0
    cells = sorted((out / "runs").rglob("seed0.json"))
    assert len(cells) == 5
    for path in cells:
        assert json.loads(path.read_text())["method"]["resolved"]["schedule"]["epochs"] == 3
