"""Causal views: the twin-network expansion (networkx, pgmpy) and the forget/retain check.

Expected node and edge sets are written out by hand from the twin-network reading in
``docs``/mission: each model node is expanded per data stream, each intervention edge becomes a
``do:<id>`` node between its reference stream and its target on its data stream.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from causalunlearn.graph import load_graph, remove_intervention
from causalunlearn.graph.causal import causal_check, classify, to_networkx, to_pgmpy

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"
SPECS = Path(__file__).resolve().parents[2] / "graphs" / "baselines"

FINE_TUNE = """\
format: causalunlearn.graph/v1
name: fine-tune
nodes:
  retain: {kind: data, split: retain}
  Z: {kind: representation, layer: representation}
  Y: {kind: output}
mechanisms: [[retain, Z], [Z, Y]]
interventions:
  keep_retain_y:
    stage: unlearn
    data: retain
    target: Y
    reference: {labels: retain}
    divergence: {kind: cross_entropy}
stages:
  unlearn: {optimizer: sgd, lr: 1.0e-2}
schedule: {order: [unlearn], zip: [retain]}
"""
# The same objective with the forget set declared and fed to the model but given no edge.
FINE_TUNE_DECLARED_FORGET = FINE_TUNE.replace(
    "  retain: {kind: data, split: retain}",
    "  forget: {kind: data, split: forget}\n  retain: {kind: data, split: retain}",
).replace("[[retain, Z]", "[[forget, Z], [retain, Z]")


def test_importing_the_graph_layer_does_not_import_torch():
    code = (
        "import json, sys, time\n"
        "start = time.perf_counter()\n"
        "import causalunlearn.graph as g\n"
        "seconds = time.perf_counter() - start\n"
        f"graph = g.load_graph({str(CAMU)!r})\n"
        "graph.to_networkx()\n"
        "print(json.dumps({'seconds': seconds,\n"
        "  'loaded': sorted(m for m in ('torch', 'pgmpy', 'pandas') if m in sys.modules)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []
    assert report["seconds"] < 2.0  # torch + pgmpy alone take several seconds


def test_camu_twin_network_nodes_and_edges():
    g = to_networkx(load_graph(CAMU))
    kinds = dict(g.nodes(data="kind"))
    assert kinds == {
        "forget": "data",
        "retain_sample": "data",
        "counterfactual": "data",
        "Z[forget]": "representation",
        "Y[forget]": "output",
        "Z[retain_sample]": "representation",
        "Y[retain_sample]": "output",
        "Z[counterfactual]": "representation",
        "Y[counterfactual]": "output",
        "do:keep_retain_z": "intervention",
        "do:cut_forget_z": "intervention",
        "do:keep_retain_y": "intervention",
        "do:cut_forget_y": "intervention",
    }
    assert (g.nodes["Z[forget]"]["model_node"], g.nodes["Z[forget]"]["stream"]) == ("Z", "forget")
    edges = {(u, v): a["kind"] for u, v, a in g.edges(data=True)}
    assert edges == {
        ("retain_sample", "counterfactual"): "derivation",
        ("forget", "Z[forget]"): "mechanism",
        ("retain_sample", "Z[retain_sample]"): "mechanism",
        ("counterfactual", "Z[counterfactual]"): "mechanism",
        ("Z[forget]", "Y[forget]"): "mechanism",
        ("Z[retain_sample]", "Y[retain_sample]"): "mechanism",
        ("Z[counterfactual]", "Y[counterfactual]"): "mechanism",
        ("retain_sample", "do:keep_retain_z"): "intervention",
        ("do:keep_retain_z", "Z[retain_sample]"): "intervention",
        ("counterfactual", "do:cut_forget_z"): "intervention",
        ("do:cut_forget_z", "Z[forget]"): "intervention",
        ("retain_sample", "do:keep_retain_y"): "intervention",
        ("do:keep_retain_y", "Y[retain_sample]"): "intervention",
        ("counterfactual", "do:cut_forget_y"): "intervention",
        ("do:cut_forget_y", "Y[forget]"): "intervention",
    }
    effects = {a["edge"]: a["effect"] for _, a in g.nodes(data=True) if a["kind"] == "intervention"}
    assert effects == {
        "keep_retain_z": "preserve",
        "cut_forget_z": "cut",
        "keep_retain_y": "preserve",
        "cut_forget_y": "cut",
    }


def test_to_pgmpy_is_a_dag_and_intervened_cuts_the_forget_stream():
    from pgmpy.base import DAG

    graph = load_graph(CAMU)
    plain, intervened = to_pgmpy(graph), to_pgmpy(graph, intervened=True)
    assert isinstance(plain, DAG) and isinstance(intervened, DAG)
    assert set(plain.edges()) == set(to_networkx(graph).edges())
    assert set(intervened.predecessors("Z[forget]")) == {"do:cut_forget_z"}
    assert set(intervened.predecessors("Y[forget]")) == {"do:cut_forget_y"}
    removed = set(plain.edges()) - set(intervened.edges())
    assert removed == {
        ("forget", "Z[forget]"),  # the incoming mechanism edges of the cut nodes
        ("Z[forget]", "Y[forget]"),
        ("counterfactual", "do:cut_forget_z"),  # a cutting do-node is exogenous
        ("counterfactual", "do:cut_forget_y"),
    }
    assert set(intervened.edges()) <= set(plain.edges())
    assert ("retain_sample", "Z[retain_sample]") in intervened.edges()
    assert ("Z[retain_sample]", "Y[retain_sample]") in intervened.edges()


def test_camu_cuts_forget_and_preserves_retain():
    report = causal_check(load_graph(CAMU))
    assert report.ok
    assert report.forget_cut and report.retain_preserved
    assert report.intervened == ("Z[forget]", "Y[forget]")
    assert report.open_forget_paths == ()
    assert report.retain_streams == {"retain_sample": True}
    assert "forget paths cut: yes" in report.summary()


@pytest.mark.parametrize(
    "text", [FINE_TUNE, FINE_TUNE_DECLARED_FORGET], ids=["implicit", "declared"]
)
def test_fine_tune_only_leaves_the_forget_path_open(text):
    report = causal_check(load_graph(text))
    assert not report.forget_cut
    assert not report.ok
    assert report.retain_preserved
    assert report.open_forget_paths == (("forget", "Z[forget]", "Y[forget]"),)
    assert report.intervened == ()
    assert "open: forget → Z[forget] → Y[forget]" in report.summary()
    assert "forget paths cut: NO" in report.summary()


def test_removing_both_forget_edges_of_camu_opens_the_path():
    graph = remove_intervention(
        remove_intervention(load_graph(CAMU), "cut_forget_z"), "cut_forget_y"
    )
    report = causal_check(graph)
    assert not report.forget_cut
    assert report.open_forget_paths == (("forget", "Z[forget]", "Y[forget]"),)


def test_neggrad_ascends_and_does_not_cut():
    graph = load_graph(SPECS / "neggrad.yaml")
    report = causal_check(graph)
    assert report.effects == {"ascend_forget_y": "ascend"}
    assert report.intervened == ()
    assert not report.forget_cut
    # The shipped graph has no representation node: forget rows reach the output directly.
    assert set(report.open_forget_paths) == {
        ("forget", "Y[forget]"),
        ("forget", "do:ascend_forget_y", "Y[forget]"),
    }
    assert classify(graph, graph.intervention("ascend_forget_y")) == "ascend"


def test_bad_teacher_random_model_edge_is_a_cut():
    graph = load_graph(SPECS / "bad-teacher.yaml")
    report = causal_check(graph)
    assert report.effects == {"keep_retain_y": "preserve", "cut_forget_y": "cut"}
    assert report.intervened == ("Y[forget]",)
    assert report.ok
    # The view still shows that the random teacher reads forget rows ...
    assert ("forget", "do:cut_forget_y") in to_networkx(graph).edges()
    # ... but a random teacher carries nothing specific to them: the intervened DAG drops it.
    assert ("forget", "do:cut_forget_y") not in to_pgmpy(graph, intervened=True).edges()


@pytest.mark.parametrize("name", ["salun", "boundary-shrink"])
def test_labels_redrawn_from_forget_rows_are_a_cut(name):
    report = causal_check(load_graph(SPECS / f"{name}.yaml"))
    assert report.effects["cut_forget_y"] == "cut"
    assert report.forget_cut
    assert report.open_forget_paths == ()


def test_scrub_max_step_ascends_and_min_step_preserves():
    report = causal_check(load_graph(SPECS / "scrub.yaml"))
    assert report.effects == {
        "push_forget_y": "ascend",
        "keep_retain_kl": "preserve",
        "keep_retain_y": "preserve",
    }
    assert report.retain_preserved
    assert not report.forget_cut


def test_l1_term_is_a_penalty():
    report = causal_check(load_graph(SPECS / "l1-sparse.yaml"))
    assert report.effects["sparsity"] == "penalty"
    assert not report.forget_cut


def test_top_level_package_is_torch_free_until_a_torch_verb_is_used():
    import subprocess
    import sys

    code = (
        "import sys, causalunlearn as cu; assert 'torch' not in sys.modules;"
        "cu.load_graph; cu.render; cu.causal_check; assert 'torch' not in sys.modules;"
        "cu.unlearn; assert 'torch' in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "ok", out.stderr


# A mechanism no term uses; what a pass does not establish (issue 12 §4) ------------------------
SALUN_TEXT = (SPECS / "salun.yaml").read_text()
# SalUn with a mechanism edge declared for the relabelled forget rows, which only serve as labels.
SALUN_DECLARED_RELABELLED = SALUN_TEXT.replace(
    "mechanisms: [[forget, Y], [retain, Y]]",
    "mechanisms: [[forget, Y], [retain, Y], [forget_relabelled, Y]]",
)


def test_a_mechanism_no_term_uses_is_inert_and_keeps_the_verdict():
    assert SALUN_DECLARED_RELABELLED != SALUN_TEXT
    plain = causal_check(load_graph(SALUN_TEXT))
    declared = causal_check(load_graph(SALUN_DECLARED_RELABELLED))
    assert plain.forget_cut and plain.open_forget_paths == ()
    assert declared.forget_cut
    assert declared.open_forget_paths == ()
    assert (declared.ok, declared.retain_preserved) == (plain.ok, plain.retain_preserved)
    assert declared.inert_mechanisms == (("forget_relabelled", "Y"),)
    assert plain.inert_mechanisms == ()
    assert "mechanism forget_relabelled → Y" in declared.summary()
    # The view still draws the edge, marked inert; the forget stream's own path is live.
    g = to_networkx(load_graph(SALUN_DECLARED_RELABELLED))
    assert g.nodes["Y[forget_relabelled]"]["inert"] is True
    assert g.edges["forget_relabelled", "Y[forget_relabelled]"]["inert"] is True
    assert g.nodes["Y[forget]"]["inert"] is False


def test_camu_counterfactual_mechanism_is_inert():
    # CaMU declares [counterfactual, Z] while the counterfactual rows only feed references.
    report = causal_check(load_graph(CAMU))
    assert report.inert_mechanisms == (("counterfactual", "Z"),)
    assert report.ok


def test_a_live_derived_stream_still_opens_its_path():
    # A term that runs the model on the relabelled forget rows makes the mechanism live: the
    # rows are forget rows (their inputs unchanged), and nothing cuts their path.
    text = SALUN_DECLARED_RELABELLED.replace(
        "  keep_retain_y:\n",
        "  on_relabelled:\n    stage: unlearn\n    data: forget_relabelled\n    target: Y\n"
        "    reference: {labels: forget_relabelled}\n    divergence: {kind: cross_entropy}\n"
        "  keep_retain_y:\n",
    )
    report = causal_check(load_graph(text))
    assert report.inert_mechanisms == ()
    assert not report.forget_cut
    assert ("forget", "forget_relabelled", "Y[forget_relabelled]") in report.open_forget_paths


def _representation_only_camu():
    from causalunlearn.graph import remove_intervention

    return remove_intervention(
        remove_intervention(load_graph(CAMU), "keep_retain_y"), "cut_forget_y"
    )


def test_a_pass_says_what_it_does_and_does_not_establish():
    graph = _representation_only_camu()
    assert {e.target for e in graph.interventions} == {"Z"}
    report = causal_check(graph)
    assert report.ok  # the structure is cut and preserved ...
    summary = report.summary()
    # ... and the output says that this does not mean the model forgets.
    assert "establishes:" in summary and "does not establish:" in summary
    assert "that the trained model forgets" in summary
    (note,) = report.notes
    assert "Z[forget]" in note and "no term acts on an output of forget data" in note
    assert "representation-only CaMU" in note
    # Full CaMU cuts at the output too: no such note, the general lines remain.
    full = causal_check(load_graph(CAMU))
    assert full.notes == ()
    assert "that the trained model forgets" in full.summary()
    failing = causal_check(load_graph(FINE_TUNE)).summary()
    assert "a pass would establish:" in failing and "\nestablishes:" not in failing
