"""The method registry: non-training unlearning methods (SSD, ...) by name.

A *method* is a function that edits a copy of a trained model in place, without an optimisation
loop a graph could describe (SSD dampens weights once, from two importance estimates). Each
method declares its parameters (type, default, meaning), so a method entry file is checked as
strictly as a graph file: unknown parameters and wrong types are errors.

This module does not import torch; the built-in methods import it when they run, so loading and
validating a method entry file stays instant, like the graph layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from causalunlearn.graph.schema import Field
from causalunlearn.plugins import IMPORT_HINT
from causalunlearn.registry import Registry

#: Built-in methods: name → module that registers it when imported (imported on first use).
BUILTIN_MODULES = {
    "ssd": "causalunlearn.methods.ssd",
    "head-zero": "causalunlearn.methods.trivial",
}


@dataclass(frozen=True)
class Param(Field):
    """One declared parameter of a method: a :class:`~causalunlearn.graph.schema.Field` of the
    graph format's field table, checked by the same rules.

    Attributes:
        kind: ``float``, ``int``, ``bool`` or ``str`` (a float parameter accepts an int).
        default: The value used when an entry does not set it.
        doc: What it means (shown in errors and docs).
        optional: ``None`` is a valid value (e.g. "no limit").
        minimum: Smallest valid value for numbers (inclusive), if any.
        exclusive_minimum: ``minimum`` itself is not allowed.
        choices: The valid values, if the parameter is one of a fixed set.
    """

    default: Any  # a method parameter always declares its default

    def check(self, value: Any) -> tuple[Any, str | None]:
        """The value converted to the parameter's type, and an error message or ``None``."""
        if value is None:
            return (None, None) if self.optional else (None, "may not be empty")
        converted, issue = self.convert(value)
        if issue is None:
            issue = self.bound_issue(converted)
        if issue is None:
            return converted, None
        if issue.what == "type":
            return None, f"expected {self.type_name()}, got {type(value).__name__} {value!r}"
        if issue.what == "bound":
            return None, f"must be {self.bound_text()}, got {converted!r}"
        allowed = ", ".join(map(str, self.allowed or ()))
        return None, f"must be one of {allowed}, got {value!r}"


@dataclass(frozen=True)
class RegisteredMethod:
    """A registered method: its function and declared parameters.

    Attributes:
        name: Registry key (``method:`` in an entry file).
        fn: ``fn(model, data, split, params, *, seed, device, progress) -> dict``: edits
            ``model`` (already a copy, on ``device``) in place and returns an info dict that
            the run records.
        params: Declared parameters by name.
    """

    name: str
    fn: Callable[..., dict[str, Any]]
    params: Mapping[str, Param]

    def defaults(self) -> dict[str, Any]:
        """Every parameter at its default."""
        return {k: p.default for k, p in self.params.items()}


#: The registered methods by name (the built-ins of :data:`BUILTIN_MODULES` are registered when
#: their module is first needed).
METHODS: Registry[RegisteredMethod] = Registry(
    "method",
    hint=f"register it with @register_method; {IMPORT_HINT}",
    describe=lambda method: f"{method.fn.__module__}.{method.fn.__qualname__}",
    lazy=BUILTIN_MODULES,
)


def register_method(
    name: str, params: Mapping[str, Param] | None = None, *, overwrite: bool = False
) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Decorator: register ``fn`` as the method ``name`` with its declared ``params``.

    Example::

        @register_method("shrink", params={"factor": Param(float, 0.5, "weight multiplier")})
        def shrink(model, data, split, params, *, seed, device, progress):
            for p in model.parameters():
                p.data.mul_(params["factor"])
            return {}

    Args:
        name: The name entry files use (``method: <name>``).
        params: The declared parameters by name.
        overwrite: Replace a method registered under ``name``.

    Raises:
        CausalUnlearnError: ``duplicate-method`` when ``name`` is already registered and
            ``overwrite`` is false.
    """
    key = METHODS.key(name)

    def decorate(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        METHODS.register(key, RegisteredMethod(key, fn, dict(params or {})), overwrite=overwrite)
        return fn

    return decorate


def method_names() -> list[str]:
    """Names of every available method (built-in and registered), sorted."""
    return sorted(METHODS.names())


def get_method(name: str) -> RegisteredMethod:
    """The registered method ``name`` (a built-in is imported on first use).

    Raises:
        CausalUnlearnError: ``unknown-method`` with a did-you-mean hint.
    """
    return METHODS.get(name)
