"""Model registry, the built-in models and state-dict checkpoints.

Every built-in model is a plain :class:`torch.nn.Module` whose ``forward(x)`` returns logits and
whose class attribute ``representation_layer`` names the module whose output is the representation
``Z`` (see :mod:`causalunlearn.models.representation`). Users add their own models with
:func:`register_model`; a factory takes ``(num_classes, input_shape)`` and returns a module built on
the CPU (``build_model`` moves it to a device afterwards, so a seed gives the same weights on every
device).

Sources: the official CaMU code (github ShaofeiShen768/CaMU, ``CaMU/Model.py``) for ``cnn`` and
``resnet18-224``; the usual CIFAR ResNet-18 stem (3×3 convolution, stride 1, no max-pool) for
``resnet18``; He et al. 2016's CIFAR ResNet for ``resnet20``
(:mod:`causalunlearn.models.resnet_cifar`: 0.27 M parameters, the CPU-sized CIFAR network).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from causalunlearn.atomic import atomic_open
from causalunlearn.errors import ModelError
from causalunlearn.models.resnet_cifar import CifarResNet20
from causalunlearn.plugins import IMPORT_HINT
from causalunlearn.registry import Registry

ModelFactory = Callable[[int, tuple[int, ...]], nn.Module]
"""A callable ``factory(num_classes, input_shape) -> nn.Module`` (a model class qualifies)."""


def _check_factory(name: str, factory: ModelFactory) -> None:
    if not callable(factory):
        raise ModelError(
            "invalid-model-factory",
            f"register_model('{name}') needs a class or a callable, got {type(factory).__name__}",
            "decorate a class or function taking (num_classes, input_shape)",
        )


MODELS: Registry[ModelFactory] = Registry(
    "model",
    error=ModelError,
    hint=f"register your own with @register_model(name); {IMPORT_HINT}",
    check=_check_factory,
)
"""The model registry: name → factory. Add to it with :func:`register_model`."""


def register_model(name: str, *, overwrite: bool = False) -> Callable[[ModelFactory], ModelFactory]:
    """Register a model factory (or a model class) under ``name``; use as a decorator.

    The factory is called as ``factory(num_classes, input_shape)`` where ``input_shape`` is the
    shape of one input without the batch dimension, e.g. ``(1, 28, 28)``. It must build the model
    on the CPU and should set a class attribute ``representation_layer`` (a module path such as
    ``"fc1"``) so that graphs can refer to the ``representation`` alias.

    Example::

        @register_model("my-net")
        class MyNet(nn.Module):
            representation_layer = "body"

            def __init__(self, num_classes, input_shape): ...

    Args:
        name: Registry name (non-empty string).
        overwrite: Replace an existing registration of ``name`` instead of raising.

    Returns:
        A decorator that registers its argument and returns it unchanged.

    Raises:
        ModelError: ``invalid-model-name`` for an empty or non-string name; ``duplicate-model``
            when ``name`` is taken and ``overwrite`` is false; ``invalid-model-factory`` for
            something that is not callable.
    """
    return MODELS.register(name, overwrite=overwrite)


def build_model(
    name: str,
    num_classes: int,
    input_shape: Sequence[int],
    *,
    seed: int | None = None,
    device: torch.device | str | None = None,
) -> nn.Module:
    """Build a registered model.

    With a ``seed`` the weights are initialised from ``torch``'s CPU generator seeded with it,
    inside :func:`torch.random.fork_rng`, so the global random state is left as it was and the same
    seed gives the same weights on every device (the model is built on the CPU, then moved).

    Args:
        name: Registry name, e.g. ``"cnn"``, ``"resnet20"``, ``"resnet18"``, ``"resnet18-224"``,
            ``"mlp"``.
        num_classes: Number of classes (≥ 2).
        input_shape: Shape of one input without the batch dimension, e.g. ``(1, 28, 28)``.
        seed: Seed for the initial weights; ``None`` draws from the global generator.
        device: Where to move the model after building it (default: stay on the CPU).

    Returns:
        The model, in training mode.

    Raises:
        ModelError: ``unknown-model`` (with a did-you-mean hint), ``invalid-num-classes``,
            ``invalid-input-shape``, ``invalid-seed``, ``invalid-model-factory``;
            ``model-contract`` when the registered factory cannot be called as
            ``factory(num_classes, input_shape)`` (see :data:`MODEL_CONTRACT`), and
            ``model-build-failed`` when it raises (the factory's exception is the cause).
    """
    factory = MODELS.get(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ModelError(
            "invalid-num-classes",
            f"num_classes must be an integer ≥ 2, got {num_classes!r}",
            "pass the number of classes of the dataset, e.g. 10",
        )
    shape = _check_input_shape(input_shape)
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63
    ):
        raise ModelError(
            "invalid-seed",
            f"seed must be None or a non-negative integer below 2**63, got {seed!r}",
            "pass e.g. seed=0",
        )
    check_model_contract(name, factory)
    if seed is None:
        model = _call_factory(name, factory, num_classes, shape)
    else:
        # Only the CPU generator is forked and seeded: models are built on the CPU, and seeding CUDA
        # generators here would change the caller's CUDA random state.
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            model = _call_factory(name, factory, num_classes, shape)
    if not isinstance(model, nn.Module):
        raise ModelError(
            "invalid-model-factory",
            f"the factory of model '{name}' returned {type(model).__name__}, not an nn.Module",
            "make the registered factory return a torch.nn.Module",
        )
    if device is not None:
        model = model.to(device)
    return model


#: What a registered model factory (or model class) must accept and return, in words.
MODEL_CONTRACT = (
    "a registered model is a class or callable called as factory(num_classes, input_shape)"
    " (num_classes: an int >= 2; input_shape: one input's shape without the batch dimension,"
    " e.g. (1, 28, 28)) that returns a torch.nn.Module built on the CPU whose forward(x) returns"
    " logits of shape (batch, num_classes)"
)


def check_model_contract(name: str, factory: ModelFactory) -> None:
    """Check that ``factory`` can be called as ``factory(num_classes, input_shape)``.

    Read from its signature, without calling it: a class whose ``__init__`` takes other
    arguments (``def __init__(self)``, ``def __init__(self, hidden, num_classes)`` with
    ``hidden`` required, keyword-only ``num_classes``) is refused before anything is built. A
    callable whose signature cannot be read (a C extension) is let through.

    Args:
        name: The registry name (for the message).
        factory: The registered class or callable.

    Raises:
        ModelError: ``model-contract``, naming :data:`MODEL_CONTRACT` and the signature found.
    """
    import inspect

    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(10, (1, 28, 28))
    except TypeError as err:
        what = getattr(factory, "__qualname__", type(factory).__name__)
        raise ModelError(
            "model-contract",
            f"model '{name}' ({what}{signature}) cannot be called as"
            f" {what}(num_classes, input_shape): {err}",
            f"{MODEL_CONTRACT}; give the class an __init__(self, num_classes, input_shape, ...)"
            " (further arguments with defaults), or register a function that builds it, e.g."
            " register_model(name)(lambda num_classes, input_shape: MyNet(num_classes))",
        ) from None


def _call_factory(
    name: str, factory: ModelFactory, num_classes: int, shape: tuple[int, ...]
) -> nn.Module:
    """``factory(num_classes, shape)``; an exception it raises becomes ``model-build-failed``."""
    from causalunlearn.errors import CausalUnlearnError

    try:
        return factory(num_classes, shape)
    except CausalUnlearnError:
        raise
    except Exception as err:  # noqa: BLE001 - a user's model code; the cause is chained
        raise ModelError(
            "model-build-failed",
            f"building model '{name}' with num_classes={num_classes}, input_shape={shape}"
            f" raised {type(err).__name__}: {str(err)[:300]}",
            f"the error is in the model's own code (rerun with --debug, or see the exception's"
            f" __cause__, for its stack); {MODEL_CONTRACT}",
        ) from err


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ModelError(
            "invalid-input-shape",
            f"input_shape must be a non-empty sequence of positive integers, got {input_shape!r}",
            "give the shape of one input without the batch dimension, e.g. (1, 28, 28)",
        )
    return shape


def _image_shape(model: str, shape: tuple[int, ...], min_size: int = 1) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[1] < min_size or shape[2] < min_size:
        raise ModelError(
            "invalid-input-shape",
            f"model '{model}' needs input_shape (channels, height, width) with height and width"
            f" ≥ {min_size}, got {shape!r}",
            "give one input's shape without the batch dimension, e.g. (1, 28, 28) for MNIST,"
            " (1, 8, 8) for digits, (3, 32, 32) for CIFAR",
        )
    return shape  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# Built-in models


@register_model("cnn")
class CNN(nn.Module):
    """The CNN of the official CaMU code for MNIST and Fashion-MNIST.

    ``conv1``: Conv(C→16, k5, p2)-ReLU-MaxPool2; ``conv2``: Conv(16→32, k5, p2)-ReLU-MaxPool2;
    flatten (32·7·7 = 1568 for 28×28 input, 32·2·2 = 128 for 8×8 digits); ``fc1``: Linear(→256),
    the representation, with **no activation** after it; ``fc2``: Linear(256→128); ``fc3``:
    Linear(128→num_classes), with no activation between ``fc2`` and ``fc3`` either (so the head is
    affine in the representation), as in ``CaMU/Model.py``. The official code keeps ``fc2`` and
    ``fc3`` in one ``nn.Sequential`` named ``fc2``; the layers and their order are the same.

    Args:
        num_classes: Number of classes.
        input_shape: ``(channels, height, width)``, height and width ≥ 4.
    """

    representation_layer = "fc1"

    def __init__(self, num_classes: int, input_shape: Sequence[int] = (1, 28, 28)) -> None:
        super().__init__()
        channels, height, width = _image_shape("cnn", tuple(input_shape), min_size=4)
        self.conv1 = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=5, stride=1, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(16, 32, kernel_size=5, stride=1, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        # A 5×5 convolution with padding 2 keeps the size; each max-pool halves it (floor).
        flat = 32 * (height // 2 // 2) * (width // 2 // 2)
        self.fc1 = nn.Linear(flat, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of ``x`` (shape ``N×C×H×W``)."""
        x = self.conv2(self.conv1(x))
        z = self.fc1(torch.flatten(x, 1))
        return self.fc3(self.fc2(z))


def _torchvision_resnet(name: str, class_name: str, summary: str) -> ModelFactory:
    """A factory of ``causalunlearn.models.resnet_tv.<class_name>`` that imports torchvision on
    its first call: importing torchvision costs 2.3 s on this project's CPU (it loads
    ``torch._dynamo``), which every command that never builds a ResNet-18 would pay."""

    def factory(num_classes: int, input_shape: Sequence[int] = (3, 32, 32)) -> nn.Module:
        from causalunlearn.models import resnet_tv

        return getattr(resnet_tv, class_name)(num_classes, input_shape)

    factory.__name__ = factory.__qualname__ = class_name
    factory.__doc__ = summary + f" (``causalunlearn.models.resnet_tv.{class_name}``)."
    factory.representation_layer = "avgpool"  # type: ignore[attr-defined]
    return register_model(name)(factory)


_torchvision_resnet(
    "resnet18", "CifarResNet18", "torchvision ResNet-18 with a CIFAR-sized stem, for 32×32 input"
)
_torchvision_resnet(
    "resnet18-224",
    "ResNet18At224",
    "The ResNet-18 of the official CaMU code for CIFAR: standard stem, input resized to 224×224",
)


def __getattr__(name: str):
    """``CifarResNet18`` and ``ResNet18At224`` live in :mod:`causalunlearn.models.resnet_tv`
    (imported on first use: it imports torchvision)."""
    if name in ("CifarResNet18", "ResNet18At224"):
        from causalunlearn.models import resnet_tv

        return getattr(resnet_tv, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


register_model("resnet20")(CifarResNet20)


@register_model("mlp")
class MLP(nn.Module):
    """A small MLP for scikit-learn's 8×8 digits (or any small input).

    flatten → ``fc1`` Linear(D→128) → ReLU → ``rep`` Linear(128→64) → ReLU → ``head``
    Linear(64→num_classes), with D the number of input values (64 for 1×8×8). The representation
    is the output of ``rep`` **before** its ReLU, mirroring the CNN whose representation ``fc1``
    has no activation: the representation is then a real-valued vector (no block of exact zeros)
    for CaMU's softmax over features; the ReLU before the head keeps the classifier non-linear.

    Args:
        num_classes: Number of classes.
        input_shape: Shape of one input (any; it is flattened).
    """

    representation_layer = "rep"

    def __init__(self, num_classes: int, input_shape: Sequence[int] = (1, 8, 8)) -> None:
        super().__init__()
        self.fc1 = nn.Linear(math.prod(input_shape), 128)
        self.rep = nn.Linear(128, 64)
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of ``x`` (shape ``N×…``, flattened per row)."""
        h = F.relu(self.fc1(torch.flatten(x, 1)))
        z = self.rep(h)
        return self.head(F.relu(z))


# --------------------------------------------------------------------------------------------------
# Checkpoints


def _unwrap(model: nn.Module) -> nn.Module:
    # torch.compile wraps the model and prefixes every state-dict key with "_orig_mod."; save and
    # load the inner model so checkpoints do not depend on whether the model was compiled.
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else model


def save_state(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Save ``model.state_dict()`` to ``path`` atomically.

    The state is written to a temporary file in the same folder, flushed to disk, then renamed over
    ``path`` with :func:`os.replace`, so ``path`` holds either the old or the new checkpoint, never
    half of one. Parent folders are created. Tensors are saved on their current device;
    :func:`load_state` maps them to the CPU by default.

    Args:
        model: The model (a ``torch.compile`` wrapper is unwrapped).
        path: Destination file.

    Returns:
        The destination path.
    """
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        torch.save(_unwrap(model).state_dict(), handle)
    return path


def load_state(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    map_location: torch.device | str | None = "cpu",
    strict: bool = True,
) -> nn.Module:
    """Load a state dict saved by :func:`save_state` (or ``torch.save(model.state_dict())``).

    The file is read with ``torch.load(..., weights_only=True)``: only tensors and plain containers
    are unpickled, never arbitrary Python objects.

    Args:
        model: The model to load into (in place; a ``torch.compile`` wrapper is unwrapped).
        path: The checkpoint file.
        map_location: Where ``torch.load`` puts the tensors before they are copied into the model.
        strict: Require the keys to match exactly (see ``nn.Module.load_state_dict``).

    Returns:
        ``model``.

    Raises:
        ModelError: ``state-file-not-found``, ``unreadable-state-file`` (corrupt file, or a file
            holding more than weights), ``state-mismatch`` (keys or shapes do not fit the model).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            "state-file-not-found",
            f"no checkpoint file at {str(path)!r}",
            "check the path; checkpoints are written by save_state(model, path)",
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ModelError(
            "unreadable-state-file",
            f"cannot read {str(path)!r} as a weights-only state dict: {_first_line(exc)}",
            "the file must hold model.state_dict() only (as written by save_state); files that"
            " pickle whole models or other Python objects are refused for safety",
        ) from exc
    if not isinstance(state, Mapping):
        raise ModelError(
            "unreadable-state-file",
            f"{str(path)!r} holds a {type(state).__name__}, not a state dict",
            "save checkpoints with save_state(model, path)",
        )
    target = _unwrap(model)
    try:
        target.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise ModelError(
            "state-mismatch",
            f"{str(path)!r} does not fit {type(target).__name__}: {exc}",
            "build the model with the same name, num_classes and input_shape as the one saved",
        ) from exc
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
