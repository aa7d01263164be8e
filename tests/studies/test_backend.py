"""Sweep backends without Ray: settings and their errors, the metrics cache of references, the
progress lines, failed cells recorded once, errors and plugins that cross to worker processes.
(Ray itself: tests/studies/test_backend_ray.py and test_backend_cluster.py.)"""

from __future__ import annotations

import importlib.util
import json
import logging
import pickle
import sys
from pathlib import Path

import pytest

from causalunlearn.cli import main
from causalunlearn.errors import GraphError, Problem, RunError
from causalunlearn.numerics import available_cores, threads_for
from causalunlearn.plugins import import_plugin, imported_plugins
from causalunlearn.recipes import Recipe
from causalunlearn.studies.backends import Backend, parse_backend
from causalunlearn.studies.entries import Entry, load_entry
from causalunlearn.studies.settings import StudySettings
from causalunlearn.studies.sweep import Sweep

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"
FINETUNE = ROOT / "graphs" / "baselines" / "finetune.yaml"
PLUGIN = Path(__file__).with_name("backend_plugin.py")


def nap(label: str = "nap", **params) -> Entry:
    """A sweep entry of the test plugin's ``nap`` method (the plugin is loaded first)."""
    return import_plugin(PLUGIN).entry(label, **params)


def _settings(tmp_path: Path, **kw) -> StudySettings:
    kw.setdefault("seeds", (0,))
    return StudySettings(
        progress=False, threads=1, recipe=Recipe(epochs=3), cache_dir=str(tmp_path / "cache"), **kw
    )


@pytest.fixture
def ray_present(monkeypatch):
    """``find_spec('ray')`` answers as if ray were installed (the settings only look it up)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "ray" else real(name, *a)
    )


def test_backend_settings_are_checked(ray_present):
    for bad in (
        dict(kind="slurm"),
        dict(kind="local", workers=2),
        dict(kind="local", address="head:6379"),
        dict(kind="ray", workers=0),
        dict(kind="ray", workers=1.5),
        dict(kind="ray", cpus_per_cell=0),
        dict(kind="ray", gpus_per_cell=-0.25),
        dict(kind="ray", gpus_per_cell=float("nan")),
    ):
        with pytest.raises(RunError) as err:
            Backend(**bad)
        assert err.value.code == "bad-backend", bad
    assert parse_backend(None) == Backend()
    assert parse_backend("ray") == Backend("ray")
    with pytest.raises(RunError, match="backend is a Backend"):
        parse_backend(2)
    with pytest.raises(RunError) as err:
        Sweep([load_entry(str(FINETUNE))], ["digits"], ["class:0"], StudySettings(), "x", backend=3)
    assert err.value.code == "bad-backend"


def test_cells_share_the_cores_unless_told_otherwise(ray_present):
    cores = available_cores()
    assert Backend("ray", workers=2).threads_per_cell(None) == threads_for(2) == max(1, cores // 2)
    assert Backend("ray", workers=2).threads_per_cell(3) == 3  # --threads wins
    assert Backend("ray", cpus_per_cell=2).threads_per_cell(None) == 2
    assert Backend("ray").threads_per_cell(None) == 1
    # On this machine: as many cells at once as cores hold; on a cluster: its resources decide.
    assert Backend("ray").slots(1) == cores
    assert Backend("ray", cpus_per_cell=0.5).slots(1) == 2 * cores
    assert Backend("ray", address="head:6379").slots(1) is None
    assert Backend("ray", workers=3).slots(1) == 3
    assert Backend().slots(4) == 1


def test_the_ray_backend_without_ray_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(RunError) as err:
        Backend("ray")
    assert err.value.code == "ray-missing"
    assert 'pip install "causalunlearn[ray]"' in err.value.hint
    out = tmp_path / "sweep"
    status = main(["compare", str(FINETUNE), "--backend", "ray", "--out", str(out)])
    assert status == 1
    stderr = capsys.readouterr().err
    assert "[ray-missing]" in stderr and 'pip install "causalunlearn[ray]"' in stderr
    assert "Traceback" not in stderr
    assert not out.exists()  # stopped before anything was made


def test_ray_options_are_refused_on_the_local_backend(tmp_path, capsys):
    status = main(["compare", str(FINETUNE), "--workers", "2", "--out", str(tmp_path / "s")])
    assert status == 1
    assert "[bad-backend]" in capsys.readouterr().err


def _reference(out: Path) -> dict:
    return json.loads((out / "references" / "digits" / "class-0" / "seed0.json").read_text())


def test_a_second_sweep_over_the_same_models_does_not_score_them_again(tmp_path, monkeypatch):
    entries = [load_entry(str(FINETUNE))]
    settings = _settings(tmp_path)
    Sweep(entries, ["digits"], ["class:0"], settings, tmp_path / "one", plots=False).run()
    first = _reference(tmp_path / "one")
    assert [first["models"][w]["metrics_cached"] for w in ("original", "oracle")] == [False] * 2

    def scored(*args, **kwargs):
        raise AssertionError("an original or oracle was scored again")

    monkeypatch.setattr("causalunlearn.studies.references.score_model", scored)
    Sweep(entries, ["digits"], ["class:0"], settings, tmp_path / "two", plots=False).run()
    second = _reference(tmp_path / "two")
    assert [second["models"][w]["metrics_cached"] for w in ("original", "oracle")] == [True] * 2
    assert second["metrics"] == first["metrics"]  # the per-folder file is still written
    assert second["identity"] == first["identity"]


def test_a_sweep_reads_the_scores_a_run_cached(tmp_path, monkeypatch):
    from causalunlearn.graph import load_graph
    from causalunlearn.studies.experiment import RunSettings, run_experiment

    common = dict(
        seeds=(0,), progress=False, threads=1, recipe=Recipe(epochs=3), cache_dir=str(tmp_path)
    )
    manifest = run_experiment(
        load_graph(FINETUNE), RunSettings(dataset="digits", scenario="class:0", **common)
    )
    monkeypatch.setattr(
        "causalunlearn.studies.references.score_model",
        lambda *a, **k: pytest.fail("scored again"),
    )
    out = tmp_path / "sweep"
    entries = [load_entry(str(FINETUNE))]
    Sweep(entries, ["digits"], ["class:0"], StudySettings(**common), out, plots=False).run()
    metrics = _reference(out)["metrics"]
    run = manifest["per_seed"][0]["metrics"]
    assert metrics["original"] == run["original"]
    assert metrics["oracle"] == run["oracle"]


def test_progress_lines_and_a_failed_cell_recorded_once(tmp_path, caplog):
    log = tmp_path / "attempts.txt"
    entries = [nap("nap"), nap("bad", fail="non-finite-loss", log=str(log))]
    caplog.set_level(logging.INFO, logger="causalunlearn")
    out = tmp_path / "sweep"
    summary = Sweep(entries, ["digits"], ["class:0"], _settings(tmp_path), out, plots=False).run()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[")]
    assert lines[0].startswith("[1/2] nap digits class:0 seed 0 done (running 0, failed 0)")
    assert "left" in lines[0]
    assert lines[1].startswith("[2/2] bad digits class:0 seed 0 FAILED (running 0, failed 1)")
    assert lines[1].endswith(", done")
    assert len(log.read_text().splitlines()) == 1  # a diverged cell runs once
    cell = json.loads((out / "runs" / "bad" / "digits" / "class-0" / "seed0.json").read_text())
    assert cell["status"] == "failed" and cell["error"]["code"] == "non-finite-loss"
    assert summary["tables"][0]["failures"]["bad"]["errors"] == ["non-finite-loss"]
    # A rerun resumes: the failed cell is a result, not run again.
    Sweep(entries, ["digits"], ["class:0"], _settings(tmp_path), out, plots=False).run()
    assert len(log.read_text().splitlines()) == 1


def test_any_other_error_of_a_cell_stops_the_sweep_with_its_code(tmp_path):
    entries = [nap("nap"), nap("bad", fail="made-up-problem")]
    out = tmp_path / "sweep"
    with pytest.raises(RunError) as err:
        Sweep(entries, ["digits"], ["class:0"], _settings(tmp_path), out, plots=False).run()
    assert err.value.code == "made-up-problem"
    assert (out / "runs" / "nap" / "digits" / "class-0" / "seed0.json").is_file()
    assert not (out / "runs" / "bad").exists()


def test_errors_cross_to_another_process_whole():
    err = RunError("non-finite-loss", "loss is nan", "lower the lr", details={"stage": "output"})
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is RunError
    assert (back.code, back.message, back.hint, back.details) == (
        "non-finite-loss",
        "loss is nan",
        "lower the lr",
        {"stage": "output"},
    )
    assert str(back) == str(err)
    graph = GraphError([Problem("unknown-node", "edges[0]", "no node 'Zz'", "did you mean 'Z'?")])
    again = pickle.loads(pickle.dumps(graph))
    assert again.codes == ["unknown-node"] and str(again) == str(graph)


def test_plugins_are_listed_for_workers_while_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    file = tmp_path / "cu_backend_listed.py"
    file.write_text("VALUE = 1\n")
    import_plugin(file)
    assert (str(file.resolve()), "") in imported_plugins()
    del sys.modules["cu_backend_listed"]  # unloaded: not for workers any more
    assert (str(file.resolve()), "") not in imported_plugins()


def test_the_time_left_counts_from_the_first_cell_not_from_the_model_training():
    # 30 cells, 10 resumed; the originals took 600 s before any cell could start, then one
    # cell took 30 s: 19 cells left at 30 s each, not at the 630 s since the command started.
    from causalunlearn.studies.backends.plan import SweepProgress

    progress = SweepProgress(30, 10, enabled=False)
    assert progress.left() is None  # nothing finished yet
    progress.start -= 630.0
    progress.started()
    progress.first_cell -= 30.0
    progress.done += 1
    assert progress.left(now=progress.first_cell + 30.0) == pytest.approx(19 * 30.0)
    progress.close()


def test_extra_oracles_are_model_tasks_shared_between_contexts(monkeypatch):
    # --oracles 3 with training seeds 0 and 1 on one split: each reference needs the oracles of
    # seeds s, s+1, s+2, so the plan trains the oracles of seeds 0, 1, 2, 3 once each, as model
    # tasks before the references (not inside them), and records only the context's own two
    # models in each reference.
    from types import SimpleNamespace

    from causalunlearn.studies.backends import plan as plan_mod
    from causalunlearn.studies.backends.tasks import CellSpec, ContextKey, Outcome

    calls: list[tuple] = []

    def model(job, ctx, which):
        calls.append(("model", ctx.train_seed, which))
        return Outcome(value={"which": which, "seed": ctx.train_seed})

    def reference(job, ctx, stored, models):
        calls.append(("reference", ctx.train_seed, sorted(models)))
        return Outcome(value=({"models": models}, True))

    def cell(job, spec, ref):
        calls.append(("cell", spec.ctx.train_seed))
        return Outcome(value={"status": "done"})

    monkeypatch.setitem(plan_mod.TASKS, "model", model)
    monkeypatch.setitem(plan_mod.TASKS, "reference", reference)
    monkeypatch.setitem(plan_mod.TASKS, "cell", cell)
    job = SimpleNamespace(settings=SimpleNamespace(oracles=3))
    plan = plan_mod.Plan(job)  # type: ignore[arg-type]
    entry = SimpleNamespace(label="m")
    for seed in (0, 1):
        ctx = ContextKey("digits", "class:0", seed, 0)
        spec = CellSpec(entry, ctx, seed, seed, {}, {"seed": seed})  # type: ignore[arg-type]
        plan.add(spec, Path(f"cell{seed}.json"), Path(f"ref{seed}.json"), lambda _p: None)
    references: dict[str, dict] = {}
    progress = plan_mod.SweepProgress(2, 0, enabled=False)
    plan_mod.run_plan(
        plan,
        Backend(),
        on_reference=lambda path, ref, changed: references.__setitem__(str(path), ref),
        on_cell=lambda spec, path, c: None,
        progress=progress,
    )
    progress.close()
    models = [c for c in calls if c[0] == "model"]
    assert sorted(models) == [
        ("model", 0, "oracle"),
        ("model", 0, "original"),
        ("model", 1, "oracle"),
        ("model", 1, "original"),
        ("model", 2, "oracle"),
        ("model", 3, "oracle"),
    ]
    first_reference = next(i for i, c in enumerate(calls) if c[0] == "reference")
    # context 0's reference comes after its three oracles (seeds 0-2) and its original
    assert {("model", s, "oracle") for s in (0, 1, 2)} <= set(calls[:first_reference])
    assert [c for c in calls if c[0] == "reference"] == [
        ("reference", 0, ["oracle", "original"]),
        ("reference", 1, ["oracle", "original"]),
    ]
    assert references["ref0.json"]["models"]["oracle"] == {"which": "oracle", "seed": 0}
    assert references["ref1.json"]["models"]["oracle"] == {"which": "oracle", "seed": 1}
    assert [c for c in calls if c[0] == "cell"] == [("cell", 0), ("cell", 1)]
