"""The command-line guard (a bug is one line, the stack only with --debug), its logging handler,
and the Python API's side of the same bad inputs (coded errors, bounded cost)."""

from __future__ import annotations

import json
import logging
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import causalunlearn.methods
from causalunlearn.cli import app as cli
from causalunlearn.errors import BUG_REPORT, CausalUnlearnError, GraphError, shown
from causalunlearn.graph import load_graph, read_yaml
from causalunlearn.graph.yamlio import MAX_DEPTH, MAX_NODES

from .cases import ROOT, _bomb

CAMU = str(ROOT / "graphs" / "camu.yaml")


def _explode(*args, **kwargs):
    return 1 / 0


# ------------------------------------------------------------------------------------------------
# the guard
def test_unexpected_exception_is_one_line_naming_the_command(monkeypatch, capsys):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    monkeypatch.setattr(causalunlearn.methods, "load_any", _explode)
    status = cli.main(["validate", CAMU])
    captured = capsys.readouterr()
    assert status == 1
    assert "Traceback" not in captured.out + captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert "[internal-error]" in line and "bug in causalunlearn" in line
    assert "ZeroDivisionError" in line
    assert f"causalunlearn validate {CAMU}" in line
    assert BUG_REPORT in line and "--debug" in line


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_stack(monkeypatch, capsys, how):
    monkeypatch.setattr(causalunlearn.methods, "load_any", _explode)
    if how == "env":
        monkeypatch.setenv(cli.DEBUG_ENV, "1")
        argv = ["validate", CAMU]
    else:
        monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
        argv = ["--debug", "validate", CAMU]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "_explode" in err and "ZeroDivisionError" in err
    assert err.strip().splitlines()[-1].startswith("error: [internal-error]")


def test_debug_shows_the_stack_of_a_coded_error_too(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    (tmp_path / "g.yaml").write_bytes(b"\x00")
    assert cli.main(["--debug", "render", str(tmp_path / "g.yaml"), "-o", "x.dot"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "[binary-file]" in err


def test_interrupt_is_one_line_and_130(monkeypatch, capsys):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(causalunlearn.methods, "load_any", interrupted)
    assert cli.main(["validate", CAMU]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == ["interrupted (Ctrl-C)"]
    assert "Traceback" not in captured.out + captured.err


def test_bug_message_is_one_bounded_line():
    err = ValueError("first line\nsecond line " + "x" * 10_000)
    line = cli.bug_message(err, ["run", "a b.yaml"])
    assert "\n" not in line and len(line) < 1000
    assert "causalunlearn run 'a b.yaml'" in line  # quoted so it can be pasted back


def test_logging_handler_is_idempotent_and_reaches_stderr(capsys):
    logger = logging.getLogger("causalunlearn")
    cli.configure_logging()
    cli.configure_logging()
    assert cli.main(["validate", CAMU]) == 0
    ours = [h for h in logger.handlers if isinstance(h, cli._StderrHandler)]
    assert len(ours) == 1
    capsys.readouterr()
    logging.getLogger("causalunlearn.studies.sweep").info("a notice")
    assert capsys.readouterr().err == "a notice\n"


# ------------------------------------------------------------------------------------------------
# the Python API
def test_load_graph_names_a_binary_or_non_utf8_file(tmp_path):
    for content, code in [(b"\x00\x01", "binary-file"), (b"name: caf\xe9\n", "not-utf8")]:
        path = tmp_path / "g.yaml"
        path.write_bytes(content)
        with pytest.raises(GraphError) as info:
            load_graph(path)
        assert info.value.codes == [code]


def test_nesting_limit_is_exact():
    # MAX_DEPTH nested lists load; one more level is refused (not a RecursionError).
    assert read_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH)[0] is not None
    with pytest.raises(GraphError) as info:
        read_yaml("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert info.value.codes == ["yaml-too-deep"]
    with pytest.raises(GraphError) as info:
        read_yaml("[" * 100_000)
    assert info.value.codes == ["yaml-too-deep"]


def test_node_budget_counts_aliases_expanded_and_is_exact():
    # A list of k scalars is k + 1 nodes; ``[*a, *a]`` over such a list is 1 + 2 (k + 1).
    k = MAX_NODES - 1
    assert len(read_yaml("[" + ", ".join(["1"] * k) + "]")[0]) == k
    with pytest.raises(GraphError) as info:
        read_yaml("[" + ", ".join(["1"] * (k + 1)) + "]")
    assert info.value.codes == ["yaml-too-large"]
    half = (MAX_NODES - 1) // 2 - 1  # a list of half + 1 nodes, twice: 1 + 2 (half + 1) fits
    inner = "[" + ", ".join(["1"] * half) + "]"
    assert len(read_yaml(f"[&a {inner}, *a]")[0]) == 2
    with pytest.raises(GraphError) as info:
        read_yaml(f"[&a {inner}, *a, *a]")
    assert info.value.codes == ["yaml-too-large"]
    assert str(MAX_NODES) in str(info.value)


def test_a_1kb_alias_bomb_fails_fast_in_little_memory():
    text = _bomb(8).decode()
    assert len(text) <= 1024
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(GraphError) as info:
        load_graph(text)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert info.value.codes == ["yaml-too-large"]
    assert seconds < 1.0
    assert peak < 5_000_000  # bytes (before: 1 GB message, 4.3 GB peak, 24 s)
    assert len(str(info.value)) < 1000


def test_a_value_under_the_budget_is_echoed_short():
    # 3 levels of 20: 8 000+ expanded strings, within the budget, given as a wrong-typed name.
    text = 'format: causalunlearn.graph/v1\nx0: &x0 "lol"\n'
    for i in range(1, 4):
        text += f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 20) + "]\n"
    text += "name: *x3\n"
    with pytest.raises(GraphError) as info:
        load_graph(text)
    assert "wrong-type" in info.value.codes
    assert len(str(info.value)) < 3000


def test_shown_bounds_any_value():
    bomb: list = ["lol"] * 9
    for _ in range(8):
        bomb = [bomb] * 9  # 9**9 strings if expanded
    assert len(shown(bomb)) <= 200
    assert len(shown("x" * 10_000, limit=50)) == 50
    assert shown("abc") == "'abc'" and shown(5) == "5"
    assert len(shown(10**5000)) <= 200  # str() of this int raises ValueError in Python 3.11+


def test_pick_device_refuses_an_unknown_device_with_a_code():
    from causalunlearn.device import pick_device

    with pytest.raises(CausalUnlearnError) as info:
        pick_device("tpu")
    assert info.value.code == "bad-device" and info.value.hint


def test_forget_ids_beyond_int64_are_reported_as_written(tmp_path):
    from causalunlearn.data.splits import _read_indices

    cases = {
        "ids.txt": "99999999999999999999999\n",
        "ids.json": json.dumps([2**64]),
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    np.save(tmp_path / "ids.npy", np.array([2**63 + 5], dtype=np.uint64))
    for name, shown_value in [
        ("ids.txt", "99999999999999999999999"),
        ("ids.json", str(2**64)),
        ("ids.npy", str(2**63 + 5)),
    ]:
        with pytest.raises(CausalUnlearnError) as info:
            _read_indices(str(tmp_path / name), 100)
        assert info.value.code == "bad-index"
        assert shown_value in info.value.message  # not wrapped to a negative int64


def test_a_truncated_sweep_cell_is_named(tmp_path):
    from causalunlearn.studies.sweep import read_cell

    path = tmp_path / "seed0.json"
    path.write_text('{"identity": ')
    with pytest.raises(CausalUnlearnError) as info:
        read_cell(path)
    assert info.value.code == "corrupt-cell"
    assert str(path) in info.value.message and "--overwrite" in info.value.hint
    path.write_text('{"a": 1}')
    assert read_cell(Path(path)) == {"a": 1}
