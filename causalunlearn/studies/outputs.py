"""Per-example outputs: every model's logits on every evaluated row, kept beside the numbers.

A run folder keeps ``outputs-seed<S>.npz`` per seed; a sweep keeps
``runs/<method>/<dataset>/<scenario>/seed<S>.outputs.npz`` beside each cell (the unlearned
model) and ``references/<dataset>/<scenario>/seed<S>.outputs.npz`` beside each reference (the
original and the oracles). ``causalunlearn rescore`` (:mod:`causalunlearn.studies.rescore`)
recomputes every metric that needs only these outputs, without training anything.

One file is a :func:`numpy.savez_compressed` archive (read with ``allow_pickle=False``):

=======================  =========================================================================
array                    what it holds
=======================  =========================================================================
``meta``                 JSON text: ``format`` (:data:`OUTPUTS_FORMAT`), ``dataset``,
                         ``split_digest``, ``num_train``, ``num_test``, ``roles``, ``dtype``,
                         ``row_order``
``split``                JSON text of the split (:meth:`~causalunlearn.data.splits.Split.to_json`)
``train_y``, ``test_y``  the labels (int64), so the file is scored without the dataset
``<role>.train``         the logits of ``role`` (``original``, ``unlearned``, ``oracle``) on every
                         training row, **in dataset order** (row ``i`` is training row ``i``)
``<role>.test``          the same on every test row, in dataset order
``oracles.forget``       ``(K−1)×F×C``: oracles ``1..K−1`` (``--oracles K``) on the forget rows,
                         in the split's forget order
``lira.*``               the LiRA shadow statistics (:mod:`causalunlearn.studies.shadows`)
=======================  =========================================================================

Logits are stored as float32, the dtype the models compute in, so a rescore reproduces the
stored numbers exactly (float16 would halve the size but can swap the arg-max of two logits
within 1e-3 of each other; ``docs/sweeps.md`` has the measured sizes). Files are written
atomically (:func:`causalunlearn.atomic.atomic_open`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from causalunlearn.atomic import atomic_open
from causalunlearn.data import TensorData
from causalunlearn.data.splits import Split
from causalunlearn.errors import CausalUnlearnError, RunError, shown

#: Format of an outputs archive; bump it when what it holds changes meaning.
OUTPUTS_FORMAT = "causalunlearn.outputs/v1"
#: The row order every archive uses (recorded in ``meta``).
ROW_ORDER = "train rows in dataset order, then test rows in dataset order"


def outputs_name(seed: int) -> str:
    """The file name of a run folder's outputs of ``seed``."""
    return f"outputs-seed{seed}.npz"


def beside(json_path: str | Path) -> Path:
    """The outputs archive beside a sweep's cell or reference file (``seed0.json`` →
    ``seed0.outputs.npz``)."""
    path = Path(json_path)
    return path.with_name(path.stem + ".outputs.npz")


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


@dataclass
class Outputs:
    """An outputs archive, read back (:func:`load_outputs`).

    Attributes:
        meta: The ``meta`` document.
        split: The split the rows belong to.
        train_y: Training labels.
        test_y: Test labels.
        logits: ``role → {"train": N×C, "test": M×C}`` (float32).
        arrays: Every other array (``oracles.forget``, ``lira.*``), by name.
    """

    meta: dict[str, Any]
    split: Split
    train_y: np.ndarray
    test_y: np.ndarray
    logits: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def labels_data(self) -> TensorData:
        """A :class:`TensorData` with these labels and 1-pixel placeholder inputs: what the
        metrics of :func:`causalunlearn.metrics.evaluate.scores_from_logits` read."""
        train_y = torch.as_tensor(self.train_y, dtype=torch.int64)
        test_y = torch.as_tensor(self.test_y, dtype=torch.int64)
        classes = int(max(self.train_y.max(initial=0), self.test_y.max(initial=0))) + 1
        for role in self.logits.values():
            classes = max(classes, role["train"].shape[1])
        return TensorData(
            name=str(self.meta.get("dataset", "outputs")),
            train_x=torch.zeros(len(train_y), 1, 1, 1),
            train_y=train_y,
            test_x=torch.zeros(len(test_y), 1, 1, 1),
            test_y=test_y,
            classes=tuple(str(c) for c in range(classes)),
        )


def outputs_payload(
    logits: Mapping[str, Mapping[str, Any]],
    *,
    data: TensorData,
    split: Split,
    arrays: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of an outputs archive (numpy, picklable: a sweep's worker returns them and
    the driver writes them with :func:`write_payload`).

    Args:
        logits: ``role → {"train": logits on every training row, "test": on every test row}``
            (CPU tensors or arrays, dataset order).
        data: The dataset (its labels are stored).
        split: The split (stored, and its digest recorded).
        arrays: Further arrays (``oracles.forget``, ``lira.*``).

    Raises:
        RunError: ``bad-outputs`` when a role's rows do not match the dataset.
    """
    n_train, n_test = len(data.train_y), len(data.test_y)
    store: dict[str, np.ndarray] = {}
    for role, parts in logits.items():
        for part, rows in (("train", n_train), ("test", n_test)):
            arr = _numpy(parts[part]).astype(np.float32, copy=False)
            if arr.ndim != 2 or arr.shape[0] != rows:
                raise RunError(
                    "bad-outputs",
                    f"the {role} outputs on the {part} rows have shape {arr.shape}, expected"
                    f" {rows} rows × classes",
                    "pass the logits of every row, in dataset order",
                )
            store[f"{role}.{part}"] = arr
    for name, value in (arrays or {}).items():
        store[name] = _numpy(value)
    meta = {
        "format": OUTPUTS_FORMAT,
        "dataset": data.name,
        "split_digest": split.digest(),
        "num_train": n_train,
        "num_test": n_test,
        "roles": sorted(logits),
        "arrays": sorted(arrays or {}),
        "dtype": "float32",
        "row_order": ROW_ORDER,
    }
    store["meta"] = np.array(json.dumps(meta))
    store["split"] = np.array(split.to_json())
    store["train_y"] = _numpy(data.train_y).astype(np.int64)
    store["test_y"] = _numpy(data.test_y).astype(np.int64)
    return store


def write_payload(path: str | Path, payload: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Write :func:`outputs_payload` arrays as a compressed archive, atomically; return the
    record the manifest or cell keeps: ``{"file", "format", "split_digest", "roles",
    "bytes"}``."""
    path = Path(path)
    meta = json.loads(str(payload["meta"]))
    with atomic_open(path, "wb") as fh:
        np.savez_compressed(fh, **payload)
    return {
        "file": path.name,
        "format": OUTPUTS_FORMAT,
        "split_digest": meta["split_digest"],
        "roles": meta["roles"],
        "bytes": path.stat().st_size,
    }


def save_outputs(
    path: str | Path,
    logits: Mapping[str, Mapping[str, Any]],
    *,
    data: TensorData,
    split: Split,
    arrays: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`outputs_payload` written to ``path`` (:func:`write_payload`); returns the record.

    Raises:
        RunError: ``bad-outputs`` when a role's rows do not match the dataset (nothing is
            written).
    """
    return write_payload(path, outputs_payload(logits, data=data, split=split, arrays=arrays))


def missing_outputs(where: str | Path, how_to_rerun: str) -> RunError:
    """The error of a run or cell without per-example outputs (written before they existed)."""
    return RunError(
        "outputs-missing",
        f"{where} has no per-example outputs: it was written by a version of causalunlearn"
        " that did not save them (or the file was deleted), so its metrics cannot be"
        " recomputed without training",
        how_to_rerun,
    )


def load_outputs(path: str | Path, *, split_digest: str | None = None) -> Outputs:
    """Read an outputs archive and check it.

    Args:
        path: The ``.npz`` file.
        split_digest: The digest the manifest or cell recorded for its split: the archive must
            hold the rows of that split.

    Raises:
        RunError: ``outputs-missing`` (no file), ``corrupt-outputs`` (unreadable, another
            format, or a split that does not match its own digest), ``outputs-split-mismatch``
            (the archive's split is not the one the manifest or cell names).
    """
    path = Path(path)
    if not path.is_file():
        raise missing_outputs(path, "rerun the run or the sweep cell to write them")

    def corrupt(why: str) -> RunError:
        return RunError(
            "corrupt-outputs",
            f"the outputs file {path} cannot be used ({why})",
            "delete it and rerun that run or sweep cell (its numbers are kept until then)",
        )

    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = {name: archive[name] for name in archive.files}
        meta = json.loads(str(stored.pop("meta")))
        split_text = str(stored.pop("split"))
        train_y, test_y = stored.pop("train_y"), stored.pop("test_y")
    except (OSError, ValueError, KeyError, EOFError) as err:  # zipfile.BadZipFile: OSError
        raise corrupt(shown(str(err) or type(err).__name__)) from None
    except Exception as err:  # noqa: BLE001 - zipfile raises its own BadZipFile
        raise corrupt(shown(f"{type(err).__name__}: {err}")) from None
    if not isinstance(meta, dict) or meta.get("format") != OUTPUTS_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise corrupt(f"format {found!r}, this version reads {OUTPUTS_FORMAT}")
    try:
        split = Split.from_json(split_text, str(path))
    except CausalUnlearnError as err:
        raise corrupt(err.message) from None
    if split.digest() != meta.get("split_digest"):
        raise corrupt("its split does not match the digest it records")
    if split_digest is not None and split.digest() != split_digest:
        raise RunError(
            "outputs-split-mismatch",
            f"the outputs file {path} holds the rows of split {split.digest()}, but the run or"
            f" cell it belongs to was computed on split {split_digest}",
            "the file was copied from another run or seed: restore the right one, or rerun the"
            " run or cell",
        )
    out = Outputs(meta, split, train_y, test_y)
    for name, arr in stored.items():
        role, _, part = name.partition(".")
        if part in ("train", "test") and role in meta.get("roles", ()):
            out.logits.setdefault(role, {})[part] = arr
        else:
            out.arrays[name] = arr
    for role in meta.get("roles", ()):
        parts = out.logits.get(role, {})
        if set(parts) != {"train", "test"} or (
            len(parts["train"]) != len(train_y) or len(parts["test"]) != len(test_y)
        ):
            raise corrupt(f"the {role} outputs do not cover every training and test row")
    return out


def predicted(net: torch.nn.Module, data: TensorData, device: torch.device, kept=None):
    """``{"train", "test"}`` logits of ``net`` (CPU): ``kept`` (a scoring pass's
    ``keep_logits``) when it holds them, else one prediction pass over both."""
    from causalunlearn.metrics.accuracy import predict

    if kept and "train" in kept and "test" in kept:
        return {"train": kept["train"], "test": kept["test"]}
    return {
        "train": predict(net, data.train_x, device=device).cpu(),
        "test": predict(net, data.test_x, device=device).cpu(),
    }


def reference_outputs(
    net: torch.nn.Module,
    data: TensorData,
    device: torch.device,
    kept=None,
    *,
    cache=None,
    model_path: str | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`predicted` for an original or oracle: from its scoring pass (``kept``), else from
    beside the cached model (``cache``, ``model_path``: :meth:`ModelCache.outputs
    <causalunlearn.studies.model_cache.ModelCache.outputs>`), else one prediction pass; a pass's
    or a scoring pass's outputs are stored beside the cached model for the next run."""
    if cache is None or model_path is None:
        return predicted(net, data, device, kept)
    out, _ = cache.outputs(model_path, data, lambda: predicted(net, data, device, kept))
    return out
