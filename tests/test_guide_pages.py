"""The Python examples of the guide pages run as written (on digits), in order, per page:
docs/tracking.md (your own tracker) and docs/your-own-model.md (bring your own everything)."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_registries(monkeypatch):
    """The page registers a model and a dataset, and --import adds a module: gone afterwards."""
    from causalunlearn.data.datasets import DATASETS
    from causalunlearn.models.zoo import MODELS

    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    sys.modules.pop("my_model", None)
    MODELS.pop("my-mlp", None)
    DATASETS.pop("my-digits", None)


def _run_page(name: str, tmp_path, monkeypatch) -> dict:
    monkeypatch.setenv("CAUSALUNLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # files the examples write land here
    text = (ROOT / "docs" / name).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, f"{name} has Python examples"
    namespace: dict = {"ROOT": ROOT}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{name} block {i + 1}", "exec"), namespace)  # noqa: S102 - our docs
    return namespace


def test_tracking_page_example_runs(tmp_path, monkeypatch):
    ns = _run_page("tracking.md", tmp_path, monkeypatch)
    tracker = ns["tracker"]
    assert [sorted(e) for e in tracker.epochs][0] == sorted(tracker.epochs[-1])
    assert len(tracker.epochs) == ns["graph"].schedule.epochs
    assert "forget_acc" in tracker.final["unlearned"]


def test_your_own_model_page_runs_from_python_and_the_cli(tmp_path, monkeypatch, clean_registries):
    from causalunlearn.cli import main

    text = (ROOT / "docs" / "your-own-model.md").read_text()
    module = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S))
    assert module.startswith("# my_model.py")
    (tmp_path / "my_model.py").write_text(module)  # the module the CLI --import loads
    ns = _run_page("your-own-model.md", tmp_path, monkeypatch)
    metrics = ns["manifest"]["per_seed"][0]["metrics"]
    assert set(metrics) == {"original", "unlearned", "oracle"}  # the oracle of a brought model
    assert ns["manifest"]["model"] == "my-mlp" and ns["manifest"]["dataset"] == "my-digits"
    assert ns["split"].forget.tolist() == ns["forget"]
    assert ns["result"].model.representation_layer == "encoder.3"
    # the forget IDs are forgotten, and the rest is kept (a trained model, not noise)
    assert metrics["unlearned"]["forget_acc"] < metrics["original"]["forget_acc"]
    assert metrics["original"]["test_acc"] > 80

    commands = [
        line
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
        for line in block.splitlines()
        if line.startswith("causalunlearn ")
    ]
    assert commands
    for line in commands:
        assert main(shlex.split(line)[1:]) == 0, line
    cli = json.loads((tmp_path / "runs" / "mine-cli" / "manifest.json").read_text())
    assert cli["model"] == "my-mlp" and set(cli["per_seed"][0]["metrics"]) == set(metrics)
