"""MNIST and Fashion-MNIST, read straight from the original idx files.

The four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each gzipped ``.gz`` or not) are looked
for under the data root in, in order:

* MNIST: ``root/mnist/``, ``root/MNIST/raw/`` (torchvision's layout), ``root/``;
* Fashion-MNIST: ``root/fashion-mnist/``, ``root/FashionMNIST/raw/``, ``root/``;

then in the cache dir's ``downloads/`` folder (where ``download=True`` puts torchvision's copy).
They are parsed with :mod:`gzip` and numpy (header, magic numbers and sizes checked), cached as
uint8 tensors, scaled to [0, 1] and normalised with the usual constants (MNIST 0.1307/0.3081,
Fashion-MNIST 0.2860/0.3530).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from causalunlearn.data.datasets import (
    FIX_ROOT_HINT,
    TensorData,
    cached_tensors,
    check_data_root,
    normalise_uint8,
    register_dataset,
    source_key,
)
from causalunlearn.errors import DataError

__all__ = ["IDX_FILES", "read_idx"]

#: The four idx files of an MNIST-like dataset (without ``.gz``), by role.
IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
_MAGIC = {3: 2051, 1: 2049}  # uint8 data with 3 dims (images) / 1 dim (labels)


@dataclass(frozen=True)
class _IdxSpec:
    name: str
    folders: tuple[str, ...]
    torchvision_class: str
    mean: float
    std: float
    classes: tuple[str, ...]


_MNIST = _IdxSpec(
    name="mnist",
    folders=("mnist", "MNIST/raw", "."),
    torchvision_class="MNIST",
    mean=0.1307,
    std=0.3081,
    classes=tuple(str(i) for i in range(10)),
)
_FASHION = _IdxSpec(
    name="fashion-mnist",
    folders=("fashion-mnist", "FashionMNIST/raw", "."),
    torchvision_class="FashionMNIST",
    mean=0.2860,
    std=0.3530,
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
)


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Read one idx file of unsigned bytes (gzipped if its name ends in ``.gz``).

    Args:
        path: The file.
        ndim: Expected number of dimensions (3 for images, 1 for labels), or None for any.

    Returns:
        A writable uint8 array of the shape the header declares.

    Raises:
        DataError: ``corrupt-data-file`` if the file cannot be decompressed, has a wrong magic
            number or its size does not match its header.
    """
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise _corrupt(path, f"cannot be read: {exc}") from exc
    if len(data) < 4:
        raise _corrupt(path, f"is only {len(data)} bytes long, shorter than an idx header")
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08 or dims == 0 or (ndim is not None and dims != ndim):
        want = f"{_MAGIC[ndim]:#010x}" if ndim in _MAGIC else "0x000008NN"
        raise _corrupt(
            path,
            f"has magic number {int.from_bytes(data[:4], 'big'):#010x}, expected {want} "
            "(an idx file of unsigned bytes)",
        )
    offset = 4 + 4 * dims
    if len(data) < offset:
        raise _corrupt(path, "is truncated inside its header")
    shape = struct.unpack(f">{dims}I", data[4:offset])
    expected = offset + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise _corrupt(
            path,
            f"holds {len(data)} bytes but its header (shape {shape}) implies {expected}"
            + (" (truncated)" if len(data) < expected else ""),
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape).copy()


def _corrupt(path: Path, what: str) -> DataError:
    return DataError(
        "corrupt-data-file",
        f"data file {str(path)!r} {what}",
        "replace it with a fresh copy of the original file (e.g. from the dataset's home page or "
        "torchvision's mirror, or load_dataset(..., download=True) with internet access)",
    )


def _find_files(folder: Path) -> dict[str, Path]:
    found = {}
    for role, base in IDX_FILES.items():
        for candidate in (folder / f"{base}.gz", folder / base):
            if candidate.is_file():
                found[role] = candidate
                break
    return found


def _locate(
    spec: _IdxSpec, data_root: Path | None, download: bool, cache_dir: Path
) -> dict[str, Path]:
    """Return the four files of ``spec`` (downloading them if asked), or raise a DataError."""
    searched: list[Path] = []
    partial: list[str] = []

    def search(root: Path) -> dict[str, Path] | None:
        for sub in spec.folders:
            folder = (root / sub) if sub != "." else root
            searched.append(folder)
            found = _find_files(folder)
            if len(found) == len(IDX_FILES):
                return found
            if found:
                missing = sorted(set(IDX_FILES) - set(found))
                partial.append(
                    f"{folder} lacks " + ", ".join(IDX_FILES[r] + "[.gz]" for r in missing)
                )
        return None

    root_ok = data_root is not None and data_root.is_dir()
    found = search(data_root) if root_ok else None
    downloads = cache_dir / "downloads"
    if found is None:
        found = search(downloads)
    if found is None and download:
        _download(spec, downloads)
        found = search(downloads)
    if found is not None:
        return found
    wanted = ", ".join(f"{b}[.gz]" for b in IDX_FILES.values())
    if not root_ok:
        check_data_root(data_root, spec.name, f"{wanted} in {spec.folders} under it")
    raise DataError(
        "data-not-found",
        f"dataset {spec.name!r}: no folder holds all of {wanted}; looked in "
        + ", ".join(str(p) for p in dict.fromkeys(searched))
        + (f" ({'; '.join(partial)})" if partial else ""),
        f"put the four files in {data_root}/{spec.folders[0]}/; " + FIX_ROOT_HINT,
    )


def _download(spec: _IdxSpec, downloads: Path) -> None:
    import torchvision.datasets as tvd

    cls = getattr(tvd, spec.torchvision_class)
    try:
        cls(str(downloads), train=True, download=True)
    except Exception as exc:  # network errors come in many types (URLError, RuntimeError...)
        raise DataError(
            "download-failed",
            f"could not download dataset {spec.name!r} with torchvision into {downloads}: {exc}",
            "check the internet connection, or download the files yourself and pass their "
            "folder as data_root",
        ) from exc


def _load_idx_dataset(
    spec: _IdxSpec, data_root: Path | None, download: bool, cache_dir: Path
) -> TensorData:
    files = _locate(spec, data_root, download, cache_dir)

    def build() -> dict[str, object]:
        arrays = {r: read_idx(p, 3 if r.endswith("_x") else 1) for r, p in files.items()}
        for part in ("train", "test"):
            x, y = arrays[f"{part}_x"], arrays[f"{part}_y"]
            if len(x) != len(y):
                raise _corrupt(
                    files[f"{part}_y"],
                    f"holds {len(y)} labels but {files[f'{part}_x'].name} holds {len(x)} images",
                )
            if len(y) and int(y.max()) >= len(spec.classes):
                raise _corrupt(files[f"{part}_y"], f"holds label {int(y.max())} (expected 0..9)")
        if arrays["train_x"].shape[1:] != arrays["test_x"].shape[1:]:
            raise _corrupt(files["test_x"], "holds images of another size than the training set")
        out: dict[str, object] = {
            k: torch.from_numpy(v).unsqueeze(1) if k.endswith("_x") else torch.from_numpy(v)
            for k, v in arrays.items()
        }
        out["classes"] = list(spec.classes)
        return out

    key = source_key(spec.name, [files[r] for r in IDX_FILES])
    raw = cached_tensors(spec.name, key, cache_dir, build)
    mean, std = (spec.mean,), (spec.std,)
    return TensorData(
        name=spec.name,
        train_x=normalise_uint8(raw["train_x"], mean, std),
        train_y=raw["train_y"].to(torch.int64),
        test_x=normalise_uint8(raw["test_x"], mean, std),
        test_y=raw["test_y"].to(torch.int64),
        classes=tuple(raw["classes"]),
        mean=mean,
        std=std,
        source=str(files["train_x"].parent),
    )


@register_dataset("mnist")
def load_mnist(data_root: Path | None, download: bool, cache_dir: Path) -> TensorData:
    """MNIST: 60,000 train / 10,000 test 28×28 grey digits, normalised with 0.1307/0.3081."""
    return _load_idx_dataset(_MNIST, data_root, download, cache_dir)


@register_dataset("fashion-mnist")
def load_fashion_mnist(data_root: Path | None, download: bool, cache_dir: Path) -> TensorData:
    """Fashion-MNIST: 60,000 / 10,000 28×28 grey clothes, normalised with 0.2860/0.3530."""
    return _load_idx_dataset(_FASHION, data_root, download, cache_dir)
