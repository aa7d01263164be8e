"""Compiler pieces: divergences against hand computations, materialisation, schedules, errors."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from causalunlearn.compile.divergences import DIVERGENCES, get_divergence, register_divergence
from causalunlearn.compile.keys import MODEL, ORIGINAL, ModelKey, StreamKey
from causalunlearn.compile.materialise import materialise
from causalunlearn.compile.objective import compile_objective
from causalunlearn.compile.references import REFERENCES, Target, register_reference
from causalunlearn.data import TensorData, make_split
from causalunlearn.engine.loop import run_schedule
from causalunlearn.engine.plan import build_plan
from causalunlearn.errors import ModelError, RunError
from causalunlearn.graph import Divergence, load_graph
from causalunlearn.graph import spec as S
from causalunlearn.models.zoo import build_model

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"


def tiny_data(n_per_class: int = 20, classes: int = 4, seed: int = 0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = torch.randn(len(y), 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()
    return TensorData("tiny", x, y, x[::2].clone(), y[::2].clone(), tuple(map(str, range(classes))))


# Divergences -------------------------------------------------------------------------------------
def test_kl_sum_equals_hand_computation():
    value = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 1.0]])
    ref = torch.tensor([[0.5, 0.5, 2.0], [1.0, 1.0, 1.0]])
    p = ref.softmax(1)
    q = value.softmax(1)
    expected = sum(
        p[i, j].item() * (math.log(p[i, j].item()) - math.log(q[i, j].item()))
        for i in range(2)
        for j in range(3)
    )
    got = get_divergence("kl")(
        value, Target("logits", ref), Divergence("kl", softmax_over="features", reduction="sum")
    )
    assert got.item() == pytest.approx(expected, rel=1e-6)
    swapped = get_divergence("kl")(
        value,
        Target("logits", ref),
        Divergence("kl", direction="model_to_reference", reduction="sum"),
    )
    expected_swapped = sum(
        q[i, j].item() * (math.log(q[i, j].item()) - math.log(p[i, j].item()))
        for i in range(2)
        for j in range(3)
    )
    assert swapped.item() == pytest.approx(expected_swapped, rel=1e-6)


def test_cross_entropy_labels_soft_and_temperature():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.1, 0.2, 0.3]])
    labels = torch.tensor([0, 2])
    ce = get_divergence("cross_entropy")
    hand = (
        -(math.log(logits[0].softmax(0)[0].item()) + math.log(logits[1].softmax(0)[2].item())) / 2
    )
    assert ce(
        logits, Target("labels", labels), Divergence("cross_entropy")
    ).item() == pytest.approx(hand, rel=1e-6)
    uniform = torch.full((2, 3), 1 / 3)
    soft = ce(logits, Target("probs", uniform), Divergence("cross_entropy", reduction="sum"))
    hand_soft = -sum(
        math.log(logits[i].softmax(0)[j].item()) / 3 for i in range(2) for j in range(3)
    )
    assert soft.item() == pytest.approx(hand_soft, rel=1e-6)
    t = ce(logits, Target("labels", labels), Divergence("cross_entropy", temperature=2.0))
    assert t.item() == pytest.approx(F.cross_entropy(logits / 2, labels).item(), rel=1e-6)


def test_l1_and_mse():
    params = [torch.tensor([1.0, -2.0]), torch.tensor([[3.0]])]
    assert get_divergence("l1")(params, None, Divergence("l1", reduction="sum")).item() == 6.0
    assert get_divergence("l1")(params, None, Divergence("l1", reduction="mean")).item() == 2.0
    v, r = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])
    assert get_divergence("mse")(v, Target("logits", r), Divergence("mse")).item() == pytest.approx(
        2.5
    )


def test_user_registered_divergence_is_usable_from_yaml():
    with DIVERGENCES.scratch():

        @register_divergence("abs_gap")
        def abs_gap(value, reference, spec):
            return (value - reference.value).abs().mean()

        graph = load_graph(
            CAMU, overrides={"interventions.keep_retain_z.divergence.kind": "abs_gap"}
        )
        assert graph.intervention("keep_retain_z").divergence.kind == "abs_gap"
        data = tiny_data()
        split = make_split(data.train_y, "class:0", 0, data.num_classes)
        model = build_model("mlp", data.num_classes, data.input_shape, seed=0)
        objective = compile_objective(graph, model)
        streams = materialise(graph, data, split, seed=0)
        batch = {k: (x[:8], y[:8]) for k, (x, y) in streams.rows.items()}
        _, terms = objective.stage_loss("representation", batch)
        assert terms["keep_retain_z"].item() == pytest.approx(0.0)  # model == original at start
    assert "abs_gap" not in S.DIVERGENCE_KINDS  # the scratch block took the name back


def test_user_registered_reference_reads_models_by_typed_key():
    """The documented contract: ``ctx.value(model_key, stream, node, aligned_to=edge)``."""
    with REFERENCES.scratch():

        @register_reference("my_original")
        def my_original(ctx, edge):
            node = edge.reference.at or edge.target
            value = ctx.value(ORIGINAL, edge.reference.stream, node, aligned_to=edge)
            return Target("logits", value.detach())

        base = load_graph(ROOT / "graphs" / "ablations" / "no-counterfactual.yaml")
        custom = load_graph(
            ROOT / "graphs" / "ablations" / "no-counterfactual.yaml",
            overrides={
                "interventions.cut_forget_z.reference": {
                    "my_original": "retain_sample",
                    "align": "paired",
                }
            },
        )
        data = tiny_data()
        split = make_split(data.train_y, "class:0", 0, data.num_classes)
        model = build_model("mlp", data.num_classes, data.input_shape, seed=0)
        streams = materialise(base, data, split, seed=0)
        batch = {k: (x[:8], y[:8]) for k, (x, y) in streams.rows.items()}
        _, want = compile_objective(base, copy.deepcopy(model)).stage_loss("representation", batch)
        objective = compile_objective(custom, copy.deepcopy(model))
        _, got = objective.stage_loss("representation", batch)
        assert got["cut_forget_z"].item() == want["cut_forget_z"].item()
        plan = build_plan(objective, streams)
        assert (ORIGINAL, StreamKey("retain_sample", aligned_to="forget")) in plan.precomputed
        with pytest.raises(TypeError, match="ModelKey"):
            objective.model_of("original")
    assert "my_original" not in S.REFERENCE_KINDS


def test_model_and_stream_keys_are_values():
    assert ModelKey.random(3) == ModelKey("random", 3) and ModelKey.random(3) != ModelKey.random(4)
    assert ModelKey.random(3).name == "random_3" and MODEL.name == "model"
    assert not MODEL.frozen and ORIGINAL.frozen and ModelKey.random(0).frozen
    with pytest.raises(ValueError):
        ModelKey("random")
    with pytest.raises(ValueError):
        ModelKey("original", 1)
    assert StreamKey("a", aligned_to="b") == StreamKey("a", "b") != StreamKey("a")
    assert StreamKey("a", aligned_to="b").group_member == "b" and StreamKey("a").group_member == "a"


# Materialisation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["class:0", "random:0.3"])
def test_counterfactual_is_noisy_paired_retain_sample_relabelled_away(scenario):
    data = tiny_data()
    split = make_split(data.train_y, scenario, 1, data.num_classes)
    graph = load_graph(CAMU)
    streams = materialise(graph, data, split, seed=3)
    x_f, y_f = streams.of("forget")
    x_s, y_s = streams.of("retain_sample")
    x_cf, y_cf = streams.of("counterfactual")
    assert len(x_cf) == len(x_f) == len(x_s)
    perm = streams.pairings[("retain_sample", "forget")]
    assert sorted(perm.tolist()) == list(range(len(x_s)))  # a permutation: no replacement
    noise = x_cf - x_s[perm]
    assert noise.min() >= 0 and noise.max() < 1 and noise.std() > 0.2  # U[0,1), unclipped
    assert torch.all(y_cf != y_f)
    kept = y_s[perm] != y_f
    assert torch.equal(y_cf[kept], y_s[perm][kept])  # only clashes are redrawn
    assert streams.groups["forget"] == [StreamKey("forget"), StreamKey("counterfactual")]
    again = materialise(graph, data, split, seed=3)
    assert torch.equal(again.of("counterfactual")[0], x_cf)
    other = materialise(graph, data, split, seed=4)
    assert not torch.equal(other.of("counterfactual")[0], x_cf)


def test_relabel_redraw_is_uniform_over_other_classes():
    from causalunlearn.compile.materialise import redraw_other_class

    avoid = torch.full((40000,), 2)
    draws = redraw_other_class(avoid, 4, torch.Generator().manual_seed(0))
    counts = np.bincount(draws.numpy(), minlength=4)
    assert counts[2] == 0
    assert np.allclose(counts[[0, 1, 3]] / 40000, 1 / 3, atol=0.01)


def test_no_counterfactual_ablation_pairs_retain_sample_rows():
    data = tiny_data()
    split = make_split(data.train_y, "class:1", 0, data.num_classes)
    graph = load_graph(ROOT / "graphs" / "ablations" / "no-counterfactual.yaml")
    streams = materialise(graph, data, split, seed=0)
    assert StreamKey("retain_sample", aligned_to="forget") in streams.groups["forget"]
    perm = streams.pairings[("retain_sample", "forget")]
    assert torch.equal(
        streams.of("retain_sample", aligned_to="forget")[1], streams.of("retain_sample")[1][perm]
    )


# Schedule ----------------------------------------------------------------------------------------
def test_epoch_ends_with_shortest_stream_and_steps_are_counted():
    data = tiny_data(n_per_class=20)
    split = make_split(data.train_y, "class:0", 0, data.num_classes)  # 20 forget rows
    graph = load_graph(CAMU, overrides={"schedule.batch_size": 8, "schedule.epochs": 3})
    model = build_model("mlp", data.num_classes, data.input_shape, seed=0)
    log = run_schedule(
        compile_objective(graph, model), materialise(graph, data, split, seed=0), progress=False
    )
    assert log.steps == {"representation": 9, "output": 9}  # ceil(20 / 8) = 3 batches x 3 epochs
    assert set(log.losses["output"][-1]) >= {"keep_retain_y", "cut_forget_y", "step", "epoch"}


def test_stage_with_own_streams_and_epoch_limit_runs_its_own_pass():
    text = (ROOT / "graphs" / "baselines" / "scrub.yaml").read_text()
    graph = load_graph(text)
    data = tiny_data(n_per_class=20)
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    graph = load_graph(text, overrides={"schedule.batch_size": 10, "schedule.epochs": 3})
    max_stage = next(s for s in graph.stages if s.epochs is not None)
    model = build_model("mlp", data.num_classes, data.input_shape, seed=0)
    log = run_schedule(
        compile_objective(graph, model), materialise(graph, data, split, seed=0), progress=False
    )
    assert log.steps[max_stage.id] == 2 * max_stage.epochs  # 20 forget rows / 10, only first epochs


def test_non_finite_loss_names_the_term_and_step():
    data = tiny_data()
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    graph = load_graph(CAMU)
    model = build_model("mlp", data.num_classes, data.input_shape, seed=0)
    objective = compile_objective(graph, model)
    streams = materialise(graph, data, split, seed=0)
    x, y = streams.of("forget")
    streams.rows[StreamKey("forget")] = (torch.full_like(x, float("nan")), y)
    with pytest.raises(RunError) as err:
        run_schedule(objective, streams, progress=False)
    assert err.value.code == "non-finite-loss"
    assert "cut_forget_z" in str(err.value) and "step 0" in str(err.value)


def test_model_without_the_representation_layer_is_refused():
    graph = load_graph(CAMU, overrides={"nodes.Z.layer": "encoder.out"})
    model = build_model("mlp", 4, (1, 8, 8), seed=0)
    with pytest.raises(ModelError) as err:
        compile_objective(graph, model)
    assert err.value.code == "missing-representation-layer"


def test_original_is_frozen_and_stays_in_eval_mode():
    model = build_model("mlp", 4, (1, 8, 8), seed=0)
    objective = compile_objective(load_graph(CAMU), copy.deepcopy(model))
    assert not objective.original.training
    assert all(not p.requires_grad for p in objective.original.parameters())
    assert all(p.requires_grad for p in objective.model.parameters())


def test_a_node_the_data_cannot_provide_is_refused():
    from causalunlearn.errors import DataError

    graph = load_graph(CAMU, overrides={"nodes.retain_sample.split": "test"})
    data = tiny_data()
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    with pytest.raises(DataError) as err:
        materialise(graph, data, split, seed=0)
    assert err.value.code == "cannot-provide-node" and "retain_sample" in str(err.value)


# Stage masks, random reference models, adversarial neighbours (exercised by the baselines) -------
MASKED = """\
format: causalunlearn.graph/v1
name: masked
nodes:
  forget: {kind: data, split: forget}
  retain: {kind: data, split: retain}
  Y: {kind: output}
mechanisms: [[forget, Y], [retain, Y]]
interventions:
  fit_retain: {stage: a, data: retain, target: Y, reference: {labels: retain},
               divergence: {kind: cross_entropy}}
stages:
  a: {optimizer: OPT, lr: 0.05, momentum: MOM, weight_decay: 0.1,
      mask: {kind: gradient_saliency, data: forget, keep: 0.3}}
schedule: {order: [a], epochs: 2, batch_size: 8, zip: [retain]}
"""


@pytest.mark.parametrize(("optimizer", "momentum"), [("sgd", 0.9), ("adam", 0.0), ("adamw", 0.0)])
def test_masked_weights_stay_fixed_despite_weight_decay_and_momentum(optimizer, momentum):
    from causalunlearn.engine.verbs import saliency_masks

    graph = load_graph(MASKED.replace("OPT", optimizer).replace("MOM", str(momentum)))
    data = tiny_data()
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    model = build_model("mlp", data.num_classes, data.input_shape, seed=0)
    before = copy.deepcopy(model)
    objective = compile_objective(graph, model)
    streams = materialise(graph, data, split, seed=0)
    masks = saliency_masks(objective, streams, graph)
    assert set(masks) == {"a"}
    kept = sum(int(m.sum()) for m in masks["a"].values())
    total = sum(m.numel() for m in masks["a"].values())
    assert kept == round(0.3 * total)
    run_schedule(objective, streams, masks=masks, progress=False)
    for p0, p1, m in zip(before.parameters(), model.parameters(), masks["a"].values(), strict=True):
        assert torch.equal(p1[m == 0], p0[m == 0])  # weight decay would have shrunk them
    assert any(
        not torch.equal(p1[m == 1], p0[m == 1])
        for p0, p1, m in zip(
            before.parameters(), model.parameters(), masks["a"].values(), strict=True
        )
    )


def test_a_stage_mask_applies_to_its_own_stage_only():
    graph = load_graph(
        MASKED.replace("OPT", "sgd")
        .replace("MOM", "0.0")
        .replace(
            "stages:\n",
            "  fit_again: {stage: b, data: retain, target: Y, reference: {labels: retain},\n"
            "              divergence: {kind: cross_entropy}}\n"
            "stages:\n"
            "  b: {optimizer: sgd, lr: 0.05}\n",
        )
        .replace("order: [a]", "order: [a, b]")
    )
    data = tiny_data()
    split = make_split(data.train_y, "class:0", 0, data.num_classes)

    def unchanged(masks_for) -> bool:
        model = build_model("mlp", data.num_classes, data.input_shape, seed=0)
        start = copy.deepcopy(model)
        zeros = {p: torch.zeros_like(p) for p in model.parameters()}
        run_schedule(
            compile_objective(graph, model),
            materialise(graph, data, split, seed=0),
            masks=masks_for(zeros),
            progress=False,
        )
        return all(
            torch.equal(a, b) for a, b in zip(start.parameters(), model.parameters(), strict=True)
        )

    assert not unchanged(lambda zeros: {"a": zeros})  # stage b still trains every weight
    assert unchanged(lambda zeros: {"a": zeros, "b": zeros})
    assert unchanged(lambda zeros: zeros)  # a plain {parameter: mask} applies to every stage


def test_saliency_is_the_same_measured_in_chunks(monkeypatch):
    from causalunlearn.engine import verbs as pipeline

    graph = load_graph(MASKED.replace("OPT", "sgd").replace("MOM", "0.0"))
    data = tiny_data()
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    model = build_model("mlp", data.num_classes, data.input_shape, seed=0)
    objective = compile_objective(graph, model)
    streams = materialise(graph, data, split, seed=0)
    whole = pipeline.saliency_masks(objective, streams, graph)["a"]
    monkeypatch.setattr(pipeline, "SALIENCY_CHUNK", 3)  # 20 forget rows: 7 chunks
    chunked = pipeline.saliency_masks(objective, streams, graph)["a"]
    differ = sum(int((whole[p] != chunked[p]).sum()) for p in whole)
    assert differ <= 2  # float rounding may only flip entries tied at the threshold


def test_random_reference_model_is_seeded_frozen_and_leaves_global_rng_alone():
    graph = load_graph((ROOT / "graphs" / "baselines" / "bad-teacher.yaml").read_text())
    model = build_model("mlp", 4, (1, 8, 8), seed=0)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = compile_objective(graph, copy.deepcopy(model), seed=5).model_of(ModelKey.random(1))
    assert torch.equal(torch.random.get_rng_state(), state)
    second = compile_objective(graph, copy.deepcopy(model), seed=5).model_of(ModelKey.random(1))
    other = compile_objective(graph, copy.deepcopy(model), seed=6).model_of(ModelKey.random(1))
    for a, b, c, o in zip(
        first.parameters(), second.parameters(), other.parameters(), model.parameters(), strict=True
    ):
        assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, o)
        assert not a.requires_grad
    assert not first.training


def test_random_reference_model_refuses_parameters_it_cannot_reset():
    class Scaled(torch.nn.Module):
        representation_layer = "body"

        def __init__(self):
            super().__init__()
            self.body = torch.nn.Linear(64, 4)
            self.scale = torch.nn.Parameter(torch.ones(()))  # no module resets it

        def forward(self, x):
            return self.body(x.flatten(1)) * self.scale

    graph = load_graph((ROOT / "graphs" / "baselines" / "bad-teacher.yaml").read_text())
    with pytest.raises(ModelError) as err:
        compile_objective(graph, Scaled())
    assert err.value.code == "random-model-not-reset" and "scale" in str(err.value)


def test_adversarial_neighbours_need_the_original_and_do_not_depend_on_chunking(monkeypatch):
    from causalunlearn.compile import materialise as mat
    from causalunlearn.errors import DataError

    graph = load_graph((ROOT / "graphs" / "baselines" / "boundary-shrink.yaml").read_text())
    data = tiny_data()
    split = make_split(data.train_y, "class:2", 0, data.num_classes)
    with pytest.raises(DataError) as err:
        materialise(graph, data, split, seed=0)
    assert err.value.code == "needs-original"
    model = build_model("mlp", data.num_classes, data.input_shape, seed=0)
    original = compile_objective(graph, model).original
    whole = materialise(graph, data, split, seed=0, original=original).of("forget_neighbour")
    monkeypatch.setattr(mat, "ADVERSARIAL_CHUNK", 3)
    chunked = materialise(graph, data, split, seed=0, original=original).of("forget_neighbour")
    assert torch.equal(whole[0], chunked[0]) and torch.equal(whole[1], chunked[1])
    x = materialise(graph, data, split, seed=0, original=original).of("forget")[0]
    # FGSM: exactly ±eps (0.3 in the shipped file)
    assert torch.allclose((whole[0] - x).abs(), torch.full_like(x, 0.3))
