"""Training recipes of the original model and the retrain oracle (settings only).

Training from scratch is itself a one-edge graph (built by
:func:`causalunlearn.engine.verbs.training_graph`): cross-entropy of the output on a data
stream against its labels. The original model trains on all training data (``split: train``);
the retrain oracle on the retain set only (``split: retain``), with the same recipe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from causalunlearn.errors import RunError, did_you_mean

OPTIMIZERS = ("adam", "adamw", "sgd")
#: Learning-rate schedules: ``constant``, or ``cosine`` (per epoch, from ``lr`` towards 0).
LR_SCHEDULES = ("constant", "cosine")
#: Training-data augmentations (:mod:`causalunlearn.data.augment`).
AUGMENTATIONS = ("cifar",)


@dataclass(frozen=True)
class Recipe:
    """How a model is trained from scratch (the authors' recipe by default).

    Attributes:
        epochs: Passes over the data (official: 20).
        batch_size: Rows per step (official: 32).
        lr: Learning rate (official: Adam 1e-3); with ``lr_schedule="cosine"``, the first
            epoch's.
        weight_decay: Weight decay (official: 1e-4; coupled L2 for adam and sgd).
        optimizer: ``adam`` (official), ``adamw`` or ``sgd``.
        momentum: SGD momentum (``sgd`` only; 0: none).
        lr_schedule: ``constant`` (official) or ``cosine``: epoch ``e`` of ``E`` runs at
            ``lr · (1 + cos(π e / E)) / 2`` (cosine annealing without restarts, Loshchilov &
            Hutter 2017, stepped per epoch).
        augment: ``None`` (official) or ``cifar``: each training batch is randomly cropped back to
            its size from a 4-pixel zero-padded copy and flipped left-right with probability 1/2
            (He et al. 2016, §4.2), on the device, from a generator seeded by the training seed
            (:mod:`causalunlearn.data.augment`).
    """

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adam"
    momentum: float = 0.0
    lr_schedule: str = "constant"
    augment: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            problems.append(f"epochs must be a whole number of at least 1, got {self.epochs!r}")
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            problems.append(f"batch_size must be at least 1, got {self.batch_size!r}")
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            problems.append(f"lr must be a positive number, got {self.lr!r}")
        if not isinstance(self.weight_decay, (int, float)) or not self.weight_decay >= 0:
            problems.append(f"weight_decay must be 0 or more, got {self.weight_decay!r}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if (
            isinstance(self.momentum, bool)
            or not isinstance(self.momentum, (int, float))
            or not 0 <= self.momentum < 1
        ):
            problems.append(f"momentum must be in [0, 1), got {self.momentum!r}")
        elif self.momentum and self.optimizer != "sgd":
            problems.append(f"momentum is SGD's; optimizer {self.optimizer!r} does not use it")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.augment is not None and self.augment not in AUGMENTATIONS:
            problems.append(
                f"augment must be None or one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}"
            )
        if problems:
            raise RunError(
                "bad-recipe",
                "the training recipe of the original and the oracle: " + "; ".join(problems),
                "e.g. --epochs-original 20 (the official recipe: 20 epochs, batch 32, Adam 1e-3)",
            )

    def key(self) -> str:
        """A short identifier of the recipe, used in cache file names and study keys.

        The fields added after the first release (momentum, schedule, augmentation) appear only
        when they differ from their defaults, so the official recipe keeps its key.
        """
        opt, lr, wd = self.optimizer, self.lr, self.weight_decay
        key = f"{opt}-lr{lr:g}-wd{wd:g}-e{self.epochs}-b{self.batch_size}"
        if self.momentum:
            key += f"-m{self.momentum:g}"
        if self.lr_schedule != "constant":
            key += f"-{self.lr_schedule}"
        if self.augment:
            key += f"-aug{self.augment}"
        return key

    def document(self) -> dict[str, Any]:
        """The recipe as plain data for fingerprints: every field, except the later ones
        (momentum, schedule, augmentation) at their defaults, so that models cached before
        those fields existed keep their fingerprint."""
        doc = asdict(self)
        for name, default in _LATER_DEFAULTS.items():
            if doc[name] == default:
                del doc[name]
        return doc

    def with_epochs(self, epochs: int | None) -> Recipe:
        """This recipe with ``epochs`` passes (``None``: unchanged)."""
        return self if epochs is None else replace(self, epochs=epochs)


_LATER_DEFAULTS: dict[str, Any] = {"momentum": 0.0, "lr_schedule": "constant", "augment": None}

#: Named recipes (``--recipe NAME``). ``camu`` is the authors' recipe (the default). The CIFAR
#: recipe is the usual one for He et al.'s CIFAR ResNets, shortened with a cosine schedule so a
#: CPU can run it (docs/results.md: why these values).
RECIPES: dict[str, Recipe] = {
    "camu": Recipe(),
    "cifar": Recipe(
        epochs=20,
        batch_size=128,
        lr=0.1,
        weight_decay=5e-4,
        optimizer="sgd",
        momentum=0.9,
        lr_schedule="cosine",
        augment="cifar",
    ),
}


def recipe_named(name: str) -> Recipe:
    """The recipe registered as ``name`` in :data:`RECIPES`.

    Raises:
        RunError: ``unknown-recipe``, with a did-you-mean hint and the known names.
    """
    if name not in RECIPES:
        raise RunError(
            "unknown-recipe",
            f"no training recipe named {name!r}",
            f"{did_you_mean(str(name), list(RECIPES))} (--recipe {' | '.join(RECIPES)})",
        )
    return RECIPES[name]
