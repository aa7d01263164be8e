"""Drawing graphs: the DOT text (no ``dot`` program needed) and the rendered files.

DOT tests parse the text that :func:`to_dot` returns; tests marked ``needs_dot`` run the Graphviz
``dot`` program and skip when it is not installed.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import graphviz
import pytest

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.graph import load_graph, remove_intervention, set_stage, set_weight
from causalunlearn.graph.causal import classify
from causalunlearn.graph.render import mimebundle, render, to_dot

ROOT = Path(__file__).resolve().parents[2]
CAMU = ROOT / "graphs" / "camu.yaml"
ABLATIONS = ROOT / "graphs" / "ablations"
SPECS = Path(__file__).resolve().parents[2] / "graphs" / "baselines"


def needs_dot(test):
    """Mark a test that runs the Graphviz ``dot`` program; skip it when ``dot`` is missing."""
    missing = shutil.which("dot") is None
    test = pytest.mark.skipif(missing, reason="the Graphviz `dot` program is missing")(test)
    return pytest.mark.needs_dot(test)


# Names with characters that mean something in DOT, in HTML-like labels and in escStrings.
ODD = r"""
format: causalunlearn.graph/v1
name: 'odd "name" <x>'
summary: 'a & b < c > d "q" \N back'
nodes:
  'forget <set> & "co"': {kind: data, split: forget}
  'C:\New': {kind: data, split: retain}
  'Y:out': {kind: output}
mechanisms: [['forget <set> & "co"', 'Y:out'], ['C:\New', 'Y:out']]
interventions:
  'keep "r" <y>':
    stage: 'st:1 <a>'
    data: 'C:\New'
    target: 'Y:out'
    reference: {labels: 'C:\New'}
    divergence: {kind: cross_entropy}
stages:
  'st:1 <a>': {optimizer: sgd, lr: 0.1}
schedule: {order: ['st:1 <a>'], zip: ['forget <set> & "co"', 'C:\New']}
"""


@pytest.fixture(scope="module")
def camu():
    return load_graph(CAMU)


# ------------------------------------------------------------------------------------------------
# A small reader of the DOT text we write: node statements, edge statements, cluster bodies.
_NODE = re.compile(r"^\t+(\w+) \[(.*)\]$")
_EDGE = re.compile(r"^\t+(\w+) -> (\w+) \[(.*)\]$")


def _attrs(text: str) -> dict[str, str]:
    """Attributes of one statement: HTML labels ``<...>`` and quoted or bare values."""
    out = {}
    pos = 0
    while pos < len(text):
        m = re.compile(r"\s*(\w+)=").match(text, pos)
        if not m:
            break
        key, pos = m.group(1), m.end()
        if text[pos] == "<":  # balanced angle brackets
            depth, start = 0, pos
            while True:
                depth += {"<": 1, ">": -1}.get(text[pos], 0)
                pos += 1
                if depth == 0:
                    break
            out[key] = text[start + 1 : pos - 1]
        elif text[pos] == '"':
            end = pos + 1
            while text[end] != '"' or text[end - 1] == "\\":
                end += 1
            out[key], pos = text[pos + 1 : end], end + 1
        else:
            end = text.find(" ", pos)
            end = len(text) if end < 0 else end
            out[key], pos = text[pos:end], end
    return out


def _nodes(dot: str) -> dict[str, dict[str, str]]:
    return {
        m[1]: _attrs(m[2])
        for line in dot.splitlines()
        if (m := _NODE.match(line)) and m[1] not in ("graph", "node", "edge")
    }


def _edges(dot: str) -> dict[tuple[str, str], dict[str, str]]:
    return {(m[1], m[2]): _attrs(m[3]) for line in dot.splitlines() if (m := _EDGE.match(line))}


def _clusters(dot: str) -> dict[str, str]:
    """Cluster name → its body text."""
    return dict(re.findall(r"subgraph (cluster_\w+) \{\n(.*?)\n\t\}", dot, flags=re.S))


def _lines(label: str) -> list[str]:
    """The visible lines of an HTML-like label (tags dropped, entities and \\\\ decoded)."""
    parts = re.split(r"<BR[^>]*>", label)
    return [html.unescape(re.sub(r"<[^>]*>", "", p)).replace("\\\\", "\\") for p in parts]


def _text(label: str) -> str:
    """The visible text of an HTML-like label, lines joined by spaces."""
    return " ".join(_lines(label))


def _named(dot: str, name: str, prefix: str = "n_") -> str:
    """DOT id of the node whose label names ``name`` (after a ✗ removed / + added line)."""
    for node, attrs in _nodes(dot).items():
        lines = [x for x in _lines(attrs.get("label", "")) if x not in ("✗ removed", "+ added")]
        if node.startswith(prefix) and lines[:1] == [name]:
            return node
    raise AssertionError(f"no node labelled {name!r}")


def _dominant(colour: str) -> str:
    """Which hue a ``#rrggbb`` colour is: red, orange, green, blue or grey."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    if max(r, g, b) - min(r, g, b) < 20:
        return "grey"
    if r > g and r > b:
        return "orange" if g > 0.35 * r and g > 1.5 * b else "red"
    return "green" if g > b else "blue"


def _term(dot: str, edge_id: str) -> str:
    """DOT id of the term node of intervention ``edge_id``."""
    return _named(dot, edge_id, prefix="t_")


# ------------------------------------------------------------------------------------------------
def test_every_node_and_intervention_edge_is_drawn(camu):
    dot = to_dot(camu)
    nodes, edges = _nodes(dot), _edges(dot)
    for node in camu.nodes:
        _named(dot, node.id)
    for e in camu.interventions:
        term = _term(dot, e.id)
        assert (term, _named(dot, e.target)) in edges, e.id
        assert (_named(dot, e.reference.stream), term) in edges, e.id
        # The term reads "id / effect · weight × divergence".
        second = _lines(nodes[term]["label"])[1]
        assert second.startswith(f"{classify(camu, e)} · {e.weight:g} × ")
        assert ("KL(" if e.divergence.kind == "kl" else "CE(") in second
    assert dot.count(" -> ") == len(camu.mechanisms) + 2 * len(camu.interventions) + 2


def test_mechanisms_are_solid_and_interventions_dashed_and_coloured(camu):
    dot = to_dot(camu)
    nodes, edges = _nodes(dot), _edges(dot)
    for s, t in camu.mechanisms:
        attrs = edges[(_named(dot, s), _named(dot, t))]
        assert attrs["style"] == "solid" and attrs["color"] == "black"
    expected = {"cut": "red", "preserve": "blue"}
    for e in camu.interventions:
        term = _term(dot, e.id)
        touching = [a for (s, t), a in edges.items() if term in (s, t)]
        assert len(touching) == 2
        for attrs in touching:
            assert attrs["style"] == "dashed"
            assert _dominant(attrs["color"]) == expected[classify(camu, e)], e.id
        assert "dashed" in nodes[term]["style"]


def test_effect_colours_for_ascent_and_penalty():
    dot = to_dot(load_graph(SPECS / "scrub.yaml"))
    push = _nodes(dot)[_term(dot, "push_forget_y")]
    assert _dominant(push["color"]) == "orange"
    # maximise shows as a minus sign on the weight (16 = T², the KL scale of the SCRUB code)
    assert "−16 × KL" in _text(push["label"])
    dot = to_dot(load_graph(SPECS / "l1-sparse.yaml"))
    term = _term(dot, "sparsity")
    assert _dominant(_nodes(dot)[term]["color"]) == "grey"
    # A parameters node is a 3-D box, and the penalty term points at it.
    theta = _named(dot, "theta")
    assert _nodes(dot)[theta]["shape"] == "box3d"
    assert (term, theta) in _edges(dot)


def test_node_shapes_and_derived_data_show_their_do_operations(camu):
    dot = to_dot(camu)
    by_name = {n.id: _nodes(dot)[_named(dot, n.id)] for n in camu.nodes}
    assert by_name["forget"]["shape"] == "cylinder"
    assert by_name["counterfactual"]["shape"] == "cylinder"
    assert by_name["Z"]["shape"] == "ellipse"
    assert by_name["Y"]["shape"] == "doublecircle"
    text = _text(by_name["counterfactual"]["label"])
    assert "do: add_noise U[0, 1)" in text
    assert "do: relabel ≠ paired label" in text
    assert "paired ↔ forget" in text
    assert by_name["counterfactual"]["fillcolor"] != by_name["forget"]["fillcolor"]


def test_reference_that_is_not_a_stream_starts_at_a_diamond():
    graph = load_graph(SPECS / "bad-teacher.yaml")
    dot = to_dot(graph)
    term = _term(dot, "cut_forget_y")
    sources = [s for (s, t) in _edges(dot) if t == term]
    assert len(sources) == 1 and _nodes(dot)[sources[0]]["shape"] == "diamond"
    assert "random model on forget" in _text(_edges(dot)[(sources[0], term)]["label"])


def test_one_cluster_per_stage_holding_its_terms(camu):
    dot = to_dot(camu)
    clusters = _clusters(dot)
    assert set(clusters) == {"cluster_representation", "cluster_output"}
    for stage in camu.stages:
        body = clusters[f"cluster_{stage.id}"]
        label = _text(_attrs(body.splitlines()[0].strip())["label"])
        assert f"· {stage.id}" in label and stage.optimizer in label
        for e in camu.interventions:
            assert (f"\t{_term(dot, e.id)} [" in body) == (e.stage == stage.id)
    rep = _text(_attrs(clusters["cluster_representation"].splitlines()[0].strip())["label"])
    assert "stage 1/2" in rep and "lr 4e-4" in rep and "wd 1e-4" in rep


def test_title_is_name_and_summary(camu):
    dot = to_dot(camu)
    title = _text(re.search(r"graph \[.*?label=(<.*?>) labeljust", dot).group(1))
    assert title.split()[0] == "camu"
    assert " ".join(camu.summary.split()) in " ".join(title.split())


# ------------------------------------------------------------------------------------------------
# Diffs
def test_diff_greys_out_a_removed_edge(camu):
    ablation = remove_intervention(camu, "cut_forget_z")
    dot = to_dot(ablation, base=camu)
    nodes, edges = _nodes(dot), _edges(dot)
    term = _term(dot, "cut_forget_z")
    assert _text(nodes[term]["label"]).startswith("✗ removed")
    assert "<S>" in nodes[term]["label"] and "dotted" in nodes[term]["style"]
    for (s, t), attrs in edges.items():
        if term in (s, t):
            assert attrs["style"] == "dotted"
            assert _dominant(attrs["color"]) == "grey"
            assert "✗ removed" in _text(attrs["label"])
    kept = _term(dot, "keep_retain_z")
    assert "removed" not in _text(nodes[kept]["label"])
    # Without a base the same graph has no such edge at all.
    assert "cut_forget_z" not in to_dot(ablation)


def test_diff_marks_added_edges_green(camu):
    ablation = remove_intervention(camu, "cut_forget_z")
    dot = to_dot(camu, base=ablation)
    term = _term(dot, "cut_forget_z")
    assert _text(_nodes(dot)[term]["label"]).startswith("+ added")
    assert _dominant(_nodes(dot)[term]["color"]) == "green"
    assert all(
        _dominant(a["color"]) == "green" for (s, t), a in _edges(dot).items() if term in (s, t)
    )


def test_diff_shows_changed_weights_and_settings(camu):
    edited = set_stage(set_weight(camu, "keep_retain_y", 1.0), "output", lr=5e-5)
    dot = to_dot(edited, base=camu)
    term_label = _nodes(dot)[_term(dot, "keep_retain_y")]["label"]
    assert "w 0.9 → 1" in _text(term_label)
    assert re.search(r"<B>w 0\.9 → 1</B>", term_label)  # bold, in its own colour
    cluster = _clusters(dot)["cluster_output"]
    assert "lr 1e-3 → 5e-5" in _text(_attrs(cluster.splitlines()[0].strip())["label"])
    # Unchanged elements carry no change note.
    assert "→" not in _text(_nodes(dot)[_term(dot, "cut_forget_z")]["label"])


def test_diff_of_an_ablation_file_that_removes_a_node(camu):
    ablation = load_graph(ABLATIONS / "no-counterfactual.yaml")
    dot = to_dot(ablation, base=camu)
    nodes, edges = _nodes(dot), _edges(dot)
    cf = _named(dot, "counterfactual")
    assert _lines(nodes[cf]["label"])[:2] == ["✗ removed", "counterfactual"]
    assert edges[(cf, _named(dot, "Z"))]["style"] == "dotted"  # its mechanism edge goes too
    term = _term(dot, "cut_forget_z")
    assert "+ added" in _text(edges[(_named(dot, "retain_sample"), term)]["label"])  # new ref
    assert "reference.original counterfactual → retain_sample" in _text(nodes[term]["label"])


def test_diff_against_itself_marks_nothing(camu):
    dot = to_dot(camu, base=camu)
    assert "✗ removed" not in dot.split("label=", 2)[2]  # past the title's explanation
    assert "+ added" not in dot.split("label=", 2)[2]
    assert _nodes(dot).keys() == _nodes(to_dot(camu)).keys()


# ------------------------------------------------------------------------------------------------
def test_odd_characters_are_escaped():
    graph = load_graph(ODD)
    dot = to_dot(graph)
    nodes = _nodes(dot)
    assert all(re.fullmatch(r"\w+", n) for n in nodes)  # ids never need quoting or ports
    for name in ('forget <set> & "co"', "C:\\New", "Y:out"):
        _named(dot, name)
    labels = [a["label"] for a in nodes.values()]
    assert not any("<set>" in label or '"co"' in label for label in labels)  # escaped
    tooltip = _nodes(dot)[_term(dot, 'keep "r" <y>')]["tooltip"]
    assert "C:\\\\New" in tooltip  # \N would otherwise be replaced by the node's name


@needs_dot
def test_odd_characters_survive_dot(tmp_path):
    path = render(load_graph(ODD), tmp_path / "odd.svg")
    texts = {t.text for t in ET.parse(path).iter("{http://www.w3.org/2000/svg}text")}
    assert {'forget <set> & "co"', "C:\\New", "Y:out"} <= texts
    assert 'a & b < c > d "q" \\N back' in texts  # the summary, \\N not expanded


# ------------------------------------------------------------------------------------------------
# Files
@needs_dot
@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_render_writes_valid_files_atomically(tmp_path, camu, fmt):
    out = tmp_path / "sub" / f"camu.{fmt}"
    assert render(camu, out) == out
    data = out.read_bytes()
    if fmt == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    elif fmt == "pdf":
        assert data.startswith(b"%PDF")
    else:
        root = ET.fromstring(data)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert "cut_forget_z" in data.decode()
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # a normal file, not mkstemp's 0600


@needs_dot
def test_render_diff_png(tmp_path, camu):
    out = render(remove_intervention(camu, "cut_forget_z"), tmp_path / "d.png", base=camu)
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_dot_output_needs_no_dot_program(tmp_path, camu, monkeypatch):
    def missing(*args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(graphviz.Digraph, "pipe", missing)
    out = render(camu, tmp_path / "camu.dot")
    assert out.read_text() == to_dot(camu)


def test_missing_dot_names_the_install_command(tmp_path, camu, monkeypatch):
    def missing(*args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(graphviz.Digraph, "pipe", missing)
    previous = tmp_path / "camu.svg"
    previous.write_text("old")
    with pytest.raises(CausalUnlearnError) as info:
        render(camu, previous)
    assert info.value.code == "dot-not-found"
    assert "apt-get install graphviz" in info.value.hint
    assert "brew install graphviz" in info.value.hint and ".dot" in info.value.hint
    assert previous.read_text() == "old"  # nothing written half-way
    assert [p.name for p in tmp_path.iterdir()] == ["camu.svg"]
    # A notebook still shows something.
    bundle = mimebundle(camu)
    assert set(bundle) == {"text/plain"} and "camu" in bundle["text/plain"]


def test_unknown_format_is_an_error(tmp_path, camu):
    with pytest.raises(CausalUnlearnError) as info:
        render(camu, tmp_path / "camu.jpeg")
    assert info.value.code == "unknown-format" and ".svg" in info.value.hint


def test_mimebundle_has_svg_and_text(camu):
    bundle = camu._repr_mimebundle_()
    text = bundle["text/plain"]
    assert "cut_forget_z (cut, 0.5)" in text and "stage representation" in text
    if shutil.which("dot") is None:  # the text summary alone; the SVG needs `dot`
        assert set(bundle) == {"text/plain"}
        pytest.skip("the SVG part: the Graphviz `dot` program is missing (the text part passed)")
    assert ET.fromstring(bundle["image/svg+xml"]).tag.endswith("svg")


def test_render_and_cli_do_not_import_torch():
    code = (
        "import sys, causalunlearn.graph.render, causalunlearn.cli\n"
        "print(sorted(m for m in ('torch', 'pgmpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
