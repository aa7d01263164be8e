"""One notion of "method": the verbs every unlearning method answers, graph or method entry.

A method is a :class:`~causalunlearn.graph.spec.Graph` (compiled into an objective and trained)
or a :class:`~causalunlearn.methods.entry.MethodEntry` (a registered non-training method such
as SSD). Both are frozen, validated data with presets stored the same way; the verbs below are
``functools.singledispatch`` functions, so a new kind of method registers its implementations
here (``preset_names.register(MyKind)(...)``) and every study — ``run``, ``compare``, ``tune`` —
handles it without an ``isinstance`` anywhere else.

Verbs: :func:`preset_names`, :func:`preset_values`, :func:`with_preset`,
:func:`with_overrides`, :func:`renamed`, :func:`unlearn_with`, :func:`trains`; and, shared by
both kinds as methods, ``digest()``, ``to_dict()`` and ``name``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import singledispatch
from typing import TYPE_CHECKING, Any, TypeAlias

from causalunlearn.graph import spec as S
from causalunlearn.graph.edit import apply_overrides
from causalunlearn.graph.edit import with_preset as _graph_with_preset
from causalunlearn.methods.entry import MethodEntry

if TYPE_CHECKING:  # torch only where the verbs that run are used
    import torch
    from torch import nn

    from causalunlearn.data import TensorData
    from causalunlearn.data.splits import Split
    from causalunlearn.engine.verbs import Unlearned

#: Every kind of unlearning method.
Method: TypeAlias = S.Graph | MethodEntry


def _unsupported(verb: str, method: object) -> TypeError:
    return TypeError(
        f"{verb}() takes a Graph or a MethodEntry, not {type(method).__name__}; register an"
        f" implementation with causalunlearn.methods.dispatch.{verb}.register"
    )


@singledispatch
def preset_names(method: Method) -> list[str]:
    """The names of the method's presets, in file order."""
    raise _unsupported("preset_names", method)


@preset_names.register
def _(method: S.Graph) -> list[str]:
    return [name for name, _ in method.presets]


@preset_names.register
def _(method: MethodEntry) -> list[str]:
    return [name for name, _ in method.presets]


def preset_values(method: Method, name: str) -> dict[str, Any]:
    """The overrides of preset ``name`` (``{dotted.path: value}``); both kinds store presets
    as ``((name, ((path, value), ...)), ...)``."""
    return dict(dict(method.presets)[name])


@singledispatch
def with_preset(method: Method, name: str) -> Method:
    """The method with preset ``name`` applied (a validated new object)."""
    raise _unsupported("with_preset", method)


@with_preset.register
def _(method: S.Graph, name: str) -> S.Graph:
    return _graph_with_preset(method, name)


@with_preset.register
def _(method: MethodEntry, name: str) -> MethodEntry:
    return method.with_preset(name)


@singledispatch
def with_overrides(method: Method, overrides: Mapping[str, Any]) -> Method:
    """The method with dotted-path overrides applied (``stages.output.lr``, ``params.alpha``)."""
    raise _unsupported("with_overrides", method)


@with_overrides.register
def _(method: S.Graph, overrides: Mapping[str, Any]) -> S.Graph:
    return apply_overrides(method, overrides)


@with_overrides.register
def _(method: MethodEntry, overrides: Mapping[str, Any]) -> MethodEntry:
    return method.with_overrides(overrides)


@singledispatch
def renamed(method: Method, name: str) -> Method:
    """The method under another name (a sweep's label for an ablation)."""
    raise _unsupported("renamed", method)


@renamed.register
def _(method: S.Graph, name: str) -> S.Graph:
    return replace(method, name=name)


@renamed.register
def _(method: MethodEntry, name: str) -> MethodEntry:
    return replace(method, name=name)


@singledispatch
def trains(method: Method) -> bool:
    """Whether the method runs optimiser steps (then an executor setting applies to it)."""
    raise _unsupported("trains", method)


@trains.register
def _(method: S.Graph) -> bool:
    return True


@trains.register
def _(method: MethodEntry) -> bool:
    return False


@singledispatch
def unlearn_with(
    method: Method,
    model: nn.Module,
    data: TensorData,
    split: Split,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    executor: str = "fast",
    callbacks: Sequence[Any] = (),
) -> Unlearned:
    """Unlearn ``split.forget`` from ``model`` with ``method``; ``model`` is left as it is.

    A graph runs :func:`causalunlearn.engine.verbs.unlearn` (``executor`` chooses the fast or
    the reference executor; ``callbacks`` see its loop, :mod:`causalunlearn.engine.callbacks`);
    a method entry runs its registered function (:meth:`MethodEntry.run`; ``executor`` and
    ``callbacks`` do not apply: it has no loop). Both return the same result type.
    """
    raise _unsupported("unlearn_with", method)


@unlearn_with.register
def _(
    method: S.Graph,
    model,
    data,
    split,
    *,
    seed=0,
    device=None,
    progress=True,
    executor="fast",
    callbacks=(),
):
    from causalunlearn.engine.verbs import unlearn

    return unlearn(
        method,
        model,
        data,
        split,
        seed=seed,
        device=device,
        progress=progress,
        executor=executor,
        callbacks=callbacks,
    )


@unlearn_with.register
def _(
    method: MethodEntry,
    model,
    data,
    split,
    *,
    seed=0,
    device=None,
    progress=True,
    executor="fast",
    callbacks=(),
):
    return method.run(model, data, split, seed=seed, device=device, progress=progress)


@singledispatch
def describe(method: Method) -> str:
    """One line saying what the method is (``causalunlearn validate`` prints it)."""
    raise _unsupported("describe", method)


@describe.register
def _(method: S.Graph) -> str:
    return (
        f"{method.name} ({len(method.nodes)} nodes, {len(method.interventions)} intervention"
        f" edges, {len(method.stages)} stage(s))"
    )


@describe.register
def _(method: MethodEntry) -> str:
    return f"{method.name} (method entry '{method.method}': not a graph)"


@singledispatch
def causal_graph(method: Method) -> S.Graph | None:
    """The graph whose causal check applies to the method (``None``: a method entry has none)."""
    raise _unsupported("causal_graph", method)


@causal_graph.register
def _(method: S.Graph) -> S.Graph:
    return method


@causal_graph.register
def _(method: MethodEntry) -> None:
    return None
