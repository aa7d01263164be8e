"""Per-class accuracy and confusion matrices against hand-counted values on tiny inputs."""

from __future__ import annotations

import math

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
