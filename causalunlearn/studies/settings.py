"""The settings of a study, declared once: every run, sweep cell and tuning candidate reads them.

:class:`StudySettings` holds what ``run``, ``compare``/``ablate`` and ``tune`` share (seeds,
model, recipe, what to measure, where data and caches live, how to run);
:class:`~causalunlearn.studies.experiment.RunSettings` adds what only a single run has
(dataset, scenario, a brought checkpoint, whether to train the oracle). Values are checked when
the object is built, so a bad setting stops before any data is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from causalunlearn.errors import RunError
from causalunlearn.numerics import CpuNumerics
from causalunlearn.recipes import Recipe

#: Relearn time: Adam (lr 1e-3, batch 32) fine-tuning on the forget rows, forget accuracy
#: measured every RELEARN_EVERY steps, until it reaches RELEARN_FRACTION × the original's;
#: censored at RELEARN_CAP steps (reported as cap + 1).
RELEARN_EVERY = 5
RELEARN_CAP = 200
RELEARN_FRACTION = 0.9
#: Forget accuracy during relearning is measured on this many forget rows (a seeded sample;
#: all of them when fewer), training still uses every forget row.
RELEARN_EVAL_ROWS = 1000

#: The relearning curve of the CaMU paper: one epoch of fine-tuning on retain data (Adam 1e-3,
#: batch 32), accuracies every CURVE_EVERY steps, at most CURVE_STEPS steps.
CURVE_EVERY = 20
CURVE_STEPS = 400
CURVE_EVAL_ROWS = 2000

EXECUTORS = ("fast", "reference")


@dataclass
class StudySettings:
    """Settings shared by every cell of a study (their :meth:`key` guards resumed cells).

    Attributes:
        seeds: Seeds; each seeds the split, the original, the unlearning and the oracle.
            Distinct integers (a repeated seed would count one run twice).
        model: Registered model (default per dataset).
        recipe: Training recipe of originals and oracles.
        attacker: Attacker of the official CaMU attack (``gbdt`` or ``xgboost``).
        relearn: Also measure relearn time (fine-tuning on the forget rows).
        curves: Also record the CaMU paper's relearning curve (fine-tuning on retain rows).
        data_root: Data root (else ``CAUSALUNLEARN_DATA_ROOT``).
        cache_dir: Cache of datasets and models (else ``CAUSALUNLEARN_CACHE``).
        device: ``cpu``, ``cuda`` or ``None`` (CUDA when present).
        threads: CPU threads for torch *and* the OpenMP/BLAS pools of scikit-learn's attackers
            (at least 1; ``None``: auto, ``min(available cores, torch's count)``, see
            :func:`causalunlearn.numerics.resolve_threads`). Small models at batch 32 gain
            nothing from intra-op threads, and on a busy machine an oversubscribed pool is many
            times slower (docs/troubleshooting.md).
        numerics: CPU numerics (:class:`~causalunlearn.numerics.CpuNumerics`: flush-to-zero,
            channels_last inference), applied at the start of a run or sweep and recorded in
            each manifest and cell; flush-to-zero is part of the cache key of trained models
            and, when on, of :meth:`key` (it changes the numbers).
        progress: Show progress bars.
        executor: ``fast`` (default) or ``reference`` (the faithful oracle); recorded in each
            cell's file, not in its identity: both compute the same numbers to 1e-5.
        log_dir: Write a TensorBoard log of every run (term values, per-epoch means, final
            metrics, the method's YAML and diagram) in
            ``log_dir/<method>/<dataset>/<scenario>/seed<S>``
            (:mod:`causalunlearn.studies.tracking`; needs ``causalunlearn[tensorboard]``); not
            part of :meth:`key`.

    Raises:
        RunError: ``no-seeds``, ``duplicate-seeds``, ``bad-seed``, ``bad-count`` (threads),
            ``bad-executor``, ``bad-numerics``, ``tensorboard-missing`` (``log_dir`` set
            without the tensorboard package).
    """

    seeds: Sequence[int] = (0, 1, 2)
    model: str | None = None
    recipe: Recipe = field(default_factory=Recipe)
    attacker: str = "gbdt"
    relearn: bool = False
    curves: bool = False
    data_root: str | None = None
    cache_dir: str | None = None
    device: str | None = None
    threads: int | None = None
    numerics: CpuNumerics = field(default_factory=CpuNumerics)
    progress: bool = True
    executor: str = "fast"
    log_dir: str | None = None

    def __post_init__(self) -> None:
        seeds = list(self.seeds)
        if not seeds:
            raise RunError("no-seeds", "no seeds given", "e.g. --seeds 0,1,2")
        bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
        if bad:
            raise RunError(
                "bad-seed",
                f"seeds are non-negative integers, got {bad[0]!r}",
                "e.g. --seeds 0,1,2",
            )
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise RunError(
                "duplicate-seeds",
                f"seed {', '.join(map(str, repeated))} is given more than once: the same run would"
                f" be counted {max(seeds.count(s) for s in repeated)} times in the mean and std",
                "give each seed once, e.g. --seeds 0,1,2",
            )
        self.seeds = tuple(seeds)
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise RunError(
                "bad-count",
                f"threads must be a whole number of at least 1, got {self.threads!r}",
                "e.g. threads=1 (or None for torch's default)",
            )
        if not isinstance(self.numerics, CpuNumerics):
            raise RunError(
                "bad-numerics",
                f"numerics is a CpuNumerics, got {type(self.numerics).__name__}",
                "e.g. numerics=CpuNumerics(flush_denormal=True)",
            )
        if self.executor not in EXECUTORS:
            raise RunError(
                "bad-executor",
                f"unknown executor {self.executor!r}",
                f"use one of {', '.join(EXECUTORS)}",
            )
        if self.log_dir is not None:
            from causalunlearn.studies.tracking import require_tensorboard

            require_tensorboard()

    def key(self) -> dict[str, Any]:
        """What a cell's numbers depend on besides the method, dataset, scenario and seed.

        Flush-to-zero joins the key only when on, so the cells and references of sweeps made
        before the setting existed (all with it off) keep their identity.
        """
        key = {
            "model": self.model,
            "recipe": self.recipe.key(),
            "attacker": self.attacker,
            "relearn": self.relearn
            and {
                "every": RELEARN_EVERY,
                "cap": RELEARN_CAP,
                "fraction": RELEARN_FRACTION,
                "eval_rows": RELEARN_EVAL_ROWS,
            },
            "curves": self.curves
            and {"every": CURVE_EVERY, "steps": CURVE_STEPS, "eval_rows": CURVE_EVAL_ROWS},
        }
        if self.numerics.flush_denormal:
            key["numerics"] = {"flush_denormal": True}
        return key
