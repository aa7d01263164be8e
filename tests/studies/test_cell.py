"""One cell function: run, compare and tune report the same numbers for the same cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from causalunlearn.errors import RunError
from causalunlearn.methods import load_any
from causalunlearn.recipes import Recipe
from causalunlearn.studies.entries import load_entry
from causalunlearn.studies.experiment import RunSettings, run_experiment
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.sweep import Sweep

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"
SSD = ROOT / "graphs" / "baselines" / "ssd.yaml"
FAST = Recipe(epochs=2)
#: Wall-time fields differ between two runs of the same cell; nothing else may.
TIMES = ("unlearn_seconds",)


@pytest.mark.parametrize("path", [CAMU, SSD], ids=["graph", "method-entry"])
def test_a_run_and_a_sweep_cell_give_the_same_numbers(tmp_path, path):
    cache = str(tmp_path / "cache")
    common = dict(seeds=(0,), recipe=FAST, cache_dir=cache, progress=False, threads=1)
    manifest = run_experiment(
        load_any(path, preset="digits-class"),
        RunSettings(dataset="digits", scenario="class:0", **common),
    )
    Sweep(
        [load_entry(f"{path}@digits-class")],
        ["digits"],
        ["class:0"],
        StudySettings(**common),
        tmp_path / "sweep",
        plots=False,
    ).run()
    (cell_file,) = (tmp_path / "sweep" / "runs").rglob("seed0.json")
    cell = json.loads(cell_file.read_text())["metrics"]
    ran = manifest["per_seed"][0]["metrics"]["unlearned"]
    for key in TIMES:
        cell.pop(key), ran.pop(key)
    assert ran == cell
    reference = json.loads(
        next((tmp_path / "sweep" / "references").rglob("seed0.json")).read_text()
    )["metrics"]
    assert manifest["per_seed"][0]["metrics"]["original"] == reference["original"]
    assert manifest["per_seed"][0]["metrics"]["oracle"] == reference["oracle"]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"seeds": ()}, "no-seeds"),
        ({"seeds": (0, 0)}, "duplicate-seeds"),
        ({"seeds": (1, 2, 1)}, "duplicate-seeds"),
        ({"seeds": (-1,)}, "bad-seed"),
        ({"seeds": (0.5,)}, "bad-seed"),
        ({"threads": 0}, "bad-count"),
        ({"threads": -1}, "bad-count"),
        ({"executor": "turbo"}, "bad-executor"),
    ],
)
def test_settings_refuse_what_would_give_wrong_numbers(kwargs, code):
    for cls in (StudySettings, RunSettings):
        with pytest.raises(RunError) as err:
            cls(**kwargs)
        assert err.value.code == code and err.value.hint


def test_a_checkpoint_of_nan_weights_is_named_as_the_problem(tmp_path):
    import torch

    from causalunlearn.errors import ModelError
    from causalunlearn.models.zoo import build_model

    net = build_model("mlp", 10, (1, 8, 8), seed=0)
    state = {k: torch.full_like(v, float("nan")) for k, v in net.state_dict().items()}
    torch.save(state, tmp_path / "nan.pt")
    settings = RunSettings(
        seeds=(0,), checkpoint=str(tmp_path / "nan.pt"), oracle=False, progress=False, threads=1
    )
    with pytest.raises(ModelError) as err:
        run_experiment(load_any(CAMU, preset="digits-class"), settings)
    assert err.value.code == "non-finite-checkpoint" and "lower the learning rate" not in str(
        err.value
    )


def test_a_missing_checkpoint_is_refused_by_the_settings(tmp_path):
    with pytest.raises(RunError) as err:
        RunSettings(checkpoint=str(tmp_path / "nowhere.pt"))
    assert err.value.code == "missing-checkpoint"


def test_a_checkpoint_far_below_the_builtin_original_is_warned_about(tmp_path):
    import torch

    from causalunlearn.errors import CausalUnlearnWarning
    from causalunlearn.models.zoo import build_model, save_state
    from causalunlearn.studies.model_cache import ModelCache

    cache = tmp_path / "cache"
    common = dict(seeds=(0,), recipe=FAST, cache_dir=str(cache), oracle=False, progress=False)
    camu = load_any(CAMU, preset="digits-class")
    # An untrained network: ~10 % on the training rows, far below the built-in original.
    save_state(build_model("mlp", 10, (1, 8, 8), seed=3), tmp_path / "random.pt")
    with pytest.warns(CausalUnlearnWarning, match="points below the built-in original"):
        run_experiment(camu, RunSettings(checkpoint=str(tmp_path / "random.pt"), **common))
    # The built-in original itself, brought as a checkpoint: no warning.
    from causalunlearn.data import load_dataset, make_split

    data = load_dataset("digits")
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    original, _ = ModelCache(cache / "models").get(
        data,
        split,
        "original",
        model="mlp",
        recipe=FAST,
        seed=0,
        device=torch.device("cpu"),
        progress=False,
    )
    save_state(original, tmp_path / "mine.pt")
    run_experiment(camu, RunSettings(checkpoint=str(tmp_path / "mine.pt"), **common))


def test_the_oracle_reference_reuses_the_rows_its_scoring_predicted():
    """The activation distance's reference (the oracle on the forget rows) comes from the
    oracle's scoring pass when that ran: no second forward over those rows, same values as
    predicting them again."""
    import torch

    from causalunlearn.data import load_dataset
    from causalunlearn.data.splits import make_split
    from causalunlearn.models.zoo import build_model
    from causalunlearn.studies.cell import oracle_forget_logits, score_model

    data = load_dataset("digits", progress=False)
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    net = build_model("mlp", data.num_classes, data.input_shape, seed=0).eval()
    rows_seen = []
    net.register_forward_hook(lambda _m, args, _out: rows_seen.append(len(args[0])))
    settings = StudySettings(seeds=(0,), progress=False, threads=1)
    device = torch.device("cpu")
    kept: dict = {}
    score_model(net, data, split, 0, settings, device=device, keep_logits=kept)
    scored_rows = sum(rows_seen)
    assert scored_rows == len(data.train_y) + len(data.test_y)
    reused = oracle_forget_logits(net, data, split, device, kept)
    assert sum(rows_seen) == scored_rows  # nothing predicted again
    again = oracle_forget_logits(net, data, split, device)  # no scoring pass to reuse
    assert sum(rows_seen) == scored_rows + len(split.forget)
    torch.testing.assert_close(reused, again.cpu(), rtol=1e-6, atol=1e-6)
    assert reused.shape == (len(split.forget), data.num_classes)
