"""The metric catalogue: one entry per reported metric, read by every table and figure."""

from __future__ import annotations

import pytest
import torch

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.metrics import catalogue as C


def test_keys_are_unique_and_every_group_reads_the_catalogue():
    all_keys = [m.key for m in C.CATALOGUE]
    assert len(all_keys) == len(set(all_keys))
    groups = [C.RUN_TABLE, C.SUMMARY_COLUMNS, C.AVERAGE_GAP, C.TOW, C.BARS, C.ABLATION_GAPS]
    groups += [g for _, g in C.SUMMARY_GROUPS]
    for group in groups:
        assert all(m is C.metric(m.key) for m in group)
    # The two summary tables show every summary column once.
    shown = [m.key for _, g in C.SUMMARY_GROUPS for m in g]
    assert sorted(shown) == sorted(m.key for m in C.SUMMARY_COLUMNS)


def test_directions_and_labels():
    assert C.metric("forget_acc").direction == "≈ oracle"
    assert C.metric("tow").ideal == "high" and C.metric("tow").target == 1.0
    assert C.metric("unlearn_seconds").direction == "↓"
    assert C.metric("retain_acc").axis_label == "Retain acc (%)"
    assert C.metric("tow").axis_label == "ToW"


def test_unknown_metric_suggests_the_closest():
    with pytest.raises(CausalUnlearnError) as err:
        C.metric("forget_ac")
    assert err.value.code == "unknown-metric" and "forget_acc" in err.value.hint


def test_every_metric_that_evaluate_reports_is_in_the_catalogue(digits_class0):
    from causalunlearn.metrics.evaluate import evaluate

    data, split, original = digits_class0
    reported = evaluate(original, data, split, extended=True, device=torch.device("cpu"))
    known = {m.key for m in C.CATALOGUE}
    assert set(reported) <= known, set(reported) - known
    assert {m.key for m in C.OFFICIAL} <= set(reported)


def test_every_catalogue_entry_has_a_formula_and_is_on_the_metrics_pages():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    pages = "".join((docs / name).read_text() for name in ("sweeps.md", "evaluation.md"))
    for m in C.CATALOGUE:
        assert m.formula and m.source, f"{m.key} needs its formula and source"
        assert m.kind in ("scalar", "per-class", "matrix", "comparison")
    missing = [m.key for m in C.CATALOGUE if f"`{m.key}`" not in pages]
    assert not missing, f"metrics not documented in docs/sweeps.md or docs/evaluation.md: {missing}"
