"""Where a sweep's work runs: in this process (``local``) or on Ray (``ray``).

A sweep is a task graph (:mod:`causalunlearn.studies.backends.plan`): one task per original
model and per oracle (each trained once, however many cells need it), one per (dataset,
scenario, seeds) that scores them (the *reference*), one per cell, and the summary on the
driver. Every task is a pure function of small picklable specs
(:mod:`causalunlearn.studies.backends.tasks`) that returns JSON data; only the driver writes the
sweep folder (each cell atomically, as it arrives), so resume, identity checks and failed
cells work the same on both backends, and the workers write only the model cache.

- ``local`` runs the tasks one after the other in this process: today's behaviour and numbers.
- ``ray`` runs them on Ray (an optional extra, ``pip install "causalunlearn[ray]"``; imported
  only here, when asked for): a local Ray instance on this machine's cores when no address is
  given, or the cluster at ``address``. docs/scaling.md says how to run it on a GPU server, a
  Ray cluster or Slurm.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

from causalunlearn.errors import RunError
from causalunlearn.numerics import available_cores, threads_for

#: The backends a sweep runs on.
BACKENDS = ("local", "ray")
#: What to install for the ray backend.
RAY_INSTALL = 'pip install "causalunlearn[ray]"'


def ray_missing() -> RunError:
    """The error of a ray backend asked for where the ray package is not installed."""
    return RunError(
        "ray-missing",
        "the ray backend needs the ray package, which is not installed here",
        f"{RAY_INSTALL} (or pip install ray), or run with --backend local",
    )


def _positive(name: str, value: float | None, *, whole: bool, zero: bool = False) -> None:
    if value is None:
        return
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value >= 0 if zero else value > 0) and (not whole or isinstance(value, int))
    if not ok:
        what = "a whole number of at least 1" if whole else "a number above 0"
        raise RunError(
            "bad-backend",
            f"{name} must be {'0 or more' if zero else what}, got {value!r}",
            f"e.g. {name}=2" if whole else f"e.g. {name}={'0.25' if zero else '1'}",
        )


@dataclass(frozen=True)
class Backend:
    """How a sweep runs its tasks (``compare|ablate|tune --backend ...``).

    Attributes:
        kind: ``local`` (in this process, one task at a time) or ``ray``.
        address: Ray only: the cluster to join (``ray://host:10001`` or ``host:6379``, as
            ``ray.init(address=...)`` takes it); ``None`` starts a Ray instance on this machine
            (or uses the one this process already started with ``ray.init``).
        workers: Ray only: tasks running at once. Default: on a Ray instance started here,
            ``available cores // cpus_per_cell``; on a cluster, as many as its resources hold.
        cpus_per_cell: Ray only: CPUs a task reserves (Ray's ``num_cpus``; default the thread
            count of a cell).
        gpus_per_cell: Ray only: GPUs a task reserves (Ray's ``num_gpus``); ``0.25`` packs four
            cells on one GPU. Default 0.

    Raises:
        RunError: ``bad-backend`` for an unknown kind, a bad count, or a Ray option given to
            the local backend; ``ray-missing`` for ``ray`` where the package is not installed.
    """

    kind: str = "local"
    address: str | None = None
    workers: int | None = None
    cpus_per_cell: float | None = None
    gpus_per_cell: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise RunError(
                "bad-backend",
                f"unknown backend {self.kind!r}",
                f"use one of {', '.join(BACKENDS)}",
            )
        _positive("workers", self.workers, whole=True)
        _positive("cpus_per_cell", self.cpus_per_cell, whole=False)
        _positive("gpus_per_cell", self.gpus_per_cell, whole=False, zero=True)
        if self.kind == "local":
            given = [
                name
                for name, value in (
                    ("address", self.address),
                    ("workers", self.workers),
                    ("cpus_per_cell", self.cpus_per_cell),
                    ("gpus_per_cell", self.gpus_per_cell or None),
                )
                if value is not None
            ]
            if given:
                raise RunError(
                    "bad-backend",
                    f"{', '.join(given)} only apply to the ray backend; the local backend runs"
                    " one cell at a time in this process",
                    "add --backend ray (Backend(kind='ray', ...)), or leave those options out",
                )
        elif importlib.util.find_spec("ray") is None:
            raise ray_missing()

    def threads_per_cell(self, threads: int | None) -> int:
        """The thread count of each cell: ``threads`` when given; else, on ray,
        ``cpus_per_cell`` (whole, at least 1), or the cores divided between ``workers``
        (:func:`~causalunlearn.numerics.threads_for`), or 1; on local, auto."""
        if threads is not None or self.kind == "local":
            return threads_for(1, threads)
        if self.cpus_per_cell is not None:
            return max(1, int(self.cpus_per_cell))
        if self.workers is not None:
            return threads_for(self.workers)
        return 1

    def cpus(self, threads: int) -> float:
        """CPUs a task reserves: ``cpus_per_cell``, else its thread count."""
        return float(self.cpus_per_cell) if self.cpus_per_cell is not None else float(threads)

    def slots(self, threads: int) -> int | None:
        """Tasks at once: 1 on local; ``workers``; on a Ray instance started here the cores
        divided by :meth:`cpus`; ``None`` (as the cluster's resources allow) on a cluster."""
        if self.kind == "local":
            return 1
        if self.workers is not None:
            return self.workers
        if self.address is None:
            return max(1, int(available_cores() // self.cpus(threads)))
        return None


def parse_backend(backend: Backend | str | None) -> Backend:
    """A :class:`Backend` from one, a kind name (``"ray"``), or ``None`` (local)."""
    if backend is None:
        return Backend()
    if isinstance(backend, Backend):
        return backend
    if isinstance(backend, str):
        return Backend(kind=backend)
    raise RunError(
        "bad-backend",
        f"backend is a Backend or one of {', '.join(BACKENDS)}, got {type(backend).__name__}",
        "e.g. Sweep(..., backend=Backend('ray', workers=2))",
    )


__all__ = ["BACKENDS", "Backend", "RAY_INSTALL", "parse_backend", "ray_missing"]
