"""Progress of long work: bars on a terminal or in Jupyter, log lines everywhere else.

- :func:`progress_bar` makes every progress bar of the package. In Jupyter it is the notebook
  widget (``tqdm.auto``) when ``ipywidgets`` can be imported, else the plain text bar
  (``tqdm.std``), so a notebook never shows tqdm's ``IProgress not found`` warning. Where nobody
  would see a bar (stderr is not a terminal: logs, ``nohup``, CI) none is drawn.
- :class:`LoopProgress` is the bar of a training loop plus, when no bar is drawn, one
  :mod:`logging` line per epoch at INFO with the elapsed time and an estimate of the time left
  (``original seed 0: epoch 3/20, 12.4 s, about 70 s left``). A loop says nothing before it
  has run :data:`LOG_AFTER_S` seconds: the many short unlearning runs of a sweep are reported
  once per cell by the sweep, a long training of an original epoch by epoch.

The command line shows ``causalunlearn`` log lines on stderr; a library user sees them once
logging is configured (``logging.basicConfig(level=logging.INFO)``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

#: A loop logs its epochs only once it has run this long (seconds).
LOG_AFTER_S = 10.0


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (the test ``tqdm.autonotebook`` makes)."""
    return "ipykernel.zmqshell" in sys.modules


def widgets_available() -> bool:
    """Whether ``ipywidgets`` (which tqdm's notebook bar needs) can be imported."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def bar_class() -> type:
    """The tqdm class to use: ``tqdm.auto``'s in Jupyter with ``ipywidgets``, else ``tqdm.std``'s
    (text; outside Jupyter ``tqdm.auto`` would pick it too)."""
    if in_notebook() and widgets_available():
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm


def bars_shown() -> bool:
    """Whether a bar would be seen: in Jupyter, or when stderr is a terminal."""
    if in_notebook():
        return True
    try:
        return bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def progress_bar(iterable: Iterable[Any] | None = None, *, enabled: bool = True, **kwargs: Any):
    """A tqdm bar (``kwargs`` as tqdm's), drawn only when ``enabled`` and :func:`bars_shown`.

    A bar that is not drawn still counts (``n``) and has ``disable`` set, so callers can report
    progress another way.
    """
    return bar_class()(iterable, disable=not (enabled and bars_shown()), **kwargs)


def duration(seconds: float) -> str:
    """``12.4 s``, ``70 s``, ``3.5 min`` or ``1.2 h``: a time as a person reads it."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class LoopProgress:
    """Progress of a loop of ``epochs`` epochs and ``total`` steps: a bar where one is seen,
    else one log line per epoch (once the loop has run :data:`LOG_AFTER_S` seconds).

    Args:
        label: What runs, e.g. ``original seed 0`` (the bar's description, the lines' start).
        total: Steps of the whole loop (the estimate of the time left is per step).
        epochs: Epochs of the whole loop.
        enabled: Draw a bar (where one is seen); the log lines do not depend on it.
        logger: Where the lines go (INFO).
    """

    def __init__(
        self, label: str, *, total: int, epochs: int, enabled: bool, logger: logging.Logger
    ) -> None:
        self.label, self.total, self.epochs, self.logger = label, total, epochs, logger
        self.bar = progress_bar(total=total, enabled=enabled, desc=label, leave=False)
        self.steps = 0
        self.start = time.monotonic()

    def step(self) -> None:
        """One step done."""
        self.steps += 1
        self.bar.update(1)

    def epoch_done(self, epoch: int) -> None:
        """Epoch ``epoch`` (1-based) done: the log line, when no bar is drawn."""
        elapsed = time.monotonic() - self.start
        if not self.bar.disable or elapsed < LOG_AFTER_S:
            return
        if epoch >= self.epochs:
            left = "done"
        else:
            rate = elapsed / max(self.steps, 1)
            left = f"about {duration(rate * max(self.total - self.steps, 0))} left"
        self.logger.info(
            "%s: epoch %d/%d, %s, %s", self.label, epoch, self.epochs, duration(elapsed), left
        )

    def close(self) -> None:
        """Remove the bar."""
        self.bar.close()
