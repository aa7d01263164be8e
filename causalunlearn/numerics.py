"""CPU numerics and threads: process-wide settings a run applies once, records and keys on.

Two concepts that decide how fast (and, for flush-to-zero, how exactly) the CPU computes:

- :class:`CpuNumerics`: *flush-to-zero / denormals-are-zero* (``torch.set_flush_denormal``:
  subnormal floats, which trained weights produce and which x86 CPUs handle through a slow
  microcode path, become zero) and the ``channels_last`` memory format for convolutional
  models (inference and training loops). Both are off by default: flush-to-zero changes
  results (random 10 % MNIST removal: one MIA by 1.15 points, over the ±1 point it was allowed)
  and brings nothing on CPUs without a subnormal penalty (AMD EPYC; docs/performance.md, "CPU
  numerics and threads").
- threads: ``threads=None`` is *auto*, ``min(available cores, torch's thread count)``;
  :func:`limit_threads` bounds torch's intra-op pool *and* the OpenMP/BLAS pools of
  scikit-learn (the attackers) through ``threadpoolctl``; :func:`threads_for` divides the
  cores between cells that run at once.

A bottom module: it imports torch and :mod:`causalunlearn.errors` only (``threadpoolctl`` and
``ctypes`` lazily).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from causalunlearn.errors import RunError


@dataclass(frozen=True)
class CpuNumerics:
    """How the CPU computes: a run setting, recorded in manifests and cache keys.

    Attributes:
        flush_denormal: Flush subnormal floats to zero (FTZ/DAZ) on the CPU. Changes trained
            weights (it is part of the model cache's key) and, slightly, every number; much
            faster where trained weights hold subnormals (issue 13: the MNIST CNN's inference
            3.2× faster). Has no effect on a CPU without SSE3 (``apply`` returns False).
        channels_last: Run conv nets in the ``channels_last`` memory format: the inference
            forwards of 4-D inputs (``predict``) and the trained model of every training loop
            (unlearning, originals, oracles; ``engine.step.apply_run_options``). Same numbers to
            float tolerance; part of the model cache's key when on (float operations in
            another order change trained weights in the last bits).

    Raises:
        RunError: ``bad-numerics`` for a value that is not a bool.
    """

    flush_denormal: bool = False
    channels_last: bool = False

    def __post_init__(self) -> None:
        for name in ("flush_denormal", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise RunError(
                    "bad-numerics",
                    f"CpuNumerics.{name} is True or False, got {getattr(self, name)!r}",
                    f"e.g. CpuNumerics({name}=True)",
                )

    def key(self) -> dict[str, Any]:
        """The settings as JSON (manifests, sweep cells)."""
        return {"flush_denormal": self.flush_denormal, "channels_last": self.channels_last}


#: What :func:`apply` last set for channels_last (torch keeps no such global).
_channels_last = False


_log = logging.getLogger(__name__)


def _flushed_fraction() -> float:
    """The share of a parallel elementwise op's output that flush-to-zero zeroed: the op is
    split over torch's intra-op threads, so 1.0 means every thread flushes, 0.0 none."""
    rows = 4 * 32768 * max(1, torch.get_num_threads())  # several grains per thread
    # the smallest float32 subnormal, made from its bits: no conversion that FTZ could zero
    tiny = torch.ones(rows, dtype=torch.int32).view(torch.float32)
    return float(((tiny * 1.0) == 0).float().mean())


def flush_denormal_active() -> bool:
    """Whether the CPU flushes subnormals now, in the calling thread *and* every thread of
    torch's pool (probed, so a direct ``torch.set_flush_denormal`` call elsewhere is seen)."""
    return _flushed_fraction() == 1.0


def _set_in_openmp_pools(flag: bool) -> None:
    """Set flush-to-zero in every thread of the OpenMP pools already started.

    The FTZ/DAZ bits are per thread and a new thread copies them from its creator, so a pool
    started before :func:`apply` keeps the old mode (measured: half of a 2-thread op flushed).
    Each loaded OpenMP runtime (torch's, scikit-learn's; libgomp, and LLVM/Intel OpenMP through
    their GNU entry points) runs one parallel region that sets the mode in each of its threads.
    Best effort: a runtime without ``GOMP_parallel`` is skipped (:func:`apply` then warns).
    """
    import ctypes

    from threadpoolctl import threadpool_info

    body = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _: torch.set_flush_denormal(flag))
    for pool in threadpool_info():
        if pool.get("user_api") != "openmp":
            continue
        try:
            parallel = ctypes.CDLL(pool["filepath"]).GOMP_parallel
        except (OSError, AttributeError):
            continue
        parallel.argtypes = [type(body), ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        parallel.restype = None
        parallel(body, None, max(1, int(pool.get("num_threads") or 1)), 0)


def apply(numerics: CpuNumerics) -> bool:
    """Set ``numerics`` for this process: the calling thread, and the threads of the OpenMP
    pools already started (torch's intra-op pool among them).

    Call it before any tensor work where possible: a thread pool copies the floating-point mode
    of the thread that starts it, and each worker process must apply it itself. When the mode
    cannot be brought to every thread of torch's pool, a warning says so (the run is then
    partly flushed: use ``threads=1`` or set it at the start of the process).

    Returns:
        Whether the CPU supports flushing denormals (``torch.set_flush_denormal``'s answer;
        ``True`` when ``flush_denormal`` is off and nothing had to be set).
    """
    global _channels_last
    flag = numerics.flush_denormal
    supported = torch.set_flush_denormal(flag)
    _channels_last = numerics.channels_last
    if supported or not flag:
        fraction = _flushed_fraction()
        if fraction != (1.0 if flag else 0.0):
            try:
                _set_in_openmp_pools(flag)
            except Exception as err:  # a runtime we cannot drive: say so below, do not stop
                _log.debug("could not set flush-to-zero in the OpenMP pools: %s", err)
            fraction = _flushed_fraction()
        if fraction != (1.0 if flag else 0.0):
            _log.warning(
                "flush-to-zero is %s in only part of torch's threads (%.0f%% of a parallel op"
                " flushed): the thread pool started before it was set; use threads=1 or apply"
                " the numerics at the start of the process",
                "on" if flag else "off",
                100 * fraction,
            )
    return bool(supported) or not flag


def current() -> CpuNumerics:
    """The numerics in effect now (flush-to-zero probed from the CPU)."""
    return CpuNumerics(flush_denormal=flush_denormal_active(), channels_last=_channels_last)


@contextlib.contextmanager
def applied(numerics: CpuNumerics) -> Iterator[bool]:
    """:func:`apply` for the duration of a ``with`` block, then what was in effect before."""
    before = current()
    try:
        yield apply(numerics)
    finally:
        apply(before)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """The thread count of a run: ``threads``, or *auto* for ``None``.

    Auto is ``min(available cores, torch.get_num_threads())``: torch's own count (its default,
    unless the process set another) bounded by the cores this process may use, so a process
    pinned to 2 cores of a 64-core machine runs 2 threads, not 32.
    """
    if threads is None:
        return max(1, min(available_cores(), torch.get_num_threads()))
    return threads


def threads_for(cells_at_once: int, threads: int | None = None) -> int:
    """Threads per cell when ``cells_at_once`` cells run side by side.

    The cores of ``resolve_threads(threads)`` are divided evenly (rounded down, at least 1 per
    cell): 2 cells on 8 cores get 4 threads each, 3 cells on 2 cores 1 each (oversubscribed; run
    fewer at once). A sweep runs one cell at a time today, so it uses all of them.

    Raises:
        RunError: ``bad-count`` for fewer than one cell.
    """
    if isinstance(cells_at_once, bool) or not isinstance(cells_at_once, int) or cells_at_once < 1:
        raise RunError(
            "bad-count",
            f"cells_at_once must be a whole number of at least 1, got {cells_at_once!r}",
            "e.g. threads_for(2)",
        )
    return max(1, resolve_threads(threads) // cells_at_once)


#: Modules whose native thread pools (OpenMP, BLAS) the attackers use; loaded before limiting,
#: since ``threadpoolctl`` can only limit the libraries already loaded.
POOL_MODULES = ("sklearn.ensemble", "sklearn.linear_model", "sklearn.svm", "xgboost")
_pools_loaded: list[bool] = []


def _load_pools() -> None:
    import importlib
    import importlib.util

    if not _pools_loaded:
        for name in POOL_MODULES:
            root = name.split(".")[0]
            if importlib.util.find_spec(root) is not None:
                importlib.import_module(name)
        _pools_loaded.append(True)


@contextlib.contextmanager
def limit_threads(threads: int | None) -> Iterator[int]:
    """Bound torch's intra-op threads and every OpenMP/BLAS pool (scikit-learn's attackers,
    xgboost when installed, numpy) to ``resolve_threads(threads)`` inside the block; yields
    that count.

    The attackers' libraries are imported first (``POOL_MODULES``): a pool loaded after the
    limits are set would escape them. torch's count is set and left so afterwards (as
    ``torch.set_num_threads`` always was); the OpenMP/BLAS limits are restored when the block
    ends.
    """
    from threadpoolctl import threadpool_limits

    _load_pools()
    n = resolve_threads(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    with threadpool_limits(limits=n):
        yield n
