"""The v1 schema expresses the baselines: the shipped graph of each, fields asserted.

The graphs are the shipped files under ``graphs/baselines/``; each must load, validate, round-trip
through YAML and parse into exactly the fields its method needs. The expected values are the ones
each file's header comment derives from its paper and code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from causalunlearn.graph import DoOp, Graph, Mask, Reference, load_graph

BASELINES = Path(__file__).resolve().parents[2] / "graphs" / "baselines"
#: The baselines whose fields this file asserts (ssd.yaml is a method entry, not a graph).
GRAPHS = "bad-teacher boundary-shrink l1-sparse neggrad neggrad-plus salun scrub".split()


def spec(name: str) -> Graph:
    return load_graph(BASELINES / f"{name}.yaml")


@pytest.mark.parametrize("path", [BASELINES / f"{n}.yaml" for n in GRAPHS], ids=lambda p: p.stem)
def test_spec_loads_and_round_trips(path):
    graph = load_graph(path)
    assert load_graph(graph.to_yaml()) == graph
    assert graph.name == path.stem


def test_neggrad_is_ascent_on_forget_labels():
    g = spec("neggrad")
    (edge,) = g.interventions
    assert (edge.data, edge.target, edge.stage) == ("forget", "Y", "unlearn")
    assert edge.reference == Reference("labels", stream="forget")
    assert edge.divergence.kind == "cross_entropy"
    assert edge.maximise is True
    assert edge.weight == 1.0
    assert edge.signed_weight == -1.0
    assert g.stage("unlearn").optimizer == "sgd"
    assert g.stage("unlearn").momentum == 0.9
    assert g.schedule.zip == ("forget",)


def test_neggrad_plus_is_ascent_plus_retain_descent():
    g = spec("neggrad-plus")
    edges = {e.id: e for e in g.interventions}
    assert set(edges) == {"keep_retain_y", "ascend_forget_y"}
    keep, ascend = edges["keep_retain_y"], edges["ascend_forget_y"]
    assert (keep.data, keep.reference, keep.maximise, keep.signed_weight) == (
        "retain",
        Reference("labels", stream="retain"),
        False,
        0.999,
    )
    assert (ascend.data, ascend.reference, ascend.maximise, ascend.signed_weight) == (
        "forget",
        Reference("labels", stream="forget"),
        True,
        -1.0e-3,
    )
    assert keep.stage == ascend.stage == "unlearn"
    assert g.stage("unlearn").weight_decay == 5.0e-4
    assert g.schedule.zip == ("forget", "retain")


def test_scrub_has_max_and_min_stages_with_their_own_streams():
    g = spec("scrub")
    assert g.schedule.order == ("max", "min")
    assert g.schedule.zip == ()
    assert g.schedule.epochs == 3
    max_stage, min_stage = g.stage("max"), g.stage("min")
    assert max_stage.zip == ("forget",)
    assert max_stage.epochs == 2  # max steps only in the first two epochs
    assert min_stage.zip == ("retain",)
    assert min_stage.epochs is None
    (push,) = g.terms_of("max")
    assert push.maximise is True
    assert push.data == "forget"
    assert push.reference == Reference("original", stream="forget")
    assert push.divergence.kind == "kl"
    assert push.divergence.temperature == 4.0
    assert push.divergence.softmax_over == "classes"
    assert push.divergence.reduction == "batchmean"
    assert push.divergence.direction == "reference_to_model"
    kl, ce = g.terms_of("min")
    assert (kl.data, kl.reference, kl.divergence.temperature, kl.weight) == (
        "retain",
        Reference("original", stream="retain"),
        4.0,
        1.0e-3 * 4.0**2,  # alpha 0.001 × T²: the code's DistillKL scales KL by T², ours does not
    )
    assert (ce.divergence.kind, ce.reference, ce.weight) == (
        "cross_entropy",
        Reference("labels", stream="retain"),
        0.99,
    )
    assert not kl.maximise and not ce.maximise


def test_bad_teacher_distils_original_on_retain_and_random_model_on_forget():
    g = spec("bad-teacher")
    keep, cut = g.intervention("keep_retain_y"), g.intervention("cut_forget_y")
    assert keep.data == "retain_sample"
    assert keep.reference == Reference("original", stream="retain_sample")
    assert cut.data == "forget"
    assert cut.reference == Reference("random_model", stream="forget", seed=1)
    for edge in (keep, cut):
        assert edge.divergence.kind == "kl"
        assert edge.divergence.temperature == 1.0  # the authors' default KL_temperature
        assert edge.divergence.softmax_over == "classes"
        assert edge.divergence.reduction == "mean"  # F.kl_div's default: over rows and classes
    assert g.node("retain_sample").sample == "same_size_as_forget"


def test_l1_sparse_has_a_parameters_node_and_a_norm_term():
    g = spec("l1-sparse")
    assert g.node("theta").kind == "parameters"
    sparsity = g.intervention("sparsity")
    assert sparsity.target == "theta"
    assert sparsity.data is None
    assert sparsity.reference is None
    assert sparsity.divergence.kind == "l1"
    assert sparsity.divergence.softmax_over == "none"
    assert sparsity.weight == 5.0e-4
    assert "data" not in g.to_dict()["interventions"]["sparsity"]
    assert g.intervention("keep_retain_y").divergence.kind == "cross_entropy"


def test_salun_relabels_forget_and_masks_by_saliency():
    g = spec("salun")
    relabelled = g.node("forget_relabelled")
    assert relabelled.is_derived
    assert relabelled.derived_from == "forget"
    assert relabelled.paired_with is None
    assert relabelled.do == (DoOp.make("relabel", avoid="own_label"),)
    assert relabelled.do[0].get("draw") == "uniform_other_classes"
    cut = g.intervention("cut_forget_y")
    assert (cut.data, cut.reference) == ("forget", Reference("labels", stream="forget_relabelled"))
    assert g.stage("unlearn").mask == Mask("gradient_saliency", data="forget", keep=0.5)


def test_boundary_shrink_uses_labels_of_adversarial_neighbours():
    g = spec("boundary-shrink")
    neighbour = g.node("forget_neighbour")
    assert neighbour.derived_from == "forget"
    (op,) = neighbour.do
    assert op.op == "adversarial"
    # eps 0.3: the authors' 0.1 pixel units in the normalised input space (0.1 / std)
    assert (op.get("model"), op.get("attack"), op.get("eps")) == ("original", "fgsm", 0.3)
    cut = g.intervention("cut_forget_y")
    assert cut.reference == Reference("labels", stream="forget_neighbour", align="same")
    assert cut.divergence.kind == "cross_entropy"
    assert g.stage("unlearn").lr == 1.0e-5
