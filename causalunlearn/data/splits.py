"""Forget / retain splits of a training set.

A scenario says which training samples are to be forgotten:

==============================  ==============================================================
``class:0``, ``class:0,3``      every training sample of the named classes
``random:0.1``                  a uniformly random fraction of the training set (exactly
                                ``round(f·N)`` samples)
``perclass:0=0.5,3=0.2``        a uniformly random fraction of each named class
                                (``round(f_c·N_c)`` samples of class ``c``)
``indices:PATH``                the training indices listed in a file: ``.txt`` (one per line
                                or separated by commas/spaces, ``#`` comments), ``.json`` (a
                                list, or an object with a ``forget`` list such as a saved
                                :class:`Split`) or ``.npy``
==============================  ==============================================================

The retain set is every other training sample. The *retain sample* is a uniformly random subset of
the retain set, drawn without replacement, of the forget set's size (CaMU's D_s). All randomness
comes from one ``numpy.random.default_rng(seed)``: first the forget draw (random/perclass), then
the retain sample, so a split is a pure function of (labels, scenario, seed). Everything is
vectorised (boolean masks, ``np.isin``), so MNIST splits take milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from causalunlearn.atomic import atomic_write
from causalunlearn.errors import DataError, shown

__all__ = ["SCENARIO_FORMS", "Scenario", "Split", "make_split", "parse_scenario"]

SCENARIO_FORMS = "class:0 | class:0,3 | random:0.1 | perclass:0=0.5,3=0.2 | indices:PATH"
_SPLIT_FORMAT = "causalunlearn.split/v1"
_KINDS = ("class", "random", "perclass", "indices")


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario (see the module doc).

    Attributes:
        kind: ``class``, ``random``, ``perclass`` or ``indices``.
        classes: The classes to remove (``class``), sorted.
        fraction: The fraction to remove (``random``).
        fractions: ``(class, fraction)`` pairs, sorted by class (``perclass``).
        path: The indices file (``indices``).
    """

    kind: str
    classes: tuple[int, ...] = ()
    fraction: float = 0.0
    fractions: tuple[tuple[int, float], ...] = ()
    path: str = ""

    def __str__(self) -> str:
        if self.kind == "class":
            return "class:" + ",".join(map(str, self.classes))
        if self.kind == "random":
            return f"random:{self.fraction:g}"
        if self.kind == "perclass":
            return "perclass:" + ",".join(f"{c}={f:g}" for c, f in self.fractions)
        return f"indices:{self.path}"


def _bad_scenario(text: str, why: str) -> DataError:
    return DataError(
        "bad-scenario", f"cannot read scenario {text!r}: {why}", f"accepted forms: {SCENARIO_FORMS}"
    )


def _parse_int(text: str, item: str) -> int:
    if not re.fullmatch(r"\s*[+-]?\d+\s*", item):
        raise _bad_scenario(text, f"{item.strip()!r} is not a class number")
    return int(item)


def _parse_fraction(text: str, item: str) -> float:
    try:
        value = float(item)
    except ValueError:
        raise _bad_scenario(text, f"{item.strip()!r} is not a number") from None
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise DataError(
            "bad-fraction",
            f"fraction {item.strip()!r} in scenario {text!r} is not strictly between 0 and 1",
            "give a fraction such as 0.1 (10%); to remove a whole class use class:C",
        )
    return value


def parse_scenario(text: str | Scenario) -> Scenario:
    """Parse a scenario string such as ``class:0`` or ``random:0.1``.

    Args:
        text: The scenario (a :class:`Scenario` is returned unchanged).

    Raises:
        DataError: ``bad-scenario`` if it cannot be read, ``bad-fraction`` for a fraction outside
            (0, 1).
    """
    if isinstance(text, Scenario):
        return text
    raw = str(text)
    kind, sep, arg = raw.strip().partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in _KINDS:
        raise _bad_scenario(
            raw, f"it does not start with one of {', '.join(k + ':' for k in _KINDS)}"
        )
    if not arg.strip():
        raise _bad_scenario(raw, f"nothing follows '{kind}:'")
    if kind == "indices":
        return Scenario(kind, path=arg.strip())
    if kind == "random":
        return Scenario(kind, fraction=_parse_fraction(raw, arg))
    items = arg.split(",")
    if any(not s.strip() for s in items):
        raise _bad_scenario(raw, "empty item in the comma-separated list")
    if kind == "class":
        classes = [_parse_int(raw, s) for s in items]
        if len(set(classes)) != len(classes):
            raise _bad_scenario(raw, "a class is named twice")
        return Scenario(kind, classes=tuple(sorted(classes)))
    pairs: dict[int, float] = {}
    for item in items:
        cls, eq, frac = item.partition("=")
        if not eq:
            raise _bad_scenario(raw, f"{item.strip()!r} is not CLASS=FRACTION")
        c = _parse_int(raw, cls)
        if c in pairs:
            raise _bad_scenario(raw, f"class {c} is named twice")
        pairs[c] = _parse_fraction(raw, frac)
    return Scenario(kind, fractions=tuple(sorted(pairs.items())))


def _frozen(a: Any) -> np.ndarray:
    out = np.array(a, dtype=np.int64).reshape(-1)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Split:
    """A forget / retain split of a training set.

    Attributes:
        scenario: The scenario, in canonical form (e.g. ``class:0``).
        seed: The seed it was drawn with.
        forget: Training indices to forget, sorted, int64.
        retain: Every other training index, sorted, int64.
        retain_sample: A uniformly random subset of ``retain`` (in drawn order), by default of the
            forget set's size.
        num_train: Size of the training set.
        forgotten_classes: Classes every training sample of which is in the forget set (the whole
            class is removed: ``class:`` scenarios; usually empty otherwise).
    """

    scenario: str
    seed: int
    forget: np.ndarray
    retain: np.ndarray
    retain_sample: np.ndarray
    num_train: int
    forgotten_classes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("forget", "retain", "retain_sample"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "forgotten_classes", tuple(int(c) for c in self.forgotten_classes))

    def digest(self) -> str:
        """Short (12 hex digits) sha256 of the training-set size and all indices."""
        h = hashlib.sha256(f"{self.num_train}:".encode())
        for a in (self.forget, self.retain, self.retain_sample):
            h.update(a.astype("<i8").tobytes())
            h.update(b"|")
        return h.hexdigest()[:12]

    def to_json(self) -> str:
        """Return the split as JSON text (``retain`` is omitted: it is the complement)."""
        return json.dumps(
            {
                "format": _SPLIT_FORMAT,
                "scenario": self.scenario,
                "seed": self.seed,
                "num_train": self.num_train,
                "forgotten_classes": list(self.forgotten_classes),
                "digest": self.digest(),
                "forget": self.forget.tolist(),
                "retain_sample": self.retain_sample.tolist(),
            }
        )

    @classmethod
    def from_json(cls, text: str, where: str = "<text>") -> Split:
        """Rebuild a split from :meth:`to_json` text, checking its digest.

        Args:
            text: The JSON text.
            where: Its origin, for error messages.

        Raises:
            DataError: ``corrupt-split-file`` if it is not a valid split.
        """
        try:
            d = json.loads(text)
            if d.get("format") != _SPLIT_FORMAT:
                raise ValueError(f"format is {d.get('format')!r}, expected {_SPLIT_FORMAT!r}")
            n = int(d["num_train"])
            mask = np.zeros(n, dtype=bool)
            mask[np.asarray(d["forget"], dtype=np.int64)] = True
            split = cls(
                scenario=str(d["scenario"]),
                seed=int(d["seed"]),
                forget=d["forget"],
                retain=np.flatnonzero(~mask),
                retain_sample=d["retain_sample"],
                num_train=n,
                forgotten_classes=tuple(d.get("forgotten_classes", ())),
            )
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise DataError(
                "corrupt-split-file",
                f"{where} is not a readable split: {exc}",
                "re-create it with make_split(...).save(path)",
            ) from exc
        if split.digest() != d.get("digest"):
            raise DataError(
                "corrupt-split-file",
                f"{where}: indices do not match the stored digest {d.get('digest')!r}",
                "the file was edited or damaged; re-create it with make_split(...).save(path)",
            )
        return split

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to ``path`` atomically (temporary file, then rename).

        Args:
            path: Destination file; its folder is created if needed.
        """
        return atomic_write(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Split:
        """Read a split written by :meth:`save`.

        Args:
            path: The file.

        Raises:
            DataError: ``missing-split-file`` or ``corrupt-split-file``.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(
                "missing-split-file", f"split file {str(path)!r} does not exist", ""
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(
                "corrupt-split-file", f"cannot read split file {str(path)!r}: {exc}", ""
            ) from exc
        return cls.from_json(text, str(path))

    def __repr__(self) -> str:
        return (
            f"Split(scenario={self.scenario!r}, seed={self.seed}, forget={len(self.forget)}, "
            f"retain={len(self.retain)}, retain_sample={len(self.retain_sample)}, "
            f"num_train={self.num_train}, forgotten_classes={self.forgotten_classes}, "
            f"digest={self.digest()!r})"
        )


def _labels(train_labels: Any) -> np.ndarray:
    if hasattr(train_labels, "detach"):  # a torch tensor, without importing torch here
        train_labels = train_labels.detach().cpu().numpy()
    labels = np.asarray(train_labels)
    if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            "bad-labels",
            f"training labels must be a non-empty 1-D integer array, got shape {labels.shape} "
            f"of {labels.dtype}",
            "pass the training labels, e.g. data.train_y",
        )
    if labels.min() < 0:
        raise DataError("bad-labels", f"training labels hold {int(labels.min())} (< 0)", "")
    return labels.astype(np.int64, copy=False)


def _read_indices(path_text: str, n: int) -> np.ndarray:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise DataError(
            "missing-indices-file",
            f"forget-indices file {path_text!r} does not exist",
            "give a .txt (one index per line), .json (a list) or .npy file of training indices",
        )

    def bad(why: str) -> DataError:
        return DataError(
            "bad-index",
            f"forget-indices file {path_text!r}: {why}",
            f"indices are 0-based positions in the training set (0..{n - 1}), each listed once",
        )

    try:
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            values = data["forget"] if isinstance(data, dict) else data
            if not isinstance(values, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in values
            ):
                raise bad("expected a JSON list of integers (or an object with a 'forget' list)")
        else:
            text = re.sub(r"#[^\n]*", "", path.read_text(encoding="utf-8"))
            tokens = [t for t in re.split(r"[\s,]+", text) if t]
            if any(not re.fullmatch(r"[+-]?\d{1,30}", t) for t in tokens):
                raise bad("holds something other than integers (of at most 30 digits)")
            values = [int(t) for t in tokens]
    except DataError:
        raise
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise bad(f"cannot be read: {shown(str(exc))}") from exc
    # The range is checked before any cast to int64: a value beyond int64 (a Python int from
    # .txt/.json, a uint64 or float from .npy) is reported as it was written, never wrapped.
    if isinstance(values, list):
        outside = [v for v in values if not 0 <= v < n]
        if outside:
            raise bad(f"{len(outside)} index(es) outside 0..{n - 1}, e.g. {shown(outside[:5])}")
        values = np.asarray(values, dtype=np.int64)
    values = np.asarray(values).reshape(-1)
    if values.size and not np.issubdtype(values.dtype, np.integer):
        if not np.issubdtype(values.dtype, np.floating):
            raise bad(f"holds non-integer values ({values.dtype})")
        with np.errstate(invalid="ignore"):
            if not np.all(values == np.round(values)):  # NaN and inf are not integers either
                raise bad(f"holds non-integer values ({values.dtype})")
    outside = values[(values < 0) | (values >= n)]
    if outside.size:
        raise bad(f"{outside.size} index(es) outside 0..{n - 1}, e.g. {outside[:5].tolist()}")
    values = values.astype(np.int64)
    uniq, counts = np.unique(values, return_counts=True)
    if uniq.size != values.size:
        raise bad(f"duplicate indices, e.g. {uniq[counts > 1][:5].tolist()}")
    return uniq


def make_split(
    train_labels: Any,
    scenario: str | Scenario,
    seed: int,
    num_classes: int | None = None,
    *,
    retain_sample_size: int | None = None,
) -> Split:
    """Split a training set into forget and retain sets, and draw the retain sample.

    Args:
        train_labels: Training labels (numpy array, list or torch tensor), 1-D integers.
        scenario: A scenario string (see the module doc) or :class:`Scenario`.
        seed: Seed of ``numpy.random.default_rng``; a non-negative integer.
        num_classes: Number of classes (default: the largest label + 1, and only labels present
            count as classes).
        retain_sample_size: Size of the retain sample (default: the forget set's size).

    Returns:
        The split.

    Raises:
        DataError: ``bad-scenario``, ``bad-fraction``, ``unknown-class``, ``empty-forget-set``,
            ``bad-index``, ``missing-indices-file``, ``retain-too-small``, ``bad-labels`` or
            ``bad-seed``.
    """
    sc = parse_scenario(scenario)
    labels = _labels(train_labels)
    n = labels.size
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(
            "bad-seed", f"seed must be a non-negative integer, got {seed!r}", "e.g. seed=0"
        )
    if num_classes is not None and labels.max() >= num_classes:
        raise DataError(
            "bad-labels",
            f"training labels hold {int(labels.max())} but num_classes is {num_classes}",
            "pass the dataset's num_classes",
        )
    counts = np.bincount(labels, minlength=num_classes or 0)
    known = np.arange(num_classes) if num_classes is not None else np.flatnonzero(counts)
    known_set = set(known.tolist())
    named = list(sc.classes) + [c for c, _ in sc.fractions]
    unknown = [c for c in named if c not in known_set]
    if unknown:
        raise DataError(
            "unknown-class",
            f"scenario {str(sc)!r} names class(es) {unknown} that the training set does not have",
            f"classes present: {_ranges(known)}",
        )
    rng = np.random.default_rng(int(seed))
    if sc.kind == "class":
        forget = np.flatnonzero(np.isin(labels, sc.classes))
    elif sc.kind == "random":
        forget = np.sort(rng.choice(n, size=int(round(sc.fraction * n)), replace=False))
    elif sc.kind == "perclass":
        parts = []
        for c, f in sc.fractions:
            members = np.flatnonzero(labels == c)
            parts.append(rng.choice(members, size=int(round(f * members.size)), replace=False))
        forget = np.sort(np.concatenate(parts))
    else:
        forget = _read_indices(sc.path, n)
    if forget.size == 0:
        raise DataError(
            "empty-forget-set",
            f"scenario {str(sc)!r} selects no training sample (training set of {n})",
            "pick a class that has samples or a larger fraction",
        )
    mask = np.zeros(n, dtype=bool)
    mask[forget] = True
    retain = np.flatnonzero(~mask)
    size = forget.size if retain_sample_size is None else int(retain_sample_size)
    if size < 0 or size > retain.size:
        raise DataError(
            "retain-too-small",
            f"cannot draw a retain sample of {size} from {retain.size} retained samples "
            f"(scenario {str(sc)!r} forgets {forget.size} of {n})",
            "forget less (a smaller fraction or fewer classes) or ask for a smaller retain sample",
        )
    retain_sample = rng.choice(retain, size=size, replace=False)
    removed = np.bincount(labels[forget], minlength=counts.size)
    forgotten = np.flatnonzero((counts > 0) & (removed == counts))
    return Split(
        scenario=str(sc),
        seed=int(seed),
        forget=forget,
        retain=retain,
        retain_sample=retain_sample,
        num_train=n,
        forgotten_classes=tuple(forgotten.tolist()),
    )


def _ranges(values: np.ndarray) -> str:
    vals = values.tolist()
    if vals and vals == list(range(vals[0], vals[-1] + 1)) and len(vals) > 3:
        return f"{vals[0]}..{vals[-1]}"
    return ", ".join(map(str, vals))
