"""CIFAR-10, CIFAR-100 and image-folder datasets.

CIFAR-10 is read, in this order of preference, from

1. torchvision's pickled format, ``root/cifar-10-batches-py/`` (also ``root/cifar10/...``, or
   the data root itself), name ``cifar10``;
2. an image-folder export, ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` in
   ``root/cifar10-jpeg/``, ``root/cifar10/`` or ``root/``, name ``cifar10-jpeg`` (``-images`` if
   no file is a JPEG);
3. the same tree packed as ``cifar10-jpeg.tar.gz`` (in ``root/cifar10-jpeg/``, ``root/cifar10/``
   or ``root/``). The archive is *streamed* — each image decoded straight from it — so nothing is
   ever extracted, neither next to the data nor in the cache dir;
4. with ``download=True``, torchvision's download into the cache dir's ``downloads/``.

CIFAR-100 is read from ``root/cifar-100-python/`` (torchvision's pickled format; fine labels) or
downloaded. The pickles are read here directly (as torchvision does, with ``pickle``, so only point
the data root at files you trust) rather than through torchvision's classes, whose md5 check
rejects anything but the exact original files.

Decoded images are cached as uint8 tensors in the cache dir. Inputs stay 32×32 and are normalised
with the ImageNet mean/std (the authors' ResNet-18 pipeline; resizing to 224 is the model's job).
Class order is the sorted folder names (for CIFAR-10 exports it equals CIFAR-10's label order,
which is checked) or the ``meta`` file's order for the pickled format.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from causalunlearn.data.datasets import (
    FIX_ROOT_HINT,
    TensorData,
    cached_tensors,
    check_data_root,
    default_cache_dir,
    normalise_uint8,
    register_dataset,
    source_key,
)
from causalunlearn.errors import DataError

__all__ = [
    "CIFAR10_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "load_image_folder",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_SPLITS = ("train", "test")
_PICKLED = {
    # name: (folder, train files, test files, meta file, meta key, label key)
    "cifar10": (
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        "label_names",
        "labels",
    ),
    "cifar100": (
        "cifar-100-python",
        ("train",),
        ("test",),
        "meta",
        "fine_label_names",
        "fine_labels",
    ),
}


def _corrupt(where: object, what: str) -> DataError:
    return DataError(
        "corrupt-data-file",
        f"data file {str(where)!r} {what}",
        "replace it with a fresh copy of the dataset (or load_dataset(..., download=True) with "
        "internet access)",
    )


# --------------------------------------------------------------------------------------------
# Pickled (torchvision) format


def _unpickle(path: Path) -> dict[str, object]:
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh, encoding="latin1")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, AttributeError) as exc:
        raise _corrupt(path, f"cannot be unpickled: {exc}") from exc
    if not isinstance(obj, dict):
        raise _corrupt(path, f"holds a {type(obj).__name__}, expected a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _read_pickled(name: str, folder: Path) -> dict[str, object]:
    _, train_files, test_files, meta_file, meta_key, label_key = _PICKLED[name]
    meta = _unpickle(folder / meta_file)
    if meta_key not in meta:
        raise _corrupt(folder / meta_file, f"has no {meta_key!r} entry")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta[meta_key]]
    out: dict[str, object] = {"classes": classes}
    for part, files in (("train", train_files), ("test", test_files)):
        xs, ys = [], []
        for fname in files:
            path = folder / fname
            batch = _unpickle(path)
            if "data" not in batch or label_key not in batch:
                raise _corrupt(path, f"lacks the 'data' or {label_key!r} entry")
            x = np.asarray(batch["data"])
            y = np.asarray(batch[label_key], dtype=np.int64)
            if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
                raise _corrupt(
                    path,
                    f"holds data of shape {x.shape} ({x.dtype}) and {len(y)} labels, expected "
                    "N×3072 uint8 rows and N labels",
                )
            if len(y) and (y.min() < 0 or y.max() >= len(classes)):
                raise _corrupt(path, f"holds labels outside 0..{len(classes) - 1}")
            xs.append(x.reshape(-1, 3, 32, 32))
            ys.append(y)
        out[f"{part}_x"] = torch.from_numpy(np.concatenate(xs))
        out[f"{part}_y"] = torch.from_numpy(np.concatenate(ys))
    return out


def _pickled_files(name: str, folder: Path) -> list[Path]:
    _, train_files, test_files, meta_file, *_ = _PICKLED[name]
    return [folder / f for f in (*train_files, *test_files, meta_file)]


def _find_pickled(name: str, roots: Sequence[Path]) -> Path | None:
    sub = _PICKLED[name][0]
    for root in roots:
        for folder in (root / sub, root / name / sub, root):
            if all(p.is_file() for p in _pickled_files(name, folder)):
                return folder
    return None


def _load_pickled(name: str, folder: Path, cache_dir: Path) -> TensorData:
    key = source_key(name, _pickled_files(name, folder))
    raw = cached_tensors(name, key, cache_dir, lambda: _read_pickled(name, folder))
    return _tensor_data(name, raw, str(folder))


def _download(name: str, downloads: Path) -> None:
    import torchvision.datasets as tvd

    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    try:
        cls(str(downloads), train=True, download=True)
    except Exception as exc:  # network errors come in many types
        raise DataError(
            "download-failed",
            f"could not download dataset {name!r} with torchvision into {downloads}: {exc}",
            "check the internet connection, or download it yourself and pass its folder as "
            "data_root",
        ) from exc


def _tensor_data(name: str, raw: dict[str, object], source: str) -> TensorData:
    return TensorData(
        name=name,
        train_x=normalise_uint8(raw["train_x"], IMAGENET_MEAN, IMAGENET_STD),
        train_y=raw["train_y"].to(torch.int64),
        test_x=normalise_uint8(raw["test_x"], IMAGENET_MEAN, IMAGENET_STD),
        test_y=raw["test_y"].to(torch.int64),
        classes=tuple(raw["classes"]),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        source=source,
    )


# --------------------------------------------------------------------------------------------
# Image folders (a directory tree or a tar archive of one)


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def _folder_files(folder: Path) -> list[tuple[str, str, Path]]:
    """(split, class, path) of every image in ``folder/{train,test}/<class>/``."""
    files = []
    for part in _SPLITS:
        for class_dir in sorted((folder / part).iterdir()):
            if class_dir.is_dir() and not class_dir.name.startswith("."):
                for path in sorted(class_dir.iterdir()):
                    if _is_image(path.name) and path.is_file():
                        files.append((part, class_dir.name, path))
    return files


def _tar_entries(archive: Path) -> Iterator[tuple[str, str, str, bytes]]:
    """(split, class, member name, bytes) of every image ``.../{train,test}/<class>/<file>``."""
    try:
        with tarfile.open(archive, "r|*") as tar:  # streamed: one sequential pass
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if (
                    member.isfile()
                    and len(parts) >= 3
                    and parts[-3] in _SPLITS
                    and _is_image(parts[-1])
                ):
                    fh = tar.extractfile(member)
                    yield parts[-3], parts[-2], member.name, fh.read() if fh else b""
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise _corrupt(archive, f"is not a readable tar archive: {exc}") from exc


def _decode(data: bytes, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _corrupt(where, f"is not a readable image: {exc}") from exc


def _decode_tree(
    entries: Iterator[tuple[str, str, str, bytes]], source: Path, progress: bool
) -> dict[str, object]:
    from causalunlearn.progress import progress_bar

    decoded: dict[str, list[tuple[str, str, np.ndarray]]] = {p: [] for p in _SPLITS}
    shape = None
    bar = progress_bar(entries, desc=f"decoding {source.name}", unit="img", enabled=progress)
    for part, cls, where, data in bar:
        img = _decode(data, where)
        if shape is None:
            shape = img.shape
        elif img.shape != shape:
            raise DataError(
                "inconsistent-image-size",
                f"image {where!r} in {str(source)!r} is {img.shape[1]}×{img.shape[0]}, the "
                f"others {shape[1]}×{shape[0]}",
                "resize all images of the folder to one size",
            )
        decoded[part].append((cls, where, img))
    class_sets = {p: sorted({c for c, _, _ in decoded[p]}) for p in _SPLITS}
    if not decoded["train"] or not decoded["test"]:
        empty = [p for p in _SPLITS if not decoded[p]]
        raise DataError(
            "data-not-found",
            f"{str(source)!r} holds no images under {' and '.join(empty)}/<class>/",
            f"expected the layout train/<class>/*.jpg and test/<class>/*.jpg (suffixes "
            f"{', '.join(IMAGE_SUFFIXES)})",
        )
    if class_sets["train"] != class_sets["test"]:
        raise DataError(
            "inconsistent-classes",
            f"{str(source)!r}: train classes {class_sets['train']} differ from test classes "
            f"{class_sets['test']}",
            "give train/ and test/ the same class folders",
        )
    classes = class_sets["train"]
    index = {c: i for i, c in enumerate(classes)}
    out: dict[str, object] = {"classes": classes}
    for part in _SPLITS:
        rows = sorted(decoded[part], key=lambda r: (r[0], r[1]))  # ImageFolder order
        x = np.stack([img for _, _, img in rows])  # N×H×W×3
        out[f"{part}_x"] = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        out[f"{part}_y"] = torch.tensor([index[c] for c, _, _ in rows], dtype=torch.int64)
    out["jpeg"] = int(
        any(w.lower().endswith((".jpg", ".jpeg")) for p in _SPLITS for _, w, _ in decoded[p])
    )
    return out


def _read_image_source(source: Path, cache_dir: Path, progress: bool, name: str):
    if source.is_dir():
        files = _folder_files(source)
        key = source_key(name, [p for _, _, p in files])

        def build() -> dict[str, object]:
            entries = ((s, c, str(p), p.read_bytes()) for s, c, p in files)
            return _decode_tree(entries, source, progress)

    else:
        key = source_key(name, [source])

        def build() -> dict[str, object]:
            return _decode_tree(_tar_entries(source), source, progress)

    return cached_tensors(name, key, cache_dir, build)


def load_image_folder(
    source: str | os.PathLike[str],
    *,
    name: str | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> TensorData:
    """Load an image-folder dataset: ``train/<class>/*`` and ``test/<class>/*`` image files.

    Use it to register your own data, e.g.
    ``register_dataset("pets")(lambda data_root: load_image_folder(data_root / "pets"))``.

    Args:
        source: The folder holding ``train/`` and ``test/``, or a tar archive (``.tar``,
            ``.tar.gz``...) of such a tree (any leading folders inside it are ignored); the
            archive is streamed, never extracted.
        name: Dataset name (default: the folder or archive name).
        mean: Per-channel mean for normalisation (after scaling to [0, 1]).
        std: Per-channel standard deviation for normalisation.
        cache_dir: Where decoded images are cached (default :func:`default_cache_dir`).
        progress: Show a progress bar while decoding.

    Returns:
        The dataset; classes are the sorted folder names, images in (class, file name) order.

    Raises:
        DataError: ``data-not-found``, ``corrupt-data-file``, ``inconsistent-classes`` or
            ``inconsistent-image-size``.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise DataError(
            "data-not-found",
            f"image folder {str(source)!r} does not exist",
            "pass a folder with train/<class>/ and test/<class>/, or a tar archive of one",
        )
    if source.is_dir() and not all((source / p).is_dir() for p in _SPLITS):
        raise DataError(
            "data-not-found",
            f"folder {str(source)!r} has no train/ and test/ subfolders",
            "expected the layout train/<class>/*.jpg and test/<class>/*.jpg",
        )
    if name is None:
        name = source.name.split(".")[0] if source.is_file() else source.name
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    raw = _read_image_source(source, cache, progress, name)
    return TensorData(
        name=name,
        train_x=normalise_uint8(raw["train_x"], mean, std),
        train_y=raw["train_y"],
        test_x=normalise_uint8(raw["test_x"], mean, std),
        test_y=raw["test_y"],
        classes=tuple(raw["classes"]),
        mean=tuple(mean),
        std=tuple(std),
        source=str(source),
    )


# --------------------------------------------------------------------------------------------
# Registered loaders


def _find_image_source(root: Path) -> Path | None:
    for folder in (root / "cifar10-jpeg", root / "cifar10", root):
        if all((folder / p).is_dir() for p in _SPLITS):
            return folder
    for folder in (root / "cifar10-jpeg", root / "cifar10", root):
        if (folder / "cifar10-jpeg.tar.gz").is_file():
            return folder / "cifar10-jpeg.tar.gz"
    return None


def _not_found(name: str, data_root: Path | None, wanted: str) -> DataError:
    check_data_root(data_root, name, wanted)  # raises missing-data-root if there is no root
    return DataError(
        "data-not-found",
        f"dataset {name!r}: found none of {wanted} under {str(data_root)!r}",
        FIX_ROOT_HINT,
    )


@register_dataset("cifar10")
def load_cifar10(
    data_root: Path | None, download: bool, cache_dir: Path, progress: bool = True
) -> TensorData:
    """CIFAR-10, 50,000 / 10,000 32×32 RGB images (see the module doc for where it is looked for).

    The name of the result records the rendition: ``cifar10`` (original pickles) or
    ``cifar10-jpeg`` (the lossy JPEG export).
    """
    roots = [data_root] if data_root is not None and data_root.is_dir() else []
    downloads = cache_dir / "downloads"
    folder = _find_pickled("cifar10", roots)
    if folder is not None:
        return _load_pickled("cifar10", folder, cache_dir)
    source = _find_image_source(roots[0]) if roots else None
    if source is not None:
        raw = _read_image_source(source, cache_dir, progress, "cifar10-image-folder")
        if tuple(raw["classes"]) != CIFAR10_CLASSES:
            raise DataError(
                "unexpected-classes",
                f"{str(source)!r} has the classes {list(raw['classes'])}, not CIFAR-10's",
                "point the data root at a CIFAR-10 export, or load other image folders with "
                "causalunlearn.data.load_image_folder",
            )
        name = "cifar10-jpeg" if raw.get("jpeg", 1) else "cifar10-images"
        return _tensor_data(name, raw, str(source))
    folder = _find_pickled("cifar10", [downloads])
    if folder is None and download:
        _download("cifar10", downloads)
        folder = _find_pickled("cifar10", [downloads])
    if folder is not None:
        return _load_pickled("cifar10", folder, cache_dir)
    raise _not_found(
        "cifar10",
        data_root,
        "cifar-10-batches-py/, cifar10-jpeg/{train,test}/<class>/ or "
        "cifar10-jpeg/cifar10-jpeg.tar.gz",
    )


@register_dataset("cifar100")
def load_cifar100(data_root: Path | None, download: bool, cache_dir: Path) -> TensorData:
    """CIFAR-100, 50,000 / 10,000 32×32 RGB images, 100 fine classes (pickled format only)."""
    roots = [data_root] if data_root is not None and data_root.is_dir() else []
    downloads = cache_dir / "downloads"
    folder = _find_pickled("cifar100", [*roots, downloads])
    if folder is None and download:
        _download("cifar100", downloads)
        folder = _find_pickled("cifar100", [downloads])
    if folder is None:
        raise _not_found("cifar100", data_root, "cifar-100-python/{train,test,meta}")
    return _load_pickled("cifar100", folder, cache_dir)
