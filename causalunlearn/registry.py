"""One registry type for every extension point: names → values, with one duplicate policy.

Datasets, models, divergences, references, do-operations, methods, membership-inference
attackers and CLI commands are each a :class:`Registry`. They all behave the same way:

- ``register(name, value)`` (or ``@register(name)`` as a decorator) adds a value;
- a name that is taken raises ``duplicate-<what>`` unless ``overwrite=True`` (the one duplicate
  policy: re-registering, even the very same object, is an error without it, so a name never
  changes meaning silently; re-running a notebook cell passes ``overwrite=True``);
- ``get(name)`` raises ``unknown-<what>`` with a "did you mean …" hint for a name not registered;
- ``names()`` lists the names in registration order; ``name in registry`` asks.

:class:`Implementations` is a registry whose names are a *vocabulary* kept elsewhere (the
torch-free graph layer's divergence, reference and do-operation names, see
:mod:`causalunlearn.graph.vocab`): registering an implementation under a new name declares the
name in the vocabulary too, so a user's extension is one call.

This module imports nothing but :mod:`causalunlearn.errors` (no torch).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, overload

from causalunlearn.errors import CausalUnlearnError, did_you_mean

T = TypeVar("T")
K = TypeVar("K")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


def _describe(value: Any) -> str:
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None) or getattr(type(value), "__qualname__", "")
    return f"{module}.{qualname}" if module else str(qualname)


class Registry(Generic[T]):
    """A table of named values with did-you-mean lookups and one duplicate policy.

    Args:
        what: The kebab-case word in the error codes: ``unknown-<what>``, ``duplicate-<what>``,
            ``invalid-<what>-name`` (``model``, ``dataset``, ``divergence``, ``do-op``...).
        label: The word in messages (default: ``what``), e.g. ``membership-inference attacker``.
        error: The exception class raised (a :class:`~causalunlearn.errors.CausalUnlearnError`).
        hint: Added to the did-you-mean hint of ``unknown-<what>`` (e.g. how to register one).
        key: Normalises a name before it is stored or looked up (datasets: case-insensitive, ``_``
            equals ``-``); the identity by default.
        check: ``check(name, value)`` is called before a value is stored; it raises to refuse one
            (a model factory that is not callable).
        describe: How a ``duplicate-<what>`` message names the registered value (default: its
            module and qualified name).
        lazy: Names whose value a module registers when it is imported: ``name → module``. They
            count as registered (``in``, :meth:`names`); :meth:`get` imports the module first.

    Example::

        SHAPES: Registry[type] = Registry("shape", hint="register one with SHAPES.register")

        @SHAPES.register("square")
        class Square: ...

        SHAPES.get("sqare")  # CausalUnlearnError [unknown-shape] ... did you mean 'square'?
    """

    def __init__(
        self,
        what: str,
        *,
        label: str | None = None,
        error: type[CausalUnlearnError] = CausalUnlearnError,
        hint: str = "",
        key: Callable[[str], str] | None = None,
        check: Callable[[str, T], None] | None = None,
        describe: Callable[[T], str] | None = None,
        lazy: Mapping[str, str] | None = None,
    ) -> None:
        self.what = what
        self.label = label or what
        self.error = error
        self.hint = hint
        self._key = key or (lambda name: name)
        self._check = check
        self._describe = describe or _describe
        self._lazy = dict(lazy or {})
        self._items: dict[str, T] = {}

    # ------------------------------------------------------------------------------------------
    # Adding and removing
    @overload
    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, value: T, *, overwrite: bool = False) -> T: ...

    def register(self, name: str, value: Any = _MISSING, *, overwrite: bool = False) -> Any:
        """Register ``value`` under ``name``; without a value, return a decorator that does.

        Args:
            name: A non-empty string.
            value: What the name stands for.
            overwrite: Replace a value already registered under ``name``.

        Returns:
            ``value`` (the decorator returns its argument unchanged).

        Raises:
            CausalUnlearnError: ``invalid-<what>-name`` for an empty or non-string name;
                ``duplicate-<what>`` when the name is taken and ``overwrite`` is false (the
                registry's error class).
        """
        key = self.key(name)
        if value is _MISSING:

            def decorate(value: T) -> T:
                self._store(key, value, overwrite)
                return value

            self._refuse_taken(key, overwrite)  # fail at the decorator line, before the body
            return decorate
        self._store(key, value, overwrite)
        return value

    def _refuse_taken(self, key: str, overwrite: bool) -> None:
        self._load(key)  # a lazy built-in takes its name first (a no-op inside its own import)
        if key in self._items and not overwrite:
            raise self.error(
                f"duplicate-{self.what}",
                f"a {self.label} named '{key}' is already registered"
                f" ({self._describe(self._items[key])})",
                "choose another name, or pass overwrite=True to replace it (e.g. when re-running"
                " a notebook cell)",
            )

    def _store(self, key: str, value: T, overwrite: bool) -> None:
        self._refuse_taken(key, overwrite)
        if self._check is not None:
            self._check(key, value)
        self._items[key] = value

    def pop(self, name: str, default: Any = _MISSING) -> Any:
        """Remove ``name`` and return its value (``default`` if given and ``name`` is not there).

        Raises:
            CausalUnlearnError: ``unknown-<what>`` when ``name`` is not registered and no
                ``default`` is given.
        """
        key = self.key(name) if isinstance(name, str) else name
        if key in self._items:
            return self._items.pop(key)
        if default is not _MISSING:
            return default
        raise self.unknown_error(name)

    @contextmanager
    def scratch(self) -> Iterator[Registry[T]]:
        """A ``with`` block whose registrations (and removals) are undone at its end (tests)."""
        before = dict(self._items)
        try:
            yield self
        finally:
            self._items.clear()
            self._items.update(before)

    # ------------------------------------------------------------------------------------------
    # Looking up
    def key(self, name: str) -> str:
        """The stored form of ``name`` (see the ``key`` argument).

        Raises:
            CausalUnlearnError: ``invalid-<what>-name`` for an empty or non-string name.
        """
        key = self._key(name) if isinstance(name, str) else ""
        if not isinstance(name, str) or not key.strip():
            raise self.error(
                f"invalid-{self.what}-name",
                f"a {self.label} name must be a non-empty string, got {name!r}",
                f"pass a name such as 'my-{self.what}'",
            )
        return key

    def get(self, name: str, default: Any = _MISSING) -> T:
        """The value registered under ``name`` (``default``, if given, when there is none).

        Raises:
            CausalUnlearnError: ``unknown-<what>`` with a did-you-mean hint when ``name`` is not
                registered and no ``default`` is given.
        """
        key = self._key(name) if isinstance(name, str) else None
        if key is not None:
            self._load(key)
        if key is not None and key in self._items:
            return self._items[key]
        if default is not _MISSING:
            return default
        raise self.unknown_error(name)

    __getitem__ = get

    def _load(self, key: str) -> None:
        if key in self._lazy and key not in self._items:
            importlib.import_module(self._lazy[key])

    def unknown_error(self, name: Any) -> CausalUnlearnError:
        """The ``unknown-<what>`` error for ``name`` (with a did-you-mean hint), to raise."""
        key = self._key(name) if isinstance(name, str) else name
        hint = "; ".join(h for h in (did_you_mean(key, self.names()), self.hint) if h)
        hint = hint.replace("?; ", "? ")
        return self.error(f"unknown-{self.what}", f"no {self.label} named {_quoted(name)}", hint)

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order (then names a module registers lazily)."""
        return (*self._items, *(n for n in self._lazy if n not in self._items))

    def items(self) -> tuple[tuple[str, T], ...]:
        """``(name, value)`` of every registered value, in registration order (lazy ones left
        out: nothing is imported)."""
        return tuple(self._items.items())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = self._key(name)
        return key in self._items or key in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self.names())})"


def _quoted(name: Any) -> str:
    from causalunlearn.errors import shown

    return f"'{name}'" if isinstance(name, str) and len(name) <= 200 else shown(name)


class Implementations(Registry[T], Generic[T, K]):
    """A registry of implementations keyed by the names of a vocabulary registry.

    The vocabulary (torch-free, e.g. :data:`causalunlearn.graph.vocab.DIVERGENCES`) says which
    names a graph may use and what parameters they take; this registry holds what each name
    *does* (a torch function). Registering an implementation under a name the vocabulary does
    not know declares it there too (built from ``declare(name, value)`` or the ``declaration``
    passed), so a new divergence, reference or do-operation is one call; a name the vocabulary
    already declares (a built-in) is implemented without touching it. :meth:`pop` removes a
    declaration it made.

    Args:
        vocabulary: The registry of declared names.
        declare: Builds the vocabulary entry of a new name from its implementation.
        **settings: As for :class:`Registry`.
    """

    def __init__(
        self,
        what: str,
        vocabulary: Registry[K],
        declare: Callable[[str, T], K],
        **settings: Any,
    ) -> None:
        super().__init__(what, **settings)
        self.vocabulary = vocabulary
        self._declare = declare
        self._declared: set[str] = set()

    def register(
        self,
        name: str,
        value: Any = _MISSING,
        *,
        overwrite: bool = False,
        declaration: K | None = None,
    ) -> Any:
        """Register an implementation (see :meth:`Registry.register`), declaring a new name.

        Args:
            name: The name, declared in the vocabulary or new.
            value: The implementation; without one, a decorator is returned.
            overwrite: Replace an implementation (and a differing declaration) of ``name``.
            declaration: The vocabulary entry for ``name`` (default: ``declare(name, value)``
                for a new name; a declared name keeps its entry).

        Raises:
            CausalUnlearnError: ``duplicate-<what>`` when ``name`` is implemented already, or
                when ``declaration`` differs from the vocabulary's entry, and ``overwrite`` is
                false.
        """
        key = self.key(name)

        def store(value: T) -> T:
            self._refuse_taken(key, overwrite)
            if self._check is not None:
                self._check(key, value)
            declared = key in self.vocabulary
            if declaration is not None and declared:
                if self.vocabulary.get(key) != declaration:
                    self.vocabulary.register(key, declaration, overwrite=overwrite)
            elif not declared:
                entry = declaration if declaration is not None else self._declare(key, value)
                self.vocabulary.register(key, entry)
                self._declared.add(key)
            self._items[key] = value
            return value

        if value is _MISSING:
            self._refuse_taken(key, overwrite)
            return store
        return store(value)

    def pop(self, name: str, default: Any = _MISSING) -> Any:
        """Remove an implementation, and the vocabulary entry it declared (if it did)."""
        value = super().pop(name, default)
        key = self._key(name) if isinstance(name, str) else name
        if key in self._declared:
            self._declared.discard(key)
            self.vocabulary.pop(key, None)
        return value

    @contextmanager
    def scratch(self) -> Iterator[Registry[T]]:
        """A ``with`` block whose registrations are undone at its end, in the vocabulary too."""
        declared = set(self._declared)
        with self.vocabulary.scratch(), super().scratch():
            try:
                yield self
            finally:
                self._declared = declared
