"""The docs cannot drift from the code: every spec field is documented, links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from causalunlearn.graph import schema
from causalunlearn.graph import spec as S

ROOT = Path(__file__).resolve().parents[1]


#: The section of docs/graph-format.md that documents each part of the format.
_SECTIONS = {
    "Graph": "Top level",
    "Citation": "Top level",
    "Node": "Nodes",
    "Intervention": "Intervention edges",
    "Divergence": "Intervention edges",
    "Reference": "Intervention edges",
    "Stage": "Stages",
    "Mask": "Stages",
    "Schedule": "Schedule",
}


def _graph_format_sections() -> dict[str, str]:
    text = (ROOT / "docs" / "graph-format.md").read_text()
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize(
    ("part", "names"), sorted(schema.documented().items()), ids=lambda v: str(v)[:30]
)
def test_every_field_of_the_table_is_in_the_graph_format_reference(part, names):
    # The list comes from the field table (graph/schema.py), the one place fields are declared.
    section = _graph_format_sections()[_SECTIONS.get(part, "Nodes")]  # do-operations: Nodes
    # References are written in a keyed shorthand (`original: <stream>`), so a prefix counts.
    wanted = (
        (lambda n: f"`{n}" in section) if part == "Reference" else (lambda n: f"`{n}`" in section)
    )
    missing = [name for name in names if not wanted(name)]
    assert not missing, f"{part} fields missing from docs/graph-format.md: {missing}"


def test_the_table_covers_every_spec_class_the_docs_name():
    assert set(_SECTIONS) <= {cls.__name__ for cls in schema.TABLE}
    assert {f"do:{op}" for op in S.DO_OPS} <= set(schema.documented())


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
