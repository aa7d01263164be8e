"""Errors and warnings of causalunlearn.

Every error carries a stable ``code`` (tests match on it), a message that says what is wrong and a
``hint`` that says how to fix it. A bad graph is reported as one :class:`GraphError` holding *every*
problem found, each a :class:`Problem` with its location.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Where a bug in causalunlearn is reported (``docs/troubleshooting.md#reporting-a-bug``); the
#: command-line guard names it when an unexpected exception reaches the top.
BUG_REPORT = "the causalunlearn issue tracker (see docs/troubleshooting.md, 'Reporting a bug')"

#: The most characters of a user's value that a message echoes (see :func:`shown`).
SHOWN_LIMIT = 200


class CausalUnlearnWarning(UserWarning):
    """Warnings raised by causalunlearn itself (turned into errors in the test suite)."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a graph or a setting.

    Attributes:
        code: Stable, kebab-case identifier, e.g. ``unknown-node``.
        where: Location, e.g. ``interventions.cut_forget_z.target (camu.yaml:23)``.
        message: What is wrong.
        hint: How to fix it (may be empty).
    """

    code: str
    where: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"[{self.code}] {self.where}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class CausalUnlearnError(Exception):
    """Base class of every error raised on bad input.

    Args:
        code: Stable identifier of the problem.
        message: What is wrong.
        hint: How to fix it.
        details: What the message says, as data, for code that handles the error (a
            ``non-finite-loss`` RunError: ``stage``, ``epoch``, ``step``, ``loss``, ``terms``,
            and for stacked variants ``variants``); empty when there is nothing to add. Code
            reads these, never the message text.
    """

    def __init__(
        self, code: str, message: str, hint: str = "", *, details: Mapping[str, Any] | None = None
    ) -> None:
        self.code = code
        self.message = message
        self.hint = hint
        self.details: dict[str, Any] = dict(details or {})
        super().__init__(f"[{code}] {message}" + (f"\n  hint: {hint}" if hint else ""))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its attributes, not through __init__ (whose arguments differ from
        # ``args``), so an error crosses to another process (a sweep worker) whole.
        return (_rebuilt, (type(self), self.args, dict(self.__dict__)))


def _rebuilt(cls: type[CausalUnlearnError], args: tuple[Any, ...], state: dict[str, Any]):
    """An unpickled :class:`CausalUnlearnError`: its class, ``args`` and attributes."""
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class GraphError(CausalUnlearnError):
    """A graph (file, Python object or override) has one or more problems.

    Attributes:
        problems: Every problem found, in the order they were found.
    """

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems = tuple(problems)
        self.source = source
        head = f"{len(self.problems)} problem(s) in graph" + (f" {source}" if source else "")
        body = "\n".join(f"  {p}".replace("\n", "\n  ") for p in self.problems)
        Exception.__init__(self, f"{head}:\n{body}")
        self.code = self.problems[0].code if self.problems else "graph"
        self.message = head
        self.hint = ""
        self.details = {}

    @property
    def codes(self) -> list[str]:
        """The codes of all problems, in order."""
        return [p.code for p in self.problems]


class DataError(CausalUnlearnError):
    """Bad data or data settings (missing data root, corrupt file, empty forget set, ...)."""


class ModelError(CausalUnlearnError):
    """A model does not fit what a graph or run asks of it (e.g. a missing representation layer)."""


class RunError(CausalUnlearnError):
    """A run cannot go on (non-finite loss, output folder already holds a finished run, ...)."""


def _make_repr(limit: int) -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxlevel = 3
    short.maxstring = short.maxother = short.maxlong = max(limit, 12)
    for attr in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque"):
        setattr(short, attr, 8)
    return short


_SHORT_REPR = _make_repr(SHOWN_LIMIT)


def shown(value: Any, limit: int = SHOWN_LIMIT) -> str:
    """``repr(value)`` cut to at most ``limit`` characters, for echoing a user's value in a message.

    Containers are abbreviated the way :mod:`reprlib` does (a few items, a few levels, then
    ``...``) *without* formatting the rest, so a value with shared parts that expands to
    billions of items (a YAML "billion laughs" document) costs as little as a small one.

    Args:
        value: Any value a user gave (a graph field, an override, an id).
        limit: The most characters returned.
    """
    short = _SHORT_REPR if limit == SHOWN_LIMIT else _make_repr(limit)
    try:
        text = short.repr(value)
    except Exception:  # noqa: BLE001 - a user object whose __repr__ fails is still reported
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return a ``did you mean 'x'?`` hint for ``name`` among ``choices`` (empty if nothing close).

    Args:
        name: The unknown name.
        choices: The valid names.
    """
    choices = list(choices)
    # Only a short name is compared; a container (maybe an alias bomb) is only ever shown().
    text = name if isinstance(name, str) else shown(name)
    close = difflib.get_close_matches(text, choices, n=1, cutoff=0.6) if len(text) <= 200 else []
    if close:
        return f"did you mean '{close[0]}'?"
    if choices and len(choices) <= 12:
        return "expected one of: " + ", ".join(sorted(map(str, choices)))
    return ""
