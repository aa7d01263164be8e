"""Output folders: the toolkit never deletes or replaces what it did not make (issue 12, §1).

The matrix below is every state of ``--out`` × with/without ``--overwrite``, with the expected
outcome of each cell written out; each cell also checks that a refused folder (and everything
around it) is byte-for-byte as it was.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from causalunlearn.errors import RunError
from causalunlearn.studies.outdir import (
    STAGING_MARKER,
    FolderState,
    folder_state,
    run_folder,
    sweep_folder,
)

RUN_MANIFEST = {"format": "causalunlearn.run/v1", "status": "finished", "seeds": [0]}


def _finished_run(path: Path, tag: str = "old") -> Path:
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({**RUN_MANIFEST, "tag": tag}))
    (path / "results.md").write_text(f"table {tag}\n")
    return path


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file, link and folder under ``root`` with its content."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_bytes()
        else:
            out[rel] = "<dir>"
    return out


def _chattr(path: Path, flag: str) -> bool:
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True)
    return done.returncode == 0


# Each state builds ``out`` inside ``base``; returns a cleanup to run after the cell.
def _absent(base: Path) -> None:
    return None


def _empty(base: Path) -> None:
    (base / "out").mkdir()


def _user_folder(base: Path) -> None:
    (base / "out").mkdir()
    (base / "out" / "thesis.tex").write_text("three years of work\n")
    (base / "out" / "data").mkdir()
    (base / "out" / "data" / "rows.csv").write_text("1,2,3\n")


def _finished(base: Path) -> None:
    _finished_run(base / "out")


def _staging(base: Path) -> None:
    (base / "out").mkdir()
    (base / "out" / STAGING_MARKER).write_text("pid 1\n")
    (base / "out" / "split-seed0.json").write_text("{}")


def _sweep(base: Path) -> None:
    (base / "out").mkdir()
    (base / "out" / "sweep.json").write_text(json.dumps({"format": "causalunlearn.sweep/v1"}))
    (base / "out" / "summary.md").write_text("sweep table\n")


def _regular_file(base: Path) -> None:
    (base / "out").write_text("a user's file\n")


def _symlink(base: Path) -> None:
    _finished_run(base / "target")
    (base / "out").symlink_to(base / "target")


def _dangling_symlink(base: Path) -> None:
    (base / "out").symlink_to(base / "nowhere")


def _immutable_run(base: Path):
    _finished_run(base / "out")
    if not _chattr(base / "out", "+i"):
        pytest.skip("chattr +i does not work here (needs root on ext4/xfs/btrfs)")
    return lambda: _chattr(base / "out", "-i")


def _immutable_parent(base: Path):
    if not _chattr(base, "+i"):
        pytest.skip("chattr +i does not work here (needs root on ext4/xfs/btrfs)")
    return lambda: _chattr(base, "-i")


STATES = {
    "absent": _absent,
    "empty": _empty,
    "user-folder": _user_folder,
    "finished-run": _finished,
    "staging": _staging,
    "sweep-folder": _sweep,
    "regular-file": _regular_file,
    "symlink": _symlink,
    "dangling-symlink": _dangling_symlink,
    "unwritable-run": _immutable_run,
    "unwritable-parent": _immutable_parent,
}

# (state, overwrite) -> "replaced" (the new run is in place) or the expected error code.
RUN_MATRIX = {
    ("absent", False): "replaced",
    ("absent", True): "replaced",
    ("empty", False): "replaced",
    ("empty", True): "replaced",
    ("user-folder", False): "out-not-ours",
    ("user-folder", True): "out-not-ours",
    ("finished-run", False): "run-exists",
    ("finished-run", True): "replaced",
    ("staging", False): "run-unfinished",
    ("staging", True): "replaced",
    ("sweep-folder", False): "out-is-sweep",
    ("sweep-folder", True): "out-is-sweep",
    ("regular-file", False): "out-is-file",
    ("regular-file", True): "out-is-file",
    ("symlink", False): "out-is-symlink",
    ("symlink", True): "out-is-symlink",
    ("dangling-symlink", False): "out-is-symlink",
    ("dangling-symlink", True): "out-is-symlink",
    ("unwritable-run", False): "run-exists",
    ("unwritable-run", True): "out-not-writable",
    ("unwritable-parent", False): "out-not-writable",
    ("unwritable-parent", True): "out-not-writable",
}

# The same states for a sweep folder (compare / ablate / tune); --overwrite does not change
# what may be written into (it only recomputes mismatched cells).
SWEEP_MATRIX = {
    "absent": "claimed",
    "empty": "claimed",
    "user-folder": "out-not-ours",
    "finished-run": "out-is-run",
    "staging": "out-is-run",
    "sweep-folder": "claimed",
    "regular-file": "out-is-file",
    "symlink": "out-is-symlink",
    "dangling-symlink": "out-is-symlink",
    "unwritable-run": "out-is-run",
    "unwritable-parent": "out-not-writable",
}


def test_the_matrices_cover_every_state():
    assert {s for s, _ in RUN_MATRIX} == set(STATES) == set(SWEEP_MATRIX)
    assert len(RUN_MATRIX) == 2 * len(STATES)


@pytest.mark.parametrize(("state", "overwrite"), sorted(RUN_MATRIX))
def test_run_folder_matrix(tmp_path, state, overwrite):
    base = tmp_path / "base"
    base.mkdir()
    cleanup = STATES[state](base)
    expected = RUN_MATRIX[(state, overwrite)]
    before = _snapshot(tmp_path)
    computed = []
    try:
        if expected == "replaced":
            with run_folder(base / "out", overwrite=overwrite) as staging:
                computed.append(True)
                (staging / "manifest.json").write_text(json.dumps({**RUN_MANIFEST, "tag": "new"}))
            assert folder_state(base / "out") is FolderState.RUN
            assert json.loads((base / "out" / "manifest.json").read_text())["tag"] == "new"
            assert not (base / "out" / STAGING_MARKER).exists()
            # Nothing stranded beside it: no staging, no old copy; only the lock file.
            assert sorted(p.name for p in base.iterdir()) == [".out.lock", "out"]
        else:
            with pytest.raises(RunError) as err:
                with run_folder(base / "out", overwrite=overwrite):
                    computed.append(True)
            assert err.value.code == expected, str(err.value)
            assert err.value.hint
            assert not computed  # refused before any computing
            after = _snapshot(tmp_path)
            after.pop("base/.out.lock", None)
            assert after == before
    finally:
        if cleanup:
            cleanup()


@pytest.mark.parametrize("state", sorted(SWEEP_MATRIX))
def test_sweep_folder_matrix(tmp_path, state):
    base = tmp_path / "base"
    base.mkdir()
    cleanup = STATES[state](base)
    expected = SWEEP_MATRIX[state]
    before = _snapshot(tmp_path)
    try:
        if expected == "claimed":
            with sweep_folder(base / "out") as out:
                (out / "sweep.json").write_text(json.dumps({"format": "causalunlearn.sweep/v1"}))
            assert folder_state(base / "out") is FolderState.SWEEP
            if state == "sweep-folder":  # resumed: the earlier files are still there
                assert (base / "out" / "summary.md").read_text() == "sweep table\n"
        else:
            with pytest.raises(RunError) as err:
                with sweep_folder(base / "out"):
                    pass
            assert err.value.code == expected, str(err.value)
            after = _snapshot(tmp_path)
            after.pop("base/.out.lock", None)
            assert after == before
    finally:
        if cleanup:
            cleanup()


def test_the_working_folder_is_refused(tmp_path, monkeypatch):
    (tmp_path / "mine.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    for out in (".", "..", str(tmp_path)):
        with pytest.raises(RunError) as err:
            with run_folder(out, overwrite=True):
                pass
        assert err.value.code == "out-is-cwd"
    assert (tmp_path / "mine.txt").read_text() == "x"


def test_a_failed_run_leaves_the_earlier_run_and_nothing_else(tmp_path):
    out = _finished_run(tmp_path / "out")
    before = _snapshot(tmp_path)
    with pytest.raises(ZeroDivisionError):
        with run_folder(out, overwrite=True) as staging:
            (staging / "half.json").write_text("{")
            raise ZeroDivisionError
    after = _snapshot(tmp_path)
    after.pop(".out.lock")
    assert after == before


# -- recovery after a kill --------------------------------------------------------------------


def test_recovery_restores_a_run_stranded_by_a_kill_during_the_swap(tmp_path, caplog):
    # Killed after "out -> .out.old-PID" and before "staging -> out".
    _finished_run(tmp_path / ".out.old-4242", tag="precious")
    (tmp_path / ".out.partial-abc").mkdir()
    (tmp_path / ".out.partial-abc" / STAGING_MARKER).write_text("pid 4242\n")
    with pytest.raises(RunError) as err:
        with run_folder(tmp_path / "out", overwrite=False):
            pass
    assert err.value.code == "run-exists"  # the restored run is protected as any other
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["tag"] == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]
    text = caplog.text
    assert "restored" in text and "staging folder of an interrupted run" in text


def test_recovery_removes_an_old_copy_once_the_new_run_is_in_place(tmp_path, caplog):
    # Killed after "staging -> out", before the old copy was deleted.
    _finished_run(tmp_path / "out", tag="new")
    _finished_run(tmp_path / ".out.old-4242", tag="old")
    with run_folder(tmp_path / "out", overwrite=True) as staging:
        (staging / "manifest.json").write_text(json.dumps({**RUN_MANIFEST, "tag": "newer"}))
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["tag"] == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]
    assert "older copy" in caplog.text


def test_recovery_never_deletes_what_it_cannot_prove_is_a_run(tmp_path, caplog):
    _finished_run(tmp_path / "out")
    (tmp_path / ".out.old-17").mkdir()
    (tmp_path / ".out.old-17" / "notes.txt").write_text("a user's file")
    with pytest.raises(RunError):
        with run_folder(tmp_path / "out", overwrite=False):
            pass
    assert (tmp_path / ".out.old-17" / "notes.txt").read_text() == "a user's file"
    assert "left" in caplog.text and ".out.old-17" in caplog.text


# -- two processes ----------------------------------------------------------------------------

HOLD = textwrap.dedent(
    """
    import sys, time
    from causalunlearn.locks import exclusive
    with exclusive(sys.argv[1], wait=False):
        print("held", flush=True)
        time.sleep(120)
    """
)


def _hold_lock(target: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_and_a_killed_holder_blocks_nobody(tmp_path):
    out = tmp_path / "out"
    holder = _hold_lock(out)
    try:
        with pytest.raises(RunError) as err:
            with run_folder(out, overwrite=True):
                pass
        assert err.value.code == "busy"
        with pytest.raises(RunError) as err:
            with sweep_folder(out):
                pass
        assert err.value.code == "busy"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    start = time.monotonic()
    with run_folder(out, overwrite=False) as staging:  # the kernel dropped the dead lock
        (staging / "manifest.json").write_text(json.dumps(RUN_MANIFEST))
    assert time.monotonic() - start < 5
    assert folder_state(out) is FolderState.RUN


TRAIN = textwrap.dedent(
    """
    import json, sys, time
    import torch
    torch.set_num_threads(1)
    import causalunlearn.studies.model_cache as M
    from causalunlearn.data import load_dataset, make_split
    from causalunlearn.recipes import Recipe

    real = M.train_from_scratch
    def slow(*args, **kwargs):  # widen the window in which both processes want the model
        out = real(*args, **kwargs)
        time.sleep(3)
        return out
    M.train_from_scratch = slow
    data = load_dataset("digits")
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    print("ready", flush=True)
    sys.stdin.readline()  # both start together
    _, info = M.ModelCache(sys.argv[1]).get(
        data, split, "original", model="mlp", recipe=Recipe(epochs=1), seed=0,
        device=torch.device("cpu"), progress=False,
    )
    print(json.dumps(info["cached"]), flush=True)
    """
)


def test_two_processes_needing_one_model_train_it_once(tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TRAIN, str(tmp_path / "models")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    cached = []
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0
        cached.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(cached) == [False, True]  # one trained, the other waited and loaded it
    assert len(list((tmp_path / "models").rglob("*.pt"))) == 1


# -- through the command line -----------------------------------------------------------------


def _no_computing(monkeypatch):
    import causalunlearn.studies.backends.tasks as tasks
    import causalunlearn.studies.experiment as experiment

    def boom(*args, **kwargs):
        raise AssertionError("computing started before the output folder was checked")

    monkeypatch.setattr(experiment, "load_dataset", boom)
    # a sweep's tasks load datasets through a per-process cache: the cache must not answer
    monkeypatch.setattr(tasks, "dataset", boom)


@pytest.mark.parametrize("overwrite", [False, True])
def test_cli_run_refuses_a_users_folder_before_computing(tmp_path, monkeypatch, capsys, overwrite):
    from causalunlearn.cli import main

    _no_computing(monkeypatch)
    _user_folder(tmp_path)
    before = _snapshot(tmp_path)
    argv = ["run", "graphs/camu.yaml", "--dataset", "digits", "--out", str(tmp_path / "out")]
    assert main(argv + (["--overwrite"] if overwrite else [])) == 1
    captured = capsys.readouterr()
    assert "out-not-ours" in captured.err + captured.out
    after = _snapshot(tmp_path)
    after.pop(".out.lock", None)
    assert after == before


@pytest.mark.parametrize(
    ("make", "code"),
    [(_finished, "out-is-run"), (_user_folder, "out-not-ours"), (_regular_file, "out-is-file")],
)
def test_cli_compare_refuses_folders_that_are_not_sweeps(tmp_path, monkeypatch, capsys, make, code):
    from causalunlearn.cli import main

    _no_computing(monkeypatch)
    make(tmp_path)
    before = _snapshot(tmp_path)
    argv = ["compare", "graphs/camu.yaml", "--dataset", "digits", "--out", str(tmp_path / "out")]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert code in captured.err + captured.out
    after = _snapshot(tmp_path)
    after.pop(".out.lock", None)
    assert after == before
