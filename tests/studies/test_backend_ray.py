"""The ray backend on one Ray instance shared by this module (4 CPUs and a declared GPU, which
no task uses as CUDA: the machine has none): the same numbers as the local backend, models
trained once, datasets loaded once per worker, GPU fractions packing cells, a worker killed in
the middle of a cell retried to the same numbers."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from causalunlearn.plugins import import_plugin
from causalunlearn.recipes import Recipe
from causalunlearn.studies.backends import Backend
from causalunlearn.studies.entries import load_entry
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.sweep import Sweep

ray = pytest.importorskip("ray")  # the dev extra installs it: CI runs these tests

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = Path(__file__).with_name("backend_plugin.py")
METHODS = [ROOT / "graphs" / "camu.yaml", ROOT / "graphs" / "baselines" / "finetune.yaml"]


@pytest.fixture(scope="module")
def ray_instance():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False)
    yield
    ray.shutdown()


def sweep(out: Path, cache: Path, backend, entries=None, seeds=(0, 1)) -> Sweep:
    settings = StudySettings(
        seeds=seeds, progress=False, threads=1, recipe=Recipe(epochs=5), cache_dir=str(cache)
    )
    entries = entries or [load_entry(str(m)) for m in METHODS]
    return Sweep(entries, ["digits"], ["class:0"], settings, out, plots=False, backend=backend)


def cells(out: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(out)): json.loads(p.read_text())
        for p in sorted((out / "runs").rglob("seed*.json"))
    }


def numbers(out: Path) -> dict:
    """Every cell's metrics and the summary tables, without wall times."""
    per_cell = {}
    for name, cell in cells(out).items():
        metrics = dict(cell["metrics"])
        metrics.pop("unlearn_seconds")
        per_cell[name] = metrics
    tables = json.loads((out / "summary.json").read_text())["tables"]
    for table in tables:  # wall times differ between any two runs (best marks included)
        for row in table["rows"].values():
            row.pop("unlearn_seconds", None)
        table.get("best", {}).pop("unlearn_seconds", None)
    return {"cells": per_cell, "tables": tables}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    """The sweep on the local backend, in its own model cache."""
    root = tmp_path_factory.mktemp("local")
    sweep(root / "out", root / "cache", "local").run()
    return root


def test_ray_computes_the_numbers_of_the_local_backend(ray_instance, local_run, tmp_path):
    sweep(tmp_path / "out", tmp_path / "cache", Backend("ray", workers=2)).run()
    assert numbers(tmp_path / "out") == numbers(local_run / "out")
    assert len(cells(tmp_path / "out")) == 4
    ran = list(cells(tmp_path / "out").values())
    assert {c["threads"] for c in ran} == {1}
    pids = {c["worker"]["pid"] for c in ran}
    assert os.getpid() not in pids and len(pids) >= 2  # in workers, two at once
    assert {c["worker"]["datasets_loaded"] for c in ran} == {1}  # digits once per worker
    # Each original and oracle trained once, in a worker, to the weights of the local run.
    models = sorted((tmp_path / "cache" / "models").rglob("*.pt"))
    assert len(models) == 4
    for path in models:
        twin = local_run / "cache" / path.relative_to(tmp_path / "cache")
        mine, theirs = (torch.load(p, weights_only=True) for p in (path, twin))
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    for seed in (0, 1):
        ref = tmp_path / "out" / "references" / "digits" / "class-0" / f"seed{seed}.json"
        trained = json.loads(ref.read_text())["models"]
        assert not trained["original"]["cached"] and not trained["oracle"]["cached"]


def test_a_quarter_gpu_per_cell_runs_four_cells_at_once(ray_instance, tmp_path):
    nap = import_plugin(PLUGIN).entry  # Ray's workers load the plugin again
    barrier = tmp_path / "barrier"
    entries = [nap(f"nap{i}", barrier=str(barrier), count=4, seconds=0.3) for i in range(6)]
    # CPUs would allow 8 cells at once and the driver 6: the GPU (1 declared) allows 4.
    backend = Backend("ray", workers=6, cpus_per_cell=0.5, gpus_per_cell=0.25)
    sweep(tmp_path / "out", tmp_path / "cache", backend, entries, seeds=(0,)).run()
    ran = list(cells(tmp_path / "out").values())
    assert len(ran) == 6 and len(list(barrier.iterdir())) == 6
    spans = [(c["worker"]["started"], c["finished"]) for c in ran]
    at_once = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert at_once == 4


def _running(title: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.encode() in cmdline:
                found.append(int(entry.name))
    return found


def test_a_worker_killed_in_the_middle_of_a_cell_is_retried(ray_instance, local_run, tmp_path):
    killed: list[int] = []
    stop = threading.Event()

    def kill_the_first_cell() -> None:
        while not killed and not stop.is_set():
            for pid in _running("ray::unlearn_cell"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_first_cell)
    killer.start()
    try:  # the local run's models: this sweep runs only the cells
        sweep(tmp_path / "out", local_run / "cache", Backend("ray", workers=2)).run()
    finally:
        stop.set()
        killer.join()
    assert killed, "no cell was seen running"
    assert numbers(tmp_path / "out") == numbers(local_run / "out")
    assert killed[0] not in {c["worker"]["pid"] for c in cells(tmp_path / "out").values()}


def test_the_python_example_of_the_scaling_page_runs(ray_instance, tmp_path, monkeypatch):
    import re

    monkeypatch.setenv("CAUSALUNLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "docs" / "scaling.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    namespace: dict = {}
    exec(compile(block, "docs/scaling.md", "exec"), namespace)  # noqa: S102 - our own docs
    rows = namespace["summary"]["tables"][0]["rows"]
    assert set(rows) == {"original", "oracle", "finetune"}
    assert len(list((tmp_path / "runs" / "compare-ray" / "runs").rglob("seed*.json"))) == 2


def test_a_nested_seed_tuning_on_ray_is_the_local_one(ray_instance, tmp_path):
    """tune with nested seeds (2 training × 2 unlearning seeds) runs its cells on Ray to the
    numbers and the choice of the local backend."""
    from causalunlearn.graph import load_graph
    from causalunlearn.studies.tuning import parse_grid, tune

    reports = {}
    for kind, backend in (("local", "local"), ("ray", Backend("ray", workers=2))):
        settings = StudySettings(
            train_seeds=(0, 1),
            unlearn_seeds=(0, 1),
            progress=False,
            threads=1,
            recipe=Recipe(epochs=1),
            cache_dir=str(tmp_path / kind / "cache"),  # the models are trained in the workers
        )
        report = tune(
            load_graph(ROOT / "graphs" / "baselines" / "neggrad.yaml"),
            "digits",
            "class:0",
            settings,
            tmp_path / kind / "out",
            grid=parse_grid(["stages.unlearn.lr=1e-3"]),
            backend=backend,
        )
        for row in report["candidates"]:
            row.pop("unlearn_seconds")
        report.pop("sweep")
        reports[kind] = report
    assert reports["ray"] == reports["local"]
    assert reports["ray"]["chosen"] is not None
    local, ray_cells = (cells(tmp_path / kind / "out") for kind in ("local", "ray"))
    assert len(ray_cells) == 4 and ray_cells.keys() == local.keys()
    assert os.getpid() not in {c["worker"]["pid"] for c in ray_cells.values()}
    for name, cell in ray_cells.items():
        mine, theirs = dict(cell["metrics"]), dict(local[name]["metrics"])
        mine.pop("unlearn_seconds"), theirs.pop("unlearn_seconds")
        assert mine == theirs, name
