"""LiRA's trained shadows in the model cache (studies/shadows.py, ModelCache.shadow): a sweep of
several methods trains each shadow once, a warm cache gives the numbers a cold one gives, and a
shadow of other settings is another entry."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock

from causalunlearn.data import TensorData, load_dataset, make_split
from causalunlearn.graph import load_graph
from causalunlearn.locks import lock_path
from causalunlearn.numerics import CpuNumerics, applied
from causalunlearn.recipes import Recipe
from causalunlearn.studies.entries import load_entry
from causalunlearn.studies.model_cache import ModelCache
from causalunlearn.studies.outputs import beside, load_outputs
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.shadows import SHADOW_SEED_BASE, LiraBudget, shadow_statistics
from causalunlearn.studies.sweep import Sweep

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"
FINETUNE = ROOT / "graphs" / "baselines" / "finetune.yaml"
SHADOWS = 4
CPU = torch.device("cpu")
RECIPE = Recipe(epochs=2)


def _compare(out: Path, cache: Path) -> None:
    """The sweep ``compare camu finetune --dataset digits --scenario random:0.1 --seeds 0
    --epochs-original 2 --lira-shadows 4 --lira-epochs 2 --threads 1`` makes: its cells."""
    settings = StudySettings(
        seeds=(0,),
        recipe=Recipe(epochs=2),
        lira_shadows=SHADOWS,
        lira_epochs=2,
        threads=1,
        progress=False,
        cache_dir=str(cache),
    )
    entries = [load_entry(str(CAMU)), load_entry(str(FINETUNE))]
    Sweep(entries, ["digits"], ["random:0.1"], settings, out, plots=False).run()


def _shadow_files(cache: Path) -> dict[str, int]:
    """The cached shadows (file name → modification time in ns)."""
    return {p.name: p.stat().st_mtime_ns for p in (cache / "models").rglob("shadow-*.pt")}


def _cells(out: Path) -> dict[str, dict]:
    """The sweep's cells by method label, each with its saved LiRA arrays (``_arrays``)."""
    cells = {}
    for path in sorted((out / "runs").rglob("seed0.json")):
        cell = json.loads(path.read_text())
        cell["_arrays"] = load_outputs(beside(path)).arrays
        cells[cell["method"]["label"]] = cell
    return cells


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory):
    """One cache, two sweeps of the same two methods: the first finds it cold, the second warm."""
    root = tmp_path_factory.mktemp("shadow-sweeps")
    cache = root / "cache"
    _compare(root / "cold", cache)
    after_cold = _shadow_files(cache)
    _compare(root / "warm", cache)
    return cache, after_cold, _cells(root / "cold"), _cells(root / "warm")


def test_the_summary_measures_lira_against_each_cells_own_oracle(two_sweeps, tmp_path):
    # The oracle's LiRA score depends on the shadows, which unlearned with the cell's method:
    # each method's gap is |its AUC - the oracle's AUC on the same shadows|, not a shared one.
    cache, _, cold, _ = two_sweeps
    summary = json.loads((cache.parent / "cold" / "summary.json").read_text())
    rows = summary["tables"][0]["rows"]
    for label, cell in cold.items():
        lira = cell["extra"]["lira"]
        for key, detail in (("lira_auc", "auc"), ("lira_tpr_1fpr", "tpr_at_1fpr")):
            expected = abs(cell["metrics"][key] - lira["oracle"][detail])
            assert rows[label][key]["gap"] == pytest.approx(expected), (label, key)
    assert "U-LiRA AUC" in (cache.parent / "cold" / "summary.md").read_text()


def test_two_methods_in_one_sweep_train_the_shadows_once(two_sweeps):
    cache, after_cold, cold, _ = two_sweeps
    assert len(cold) == 2  # camu and finetune, each attacked with 4 shadows
    assert len(after_cold) == SHADOWS, sorted(after_cold)
    # The cells' own count: the first cell trained every shadow, the second read them all.
    trained = sorted(cell["extra"]["lira"]["shadows_trained"] for cell in cold.values())
    assert trained == [0, SHADOWS]
    for cell in cold.values():
        assert cell["extra"]["lira"]["unlearned"]["n_shadows"] == SHADOWS
        assert cell["_arrays"]["lira.margins"].shape[0] == SHADOWS
    # One entry per shadow seed, each with the attack's epochs (not the originals').
    docs = [json.loads(p.read_text()) for p in (cache / "models").rglob("shadow-*.json")]
    assert sorted(d["seed"] for d in docs) == [SHADOW_SEED_BASE + s for s in range(SHADOWS)]
    assert {d["recipe"]["epochs"] for d in docs} == {2}


def test_a_warm_cache_gives_the_cold_caches_lira_metrics(two_sweeps):
    cache, after_cold, cold, warm = two_sweeps
    assert _shadow_files(cache) == after_cold  # nothing trained or rewritten
    assert set(warm) == set(cold)
    for label, cell in warm.items():
        assert cell["extra"]["lira"]["shadows_trained"] == 0
        for key in ("lira_auc", "lira_tpr_1fpr"):
            assert cell["metrics"][key] == cold[label]["metrics"][key]
        assert cell["extra"]["lira"]["unlearned"] == cold[label]["extra"]["lira"]["unlearned"]
        for name, array in cold[label]["_arrays"].items():
            if name.startswith("lira."):
                assert np.array_equal(cell["_arrays"][name], array), (label, name)
    # The two methods unlearned the same shadows differently: the cache holds the trained ones.
    a, b = (cell["_arrays"]["lira.margins"] for cell in cold.values())
    assert not np.array_equal(a, b)


@pytest.fixture(scope="module")
def digits_task():
    data = load_dataset("digits", progress=False)
    split = make_split(data.train_y, "random:0.1", 0, data.num_classes)
    return data, split, load_graph(FINETUNE)


def _stats(digits_task, cache, *, seed=0, epochs=2):
    data, split, method = digits_task
    return shadow_statistics(
        method,
        data,
        split,
        model="mlp",
        recipe=RECIPE,
        budget=LiraBudget(SHADOWS, epochs),
        seed=seed,
        device=CPU,
        cache=cache,
    )


def test_cached_shadows_give_the_statistics_of_uncached_ones(digits_task, tmp_path):
    """No cache (every shadow trained in the call, as before the cache existed), a cold cache
    and a warm one: bit-identical statistics."""
    plain = _stats(digits_task, None)
    cache = ModelCache(tmp_path / "models")
    cold, warm = _stats(digits_task, cache), _stats(digits_task, cache)
    assert (plain.trained, cold.trained, warm.trained) == (SHADOWS, SHADOWS, 0)
    for stats in (cold, warm):
        assert np.array_equal(stats.margins, plain.margins)
        assert np.array_equal(stats.inside, plain.inside)
        assert np.array_equal(stats.test_rows, plain.test_rows)


def test_other_epochs_or_seed_train_new_shadows(digits_task, tmp_path):
    cache = ModelCache(tmp_path / "models")
    base = _stats(digits_task, cache)
    assert _stats(digits_task, cache, epochs=3).trained == SHADOWS
    other_seed = _stats(digits_task, cache, seed=1)
    assert other_seed.trained == SHADOWS
    assert len(_shadow_files(tmp_path)) == 3 * SHADOWS
    assert not np.array_equal(other_seed.margins, base.margins)


def test_the_key_holds_everything_the_trained_weights_depend_on(digits_task, tmp_path):
    data, _, _ = digits_task
    cache = ModelCache(tmp_path)
    rows = np.arange(0, 2 * len(data.train_y), 2) % (len(data.train_y) + len(data.test_y))

    def path(data=data, rows=rows, model="mlp", recipe=RECIPE, seed=7, executor="fast"):
        doc = cache.shadow_fingerprint(
            data, rows, model=model, recipe=recipe, seed=seed, executor=executor
        )
        return cache.path_for(doc)

    base = path()
    assert base == path(rows=rows.copy())  # the same settings: the same entry
    assert base.parent.name == "shadows" and base.name.startswith("shadow-")
    other_test = TensorData(
        data.name,
        data.train_x,
        data.train_y,
        data.test_x * 0.5,  # a shadow trains on test rows too
        data.test_y,
        data.classes,
        data.mean,
        data.std,
    )
    others = [
        path(recipe=Recipe(epochs=3)),
        path(recipe=Recipe(epochs=2, lr=2e-3)),
        path(recipe=Recipe(epochs=2, batch_size=64)),
        path(seed=8),
        path(rows=rows[:-1]),
        path(rows=rows[::-1].copy()),  # the same rows in another order shuffle differently
        path(executor="reference"),
        path(model="cnn"),
        path(data=other_test),
    ]
    with applied(CpuNumerics(channels_last=True)):
        others.append(path())
    assert len({base, *others}) == len(others) + 1


def test_a_shadow_another_process_trains_is_put_off_not_waited_for(digits_task, tmp_path):
    """While shadow 0's entry is locked (another worker training it), the others are done
    first; once the lock is released the shadow is trained here, with the same statistics."""
    first = ModelCache(tmp_path / "a")
    reference = _stats(digits_task, first)
    by_seed = {
        json.loads(p.with_suffix(".json").read_text())["seed"]: p.relative_to(first.root)
        for p in Path(first.root).rglob("shadow-*.pt")
    }
    second = ModelCache(tmp_path / "b")
    held = Path(second.root) / by_seed[SHADOW_SEED_BASE]
    others = [Path(second.root) / by_seed[SHADOW_SEED_BASE + s] for s in range(1, SHADOWS)]
    lock = FileLock(lock_path(held), thread_local=False)  # released by the other thread
    held.parent.mkdir(parents=True)
    lock.acquire()
    seen: list[bool] = []

    def release_when_the_others_are_cached() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(p.is_file() for p in others):
            time.sleep(0.05)
        seen.append(all(p.is_file() for p in others) and not held.is_file())
        lock.release()

    worker = threading.Thread(target=release_when_the_others_are_cached)
    worker.start()
    try:
        stats = _stats(digits_task, second)
    finally:
        worker.join()
    assert seen == [True]
    assert stats.trained == SHADOWS and held.is_file()
    assert np.array_equal(stats.margins, reference.margins)
