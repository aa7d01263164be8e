"""Training recipes as graphs: the original model and the retrain oracle use the same loop.

Training from scratch is itself a one-edge graph: cross-entropy of the output on a data stream
against its labels. The original model trains on all training data (``split: train``); the
retrain oracle on the retain set only (``split: retain``), with the same recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

from causalunlearn.graph import spec as S


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

    def key(self) -> str:
        """A short identifier of the recipe, used in cache file names."""
        opt, lr, wd = self.optimizer, self.lr, self.weight_decay
        return f"{opt}-lr{lr:g}-wd{wd:g}-e{self.epochs}-b{self.batch_size}"


def training_graph(split: str, recipe: Recipe) -> S.Graph:
    """The graph that trains a model from scratch on ``split`` (``train`` or ``retain``)."""
    return S.Graph(
        name=f"train-{split}",
        summary=f"cross-entropy on the {split} data ({recipe.key()})",
        nodes=(S.Node("data", "data", split=split), S.Node("Y", "output")),
        mechanisms=(("data", "Y"),),
        interventions=(
            S.Intervention(
                "fit",
                stage="train",
                data="data",
                target="Y",
                reference=S.Reference("labels", stream="data"),
                divergence=S.Divergence("cross_entropy", softmax_over="classes"),
            ),
        ),
        stages=(S.Stage("train", recipe.optimizer, recipe.lr, weight_decay=recipe.weight_decay),),
        schedule=S.Schedule(
            order=("train",), epochs=recipe.epochs, batch_size=recipe.batch_size, zip=("data",)
        ),
    )
