"""Callbacks: how experiment trackers (TensorBoard, MLflow, W&B, ...) see a run of the loop.

:func:`~causalunlearn.engine.loop.run_schedule` (and :func:`~causalunlearn.engine.verbs.unlearn`,
which runs it) takes ``callbacks=[...]``; each is called

``on_sync(step, epoch, terms)``
    at the executor's existing host reads of the term values, so the fast path gains no
    synchronisation: the fast executor reads every ``sync_every`` steps (and at the end of an
    epoch when callbacks are given), the reference executor after every step. ``step`` is the
    number of optimiser steps done so far in the run (all stages together), ``epoch`` the epoch
    of the last of them, and ``terms`` the mean over the steps since the previous call of each
    stage's unweighted term values and its weighted loss, keyed ``"<stage>/<term>"`` and
    ``"<stage>/loss"``.
``on_epoch(epoch, logs)``
    after every epoch: ``logs`` holds the epoch's means of the same keys, ``"seconds"`` (wall
    time of the loop so far) and ``"steps"`` (optimiser steps so far).
``on_end(metrics)``
    when the run has been scored: ``metrics`` maps a model role (``original``, ``unlearned``,
    ``oracle``) to its metrics (:mod:`causalunlearn.metrics.catalogue` keys). The study layer
    (``run``, ``compare``, ``ablate``, ``tune``) calls it; after calling ``unlearn`` yourself,
    call it with what you measured.

Subclass :class:`Callback` and override what you need (every method does nothing by default);
any object with the three methods works too. With no callbacks the loop does no extra work.
:class:`causalunlearn.studies.tracking.TensorBoardCallback` is the shipped tracker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Callback", "CallbackLike", "TermMeans", "notify_end"]


@runtime_checkable
class CallbackLike(Protocol):
    """What the loop calls: an object with the three hooks of :class:`Callback`."""

    def on_sync(self, step: int, epoch: int, terms: dict[str, float]) -> None: ...

    def on_epoch(self, epoch: int, logs: dict[str, float]) -> None: ...

    def on_end(self, metrics: Mapping[str, Mapping[str, float]]) -> None: ...


class Callback:
    """Base class of callbacks: every hook does nothing; override the ones you need."""

    def on_sync(self, step: int, epoch: int, terms: dict[str, float]) -> None:
        """Term values read to the host (means since the previous call; see the module)."""

    def on_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        """The end of an epoch: the epoch's mean term values, ``seconds`` and ``steps``."""

    def on_end(self, metrics: Mapping[str, Mapping[str, float]]) -> None:
        """The run's final metrics, by model role (``original`` / ``unlearned`` / ``oracle``)."""


def notify_end(
    callbacks: Sequence[CallbackLike], metrics: Mapping[str, Mapping[str, float]]
) -> None:
    """Call ``on_end(metrics)`` on every callback (in order)."""
    for callback in callbacks:
        callback.on_end(metrics)


class TermMeans:
    """Running sums of ``"<stage>/<name>"`` values, read out as means and reset."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, sid: str, loss: float, terms: Mapping[str, float]) -> None:
        """Add one step of stage ``sid``: its weighted loss and unweighted term values."""
        for name, value in (("loss", loss), *terms.items()):
            key = f"{sid}/{name}"
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def __bool__(self) -> bool:
        return bool(self.counts)

    def take(self) -> dict[str, Any]:
        """The means since the last ``take`` (then empty)."""
        means = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return means
