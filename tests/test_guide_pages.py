"""The Python examples of the guide pages run as written (on digits), in order, per page:
docs/tracking.md (your own tracker) and docs/your-own-model.md (bring your own everything)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
