"""Data layer: in-memory datasets (:mod:`.datasets`) and forget/retain splits (:mod:`.splits`).

Importing this package registers the built-in datasets: ``digits``, ``mnist``, ``fashion-mnist``,
``cifar10`` and ``cifar100``; any of them loads as a validation view by name
(``mnist-val20-s100``, :mod:`.views`).
"""

from causalunlearn.data.datasets import (
    DATASETS,
    TensorData,
    default_cache_dir,
    load_dataset,
    register_dataset,
    resolve_data_root,
)
from causalunlearn.data.datasets_cifar import (
    CIFAR10_CLASSES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_image_folder,
)
from causalunlearn.data.datasets_idx import read_idx
from causalunlearn.data.splits import SCENARIO_FORMS, Scenario, Split, make_split, parse_scenario
from causalunlearn.data.views import (
    parse_view_name,
    validation_rows,
    validation_view,
    validation_view_name,
    view_base,
)

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SCENARIO_FORMS",
    "Scenario",
    "Split",
    "TensorData",
    "default_cache_dir",
    "load_dataset",
    "load_image_folder",
    "make_split",
    "parse_scenario",
    "parse_view_name",
    "read_idx",
    "register_dataset",
    "resolve_data_root",
    "validation_rows",
    "validation_view",
    "validation_view_name",
    "view_base",
]
