"""Per-epoch checkpoints of the training loop, and resuming from them.

A long training (a CIFAR original or oracle: hours on a CPU) can be stopped at any time and
started again without losing more than the epoch in progress.
:func:`~causalunlearn.engine.loop.run_schedule` given an :class:`EpochCheckpoint` writes, after
every epoch, one file holding everything the rest of the run depends on:

- the trained model's ``state_dict`` (batch-norm statistics included), every stage's optimiser
  state (momentum buffers, Adam moments and step counts) and the epoch reached (the learning-rate
  schedule is a function of the epoch, so it needs no state of its own);
- the random state: the loop's shuffling generator, the augmentation's generator, torch's global
  CPU generator and, on CUDA, the device's generator (dropout draws from those);
- the log so far (optimiser steps, loss rows, the partial sums of the next row) and the loop
  time, so the resumed run's :class:`~causalunlearn.engine.loop.TrainLog` is the whole run's.

The file is written atomically (:mod:`causalunlearn.atomic`), so an interruption while writing
leaves the previous epoch's checkpoint, and read with ``torch.load(..., weights_only=True)``.
Resumed, the run computes what the uninterrupted one would have: the same final weights
(``tests/studies/test_training_resume.py``). A checkpoint that cannot be read, or was written
for another run (its ``key`` differs), is not used: the run starts over and says so in the log.
Deleting the file once the finished model is saved is the caller's job (:meth:`discard`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from causalunlearn.atomic import atomic_open

__all__ = ["CHECKPOINT_FORMAT", "EpochCheckpoint"]

#: Version of the checkpoint file's content; a file of another version is not resumed.
CHECKPOINT_FORMAT = "causalunlearn.training-checkpoint/v1"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochCheckpoint:
    """Where a run of the loop saves its state after each epoch, and resumes from.

    Attributes:
        path: The checkpoint file (the model cache uses ``<entry>.partial.pt``).
        key: What the run is (e.g. the model cache's fingerprint): a file holding another key is
            not resumed.
        every: Write after every ``every`` epochs (and never after the last: the caller saves
            the finished model).
    """

    path: Path
    key: str = ""
    every: int = 1

    def load(self) -> dict[str, Any] | None:
        """The saved state, or ``None`` when there is none that this run can use."""
        path = Path(self.path)
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises several types for a bad file
            _log.warning("training checkpoint %s is unreadable (%s); starting over", path, exc)
            return None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            _log.warning("%s is not a training checkpoint of this version; starting over", path)
            return None
        if state.get("key") != self.key:
            _log.warning("training checkpoint %s belongs to another run; starting over", path)
            return None
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` (plus the format and key) atomically."""
        with atomic_open(Path(self.path), "wb") as handle:
            torch.save({**state, "format": CHECKPOINT_FORMAT, "key": self.key}, handle)

    def discard(self) -> None:
        """Delete the checkpoint file (once the finished model is written)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def random_state(device: torch.device) -> dict[str, torch.Tensor]:
    """torch's global generators that a training step can draw from (dropout)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_random_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore :func:`random_state`."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
