"""Loading a user's own extensions (``--import``): a module name or a ``.py`` file.

A user registers a divergence, reference, do-operation, dataset or model in a module of their
own; the command line loads it with ``--import SPEC`` before anything else, and Python users
import it themselves. :func:`import_plugin` is what ``--import`` does, for one ``SPEC``:

- a **module name** (``my_divergences``, ``lab.unlearning.kinds``): imported from the working
  directory first, then ``sys.path`` — ``my_divergences`` for ``./my_divergences.py``; a spec
  that is an existing path, ends in ``.py`` or holds a ``/`` is read as a path;
- a **file path** (``plugins/my_divergences.py``, ``/abs/kinds.py``) or a **package folder**
  (one holding ``__init__.py``): its folder goes first on ``sys.path`` and it is imported under
  its own name (the file's stem), so worker processes of a sweep can import it again by name. A
  name already taken by another module (a file called ``json.py``) is refused rather than
  silently giving the other module.

Everything that fails ends in one ``import-failed`` error naming the spec and the reason, with
the module's own exception as its cause.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from causalunlearn.errors import CausalUnlearnError

__all__ = ["IMPORT_HINT", "import_again", "import_plugin", "import_plugins", "imported_plugins"]

#: What :func:`import_plugin` loaded in this process, as worker processes load it again:
#: ``(absolute path, "")`` for a file or package, ``(module name, folder searched first)``,
#: each with the name it is loaded under.
_IMPORTED: dict[tuple[str, str], str] = {}

#: The hint for a kind that is not registered, where it may live in a user's module.
IMPORT_HINT = (
    "if your own module registers it, load that module first: --import MODULE or --import"
    " path/to/file.py on the command line (before the subcommand), or import it in Python"
    " before loading the graph"
)

_SPEC_HINT = (
    "give a module name importable from the working directory or sys.path (my_kinds for"
    " ./my_kinds.py), or the path of a .py file or of a package folder"
)


def _failed(spec: str, message: str, hint: str = _SPEC_HINT) -> CausalUnlearnError:
    return CausalUnlearnError("import-failed", f"--import {spec}: {message}", hint)


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or "/" in spec or Path(spec).exists()


def _on_path_first(folder: Path) -> None:
    text = str(folder)
    if text in sys.path:
        sys.path.remove(text)
    sys.path.insert(0, text)


def _import(spec: str, name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is not None and (err.name == name or name.startswith(err.name + ".")):
            raise _failed(
                spec, f"no module named {name!r} (working directory {os.getcwd()})"
            ) from err
        raise _failed(
            spec, f"{type(err).__name__}: {err}", "the module imports one that is missing"
        ) from err
    except CausalUnlearnError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of user code is reported the same
        raise _failed(
            spec, f"{type(err).__name__}: {err}", "the error is in the module's own code"
        ) from err


def import_plugin(spec: str | os.PathLike[str]) -> ModuleType:
    """Import a user's module given by name or by path (what ``--import SPEC`` does).

    Args:
        spec: A module name (``my_kinds``; the working directory is searched first), the path of
            a ``.py`` file, or the path of a package folder (holding ``__init__.py``).

    Returns:
        The imported module (importing it again returns the same module).

    Raises:
        CausalUnlearnError: ``import-failed`` for a module that cannot be found, a path that is
            not a ``.py`` file or package folder, a file whose name is taken by another module,
            or any exception raised while the module runs (as the cause).
    """
    text = os.fspath(spec)
    if not text.strip():
        raise _failed(repr(text), "empty module name")
    if not _looks_like_path(text):
        if text.isidentifier() or all(part.isidentifier() for part in text.split(".")):
            _on_path_first(Path.cwd())
            module = _import(text, text)
            _IMPORTED.setdefault((text, os.getcwd()), text)
            return module
        raise _failed(text, "not a module name, and no such file")
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "__init__.py").is_file():
            raise _failed(text, "is a folder without __init__.py, not a package")
        target, name = path.resolve() / "__init__.py", path.resolve().name
    elif path.is_file():
        if path.suffix != ".py":
            raise _failed(text, "is not a Python file (.py)")
        target, name = path.resolve(), path.stem
    else:
        raise _failed(text, f"no such file ({path.resolve()})")
    if not name.isidentifier():
        raise _failed(
            text, f"{name!r} is not a valid module name", "rename the file, e.g. my_kinds.py"
        )
    loaded = sys.modules.get(name)
    if loaded is None:
        _on_path_first(target.parent if target.name != "__init__.py" else target.parent.parent)
        loaded = _import(text, name)
    found = getattr(loaded, "__file__", None)
    if found is None or Path(found).resolve() != target:
        raise _failed(
            text,
            f"the module name {name!r} is already taken by {found or 'a built-in module'}",
            "rename your file so that its name is not that of another module",
        )
    _IMPORTED.setdefault((str(path.resolve()), ""), name)
    return loaded


def imported_plugins() -> tuple[tuple[str, str], ...]:
    """The modules :func:`import_plugin` loaded in this process (and still loaded), in order,
    as :func:`import_again` takes them: a sweep's workers load the same ones first."""
    return tuple(item for item, name in _IMPORTED.items() if name in sys.modules)


def import_again(plugins: Iterable[tuple[str, str]]) -> None:
    """Load :func:`imported_plugins` of another process here (a sweep worker): a file or
    package by its absolute path, a module name with the folder it was found from on
    ``sys.path``. Loading one already loaded costs nothing.

    Raises:
        CausalUnlearnError: ``import-failed`` as :func:`import_plugin` (e.g. a file that this
            machine does not have: on a cluster, put plugins where every node sees them).
    """
    for spec, folder in plugins:
        if folder and folder not in sys.path:
            sys.path.append(folder)
        import_plugin(spec)


def import_plugins(specs: Iterable[str | os.PathLike[str]]) -> list[ModuleType]:
    """:func:`import_plugin` for each spec, in order (``--import`` given several times)."""
    return [import_plugin(spec) for spec in specs]
