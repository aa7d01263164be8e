"""Non-training unlearning methods (SSD, ...) as *method entries*, beside the graphs.

A method entry file (``format: causalunlearn.method/v1``) names a registered method and its
parameters; :func:`load_any` reads either kind of file, or a shipped one by name (``camu``,
``ablations/no-cut-forget-z``, ``baselines/scrub``: its path under ``graphs/`` without ``.yaml``;
:func:`shipped_graphs` lists them). Importing this package does not import torch.
"""

from causalunlearn.methods.entry import (
    METHOD_FORMAT,
    MethodEntry,
    MethodError,
    is_method_file,
    load_any,
    load_method,
    method_from_dict,
)
from causalunlearn.methods.registry import (
    Param,
    RegisteredMethod,
    get_method,
    method_names,
    register_method,
)

__all__ = [
    "METHOD_FORMAT",
    "MethodEntry",
    "MethodError",
    "Param",
    "RegisteredMethod",
    "get_method",
    "is_method_file",
    "load_any",
    "load_method",
    "method_from_dict",
    "method_names",
    "register_method",
]
