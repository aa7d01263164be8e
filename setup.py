"""Packaging hook (the metadata is in pyproject.toml).

The shipped method files stay in the repository's top-level ``graphs/`` and install as the package
data ``causalunlearn/shipped_graphs`` (read by ``causalunlearn.methods.shipped``). pyproject.toml
cannot map a folder outside the package *and* discover the packages, so both are done here: every
package under ``causalunlearn/`` and every folder under ``graphs/`` is found, so a new one needs
no line anywhere.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

SHIPPED = "causalunlearn.shipped_graphs"
# Relative paths: setuptools runs this file from the project root and wants them relative.
shipped = [SHIPPED] + [
    ".".join((SHIPPED, *folder.relative_to("graphs").parts))
    for folder in sorted(Path("graphs").rglob("*"))
    if folder.is_dir() and folder.name != "__pycache__"
]

setup(
    packages=[*find_namespace_packages(include=["causalunlearn*"]), *shipped],
    package_dir={SHIPPED: "graphs"},
    package_data={"causalunlearn": ["py.typed"], **{p: ["*.yaml", "*.yml"] for p in shipped}},
)
