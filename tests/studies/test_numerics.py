"""CPU numerics and threads as run settings (issue 13): applied, recorded, keyed; reference
metrics scored once per cached model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from causalunlearn import numerics as N
from causalunlearn.errors import RunError
from causalunlearn.methods import load_any
from causalunlearn.recipes import Recipe
from causalunlearn.studies import cell as cell_module
from causalunlearn.studies.experiment import RunSettings, run_experiment

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"
FAST = Recipe(epochs=2)


@pytest.fixture(autouse=True)
def numerics_off():
    """Every test starts and ends with the process default (flush-to-zero off)."""
    N.apply(N.CpuNumerics())
    yield
    N.apply(N.CpuNumerics())


def _settings(tmp_path, **kwargs) -> RunSettings:
    common = dict(
        dataset="digits",
        scenario="class:0",
        seeds=(0,),
        recipe=FAST,
        cache_dir=str(tmp_path / "cache"),
        progress=False,
        threads=1,
    )
    return RunSettings(**{**common, **kwargs})


def test_cpu_numerics_is_checked_and_probed():
    with pytest.raises(RunError) as err:
        N.CpuNumerics(flush_denormal="yes")
    assert err.value.code == "bad-numerics"
    with pytest.raises(RunError) as err:
        RunSettings(numerics={"flush_denormal": True})
    assert err.value.code == "bad-numerics"
    assert N.current() == N.CpuNumerics()
    assert N.apply(N.CpuNumerics(flush_denormal=True, channels_last=True)) in (True, False)
    if torch.set_flush_denormal(True):  # a CPU that supports it (every x86 with SSE3)
        assert N.current() == N.CpuNumerics(flush_denormal=True, channels_last=True)
        assert (torch.tensor([1e-310], dtype=torch.float64) * 1.0).item() == 0.0
    with N.applied(N.CpuNumerics()):
        assert not N.flush_denormal_active()
        assert (torch.tensor([1e-310], dtype=torch.float64) * 1.0).item() != 0.0
    assert N.current().channels_last  # restored to what was in effect before the block


def test_threads_auto_and_division_between_cells(monkeypatch):
    from threadpoolctl import threadpool_info

    monkeypatch.setattr(N, "available_cores", lambda: 8)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert N.resolve_threads(None) == 4  # torch's count, bounded by the cores
    monkeypatch.setattr(N, "available_cores", lambda: 2)
    assert N.resolve_threads(None) == 2
    assert N.resolve_threads(3) == 3
    monkeypatch.setattr(N, "available_cores", lambda: 8)
    assert [N.threads_for(k, 8) for k in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    with pytest.raises(RunError) as err:
        N.threads_for(0)
    assert err.value.code == "bad-count"
    monkeypatch.undo()
    before = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    with N.limit_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
        pools = threadpool_info()  # the attackers' pools are loaded first, so they are bounded
        assert {"openmp", "blas"} <= {i["user_api"] for i in pools}
        assert all(i["num_threads"] == 1 for i in pools)
    after = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    assert {k: after[k] for k in before} == before  # the limits are lifted again


def test_flush_denormal_is_applied_recorded_and_keys_the_cache(tmp_path, monkeypatch):
    seen = []
    unlearn_with = cell_module.unlearn_with

    def spy(*args, **kwargs):
        seen.append(N.flush_denormal_active())
        return unlearn_with(*args, **kwargs)

    monkeypatch.setattr(cell_module, "unlearn_with", spy)
    graph = load_any(CAMU, preset="digits-class")
    off = run_experiment(graph, _settings(tmp_path, oracle=False))
    on = run_experiment(
        graph,
        _settings(tmp_path, oracle=False, numerics=N.CpuNumerics(flush_denormal=True)),
    )
    supported = on["numerics"]["flush_denormal_supported"]
    assert seen == [False, supported]
    assert not N.flush_denormal_active()  # the run restores what was in effect
    assert off["numerics"] == {
        "flush_denormal": False,
        "channels_last": False,
        "flush_denormal_supported": True,
    }
    assert on["numerics"]["flush_denormal"] is supported and on["threads"] == 1
    path_off = off["per_seed"][0]["models"]["original"]["path"]
    path_on = on["per_seed"][0]["models"]["original"]["path"]
    if supported:  # an original trained with flush-to-zero is another cache entry
        assert path_on != path_off
        assert not on["per_seed"][0]["models"]["original"]["cached"]
        doc = json.loads(Path(path_on).with_suffix(".json").read_text())
        assert doc["numerics"]["flush_denormal"] is True
    # off keeps the key of models cached before the setting existed
    assert (
        "flush_denormal"
        not in json.loads(Path(path_off).with_suffix(".json").read_text())["numerics"]
    )


def test_a_second_run_scores_only_the_unlearned_model(tmp_path, monkeypatch):
    calls = []
    score_model = cell_module.score_model

    def counting(net, *args, **kwargs):
        calls.append(net)
        return score_model(net, *args, **kwargs)

    monkeypatch.setattr(cell_module, "score_model", counting)  # the unlearned model's
    # the original's and oracle's (the same function and cache key as a sweep's)
    monkeypatch.setattr("causalunlearn.studies.references.score_model", counting)
    graph = load_any(CAMU, preset="digits-class")
    first = run_experiment(graph, _settings(tmp_path))
    assert len(calls) == 3  # original, oracle, unlearned
    calls.clear()
    second = run_experiment(graph, _settings(tmp_path))
    assert len(calls) == 1
    models = second["per_seed"][0]["models"]
    assert models["original"]["metrics_cached"] and models["oracle"]["metrics_cached"]
    for role in ("original", "oracle", "unlearned"):
        a, b = first["per_seed"][0]["metrics"][role], second["per_seed"][0]["metrics"][role]
        a.pop("unlearn_seconds", None), b.pop("unlearn_seconds", None)
        assert a.keys() == b.keys()
        assert all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a), role
    # other attack settings are scored again, not served from the cache
    calls.clear()
    run_experiment(graph, _settings(tmp_path, relearn=True))
    assert len(calls) == 3


def test_a_replaced_model_file_is_scored_again(tmp_path):
    from causalunlearn.studies.model_cache import ModelCache

    model = tmp_path / "original-x.pt"
    model.write_bytes(b"weights")
    cache = ModelCache(tmp_path)
    computed = []

    def compute():
        computed.append(1)
        return {"acc": 0.5 + len(computed)}, {}

    assert cache.metrics(model, {"k": 1}, compute) == ({"acc": 1.5}, {}, False)
    assert cache.metrics(model, {"k": 1}, compute) == ({"acc": 1.5}, {}, True)
    model.write_bytes(b"other weights")
    assert cache.metrics(model, {"k": 1}, compute) == ({"acc": 2.5}, {}, False)
    cache.metrics_path(model, {"k": 1}).write_text("{truncated")
    assert cache.metrics(model, {"k": 1}, compute)[2] is False


def test_cli_flags_reach_the_manifest_and_the_sweep_cell(tmp_path):
    from causalunlearn.cli import main

    common = ["--dataset", "digits", "--seeds", "0", "--epochs-original", "2", "--no-progress"]
    common += ["--cache-dir", str(tmp_path / "cache"), "--threads", "auto"]
    out = tmp_path / "run"
    args = ["run", str(CAMU), "--preset", "digits-class", "--no-oracle", "--flush-denormal"]
    assert main([*args, "--channels-last", *common, "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["numerics"]["channels_last"] is True
    assert (
        manifest["numerics"]["flush_denormal"] is manifest["numerics"]["flush_denormal_supported"]
    )
    assert manifest["threads"] == N.resolve_threads(None) == torch.get_num_threads()
    sweep = tmp_path / "sweep"
    args = ["compare", f"{CAMU}@digits-class", "--no-plots", "--no-flush-denormal"]
    assert main([*args, *common, "--out", str(sweep)]) == 0
    (cell_file,) = (sweep / "runs").rglob("seed0.json")
    cell = json.loads(cell_file.read_text())
    assert cell["numerics"] == {"flush_denormal": False, "channels_last": False}
    assert "numerics" not in cell["identity"]["settings"]  # off: the identity of older sweeps
    assert not N.flush_denormal_active()


def test_apply_reaches_the_threads_of_a_pool_that_started_before_it(caplog):
    """FTZ/DAZ bits are per thread: set after torch's pool started, they used to reach only the
    calling thread (half of a 2-thread op flushed)."""
    if "OpenMP" not in torch.__config__.parallel_info() or N.available_cores() < 2:
        pytest.skip("needs torch's OpenMP pool and 2 cores")
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    torch.set_flush_denormal(False)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.ones(1 << 20, dtype=torch.int32).view(torch.float32)  # subnormals, by bits
        assert ((x * 1.0) == 0).float().mean().item() == 0.0  # the pool runs, unflushed
        torch.set_flush_denormal(True)  # the calling thread only
        assert ((x * 1.0) == 0).float().mean().item() < 1.0
        assert not N.flush_denormal_active()  # a partial state does not count as on
        N.apply(N.CpuNumerics(flush_denormal=True))
        assert ((x * 1.0) == 0).float().mean().item() == 1.0
        assert N.flush_denormal_active()
        N.apply(N.CpuNumerics())
        assert ((x * 1.0) == 0).float().mean().item() == 0.0
        assert "only part" not in caplog.text
    finally:
        N.apply(N.CpuNumerics())
        torch.set_num_threads(threads)


def test_a_second_run_reads_the_reference_models_outputs_from_the_cache(tmp_path, monkeypatch):
    """The original's and oracle's per-example outputs are stored beside the cached models: a
    second run predicts only the unlearned model, and saves the same outputs."""
    import numpy as np

    from causalunlearn.studies import outputs as outputs_module

    graph = load_any(CAMU, preset="digits-class")
    first = run_experiment(graph, _settings(tmp_path), tmp_path / "one")
    stored = sorted(p.name for p in (tmp_path / "cache").rglob("*.outputs-*.npz"))
    assert (
        len(stored) == 2 and stored[0].startswith("oracle-") and stored[1].startswith("original-")
    )
    predicted_nets = []
    real = outputs_module.predicted

    def counting(net, *args, **kwargs):
        kept = args[2] if len(args) > 2 else kwargs.get("kept")
        if not (kept and "train" in kept):
            predicted_nets.append(net)
        return real(net, *args, **kwargs)

    monkeypatch.setattr(outputs_module, "predicted", counting)
    second = run_experiment(graph, _settings(tmp_path), tmp_path / "two")
    assert predicted_nets == []  # both references came from beside their models
    assert first["per_seed"][0]["outputs"] and second["per_seed"][0]["outputs"]
    a = np.load(tmp_path / "one" / outputs_module.outputs_name(0))
    b = np.load(tmp_path / "two" / outputs_module.outputs_name(0))
    for role in ("original", "oracle"):
        for part in ("train", "test"):
            assert np.array_equal(a[f"{role}.{part}"], b[f"{role}.{part}"]), (role, part)
