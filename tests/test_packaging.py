"""Packaging hygiene: one version, a pyproject-only build, the project's top-level layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import causalunlearn

ROOT = Path(__file__).resolve().parents[1]
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

#: What the repository's top level may hold (everything else belongs in one of these).
TOP_LEVEL = {
    "causalunlearn",
    "graphs",
    "notebooks",
    "tests",
    "docs",
    "benchmarks",
    "scripts",
    ".ci",
    "pyproject.toml",
    "README.md",
    "Makefile",
    ".gitignore",
}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_lives_in_the_package_only():
    project = _pyproject()["project"]
    assert "version" not in project, "the version is written once, in causalunlearn/__init__.py"
    assert "version" in project["dynamic"]
    dynamic = _pyproject()["tool"]["setuptools"]["dynamic"]
    assert dynamic["version"] == {"attr": "causalunlearn.__version__"}


def test_setuptools_reads_the_package_version():
    from setuptools.config.pyprojecttoml import read_configuration

    config = read_configuration(ROOT / "pyproject.toml", expand=True)
    assert config["project"]["version"] == causalunlearn.__version__


def test_the_shipped_graphs_are_the_top_level_folder():
    link = ROOT / "causalunlearn" / "shipped_graphs"
    assert link.is_symlink() and link.resolve() == (ROOT / "graphs").resolve()


def test_the_top_level_holds_only_the_project_layout():
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know which files a clone holds")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    tops = {rel.split("/", 1)[0] for rel in listed if (ROOT / rel).exists()}
    assert tops <= TOP_LEVEL, sorted(tops - TOP_LEVEL)
