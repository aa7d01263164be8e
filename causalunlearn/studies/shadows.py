"""The shadow models of the U-LiRA attack (:mod:`causalunlearn.metrics.lira`), and its metrics.

Targets: every forget row (members of the model under attack) and as many held-out test rows
(non-members; all of them when there are fewer), drawn with the seed. The population is every
training and test row. Shadow ``s`` of ``S``:

1. is trained from scratch (the run's recipe, ``epochs`` from the budget) on the targets that
   are *in* it (each target is in exactly ``⌊S/2⌋`` shadows,
   :func:`~causalunlearn.metrics.lira.balanced_membership`) and on a random half of the other
   rows (the same construction);
2. then **unlearns its in-targets with the method under test** (its forget set; its retain set
   is the rest of its rows, its retain sample as large as its forget set) — U-LiRA (Hayes et al.
   2024). With ``method=None`` this step is skipped: plain LiRA, whose *in* shadows were trained
   on the target.

Each shadow's statistic on each target is the logit-scaled confidence on the target's label
(:func:`~causalunlearn.metrics.oracle_distribution.logit_margin`). The shadows' statistics are
saved with the run's outputs (``lira.*`` arrays), so a rescore recomputes the attack on any model
without training a shadow again.

**Caching.** Step 1 does not depend on the method: a trained shadow is a function of the data,
the targets (the split's forget rows and the held-out rows drawn with the seed), the membership
draw, the model, the recipe (with the budget's epochs), the shadow's seed, the numerics and the
executor. With a :class:`~causalunlearn.studies.model_cache.ModelCache` (``run``, ``compare``
and ``ablate`` always pass theirs, local and Ray workers alike) each trained shadow is stored
under a key of exactly those inputs (:meth:`~causalunlearn.studies.model_cache.ModelCache.shadow`:
the data's digests, a digest of the shadow's rows, model, recipe, seed, numerics, executor), so
every other method of the sweep, and every later sweep, reads it and only unlearns. A cached
shadow is the same module as a freshly trained one (loaded from the same state dict), so the
statistics are bit-identical either way (``tests/studies/test_shadow_cache.py``). Workers that
need the same shadows at once do not queue on one: a shadow another process is training is put
off and done after the others, by then usually cached.

Cost: ``S`` trainings on about half the data per dataset × split × seed × recipe (the first cell
that needs them; none when they are cached), plus ``S`` unlearning runs per cell (per seed and
method). Without a cache (``cache=None``) every call trains its ``S`` shadows. Only random
removal is attacked: under class removal every forget row shares the forgotten label, so
per-example membership says nothing that accuracy does not.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from causalunlearn.data import TensorData
from causalunlearn.data.splits import Split
from causalunlearn.engine.verbs import train_from_scratch
from causalunlearn.errors import RunError
from causalunlearn.methods.dispatch import Method, unlearn_with
from causalunlearn.metrics.accuracy import predict
from causalunlearn.metrics.lira import balanced_membership, lira_attack
from causalunlearn.metrics.oracle_distribution import logit_margin
from causalunlearn.recipes import Recipe
from causalunlearn.studies.model_cache import ModelCache

_log = logging.getLogger(__name__)

#: Shadow ``s`` of seed ``seed`` trains and unlearns with seed ``SHADOW_SEED_BASE + 1000·seed + s``
#: (never a seed the run's own models use for small seeds).
SHADOW_SEED_BASE = 500_000


@dataclass(frozen=True)
class LiraBudget:
    """What the attack may spend.

    Attributes:
        shadows: Shadow models (≥ 4; 64 is the full attack of Carlini et al.).
        epochs: Training epochs of each shadow (``None``: the recipe's).
    """

    shadows: int = 64
    epochs: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.shadows, bool) or not isinstance(self.shadows, int) or self.shadows < 4:
            raise RunError(
                "bad-count",
                f"LiRA needs at least 4 shadow models, got {self.shadows!r}",
                "e.g. --lira-shadows 64 (the full attack) or 16 (a reduced budget)",
            )
        if self.epochs is not None and (
            isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1
        ):
            raise RunError(
                "bad-count",
                f"shadow epochs must be a whole number of at least 1, got {self.epochs!r}",
                "e.g. --lira-epochs 5, or leave it out for the recipe's epochs",
            )


@dataclass
class ShadowStats:
    """The shadows' statistics on the targets (members first, then non-members).

    Attributes:
        forget_rows: Training indices of the member targets (the split's forget rows).
        test_rows: Test indices of the non-member targets.
        margins: ``S×T`` logit-scaled confidences (float32).
        inside: ``S×T`` membership (target trained on, and unlearned when ``unlearned``).
        unlearned: Whether the shadows unlearned their in-targets (U-LiRA) or not (LiRA).
        seconds: Time spent on the shadows.
        trained: How many shadows this call trained (the others were read from the model
            cache); not saved with the arrays.
    """

    forget_rows: np.ndarray
    test_rows: np.ndarray
    margins: np.ndarray
    inside: np.ndarray
    unlearned: bool
    seconds: float = 0.0
    trained: int = 0

    def arrays(self) -> dict[str, np.ndarray]:
        """The ``lira.*`` arrays of an outputs archive."""
        return {
            "lira.forget_rows": self.forget_rows.astype(np.int64),
            "lira.test_rows": self.test_rows.astype(np.int64),
            "lira.margins": self.margins.astype(np.float32),
            "lira.in": self.inside.astype(bool),
            "lira.unlearned": np.array(self.unlearned),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ShadowStats | None:
        """The statistics saved in an outputs archive, or ``None`` when it has none."""
        if "lira.margins" not in arrays:
            return None
        return cls(
            arrays["lira.forget_rows"],
            arrays["lira.test_rows"],
            arrays["lira.margins"],
            arrays["lira.in"].astype(bool),
            bool(arrays["lira.unlearned"]),
        )


def attackable(split: Split) -> bool:
    """Whether the split is one the attack applies to (no whole class removed)."""
    return not split.forgotten_classes


def shadow_statistics(
    method: Method | None,
    data: TensorData,
    split: Split,
    *,
    model: str,
    recipe: Recipe,
    budget: LiraBudget,
    seed: int,
    device: torch.device,
    executor: str = "fast",
    cache: ModelCache | None = None,
) -> ShadowStats:
    """Train (and with ``method``, unlearn) the shadows; return their statistics.

    With ``cache`` the trained shadows are read from it, or trained and written to it on a miss
    (see the module docstring); the unlearning always runs. The statistics do not depend on
    whether a shadow was cached, nor on the order the shadows are done in (each seeds itself).
    """
    start = time.perf_counter()
    rng = np.random.default_rng(SHADOW_SEED_BASE + seed)
    n_train = len(data.train_y)
    forget = np.asarray(split.forget, dtype=np.int64)
    n_held = min(len(forget), len(data.test_y))
    test_rows = np.sort(rng.choice(len(data.test_y), size=n_held, replace=False))
    targets = np.concatenate([forget, n_train + test_rows])  # population indices
    is_target = np.zeros(n_train + len(data.test_y), dtype=bool)
    is_target[targets] = True
    others = np.flatnonzero(~is_target)
    inside = balanced_membership(budget.shadows, len(targets), seed=seed)
    others_in = balanced_membership(budget.shadows, len(others), seed=seed + 1)
    pop_x = torch.cat([data.train_x, data.test_x])
    pop_y = torch.cat([data.train_y, data.test_y])
    target_x, target_y = pop_x[targets], pop_y[targets]
    recipe = recipe if budget.epochs is None else dataclasses.replace(recipe, epochs=budget.epochs)
    margins = np.empty((budget.shadows, len(targets)), dtype=np.float32)
    trained = done = 0

    def one(s: int, wait: bool) -> bool:
        """Shadow ``s``'s row of ``margins``; ``False`` (nothing done) when another process is
        training it and ``wait`` is false."""
        nonlocal trained, done
        shadow_seed = SHADOW_SEED_BASE + 1000 * seed + s
        rows = np.concatenate([targets[inside[s]], others[others_in[s]]])
        local_forget = np.arange(int(inside[s].sum()))  # the in-targets come first
        local_retain = np.arange(len(local_forget), len(rows))
        draw = np.random.default_rng(shadow_seed)
        shadow_split = Split(
            scenario="indices:lira-shadow",
            seed=shadow_seed,
            forget=local_forget,
            retain=local_retain,
            retain_sample=draw.choice(local_retain, size=len(local_forget), replace=False),
            num_train=len(rows),
        )
        rows_t = torch.as_tensor(rows)
        shadow_data = TensorData(
            name=data.name,
            train_x=pop_x[rows_t],
            train_y=pop_y[rows_t],
            test_x=data.test_x,
            test_y=data.test_y,
            classes=data.classes,
            mean=data.mean,
            std=data.std,
            source=f"LiRA shadow {s} of {data.name}",
        )

        def train() -> torch.nn.Module:
            # Built-in models draw nothing from torch's global generator while training; a
            # plugin's dropout would, so it is seeded: the shadow is a function of its key.
            torch.manual_seed(shadow_seed)
            return train_from_scratch(
                shadow_data,
                shadow_split,
                "train",
                model=model,
                recipe=recipe,
                seed=shadow_seed,
                device=device,
                progress=False,
                executor=executor,
            )[0]

        if cache is None:
            net, was_trained = train(), True
        else:
            found = cache.shadow(
                data,
                rows,
                model=model,
                recipe=recipe,
                seed=shadow_seed,
                device=device,
                executor=executor,
                train=train,
                wait=wait,
            )
            if found is None:
                return False
            net, was_trained = found[0], not found[1]["cached"]
        trained += was_trained
        if method is not None:
            torch.manual_seed(shadow_seed)
            net = unlearn_with(
                method,
                net,
                shadow_data,
                shadow_split,
                seed=shadow_seed,
                device=device,
                progress=False,
                executor=executor,
            ).model
        margins[s] = logit_margin(predict(net, target_x, device=device).cpu(), target_y)
        done += 1
        if done % 16 == 0:
            _log.info(
                "LiRA shadows: %d/%d, %.1f s", done, budget.shadows, time.perf_counter() - start
            )
        return True

    # A shadow that another process (a parallel cell of the sweep) is training is put off, not
    # waited for: both processes train different shadows meanwhile, then read each other's.
    put_off = [s for s in range(budget.shadows) if not one(s, wait=cache is None)]
    for s in put_off:
        one(s, wait=True)
    _log.info("LiRA shadows: %d trained, %d from the cache", trained, budget.shadows - trained)
    return ShadowStats(
        forget,
        test_rows,
        margins,
        inside,
        method is not None,
        time.perf_counter() - start,
        trained,
    )


def reference_lira(details: dict[str, Any]) -> dict[str, float]:
    """A reference model's (the original's, the oracle's) ``lira_auc`` and ``lira_tpr_1fpr``
    from its details in a cell's ``extra["lira"]``: scored against *that cell's* shadows, which
    unlearned with the cell's method, so each cell has its own."""
    return {"lira_auc": details["auc"], "lira_tpr_1fpr": details["tpr_at_1fpr"]}


def lira_metrics(
    stats: ShadowStats, logits_train: Any, logits_test: Any, train_y: Any, test_y: Any
) -> tuple[dict[str, float], dict[str, Any]]:
    """``({"lira_auc", "lira_tpr_1fpr"}, details)`` of the model whose logits on every training
    and test row (dataset order) are given, against the shadows."""
    forget = torch.as_tensor(stats.forget_rows.copy())
    held = torch.as_tensor(stats.test_rows.copy())
    phi = np.concatenate(
        [
            logit_margin(torch.as_tensor(logits_train)[forget], torch.as_tensor(train_y)[forget]),
            logit_margin(torch.as_tensor(logits_test)[held], torch.as_tensor(test_y)[held]),
        ]
    )
    member = np.r_[np.ones(len(forget), bool), np.zeros(len(held), bool)]
    result = lira_attack(phi, stats.margins, stats.inside, member)
    details = {**result.as_dict(), "unlearned_shadows": stats.unlearned}
    return {"lira_auc": result.auc, "lira_tpr_1fpr": result.tpr_at_low_fpr}, details
