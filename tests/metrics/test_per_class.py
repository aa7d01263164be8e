"""Per-class accuracy and confusion matrices against hand-counted values on tiny inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics.per_class import confusion, per_class_accuracy, per_class_report


def test_confusion_matrix_counts_by_hand():
    # labels 0 0 1 1 1 2, predictions 0 1 1 1 0 2: counted by hand below.
    y = [0, 0, 1, 1, 1, 2]
    preds = torch.tensor([0, 1, 1, 1, 0, 2])
    matrix = confusion(preds, y, 4)
    expected = np.array(
        [
            [1, 1, 0, 0],  # true 0: one right, one called 1
            [1, 2, 0, 0],  # true 1: two right, one called 0
            [0, 0, 1, 0],  # true 2: right
            [0, 0, 0, 0],  # class 3 has no row: its row and column are still there
        ]
    )
    assert matrix.dtype == np.int64 and (matrix == expected).all()
    accuracy = per_class_accuracy(matrix)
    assert accuracy[:3] == [50.0, pytest.approx(200 / 3), 100.0] and math.isnan(accuracy[3])


def test_logits_are_read_by_argmax():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]])  # argmax 0, 1, 0
    assert confusion(logits, [0, 0, 1], 2).tolist() == [[1, 1], [1, 0]]


def test_report_splits_forget_retain_and_test_rows():
    # Training rows 0..5 (labels 0 0 1 1 2 2), forget = rows of class 0, predictions hand-set.
    train_preds = torch.tensor([1, 1, 1, 0, 2, 2])
    train_y = torch.tensor([0, 0, 1, 1, 2, 2])
    test_preds, test_y = torch.tensor([0, 2, 2]), torch.tensor([0, 1, 2])
    report = per_class_report(train_preds, train_y, [0, 1], [2, 3, 4, 5], test_preds, test_y, 3)
    assert report["forget"]["confusion"] == [[0, 2, 0], [0, 0, 0], [0, 0, 0]]
    assert report["forget"]["support"] == [2, 0, 0]
    assert report["forget"]["accuracy"][0] == 0.0 and math.isnan(report["forget"]["accuracy"][1])
    assert report["retain"]["confusion"] == [[0, 0, 0], [1, 1, 0], [0, 0, 2]]
    assert report["retain"]["accuracy"][1:] == [50.0, 100.0]
    assert report["test"]["accuracy"] == [100.0, 0.0, 100.0]
    # The mean accuracy weighted by support is the ordinary accuracy of the part.
    test = report["test"]
    overall = sum(a * n for a, n in zip(test["accuracy"], test["support"], strict=True)) / 3
    assert overall == pytest.approx(100 * 2 / 3)


def test_bad_inputs_are_coded_errors():
    with pytest.raises(CausalUnlearnError) as err:
        confusion(torch.tensor([0, 3]), [0, 1], 3)
    assert err.value.code == "label-out-of-range"
    with pytest.raises(CausalUnlearnError) as err:
        confusion(torch.tensor([0, 1]), [0, 1, 1], 3)
    assert err.value.code == "length-mismatch"
    with pytest.raises(CausalUnlearnError) as err:
        confusion(torch.tensor([0]), [0], 0)
    assert err.value.code == "label-out-of-range"


def test_no_rows_gives_a_zero_matrix_and_nan_accuracies():
    matrix = confusion(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 3)
    assert matrix.shape == (3, 3) and not matrix.any()
    assert all(math.isnan(a) for a in per_class_accuracy(matrix))


# A run folder and a sweep summary on digits ------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from causalunlearn.cli import main

    base = tmp_path_factory.mktemp("per-class")
    out = base / "run"
    args = ["run", str(ROOT / "graphs" / "baselines" / "finetune.yaml"), "--dataset", "digits"]
    args += ["--preset", "digits-class", "--seeds", "0,1", "--epochs-original", "2"]
    args += ["--cache-dir", str(base / "cache"), "--threads", "1", "--no-progress"]
    assert main([*args, "--out", str(out)]) == 0
    return out, json.loads((out / "manifest.json").read_text())


def test_a_run_records_every_models_per_class_report(digits_run):
    from causalunlearn.data import load_dataset
    from causalunlearn.metrics.accuracy import predict
    from causalunlearn.models.zoo import build_model, load_state

    out, manifest = digits_run
    data = load_dataset("digits")
    for seed_entry in manifest["per_seed"]:
        assert set(seed_entry["per_class"]) == {"original", "unlearned", "oracle"}
        # The unlearned model saved in the folder, scored here by hand with numpy.
        net = build_model("mlp", data.num_classes, data.input_shape)
        load_state(net, out / f"unlearned-seed{seed_entry['seed']}.pt")
        preds = predict(net, data.test_x).argmax(1).numpy()
        y = data.test_y.numpy()
        by_hand = [100.0 * np.mean(preds[y == c] == c) for c in range(10)]
        report = seed_entry["per_class"]["unlearned"]["test"]
        assert report["accuracy"] == pytest.approx(by_hand)
        assert np.trace(report["confusion"]) == int((preds == y).sum())
    mean = manifest["per_class"]["unlearned"]["test"]["mean"]
    per_seed = [s["per_class"]["unlearned"]["test"]["accuracy"] for s in manifest["per_seed"]]
    assert mean == pytest.approx(np.mean(per_seed, axis=0).tolist())


def test_a_run_folder_shows_the_per_class_table_and_the_confusion_figure(digits_run):
    out, manifest = digits_run
    text = (out / "results.md").read_text()
    assert "**Per-class test accuracy**" in text
    row = next(line for line in text.splitlines() if line.startswith("| finetune | "))
    shown = [float(v) for v in row.strip("| ").split(" | ")[1:]]
    assert shown == pytest.approx(manifest["per_class"]["unlearned"]["test"]["mean"], abs=0.051)
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Summed over the two seeds: every test row of both seeds is in the matrix once.
    summed = np.asarray(manifest["per_class"]["oracle"]["test"]["confusion"])
    assert summed.sum() == 2 * 360


def test_a_sweep_summary_has_per_class_rows_and_a_confusion_figure(tmp_path):
    from causalunlearn.cli import main

    args = ["compare", str(ROOT / "graphs" / "baselines" / "head-zero.yaml"), "--seeds", "0"]
    args += ["--dataset", "digits", "--epochs-original", "2", "--threads", "1", "--no-progress"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "sweep")]
    assert main(args) == 0
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    per_class = summary["tables"][0]["per_class"]
    assert list(per_class) == ["original", "oracle", "head-zero"]
    # head-zero moves the class-0 rows elsewhere and leaves every other class's rows as they were.
    assert per_class["head-zero"]["test"]["mean"][0] == 0.0
    original = np.asarray(per_class["original"]["test"]["confusion"])
    zeroed = np.asarray(per_class["head-zero"]["test"]["confusion"])
    assert zeroed[:, 0].sum() == 0 and (zeroed.sum(axis=1) == original.sum(axis=1)).all()
    text = (tmp_path / "sweep" / "summary.md").read_text()
    assert "### digits, class:0: per-class test accuracy" in text
    assert (tmp_path / "sweep" / "plots" / "confusion-digits-class-0.png").is_file()


def test_rescore_recomputes_the_per_class_reports_from_the_saved_outputs(digits_run, tmp_path):
    import shutil

    from causalunlearn.studies.rescore import rescore

    out, manifest = digits_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    stripped = json.loads((copy / "manifest.json").read_text())
    for entry in stripped["per_seed"]:
        del entry["per_class"]  # as a run made before per-class reports existed
    del stripped["per_class"]
    (copy / "manifest.json").write_text(json.dumps(stripped))
    rescore(copy)
    again = json.loads((copy / "manifest.json").read_text())
    for old, new in zip(manifest["per_seed"], again["per_seed"], strict=True):
        assert new["per_class"] == old["per_class"]
    assert again["per_class"] == manifest["per_class"]
    assert "**Per-class test accuracy**" in (copy / "results.md").read_text()
