"""Typed keys of a compiled objective: which model runs, and on which materialised rows.

A forward of a compiled graph is named by a pair of keys:

- :class:`ModelKey`: the model being unlearned (:data:`MODEL`, f_θ), the frozen original
  (:data:`ORIGINAL`, f₀) or a frozen randomly initialised copy (``ModelKey.random(seed)``, a
  ``random_model`` reference's ``seed``);
- :class:`StreamKey`: the rows of one data node (``StreamKey("forget")``), or the rows of a
  paired reference stream permuted into another stream's row order
  (``StreamKey("retain_sample", aligned_to="forget")``: row i belongs with row i of ``forget``).

Both are small frozen values (hashable, compared by value), so they key dictionaries of rows,
batches, cached forwards and precomputed tables without any string to build or parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ModelRole = Literal["model", "original", "random"]


@dataclass(frozen=True)
class ModelKey:
    """Which model of a compiled objective runs a forward.

    Attributes:
        role: ``model`` (trained, with gradients), ``original`` (frozen f₀) or ``random``
            (a frozen randomly initialised copy).
        seed: The ``random_model`` reference's seed (``random`` only; ``None`` otherwise).
    """

    role: ModelRole
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.role not in ("model", "original", "random"):
            raise ValueError(f"ModelKey role must be model, original or random, not {self.role!r}")
        if (self.role == "random") != (self.seed is not None):
            raise ValueError(
                "a random ModelKey needs a seed (ModelKey.random(seed)); the others take none"
            )

    @classmethod
    def random(cls, seed: int) -> ModelKey:
        """The key of the frozen random model of a ``random_model`` reference with ``seed``."""
        return cls("random", int(seed))

    @property
    def frozen(self) -> bool:
        """Whether the model is frozen (eval mode, no gradients): every model but :data:`MODEL`."""
        return self.role != "model"

    @property
    def name(self) -> str:
        """The model's name as a module name (``nn.ModuleDict`` key, log and plan text)."""
        return self.role if self.seed is None else f"{self.role}_{self.seed}"

    def __str__(self) -> str:
        return self.name


#: The model being unlearned (f_θ).
MODEL = ModelKey("model")
#: The frozen original model (f₀).
ORIGINAL = ModelKey("original")


@dataclass(frozen=True)
class StreamKey:
    """Which materialised rows a forward reads.

    Attributes:
        node: The data node whose rows these are.
        aligned_to: ``None`` for the node's own rows; else the data node whose row order the
            rows were permuted into (a paired reference across two streams).
    """

    node: str
    aligned_to: str | None = None

    @property
    def group_member(self) -> str:
        """The node whose row group (zip stream) these rows travel with."""
        return self.aligned_to if self.aligned_to is not None else self.node

    def __str__(self) -> str:
        if self.aligned_to is None:
            return self.node
        return f"{self.node} (aligned to {self.aligned_to})"
