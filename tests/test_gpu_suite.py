"""The GPU suite's logic on the CPU (``benchmarks/gpu_suite.py --smoke``), and what it needs.

The suite runs on a GPU machine that has no network, no Graphviz and no pgmpy; this file checks
its smoke mode end to end (digits, tiny synthetic CIFAR-shaped data), that its report is written
after each part, the utilisation sampler with a fake ``nvidia-smi``, the tolerance checks, the
budget arithmetic, and that ``import causalunlearn`` and the suite work with ``graphviz`` and
``pgmpy`` blocked.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from causalunlearn.graph import load_graph

ROOT = Path(__file__).resolve().parents[1]
FAKE_SMI = f"{sys.executable} -c print(37)"


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", ROOT / "benchmarks" / "gpu_suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('graphviz', 'pgmpy'):
            raise ImportError(f'{name} is blocked for this test')
sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The whole smoke run, in a process where ``graphviz`` and ``pgmpy`` cannot be imported
    (as on the GPU machine), after ``import causalunlearn`` and a diagram attempt there."""
    folder = tmp_path_factory.mktemp("suite")
    out = folder / "suite.json"
    argv = ["gpu_suite.py", "--smoke", "--threads", "1", "--out", str(out)]
    argv += ["--utilisation-command", FAKE_SMI]
    script = _BLOCKER + textwrap.dedent(
        f"""
        import runpy, sys
        import causalunlearn
        from causalunlearn import load_graph, to_dot
        from causalunlearn.errors import CausalUnlearnError
        graph = load_graph({str(ROOT / "graphs" / "camu.yaml")!r}, preset="digits-class")
        try:
            to_dot(graph)
        except CausalUnlearnError as err:
            print("CODE", err.code)
        sys.argv = {argv!r}
        runpy.run_path({str(ROOT / "benchmarks" / "gpu_suite.py")!r}, run_name="__main__")
        print("LOADED", sorted(m for m in sys.modules if m.split('.')[0] in ('graphviz', 'pgmpy')))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=folder
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), out, done.stdout


def test_causalunlearn_and_the_suite_need_neither_graphviz_nor_pgmpy(smoke):
    stdout = smoke[2]
    assert "CODE graphviz-missing" in stdout  # drawing says what is missing, nothing else does
    assert "LOADED []" in stdout


def test_smoke_runs_every_part_and_writes_the_report(smoke):
    report, out, stdout = smoke
    assert report["format"] == "causalunlearn.gpu-suite/v1" and report["smoke"] is True
    assert out.with_suffix(".md").read_text().startswith("# GPU suite")
    assert "| fast-eager-fp32 |" in stdout  # the summary is printed too
    assert list(report["parts"]) == ["camu", "stacked", "cifar"]
    for part, record in report["parts"].items():
        assert "error" not in record, (part, record.get("traceback"))
        assert "partial" not in record  # each part's final record replaced its partial ones


def test_smoke_part_camu_times_compares_and_skips_what_needs_cuda(smoke):
    camu = smoke[0]["parts"]["camu"]
    configs = camu["configs"]
    for name in ("reference-eager-fp32", "fast-eager-fp32", "fast-eager-bf16"):
        assert configs[name]["warm_loop_s"] > 0 and configs[name]["metrics"]["test_acc"] > 50
    assert configs["fast-cuda-graphs-fp32"]["skipped"].startswith("[cuda-graphs-need-cuda]")
    assert "skipped" in configs["fast-compile-fp32"]
    # The fast executor computes what the reference computes (to float rounding).
    check = camu["checks"]["reference-eager-fp32"]
    assert check["within"] and check["term_rel_max"] < 1e-4
    assert camu["checks"]["fast-eager-bf16"]["tolerance"] == {
        "term_rel": 0.10,
        "acc_points": 2.0,
        "mia_points": 5.0,
    }
    assert camu["speedup"]["best"] in configs and camu["speedup"]["target"] == 10.0
    assert configs["fast-eager-fp32"]["utilisation"]["mean"] == 37.0  # the fake nvidia-smi


def test_smoke_part_stacked_matches_separate_runs(smoke):
    stacked = smoke[0]["parts"]["stacked"]
    assert list(stacked["k"]) == ["1", "4"]  # 16 is left out in smoke mode
    for record in stacked["k"].values():
        assert record["max_weight_diff"] < 1e-4
        assert record["stacked_s"] > 0 and record["separate_s"] > 0
    assert stacked["k"]["4"]["variants"][0] == "base"


def test_smoke_part_cifar_trains_unlearns_and_scores_within_the_budget(smoke):
    cifar = smoke[0]["parts"]["cifar"]
    assert cifar["model"] == "resnet18" and cifar["preset"] == "cifar-class"
    seed = cifar["seeds"]["0"]
    assert seed["epochs"] == 1 and set(seed["metrics"]) == {"original", "unlearned", "oracle"}
    for metrics in seed["metrics"].values():
        assert all(0 <= metrics[k] <= 100 for k in ("retain_acc", "forget_acc", "test_acc"))
    assert seed["original_train_s"] > 0 and cifar["probe"]["step_s"] > 0


def test_the_report_is_on_disk_after_each_part_and_a_failing_part_does_not_stop_the_rest(
    suite, tmp_path, monkeypatch
):
    out = tmp_path / "r.json"
    seen = {}

    def fails(_suite):
        seen["on_disk"] = json.loads(out.read_text())
        raise RuntimeError("planted")

    monkeypatch.setitem(suite.RUNNERS, "camu", lambda _s: {"ran": True})
    monkeypatch.setitem(suite.RUNNERS, "stacked", fails)
    monkeypatch.setitem(suite.RUNNERS, "cifar", lambda _s: {"ran": True})
    report = suite.main(["--smoke", "--out", str(out)])
    assert list(seen["on_disk"]["parts"]) == ["camu"]  # written before part stacked started
    assert report["parts"]["stacked"]["error"] == "RuntimeError: planted"
    assert report["parts"]["cifar"]["ran"] is True  # the part after the failing one ran
    assert json.loads(out.read_text())["parts"]["stacked"]["error"] == "RuntimeError: planted"


def test_a_part_in_progress_is_on_disk_marked_partial(suite, tmp_path):
    state = suite.Suite(suite.build_parser().parse_args(["--smoke"]))
    state.keep("camu", {"configs": {}})  # no report yet: nothing to write, no error
    report = {"command": "gpu_suite.py", "device": "cpu", "machine": {}, "parts": {}}
    state.report, state.out = report, tmp_path / "r.json"
    record = {"dataset": "mnist", "preset": "mnist-class", "repeats": 2, "configs": {}}
    record["configs"]["fast-compile-fp32"] = {"options": {}, "skipped": "why"}
    state.keep("camu", record)
    on_disk = json.loads((tmp_path / "r.json").read_text())
    assert on_disk["parts"]["camu"]["partial"] is True
    assert on_disk["parts"]["camu"]["configs"]["fast-compile-fp32"]["skipped"] == "why"
    assert "| fast-compile-fp32 | — |" in (tmp_path / "r.md").read_text()


def test_utilisation_sampler_reads_a_command_and_survives_a_missing_one(suite):
    with suite.UtilisationSampler([sys.executable, "-c", "print('12\\n99')"], every=0.01) as s:
        import time

        time.sleep(0.3)
    summary = s.summary()
    assert summary["samples"] >= 1 and summary["mean"] == 12.0 and summary["error"] is None
    with suite.UtilisationSampler(["no-such-command-for-gpu-suite"]) as missing:
        pass
    assert missing.summary()["mean"] is None and "FileNotFoundError" in missing.error


def test_compare_applies_each_tolerance(suite):
    base = {"terms": {"a/x": 2.0}, "metrics": {"test_acc": 90.0, "mia_acc": 50.0}}
    tol = {"term_rel": 0.1, "acc_points": 1.0, "mia_points": 5.0}
    near = {"terms": {"a/x": 2.1}, "metrics": {"test_acc": 89.5, "mia_acc": 54.0}}
    result = suite.compare(base, near, tol)
    assert result["within"] and result["term_rel_max"] == pytest.approx(0.05)
    assert result["acc_points_max"] == pytest.approx(0.5) and result["mia_points_max"] == 4.0
    far = {"terms": {"a/x": 2.1}, "metrics": {"test_acc": 88.0, "mia_acc": 50.0}}
    assert not suite.compare(base, far, tol)["within"]


def test_weightings_and_epochs_that_fit(suite):
    graph = load_graph(ROOT / "graphs" / "camu.yaml", preset="mnist-class")
    pool = suite.weightings(graph, 16)
    assert pool[0] == {} and len({json.dumps(w, sort_keys=True) for w in pool}) == 16
    assert pool[1] == {"keep_retain_z": 0.0}  # the first edge's ablation
    with pytest.raises(ValueError):
        suite.weightings(graph, 18)
    # 100 s, 5 s kept back, 10 s per original epoch + 9 s per oracle epoch: 95 // 19 = 5.
    assert suite.epochs_that_fit(100, 10.0, retain_fraction=0.9, reserve_s=5, cap=20) == 5
    assert suite.epochs_that_fit(100, 10.0, retain_fraction=0.9, reserve_s=5, cap=3) == 3
    assert suite.epochs_that_fit(10, 10.0, retain_fraction=0.9, reserve_s=5, cap=3) == 0
