"""The ray backend: a sweep's tasks as Ray tasks (the only module that imports ray).

- **Where.** With no address, the Ray instance this process already started (``ray.init``), or
  a new one on this machine's cores, shut down when the sweep ends; with an address, that
  cluster (left running). Workers must import the same causalunlearn (and the user's
  ``--import`` modules, loaded again in each worker) and see the model cache folder: on a
  cluster, a shared folder (NFS), docs/scaling.md.
- **Resources.** Each task reserves ``cpus_per_cell`` CPUs and ``gpus_per_cell`` GPUs (Ray's
  ``num_cpus`` / ``num_gpus``: fractions pack several cells on one GPU), and the driver keeps at
  most ``workers`` tasks out at once.
- **Faults.** A worker that dies (killed, out of memory, a lost node) has its task run again, up
  to :data:`MAX_RETRIES` times (Ray's ``max_retries``; a task is a pure function of its inputs,
  so the retry computes the same numbers). An error of the task itself (bad input, a diverged
  method: data in its outcome) is never retried. Ctrl-C, or any error, cancels the tasks still
  out (their workers are killed).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from causalunlearn.errors import RunError
from causalunlearn.numerics import available_cores
from causalunlearn.studies.backends import Backend, ray_missing
from causalunlearn.studies.backends.tasks import Job, Outcome, cell_task, model_task, reference_task

try:
    import ray
except ImportError:  # the Backend check says so first; this is for a direct import
    ray = None

#: Times a task is run again after its worker died.
MAX_RETRIES = 3
_log = logging.getLogger(__name__)


def _where(out: Outcome) -> Outcome:
    out.worker["node"] = ray.get_runtime_context().get_node_id()
    return out


# One Ray function per kind, so a worker's process title (``ray::unlearn_cell``) and Ray's
# tools name what it runs.
def train_model(job: Job, *args: Any) -> Outcome:
    """:func:`~causalunlearn.studies.backends.tasks.model_task` on a worker."""
    return _where(model_task(job, *args))


def score_references(job: Job, *args: Any) -> Outcome:
    """:func:`~causalunlearn.studies.backends.tasks.reference_task` on a worker."""
    return _where(reference_task(job, *args))


def unlearn_cell(job: Job, *args: Any) -> Outcome:
    """:func:`~causalunlearn.studies.backends.tasks.cell_task` on a worker."""
    return _where(cell_task(job, *args))


_FUNCTIONS = {"model": train_model, "reference": score_references, "cell": unlearn_cell}


class RayPool:
    """Tasks on Ray (see the module docstring).

    Args:
        backend: The ray backend's settings.
        job: What every task shares (put in Ray's object store once).
        cells: Cells of the sweep (a Ray instance started here gets no more CPUs than they use).
    """

    def __init__(self, backend: Backend, job: Job, *, cells: int) -> None:
        if ray is None:
            raise ray_missing()
        self.started = False
        cpus = backend.cpus(job.threads)
        self.slots = backend.slots(job.threads)
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            if backend.address is not None:
                ray.init(address=backend.address, **options)
            else:
                slots = min(self.slots or 1, max(1, cells))
                num_cpus = max(available_cores(), math.ceil(slots * cpus))
                # "local": a new instance, never a cluster that happens to run on this machine
                ray.init(address="local", num_cpus=num_cpus, **options)
            self.started = True
        if backend.address is None and self.slots is not None:
            cores = available_cores()
            if self.slots * job.threads > cores:
                _log.warning(
                    "%d workers × %d threads on %d cores: oversubscribed, every cell runs"
                    " slower; use fewer --workers or --threads",
                    self.slots,
                    job.threads,
                    cores,
                )
        self.job = ray.put(job)
        self.remote = {
            kind: ray.remote(fn).options(
                num_cpus=cpus,
                num_gpus=backend.gpus_per_cell,
                max_retries=MAX_RETRIES,
                retry_exceptions=False,
            )
            for kind, fn in _FUNCTIONS.items()
        }

    def submit(self, kind: str, *args: Any) -> Any:
        return self.remote[kind].remote(self.job, *args)

    def wait(self, handles: list[Any]) -> tuple[Any, Outcome]:
        done, _ = ray.wait(handles, num_returns=1)
        try:
            return done[0], ray.get(done[0])
        except ray.exceptions.RayTaskError:
            raise  # an unexpected exception in causalunlearn's own code: a bug, shown as one
        except ray.exceptions.RayError as err:
            raise RunError(
                "worker-lost",
                f"a Ray worker was lost {MAX_RETRIES + 1} times running one task"
                f" ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})",
                "see the Ray logs (/tmp/ray/session_latest/logs on the node); out of memory?"
                " give fewer --workers, or more memory per task; finished cells are kept: rerun"
                " to resume",
            ) from None

    def cancel(self, handles: list[Any]) -> None:
        if self.started:  # close() shuts this Ray down, its workers with it
            return
        # On a cluster the workers stay: the tasks get a KeyboardInterrupt. (Forced cancels, which
        # kill the workers, can crash the driver when a task finishes at the same moment.)
        for handle in handles:
            try:
                ray.cancel(handle, force=False)
            except Exception as err:  # noqa: BLE001 - a task that just finished: nothing to stop
                _log.debug("could not cancel a Ray task: %s", err)

    def close(self) -> None:
        if self.started:
            ray.shutdown()
