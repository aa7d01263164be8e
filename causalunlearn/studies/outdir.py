"""Output folders that never lose a user's files.

A run folder (``causalunlearn run --out DIR``) is built in a hidden staging folder beside
``DIR`` and renamed into place at the end. A sweep folder (``compare``, ``ablate``, ``tune``) is
filled cell by cell. Both follow one rule: **the toolkit only ever replaces or writes into a
folder it can prove it made**, and it proves it by content, never by name:

=====================  ====================================  ======================================
``--out`` is           run                                   sweep (compare / ablate / tune)
=====================  ====================================  ======================================
absent                 created                               created
an empty folder        filled                                filled
a finished run         refused; replaced with --overwrite    refused (``out-is-run``)
an unfinished run      refused; replaced with --overwrite    refused (``out-is-run``)
a sweep folder         refused (``out-is-sweep``)            resumed
a folder of other      refused (``out-not-ours``), even      refused (``out-not-ours``), even
files                  with --overwrite                      with --overwrite
a regular file         refused (``out-is-file``)             refused (``out-is-file``)
a symbolic link        refused (``out-is-symlink``)          refused (``out-is-symlink``)
the working folder     refused (``out-is-cwd``)              refused (``out-is-cwd``)
unwritable             refused before any computing          refused before any computing
                       (``out-not-writable``)                (``out-not-writable``)
=====================  ====================================  ======================================

"A finished run" is a folder whose ``manifest.json`` has a ``causalunlearn.run/`` format and
``status: finished``; "an unfinished run" holds the staging marker :data:`STAGING_MARKER`; "a
sweep folder" holds a ``sweep.json`` of format ``causalunlearn.sweep/``. The writer holds the
folder's lock (:mod:`causalunlearn.locks`) from the first check to the last rename, so a second
process writing the same folder is refused with ``busy``.

Recovery: the final swap is ``DIR → .DIR.old-PID``, ``staging → DIR``, delete the old one. A
process killed between those steps leaves ``.DIR.old-PID`` (and killed earlier, a
``.DIR.partial-*`` staging folder). The next writer of ``DIR``, holding the lock, restores the
old run when ``DIR`` is missing, deletes an old copy when a newer run is in place, deletes
abandoned staging folders, and logs what it did.
"""

from __future__ import annotations

import enum
import glob
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from causalunlearn.atomic import atomic_write
from causalunlearn.errors import RunError
from causalunlearn.locks import exclusive
from causalunlearn.studies.records import MANIFEST_FORMAT, SWEEP_FORMAT

log = logging.getLogger(__name__)

#: File written first into every staging folder: the proof that the folder is the toolkit's.
STAGING_MARKER = ".causalunlearn-staging"
RUN_FORMAT_PREFIX = MANIFEST_FORMAT.rsplit("/", 1)[0] + "/"
SWEEP_FORMAT_PREFIX = SWEEP_FORMAT.rsplit("/", 1)[0] + "/"


class FolderState(enum.Enum):
    """What an output path holds, as far as the toolkit can prove."""

    ABSENT = "absent"
    EMPTY = "empty folder"
    RUN = "finished run"
    STAGING = "unfinished run"
    SWEEP = "sweep folder"
    FOREIGN = "folder of other files"
    FILE = "regular file"
    SYMLINK = "symbolic link"


def _json_format(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def folder_state(path: str | Path) -> FolderState:
    """Classify ``path`` (see the module docstring); reads at most two small JSON files."""
    path = Path(path)
    if path.is_symlink():
        return FolderState.SYMLINK
    if not path.exists():
        return FolderState.ABSENT
    if not path.is_dir():
        return FolderState.FILE
    try:
        names = set(os.listdir(path))
    except OSError:
        return FolderState.FOREIGN
    if not names:
        return FolderState.EMPTY
    if "manifest.json" in names:
        manifest = _json_format(path / "manifest.json")
        if (
            manifest is not None
            and str(manifest.get("format", "")).startswith(RUN_FORMAT_PREFIX)
            and manifest.get("status") == "finished"
        ):
            return FolderState.RUN
    if STAGING_MARKER in names:
        return FolderState.STAGING
    if "sweep.json" in names:
        sweep = _json_format(path / "sweep.json")
        if sweep is not None and str(sweep.get("format", "")).startswith(SWEEP_FORMAT_PREFIX):
            return FolderState.SWEEP
    return FolderState.FOREIGN


def _refuse_unusable(out: Path, state: FolderState, kind: str) -> None:
    """The refusals that no flag lifts."""
    cwd = Path.cwd().resolve()
    resolved = out.resolve()
    if resolved == cwd or resolved in cwd.parents or not out.resolve().name:
        raise RunError(
            "out-is-cwd",
            f"the output folder {out} is the working folder or one of its parents",
            "choose a new subfolder, e.g. --out runs/my-run",
        )
    if state is FolderState.SYMLINK:
        raise RunError(
            "out-is-symlink",
            f"the output path {out} is a symbolic link (to {os.readlink(out)})",
            f"pass the folder itself (--out {resolved}), or choose another --out",
        )
    if state is FolderState.FILE:
        raise RunError(
            "out-is-file",
            f"the output path {out} is an existing file, not a folder",
            "choose another --out; the file is left as it is",
        )
    if state is FolderState.FOREIGN:
        raise RunError(
            "out-not-ours",
            f"{out} is a folder of other files, not a {kind} folder of causalunlearn;"
            " nothing in it is touched (--overwrite only replaces causalunlearn's own run folders)",
            "choose another --out (a new or empty folder)",
        )


def _probe_writable(folder: Path, what: str) -> None:
    """Create and delete a file in ``folder``: catches read-only mounts and ``chattr +i``."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".causalunlearn-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise RunError(
            "out-not-writable",
            f"cannot write in {what} {folder}: {err.strerror or err}",
            "choose an output folder you can write to (checked before any computing starts)",
        ) from None


def _prepare_parent(out: Path) -> None:
    """Create ``out``'s parent and check it can be written (the staging folder and the lock file
    live there)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(
            "out-not-writable",
            f"cannot create the folder {out.parent}: {err.strerror or err}",
            "choose an output folder you can write to",
        ) from None
    _probe_writable(out.parent, "the parent folder")


def _recover(out: Path) -> None:
    """Restore or clean what a killed writer of ``out`` left beside it (under its lock)."""
    parent = out.parent
    if not parent.is_dir():
        return
    for old in sorted(parent.glob(f".{glob.escape(out.name)}.old-*")):
        if not out.exists() and not out.is_symlink():
            os.replace(old, out)
            log.warning(
                "restored %s from %s (a run was stopped during its final rename)", out, old.name
            )
        elif folder_state(old) in (FolderState.RUN, FolderState.STAGING, FolderState.EMPTY):
            shutil.rmtree(old)
            log.warning(
                "removed %s: an older copy of %s left by a run stopped after its final rename",
                old,
                out,
            )
        else:
            log.warning(
                "left %s in place: it is not a run folder of causalunlearn; move or delete it",
                old,
            )
    for staging in sorted(parent.glob(f".{glob.escape(out.name)}.partial-*")):
        if staging.is_dir() and not staging.is_symlink():
            shutil.rmtree(staging)
            log.warning("removed %s: the staging folder of an interrupted run", staging)


@contextmanager
def run_folder(out: str | Path, *, overwrite: bool) -> Iterator[Path]:
    """Claim ``out`` for a run; yield a staging folder that replaces ``out`` on success.

    Every check happens before the ``with`` body runs (that is, before any computing):
    what ``out`` holds (module docstring), the lock, recovery of a killed earlier writer, and
    that both the parent folder and ``out`` itself can be written. On success the staging
    folder is renamed over ``out``; on failure it is deleted and ``out`` is untouched.

    Raises:
        RunError: ``run-exists`` (a finished run and no ``overwrite``), ``run-unfinished``,
            ``out-is-sweep``, ``out-not-ours``, ``out-is-file``, ``out-is-symlink``,
            ``out-is-cwd``, ``out-not-writable``, ``busy``.
    """
    out = Path(out)
    _refuse_unusable(out, folder_state(out), "run")
    _prepare_parent(out)
    with exclusive(out, wait=False, what="run folder"):
        _recover(out)
        state = folder_state(out)
        _refuse_unusable(out, state, "run")
        if state is FolderState.SWEEP:
            raise RunError(
                "out-is-sweep",
                f"{out} is a sweep folder (compare / ablate / tune), not a run folder",
                "give the run its own --out; the sweep folder is left as it is",
            )
        if state is FolderState.RUN and not overwrite:
            raise RunError(
                "run-exists",
                f"{out} already holds a finished run",
                "choose another --out, or pass --overwrite to replace it",
            )
        if state is FolderState.STAGING and not overwrite:
            raise RunError(
                "run-unfinished",
                f"{out} holds an unfinished run of causalunlearn",
                "pass --overwrite to replace it, or choose another --out",
            )
        if state is not FolderState.ABSENT:
            _probe_writable(out, "the output folder")  # renaming it needs it to be mutable
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
        try:
            atomic_write(staging / STAGING_MARKER, f"pid {os.getpid()}\n")
            yield staging
            (staging / STAGING_MARKER).unlink()
            _swap_in(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _swap_in(staging: Path, out: Path) -> None:
    state = folder_state(out)
    if state not in (FolderState.ABSENT, FolderState.EMPTY, FolderState.RUN, FolderState.STAGING):
        # Someone put other files there while the run computed: keep both, touch nothing.
        kept = out.with_name(f"{out.name}.new-{os.getpid()}")
        os.replace(staging, kept)
        raise RunError(
            "out-changed",
            f"{out} changed while the run computed (it is now a {state.value}); it is left as"
            f" it is and the new run was saved as {kept}",
            "move the new run where you want it",
        )
    old = None
    if state is not FolderState.ABSENT and state is not FolderState.EMPTY:
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(staging, out)  # an empty folder is replaced atomically by rename(2)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def sweep_folder(out: str | Path) -> Iterator[Path]:
    """Claim ``out`` for a sweep (created, or resumed when it is one); hold its lock.

    Raises:
        RunError: ``out-is-run``, ``out-not-ours``, ``out-is-file``, ``out-is-symlink``,
            ``out-is-cwd``, ``out-not-writable``, ``busy``.
    """
    out = Path(out)
    _refuse_unusable(out, folder_state(out), "sweep")
    _prepare_parent(out)
    with exclusive(out, wait=False, what="sweep folder"):
        state = folder_state(out)
        _refuse_unusable(out, state, "sweep")
        if state in (FolderState.RUN, FolderState.STAGING):
            raise RunError(
                "out-is-run",
                f"{out} is a run folder (causalunlearn run), not a sweep folder",
                "give the sweep its own --out; the run folder is left as it is",
            )
        try:
            out.mkdir(exist_ok=True)
        except OSError as err:
            raise RunError(
                "out-not-writable",
                f"cannot create the folder {out}: {err.strerror or err}",
                "choose an output folder you can write to",
            ) from None
        _probe_writable(out, "the sweep folder")
        yield out
