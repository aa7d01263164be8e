"""Models: a registry of classifiers that return logits and declare their representation layer.

This layer knows nothing of graphs. Devices are parameters (``build_model(..., device=...)``).
"""

from causalunlearn.models.representation import (
    REPRESENTATION_ALIAS,
    RepresentationCapture,
    capture_representation,
    forward_with_representation,
    resolve_layer,
    resolve_layer_path,
)
from causalunlearn.models.resnet_cifar import CifarResNet, CifarResNet20
from causalunlearn.models.zoo import (
    CNN,
    MLP,
    MODELS,
    ModelFactory,
    build_model,
    load_state,
    register_model,
    save_state,
)

__all__ = [
    "CNN",
    "MLP",
    "MODELS",
    "REPRESENTATION_ALIAS",
    "CifarResNet",
    "CifarResNet18",
    "CifarResNet20",
    "ModelFactory",
    "RepresentationCapture",
    "ResNet18At224",
    "build_model",
    "capture_representation",
    "forward_with_representation",
    "load_state",
    "register_model",
    "resolve_layer",
    "resolve_layer_path",
    "save_state",
]


def __getattr__(name: str):
    """The torchvision ResNet-18 classes, imported on first use (torchvision is slow to import)."""
    if name in ("CifarResNet18", "ResNet18At224"):
        from causalunlearn.models import resnet_tv

        return getattr(resnet_tv, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
