"""The import rule of docs' architecture, read from the source with ``ast`` (nothing is imported).

Imports go downward only::

    cli → studies → engine → compile → {graph, data, models, metrics} → bottom modules
                  ↘ methods (beside compile and engine) ↗

- ``methods`` may import graph, compile, engine, data, models, metrics; compile and engine never
  import methods.
- The bottom modules (errors, atomic, locks, device, registry, recipes, plugins) import only each
  other.
- ``graph`` does not import torch (validating and rendering stay instant; the run-time check is
  ``test_top_level_package_is_torch_free_until_a_torch_verb_is_used``).
- No module imports another package's ``_private`` names or modules.

Every import counts, lazy ones inside functions and ``TYPE_CHECKING`` ones included. The root
package (``causalunlearn/__init__.py``, the curated API) imports lazily from every layer; inside
the package, ``import causalunlearn`` (for ``__version__`` or ``__file__``; the root is imported
before any of its modules anyway) is allowed, ``from causalunlearn import <verb>`` is not.

Today's exceptions are listed in ``ALLOWED_UPWARD`` and ``ALLOWED_PRIVATE``, each with the reason
it is there: the test fails on any new one, and on a listed one that is gone (delete its line).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "causalunlearn"

#: Top-level modules that sit under every package (plugins.py: loading a user's extension
#: module, used by the command line and by sweep workers; progress.py: every progress bar).
BOTTOM = {
    "errors",
    "atomic",
    "locks",
    "device",
    "registry",
    "recipes",
    "plugins",
    "numerics",
    "progress",
}

#: The layers each layer may import (its own is always allowed).
MAY_IMPORT: dict[str, set[str]] = {
    "bottom": {"bottom"},
    "graph": {"bottom"},
    "data": {"bottom"},
    "models": {"bottom", "data"},
    "metrics": {"bottom", "data", "models"},
    "compile": {"bottom", "graph", "data", "models", "metrics"},
    "engine": {"bottom", "graph", "data", "models", "metrics", "compile"},
    "methods": {"bottom", "graph", "data", "models", "metrics", "compile", "engine"},
    "studies": {"bottom", "graph", "data", "models", "metrics", "compile", "engine", "methods"},
    "cli": {
        "bottom",
        *("graph", "data", "models", "metrics", "compile", "engine", "methods", "studies"),
    },
}

#: Upward imports in today's code: (importing module, imported module). Each is a debt; the test
#: fails when one disappears, so that its line is deleted with the fix. None today.
ALLOWED_UPWARD: set[tuple[str, str]] = set()

#: Imports of another package's private names or modules in today's code:
#: (importing module, imported module, name). None today.
ALLOWED_PRIVATE: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # dotted module imported from (or imported)
    names: tuple[str, ...]  # names taken from it (``from target import a, b``); () for ``import``
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (the shipped graph files hold no Python)."""
    return {
        module_name(p): p
        for p in sorted(PACKAGE.rglob("*.py"))
        if "shipped_graphs" not in p.relative_to(PACKAGE).parts
    }


def imports_of(name: str, path: Path) -> list[Import]:
    """Every import statement of one module, relative ones resolved, at any depth."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [Import(name, a.name, (), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            out.append(Import(name, target, tuple(a.name for a in node.names), node.lineno))
    return out


def all_imports() -> list[Import]:
    return [imp for name, path in modules().items() for imp in imports_of(name, path)]


def package_of(module: str) -> str:
    """The top-level part of the package a module belongs to: ``graph``, ``errors``, ``cli``."""
    parts = module.split(".")
    if len(parts) == 1:
        return ""  # the root package
    top = parts[1]
    return "cli" if top == "cli" or top.startswith("cli_") else top


def layer_of(module: str) -> str:
    package = package_of(module)
    return "bottom" if package in BOTTOM else package


def _is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def internal(imp: Import) -> bool:
    return imp.target == "causalunlearn" or imp.target.startswith("causalunlearn.")


def test_every_module_is_in_a_known_layer():
    unknown = {m for m in modules() if m != "causalunlearn" and layer_of(m) not in MAY_IMPORT}
    assert not unknown, f"add these packages to MAY_IMPORT (and the docs' layer picture): {unknown}"


def upward_imports(imports: list[Import]) -> set[tuple[str, str]]:
    """(importer, imported package) for every import against the layer order."""
    found = set()
    for imp in imports:
        if imp.importer == "causalunlearn" or not internal(imp):
            continue
        if imp.target == "causalunlearn":
            # ``import causalunlearn`` (the version, the package folder) is fine; the curated API
            # is not for the package's own modules.
            if imp.names:
                found.add((imp.importer, "causalunlearn"))
            continue
        mine, theirs = layer_of(imp.importer), layer_of(imp.target)
        if theirs != mine and theirs not in MAY_IMPORT.get(mine, set()):
            found.add((imp.importer, ".".join(imp.target.split(".")[:2])))
    return found


def test_imports_only_go_downward():
    found = upward_imports(all_imports())
    new = sorted(found - ALLOWED_UPWARD)
    assert not new, f"imports against the layer order (cli → studies → engine → compile …): {new}"
    fixed = sorted(ALLOWED_UPWARD - found)
    assert not fixed, f"fixed, delete from ALLOWED_UPWARD: {fixed}"


def test_compile_and_engine_do_not_import_methods():
    offending = [
        (imp.importer, imp.target, imp.line)
        for imp in all_imports()
        if layer_of(imp.importer) in ("compile", "engine") and layer_of(imp.target) == "methods"
    ]
    assert not offending


def private_imports(imports: list[Import]) -> set[tuple[str, str, str]]:
    """(importer, imported module, private name) for every private name used across packages."""
    found = set()
    for imp in imports:
        if not internal(imp) or package_of(imp.importer) == package_of(imp.target):
            continue
        for part in imp.target.split(".")[1:]:
            if _is_private(part):
                found.add((imp.importer, imp.target, part))
        for name in imp.names:
            if _is_private(name):
                found.add((imp.importer, imp.target, name))
    return found


def test_no_module_imports_another_packages_private_names():
    found = private_imports(all_imports())
    new = sorted(found - ALLOWED_PRIVATE)
    assert not new, f"private names used across packages (make them public or move them): {new}"
    fixed = sorted(ALLOWED_PRIVATE - found)
    assert not fixed, f"fixed, delete from ALLOWED_PRIVATE: {fixed}"


def test_the_graph_layer_never_imports_torch():
    offending = [
        (imp.importer, imp.line)
        for imp in all_imports()
        if layer_of(imp.importer) == "graph" and imp.target.split(".")[0] == "torch"
    ]
    assert not offending


# ------------------------------------------------------------------------------------------------
# the checker itself: each rule fails on a made-up module that breaks it
@pytest.mark.parametrize(
    ("importer", "source", "rule"),
    [
        ("causalunlearn.graph.fake", "from causalunlearn.compile import objective", "upward"),
        ("causalunlearn.compile.fake", "from causalunlearn.studies.cell import run_cell", "upward"),
        ("causalunlearn.engine.fake", "import causalunlearn.methods.entry", "upward"),
        ("causalunlearn.errors", "from causalunlearn.data import datasets", "upward"),
        ("causalunlearn.metrics.fake", "from causalunlearn import unlearn", "upward"),
        ("causalunlearn.studies.fake", "from causalunlearn.graph.parse import _get", "private"),
        ("causalunlearn.cli", "from causalunlearn.graph import _scene", "private"),
    ],
)
def test_the_checker_sees_a_broken_rule(importer, source, rule, tmp_path):
    path = tmp_path / "fake.py"
    path.write_text(source + "\n")
    imports = imports_of(importer, path)
    check = upward_imports if rule == "upward" else private_imports
    assert check(imports)


@pytest.mark.parametrize(
    ("importer", "source"),
    [
        ("causalunlearn.studies.fake", "from causalunlearn.engine import unlearn"),
        ("causalunlearn.methods.fake", "from causalunlearn.engine.verbs import unlearn"),
        ("causalunlearn.metrics.fake", "import causalunlearn"),
        ("causalunlearn.cli_fake", "from causalunlearn.cli.run import _seeds"),
        ("causalunlearn.graph.fake", "from causalunlearn.graph.scene import _scene"),
    ],
)
def test_the_checker_lets_a_downward_or_same_package_import_pass(importer, source, tmp_path):
    path = tmp_path / "fake.py"
    path.write_text(source + "\n")
    imports = imports_of(importer, path)
    assert not upward_imports(imports) and not private_imports(imports)


def test_relative_imports_are_resolved(tmp_path):
    path = tmp_path / "__init__.py"
    path.write_text("from .spec import Graph\nfrom ..errors import GraphError\n")
    found = imports_of("causalunlearn.graph", path)
    assert [i.target for i in found] == ["causalunlearn.graph.spec", "causalunlearn.errors"]
