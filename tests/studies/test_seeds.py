"""Nested seeds: cell keys, settings, the variance decomposition, sweeps and the CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from causalunlearn.cli import main
from causalunlearn.errors import RunError
from causalunlearn.studies.entries import load_entry
from causalunlearn.studies.experiment import RunSettings
from causalunlearn.studies.seeds import CellSeeds, variance_components
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.summary import variance_text
from causalunlearn.studies.sweep import Sweep
from causalunlearn.studies.sweep_file import read_sweep_file, seed_fields

ROOT = Path(__file__).resolve().parents[2]
FINETUNE = ROOT / "graphs" / "baselines" / "finetune.yaml"
#: A sweep folder written by the code before nested seeds (see its README.md).
OLD_SWEEP = Path(__file__).parent / "data" / "pre-nested-sweep"


# -- the cell key ----------------------------------------------------------------------------


def test_paired_cells_keep_the_file_names_of_older_sweeps():
    paired = CellSeeds.same(3)
    assert paired == CellSeeds.of(3) == CellSeeds(3, 3, 3) and paired.paired
    assert paired.stem == paired.reference_stem == "seed3"
    assert paired.record() == {"seed": 3}  # a paired cell's file holds what it always held
    assert CellSeeds.of_record({"seed": 3}) == paired


def test_nested_cells_name_all_three_seeds():
    seeds = CellSeeds(train=0, split=1, unlearn=2)
    assert not seeds.paired and seeds.models == (0, 1)
    assert seeds.stem == "seed0-split1-unlearn2" and seeds.reference_stem == "seed0-split1"
    assert CellSeeds(4, 4, 1).reference_stem == "seed4"  # one reference per original + split
    record = seeds.record()
    assert record == {"seed": 2, "seeds": {"train": 0, "split": 1, "unlearn": 2}}
    assert CellSeeds.of_record(json.loads(json.dumps(record))) == seeds
    assert seeds.name(nested=True) == "0/1/2" and CellSeeds.same(5).name(nested=False) == 5


# -- settings ----------------------------------------------------------------------------------


def test_seeds_keep_their_meaning_and_nested_seeds_cross():
    assert StudySettings().cell_seeds() == tuple(CellSeeds.same(s) for s in (0, 1, 2))
    paired = StudySettings(seeds=(4, 2))
    assert not paired.nested and paired.seeds == (4, 2)
    assert paired.cell_seeds() == (CellSeeds.same(4), CellSeeds.same(2))  # pairwise, not crossed
    nested = StudySettings(train_seeds=[0, 1], unlearn_seeds=(5, 6))
    assert nested.nested and nested.split_seeds == (0,) and nested.seeds == ()
    assert nested.cell_seeds() == (
        CellSeeds(0, 0, 5),
        CellSeeds(0, 0, 6),
        CellSeeds(1, 0, 5),
        CellSeeds(1, 0, 6),
    )
    assert nested.seed_plan() == {
        "train_seeds": [0, 1],
        "split_seeds": [0],
        "unlearn_seeds": [5, 6],
    }
    assert paired.key() == nested.key()  # seeds are in the cell's path, not its identity


@pytest.mark.parametrize(
    ("kwargs", "code", "named"),
    [
        ({"seeds": (0,), "train_seeds": (0, 1)}, "mixed-seeds", "train_seeds"),
        ({"seeds": (0,), "unlearn_seeds": (1,)}, "mixed-seeds", "unlearn_seeds"),
        ({"train_seeds": (0, 1, 0)}, "duplicate-seeds", "train_seeds"),
        ({"split_seeds": ()}, "no-seeds", "split_seeds"),
        ({"unlearn_seeds": (-1,)}, "bad-seed", "unlearn_seeds"),
        ({"train_seeds": "012"}, "bad-seed", "train_seeds"),
        ({"seeds": (1, 1)}, "duplicate-seeds", "seeds"),
    ],
)
def test_bad_seed_settings_are_coded_errors_naming_the_list(kwargs, code, named):
    with pytest.raises(RunError) as err:
        StudySettings(**kwargs)
    assert err.value.code == code
    assert named in err.value.message and err.value.hint


def test_a_run_takes_paired_seeds_only():
    with pytest.raises(RunError) as err:
        RunSettings(train_seeds=(0, 1))
    assert err.value.code == "mixed-seeds" and "run takes --seeds only" in err.value.hint


def test_seed_fields_flags_replace_the_files_seeds(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("train_seeds: [0, 1]\nunlearn_seeds: [2]\n")
    file = read_sweep_file(path)
    assert seed_fields(file) == {"train_seeds": (0, 1), "unlearn_seeds": (2,)}
    assert seed_fields(file, seeds=[7]) == {"seeds": (7,)}
    assert seed_fields(None) == {"seeds": (0, 1, 2)}
    for text, code in [
        ("seeds: [0]\ntrain_seeds: [1]\n", "mixed-seeds"),
        ("split_seeds: []\n", "no-seeds"),
        ("unlearn_seeds: [1, 1]\n", "duplicate-seeds"),
        ("train_seeds: 3\n", "bad-sweep-file"),
    ]:
        path.write_text(text)
        with pytest.raises(RunError) as err:
            read_sweep_file(path)
        assert err.value.code == code and str(path) in err.value.message, text


# -- the variance decomposition --------------------------------------------------------------
# The tables: 2 training seeds × 2 split seeds × 2 unlearning seeds. By hand (docs/sweeps.md):
#   train 0: split 0 → 1, 3 (mean 2); split 1 → 5, 7 (mean 6); mean 4
#   train 1: split 0 → 2, 2 (mean 2); split 1 → 10, 14 (mean 12); mean 7; grand mean 5.5
#   MS_train   = 4 · ((4 − 5.5)² + (7 − 5.5)²) / 1                     = 18
#   MS_split   = 2 · ((2 − 4)² + (6 − 4)² + (2 − 7)² + (12 − 7)²) / 2    = 58
#   MS_unlearn = (1 + 1 + 1 + 1 + 0 + 0 + 4 + 4) / 4                      = 3
#   σ²_unlearn = 3, σ²_split = (58 − 3) / 2 = 27.5, σ²_train = (18 − 58) / 4 = −10 → 0
_TABLE = {(0, 0): (1, 3), (0, 1): (5, 7), (1, 0): (2, 2), (1, 1): (10, 14)}


def _cells(shift_train1: float = 0.0) -> dict[CellSeeds, float]:
    return {
        CellSeeds(t, s, u): value + (shift_train1 if t == 1 else 0.0)
        for (t, s), pair in _TABLE.items()
        for u, value in enumerate(pair)
    }


def _by_name(parts):
    return {c["name"]: c for c in parts["components"]}


def test_decomposition_matches_the_hand_computation():
    parts = variance_components(_cells())
    assert parts["balanced"] and parts["levels"] == ["train", "split", "unlearn"]
    comp = _by_name(parts)
    assert [comp[n]["ms"] for n in ("train", "split", "unlearn")] == pytest.approx([18, 58, 3])
    assert [comp[n]["df"] for n in ("train", "split", "unlearn")] == [1, 2, 4]
    assert comp["unlearn"]["variance"] == pytest.approx(3)
    assert comp["split"]["variance"] == pytest.approx(27.5)
    assert comp["train"]["variance"] == 0 and parts["truncated"] == ["train"]
    assert parts["total"] == pytest.approx(30.5)
    assert comp["split"]["share"] == pytest.approx(27.5 / 30.5)
    # The sums of squares add up to the total one (a second, independent computation).
    values = np.array(list(_cells().values()))
    ss = sum(c["ms"] * c["df"] for c in parts["components"])
    assert ss == pytest.approx(((values - values.mean()) ** 2).sum())  # 146


def test_decomposition_with_a_training_seed_effect():
    # Train seed 1 shifted by 20: its mean 27, grand mean 15.5, MS_train = 4 · 2 · 11.5² = 1058;
    # the within-train mean squares do not change: σ²_train = (1058 − 58) / 4 = 250.
    comp = _by_name(variance_components(_cells(shift_train1=20)))
    assert comp["train"]["ms"] == pytest.approx(1058) and comp["split"]["ms"] == pytest.approx(58)
    assert comp["train"]["variance"] == pytest.approx(250)
    assert comp["train"]["share"] == pytest.approx(250 / 280.5)


def test_a_fixed_seed_is_no_level_and_paired_seeds_are_one():
    # Split seed fixed at 0; train 0 → 1, 3 (mean 2), train 1 → 5, 9 (mean 7), grand 4.5:
    # MS_train = 2 · (2.5² + 2.5²) = 25, MS_unlearn = (1 + 1 + 4 + 4) / 2 = 5, σ²_train = 10.
    values = {CellSeeds(0, 0, 0): 1, CellSeeds(0, 0, 1): 3, CellSeeds(1, 0, 0): 5}
    values[CellSeeds(1, 0, 1)] = 9
    parts = variance_components(values)
    assert parts["levels"] == ["train", "unlearn"] and parts["fixed"] == {"split": 0}
    comp = _by_name(parts)
    assert comp["train"]["variance"] == pytest.approx(10)
    assert comp["unlearn"]["variance"] == pytest.approx(5)
    assert variance_text(parts) == "67·–·33 (σ 3.87)"  # 10/15, 5/15, √15
    # --seeds 0,1,2: the three seeds change together, one level: the sample variance.
    paired = variance_components({CellSeeds.same(0): 1, CellSeeds.same(1): 2, CellSeeds.same(2): 6})
    assert paired["levels"] == ["train+split+unlearn"]
    assert paired["total"] == pytest.approx(7)  # ((1-3)² + (2-3)² + (6-3)²) / 2
    assert variance_text(paired) == "n/a"


def test_missing_cells_leave_the_design_unbalanced():
    cells = _cells()
    del cells[CellSeeds(1, 1, 1)]
    parts = variance_components(cells)
    assert parts["balanced"] is False and "components" not in parts
    cells[CellSeeds(1, 1, 1)] = math.nan  # a NaN is missing too
    assert variance_components(cells)["balanced"] is False
    assert variance_components({CellSeeds(0, 0, 0): 1.0}) is None
    # References: (train, split) keys only.
    refs = variance_components(
        {(0, 0): 1.0, (0, 1): 3.0, (1, 0): 5.0, (1, 1): 9.0}, ("train", "split")
    )
    assert refs["levels"] == ["train", "split"]
    assert _by_name(refs)["split"]["variance"] == pytest.approx(5)  # (1 + 1 + 4 + 4) / 2


# -- sweeps ------------------------------------------------------------------------------------


def _settings(tmp: Path, **seeds) -> StudySettings:
    from causalunlearn.recipes import Recipe

    return StudySettings(
        progress=False,
        threads=1,
        recipe=Recipe(epochs=1),
        cache_dir=str(tmp / "cache"),
        **seeds,
    )


def test_a_sweep_made_before_nested_seeds_resumes_without_recomputing(tmp_path):
    old = json.loads((OLD_SWEEP / "sweep.json").read_text())
    out = tmp_path / "sweep"
    shutil.copytree(OLD_SWEEP, out, ignore=shutil.ignore_patterns("README.md"))
    before = {p: p.read_bytes() for p in (out / "runs").rglob("*.json")}
    assert len(before) == 2

    def sweep(**seeds):
        ran = []
        entries = [load_entry(str(FINETUNE))]
        s = Sweep(
            entries,
            old["datasets"],
            old["scenarios"],
            _settings(tmp_path, **seeds),
            out,
            plots=False,
            on_cell=ran.append,
        )
        return s, ran

    resumed, ran = sweep(seeds=tuple(old["seeds"]))
    summary = resumed.run()
    assert ran == []  # every cell of the old folder is taken as it is
    assert {p: p.read_bytes() for p in (out / "runs").rglob("*.json")} == before
    assert summary["tables"][0]["rows"]["finetune"]["seeds"] == old["seeds"]
    # A nested sweep whose cells include the paired cell (0, 0, 0) reuses its file too.
    nested, ran = sweep(train_seeds=(0,), split_seeds=(0,), unlearn_seeds=(0, 1))
    nested.run()
    assert [CellSeeds.of_record(c) for c in ran] == [CellSeeds(0, 0, 1)]
    first = out / "runs" / "finetune" / "digits" / "class-0" / "seed0.json"
    assert first.read_bytes() == before[first]


def test_each_seed_selects_its_model_split_and_run(tmp_path):
    """Random removal, 2 training × 2 split × 1 unlearning seed: the original comes from the
    training seed, the split from the split seed, the oracle from both; the unlearning run is a
    pure function of the cell's unlearning seed (rerun by hand here)."""
    import torch

    from causalunlearn.data import load_dataset, make_split
    from causalunlearn.engine.verbs import model_name_for
    from causalunlearn.numerics import applied, limit_threads
    from causalunlearn.studies.cell import CellInputs, run_cell
    from causalunlearn.studies.model_cache import ModelCache

    settings = _settings(tmp_path, train_seeds=(0, 1), split_seeds=(0, 1), unlearn_seeds=(2,))
    entries = [load_entry(str(FINETUNE))]
    out = tmp_path / "sweep"
    summary = Sweep(entries, ["digits"], ["random:0.1"], settings, out, plots=False).run()
    data = load_dataset("digits")
    cache = ModelCache(tmp_path / "cache" / "models")
    model = model_name_for(data, None)
    folder = out / "runs" / "finetune" / "digits" / "random-0.1"
    assert sorted(p.name for p in folder.glob("*.json")) == [
        f"seed{t}-split{s}-unlearn2.json" for t in (0, 1) for s in (0, 1)
    ]
    digests = set()
    for t in (0, 1):
        for s in (0, 1):
            cell = json.loads((folder / f"seed{t}-split{s}-unlearn2.json").read_text())
            ref = json.loads(
                (
                    out
                    / "references"
                    / "digits"
                    / "random-0.1"
                    / f"{CellSeeds(t, s, 2).reference_stem}.json"
                ).read_text()
            )
            split = make_split(data.train_y, "random:0.1", s, data.num_classes)
            assert cell["split"]["digest"] == split.digest()
            digests.add(split.digest())
            for which in ("original", "oracle"):
                expected = cache.path(
                    data, split, which, model=model, recipe=settings.recipe, seed=t
                )
                assert ref["models"][which]["path"] == str(expected)
            if (t, s) == (1, 0):  # one cell recomputed from its seeds alone
                device = torch.device("cpu")
                original, _ = cache.get(
                    data,
                    split,
                    "original",
                    model=model,
                    recipe=settings.recipe,
                    seed=t,
                    device=device,
                )
                inputs = CellInputs(data, split, original, ref["metrics"]["original"])
                method, _ = entries[0].resolve("digits", "random:0.1")
                with applied(settings.numerics), limit_threads(1):
                    again = run_cell(method, inputs, 2, settings, device=device).metrics
                for key in ("forget_acc", "retain_acc", "test_acc", "mia_efficacy_svc"):
                    assert again[key] == cell["metrics"][key], key
    assert len(digests) == 2  # the split seed moves the forgotten rows
    table = summary["tables"][0]
    assert table["rows"]["finetune"]["seeds"] == ["0/0/2", "0/1/2", "1/0/2", "1/1/2"]
    parts = table["variance"]["finetune"]["forget_acc"]
    assert parts["levels"] == ["train", "split"] and parts["fixed"] == {"unlearn": 2}
    # The summary's decomposition is the one of the cell files' numbers.
    values = {}
    for path in folder.glob("*.json"):
        cell = json.loads(path.read_text())
        values[CellSeeds.of_record(cell)] = cell["metrics"]["forget_acc"]
    assert parts == variance_components(values)
    assert table["variance"]["original"]["forget_acc"]["levels"] == ["train", "split"]
    # The original's test accuracy depends on its training seed only (one model, one test set
    # for both splits): no split component, exactly.
    test = {c["name"]: c for c in table["variance"]["original"]["test_acc"]["components"]}
    assert test["split"]["ms"] == 0 and test["split"]["variance"] == 0
    text = (out / "summary.md").read_text()
    assert "where the variance comes from" in text and "| finetune |" in text


def test_cli_nested_seeds_and_their_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["compare", str(FINETUNE), "--out", str(out), "--no-plots", "--no-progress"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--epochs-original", "1", "--threads", "1"]
    assert main([*args, "--train-seeds", "0,1", "--unlearn-seeds", "3"]) == 0
    captured = capsys.readouterr()
    assert "2 training × 1 split × 1 unlearning seed(s) = 2 runs" in captured.err
    names = sorted(
        p.name for p in (out / "runs" / "finetune" / "digits" / "class-0").glob("*.json")
    )
    assert names == ["seed0-split0-unlearn3.json", "seed1-split0-unlearn3.json"]
    describe = json.loads((out / "sweep.json").read_text())
    assert describe["train_seeds"] == [0, 1] and "seeds" not in describe

    assert main([*args, "--seeds", "0", "--train-seeds", "0,1"]) == 1
    assert "[mixed-seeds]" in capsys.readouterr().err
    assert main([*args, "--unlearn-seeds", "1,1"]) == 1
    assert "[duplicate-seeds]" in capsys.readouterr().err
    assert main([*args, "--split-seeds", ","]) == 2  # a usage error, with the settings' code
    assert "[no-seeds]" in capsys.readouterr().err


def test_the_seed_protocol_example_of_the_sweeps_page_runs(tmp_path, monkeypatch, capsys):
    text = (ROOT / "docs" / "sweeps.md").read_text()
    block = text.split("## Seed protocol")[1].split("```python")[1].split("```")[0]
    assert '"runs/seeds"' in block
    monkeypatch.setenv("CAUSALUNLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    code = compile(
        block.replace('"runs/seeds"', repr(str(tmp_path / "seeds"))), "sweeps.md", "exec"
    )
    exec(code, namespace)  # noqa: S102 - our own docs
    variance = namespace["variance"]
    assert variance["levels"] == ["train", "split", "unlearn"] and variance["balanced"]
    names = sorted(p.name for p in (tmp_path / "seeds" / "runs").rglob("*.json"))
    assert len(names) == 8  # 2 × 2 × 2; (0, 0, 0) and (1, 1, 1) are named as paired cells
    assert {"seed0.json", "seed1.json", "seed0-split1-unlearn0.json"} <= set(names)
    assert "['train', 'split', 'unlearn']" in capsys.readouterr().out


def test_nested_settings_survive_dataclasses_replace():
    from dataclasses import replace

    nested = StudySettings(train_seeds=(0, 1), unlearn_seeds=(2,))
    again = replace(nested, progress=False)  # as backends hand settings to workers
    assert again.cell_seeds() == nested.cell_seeds() and again.nested


# -- the variance figure -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def nested_sweep(tmp_path_factory):
    """Fine-tune on digits class 0, 2 training × 1 split × 2 unlearning seeds, with plots."""
    tmp = tmp_path_factory.mktemp("variance-figure")
    settings = _settings(tmp, train_seeds=(0, 1), unlearn_seeds=(0, 1))
    out = tmp / "nested"
    summary = Sweep([load_entry(str(FINETUNE))], ["digits"], ["class:0"], settings, out).run()
    return tmp, out, summary


def _anova_2x2(values: dict[tuple[int, int], float]) -> dict[str, float]:
    """σ²_train and σ²_unlearn of a 2 training × 2 unlearning seed table, by hand (I = K = 2):
    MS_train = K·Σ_t (x̄_t − x̄)² / (I − 1), MS_unlearn = Σ (x − x̄_t)² / (I·(K − 1)),
    σ²_unlearn = MS_unlearn, σ²_train = max(0, (MS_train − MS_unlearn) / K)."""
    rows = np.array([[values[(t, u)] for u in (0, 1)] for t in (0, 1)])
    means = rows.mean(axis=1)
    ms_train = 2 * ((means - rows.mean()) ** 2).sum() / 1
    ms_unlearn = ((rows - means[:, None]) ** 2).sum() / 2
    return {"train": max(0.0, (ms_train - ms_unlearn) / 2), "unlearn": ms_unlearn}


def test_a_nested_sweep_draws_where_its_variance_comes_from(nested_sweep):
    from causalunlearn.metrics.catalogue import BARS
    from causalunlearn.studies import plots

    _, out, summary = nested_sweep
    png = out / "plots" / "variance-digits-class-0.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plots/variance-digits-class-0.png" in summary["plots"]
    table = summary["tables"][0]
    fig = plots.draw_variance(table)
    titles = {b.axis_label: b.key for b in BARS}
    names = {v: k for k, v in plots.VARIANCE_NAMES.items()}
    # The cells' own numbers, read from their files.
    folder = out / "runs" / "finetune" / "digits" / "class-0"
    cells = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    assert len(cells) == 4
    checked = 0
    drawn = [ax for ax in fig.axes if ax.get_title()]
    assert drawn and {ax.get_title() for ax in drawn} <= set(titles)
    for ax in drawn:
        key = titles[ax.get_title()]
        rows = [t.get_text() for t in ax.get_yticklabels()]
        assert rows == ["original", "retrain oracle", "finetune"]
        widths = {names[c.get_label()]: [r.get_width() for r in c] for c in ax.containers}
        assert len(ax.patches) == len(widths) * len(rows)  # every patch is one of the bars
        # Stacked: each segment starts where the one before it ended.
        lefts = [[r.get_x() for r in c] for c in ax.containers]
        for before, after, seg in zip(lefts, lefts[1:], list(widths.values()), strict=False):
            assert after == pytest.approx([a + w for a, w in zip(before, seg, strict=True)])
        # finetune's segments are seed_variance's components of the cells' numbers ...
        values = {CellSeeds.of_record(c): c["metrics"][key] for c in cells}
        parts = variance_components(values)
        expected = {c["name"]: c["variance"] for c in parts["components"]}
        assert set(widths) == set(expected) | set(table["variance"]["oracle"][key]["levels"])
        assert {n: widths[n][2] for n in expected} == pytest.approx(expected)
        # ... which a hand-written ANOVA of the 2 × 2 table gives too.
        by_hand = _anova_2x2({(k.train, k.unlearn): v for k, v in values.items()})
        assert {n: widths[n][2] for n in ("train", "unlearn")} == pytest.approx(by_hand)
        # The original and the oracle: their (training-seed) part, as the summary has it.
        for row, label in ((0, "original"), (1, "oracle")):
            ref = {c["name"]: c["variance"] for c in table["variance"][label][key]["components"]}
            assert {n: w[row] for n, w in widths.items() if n in ref} == pytest.approx(ref)
            assert all(w[row] == 0 for n, w in widths.items() if n not in ref)
        checked += 1
    assert checked >= 3  # forget, retain, test accuracy at least


def test_no_variance_figure_without_parts_to_draw(nested_sweep):
    """Paired seeds, and nested seeds that vary one list only, have nothing to split."""
    from causalunlearn.studies import plots

    tmp, out, _ = nested_sweep
    for name, seeds in (("paired", {"seeds": (0,)}), ("one-list", {"train_seeds": (0, 1)})):
        copy = tmp / name
        shutil.copytree(out, copy, ignore=shutil.ignore_patterns("plots"))
        ran = []
        sweep = Sweep(
            [load_entry(str(FINETUNE))],
            ["digits"],
            ["class:0"],
            _settings(tmp, **seeds),
            copy,
            on_cell=ran.append,
        )
        summary = sweep.run()
        assert ran == []  # every cell is one of the nested sweep's
        assert (copy / "plots" / "bars-digits-class-0.png").is_file()
        assert not any("variance" in p for p in summary["plots"]), name
        assert not list((copy / "plots").glob("variance-*")), name
        assert plots.draw_variance(summary["tables"][0]) is None
    # --no-plots writes none of it.
    nothing = tmp / "no-plots"
    shutil.copytree(out, nothing, ignore=shutil.ignore_patterns("plots"))
    Sweep(
        [load_entry(str(FINETUNE))],
        ["digits"],
        ["class:0"],
        _settings(tmp, train_seeds=(0, 1), unlearn_seeds=(0, 1)),
        nothing,
        plots=False,
    ).run()
    assert not (nothing / "plots").exists()
