"""Training recipes of the original model and the retrain oracle (settings only).

Training from scratch is itself a one-edge graph (built by
:func:`causalunlearn.engine.verbs.training_graph`): cross-entropy of the output on a data
stream against its labels. The original model trains on all training data (``split: train``);
the retrain oracle on the retain set only (``split: retain``), with the same recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

from causalunlearn.errors import RunError

OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class Recipe:
    """How a model is trained from scratch (the authors' recipe by default).

    Attributes:
        epochs: Passes over the data (official: 20).
        batch_size: Rows per step (official: 32).
        lr: Adam learning rate (official: 1e-3).
        weight_decay: Adam weight decay (official: 1e-4).
        optimizer: ``adam`` (official), ``adamw`` or ``sgd``.
    """

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adam"

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
        if problems:
            raise RunError(
                "bad-recipe",
                "the training recipe of the original and the oracle: " + "; ".join(problems),
                "e.g. --epochs-original 20 (the official recipe: 20 epochs, batch 32, Adam 1e-3)",
            )

    def key(self) -> str:
        """A short identifier of the recipe, used in cache file names."""
        opt, lr, wd = self.optimizer, self.lr, self.weight_decay
        return f"{opt}-lr{lr:g}-wd{wd:g}-e{self.epochs}-b{self.batch_size}"
