"""The cache of trained originals and retrain oracles, keyed by what determines them.

A cached model is reused only when everything that decides its weights is the same; the key is
a fingerprint (SHA-256 of a JSON document) of:

- the **architecture**: the class, ``repr`` of the module tree (layer types and sizes, the
  activation — ReLU and Tanh differ) and every parameter's name, shape and dtype, of the model
  that the registered name builds now (so editing a registered model invalidates its entries);
- the **training data**: name, shapes and a hash of the training tensors *as preprocessed* (so
  another normalisation is another dataset), and for an oracle the **retain set** only (not the
  whole split: oracles of splits with the same retain set — class removal under another split
  seed — are shared);
- the **recipe** (epochs, batch size, optimiser, learning rate, weight decay; momentum, the
  learning-rate schedule and the augmentation only when not at their defaults, so entries
  cached before those fields existed keep their key), the **training seed**, and the
  **numerics** (default dtype; flush-to-zero when it is on: it changes trained weights. It
  joins the document only when on, so the models cached before the setting existed, all
  trained with it off, keep their key).

Layout: ``ROOT/DATASET/MODEL/{original,oracle}-<fingerprint[:20]>.pt`` with a ``.json`` beside it
holding the whole fingerprint document. A file whose ``.json`` is missing or holds another
fingerprint is refused (``cache-mismatch``), never loaded. Files are state dicts written
atomically and read with ``weights_only=True``; one process trains a missing model while the
others that need it wait on its lock (:mod:`causalunlearn.locks`) and then load it.

Training checkpoints every epoch to ``<entry>.partial.pt`` beside the entry (model, optimiser,
random state, epoch: :mod:`causalunlearn.engine.resume`): a training that is stopped (killed,
interrupted, the machine restarted) resumes from its last finished epoch the next time the entry
is asked for, and ends with the weights it would have had. The partial file is deleted once the
model is written.

The **shadow models of the U-LiRA attack** (:mod:`causalunlearn.studies.shadows`) are cached
too, before they unlearn: a trained shadow depends on the data and on which rows it trains on,
not on the method under test, so a sweep of many methods trains each shadow once
(:meth:`ModelCache.shadow`). Their key holds the architecture, the training data (the training
*and* test tensors: a shadow's rows come from both), a digest of the shadow's rows (population
indices, in order) and their number, the recipe (with the attack's epochs), the shadow's seed,
the numerics and the executor. Layout: ``ROOT/DATASET/MODEL/shadows/shadow-<key[:20]>.pt`` with
its ``.json``. Shadows train without per-epoch checkpoints: one is small (seconds on digits, a
few minutes on MNIST at most), and a stopped attack loses at most the shadow in progress, the
finished ones being cached.

Beside a model, :meth:`ModelCache.metrics` keeps its scores (``<model>.metrics-<key>.json``):
an original's or oracle's metrics depend only on the model, the split, the attack and
relearning settings, the seed, the numerics and the metric code, so a run scores those two
models once and afterwards only the unlearned one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from causalunlearn.atomic import atomic_write
from causalunlearn.data import TensorData, default_cache_dir
from causalunlearn.data.splits import Split
from causalunlearn.engine.resume import EpochCheckpoint
from causalunlearn.engine.verbs import train_from_scratch
from causalunlearn.errors import ModelError, RunError
from causalunlearn.locks import exclusive
from causalunlearn.models.zoo import build_model, load_state, save_state
from causalunlearn.numerics import current as current_numerics
from causalunlearn.numerics import flush_denormal_active
from causalunlearn.recipes import Recipe

#: Version of the fingerprint document; bump it when its content changes meaning.
FINGERPRINT_FORMAT = "causalunlearn.model-fingerprint/v1"
#: Version of the cached-metrics files; bump it when what they hold changes meaning.
METRICS_FORMAT = "causalunlearn.model-metrics/v1"
#: Format tag of the outputs (logits) stored beside a cached model.
OUTPUTS_FORMAT = "causalunlearn.model-outputs/v1"
#: The code that computes a model's scores: its source is part of the cached metrics' key, so
#: a fixed metric or attack never serves numbers of the code before the fix.
METRIC_SOURCES = ("metrics", "studies/cell.py", "studies/settings.py", "data/splits.py")
_DATA_HASHES: dict[int, tuple[Any, str]] = {}
_TEST_HASHES: dict[int, tuple[Any, str]] = {}
_CODE_DIGEST: list[str] = []
_log = logging.getLogger(__name__)


def _sha(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def _tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().numpy().tobytes()


def architecture_fingerprint(net: nn.Module) -> dict[str, Any]:
    """What the module tree is: class, ``repr`` and parameter/buffer shapes (no values)."""
    cls = type(net)
    shapes = [[k, list(v.shape), str(v.dtype)] for k, v in net.state_dict().items()]
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "repr_sha256": _sha(repr(net).encode()),
        "state_shapes_sha256": _sha(json.dumps(shapes).encode()),
    }


def data_fingerprint(data: TensorData) -> dict[str, Any]:
    """The training tensors as the model sees them (after preprocessing), by content.

    Hashing MNIST's 188 MB of training inputs takes a fraction of a second; the result is kept
    per ``TensorData`` object for the life of the process.
    """
    cached = _DATA_HASHES.get(id(data))
    if cached is None or cached[0] is not data:
        digest = _sha(_tensor_bytes(data.train_x), _tensor_bytes(data.train_y))
        cached = (data, digest)
        _DATA_HASHES.clear()  # one dataset at a time is the common case; bounds memory
        _DATA_HASHES[id(data)] = cached
    return {
        "name": data.name,
        "train_x_shape": list(data.train_x.shape),
        "num_classes": data.num_classes,
        "mean": list(data.mean),
        "std": list(data.std),
        "train_sha256": cached[1],
    }


def test_fingerprint(data: TensorData) -> str:
    """SHA-256 of the test tensors (inputs and labels), kept per ``TensorData`` object like
    :func:`data_fingerprint`'s digest: a LiRA shadow trains on test rows too."""
    cached = _TEST_HASHES.get(id(data))
    if cached is None or cached[0] is not data:
        cached = (data, _sha(_tensor_bytes(data.test_x), _tensor_bytes(data.test_y)))
        _TEST_HASHES.clear()
        _TEST_HASHES[id(data)] = cached
    return cached[1]


def numerics_fingerprint() -> dict[str, Any]:
    """Process-wide numeric settings that change trained weights: the default dtype, and
    flush-to-zero (probed from the CPU, however it was set) and the ``channels_last`` training
    layout (another order of float operations in the convolutions) when they are on."""
    doc: dict[str, Any] = {"default_dtype": str(torch.get_default_dtype())}
    if flush_denormal_active():
        doc["flush_denormal"] = True
    if current_numerics().channels_last:
        doc["channels_last"] = True
    return doc


def _plain(obj: Any) -> Any:
    """JSON for numpy scalars and arrays (``.item()`` / ``.tolist()``), else ``str``."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def metric_code_digest() -> str:
    """SHA-256 of the source of the scoring code (``METRIC_SOURCES``), once per process."""
    if not _CODE_DIGEST:
        package = Path(__file__).resolve().parents[1]
        files: list[Path] = []
        for name in METRIC_SOURCES:
            where = package / name
            files += sorted(where.rglob("*.py")) if where.is_dir() else [where]
        _CODE_DIGEST.append(
            _sha(*(f.relative_to(package).as_posix().encode() + f.read_bytes() for f in files))
        )
    return _CODE_DIGEST[0]


def retain_fingerprint(split: Split) -> str:
    """The oracle's training rows: the retain indices, in order."""
    return _sha(np.ascontiguousarray(split.retain, dtype=np.int64).tobytes())


@dataclass
class ModelCache:
    """State-dict cache of original models and retrain oracles (see the module docstring).

    Attributes:
        root: The cache folder (default ``$CAUSALUNLEARN_CACHE/models``).
    """

    root: Path = field(default_factory=lambda: default_cache_dir() / "models")

    def fingerprint(
        self,
        data: TensorData,
        split: Split,
        which: str,
        *,
        model: str,
        recipe: Recipe,
        seed: int,
    ) -> dict[str, Any]:
        """The document whose hash keys ``which`` (``original`` or ``oracle``)."""
        if which not in ("original", "oracle"):
            raise ValueError(f"which is 'original' or 'oracle', not {which!r}")
        net = build_model(model, data.num_classes, data.input_shape, seed=seed)
        doc: dict[str, Any] = {
            "format": FINGERPRINT_FORMAT,
            "which": which,
            "model": model,
            "architecture": architecture_fingerprint(net),
            "data": data_fingerprint(data),
            "recipe": recipe.document(),
            "seed": int(seed),
            "numerics": numerics_fingerprint(),
        }
        if which == "oracle":
            doc["retain_sha256"] = retain_fingerprint(split)
            doc["retain_rows"] = int(len(split.retain))
        return doc

    def shadow_fingerprint(
        self,
        data: TensorData,
        rows: np.ndarray,
        *,
        model: str,
        recipe: Recipe,
        seed: int,
        executor: str,
    ) -> dict[str, Any]:
        """The document whose hash keys a trained LiRA shadow (before it unlearns).

        Args:
            data: The dataset whose training and test rows make the population.
            rows: The shadow's training rows, as population indices (``0..n_train-1`` the
                training rows, ``n_train + i`` test row ``i``), in the order it trains on them.
            model: The registered model.
            recipe: The shadow's recipe (the attack's epochs already in it).
            seed: The shadow's seed (initialisation, shuffling).
            executor: The training loop's executor (``fast`` or ``reference``).
        """
        net = build_model(model, data.num_classes, data.input_shape, seed=seed)
        return {
            "format": FINGERPRINT_FORMAT,
            "which": "shadow",
            "model": model,
            "architecture": architecture_fingerprint(net),
            "data": data_fingerprint(data),
            "test_sha256": test_fingerprint(data),
            "rows_sha256": _sha(np.ascontiguousarray(rows, dtype=np.int64).tobytes()),
            "rows": int(len(rows)),
            "recipe": recipe.document(),
            "seed": int(seed),
            "numerics": numerics_fingerprint(),
            "executor": executor,
        }

    def path_for(self, doc: dict[str, Any]) -> Path:
        """Where the model of a fingerprint document lives (shadows in a ``shadows`` folder)."""
        key = _sha(json.dumps(doc, sort_keys=True).encode())
        folder = Path(self.root) / doc["data"]["name"] / doc["model"]
        if doc["which"] == "shadow":
            folder = folder / "shadows"
        return folder / f"{doc['which']}-{key[:20]}.pt"

    def path(
        self,
        data: TensorData,
        split: Split,
        which: str,
        *,
        model: str,
        recipe: Recipe,
        seed: int,
    ) -> Path:
        """Where the cached ``which`` model of these settings lives (trained or not)."""
        return self.path_for(
            self.fingerprint(data, split, which, model=model, recipe=recipe, seed=seed)
        )

    @staticmethod
    def partial_path(path: str | Path) -> Path:
        """The per-epoch training checkpoint of the entry at ``path`` (``<entry>.partial.pt``)."""
        path = Path(path)
        return path.with_name(f"{path.stem}.partial.pt")

    def _load(self, path: Path, doc: dict[str, Any], net: nn.Module) -> nn.Module:
        sidecar = path.with_suffix(".json")
        try:
            stored = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = None
        if stored != doc:
            raise ModelError(
                "cache-mismatch",
                f"the cached model {path} has no fingerprint, or one of other settings"
                f" ({sidecar.name} {'is missing or unreadable' if stored is None else 'differs'})",
                f"delete {path} and {sidecar.name} to retrain it",
            )
        try:
            return load_state(net, path)
        except ModelError as err:
            raise ModelError(
                "corrupt-cache-entry",
                f"the cached model {path} cannot be loaded: {err.message}",
                f"delete {path} and {sidecar.name} (the cache entry) to retrain it",
            ) from None

    def get(
        self,
        data: TensorData,
        split: Split,
        which: str,
        *,
        model: str,
        recipe: Recipe,
        seed: int,
        device: torch.device,
        progress: bool = True,
    ) -> tuple[nn.Module, dict[str, Any]]:
        """The cached ``original`` or ``oracle`` model, training and caching it on a miss.

        Returns:
            The model (eval mode, on ``device``) and ``{"cached": bool, "seconds": float,
            "path": str, "fingerprint": str}``.

        Raises:
            ModelError: ``cache-mismatch`` or ``corrupt-cache-entry`` for a cache file that
                cannot be trusted (the hint names the files to delete).
        """
        doc = self.fingerprint(data, split, which, model=model, recipe=recipe, seed=seed)
        path = self.path_for(doc)
        checkpoint = EpochCheckpoint(self.partial_path(path), key=path.stem)

        def train() -> nn.Module:
            return train_from_scratch(
                data,
                split,
                "train" if which == "original" else "retain",
                model=model,
                recipe=recipe,
                seed=seed,
                device=device,
                progress=progress,
                checkpoint=checkpoint,
            )[0]

        net = build_model(model, data.num_classes, data.input_shape, seed=seed)
        found = self._entry(doc, net, train, device=device, what=f"cached {which} model")
        assert found is not None  # _entry waits for the lock unless told not to
        checkpoint.discard()  # after the model is written (nothing when it was read)
        return found

    def shadow(
        self,
        data: TensorData,
        rows: np.ndarray,
        *,
        model: str,
        recipe: Recipe,
        seed: int,
        device: torch.device,
        executor: str,
        train: Callable[[], nn.Module],
        wait: bool = True,
    ) -> tuple[nn.Module, dict[str, Any]] | None:
        """The trained LiRA shadow of these settings (:meth:`shadow_fingerprint`), read from
        the cache, or trained (``train()``) and cached on a miss.

        ``train`` must train exactly what the key describes (``model`` with ``recipe`` and
        ``seed`` on ``rows`` of ``data``; :func:`causalunlearn.studies.shadows.shadow_statistics`
        is the one caller). The model returned is always the one loaded from the written state
        dict, so a freshly trained shadow and a cached one are the same module (same values,
        same memory format) and give bit-identical statistics.

        Args:
            wait: ``False``: return ``None`` at once when another process is training this
                shadow (the caller does another one meanwhile and asks again later).

        Returns:
            ``(model, info)`` as :meth:`get`'s, or ``None`` (busy, ``wait=False``).

        Raises:
            ModelError: ``cache-mismatch`` or ``corrupt-cache-entry`` (as :meth:`get`).
        """
        doc = self.shadow_fingerprint(
            data, rows, model=model, recipe=recipe, seed=seed, executor=executor
        )
        net = build_model(model, data.num_classes, data.input_shape, seed=seed)
        return self._entry(
            doc, net, train, device=device, what="cached LiRA shadow", wait=wait, reload=True
        )

    def _entry(
        self,
        doc: dict[str, Any],
        net: nn.Module,
        train: Callable[[], nn.Module],
        *,
        device: torch.device,
        what: str,
        wait: bool = True,
        reload: bool = False,
    ) -> tuple[nn.Module, dict[str, Any]] | None:
        """The model of ``doc`` loaded into ``net``, or trained (``train()``) and written on a
        miss; ``None`` when ``wait`` is false and another process holds the entry's lock.
        With ``reload`` a freshly trained model is returned as ``net`` with its weights (as a
        cache hit returns it), not as the trained module."""
        path = self.path_for(doc)
        info = {"cached": True, "seconds": 0.0, "path": str(path), "fingerprint": path.stem}
        if path.is_file():
            return self._load(path, doc, net).to(device).eval(), info
        # One process trains a missing model; another that needs it at the same time waits for
        # the lock and then loads the file (a killed trainer releases the lock: locks.py).
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(exclusive(path, wait=wait, what=what))
            except RunError as err:
                if wait or err.code != "busy":
                    raise
                return None
            if path.is_file():
                return self._load(path, doc, net).to(device).eval(), info
            start = time.perf_counter()
            trained = train()
            # The fingerprint first: a model file never exists without the key it was made for.
            atomic_write(path.with_suffix(".json"), json.dumps(doc, sort_keys=True, indent=1))
            save_state(trained, path)
        if reload:
            net.load_state_dict(trained.state_dict())
            trained = net.to(device)
        return trained.eval(), {**info, "cached": False, "seconds": time.perf_counter() - start}

    def outputs(
        self,
        model_path: str | Path,
        data: TensorData,
        compute: Callable[[], dict[str, torch.Tensor]],
    ) -> tuple[dict[str, torch.Tensor], bool]:
        """The logits of a cached model on every training and test row of ``data``, read from
        beside it (``<model>.outputs-<key>.npz``) or ``compute()``d and stored.

        A run saves every model's per-example outputs; the original's and the oracle's depend
        only on the model file, the data and the numerics, so a second run reads them instead
        of predicting 70,000 MNIST rows again (7.9 s of issue 13's target run). The stored
        document holds the model file's SHA-256, the data's content digests and the numerics:
        anything else is recomputed (and replaced).

        Returns:
            ``({"train", "test"}`` CPU float tensors``, cached)``.
        """
        import io

        model_path = Path(model_path)
        key = {
            "data": data_fingerprint(data),
            "test_sha256": _sha(_tensor_bytes(data.test_x), _tensor_bytes(data.test_y)),
            "numerics": current_numerics().key(),
        }
        doc = json.dumps(
            {"format": OUTPUTS_FORMAT, "key": key, "model_sha256": _sha(model_path.read_bytes())},
            sort_keys=True,
            default=_plain,
        )
        digest = _sha(json.dumps(key, sort_keys=True, default=_plain).encode())[:20]
        path = model_path.with_name(f"{model_path.stem}.outputs-{digest}.npz")
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as stored:
                    if str(stored["document"]) == doc:
                        return {
                            part: torch.from_numpy(stored[part].copy())
                            for part in ("train", "test")
                        }, True
            except (OSError, ValueError, KeyError):
                _log.warning("cached outputs %s are unreadable; predicting again", path)
        out = compute()
        buffer = io.BytesIO()
        np.savez(
            buffer,
            document=np.array(doc),
            train=out["train"].numpy(),
            test=out["test"].numpy(),
        )
        atomic_write(path, buffer.getvalue())
        return out, False

    def metrics_path(self, model_path: str | Path, key: dict[str, Any]) -> Path:
        """Where the scores of the model at ``model_path`` under ``key`` live (beside it)."""
        model_path = Path(model_path)
        digest = _sha(json.dumps(key, sort_keys=True, default=_plain).encode())
        return model_path.with_name(f"{model_path.stem}.metrics-{digest[:20]}.json")

    def metrics(
        self,
        model_path: str | Path,
        key: dict[str, Any],
        compute: Callable[[], tuple[dict[str, float], dict[str, Any]]],
    ) -> tuple[dict[str, float], dict[str, Any], bool]:
        """The scores of a cached model: read from beside it, or ``compute()``d and stored.

        Args:
            model_path: The model file (``get``'s ``info["path"]``).
            key: What the scores depend on besides the model (the split digest, the seed, the
                attack and relearning settings, the numerics). The document stored with them
                also holds the model file's SHA-256 and :func:`metric_code_digest`, so a
                replaced model or changed scoring code is scored again, never served stale.
            compute: Returns ``(metrics, extra)`` (JSON data) on a miss.

        Returns:
            ``(metrics, extra, cached)``. An unreadable or mismatched file is recomputed (and
            replaced): it is derived data.
        """
        model_path = Path(model_path)
        doc = {
            "format": METRICS_FORMAT,
            "key": key,
            "model_sha256": _sha(model_path.read_bytes()),
            "code_sha256": metric_code_digest(),
        }
        path = self.metrics_path(model_path, key)
        if path.is_file():
            try:
                stored = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                stored = None
                _log.warning("cached metrics %s are unreadable; scoring the model again", path)
            if isinstance(stored, dict) and stored.get("document") == json.loads(
                json.dumps(doc, default=_plain)
            ):
                return stored["metrics"], stored["extra"], True
        text = json.dumps({"document": doc, "metrics": compute(), "extra": None}, default=_plain)
        # What a later run reads back is what this one returns (numpy scalars made floats).
        entry = json.loads(text)
        entry["metrics"], entry["extra"] = entry["metrics"]
        atomic_write(path, json.dumps(entry))
        return entry["metrics"], entry["extra"], False
