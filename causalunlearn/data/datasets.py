"""In-memory datasets, the dataset registry, data roots and the tensor cache.

Every dataset is loaded whole into memory as tensors (:class:`TensorData`), already normalised,
so that nothing later does per-sample Python work. Datasets are looked up by name in a registry
(:data:`DATASETS`); users add their own with :func:`register_dataset`.

Where files come from:

* the **data root** (:func:`resolve_data_root`): a folder given as an argument, else the
  ``CAUSALUNLEARN_DATA_ROOT`` environment variable. It is only ever read, never written (it may
  be shared, read-only data);
* the **cache dir** (:func:`default_cache_dir`): ``CAUSALUNLEARN_CACHE``, else
  ``~/.cache/causalunlearn``. Parsed tensors are cached there as ``.pt`` files (written
  atomically), keyed by the dataset name and the paths, sizes and modification times of its
  source files; torchvision downloads (``download=True``) also land there, under ``downloads/``.

The built-in datasets live in :mod:`causalunlearn.data.datasets_idx` (MNIST, Fashion-MNIST) and
:mod:`causalunlearn.data.datasets_cifar` (CIFAR-10, CIFAR-100, image folders); ``digits`` is here.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from causalunlearn.atomic import atomic_open
from causalunlearn.errors import CausalUnlearnWarning, DataError
from causalunlearn.plugins import IMPORT_HINT
from causalunlearn.registry import Registry

__all__ = [
    "DATASETS",
    "TensorData",
    "default_cache_dir",
    "load_dataset",
    "normalise_uint8",
    "register_dataset",
    "resolve_data_root",
]

DATA_ROOT_ENV = "CAUSALUNLEARN_DATA_ROOT"
CACHE_ENV = "CAUSALUNLEARN_CACHE"
_CACHE_FORMAT = 1  # bump when the layout of cached .pt files changes

FIX_ROOT_HINT = (
    "pass the folder that holds the data as data_root (CLI: --data-root DIR) or set the "
    f"{DATA_ROOT_ENV} environment variable; with internet access, load_dataset(..., "
    "download=True) fetches it through torchvision into the cache dir"
)


@dataclass(frozen=True, eq=False)
class TensorData:
    """A whole dataset held in memory as tensors.

    Attributes:
        name: Dataset name, recording the rendition (e.g. ``cifar10-jpeg``).
        train_x: Training inputs, float32, ``N×C×H×W``, already normalised.
        train_y: Training labels, int64, shape ``N``.
        test_x: Test inputs, like ``train_x``.
        test_y: Test labels, like ``train_y``.
        classes: Class names; label ``i`` is ``classes[i]``.
        mean: Per-channel mean subtracted during normalisation (input scaled to [0, 1] first).
        std: Per-channel standard deviation divided out during normalisation.
        source: Where the data was read from (a path, or a short description).
        train_index: For a dataset whose train/test split is the toolkit's own (``digits``):
            the row of the source (``sklearn.datasets.load_digits()``) that each training row
            is, int64 of length N; ``None`` where the split is the dataset's own files, rows in
            the files' order (see ``docs/concepts.md``, *Built-in datasets*). A copy made with
            other rows by :func:`dataclasses.replace` (a validation view) has ``None`` unless
            it is given new indices.
        test_index: The same for the test rows.
        index_rows: Internal: the tensors the indices were given with (detects indices carried
            over onto other rows by :func:`dataclasses.replace`).
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    source: str = ""
    train_index: np.ndarray | None = field(default=None, repr=False)
    test_index: np.ndarray | None = field(default=None, repr=False)
    index_rows: tuple[object, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            x, y = getattr(self, f"{part}_x"), getattr(self, f"{part}_y")
            if not isinstance(x, Tensor) or not isinstance(y, Tensor):
                raise DataError(
                    "bad-dataset",
                    f"dataset {self.name!r}: {part}_x and {part}_y must be torch tensors",
                    "build TensorData from tensors (torch.as_tensor(...))",
                )
            if x.ndim != 4 or y.ndim != 1 or x.shape[0] != y.shape[0]:
                raise DataError(
                    "bad-dataset",
                    f"dataset {self.name!r}: {part}_x must be N×C×H×W and {part}_y of length N, "
                    f"got {tuple(x.shape)} and {tuple(y.shape)}",
                    "add a channel axis to grey images (x.unsqueeze(1))",
                )
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise DataError(
                "bad-dataset",
                f"dataset {self.name!r}: train and test inputs differ in shape "
                f"({tuple(self.train_x.shape[1:])} vs {tuple(self.test_x.shape[1:])})",
                "resize both splits to the same shape",
            )
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        self._check_indices()

    def _check_indices(self) -> None:
        """Validate ``train_index``/``test_index``; drop those carried onto other rows."""
        rows = self.index_rows
        for side, part in enumerate(("train", "test")):
            index, x = getattr(self, f"{part}_index"), getattr(self, f"{part}_x")
            if index is None:
                continue
            if rows is not None and x is not rows[side] and index is rows[2 + side]:
                # ``replace(data, train_x=other rows)`` kept the old mapping: it is not theirs.
                object.__setattr__(self, f"{part}_index", None)
                continue
            array = np.array(index, dtype=np.int64, copy=True).reshape(-1)
            if array.shape[0] != x.shape[0]:
                raise DataError(
                    "bad-dataset",
                    f"dataset {self.name!r}: {part}_index has {array.shape[0]} entries for "
                    f"{x.shape[0]} {part} rows",
                    "give one source row index per row (or leave it out)",
                )
            array.setflags(write=False)
            object.__setattr__(self, f"{part}_index", array)
        object.__setattr__(
            self, "index_rows", (self.train_x, self.test_x, self.train_index, self.test_index)
        )

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, ``(C, H, W)``."""
        return tuple(self.train_x.shape[1:])

    @property
    def device(self) -> torch.device:
        """Device the tensors live on."""
        return self.train_x.device

    def to(self, device: torch.device | str) -> TensorData:
        """Return a copy whose tensors live on ``device`` (``self`` if already there).

        Args:
            device: Target device, e.g. ``"cuda"``.
        """
        device = torch.device(device)
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "test_x", "test_y")}
        # The same rows: the source row indices stay (given anew, so they are kept).
        for k in ("train_index", "test_index"):
            index = getattr(self, k)
            moved[k] = None if index is None else index.copy()
        return replace(self, **moved)

    def __repr__(self) -> str:
        return (
            f"TensorData(name={self.name!r}, train={len(self.train_y)}, test={len(self.test_y)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"device={self.device})"
        )


# --------------------------------------------------------------------------------------------
# Registry

_LOADER_OPTIONS = ("data_root", "download", "cache_dir", "progress")


def _key(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


#: Dataset loaders by name (case-insensitive, ``_`` equals ``-``). Add with
#: :func:`register_dataset`.
DATASETS: Registry[Callable[..., TensorData]] = Registry(
    "dataset",
    error=DataError,
    key=_key,
    hint=f"register your own with causalunlearn.data.register_dataset; {IMPORT_HINT}",
)


def register_dataset(
    name: str, *, overwrite: bool = False
) -> Callable[[Callable[..., TensorData]], Callable[..., TensorData]]:
    """Decorator that registers a dataset loader under ``name``.

    The loader returns a :class:`TensorData`. It may accept any of the keyword arguments
    ``data_root`` (``Path | None``, already resolved), ``download`` (``bool``), ``cache_dir``
    (``Path``) and ``progress`` (``bool``); :func:`load_dataset` passes only those it names
    (all of them if it takes ``**kwargs``). Names are case-insensitive and ``_`` equals ``-``.

    Example:
        >>> @register_dataset("my-data")
        ... def my_data(data_root=None):
        ...     ...

    Args:
        name: Name to register.
        overwrite: Replace a loader registered under ``name`` (e.g. when re-running a notebook
            cell); without it a taken name is an error, as in every registry.

    Raises:
        DataError: ``invalid-dataset-name`` for an empty name; ``duplicate-dataset`` if the name
            is taken and ``overwrite`` is false.
    """
    return DATASETS.register(name, overwrite=overwrite)


def load_dataset(
    name: str,
    data_root: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> TensorData:
    """Load a registered dataset whole into memory.

    Args:
        name: Registered name: ``digits``, ``mnist``, ``fashion-mnist``, ``cifar10``,
            ``cifar100`` or one added with :func:`register_dataset`; or a validation view of
            one, ``<name>-val<percent>-s<seed>`` (e.g. ``mnist-val20-s100``: 20% of the
            training rows held out as its test set, see :mod:`causalunlearn.data.views`).
        data_root: Folder holding the data (see :func:`resolve_data_root`); never written to.
        download: If the files are not under the data root, download them with torchvision
            into the cache dir (needs internet).
        cache_dir: Where parsed tensors and downloads are cached (default:
            :func:`default_cache_dir`).
        progress: Show a progress bar for slow steps (image decoding).

    Returns:
        The dataset, normalised, on the CPU.

    Raises:
        DataError: ``unknown-dataset`` for a name that is not registered, or whatever the
            loader raises (``missing-data-root``, ``data-not-found``, ``corrupt-data-file``...).
    """
    key = _key(name)
    loader = DATASETS.get(key, None)
    if loader is None:
        from causalunlearn.data.views import parse_view_name, validation_view

        view = parse_view_name(key)
        if view is not None and view[0] in DATASETS:
            base = load_dataset(
                view[0], data_root, download=download, cache_dir=cache_dir, progress=progress
            )
            return validation_view(base, view[1], view[2])
        raise DATASETS.unknown_error(name)
    options = {
        "data_root": resolve_data_root(data_root),
        "download": bool(download),
        "cache_dir": Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(),
        "progress": bool(progress),
    }
    result = loader(**_accepted(loader, options))
    if not isinstance(result, TensorData):
        raise DataError(
            "bad-dataset",
            f"the loader of dataset {key!r} returned {type(result).__name__}, not TensorData",
            "make the registered function return causalunlearn.data.TensorData",
        )
    return result


def _accepted(func: Callable[..., object], options: Mapping[str, object]) -> dict[str, object]:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: pass everything
        return dict(options)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(options)
    names = {p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    return {k: v for k, v in options.items() if k in names}


# --------------------------------------------------------------------------------------------
# Data root and cache


def resolve_data_root(data_root: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the data root: ``data_root`` if given, else ``$CAUSALUNLEARN_DATA_ROOT``, else None.

    Args:
        data_root: Explicit folder, or None.
    """
    if data_root is not None and str(data_root) != "":
        return Path(data_root).expanduser()
    env = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(env).expanduser() if env else None


def default_cache_dir() -> Path:
    """Return the cache dir: ``$CAUSALUNLEARN_CACHE``, else ``~/.cache/causalunlearn``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "causalunlearn"


def check_data_root(data_root: Path | None, dataset: str, wanted: str) -> Path:
    """Return ``data_root`` if it is an existing folder, else raise ``missing-data-root``.

    Args:
        data_root: The resolved data root.
        dataset: Dataset name, for the message.
        wanted: What is looked for there, for the message.
    """
    if data_root is None:
        raise DataError(
            "missing-data-root",
            f"dataset {dataset!r} needs a data root (no data_root given and "
            f"{DATA_ROOT_ENV} is not set); looked for {wanted}",
            FIX_ROOT_HINT,
        )
    if not data_root.is_dir():
        raise DataError(
            "missing-data-root",
            f"data root {str(data_root)!r} of dataset {dataset!r} is not an existing folder",
            FIX_ROOT_HINT,
        )
    return data_root


def source_key(name: str, sources: Iterable[Path], extra: object = None) -> str:
    """Return a short hash of a dataset name and its source files' paths, sizes and mtimes.

    Args:
        name: Dataset name.
        sources: The files the cached tensors are built from.
        extra: Anything else the content depends on (must be JSON-serialisable).
    """
    stats = []
    for path in sources:
        st = path.stat()
        stats.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
    text = json.dumps([_CACHE_FORMAT, name, stats, extra], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_tensors(
    name: str,
    key: str,
    cache_dir: Path,
    build: Callable[[], dict[str, object]],
) -> dict[str, object]:
    """Return the tensors cached as ``cache_dir/name-key.pt``, building and caching them if absent.

    The file is loaded with ``torch.load(weights_only=True)``; an unreadable cache file is rebuilt.
    The new file is written under a temporary name and moved into place (atomic). If the cache
    dir cannot be written, a :class:`CausalUnlearnWarning` is issued and the data is returned
    uncached.

    Args:
        name: Dataset name (file name prefix).
        key: Cache key, see :func:`source_key`.
        cache_dir: Cache folder.
        build: Builds the dict of tensors (and plain lists/strings) to cache.
    """
    path = cache_dir / f"{name}-{key}.pt"
    if path.is_file():
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(data, dict) and data.get("format") == _CACHE_FORMAT:
                return data
        except Exception:  # a broken cache file is rebuilt, never fatal
            pass
    data = dict(build())
    data["format"] = _CACHE_FORMAT
    try:
        with atomic_open(path, "wb") as fh:
            torch.save(data, fh)
    except OSError as exc:
        warnings.warn(
            f"could not cache dataset {name!r} in {str(cache_dir)!r} ({exc}); set "
            f"{CACHE_ENV} to a writable folder to make later loads fast",
            CausalUnlearnWarning,
            stacklevel=3,
        )
    return data


def normalise_uint8(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Scale a uint8 ``N×C×H×W`` tensor to [0, 1] float32, then normalise per channel.

    Args:
        x: uint8 images.
        mean: One mean per channel (or one for all).
        std: One standard deviation per channel (or one for all).
    """
    out = x.to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return out.sub_(m).div_(s)


# --------------------------------------------------------------------------------------------
# digits (scikit-learn, embedded)

DIGITS_SPLIT_SEED = 0


@register_dataset("digits")
def load_digits_dataset() -> TensorData:
    """scikit-learn's 8×8 digits (1,797 images, no files needed).

    Pixels (0..16) are divided by 16, then standardised with the *training* set's scalar mean
    and standard deviation (population std, over all pixels of all training images). The
    train/test split is the toolkit's own: ``train_test_split(arange(1797), test_size=0.2,
    stratify=target, random_state=DIGITS_SPLIT_SEED)`` (seed 0), each side sorted, so that it is
    the same everywhere: 1,437 train, 360 test. ``train_index``/``test_index`` give the row of
    ``load_digits()`` that each row is (training row ``i`` is ``load_digits().images[
    train_index[i]]``), so forget IDs and a checkpoint trained on another split can be mapped.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / 16.0
    labels = np.asarray(bunch.target, dtype=np.int64)
    train_i, test_i = train_test_split(
        np.arange(len(labels)),
        test_size=0.2,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    train_i, test_i = np.sort(train_i), np.sort(test_i)
    x = torch.from_numpy(images).unsqueeze(1)
    mean = float(x[train_i].mean())
    std = float(x[train_i].std(unbiased=False))
    x = (x - mean) / std
    y = torch.from_numpy(labels)
    return TensorData(
        name="digits",
        train_x=x[train_i].contiguous(),
        train_y=y[train_i].contiguous(),
        test_x=x[test_i].contiguous(),
        test_y=y[test_i].contiguous(),
        classes=tuple(str(i) for i in range(10)),
        mean=(mean,),
        std=(std,),
        source="sklearn.datasets.load_digits",
        train_index=train_i,
        test_index=test_i,
    )
