"""Progress: bars only where they are seen, one log line per epoch elsewhere, no notebook warning.

Under pytest stderr is captured (not a terminal), as in logs, ``nohup`` and CI: no bar is drawn
and a long loop logs its epochs. ``LOG_AFTER_S`` is set to 0 so that a tiny training counts as
long.
"""

from __future__ import annotations

import logging
import re
import sys
import types
import warnings

import pytest
import torch
import tqdm.std

from causalunlearn import progress
from causalunlearn.data import load_dataset, make_split
from causalunlearn.engine.verbs import train_from_scratch
from causalunlearn.recipes import Recipe

LINE = re.compile(
    r"original seed 0: epoch (\d+)/2, \d+\.\d s, (about \d+(\.\d)? (s|min) left|done)"
)


def _train(progress_flag: bool) -> None:
    data = load_dataset("digits")
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    train_from_scratch(
        data,
        split,
        "train",
        model="mlp",
        recipe=Recipe(epochs=2),
        seed=0,
        device=torch.device("cpu"),
        progress=progress_flag,
    )


@pytest.mark.parametrize("progress_flag", [True, False])
def test_training_off_a_terminal_logs_one_line_per_epoch(caplog, monkeypatch, progress_flag):
    monkeypatch.setattr(progress, "LOG_AFTER_S", 0.0)
    with caplog.at_level(logging.INFO, logger="causalunlearn"):
        _train(progress_flag)
    lines = [r for r in caplog.records if r.name == "causalunlearn.engine.loop"]
    assert [r.levelno for r in lines] == [logging.INFO, logging.INFO]
    matches = [LINE.fullmatch(r.getMessage()) for r in lines]
    assert all(matches), [r.getMessage() for r in lines]
    assert [m.group(1) for m in matches if m] == ["1", "2"]
    assert "left" in lines[0].getMessage() and lines[1].getMessage().endswith("done")


def test_a_short_loop_logs_nothing(caplog):
    assert progress.LOG_AFTER_S >= 5  # a tiny training is far shorter
    with caplog.at_level(logging.INFO, logger="causalunlearn"):
        _train(True)
    assert not [r for r in caplog.records if r.name == "causalunlearn.engine.loop"]


def test_on_a_terminal_a_bar_and_no_lines(caplog, monkeypatch, capsys):
    monkeypatch.setattr(progress, "LOG_AFTER_S", 0.0)
    monkeypatch.setattr(progress, "bars_shown", lambda: True)
    with caplog.at_level(logging.INFO, logger="causalunlearn"):
        _train(True)
    assert not [r for r in caplog.records if r.name == "causalunlearn.engine.loop"]
    assert "original seed 0" in capsys.readouterr().err  # the bar's description


def test_no_bar_is_drawn_off_a_terminal(capsys):
    bar = progress.progress_bar(range(3), enabled=True, desc="x")
    assert bar.disable and list(bar) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_jupyter_without_ipywidgets_gets_the_text_bar_and_no_warning(monkeypatch, capsys):
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` fails
    assert not progress.widgets_available()
    assert progress.bar_class() is tqdm.std.tqdm
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm's "IProgress not found" would be a TqdmWarning
        with progress.progress_bar(total=2, desc="cells") as bar:
            assert not bar.disable  # a notebook shows bars
            bar.update(2)
    assert "cells" in capsys.readouterr().err


def test_jupyter_with_ipywidgets_gets_tqdm_auto(monkeypatch):
    sentinel = type("NotebookBar", (), {})
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", types.ModuleType("ipywidgets"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", types.SimpleNamespace(tqdm=sentinel))
    assert progress.bar_class() is sentinel
    monkeypatch.setattr(progress, "in_notebook", lambda: False)  # a terminal: never the widget
    assert progress.bar_class() is tqdm.std.tqdm


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.04, "0.0 s"), (12.44, "12.4 s"), (70.2, "70 s"), (210, "3.5 min"), (7200, "2.0 h")],
)
def test_duration(seconds, text):
    assert progress.duration(seconds) == text
