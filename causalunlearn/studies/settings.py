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
from causalunlearn.studies.seeds import (
    LEVELS,
    NESTED_FIELDS,
    NESTED_FLAGS,
    CellSeeds,
    check_seed_list,
    nested_cells,
)

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
        seeds: Paired seeds (default ``(0, 1, 2)``): each seeds the split, the original, the
            unlearning and the oracle of one cell. Distinct integers (a repeated seed would
            count one run twice).
        train_seeds: Nested seeds instead (docs/sweeps.md, "Seed protocol"): the training
            seeds of the originals (and oracles). Giving any of the three nested lists makes
            the cells their cross product (:meth:`cell_seeds`); a list left ``None`` is
            ``(0,)``, and ``seeds`` is then ``()``. Not with ``seeds``.
        split_seeds: Nested: the seeds of the forget/retain split (and retain sample).
        unlearn_seeds: Nested: the seeds of the unlearning runs, for every original and split.
        model: Registered model (default per dataset).
        recipe: Training recipe of originals and oracles.
        attacker: Attacker of the official CaMU attack (``gbdt`` or ``xgboost``).
        relearn: Also measure relearn time (fine-tuning on the forget rows).
        curves: Also record the CaMU paper's relearning curve (fine-tuning on retain rows).
        probe: Also run the representation probe on every model (``probe_acc``: can a linear
            probe read the forgotten class, or membership, from the representation?) and on a
            randomly initialised network of the same architecture, the floor
            (:mod:`causalunlearn.metrics.probe`). Costs one forward pass over at most
            2 × 2,000 rows and two small logistic regressions per model.
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
        oracles: Retrain oracles per split (``K``; default 1). From 3 on, every model also gets
            ``oracle_margin_z`` (its correct-class margins against the distribution of oracles
            ``1..K−1``), and a run of several seeds (or a sweep method's finished cells) on
            the same forget rows with ≥ 8 distinct oracles the KLoM-style ``oracle_klom``
            (:mod:`causalunlearn.studies.oracles`). Costs K − 1 more oracle trainings per retain
            set (cached, shared across split seeds with the same retain set).
        lira_shadows: Shadow models of the U-LiRA attack (0: off, the default; at least 4; 64
            is the full attack): ``lira_auc`` and ``lira_tpr_1fpr`` for random removal
            (:mod:`causalunlearn.studies.shadows`). Costs that many trainings and unlearning
            runs per cell.
        lira_epochs: Training epochs of each shadow (``None``: the recipe's).

    Raises:
        RunError: ``no-seeds``, ``duplicate-seeds``, ``bad-seed`` (of any seed list),
            ``mixed-seeds`` (``seeds`` and nested seeds together), ``bad-count`` (threads),
            ``bad-executor``, ``bad-numerics``, ``tensorboard-missing`` (``log_dir`` set
            without the tensorboard package).
    """

    seeds: Sequence[int] | None = None
    train_seeds: Sequence[int] | None = None
    split_seeds: Sequence[int] | None = None
    unlearn_seeds: Sequence[int] | None = None
    model: str | None = None
    recipe: Recipe = field(default_factory=Recipe)
    attacker: str = "gbdt"
    relearn: bool = False
    curves: bool = False
    probe: bool = False
    data_root: str | None = None
    cache_dir: str | None = None
    device: str | None = None
    threads: int | None = None
    numerics: CpuNumerics = field(default_factory=CpuNumerics)
    progress: bool = True
    executor: str = "fast"
    log_dir: str | None = None
    oracles: int = 1
    lira_shadows: int = 0
    lira_epochs: int | None = None

    def __post_init__(self) -> None:
        self._check_seeds()
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
        for name, low in (("oracles", 1), ("lira_shadows", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise RunError(
                    "bad-count",
                    f"{name} must be a whole number of at least {low}, got {value!r}",
                    "e.g. oracles=3 (--oracles 3), lira_shadows=64 (--lira-shadows 64)",
                )
        if self.lira_shadows:
            from causalunlearn.studies.shadows import LiraBudget

            LiraBudget(self.lira_shadows, self.lira_epochs)  # bad-count for 1..3 or bad epochs
        if self.log_dir is not None:
            from causalunlearn.studies.tracking import require_tensorboard

            require_tensorboard()

    def _check_seeds(self) -> None:
        given = [level for level in LEVELS if getattr(self, NESTED_FIELDS[level]) is not None]
        if not given:
            self.seeds = check_seed_list(
                (0, 1, 2) if self.seeds is None else self.seeds, "seeds", "--seeds 0,1,2"
            )
            return
        # ``seeds=()`` is what a nested settings object holds (dataclasses.replace passes it on)
        if self.seeds is not None and self.seeds not in ((), []):
            fields = ", ".join(NESTED_FIELDS[level] for level in given)
            raise RunError(
                "mixed-seeds",
                f"seeds {self.seeds!r} and {fields} are both given: seeds makes paired"
                " cells (one seed for training, split and unlearning), the nested seeds set"
                " each of the three on its own",
                "give either --seeds 0,1,2 alone or --train-seeds / --split-seeds /"
                " --unlearn-seeds (an unset one is 0), not both (in a sweep file: seeds or"
                " train_seeds / split_seeds / unlearn_seeds); causalunlearn run takes --seeds"
                " only",
            )
        for level in LEVELS:
            name = NESTED_FIELDS[level]
            value = getattr(self, name)
            setattr(
                self,
                name,
                (0,)
                if value is None
                else check_seed_list(value, name, f"{NESTED_FLAGS[level]} 0,1,2"),
            )
        self.seeds = ()

    @property
    def nested(self) -> bool:
        """Whether the cells come from nested seeds (else from the paired ``seeds``)."""
        return self.train_seeds is not None

    def cell_seeds(self) -> tuple[CellSeeds, ...]:
        """The seeds of every cell: ``CellSeeds(s, s, s)`` per paired seed, or the cross product
        of the nested seeds, training seed outermost."""
        if self.train_seeds is None or self.split_seeds is None or self.unlearn_seeds is None:
            return tuple(CellSeeds.same(s) for s in self.seeds or ())
        return nested_cells(self.train_seeds, self.split_seeds, self.unlearn_seeds)

    def seed_plan(self) -> dict[str, list[int]]:
        """The seeds as ``sweep.json`` records them: ``seeds``, or the three nested lists."""
        if not self.nested:
            return {"seeds": list(self.seeds or ())}
        return {NESTED_FIELDS[level]: list(getattr(self, NESTED_FIELDS[level])) for level in LEVELS}

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
        if self.probe:  # joins the key only when on, as flush-to-zero: older cells keep theirs
            from causalunlearn.metrics.probe import PROBE_MAX_PER_SIDE

            key["probe"] = {"rows_per_side": PROBE_MAX_PER_SIDE, "layer": "representation"}
        # Like flush-to-zero, the evaluation options join the key only when on, so cells made
        # before they existed keep their identity.
        if self.oracles > 1:
            key["oracles"] = self.oracles
        if self.lira_shadows:
            key["lira"] = {"shadows": self.lira_shadows, "epochs": self.lira_epochs}
        return key
