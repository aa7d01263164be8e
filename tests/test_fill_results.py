"""scripts/fill_results.py's U-LiRA reference table, on a hand-made sweep folder."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location(
        "fill_results", ROOT / "scripts" / "fill_results.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lira(auc: float, sd: float = 0.01) -> dict:
    return {"auc": auc, "tpr_at_1fpr": 1.0, "null_auc_sd": sd}


def test_lira_reference_table_from_the_cells(tmp_path):
    methods = [{"label": "a"}, {"label": "b"}, {"label": "never-ran"}]
    (tmp_path / "sweep.json").write_text(json.dumps({"methods": methods}))
    cells = {
        ("a", 0): (0.50, 0.56, 0.52),
        ("a", 1): (0.54, 0.58, 0.50),
        ("b", 0): (0.49, 0.53, 0.51),
    }
    for (label, seed), (orig, unl, ora) in cells.items():
        folder = tmp_path / "runs" / label / "mnist" / "random-0.1"
        folder.mkdir(parents=True, exist_ok=True)
        lira = {"original": _lira(orig), "unlearned": _lira(unl), "oracle": _lira(ora)}
        (folder / f"seed{seed}.json").write_text(json.dumps({"extra": {"lira": lira}}))
    failed = tmp_path / "runs" / "b" / "mnist" / "random-0.1" / "seed1.json"
    failed.write_text(json.dumps({"status": "failed", "extra": {}}))
    table = _script().lira_reference_table(tmp_path).splitlines()
    assert len(table) == 4  # header, rule, a, b (no row for a method without cells)
    # a: original mean 0.52, sample sd of (0.50, 0.54) = 0.0283; unlearned 0.57 ± 0.0141;
    # oracle 0.51 ± 0.0141; gap (0.04/0.01 + 0.08/0.01) / 2 = +6.0 null sds; 2 seeds
    assert table[2] == "| a | 0.520 ± 0.028 | 0.570 ± 0.014 | 0.510 ± 0.014 | +6.0 | 2 |"
    # b: one seed (the failed cell is left out): values alone; gap 0.02 / 0.01 = +2.0
    assert table[3] == "| b | 0.490 | 0.530 | 0.510 | +2.0 | 1 |"


def test_lira_reference_table_is_none_without_the_attack(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"methods": [{"label": "a"}]}))
    folder = tmp_path / "runs" / "a" / "digits" / "class-0"
    folder.mkdir(parents=True)
    (folder / "seed0.json").write_text(json.dumps({"extra": {}}))
    assert _script().lira_reference_table(tmp_path) is None
