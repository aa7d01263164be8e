"""The docs cannot drift from the code: every spec field is documented, links resolve."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from causalunlearn.graph import spec as S

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "cls", [S.Node, S.Intervention, S.Divergence, S.Stage, S.Mask, S.Schedule, S.Citation]
)
def test_every_spec_field_is_in_the_graph_format_reference(cls):
    text = (ROOT / "docs" / "graph-format.md").read_text()
    missing = [
        f.name
        for f in fields(cls)
        if f.name not in ("id", "provenance") and f"`{f.name}`" not in text
    ]
    assert not missing, f"{cls.__name__} fields missing from docs/graph-format.md: {missing}"


def test_every_reference_kind_and_modifier_is_documented():
    # References are written in YAML in a keyed shorthand ({original: stream}), not by field.
    text = (ROOT / "docs" / "graph-format.md").read_text()
    for word in (*S.REFERENCE_KINDS, "align", "at", "seed"):
        assert f"`{word}" in text, word


def test_every_do_operation_and_parameter_is_documented():
    text = (ROOT / "docs" / "graph-format.md").read_text()
    for op, params in S.DO_OPS.items():
        assert f"`{op}`" in text
        for name in params:
            assert f"`{name}`" in text, (op, name)


def test_relative_links_in_readme_and_docs_resolve():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or "." not in target:  # skip URLs and code like model[t](data)
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.name} -> {target}")
    assert not broken, broken


def test_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("CAUSALUNLEARN_CACHE", str(tmp_path))
    monkeypatch.chdir(ROOT)
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has a Python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["result"].model is not None
    assert namespace["ablation"].name == "camu"


def test_methods_catalogue_lists_every_shipped_graph():
    from causalunlearn.methods import load_any  # graphs and method entries (SSD) alike

    text = (ROOT / "docs" / "methods.md").read_text()
    missing = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "graphs").rglob("*.yaml"))
        if f"### {load_any(p).name}" not in text and p.name != "camu.yaml"
    ]
    assert "## CaMU" in text and not missing, missing
