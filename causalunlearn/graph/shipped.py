"""The method files shipped with causalunlearn, addressable by name.

The repository keeps them in its top-level ``graphs/`` folder, reached from the package through
the committed symlink ``causalunlearn/shipped_graphs -> ../graphs``; a wheel carries the files
as the package data ``causalunlearn/shipped_graphs`` (``pyproject.toml``). A shipped method's
*name* is its path under ``graphs/`` without ``.yaml``: ``camu``, ``ablations/no-cut-forget-z``,
``baselines/scrub``. :func:`resolve_source` turns what a user wrote (a name, a file path or YAML
text) into what the loaders read; :func:`~causalunlearn.graph.load_graph`,
:func:`~causalunlearn.methods.load_any` and the command line call it, so ``causalunlearn
validate camu`` works from any folder. This module does not import torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from causalunlearn.errors import GraphError, Problem, did_you_mean

#: Folder (inside the installed package) that holds the shipped files in a wheel; setup.py maps
#: the repository's ``graphs/`` to it.
SHIPPED_DATA = "shipped_graphs"
SUFFIXES = (".yaml", ".yml")


def shipped_folder() -> Path | None:
    """The folder of the shipped method files, or ``None`` when there is none.

    An installed wheel holds them as the package data ``causalunlearn/shipped_graphs``. A source
    checkout (run in place, or installed editable: setuptools' editable finder does not serve a
    data folder mapped under a regular package) has them in its top-level ``graphs/``,
    recognised by the ``pyproject.toml`` beside it.
    """
    import causalunlearn

    package = Path(causalunlearn.__file__).resolve().parent
    if (package / SHIPPED_DATA / "camu.yaml").is_file():
        return package / SHIPPED_DATA
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "graphs" / "camu.yaml").is_file():
        return checkout / "graphs"
    return None


def method_files(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Every ``.yaml`` / ``.yml`` file under ``folder`` by name (relative path, no suffix).

    Names use ``/`` on every platform and are ordered top-level first, then alphabetically
    (``camu``, ``ablations/...``, ``baselines/...``).
    """
    root = Path(folder)
    files = [p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file()]
    files.sort(key=lambda p: (len(p.relative_to(root).parts), p.relative_to(root).as_posix()))
    return {p.relative_to(root).with_suffix("").as_posix(): p for p in files}


def shipped_graphs() -> dict[str, Path]:
    """The shipped method files (graphs and method entries) by name.

    Example::

        >>> shipped_graphs()["ablations/no-cut-forget-z"].name
        'no-cut-forget-z.yaml'
    """
    folder = shipped_folder()
    return method_files(folder) if folder is not None else {}


def _suggestion(name: str, names: dict[str, Path]) -> str:
    """A did-you-mean over the shipped names, for a name or a path that is not there."""
    key = name.replace("\\", "/")
    stem = key.removeprefix("./").removeprefix("graphs/")
    for suffix in SUFFIXES:
        stem = stem.removesuffix(suffix)
    if stem in names and stem != key:
        return f"did you mean the shipped '{stem}'?"
    # A bare file name (``scrub``) is far from its full name (``baselines/scrub``) as text.
    same_leaf = [n for n in names if n.rsplit("/", 1)[-1] == stem.rsplit("/", 1)[-1]]
    if len(same_leaf) == 1:
        return f"did you mean '{same_leaf[0]}'?"
    return did_you_mean(stem, names)


def resolve_source(source: str | os.PathLike[str]) -> str | Path:
    """What a loader should read for ``source``: a file path, or YAML text as given.

    - YAML text (a string with a newline) is returned unchanged.
    - An existing path is that file.
    - A shipped name (``camu``, ``baselines/scrub``) is the shipped file.
    - A missing path that ends in ``.yaml`` / ``.yml`` is returned unchanged (the loader reports
      ``file-not-found``); anything else is an unknown name.

    Raises:
        GraphError: ``unknown-graph`` for a name that is neither a file nor a shipped method,
            with a did-you-mean hint over the shipped names.
    """
    if isinstance(source, str) and "\n" in source:
        return source
    path = Path(source)
    if path.exists():
        return path
    names = shipped_graphs()
    key = os.fspath(source).replace("\\", "/")
    if key in names:
        return names[key]
    if path.suffix in SUFFIXES:
        return path
    hint = _suggestion(key, names)
    listing = "`causalunlearn graphs` lists the shipped names"
    raise GraphError(
        [
            Problem(
                "unknown-graph",
                key,
                "no such file and no shipped method of that name",
                f"{hint} ({listing})" if hint else listing,
            )
        ]
    )


def missing_file_hint(source: str | os.PathLike[str]) -> str:
    """The hint for a graph file that is not there: the shipped name it looks like, if any."""
    hint = _suggestion(os.fspath(source), shipped_graphs())
    return hint or "see `causalunlearn graphs`"
