"""Typed records: every file a study writes names its format, and reading checks it."""

from __future__ import annotations

import json

import pytest

from causalunlearn.errors import RunError
from causalunlearn.methods import load_any
from causalunlearn.recipes import Recipe
from causalunlearn.studies.experiment import RunSettings, run_experiment
from causalunlearn.studies.records import (
    CELL_FORMAT,
    MANIFEST_FORMAT,
    RunManifest,
    SweepCell,
    SweepSummary,
    TuningReport,
    read_record,
)


def test_a_run_folder_reads_back_as_a_run_manifest(tmp_path):
    settings = RunSettings(
        seeds=(0,),
        recipe=Recipe(epochs=1),
        cache_dir=str(tmp_path / "c"),
        oracle=False,
        progress=False,
        threads=1,
    )
    written = run_experiment(load_any("camu", preset="digits-class"), settings, tmp_path / "run")
    manifest = read_record(tmp_path / "run" / "manifest.json", RunManifest)
    assert manifest["format"] == MANIFEST_FORMAT and manifest["seeds"] == [0]
    # NaN (one seed has no std) is written as null: compare the means.
    assert (
        manifest["summary"]["unlearned"]["forget_acc"]["mean"]
        == written["summary"]["unlearned"]["forget_acc"]["mean"]
    )


def test_reading_names_what_is_wrong(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"format": "causalunlearn.run/v1", "seeds": [0')
    with pytest.raises(RunError) as err:
        read_record(path, RunManifest)
    assert err.value.code == "corrupt-record" and str(path) in err.value.message

    path.write_text("[1, 2]")
    with pytest.raises(RunError) as err:
        read_record(path, SweepCell)
    assert err.value.code == "corrupt-record"

    path.write_text(json.dumps({"format": CELL_FORMAT}))
    with pytest.raises(RunError) as err:
        read_record(path, RunManifest)
    assert err.value.code == "wrong-record" and CELL_FORMAT in err.value.message
    assert read_record(path, SweepCell)["format"] == CELL_FORMAT

    path.write_text(
        json.dumps({"format": "causalunlearn.run/v0", "versions": {"causalunlearn": "0.0.9"}})
    )
    with pytest.raises(RunError) as err:
        read_record(path, RunManifest)
    assert err.value.code == "record-version" and "0.0.9" in err.value.message

    for kind in (SweepSummary, TuningReport):
        with pytest.raises(RunError):
            read_record(path, kind)
