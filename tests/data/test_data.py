"""Tests of the data layer: datasets (on tiny files written here) and forget/retain splits.

Slow tests (``-m slow``) read the real data from ``$CAUSALUNLEARN_DATA_ROOT``.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import causalunlearn.data.datasets_idx as datasets_idx
from causalunlearn.data import (
    CIFAR10_CLASSES,
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Scenario,
    Split,
    TensorData,
    default_cache_dir,
    load_dataset,
    load_image_folder,
    make_split,
    parse_scenario,
    read_idx,
    register_dataset,
    resolve_data_root,
)
from causalunlearn.errors import DataError

# ----------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(autouse=True)
def _isolated_env(request, monkeypatch, tmp_path):
    """Fast tests never see the user's data root or cache."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.delenv("CAUSALUNLEARN_DATA_ROOT", raising=False)
        monkeypatch.setenv("CAUSALUNLEARN_CACHE", str(tmp_path / "default-cache"))


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def fake_mnist(folder: Path, gz: bool = True, n_train: int = 30, n_test: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": (np.arange(n_train) % 10).astype(np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": (np.arange(n_test) % 10).astype(np.uint8),
    }
    suffix = ".gz" if gz else ""
    files = {
        role: write_idx(folder / (datasets_idx.IDX_FILES[role] + suffix), arrays[role])
        for role in arrays
    }
    return arrays, files


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def normalised(x: np.ndarray, mean, std) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(x, dtype=np.float32) / 255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (t - m) / s


def jpeg_tree(folder: Path, classes=CIFAR10_CLASSES, n_train=2, n_test=1, size=32) -> Path:
    """Write train/<class>/NNNN.jpg and test/<class>/NNNN.jpg; class i is grey value 20*i+10."""
    from PIL import Image

    for part, n in (("train", n_train), ("test", n_test)):
        for i, cls in enumerate(classes):
            (folder / part / cls).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                pixels = np.full((size, size, 3), 20 * i + 10, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / part / cls / f"{k:04d}.jpg", quality=95)
    return folder


def fake_cifar_pickles(root: Path, which: str, rng_seed: int = 0) -> dict[str, np.ndarray]:
    """The on-disk pickle layout of torchvision's CIFAR-10 / CIFAR-100 (tiny)."""
    rng = np.random.default_rng(rng_seed)
    if which == "cifar10":
        folder = root / "cifar-10-batches-py"
        parts = {**{f"data_batch_{i}": 2 for i in range(1, 6)}, "test_batch": 3}
        label_key, classes = "labels", 10
        meta_name, meta = "batches.meta", {"label_names": list(CIFAR10_CLASSES)}
    else:
        folder = root / "cifar-100-python"
        parts = {"train": 7, "test": 4}
        label_key, classes = "fine_labels", 100
        meta_name = "meta"
        meta = {"fine_label_names": [f"c{i:02d}" for i in range(100)], "coarse_label_names": []}
    folder.mkdir(parents=True)
    out: dict[str, list] = {"train_x": [], "train_y": [], "test_x": [], "test_y": []}
    for fname, n in parts.items():
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, n).tolist()
        batch = {"batch_label": fname, "data": data, label_key: labels, "filenames": []}
        with open(folder / fname, "wb") as fh:
            pickle.dump(batch, fh)
        part = "test" if fname.startswith("test") else "train"
        out[f"{part}_x"].append(data.reshape(-1, 3, 32, 32))
        out[f"{part}_y"].append(np.asarray(labels))
    with open(folder / meta_name, "wb") as fh:
        pickle.dump(meta, fh)
    return {k: np.concatenate(v) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------
# digits, TensorData, registry, roots


def test_digits_loads_normalised_and_stratified():
    d = load_dataset("digits")
    assert d.name == "digits"
    assert d.train_x.shape == (1437, 1, 8, 8) and d.test_x.shape == (360, 1, 8, 8)
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    assert d.classes == tuple(str(i) for i in range(10)) and d.num_classes == 10
    assert d.input_shape == (1, 8, 8)
    assert abs(float(d.train_x.mean())) < 1e-4 and abs(float(d.train_x.std()) - 1) < 1e-3
    # stratified 80/20: every class is ~20% of its samples in the test set
    train_counts = np.bincount(d.train_y.numpy(), minlength=10)
    test_counts = np.bincount(d.test_y.numpy(), minlength=10)
    assert np.all(np.abs(test_counts / (train_counts + test_counts) - 0.2) < 0.02)
    again = load_dataset("digits")
    assert torch.equal(d.train_x, again.train_x) and torch.equal(d.test_y, again.test_y)


def test_tensor_data_to_repr_and_validation():
    d = load_dataset("digits")
    moved = d.to("cpu")
    assert moved.device == torch.device("cpu") and torch.equal(moved.train_x, d.train_x)
    assert "train=1437" in repr(d) and "tensor(" not in repr(d)
    with pytest.raises(DataError) as err:
        TensorData("bad", d.train_x, d.train_y[:-1], d.test_x, d.test_y, d.classes)
    assert err.value.code == "bad-dataset"
    with pytest.raises(DataError) as err:
        TensorData("bad", d.train_x[:, 0], d.train_y, d.test_x, d.test_y, d.classes)
    assert err.value.code == "bad-dataset"


def test_digits_rows_map_to_scikit_learn_rows():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    d = load_dataset("digits")
    train, test = d.train_index, d.test_index
    assert train.dtype == np.int64 and train.shape == (1437,) and test.shape == (360,)
    # Every scikit-learn row is used once: on one side, never on both.
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # each side in source order
    assert np.array_equal(d.train_y.numpy(), bunch.target[train])
    assert np.array_equal(d.test_y.numpy(), bunch.target[test])
    # The documented preprocessing, from the raw pixels: /16, then the training set's mean/std.
    scaled = bunch.images.astype(np.float64) / 16.0
    mean, std = scaled[train].mean(), scaled[train].std()
    assert d.mean[0] == pytest.approx(mean, abs=1e-6) and d.std[0] == pytest.approx(std, abs=1e-6)
    expected_train = (scaled[train] - mean) / std
    expected_test = (scaled[test] - mean) / std
    assert np.allclose(d.train_x[:, 0].numpy(), expected_train, atol=1e-5)
    assert np.allclose(d.test_x[:, 0].numpy(), expected_test, atol=1e-5)
    with pytest.raises(ValueError):  # read-only: the mapping cannot be edited by accident
        train[0] = 5


def test_source_row_indices_follow_the_rows_or_are_dropped():
    import dataclasses

    from causalunlearn.data.views import validation_view

    d = load_dataset("digits")
    assert np.array_equal(d.to("cpu").train_index, d.train_index)  # same rows, same mapping
    # A copy with other rows keeps no stale mapping (a validation view, or any replace) ...
    view = validation_view(d, 0.2, 100)
    assert view.train_index is None and view.test_index is None
    assert dataclasses.replace(d, test_x=d.test_x[:10], test_y=d.test_y[:10]).test_index is None
    assert np.array_equal(dataclasses.replace(d, name="renamed").train_index, d.train_index)
    # ... and a mapping given with them is kept, and checked.
    first = dataclasses.replace(
        d, test_x=d.test_x[:10], test_y=d.test_y[:10], test_index=d.test_index[:10]
    )
    assert np.array_equal(first.test_index, d.test_index[:10])
    with pytest.raises(DataError) as err:
        dataclasses.replace(d, test_index=d.test_index[:10])
    assert err.value.code == "bad-dataset"
    mnist_like = TensorData("x", d.train_x, d.train_y, d.test_x, d.test_y, d.classes)
    assert mnist_like.train_index is None and mnist_like.test_index is None


def test_registry_user_dataset_and_errors():
    calls = []

    @register_dataset("My_Toy")
    def toy(data_root):  # takes only the options it names
        calls.append(data_root)
        x = torch.zeros(4, 1, 2, 2)
        return TensorData("my-toy", x, torch.arange(4) % 2, x, torch.arange(4) % 2, ("a", "b"))

    try:
        assert "my-toy" in DATASETS
        d = load_dataset("my-toy", "/somewhere")
        assert d.num_classes == 2 and calls == [Path("/somewhere")]
        assert load_dataset("MY_TOY").name == "my-toy"  # case and _/- insensitive
        for again in (toy, lambda: None):  # a taken name, even by the same function, is refused
            with pytest.raises(DataError) as err:
                register_dataset("my-toy")(again)
            assert err.value.code == "duplicate-dataset"
        register_dataset("my-toy", overwrite=True)(toy)  # a re-run notebook cell says so

        @register_dataset("my-toy", overwrite=True)
        def broken(**kwargs):
            return "not a dataset"

        with pytest.raises(DataError) as err:
            load_dataset("my-toy")
        assert err.value.code == "bad-dataset"
    finally:
        DATASETS.pop("my-toy", None)
    with pytest.raises(DataError) as err:
        load_dataset("mnsit")
    assert err.value.code == "unknown-dataset" and "did you mean 'mnist'" in err.value.hint
    for name in ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100"):
        assert name in DATASETS


def test_resolve_data_root_and_cache_dir(monkeypatch, tmp_path):
    assert resolve_data_root(None) is None
    monkeypatch.setenv("CAUSALUNLEARN_DATA_ROOT", str(tmp_path))
    assert resolve_data_root(None) == tmp_path
    assert resolve_data_root(tmp_path / "x") == tmp_path / "x"  # the argument wins
    monkeypatch.setenv("CAUSALUNLEARN_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CAUSALUNLEARN_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "causalunlearn"


# ----------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST idx files


@pytest.mark.parametrize(
    "name, sub, gz",
    [
        ("mnist", "mnist", True),
        ("mnist", "MNIST/raw", False),
        ("mnist", ".", True),
        ("fashion-mnist", "fashion-mnist", True),
        ("fashion-mnist", "FashionMNIST/raw", False),
    ],
)
def test_idx_dataset_layouts_and_values(tmp_path, name, sub, gz):
    root = tmp_path / "root"
    arrays, _ = fake_mnist(root / sub, gz=gz)
    before = snapshot(root)
    d = load_dataset(name, root, cache_dir=tmp_path / "cache")
    assert d.name == name and d.num_classes == 10 and d.input_shape == (1, 28, 28)
    mean, std = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}[name]
    assert d.mean == (mean,) and d.std == (std,)
    torch.testing.assert_close(d.train_x, normalised(arrays["train_x"][:, None], [mean], [std]))
    torch.testing.assert_close(d.test_x, normalised(arrays["test_x"][:, None], [mean], [std]))
    assert d.train_y.dtype == torch.int64
    assert d.train_y.tolist() == arrays["train_y"].tolist()
    assert d.test_y.tolist() == arrays["test_y"].tolist()
    assert snapshot(root) == before  # nothing written into the data root
    assert list((tmp_path / "cache").glob(f"{name}-*.pt"))


def test_read_idx_checks_magic_and_size(tmp_path):
    good = write_idx(tmp_path / "ok-idx3-ubyte", np.zeros((2, 3, 4), np.uint8))
    assert read_idx(good, 3).shape == (2, 3, 4)
    labels = write_idx(tmp_path / "labels.gz", np.arange(5, dtype=np.uint8))
    with pytest.raises(DataError) as err:
        read_idx(labels, 3)  # a labels file where images are expected
    assert err.value.code == "corrupt-data-file" and "magic" in err.value.message
    short = tmp_path / "short"
    short.write_bytes(idx_bytes(np.zeros((3, 4, 4), np.uint8))[:-5])
    with pytest.raises(DataError) as err:
        read_idx(short, 3)
    assert err.value.code == "corrupt-data-file" and "truncated" in err.value.message
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00\x00")
    with pytest.raises(DataError) as err:
        read_idx(tiny)
    assert err.value.code == "corrupt-data-file"


def test_corrupt_gz_file_is_reported_with_its_name(tmp_path):
    root = tmp_path / "root"
    _, files = fake_mnist(root / "mnist")
    blob = files["train_x"].read_bytes()
    files["train_x"].write_bytes(blob[: len(blob) // 2])  # truncated download
    with pytest.raises(DataError) as err:
        load_dataset("mnist", root, cache_dir=tmp_path / "cache")
    assert err.value.code == "corrupt-data-file"
    assert "train-images-idx3-ubyte.gz" in err.value.message and err.value.hint
    files["train_x"].write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError) as err:
        load_dataset("mnist", root, cache_dir=tmp_path / "cache")
    assert err.value.code == "corrupt-data-file"


def test_mismatched_image_and_label_counts(tmp_path):
    root = tmp_path / "root"
    _, files = fake_mnist(root / "mnist")
    write_idx(files["train_y"], np.zeros(29, np.uint8))
    with pytest.raises(DataError) as err:
        load_dataset("mnist", root, cache_dir=tmp_path / "cache")
    assert err.value.code == "corrupt-data-file" and "29 labels" in err.value.message


def test_missing_root_and_missing_files(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("mnist", cache_dir=tmp_path / "cache")
    assert err.value.code == "missing-data-root"
    assert "CAUSALUNLEARN_DATA_ROOT" in err.value.hint and "--data-root" in err.value.hint
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", tmp_path / "nope", cache_dir=tmp_path / "cache")
    assert err.value.code == "missing-data-root" and "nope" in err.value.message
    root = tmp_path / "root"
    (root / "mnist").mkdir(parents=True)
    with pytest.raises(DataError) as err:
        load_dataset("mnist", root, cache_dir=tmp_path / "cache")
    assert err.value.code == "data-not-found"
    assert (
        "train-images-idx3-ubyte" in err.value.message and str(root / "mnist") in err.value.message
    )
    _, files = fake_mnist(root / "mnist")
    files["test_y"].unlink()
    with pytest.raises(DataError) as err:
        load_dataset("mnist", root, cache_dir=tmp_path / "cache")
    assert err.value.code == "data-not-found" and "lacks t10k-labels" in err.value.message


def test_idx_cache_hit_skips_parsing_and_is_invalidated(tmp_path, monkeypatch):
    root, cache = tmp_path / "root", tmp_path / "cache"
    _, files = fake_mnist(root / "mnist")
    first = load_dataset("mnist", root, cache_dir=cache)

    def boom(*args, **kwargs):
        raise AssertionError("the idx files were parsed again")

    monkeypatch.setattr(datasets_idx, "read_idx", boom)
    second = load_dataset("mnist", root, cache_dir=cache)
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.test_y, second.test_y)
    # a changed source file changes the key: parsed again
    os.utime(files["test_y"], ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(AssertionError, match="parsed again"):
        load_dataset("mnist", root, cache_dir=cache)
    monkeypatch.undo()
    # a damaged cache file is rebuilt, not fatal
    for pt in cache.glob("mnist-*.pt"):
        pt.write_bytes(b"garbage")
    third = load_dataset("mnist", root, cache_dir=cache)
    assert torch.equal(first.train_x, third.train_x)


def test_download_fallback_uses_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    class FakeMNIST:  # what torchvision leaves on disk: root/MNIST/raw/<uncompressed files>
        def __init__(self, root, train=True, download=False):
            assert download
            fake_mnist(Path(root) / "MNIST" / "raw", gz=False)

    monkeypatch.setattr(tvd, "MNIST", FakeMNIST)
    cache = tmp_path / "cache"
    d = load_dataset("mnist", download=True, cache_dir=cache)
    assert len(d.train_y) == 30 and (cache / "downloads" / "MNIST" / "raw").is_dir()
    assert len(load_dataset("mnist", cache_dir=cache).train_y) == 30  # later: found offline

    class Offline:
        def __init__(self, *args, **kwargs):
            raise OSError("no route to host")

    monkeypatch.setattr(tvd, "FashionMNIST", Offline)
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", download=True, cache_dir=cache)
    assert err.value.code == "download-failed" and "no route to host" in err.value.message


# ----------------------------------------------------------------------------------------------
# CIFAR


def test_cifar10_jpeg_folder_and_tar(tmp_path):
    root = tmp_path / "root"
    jpeg_tree(root / "cifar10-jpeg")
    before = snapshot(root)
    d = load_dataset("cifar10", root, cache_dir=tmp_path / "cache1", progress=False)
    assert d.name == "cifar10-jpeg" and d.classes == CIFAR10_CLASSES
    assert d.train_x.shape == (20, 3, 32, 32) and d.test_x.shape == (10, 3, 32, 32)
    assert d.train_y.tolist() == [i for i in range(10) for _ in range(2)]
    assert d.test_y.tolist() == list(range(10))
    # each image decodes to its class's grey value (so labels and images are paired right)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    pixels = (d.train_x * std + mean) * 255
    expected = (20 * d.train_y + 10).float().view(-1, 1, 1, 1)
    assert float((pixels - expected).abs().max()) < 3
    assert snapshot(root) == before

    # the same tree as cifar10-jpeg.tar.gz, in another root: same tensors, nothing extracted
    root2 = tmp_path / "root2" / "cifar10-jpeg"
    root2.mkdir(parents=True)
    with tarfile.open(root2 / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        for part in ("test", "train"):
            tar.add(root / "cifar10-jpeg" / part, arcname=part)
    cache2 = tmp_path / "cache2"
    t = load_dataset("cifar10", root2.parent, cache_dir=cache2, progress=False)
    assert t.name == "cifar10-jpeg"
    assert torch.equal(t.train_x, d.train_x) and torch.equal(t.test_y, d.test_y)
    assert sorted(p.name for p in root2.iterdir()) == ["cifar10-jpeg.tar.gz"]
    assert [p.suffix for p in cache2.iterdir()] == [".pt"]  # only the tensor cache


def test_image_folder_errors(tmp_path):
    wrong = jpeg_tree(tmp_path / "root" / "cifar10-jpeg", classes=("cat", "dog"))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path / "root", cache_dir=tmp_path / "c", progress=False)
    assert err.value.code == "unexpected-classes"
    # generic image folders are fine with any classes
    d = load_image_folder(wrong, name="pets", cache_dir=tmp_path / "c", progress=False)
    assert d.classes == ("cat", "dog") and d.name == "pets" and len(d.train_y) == 4
    jpeg_tree(tmp_path / "sizes", classes=("a", "b"))
    jpeg_tree(tmp_path / "big", classes=("b",), n_train=1, n_test=0, size=40)
    (tmp_path / "big" / "train" / "b" / "0000.jpg").replace(tmp_path / "sizes/train/b/0099.jpg")
    with pytest.raises(DataError) as err:
        load_image_folder(tmp_path / "sizes", cache_dir=tmp_path / "c", progress=False)
    assert err.value.code == "inconsistent-image-size"
    jpeg_tree(tmp_path / "broken", classes=("a",))
    (tmp_path / "broken" / "test" / "a" / "0000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError) as err:
        load_image_folder(tmp_path / "broken", cache_dir=tmp_path / "c", progress=False)
    assert err.value.code == "corrupt-data-file" and "0000.jpg" in err.value.message
    jpeg_tree(tmp_path / "classes", classes=("a", "b"))
    (tmp_path / "classes" / "test" / "b" / "0000.jpg").unlink()
    (tmp_path / "classes" / "test" / "b").rmdir()
    with pytest.raises(DataError) as err:
        load_image_folder(tmp_path / "classes", cache_dir=tmp_path / "c", progress=False)
    assert err.value.code == "inconsistent-classes"
    with pytest.raises(DataError) as err:
        load_image_folder(tmp_path / "absent", cache_dir=tmp_path / "c")
    assert err.value.code == "data-not-found"
    bad_tar = tmp_path / "bad.tar.gz"
    bad_tar.write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(DataError) as err:
        load_image_folder(bad_tar, cache_dir=tmp_path / "c", progress=False)
    assert err.value.code == "corrupt-data-file"


@pytest.mark.parametrize("which, count", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_pickled_format(tmp_path, which, count):
    root = tmp_path / "root"
    arrays = fake_cifar_pickles(root, which)
    if which == "cifar10":
        jpeg_tree(root / "cifar10-jpeg", n_train=1, n_test=1)  # the original is preferred
    d = load_dataset(which, root, cache_dir=tmp_path / "cache", progress=False)
    assert d.name == which and d.num_classes == count
    assert d.train_x.shape == (len(arrays["train_y"]), 3, 32, 32)
    torch.testing.assert_close(
        d.train_x, normalised(arrays["train_x"], IMAGENET_MEAN, IMAGENET_STD)
    )
    torch.testing.assert_close(d.test_x, normalised(arrays["test_x"], IMAGENET_MEAN, IMAGENET_STD))
    assert d.train_y.tolist() == arrays["train_y"].tolist()
    assert d.test_y.tolist() == arrays["test_y"].tolist()
    if which == "cifar100":
        assert d.classes[:2] == ("c00", "c01")
    else:
        assert d.classes == CIFAR10_CLASSES


def test_cifar_missing_and_corrupt(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("cifar100", cache_dir=tmp_path / "cache")
    assert err.value.code == "missing-data-root"
    (tmp_path / "root").mkdir()
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path / "root", cache_dir=tmp_path / "cache")
    assert err.value.code == "data-not-found" and "cifar-10-batches-py" in err.value.message
    fake_cifar_pickles(tmp_path / "root", "cifar100")
    (tmp_path / "root" / "cifar-100-python" / "test").write_bytes(b"\x80\x04 broken pickle")
    with pytest.raises(DataError) as err:
        load_dataset("cifar100", tmp_path / "root", cache_dir=tmp_path / "cache")
    assert err.value.code == "corrupt-data-file"
    assert str(tmp_path / "root" / "cifar-100-python" / "test") in err.value.message


# ----------------------------------------------------------------------------------------------
# splits


@pytest.fixture
def labels() -> np.ndarray:
    rng = np.random.default_rng(123)
    return rng.choice(6, size=1003, p=[0.3, 0.1, 0.2, 0.15, 0.15, 0.1])


def check_partition(split: Split, labels: np.ndarray) -> None:
    n = len(labels)
    assert split.num_train == n
    for a in (split.forget, split.retain, split.retain_sample):
        assert a.dtype == np.int64
    assert np.all(np.diff(split.forget) > 0) and np.all(np.diff(split.retain) > 0)
    assert not set(split.forget.tolist()) & set(split.retain.tolist())
    assert sorted(split.forget.tolist() + split.retain.tolist()) == list(range(n))
    assert len(split.retain_sample) == len(split.forget)
    assert len(set(split.retain_sample.tolist())) == len(split.retain_sample)
    assert set(split.retain_sample.tolist()) <= set(split.retain.tolist())


def test_class_split(labels):
    split = make_split(labels, "class:0", seed=0)
    expected = [i for i, y in enumerate(labels.tolist()) if y == 0]
    assert split.forget.tolist() == expected
    assert split.forgotten_classes == (0,) and split.scenario == "class:0"
    check_partition(split, labels)
    multi = make_split(torch.as_tensor(labels), "class:3,0", seed=0)  # tensors work too
    assert multi.forget.tolist() == [i for i, y in enumerate(labels.tolist()) if y in (0, 3)]
    assert multi.forgotten_classes == (0, 3) and multi.scenario == "class:0,3"
    check_partition(multi, labels)


def test_random_split_counts_and_seeds(labels):
    split = make_split(labels, "random:0.1", seed=7)
    assert len(split.forget) == round(0.1 * len(labels)) == 100
    assert split.forgotten_classes == ()
    check_partition(split, labels)
    same = make_split(labels, "random:0.1", seed=7)
    assert np.array_equal(same.forget, split.forget)
    assert np.array_equal(same.retain_sample, split.retain_sample)
    assert same.digest() == split.digest()
    other = make_split(labels, "random:0.1", seed=8)
    assert not np.array_equal(other.forget, split.forget) and other.digest() != split.digest()
    # class splits are deterministic in the forget set; the retain sample still follows the seed
    a, b = make_split(labels, "class:1", 0), make_split(labels, "class:1", 1)
    assert np.array_equal(a.forget, b.forget) and not np.array_equal(
        a.retain_sample, b.retain_sample
    )


def test_perclass_split(labels):
    split = make_split(labels, "perclass:3=0.2,0=0.5", seed=1)
    assert split.scenario == "perclass:0=0.5,3=0.2"
    forgotten_labels = labels[split.forget]
    n0, n3 = int(np.sum(labels == 0)), int(np.sum(labels == 3))
    assert int(np.sum(forgotten_labels == 0)) == round(0.5 * n0)
    assert int(np.sum(forgotten_labels == 3)) == round(0.2 * n3)
    assert set(np.unique(forgotten_labels).tolist()) == {0, 3}
    assert split.forgotten_classes == ()
    check_partition(split, labels)


@pytest.mark.parametrize("suffix", [".txt", ".json", ".npy", "-split.json"])
def test_indices_split(tmp_path, labels, suffix):
    chosen = [5, 17, 3, 1002, 400]
    path = tmp_path / f"forget{suffix}"
    if suffix == ".txt":
        path.write_text("# my forget set\n5\n17\n3, 1002\n\n400\n")
    elif suffix == ".json":
        path.write_text(json.dumps(chosen))
    elif suffix == ".npy":
        np.save(path, np.asarray(chosen))
    else:
        path.write_text(json.dumps({"forget": chosen}))
    split = make_split(labels, f"indices:{path}", seed=0)
    assert split.forget.tolist() == sorted(chosen)
    check_partition(split, labels)


def test_split_save_load_round_trip(tmp_path, labels):
    split = make_split(labels, "random:0.25", seed=3)
    path = split.save(tmp_path / "sub" / "split.json")
    back = Split.load(path)
    for name in ("forget", "retain", "retain_sample"):
        assert np.array_equal(getattr(back, name), getattr(split, name))
    assert (back.scenario, back.seed, back.num_train) == (split.scenario, 3, len(labels))
    assert back.digest() == split.digest() and len(split.digest()) == 12
    assert [p.name for p in path.parent.iterdir()] == ["split.json"]  # no temp files left
    assert not split.forget.flags.writeable  # frozen really means frozen
    # a saved split can serve as an indices file
    assert np.array_equal(make_split(labels, f"indices:{path}", 0).forget, split.forget)
    data = json.loads(path.read_text())
    data["forget"][0] = data["forget"][1]  # tampered
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as err:
        Split.load(path)
    assert err.value.code == "corrupt-split-file"
    path.write_text("{not json")
    with pytest.raises(DataError) as err:
        Split.load(path)
    assert err.value.code == "corrupt-split-file"
    with pytest.raises(DataError) as err:
        Split.load(tmp_path / "absent.json")
    assert err.value.code == "missing-split-file"


def test_parse_scenario_forms():
    assert parse_scenario("class:0") == Scenario("class", classes=(0,))
    assert parse_scenario(" CLASS: 3 , 1 ").classes == (1, 3)
    assert parse_scenario("random:0.1").fraction == 0.1
    assert parse_scenario("perclass:3=0.2,0=0.5").fractions == ((0, 0.5), (3, 0.2))
    assert parse_scenario("indices:C:/data/f.txt").path == "C:/data/f.txt"
    for text in ("class:0,3", "random:0.1", "perclass:0=0.5,3=0.2", "indices:x.txt"):
        assert str(parse_scenario(text)) == text


@pytest.mark.parametrize(
    "text",
    ["foo:1", "class", "class:", "class:a", "class:0,,1", "class:0,0", "perclass:0", "random:x"],
)
def test_bad_scenario(labels, text):
    with pytest.raises(DataError) as err:
        make_split(labels, text, 0)
    assert err.value.code == "bad-scenario" and "random:0.1" in err.value.hint


@pytest.mark.parametrize(
    "text", ["random:0", "random:1", "random:1.5", "perclass:0=1", "random:nan"]
)
def test_bad_fraction(labels, text):
    with pytest.raises(DataError) as err:
        make_split(labels, text, 0)
    assert err.value.code == "bad-fraction"


def test_split_errors(tmp_path, labels):
    def code(*args, **kwargs) -> str:
        with pytest.raises(DataError) as err:
            make_split(*args, **kwargs)
        return err.value.code

    with pytest.raises(DataError) as err:
        make_split(labels, "class:9", 0)
    assert err.value.code == "unknown-class" and "0..5" in err.value.hint
    assert code(labels, "perclass:0=0.5,7=0.1", 0) == "unknown-class"
    assert code(labels, "class:-1", 0) == "unknown-class"
    assert code(labels, "class:7", 0, num_classes=8) == "empty-forget-set"  # class with no samples
    assert code(labels, "random:0.0001", 0) == "empty-forget-set"
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert code(labels, f"indices:{empty}", 0) == "empty-forget-set"
    assert code(labels, "random:0.9", 0) == "retain-too-small"
    assert code(labels, "class:0", 0, retain_sample_size=10**6) == "retain-too-small"
    for content in ("1\n1003\n", "-1\n", "1\n2\n1\n", "1.5\n", "abc\n"):
        bad = tmp_path / "bad.txt"
        bad.write_text(content)
        assert code(labels, f"indices:{bad}", 0) == "bad-index", content
    (tmp_path / "bad.json").write_text('{"x": 1}')
    assert code(labels, f"indices:{tmp_path / 'bad.json'}", 0) == "bad-index"
    assert code(labels, f"indices:{tmp_path / 'nope.txt'}", 0) == "missing-indices-file"
    assert code(labels, "class:0", -1) == "bad-seed"
    assert code(labels, "class:0", 1.5) == "bad-seed"
    assert code(labels.astype(float), "class:0", 0) == "bad-labels"
    assert code(labels, "class:0", 0, num_classes=3) == "bad-labels"


def test_split_is_vectorised_on_mnist_sized_labels():
    labels = np.random.default_rng(0).integers(0, 10, 60_000)
    start = time.perf_counter()
    for scenario in ("class:0", "random:0.1", "perclass:0=0.5,3=0.2"):
        check = make_split(labels, scenario, 0)
        assert len(check.retain_sample) == len(check.forget)
    assert time.perf_counter() - start < 1.0


# ----------------------------------------------------------------------------------------------
# real data (slow)


def real_root() -> Path:
    root = os.environ.get("CAUSALUNLEARN_DATA_ROOT")
    if not root:
        pytest.skip("set CAUSALUNLEARN_DATA_ROOT to the folder holding mnist/, fashion-mnist/, ...")
    return Path(root)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, class0",
    [("mnist", 5923), ("fashion-mnist", 6000)],
)
def test_real_mnist_like(name, class0):
    d = load_dataset(name, real_root(), progress=False)
    assert len(d.train_y) == 60_000 and len(d.test_y) == 10_000
    assert d.input_shape == (1, 28, 28)
    counts = np.bincount(d.train_y.numpy(), minlength=10)
    assert counts[0] == class0 and counts.sum() == 60_000
    if name == "fashion-mnist":
        assert np.all(counts == 6000)
    assert abs(float(d.train_x.mean())) < 0.01 and abs(float(d.train_x.std()) - 1) < 0.01
    split = make_split(d.train_y, "class:0", 0)
    assert len(split.forget) == class0 and len(split.retain) == 60_000 - class0


@pytest.mark.slow
def test_real_cifar10_jpeg():
    d = load_dataset("cifar10", real_root(), progress=False)
    assert d.name == "cifar10-jpeg" and d.classes == CIFAR10_CLASSES
    assert d.train_x.shape == (50_000, 3, 32, 32) and d.test_x.shape == (10_000, 3, 32, 32)
    assert np.all(np.bincount(d.train_y.numpy()) == 5000)
    assert np.all(np.bincount(d.test_y.numpy()) == 1000)
    assert bool(torch.all(d.train_y[1:] >= d.train_y[:-1]))  # (class, file) order
