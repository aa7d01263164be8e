"""The graph format's field table: how every field of every spec class is read and checked.

:data:`TABLE` holds one line per field of each spec dataclass (type, allowed values, bounds,
whether the YAML reader requires it); the default is the dataclass's own, filled in here. Every
part of the package that needs a field's type, default, allowed values or bounds reads it here:

- the YAML reader (:mod:`~causalunlearn.graph.parse`): types, defaults, allowed values, the keys a
  mapping may hold and the ones it must hold;
- the value checks of graphs built in Python (:func:`~causalunlearn.graph.validate.check_graph`)
  and the bounds of the semantic checks (``lr > 0``, ``keep`` in (0, 1]);
- :func:`~causalunlearn.graph.parse.graph_to_dict`, which leaves out fields at their default;
- the parameters of do-operations (:func:`do_fields`, from
  :data:`~causalunlearn.graph.vocab.DO_OPS`) and of non-training methods
  (:class:`~causalunlearn.methods.registry.Param` is a :class:`Field`);
- ``tests/test_docs.py``: every field here is documented in ``docs/graph-format.md``.

Adding a stage field is one line in :class:`~causalunlearn.graph.spec.Stage` and one line in
:data:`TABLE`; importing this module fails when the two disagree. This module does not import
torch.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any

from causalunlearn.graph import spec as S
from causalunlearn.graph import vocab
from causalunlearn.registry import Registry

#: ``Field.kind`` of a list of names (``zip: [forget, retain]``): a tuple of str in Python.
NAMES = "names"
#: ``Field.kind`` of a tuple of spec objects (a graph's nodes, a node's do-operations).
ITEMS = "items"


class _Required:
    """The type of :data:`REQUIRED`."""

    def __repr__(self) -> str:
        return "REQUIRED"


#: ``Field.default`` of a field without one.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Issue:
    """What is wrong with one value: ``what`` is ``type``, ``non-finite``, ``choice``, ``bound``
    or ``empty`` (``None`` where a value is needed); :attr:`code` is the problem code."""

    what: str
    field: Field

    @property
    def code(self) -> str:
        """The problem code (``wrong-type``, ``non-finite`` or ``bad-value``)."""
        return {"type": "wrong-type", "non-finite": "non-finite"}.get(self.what, "bad-value")


@dataclass(frozen=True)
class Field:
    """How one field (or method parameter) is read and checked.

    Attributes:
        kind: ``str``, ``int``, ``float`` (accepts an int), ``bool`` (never a number),
            :data:`NAMES` (a list of names), a spec class (a nested mapping) or :data:`ITEMS`
            (a collection of spec objects).
        default: The value when the field is not given (for a spec field: the dataclass's).
        doc: What it means (shown in method errors and docs).
        optional: ``None`` is a valid value (a Python-built graph, a method parameter).
        minimum: Smallest valid number (inclusive), if any.
        exclusive_minimum: ``minimum`` itself is not valid.
        choices: The valid values: a tuple, the name of a tuple in
            :mod:`~causalunlearn.graph.spec`, or a live registry of
            :mod:`~causalunlearn.graph.vocab` (read when checking, so a kind registered later
            counts).
        maximum: Largest valid number (inclusive), if any.
        finite: Floats must be finite (every float of the graph format).
        required: The YAML reader reports a missing key (``missing-field``).
        read_default: What the YAML reader fills in for a missing key, where that differs from
            ``default`` (a representation node's ``layer``: the model's declared one).
        node_kinds: For node fields: the node kinds that take the field (``None``: every kind).
    """

    kind: Any
    default: Any = REQUIRED
    doc: str = ""
    optional: bool = False
    minimum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[Any, ...] | str | Registry[Any] | None = None
    maximum: float | None = None
    finite: bool = False
    required: bool = False
    read_default: Any = REQUIRED
    node_kinds: tuple[str, ...] | None = None

    @property
    def allowed(self) -> tuple[Any, ...] | Registry[Any] | None:
        """The valid values now (``None``: any value of the right type)."""
        if isinstance(self.choices, str):
            return getattr(S, self.choices)
        return self.choices

    @property
    def missing_value(self) -> Any:
        """What a reader uses for a key that is not given (``None`` for a required field)."""
        if self.read_default is not REQUIRED:
            return self.read_default
        return None if self.default is REQUIRED else self.default

    def type_name(self) -> str:
        """The expected type in words (``float``, ``Mask``, ``list of names``)."""
        if self.kind == NAMES:
            return "list of names"
        if self.kind == ITEMS:
            return "tuple"
        return getattr(self.kind, "__name__", str(self.kind))

    def convert(self, value: Any) -> tuple[Any, Issue | None]:
        """A non-``None`` scalar converted to :attr:`kind` (an int read as a float), or the issue.

        Checks, in order: type, finiteness, allowed values. Bounds are :meth:`bound_issue`.
        """
        kind = self.kind
        number = kind in (int, float)
        ok = isinstance(value, kind) and not (number and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            return value, Issue("type", self)
        if kind is float and self.finite and not math.isfinite(value):
            return value, Issue("non-finite", self)
        allowed = self.allowed
        if allowed is not None and value not in allowed:
            return value, Issue("choice", self)
        return value, None

    def bound_issue(self, value: Any) -> Issue | None:
        """The issue when a number is outside :attr:`minimum` / :attr:`maximum` (else ``None``)."""
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        low, high = self.minimum, self.maximum
        below = low is not None and (value < low or (self.exclusive_minimum and value == low))
        above = high is not None and value > high
        return Issue("bound", self) if below or above else None

    def bound_text(self) -> str:
        """The valid range in words: ``> 0``, ``>= 1``, ``in (0, 1]``."""
        low = "(" if self.exclusive_minimum else "["
        if self.minimum is not None and self.maximum is not None:
            return f"in {low}{self.minimum:g}, {self.maximum:g}]"
        if self.minimum is not None:
            return f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}"
        return f"<= {self.maximum:g}" if self.maximum is not None else "any number"


def _f(kind: Any, **settings: Any) -> Field:
    return Field(kind, **settings)


_DATA = ("data",)

#: The field table: spec class → field → how it is read and checked (defaults filled in below
#: from the dataclasses). A section's keys are listed in the order the YAML reader names them.
TABLE: dict[type, dict[str, Field]] = {
    S.Graph: {
        "format": _f(str, required=True),
        "name": _f(str, required=True),
        "summary": _f(str),
        "citation": _f(S.Citation, optional=True),
        "nodes": _f(ITEMS),
        "mechanisms": _f(ITEMS),
        "interventions": _f(ITEMS),
        "stages": _f(ITEMS),
        "schedule": _f(S.Schedule),
        "presets": _f(ITEMS),
    },
    S.Node: {
        "kind": _f(str, choices="NODE_KINDS", required=True),
        "split": _f(str, optional=True, choices="SPLITS", node_kinds=_DATA),
        "sample": _f(str, choices="SAMPLES", node_kinds=_DATA),
        "repeat": _f(int, minimum=1, node_kinds=_DATA),
        "derived_from": _f(str, optional=True, node_kinds=_DATA),
        "paired_with": _f(str, optional=True, node_kinds=_DATA),
        "do": _f(ITEMS, node_kinds=_DATA),
        "layer": _f(
            str, optional=True, read_default="representation", node_kinds=("representation",)
        ),
    },
    S.Reference: {
        "kind": _f(str, choices=vocab.REFERENCES),
        "stream": _f(str, optional=True),
        "distribution": _f(str, optional=True, choices="DISTRIBUTIONS"),
        "align": _f(str, choices="ALIGNS"),
        "at": _f(str, optional=True),
        "seed": _f(int),
    },
    S.Divergence: {
        "kind": _f(str, choices=vocab.DIVERGENCES, required=True),
        "direction": _f(str, choices="DIRECTIONS"),
        "softmax_over": _f(str, choices="SOFTMAX_AXES"),
        "temperature": _f(float, minimum=0.0, exclusive_minimum=True),
        "reduction": _f(str, choices="REDUCTIONS"),
    },
    S.Intervention: {
        "stage": _f(str, required=True),
        "target": _f(str, required=True),
        "divergence": _f(S.Divergence, required=True),
        "data": _f(str, optional=True),
        "reference": _f(S.Reference, optional=True),
        "weight": _f(float),
        "maximise": _f(bool),
        "note": _f(str),
    },
    S.Mask: {
        "kind": _f(str, choices="MASK_KINDS", required=True),
        "data": _f(str, required=True),
        "keep": _f(float, minimum=0.0, exclusive_minimum=True, maximum=1.0),
    },
    S.Stage: {
        "optimizer": _f(str, choices="OPTIMIZERS", required=True),
        "lr": _f(float, minimum=0.0, exclusive_minimum=True, required=True),
        "weight_decay": _f(float, minimum=0.0),
        "momentum": _f(float, minimum=0.0),
        "modules": _f(NAMES, optional=True),
        "mask": _f(S.Mask, optional=True),
        "zip": _f(NAMES, optional=True),
        "epochs": _f(int, optional=True, minimum=1),
    },
    S.Schedule: {
        # Not required by the reader: the semantic check reports an empty order (for graphs
        # built in Python too).
        "order": _f(NAMES, read_default=()),
        "epochs": _f(int, minimum=1),
        "batch_size": _f(int, minimum=1),
        "zip": _f(NAMES),
        "shuffle": _f(bool),
    },
    S.Citation: {
        "title": _f(str, required=True),
        "venue": _f(str),
        "arxiv": _f(str),
        "url": _f(str),
        "authors": _f(str),
    },
}

#: Fields of a spec class that are not part of the graph format.
_NOT_IN_FORMAT = ("id", "provenance")


def _complete(table: dict[type, dict[str, Field]]) -> dict[type, dict[str, Field]]:
    """Fill in each field's default from its dataclass; fail when table and dataclass differ."""
    out = {}
    for cls, entries in table.items():
        declared = {f.name: f for f in fields(cls) if f.name not in _NOT_IN_FORMAT}
        if set(declared) != set(entries):
            raise TypeError(
                f"graph/schema.py and spec.{cls.__name__} disagree: fields only in the dataclass"
                f" {sorted(set(declared) - set(entries))}, only in the schema table"
                f" {sorted(set(entries) - set(declared))}"
            )
        complete = {}
        for name, entry in entries.items():
            default: Any = declared[name].default
            if default is MISSING and declared[name].default_factory is not MISSING:
                default = declared[name].default_factory()  # type: ignore[operator]  # not MISSING
            if default is MISSING:
                default = REQUIRED
            complete[name] = replace(entry, default=default, finite=entry.kind is float)
        out[cls] = complete
    return out


TABLE = _complete(TABLE)


def fields_of(cls: type) -> dict[str, Field]:
    """The format fields of spec class ``cls`` (``id`` and ``provenance`` left out), in order."""
    return TABLE[cls]


def field(cls: type, name: str) -> Field:
    """The :class:`Field` of ``cls.name``."""
    return TABLE[cls][name]


def keys(cls: type) -> tuple[str, ...]:
    """The keys a YAML mapping of ``cls`` may hold, in order."""
    return tuple(TABLE[cls])


def required(cls: type) -> tuple[str, ...]:
    """The keys a YAML mapping of ``cls`` must hold."""
    return tuple(name for name, f in TABLE[cls].items() if f.required)


def node_keys(kind: str) -> tuple[str, ...]:
    """The keys a YAML node of ``kind`` may hold."""
    return tuple(
        name for name, f in TABLE[S.Node].items() if f.node_kinds is None or kind in f.node_kinds
    )


def reference_keys() -> tuple[str, ...]:
    """The keys of a YAML reference: one kind (``{original: stream}``) plus its modifiers."""
    modifiers = (n for n in TABLE[S.Reference] if n not in ("kind", "stream", "distribution"))
    return (*vocab.REFERENCES.names(), *modifiers)


def do_fields(op: str) -> dict[str, Field]:
    """The parameters of do-operation ``op`` (from :data:`~causalunlearn.graph.vocab.DO_OPS`;
    none for an unknown one)."""
    declared = vocab.DO_OPS.get(op, None) if isinstance(op, str) else None
    return {
        name: Field(p.kind, p.default, choices=p.choices, finite=p.kind is float)
        for name, p in (declared.params.items() if declared else ())
    }


def documented() -> dict[str, tuple[str, ...]]:
    """Every YAML key of the format by section, as ``docs/graph-format.md`` must list them."""
    sections = {cls.__name__: keys(cls) for cls in TABLE if cls is not S.Reference}
    sections["Reference"] = reference_keys()
    for op, declared in vocab.DO_OPS.items():
        sections[f"do:{op}"] = (op, *declared.params)
    return sections
