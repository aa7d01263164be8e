"""The seeds of a sweep cell, and how the variance over them splits (the seed protocol).

Three seeds decide a cell's numbers (docs/sweeps.md, "Seed protocol"):

- the **training seed** (``train``): the original model is trained with it, and the retrain
  oracle with it on the retain set of the split;
- the **split seed** (``split``): which rows are forgotten under random removal (for class
  removal the forget and retain sets do not depend on it, so the oracle is shared; the retain
  *sample* D_s that unlearning and the attacks use still does);
- the **unlearning seed** (``unlearn``): every random draw of the unlearning run and of the
  unlearned model's scoring (:func:`causalunlearn.studies.cell.run_cell` gets it).

:class:`CellSeeds` is the cell key's seed part: ``Sweep.cells()`` yields
``(entry, dataset, scenario, CellSeeds)``. The models, split and references of a cell depend on
:attr:`CellSeeds.models` (``(train, split)``), the unlearning on :attr:`CellSeeds.unlearn`.
``--seeds 0,1,2`` gives the *paired* cells ``CellSeeds(s, s, s)``, whose files keep the names of
sweeps made before nested seeds existed (``seed<S>.json``); nested seeds give the cross product.

:func:`variance_components` splits the variance of one metric over the cells of a method into
the part between training seeds, between split seeds within a training seed and between
unlearning seeds within those (a balanced nested random-effects ANOVA).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from causalunlearn.errors import RunError

#: The seeds of a cell, outermost first (the nesting of the variance decomposition).
LEVELS = ("train", "split", "unlearn")
#: The Python fields / sweep-file keys of the nested seeds.
NESTED_FIELDS = {"train": "train_seeds", "split": "split_seeds", "unlearn": "unlearn_seeds"}
#: Their command-line flags.
NESTED_FLAGS = {"train": "--train-seeds", "split": "--split-seeds", "unlearn": "--unlearn-seeds"}


@dataclass(frozen=True, order=True)
class CellSeeds:
    """The three seeds of one cell (see the module docstring).

    Attributes:
        train: Seed of the original's (and the oracle's) training.
        split: Seed of the forget/retain split and the retain sample.
        unlearn: Seed of the unlearning run and of the unlearned model's scoring.
    """

    train: int
    split: int
    unlearn: int

    @classmethod
    def same(cls, seed: int) -> CellSeeds:
        """The paired cell of ``--seeds``: one seed for all three."""
        return cls(seed, seed, seed)

    @classmethod
    def of(cls, seed: int | CellSeeds) -> CellSeeds:
        """``seed`` as cell seeds (an integer is the paired cell of that seed)."""
        return seed if isinstance(seed, CellSeeds) else cls.same(seed)

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> CellSeeds:
        """The seeds a cell file records (``seeds``; a paired cell, and any older cell, only
        ``seed``)."""
        seeds = record.get("seeds")
        if isinstance(seeds, Mapping):
            return cls(int(seeds["train"]), int(seeds["split"]), int(seeds["unlearn"]))
        return cls.same(int(record["seed"]))

    @property
    def paired(self) -> bool:
        """Whether the three seeds are one (the cells of ``--seeds``)."""
        return self.train == self.split == self.unlearn

    @property
    def models(self) -> tuple[int, int]:
        """What the original, the oracle, the split and the references depend on."""
        return (self.train, self.split)

    @property
    def stem(self) -> str:
        """The cell file's name without ``.json``: ``seed<S>`` for a paired cell (as before
        nested seeds), else ``seed<T>-split<S>-unlearn<U>``."""
        if self.paired:
            return f"seed{self.train}"
        return f"seed{self.train}-split{self.split}-unlearn{self.unlearn}"

    @property
    def reference_stem(self) -> str:
        """The reference file's name without ``.json``: ``seed<T>`` when the training and split
        seeds are one (as before nested seeds), else ``seed<T>-split<S>``."""
        if self.train == self.split:
            return f"seed{self.train}"
        return f"seed{self.train}-split{self.split}"

    def name(self, nested: bool) -> int | str:
        """How tables name the cell: its seed in a paired sweep, ``T/S/U`` in a nested one."""
        return f"{self.train}/{self.split}/{self.unlearn}" if nested else self.train

    def record(self) -> dict[str, Any]:
        """The seed fields of the cell file: ``seed`` (the unlearning seed, the one
        :func:`~causalunlearn.studies.cell.run_cell` got) and, unless paired, ``seeds``."""
        fields: dict[str, Any] = {"seed": self.unlearn}
        if not self.paired:
            fields["seeds"] = {"train": self.train, "split": self.split, "unlearn": self.unlearn}
        return fields

    def __str__(self) -> str:
        if self.paired:
            return str(self.train)
        return f"train {self.train}, split {self.split}, unlearn {self.unlearn}"


def check_seed_list(values: Any, field: str, example: str) -> tuple[int, ...]:
    """A list of seeds, checked: non-empty, non-negative integers, each once.

    Args:
        values: The seeds.
        field: Their name where they were given (``seeds``, ``train_seeds``, ...).
        example: How to give them right, for the hints (``--train-seeds 0,1,2``).

    Raises:
        RunError: ``no-seeds``, ``bad-seed`` or ``duplicate-seeds``, naming ``field``.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise RunError(
            "bad-seed", f"{field} is a list of non-negative integers, got {values!r}", example
        )
    seeds = list(values)
    if not seeds:
        raise RunError("no-seeds", f"{field}: no seeds given", f"e.g. {example}")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad:
        raise RunError(
            "bad-seed", f"{field} are non-negative integers, got {bad[0]!r}", f"e.g. {example}"
        )
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise RunError(
            "duplicate-seeds",
            f"{field}: seed {', '.join(map(str, repeated))} is given more than once: the same"
            f" run would be counted {max(seeds.count(s) for s in repeated)} times in the mean"
            " and std",
            f"give each seed once, e.g. {example}",
        )
    return tuple(seeds)


def nested_cells(
    train: Sequence[int], split: Sequence[int], unlearn: Sequence[int]
) -> tuple[CellSeeds, ...]:
    """The cross product, training seed outermost (the cells of one original run together)."""
    return tuple(CellSeeds(t, s, u) for t in train for s in split for u in unlearn)


def seed_plan_text(plan: Mapping[str, Any]) -> str:
    """A seed plan in words, for reports: ``seeds 100, 101`` (paired), or ``training seeds 0, 1
    × split seeds 0 × unlearning seeds 0, 1 (4 cells)`` (nested).

    Args:
        plan: What :meth:`~causalunlearn.studies.settings.StudySettings.seed_plan` returns, as
            ``sweep.json`` and a tuning report's ``task`` record it: ``seeds``, or the three
            nested lists.
    """
    if "seeds" in plan:
        return f"seeds {', '.join(map(str, plan['seeds']))}"
    words = {"train": "training", "split": "split", "unlearn": "unlearning"}
    lists = [list(plan.get(NESTED_FIELDS[level], [0])) for level in LEVELS]
    parts = [
        f"{words[level]} seeds {', '.join(map(str, seeds))}"
        for level, seeds in zip(LEVELS, lists, strict=True)
    ]
    return f"{' × '.join(parts)} ({math.prod(len(s) for s in lists)} cells)"


# -- the variance decomposition ----------------------------------------------------------------


def variance_components(
    values: Mapping[CellSeeds, float] | Mapping[tuple[int, ...], float],
    levels: Sequence[str] = LEVELS,
) -> dict[str, Any] | None:
    """Split the variance of one metric over cells into training, split and unlearning parts.

    The model is the nested random-effects model ``x_tsu = μ + a_t + b_s(t) + c_u(ts)`` with
    independent effects of variances ``σ²_train``, ``σ²_split``, ``σ²_unlearn``. For a balanced
    design (``I`` training seeds, ``J`` split seeds per training seed, ``K`` unlearning seeds
    per split; ``N = IJK`` cells) the mean squares are::

        MS_train   = JK · Σ_t (x̄_t − x̄)²       / (I − 1)
        MS_split   = K  · Σ_ts (x̄_ts − x̄_t)²   / (I (J − 1))
        MS_unlearn =      Σ_tsu (x_tsu − x̄_ts)² / (IJ (K − 1))

    and, from their expectations (``E MS_unlearn = σ²_u``, ``E MS_split = σ²_u + K σ²_s``,
    ``E MS_train = σ²_u + K σ²_s + JK σ²_t``), the ANOVA (method-of-moments) estimates::

        σ²_unlearn = MS_unlearn
        σ²_split   = (MS_split − MS_unlearn) / K
        σ²_train   = (MS_train − MS_split)   / (JK)

    each set to 0 when negative (``truncated`` names those). ``share`` is each component over
    their sum: the fraction of one cell's variance that comes from that seed.

    A seed with one value in the whole design is *fixed*: not a level (``fixed`` gives its
    value). A seed that changes together with the one above it (one value under each parent,
    as in the paired cells of ``--seeds``, where the three seeds are one) cannot be told apart
    from it: the two make one level, named ``train+split``. The same estimates hold for any
    number of levels: with ``c_l`` the number of cells under one group of level ``l``,
    ``MS_l = Σ_cells (x̄_group(l) − x̄_group(l−1))² / df_l`` and
    ``σ²_l = (MS_l − MS_{l+1}) / c_l`` (``MS`` below the last level is 0).

    Args:
        values: One value per cell, keyed by its seeds: a :class:`CellSeeds`, or a tuple of
            seeds in the order of ``levels``; ``NaN`` values count as missing.
        levels: The names of the key's seeds, outermost first (e.g. ``("train", "split")``
            for the references, which have no unlearning seed).

    Returns:
        ``None`` when fewer than two cells have a value. Else ``{"n", "fixed", "levels",
        "balanced"}`` (``levels``: the level names, outermost first); a balanced design adds
        ``components`` (per level: ``name``, ``seeds`` — values under one parent —, ``df``,
        ``ms``, ``variance``, ``share``, which is ``None`` when every component is 0), ``total``
        (the sum of the components: the estimated variance of one cell) and ``truncated``.
        An unbalanced design (cells missing or failed) gets no estimates.
    """
    cells: dict[tuple[int, ...], float] = {}
    for k, v in values.items():
        if v is not None and not math.isnan(v):
            seeds = (k.train, k.split, k.unlearn) if isinstance(k, CellSeeds) else tuple(k)
            cells[seeds] = float(v)
    if len(cells) < 2:
        return None
    fixed: dict[str, int] = {}
    varied: list[int] = []  # positions in the key
    for i, level in enumerate(levels):
        seen = {k[i] for k in cells}
        if len(seen) == 1:
            fixed[level] = next(iter(seen))
        else:
            varied.append(i)

    def key(cell: tuple[int, ...], upto: int) -> tuple[int, ...]:
        return tuple(cell[i] for i in varied[:upto])

    # Effective levels: a varied seed with one value under each parent merges into the level
    # above it (it is confounded with it).
    merged: list[list[str]] = []  # names
    depth: list[int] = []  # how many of ``varied`` the level's group key spans
    for i, position in enumerate(varied):
        with_it = {key(c, i + 1) for c in cells}
        without = {key(c, i) for c in cells}
        if merged and len(with_it) == len(without):
            merged[-1].append(levels[position])
            depth[-1] = i + 1
        else:
            merged.append([levels[position]])
            depth.append(i + 1)
    names = ["+".join(parts) for parts in merged]
    out: dict[str, Any] = {"n": len(cells), "fixed": fixed, "levels": names}

    # Balanced: every group of a level has the same number of children.
    counts: list[int] = []
    parent_depth = 0
    for d in depth:
        children: dict[tuple[int, ...], set[tuple[int, ...]]] = {}
        for c in cells:
            children.setdefault(key(c, parent_depth), set()).add(key(c, d))
        sizes = {len(v) for v in children.values()}
        if len(sizes) != 1:
            out["balanced"] = False
            return out
        counts.append(sizes.pop())
        parent_depth = d
    out["balanced"] = True

    n = len(cells)
    grand = sum(cells.values()) / n

    def means(d: int) -> dict[tuple[int, ...], float]:
        groups: dict[tuple[int, ...], list[float]] = {}
        for c, v in cells.items():
            groups.setdefault(key(c, d), []).append(v)
        return {g: sum(vs) / len(vs) for g, vs in groups.items()}

    rows: list[dict[str, Any]] = []
    groups_above = 1
    parent = {(): grand}
    parent_depth = 0
    for name, d, k in zip(names, depth, counts, strict=True):
        own = means(d)
        ss = sum(
            (own[key(c, d)] - parent[key(c, parent_depth)]) ** 2 for c in cells
        )  # each cell counts its group's deviation: the cells-per-group weight
        df = groups_above * (k - 1)
        groups_above *= k
        rows.append(
            {
                "name": name,
                "seeds": k,
                "df": df,
                "ms": ss / df,
                "cells_per_group": n // groups_above,
            }
        )
        parent, parent_depth = own, d
    truncated = []
    below = 0.0  # E MS of the level below, estimated
    for row in reversed(rows):
        raw = (row["ms"] - below) / row["cells_per_group"]
        if raw < 0:
            truncated.append(row["name"])
        row["variance"] = max(raw, 0.0)
        below = row["ms"]
    total = sum(r["variance"] for r in rows)
    for row in rows:
        row["share"] = row["variance"] / total if total > 0 else None
        del row["cells_per_group"]
    out["components"] = rows
    out["total"] = total
    out["truncated"] = sorted(truncated, key=names.index)
    return out
