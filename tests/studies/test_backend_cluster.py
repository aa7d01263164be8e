"""The ray backend on a simulated two-node cluster (``ray.cluster_utils.Cluster``: two raylets of
one CPU each on this machine) with the model cache in a folder both nodes see, and a driver
stopped with Ctrl-C (a real SIGINT to a ``causalunlearn compare --backend ray`` process) that
leaves only finished cells and no workers, and resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from causalunlearn.cli import main
from causalunlearn.recipes import Recipe
from causalunlearn.studies.backends import Backend
from causalunlearn.studies.entries import load_entry
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.sweep import Sweep

ray = pytest.importorskip("ray")  # the dev extra installs it: CI runs these tests

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = Path(__file__).with_name("backend_plugin.py")
METHODS = [ROOT / "graphs" / "camu.yaml", ROOT / "graphs" / "baselines" / "finetune.yaml"]


def sweep(out: Path, cache: Path, backend) -> Sweep:
    settings = StudySettings(
        seeds=(0, 1), progress=False, threads=1, recipe=Recipe(epochs=3), cache_dir=str(cache)
    )
    entries = [load_entry(str(m)) for m in METHODS]
    return Sweep(entries, ["digits"], ["class:0"], settings, out, plots=False, backend=backend)


def cells(out: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(out)): json.loads(p.read_text())
        for p in sorted((out / "runs").rglob("seed*.json"))
    }


def metrics(out: Path) -> dict[str, dict]:
    found = {}
    for name, cell in cells(out).items():
        found[name] = {k: v for k, v in cell["metrics"].items() if k != "unlearn_seconds"}
    return found


def test_two_nodes_with_a_shared_model_cache_compute_the_local_numbers(tmp_path):
    from ray.cluster_utils import Cluster

    sweep(tmp_path / "local", tmp_path / "local-cache", "local").run()
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address)
        shared = tmp_path / "shared-cache"  # one folder every node sees (NFS on a real cluster)
        sweep(tmp_path / "ray", shared, Backend("ray", address=cluster.address)).run()
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert metrics(tmp_path / "ray") == metrics(tmp_path / "local")
    assert len({c["worker"]["node"] for c in cells(tmp_path / "ray").values()}) == 2
    assert len(list((shared / "models").rglob("*.pt"))) == 4  # each model once, shared


def _children(pid: int) -> set[int]:
    """Every living descendant of ``pid`` (Ray's raylet, GCS and workers of a driver)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def test_ctrl_c_stops_the_workers_and_a_rerun_resumes(tmp_path, capsys):
    if ray.is_initialized():
        ray.shutdown()
    nap = tmp_path / "nap.yaml"
    nap.write_text("format: causalunlearn.method/v1\nname: nap\nmethod: nap\nparams: {seconds: 3}")
    cache = tmp_path / "cache"

    def command(out: Path, *backend: str) -> list[str]:
        return [
            *("--import", str(PLUGIN), "compare", str(nap), "--dataset", "digits"),
            *("--seeds", "0,1", "--epochs-original", "2", "--threads", "1", "--no-plots"),
            *("--no-progress", "--cache-dir", str(cache), "--out", str(out), *backend),
        ]

    # The whole sweep here first (it also trains the models: the Ray run only loads them).
    assert main(command(tmp_path / "whole")) == 0
    out = tmp_path / "sweep"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "causalunlearn.cli",
            *command(out, "--backend", "ray", "--workers", "1"),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job (`cmd &`, nohup) starts with SIGINT ignored, and Python then
        # installs no KeyboardInterrupt handler: give the driver the terminal's default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list((out / "runs").rglob("seed*.json")) and time.monotonic() < deadline:
        assert driver.poll() is None, driver.stderr.read()
        time.sleep(0.05)
    helpers = _children(driver.pid)
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=60) == 130, driver.stderr.read()
    finished = cells(out)
    assert len(finished) == 1  # of 2, one after the other: the second was cut short
    assert not (out / "summary.json").exists()
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.suffix == ".tmp"]
    deadline = time.monotonic() + 30  # Ray's processes go with the driver
    while _alive(helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(helpers), f"Ray processes left behind: {sorted(_alive(helpers))}"
    # The rerun (on either backend: a cell is the same wherever it runs) computes the rest.
    assert main(command(out)) == 0
    capsys.readouterr()
    after = cells(out)
    assert len(after) == 2
    for name, cell in finished.items():  # kept, not computed again
        assert after[name]["finished"] == cell["finished"]
    assert metrics(out) == metrics(tmp_path / "whole")
