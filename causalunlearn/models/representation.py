"""Find a model's representation layer and read its output during a forward pass.

A representation is named either by a module path (``"fc1"``, ``"layer4.1.conv2"``, as listed by
``model.named_modules()``) or by the alias ``"representation"``, which means the path the model
declares in its class attribute ``representation_layer``. The output of that module is captured
with a forward hook (registered once per :func:`capture_representation` context, not per batch)
and flattened to ``N×D``. The captured tensor is *not* detached: gradients flow through it, as the
representation terms of an unlearning objective need.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from causalunlearn.errors import ModelError, did_you_mean

REPRESENTATION_ALIAS = "representation"
"""The layer name that stands for the model's declared ``representation_layer``."""

_WRAPPER_ATTRIBUTES = ("_orig_mod", "module")  # torch.compile, DistributedDataParallel


def resolve_layer_path(model: nn.Module, layer: str = REPRESENTATION_ALIAS) -> str:
    """Return the module path that ``layer`` names in ``model``.

    ``"representation"`` resolves to ``model.representation_layer`` when the model declares one
    (the alias wins over a module literally named ``representation``; without the attribute such a
    module is used). A ``torch.compile`` or ``DistributedDataParallel`` wrapper is looked through:
    paths and the attribute of the wrapped model are accepted and returned with the wrapper's
    prefix.

    Args:
        model: The model.
        layer: A module path, or ``"representation"``.

    Returns:
        A path ``p`` with ``model.get_submodule(p)`` defined (never the empty path).

    Raises:
        ModelError: ``missing-representation-layer`` when the model declares no representation
            layer, or the path is not a module of the model; the hint lists module paths.
    """
    if not isinstance(layer, str) or not layer:
        raise ModelError(
            "missing-representation-layer",
            f"a representation layer must be a non-empty module path, got {layer!r}",
            f"pass a module path of {type(model).__name__} ({_some_paths(model)}) or"
            f" '{REPRESENTATION_ALIAS}'",
        )
    bad_declaration: tuple[nn.Module, object, list[str]] | None = None
    for prefix, candidate in _candidates(model):
        modules = [name for name, _ in candidate.named_modules()]
        if layer != REPRESENTATION_ALIAS:
            if layer in modules:
                return prefix + layer
            continue
        declared = getattr(candidate, "representation_layer", None)
        if declared is None:
            if layer in modules:
                return prefix + layer
        elif isinstance(declared, str) and declared and declared in modules:
            return prefix + declared
        else:  # keep the innermost bad declaration: it names the user's own class
            bad_declaration = (candidate, declared, modules)
    if bad_declaration is not None:
        candidate, declared, modules = bad_declaration
        raise ModelError(
            "missing-representation-layer",
            f"{type(candidate).__name__}.representation_layer = {declared!r} is not a module path"
            " of the model",
            _join(
                did_you_mean(str(declared), [m for m in modules if m]),
                f"module paths of {type(candidate).__name__} include: {_some_paths(candidate)}",
                "set representation_layer to one of them",
            ),
        )
    if layer == REPRESENTATION_ALIAS:
        raise ModelError(
            "missing-representation-layer",
            f"{type(model).__name__} does not declare its representation layer",
            f"set the class attribute representation_layer = '<module path>' on"
            f" {type(model).__name__} (module paths include: {_some_paths(model)}), or name the"
            " module path itself instead of 'representation'",
        )
    names = [m for m in dict(model.named_modules()) if m]
    raise ModelError(
        "missing-representation-layer",
        f"{type(model).__name__} has no module '{layer}'",
        _join(
            did_you_mean(layer, names),
            f"module paths of {type(model).__name__} include: {_some_paths(model)}",
            "pass one of them, or set representation_layer on the model and use 'representation'",
        ),
    )


def resolve_layer(model: nn.Module, layer: str = REPRESENTATION_ALIAS) -> nn.Module:
    """Return the module that ``layer`` names in ``model``.

    Args:
        model: The model.
        layer: A module path (``"fc1"``, ``"layer4.1.conv2"``) or ``"representation"`` (the
            model's ``representation_layer`` attribute).

    Returns:
        The submodule.

    Raises:
        ModelError: ``missing-representation-layer`` (see :func:`resolve_layer_path`).
    """
    return model.get_submodule(resolve_layer_path(model, layer))


class RepresentationCapture:
    """Holds the latest output of a hooked module (made by :func:`capture_representation`).

    Attributes:
        model: The model the hook belongs to.
        path: The resolved module path.
        module: The hooked module.
        value: The module's latest output, flattened to ``N×D`` (unless ``flatten=False``), or
            ``None`` before the first forward. Not detached. If the module runs several times in
            one forward, the last output wins.
        calls: How many times the module ran inside the context.
    """

    def __init__(self, model: nn.Module, path: str, module: nn.Module, flatten: bool) -> None:
        self.model = model
        self.path = path
        self.module = module
        self.flatten = flatten
        self.value: torch.Tensor | None = None
        self.calls = 0

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() == 0:
            raise ModelError(
                "non-tensor-representation",
                f"module '{self.path}' of {type(self.model).__name__} returned"
                f" {_kind(output)}, not a batch tensor",
                "name a module whose output is a tensor with the batch as first dimension",
            )
        if self.flatten:
            output = output.flatten(1) if output.dim() > 1 else output.unsqueeze(1)
        self.value = output
        self.calls += 1

    def clear(self) -> None:
        """Forget the captured value (so that a stale value cannot be mistaken for a new one)."""
        self.value = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model on ``x`` and return ``(logits, representation)``.

        Raises:
            ModelError: ``model-output-not-tensor`` when the model does not return logits;
                ``representation-not-computed`` when the module did not run.
        """
        self.clear()
        logits = self.model(x)
        if not isinstance(logits, torch.Tensor):
            raise ModelError(
                "model-output-not-tensor",
                f"{type(self.model).__name__}.forward returned {_kind(logits)}, not a logits"
                " tensor",
                "make forward(x) return the logits only; the representation is read with a hook"
                " (wrap a model that returns (logits, representation) in a module that returns"
                " [0])",
            )
        if self.value is None:
            raise ModelError(
                "representation-not-computed",
                f"module '{self.path}' of {type(self.model).__name__} did not run during forward",
                "name a module that forward(x) actually calls",
            )
        return logits, self.value

    __call__ = forward


@contextmanager
def capture_representation(
    model: nn.Module, layer: str = REPRESENTATION_ALIAS, *, flatten: bool = True
) -> Iterator[RepresentationCapture]:
    """Capture the output of a module of ``model`` for as long as the context is open.

    One forward hook is registered on entry and removed on exit (also on error), so capturing many
    batches costs one registration. Example::

        with capture_representation(model, "representation") as cap:
            for x, y in loader:
                logits, z = cap(x)      # or: logits = model(x); z = cap.value

    Args:
        model: The model.
        layer: A module path or ``"representation"`` (see :func:`resolve_layer`).
        flatten: Flatten the captured output to ``N×D`` (a 1-d output becomes ``N×1``).

    Yields:
        A :class:`RepresentationCapture`; its ``value`` stays readable after the context closes.

    Raises:
        ModelError: ``missing-representation-layer``; ``non-tensor-representation`` (during a
            forward) when the module's output is not a batch tensor.
    """
    path = resolve_layer_path(model, layer)
    module = model.get_submodule(path)
    capture = RepresentationCapture(model, path, module, flatten)
    handle = module.register_forward_hook(capture._hook)
    try:
        yield capture
    finally:
        handle.remove()


def forward_with_representation(
    model: nn.Module, x: torch.Tensor, layer: str = REPRESENTATION_ALIAS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` on ``x`` and return ``(logits, z)``, ``z`` the flattened ``N×D`` output of
    ``layer``.

    For many batches, open one :func:`capture_representation` context instead (one hook for all).

    Args:
        model: The model; ``forward(x)`` must return logits.
        x: A batch of inputs.
        layer: A module path or ``"representation"``.

    Returns:
        The logits and the representation (not detached).

    Raises:
        ModelError: ``missing-representation-layer``, ``representation-not-computed``,
            ``model-output-not-tensor``, ``non-tensor-representation``.
    """
    with capture_representation(model, layer) as capture:
        return capture.forward(x)


def _candidates(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    yield "", model
    for attribute in _WRAPPER_ATTRIBUTES:
        inner = model._modules.get(attribute)
        if isinstance(inner, nn.Module):
            yield attribute + ".", inner


def _some_paths(model: nn.Module, limit: int = 12) -> str:
    model = next((m for p, m in _candidates(model) if p), model)
    names = [name for name, _ in model.named_children()]
    if len(names) < 4:  # a model made of one or two containers: show deeper paths
        names = [name for name, _ in model.named_modules() if name]
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    more = len(names) - limit
    return (shown + (f", ... ({more} more)" if more > 0 else "")) or "(none)"


def _kind(value: object) -> str:
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p).replace("?; ", "? ")
