"""A sweep's ``oracle_klom`` (issue 15): one value per method of a summary table, computed from
the outputs saved beside the cells and references, equal to a second computation from those
archives read with numpy and to ``causalunlearn run`` of the same method, seeds and oracles;
``rescore`` recomputes it; fewer oracles give no column at all."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp

from causalunlearn.data import make_split
from causalunlearn.metrics.oracle_distribution import KLOM_MIN_ORACLES, MIN_STD, bootstrap_ci
from causalunlearn.recipes import Recipe
from causalunlearn.studies.entries import load_entry
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.sweep import Sweep

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"
SEEDS = (0, 1)


def _sweep(cache: Path, out: Path, oracles: int) -> Sweep:
    settings = StudySettings(
        seeds=SEEDS,
        recipe=Recipe(epochs=2),
        cache_dir=str(cache),
        progress=False,
        threads=1,
        oracles=oracles,
    )
    entries = [load_entry(f"{CAMU}@digits-class")]
    return Sweep(entries, ["digits"], ["class:0"], settings, out, plots=False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("klom-cache")


@pytest.fixture(scope="module")
def finished(cache, tmp_path_factory):
    """Digits class 0, CaMU, seeds 0 and 1, 8 oracles per split: 9 distinct oracles (training
    seeds 0..8, shared by the two seeds' one retain set)."""
    out = tmp_path_factory.mktemp("klom") / "sweep"
    summary = _sweep(cache, out, KLOM_MIN_ORACLES).run()
    return out, summary


def _table(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())["tables"][0]


def _margins(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The correct-class margin by its formula, z_y − log Σ_{j≠y} exp z_j (scipy's logsumexp)."""
    z = logits.astype(np.float64)
    others = np.where(np.eye(z.shape[1], dtype=bool)[y], -np.inf, z)
    return z[np.arange(len(y)), y] - logsumexp(others, axis=1)


def test_the_group_value_is_the_kl_of_the_saved_outputs(finished):
    out, summary = finished
    table = summary["tables"][0]
    (label,) = table["methods"]
    row, result = table["rows"][label]["oracle_klom"], table["oracle_distribution"][label]
    assert row["mean"] == result["value"] and row["ci"] == result["ci"] and row["n"] == 2
    assert result["seeds"] == list(SEEDS) and result["n_models"] == 2
    assert "oracle_klom" not in table["rows"]["original"]  # as a run: the unlearned row only

    # A second computation, from the archives read with numpy.
    where = Path("digits") / "class-0"
    cells = [np.load(out / "runs" / label / where / f"seed{s}.outputs.npz") for s in SEEDS]
    refs = [np.load(out / "references" / where / f"seed{s}.outputs.npz") for s in SEEDS]
    train_y = cells[0]["train_y"]
    forget = np.flatnonzero(train_y == 0)  # class removal: every training row of class 0
    y = train_y[forget]
    oracles: dict[int, np.ndarray] = {}  # by training seed: reference t holds t, t+1, ..., t+7
    for t, ref in zip(SEEDS, refs, strict=True):
        oracles.setdefault(t, ref["oracle.train"][forget])
        for k, logits in enumerate(ref["oracles.forget"], start=1):
            oracles.setdefault(t + k, logits)
    assert sorted(oracles) == list(range(KLOM_MIN_ORACLES + 1)) == list(range(9))
    assert result["n_oracles"] == 9 and result["rows"] == len(forget)
    # reference 1's oracle 0 is reference 0's oracle 1 (one model, in the cache once)
    np.testing.assert_allclose(
        refs[1]["oracle.train"][forget], refs[0]["oracles.forget"][0], rtol=1e-5, atol=1e-5
    )
    o = np.stack([_margins(z, y) for z in oracles.values()])
    u = np.stack([_margins(c["unlearned.train"][forget], y) for c in cells])
    mu_o, sd_o = o.mean(0), np.maximum(o.std(0, ddof=1), MIN_STD)
    mu_u, sd_u = u.mean(0), np.maximum(u.std(0, ddof=1), MIN_STD)
    kl = np.log(sd_u / sd_o) + (sd_o**2 + (mu_o - mu_u) ** 2) / (2 * sd_u**2) - 0.5
    assert row["mean"] == pytest.approx(float(np.median(kl)), rel=1e-9)
    _, low, high = bootstrap_ci(kl, seed=SEEDS[0])
    assert row["ci"] == pytest.approx([low, high], rel=1e-9)

    # summary.md: a KLoM column in the per-example table, one value without ±
    md = (out / "summary.md").read_text()
    section = md.split("per-example evaluation")[1].split("###")[0]
    assert "| method | Oracle-dist. z | KLoM |" in section
    line = next(x for x in section.splitlines() if x.startswith(f"| {label} |"))
    assert line.split("|")[-2].strip().strip("*") == f"{row['mean']:.2f}"
    assert f"[{low:.2f}, {high:.2f}]" in section


def test_the_sweep_value_equals_a_run_of_the_same_seeds(finished, cache, tmp_path):
    from causalunlearn.methods import load_any
    from causalunlearn.studies.experiment import RunSettings, run_experiment

    out, summary = finished
    table = summary["tables"][0]
    result = table["oracle_distribution"][table["methods"][0]]
    settings = RunSettings(
        dataset="digits",
        scenario="class:0",
        seeds=SEEDS,
        recipe=Recipe(epochs=2),
        cache_dir=str(cache),  # the sweep's models: nothing is trained again
        progress=False,
        threads=1,
        oracles=KLOM_MIN_ORACLES,
    )
    manifest = run_experiment(load_any(CAMU, preset="digits-class"), settings, tmp_path / "run")
    run = manifest["oracle_distribution"]
    assert run["value"] == pytest.approx(result["value"], rel=1e-9)
    assert run["ci"] == pytest.approx(result["ci"], rel=1e-9)
    assert (run["n_models"], run["n_oracles"]) == (result["n_models"], result["n_oracles"])
    # resuming the finished sweep computes nothing and gives the same value
    assert (
        _sweep(cache, out, KLOM_MIN_ORACLES).run()["tables"][0]["oracle_distribution"]
        == (table["oracle_distribution"])
    )


def test_rescore_recomputes_it_and_skips_failed_cells(finished, tmp_path):
    from causalunlearn.studies.rescore import rescore

    out = tmp_path / "sweep"
    shutil.copytree(finished[0], out)
    before = _table(out)
    (label,) = before["methods"]
    assert rescore(out).changed == []
    assert _table(out)["oracle_distribution"] == before["oracle_distribution"]
    true = before["rows"][label]["oracle_klom"]["mean"]
    # a tampered summary value is recomputed from the outputs and reported
    summary = json.loads((out / "summary.json").read_text())
    summary["tables"][0]["rows"][label]["oracle_klom"]["mean"] = 1.5
    (out / "summary.json").write_text(json.dumps(summary))
    changed = [c for c in rescore(out).changed if c[2] == "oracle_klom"]
    assert changed == [("summary digits class:0", label, "oracle_klom", 1.5, true)]
    assert _table(out)["rows"][label]["oracle_klom"]["mean"] == true
    # a failed cell is skipped: one finished seed left, no distribution of models
    cell_path = out / "runs" / label / "digits" / "class-0" / "seed1.json"
    cell = json.loads(cell_path.read_text())
    cell.update(status="failed", error={"code": "non-finite-loss", "message": "diverged"})
    cell_path.write_text(json.dumps(cell))
    rescore(out)
    table = _table(out)
    assert "oracle_klom" not in table["rows"][label] and "oracle_distribution" not in table
    assert table["failures"][label]["seeds"] == [1]


def test_cells_whose_forget_rows_differ_get_none(finished):
    from causalunlearn.studies.oracles import group_klom
    from causalunlearn.studies.outputs import load_outputs

    out, _ = finished
    (label,) = _table(out)["methods"]
    where = Path("digits") / "class-0"
    cells = [load_outputs(out / "runs" / label / where / f"seed{s}.outputs.npz") for s in SEEDS]
    refs = [load_outputs(out / "references" / where / f"seed{s}.outputs.npz") for s in SEEDS]
    members = [(c, r, s) for c, r, s in zip(cells, refs, SEEDS, strict=True)]
    assert group_klom(members, seed=0) is not None
    assert group_klom(members[:1], seed=0) is None  # one model is no distribution
    # another split seed of random removal: other forget rows
    other = make_split(cells[1].train_y, "random:0.1", 1, 10)
    moved = dataclasses.replace(cells[1], split=other)
    assert group_klom([members[0], (moved, refs[1], 1)], seed=0) is None


def test_fewer_oracles_give_no_column(cache, tmp_path):
    """K = 3 with seeds 0, 1: oracles 0..3, four in all (below 8): per-cell z only."""
    out = tmp_path / "sweep"
    summary = _sweep(cache, out, 3).run()
    table = summary["tables"][0]
    (label,) = table["methods"]
    assert "oracle_margin_z" in table["rows"][label]
    assert all("oracle_klom" not in row for row in table["rows"].values())
    assert "oracle_distribution" not in table
    md = (out / "summary.md").read_text()
    assert "Oracle-dist. z" in md and "KLoM" not in md
