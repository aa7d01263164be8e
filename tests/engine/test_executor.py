"""The fast executor against the reference executor (the oracle), and the run options.

Tolerances: both executors run in float32 and compute the same quantities in a different
order (one concatenated forward instead of one per stream; the frozen original on chunks of
1024 rows instead of per batch), so per-step term values agree to a relative 1e-5 and final
weights to an absolute 1e-5 (measured: ≤ 1e-6 and ≤ 6e-8 on these runs); every comparison also
checks that the weights moved far more than that, so it is not vacuous.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pytest
import torch
from torch import nn

from causalunlearn.compile.keys import ORIGINAL, StreamKey
from causalunlearn.compile.materialise import materialise
from causalunlearn.compile.objective import compile_objective
from causalunlearn.data import load_dataset, make_split
from causalunlearn.engine.loop import run_schedule
from causalunlearn.engine.plan import build_plan
from causalunlearn.engine.verbs import train_from_scratch, unlearn
from causalunlearn.errors import RunError
from causalunlearn.graph import load_graph
from causalunlearn.models.zoo import build_model
from causalunlearn.recipes import Recipe

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
CAMU = GRAPHS / "camu.yaml"
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5
CPU = torch.device("cpu")


@cache
def _setting():
    data = load_dataset("digits")
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    original, _ = train_from_scratch(
        data,
        split,
        "train",
        model="mlp",
        recipe=Recipe(epochs=2),
        seed=0,
        device=CPU,
        progress=False,
        executor="reference",
    )
    return data, split, original


def _max_diff(a: nn.Module, b: nn.Module) -> float:
    return max(
        (p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


def _assert_same_losses(fast, reference) -> int:
    """Per-step log rows are equal in step/epoch and close in every term; returns the count."""
    assert fast.keys() == reference.keys()
    n = 0
    for sid in reference:
        assert len(fast[sid]) == len(reference[sid]) > 0, sid
        for a, b in zip(fast[sid], reference[sid], strict=True):
            assert a.keys() == b.keys()
            assert (a["step"], a["epoch"]) == (b["step"], b["epoch"])
            for k in b:
                assert a[k] == pytest.approx(b[k], rel=LOSS_RTOL, abs=1e-7), (sid, a["step"], k)
            n += 1
    return n


@pytest.mark.parametrize(
    "graph_file",
    [
        "camu.yaml",
        "baselines/bad-teacher.yaml",  # random_model reference
        "baselines/scrub.yaml",  # two phases, a stage limited to the first epochs
        "baselines/salun.yaml",  # saliency masks
    ],
)
def test_fast_executor_matches_reference(graph_file):
    data, split, original = _setting()
    graph = load_graph(GRAPHS / graph_file, preset="digits-class")
    runs = {
        ex: unlearn(graph, original, data, split, seed=0, progress=False, executor=ex)
        for ex in ("fast", "reference")
    }
    fast, ref = runs["fast"], runs["reference"]
    assert fast.log.steps == ref.log.steps
    steps = _assert_same_losses(fast.log.losses, ref.log.losses)
    assert steps == sum(ref.log.steps.values())  # unlearn logs every step
    assert _max_diff(fast.model, ref.model) <= WEIGHT_ATOL
    assert _max_diff(ref.model, original) > 100 * WEIGHT_ATOL  # the runs did something
    assert fast.log.plan["executor"] == "fast" and ref.log.plan["executor"] == "reference"


def test_salun_mask_holds_under_the_fast_executor():
    data, split, original = _setting()
    graph = load_graph(GRAPHS / "baselines/salun.yaml", preset="digits-class")
    result = unlearn(graph, original, data, split, seed=0, progress=False, executor="fast")
    same = [
        (p == q).float().mean().item()
        for p, q in zip(result.model.parameters(), original.parameters(), strict=True)
    ]
    # keep 0.5: about half of the weights never move; without the mask none would stay put.
    assert 0.3 < sum(same) / len(same) < 0.9


def test_camu_plan_concatenates_and_precomputes_the_original():
    data, split, original = _setting()
    graph = load_graph(CAMU, preset="digits-class")
    objective = compile_objective(graph, build_model("mlp", 10, data.input_shape, seed=0))
    streams = materialise(graph, data, split, seed=0)
    plan = build_plan(objective, streams, "fast")
    rep = plan.stages["representation"]
    assert rep.concatenate and set(rep.model_streams) == {
        StreamKey("forget"),
        StreamKey("retain_sample"),
    }
    assert set(plan.precomputed) == {
        (ORIGINAL, StreamKey("retain_sample")),
        (ORIGINAL, StreamKey("counterfactual")),
    }
    assert plan.stages["output"].concatenate and plan.stages["output"].frozen == ()
    assert not build_plan(objective, streams, "reference").stages["representation"].concatenate


def _count_model_forwards(executor: str) -> tuple[int, dict[str, int]]:
    data, split, original = _setting()
    graph = load_graph(CAMU, preset="digits-class", overrides={"schedule.epochs": 1})
    model = build_model("mlp", 10, data.input_shape, seed=0)
    model.load_state_dict(original.state_dict())
    objective = compile_objective(graph, model)
    streams = materialise(graph, data, split, seed=0, original=objective.original)
    calls = []
    # Training forwards only (the plan probes the model once in eval mode).
    handle = model.register_forward_pre_hook(
        lambda m, a: calls.append(a[0].shape[0]) if m.training else None
    )
    try:
        log = run_schedule(objective, streams, progress=False, executor=executor)
    finally:
        handle.remove()
    return len(calls), log.steps


def test_fast_executor_runs_one_model_forward_per_stage_step():
    fast_calls, steps = _count_model_forwards("fast")
    ref_calls, _ = _count_model_forwards("reference")
    n_steps = sum(steps.values())
    assert fast_calls == n_steps  # forget + retain sample in one forward
    assert ref_calls == 2 * n_steps  # one forward per stream, as the authors' loop


class BatchNormNet(nn.Module):
    """An MLP with batch normalisation: concatenating streams would change its statistics."""

    representation_layer = "rep"

    def __init__(self, num_classes: int = 10, d_in: int = 64) -> None:
        super().__init__()
        self.rep = nn.Sequential(nn.Flatten(), nn.Linear(d_in, 32), nn.BatchNorm1d(32))
        self.head = nn.Linear(32, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.rep(x)))


def test_batchnorm_model_keeps_separate_forwards_and_matches_reference():
    data, split, _ = _setting()
    graph = load_graph(CAMU, preset="digits-class")
    torch.manual_seed(0)
    base = BatchNormNet()
    results = {}
    for ex in ("fast", "reference"):
        model = BatchNormNet()
        model.load_state_dict(base.state_dict())
        objective = compile_objective(graph, model)
        streams = materialise(graph, data, split, seed=0, original=objective.original)
        if ex == "fast":
            plan = build_plan(objective, streams, "fast")
            assert plan.batch_dependent == ("rep.2",)
            assert not any(p.concatenate for p in plan.stages.values())
            assert any("batch-dependent" in n for n in plan.notes)
        results[ex] = (model, run_schedule(objective, streams, progress=False, executor=ex))
    _assert_same_losses(results["fast"][1].losses, results["reference"][1].losses)
    assert _max_diff(results["fast"][0], results["reference"][0]) <= WEIGHT_ATOL
    assert torch.allclose(
        results["fast"][0].rep[2].running_mean, results["reference"][0].rep[2].running_mean
    )


@pytest.mark.parametrize("executor", ["fast", "reference"])
def test_non_finite_loss_names_term_stage_epoch_and_step(executor):
    data, split, original = _setting()
    graph = load_graph(CAMU, preset="digits-class", overrides={"schedule.shuffle": False})
    model = build_model("mlp", 10, data.input_shape, seed=0)
    objective = compile_objective(graph, model)
    streams = materialise(graph, data, split, seed=0)
    x, y = streams.of("forget")
    x = x.clone()
    x[70:] = float("nan")  # rows of the third batch (64..95) onwards: step 2 is the first bad
    streams.rows[StreamKey("forget")] = (x, y)
    with pytest.raises(RunError) as err:
        run_schedule(objective, streams, progress=False, executor=executor, sync_every=50)
    assert err.value.code == "non-finite-loss"
    message = str(err.value)
    assert "stage 'representation'" in message and "epoch 0, step 2" in message
    assert "cut_forget_z" in message and "keep_retain_z" not in message
    details = err.value.details
    assert (details["stage"], details["epoch"], details["step"]) == ("representation", 0, 2)
    assert details["terms"] == ["cut_forget_z"] and not math.isfinite(details["loss"])


def test_unknown_executor_and_amp_and_cuda_graphs_on_cpu_are_refused():
    data, split, original = _setting()
    graph = load_graph(CAMU, preset="digits-class")
    with pytest.raises(RunError) as err:
        unlearn(graph, original, data, split, progress=False, executor="quick")
    assert err.value.code == "unknown-executor"
    with pytest.raises(RunError) as err:
        unlearn(graph, original, data, split, progress=False, amp="fp8")
    assert err.value.code == "unknown-amp"
    with pytest.raises(RunError) as err:
        unlearn(graph, original, data, split, progress=False, device="cpu", cuda_graphs=True)
    assert err.value.code == "cuda-graphs-need-cuda" and "compile=True" in err.value.hint


def test_bf16_autocast_runs_on_cpu_close_to_fp32():
    data, split, original = _setting()
    graph = load_graph(CAMU, preset="digits-class")
    fp32 = unlearn(graph, original, data, split, progress=False)
    bf16 = unlearn(graph, original, data, split, progress=False, amp="bf16")
    a, b = fp32.log.losses["output"], bf16.log.losses["output"]
    # bfloat16 keeps 8 bits of mantissa: losses agree to a few percent, not to float32 rounding.
    assert [r["keep_retain_y"] for r in b] == pytest.approx(
        [r["keep_retain_y"] for r in a], rel=0.05, abs=0.02
    )
    assert [r["keep_retain_y"] for r in b] != [r["keep_retain_y"] for r in a]  # it did run bf16


@pytest.mark.slow
def test_torch_compile_on_cpu_matches_eager():
    data, split, original = _setting()
    graph = load_graph(CAMU, preset="digits-class")
    eager = unlearn(graph, original, data, split, progress=False)
    compiled = unlearn(graph, original, data, split, progress=False, compile=True)
    # Inductor fuses and reorders float32 operations; Adam amplifies the tiny gradient
    # differences step by step (measured: 0.2% after one step, under 1% after ten).
    for sid, rows in eager.log.losses.items():
        for a, b in zip(compiled.log.losses[sid], rows, strict=True):
            assert a == pytest.approx(b, rel=0.05, abs=1e-3)
    assert _max_diff(compiled.model, eager.model) <= 1e-2
