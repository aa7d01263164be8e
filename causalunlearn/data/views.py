"""Validation views: a dataset whose "test" rows are held-out *training* rows.

Hyperparameters are chosen on a task made only from training data (docs/baselines.md, "Tuning
protocol"). A validation view of dataset ``D`` holds out a seeded, class-stratified fraction of
``D``'s training rows as its test set and keeps the rest as its training set; ``D``'s test rows
are never part of it. Its name records how it was made, ``<D>-val<percent>-s<seed>`` (e.g.
``mnist-val20-s100``), so :func:`~causalunlearn.data.load_dataset` rebuilds it from the name
alone and model caches keyed by the dataset name keep it apart from ``D``.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import torch

from causalunlearn.errors import DataError

__all__ = [
    "parse_view_name",
    "validation_rows",
    "validation_view",
    "validation_view_name",
    "view_base",
]

_VIEW = re.compile(r"^(?P<base>.+)-val(?P<percent>\d+(?:\.\d+)?)-s(?P<seed>\d+)$")


def _check_fraction(fraction: float) -> float:
    value = float(fraction)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise DataError(
            "bad-fraction",
            f"validation fraction {fraction!r} is not strictly between 0 and 1",
            "e.g. 0.2 holds out 20% of the training rows",
        )
    return value


def validation_view_name(base: str, fraction: float, seed: int) -> str:
    """The name of a validation view, ``<base>-val<percent>-s<seed>`` (``mnist-val20-s100``).

    Args:
        base: Registered dataset name.
        fraction: Share of the training rows held out, in (0, 1).
        seed: Seed of the hold-out draw (a non-negative integer).
    """
    fraction = _check_fraction(fraction)
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise DataError("bad-seed", f"seed must be a non-negative integer, got {seed!r}", "")
    return f"{base}-val{float(f'{fraction * 100:.6g}'):g}-s{int(seed)}"


def parse_view_name(name: str) -> tuple[str, float, int] | None:
    """``(base, fraction, seed)`` of a validation view name, or None if it is not one."""
    match = _VIEW.match(str(name))
    if match is None:
        return None
    fraction = float(match["percent"]) / 100.0
    if not 0.0 < fraction < 1.0:
        return None
    return match["base"], fraction, int(match["seed"])


def view_base(name: str) -> str:
    """The dataset a view is made from (``mnist-val20-s100`` → ``mnist``); other names as is."""
    parsed = parse_view_name(name)
    return parsed[0] if parsed else name


def validation_rows(train_y: torch.Tensor, fraction: float, seed: int) -> tuple:
    """Split training row indices into (kept, held out), stratified by class.

    From each class ``c`` with ``n_c`` rows, ``round(fraction · n_c)`` rows drawn uniformly
    without replacement (``numpy.random.default_rng(seed)``, classes in increasing order) are
    held out; the rest are kept.

    Args:
        train_y: The training labels.
        fraction: Share held out, in (0, 1).
        seed: Seed of the draw.

    Returns:
        Two sorted int64 numpy arrays of training-row indices: kept, held out (disjoint; together
        every training row).
    """
    fraction = _check_fraction(fraction)
    labels = np.asarray(train_y.detach().cpu().numpy() if hasattr(train_y, "detach") else train_y)
    rng = np.random.default_rng(int(seed))
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        held.append(rng.choice(members, size=int(round(fraction * members.size)), replace=False))
    held_out = np.sort(np.concatenate(held)).astype(np.int64)
    mask = np.ones(labels.size, dtype=bool)
    mask[held_out] = False
    kept = np.flatnonzero(mask).astype(np.int64)
    if kept.size == 0 or held_out.size == 0:
        raise DataError(
            "bad-fraction",
            f"a validation fraction of {fraction:g} of {labels.size} training rows leaves "
            f"{kept.size} to train on and {held_out.size} to validate on",
            "pick a fraction that leaves rows on both sides, e.g. 0.2",
        )
    return kept, held_out


def validation_view(data, fraction: float = 0.2, seed: int = 100):
    """A validation view of ``data``: its training rows split into training and "test" rows.

    The view's ``train_x/train_y`` are the kept rows and its ``test_x/test_y`` the held-out rows
    of ``data``'s *training* set (:func:`validation_rows`); ``data``'s test rows are not used.
    Normalisation is unchanged (it was fitted on training rows only).

    Args:
        data: A :class:`~causalunlearn.data.TensorData`.
        fraction: Share of the training rows held out as the view's test set.
        seed: Seed of the hold-out draw.

    Returns:
        A ``TensorData`` named :func:`validation_view_name` ``(data.name, fraction, seed)``.
    """
    kept, held_out = validation_rows(data.train_y, fraction, seed)
    keep = torch.as_tensor(kept)
    hold = torch.as_tensor(held_out)
    return replace(
        data,
        name=validation_view_name(data.name, fraction, seed),
        train_x=data.train_x[keep].contiguous(),
        train_y=data.train_y[keep].contiguous(),
        test_x=data.train_x[hold].contiguous(),
        test_y=data.train_y[hold].contiguous(),
        source=f"validation view ({len(kept)} train / {len(held_out)} validation rows of the "
        f"training set, seed {seed}) of {data.source or data.name}",
    )
