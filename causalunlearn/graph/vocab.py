"""The graph format's vocabulary: names (and parameters) of divergences, references, do-ops.

The graph layer validates a graph against these registries; it never needs the torch side
imported to know the built-in names. The compiler registers what each name *does*
(:mod:`causalunlearn.compile.divergences`, ``references``, ``materialise``) in
:class:`~causalunlearn.registry.Implementations` keyed by these names, and registering an
implementation under a new name declares the name here too: a user's new divergence, reference
kind or do-operation is one call (``register_divergence``, ``register_reference``,
``register_do_op``), and whether a graph validates does not depend on which modules were
imported before, only on which registrations were made.

Nothing here is ever rebound: each registry is one object for the life of the process
(``causalunlearn.graph.spec.DIVERGENCE_KINDS`` and friends are the same objects).

This module imports nothing from torch, nor from the rest of the graph layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from causalunlearn.errors import CausalUnlearnError
from causalunlearn.plugins import IMPORT_HINT
from causalunlearn.registry import Registry


@dataclass(frozen=True)
class Term:
    """A divergence or reference kind a graph may name.

    Attributes:
        name: The name (``divergence: {kind: <name>}``, ``reference: {<name>: stream}``).
        doc: One line on what it means (not compared: two declarations that differ only in
            their doc are the same).
    """

    name: str
    doc: str = field(default="", compare=False)


class DoParam(NamedTuple):
    """One parameter of a do-operation: its type, default and allowed values (``None``: any)."""

    kind: type
    default: Any
    choices: tuple[Any, ...] | None = None


_PARAM_KINDS = (str, int, float, bool)


@dataclass(frozen=True)
class DoOpSchema:
    """A do-operation a derived data node may carry, with its parameters.

    Attributes:
        name: The name (``do: [{op: <name>, ...}]``).
        params: Parameter name → :class:`DoParam` (type, default, allowed values).
        doc: One line on what it does (not compared).
    """

    name: str
    params: Mapping[str, DoParam] = field(default_factory=dict)
    doc: str = field(default="", compare=False)

    @classmethod
    def of(cls, name: str, params: Mapping[str, tuple[Any, ...]], doc: str = "") -> DoOpSchema:
        """A schema from plain ``(type, default[, allowed values])`` tuples (checked)."""
        return cls(name, params, doc)  # type: ignore[arg-type]  # __post_init__ converts them

    def __post_init__(self) -> None:
        params: dict[str, DoParam] = {}
        for pname, raw in dict(self.params).items():
            spec: DoParam | None
            try:
                spec = DoParam(*raw)
            except TypeError:
                spec = None
            if spec is None or spec.kind not in _PARAM_KINDS or not isinstance(pname, str):
                raise CausalUnlearnError(
                    "invalid-op-params",
                    f"parameter {pname!r} of do-operation '{self.name}' is not"
                    " (type, default[, allowed values]) with a type among str, int, float, bool",
                    "declare it as e.g. {'scale': (float, 0.1)}",
                )
            params[pname] = spec
        object.__setattr__(self, "params", params)

    def default(self, param: str) -> Any:
        """The default of parameter ``param``."""
        return self.params[param].default


def _names_hint(kind: str, function: str) -> str:
    return (
        f"register your own {kind} with causalunlearn.{function} (see docs/extending.md);"
        f" {IMPORT_HINT}"
    )


#: Divergence kinds (``divergence: {kind: ...}``), in the order they were declared.
DIVERGENCES: Registry[Term] = Registry(
    "divergence", hint=_names_hint("divergence", "register_divergence")
)
#: Reference kinds (``reference: {<kind>: stream}``), in the order they were declared.
REFERENCES: Registry[Term] = Registry(
    "reference", label="reference kind", hint=_names_hint("reference", "register_reference")
)
#: Do-operations (``do: [{op: ...}]``) with their parameters, in the order they were declared.
DO_OPS: Registry[DoOpSchema] = Registry(
    "op", label="do-operation", hint=_names_hint("do-operation", "register_do_op")
)

for _name, _doc in (
    ("kl", "Kullback-Leibler divergence between softmax distributions"),
    ("cross_entropy", "cross-entropy of the model's softmax against labels or a distribution"),
    ("mse", "squared error between the model value and the reference"),
    ("l1", "l1 norm of the target (the model's parameters)"),
):
    DIVERGENCES.register(_name, Term(_name, _doc))

for _name, _doc in (
    ("original", "the frozen original model f0 on the reference rows"),
    ("labels", "the labels of the reference stream's rows"),
    ("random_model", "a frozen randomly initialised copy of the model"),
    ("distribution", "a fixed distribution over the target's axis"),
):
    REFERENCES.register(_name, Term(_name, _doc))

DO_OPS.register(
    "add_noise",
    DoOpSchema(
        "add_noise",
        {
            "dist": DoParam(str, "uniform", ("uniform", "gaussian")),
            "low": DoParam(float, 0.0),
            "high": DoParam(float, 1.0),
            "std": DoParam(float, 1.0),
            "space": DoParam(str, "model_input", ("model_input",)),
            "clip": DoParam(bool, False),
        },
        "add uniform or Gaussian noise to the inputs",
    ),
)
DO_OPS.register(
    "relabel",
    DoOpSchema(
        "relabel",
        {
            "avoid": DoParam(str, "paired_label", ("paired_label", "own_label", "none")),
            "draw": DoParam(str, "uniform_other_classes", ("uniform_other_classes", "uniform")),
        },
        "relabel rows away from an avoided label",
    ),
)
DO_OPS.register(
    "adversarial",
    DoOpSchema(
        "adversarial",
        {
            "model": DoParam(str, "original", ("original",)),
            "attack": DoParam(str, "fgsm", ("fgsm", "pgd")),
            "eps": DoParam(float, 0.1),
            "steps": DoParam(int, 1),
            "step_size": DoParam(float, 0.1),
            "label": DoParam(str, "prediction", ("prediction",)),
        },
        "FGSM/PGD away from the label on the frozen original model",
    ),
)
del _name, _doc


def first_line(doc: str | None) -> str:
    """The first line of a docstring (empty without one): a declared name's ``doc``."""
    return (doc or "").strip().split("\n", 1)[0]
