"""Inter-process locks on files: one writer per run folder, sweep folder and cached model.

Built on :class:`filelock.FileLock`, a kernel advisory lock (``flock``) on a small ``*.lock``
file beside what it protects:

- **A killed holder never blocks anyone.** The kernel drops the lock when the holding process
  ends, however it ends (``SIGKILL`` included); the lock file left behind is inert.
- **Shared network folders.** On Linux, NFS maps ``flock`` to the server's byte-range locks, so
  processes on different machines exclude each other (and the server frees the lock of a client
  that disappears when its lease runs out). On a file system without kernel locks filelock falls
  back to a marker file.

The lock files are left in place on release (deleting them would race with a waiting process).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from causalunlearn.errors import RunError

log = logging.getLogger(__name__)


def lock_path(target: str | Path) -> Path:
    """The lock file that guards ``target``: ``.NAME.lock`` in the same folder.

    It sits *beside* the target, not inside it, so it outlives the target being swapped or
    deleted.
    """
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


@contextmanager
def exclusive(target: str | Path, *, wait: bool, what: str = "") -> Iterator[None]:
    """Hold the lock of ``target`` for the duration of the ``with`` block.

    Args:
        target: The file or folder to guard (its folder must exist or be creatable).
        wait: ``True``: wait for the holder to finish (logged once); ``False``: refuse at once.
        what: Words for the messages, e.g. ``"run folder"``.

    Raises:
        RunError: ``busy`` when ``wait`` is false and another process holds the lock;
            ``lock-failed`` when the lock file cannot be created (read-only folder, ...).
    """
    path = lock_path(target)
    label = f"{what} {target}".strip()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not wait:
                raise RunError(
                    "busy",
                    f"another causalunlearn process is writing {label}",
                    "wait for it to finish, or choose another output folder",
                ) from None
            log.info("waiting for another process that is writing %s ...", label)
            lock.acquire()
    except OSError as err:
        raise RunError(
            "lock-failed",
            f"cannot create the lock file {path}: {err.strerror or err}",
            "make the folder writable, or choose another output / cache folder",
        ) from None
    try:
        yield
    finally:
        lock.release()
