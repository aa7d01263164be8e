"""Results as a table: every number of a run folder or a sweep folder, one row per value.

:func:`results` returns a tidy :class:`pandas.DataFrame` (pandas is the optional extra
``pip install causalunlearn[pandas]``); :func:`result_rows` gives the same rows as plain dicts
(no pandas), which ``causalunlearn compare --csv`` writes with :func:`write_csv`.

Long format, one row per (method, dataset, scenario, seeds, model, metric):

============  ===============================================================================
method        the graph's name (a run folder) or the method's label (a sweep)
dataset       the dataset name
scenario      the forget scenario (``class:0``, ``random:0.1``, ...)
seed          the seed (a sweep of nested seeds: the unlearning seed, as the cell records it)
train_seed    the training seed of the original and the oracle (docs/sweeps.md, Seed protocol)
split_seed    the seed of the forget/retain split
unlearn_seed  the unlearning seed (the three equal ``seed`` unless the sweep nests its seeds)
model         ``original``, ``unlearned``, ``oracle`` (the retrain oracle) or ``random_init``
              (the representation probe's floor, ``--probe``)
metric        a key of :mod:`causalunlearn.metrics.catalogue` (``forget_acc``, ``mia``, ...)
value         the number (float)
============  ===============================================================================

In a sweep, the original's and the oracle's metrics (``references/``) are shared by every
method of a (dataset, scenario, training seed, split seed); they are repeated under each method
with a finished cell there, so every method has its three models side by side. Failed cells
(``status: failed``) have no numbers and give no rows.

**Group metrics** (:data:`GROUP_METRICS`: ``oracle_klom``, ``--oracles K``) are one value for a
group of unlearned models, not one per seed: a run's seeds together (the manifest's
``oracle_distribution``), or a sweep method's finished cells of one (dataset, scenario) table
together (``summary.json``: the table's ``oracle_distribution``). The value is repeated on the
``unlearned`` row of every seed of the group (every seed its ``seeds`` list names), so the wide
table has an ``oracle_klom`` column beside the per-seed ones and a ``groupby`` over seeds gives
the value back (its std over seeds is 0 by construction, not a spread; the 95 % interval is in
the manifest or ``summary.json``, ``ci``). A sweep's comes from ``summary.json``: a sweep
interrupted before its summary was written has none until ``compare ... --summary-only`` (or
the resumed sweep) writes it. ``df[~df.metric.isin(GROUP_METRICS)]`` keeps the per-seed values.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from causalunlearn.atomic import atomic_write
from causalunlearn.errors import RunError
from causalunlearn.studies.seeds import CellSeeds
from causalunlearn.studies.summary import GROUP_COLUMNS

__all__ = ["COLUMNS", "GROUP_METRICS", "INDEX", "MODELS", "result_rows", "results", "write_csv"]

#: What identifies one model's numbers (the index of the wide table).
INDEX = (
    "method",
    "dataset",
    "scenario",
    "seed",
    "train_seed",
    "split_seed",
    "unlearn_seed",
    "model",
)
#: The columns of the long table.
COLUMNS = (*INDEX, "metric", "value")
#: The model roles, in table order.
MODELS = ("original", "unlearned", "oracle", "random_init")
#: Metrics of a group of seeds (one value, repeated on each of the group's ``unlearned`` rows).
GROUP_METRICS = tuple(m.key for m in GROUP_COLUMNS)


def _read(path: Path) -> dict[str, Any]:
    from causalunlearn.studies.sweep import read_cell

    return read_cell(path)


def _numbers(metrics: Mapping[str, Any]) -> Iterable[tuple[str, float]]:
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield key, float(value)


def _rows(
    method: str,
    dataset: str,
    scenario: str,
    seed: int,
    by_model: Mapping[str, Mapping[str, Any]],
    seeds: CellSeeds | None = None,
) -> list[dict[str, Any]]:
    seeds = seeds or CellSeeds.same(int(seed))
    return [
        {
            "method": method,
            "dataset": dataset,
            "scenario": scenario,
            "seed": int(seed),
            "train_seed": seeds.train,
            "split_seed": seeds.split,
            "unlearn_seed": seeds.unlearn,
            "model": model,
            "metric": key,
            "value": value,
        }
        for model in MODELS
        if model in by_model
        for key, value in _numbers(by_model[model])
    ]


def _in_group(found: Mapping[str, Any] | None, name: int | str) -> dict[str, float]:
    """``{"oracle_klom": value}`` when the group result ``found`` (a run's or a sweep
    method's ``oracle_distribution``: ``value``, ``seeds``) has a value and names ``name``
    among its seeds; else ``{}`` (none computed, or ``{"missing": why}``)."""
    if not found or not isinstance(found.get("value"), (int, float)):
        return {}
    if name not in found.get("seeds", ()):
        return {}
    return {"oracle_klom": float(found["value"])}


def _with_group(by_model: Mapping[str, Any], group: dict[str, float]) -> Mapping[str, Any]:
    if not group or "unlearned" not in by_model:
        return by_model
    return {**by_model, "unlearned": {**by_model["unlearned"], **group}}


def _run_rows(manifest_path: Path) -> list[dict[str, Any]]:
    manifest = _read(manifest_path)
    klom = manifest.get("oracle_distribution")
    rows = []
    for seed in manifest.get("per_seed", []):
        rows += _rows(
            manifest["graph"]["name"],
            manifest["dataset"],
            manifest["scenario"],
            seed["seed"],
            _with_group(seed["metrics"], _in_group(klom, int(seed["seed"]))),
        )
    return rows


def _seed_of(path: Path) -> tuple[int, ...]:
    """The seeds a cell file's name spells (``seed3``, ``seed0-split1-unlearn2``), to sort."""
    found = re.fullmatch(r"seed(\d+)(?:-split(\d+)-unlearn(\d+))?", path.stem)
    if found is None:
        return (-1,)
    t, s, u = found.groups()
    return (int(t), int(t), int(t)) if s is None else (int(t), int(s), int(u))


def _sweep_groups(folder: Path) -> dict[tuple[str, str, str], Mapping[str, Any]]:
    """``(method, dataset, scenario) → oracle_distribution`` of ``summary.json`` (none when
    the sweep has no summary yet, or no method got a group metric)."""
    path = folder / "summary.json"
    if not path.is_file():
        return {}
    summary = _read(path)  # corrupt-cell naming the file when unreadable
    return {
        (label, table.get("dataset"), table.get("scenario")): found
        for table in summary.get("tables", ())
        for label, found in (table.get("oracle_distribution") or {}).items()
    }


def _sweep_rows(folder: Path) -> list[dict[str, Any]]:
    rows = []
    references: dict[Path, dict[str, Any]] = {}
    groups = _sweep_groups(folder)
    paths = (folder / "runs").rglob("seed*.json")
    for path in sorted(paths, key=lambda p: (p.parts[:-1], _seed_of(p))):
        cell = _read(path)
        if cell.get("status") != "finished":
            continue
        # runs/<method>/<dataset>/<scenario>/<cell>.json ↔ references/<dataset>/<scenario>/<ref>:
        # seed<T>[-split<S>-unlearn<U>].json ↔ seed<T>[-split<S>].json
        seeds = CellSeeds.of_record(cell)
        ref_name = f"{seeds.reference_stem}.json"
        ref_path = folder / "references" / path.parent.parent.name / path.parent.name / ref_name
        if ref_path not in references:
            references[ref_path] = _read(ref_path) if ref_path.is_file() else {}
        label = cell["method"]["label"]
        found = groups.get((label, cell["dataset"], cell["scenario"]))
        # the summary names a paired sweep's cells by seed (int), a nested one's as "T/S/U"
        group = _in_group(found, seeds.name(False)) or _in_group(found, seeds.name(True))
        by_model = {
            **references[ref_path].get("metrics", {}),
            "unlearned": {**cell["metrics"], **group},
        }
        rows += _rows(
            label,
            cell["dataset"],
            cell["scenario"],
            cell["seed"],
            by_model,
            seeds,
        )
    return rows


def result_rows(path: str | Path) -> list[dict[str, Any]]:
    """The long table of a run folder or a sweep folder as dicts (keys: :data:`COLUMNS`).

    Args:
        path: A run folder (with ``manifest.json``), its ``manifest.json``, or a sweep folder
            (with ``runs/`` or ``sweep.json``).

    Raises:
        RunError: ``not-a-results-folder`` when ``path`` is neither; ``corrupt-cell`` naming
            an unreadable file.
    """
    path = Path(path)
    if path.is_file() and path.name == "manifest.json":
        return _run_rows(path)
    if (path / "manifest.json").is_file():
        return _run_rows(path / "manifest.json")
    if (path / "runs").is_dir() or (path / "sweep.json").is_file():
        return _sweep_rows(path)
    raise RunError(
        "not-a-results-folder",
        f"{path} is neither a run folder (manifest.json) nor a sweep folder (runs/, sweep.json)",
        "give the --out folder of causalunlearn run, compare, ablate or tune",
    )


def _pandas():
    try:
        import pandas
    except ImportError:
        raise RunError(
            "pandas-missing",
            "results() returns a pandas DataFrame, and pandas is not installed",
            "pip install causalunlearn[pandas] (or pip install pandas); result_rows() gives the"
            " same rows as plain dicts",
        ) from None
    return pandas


def results(path: str | Path, *, wide: bool = False):
    """Every number of a run or sweep folder as a tidy :class:`pandas.DataFrame`.

    Args:
        path: A run folder, its ``manifest.json``, or a sweep folder (see :func:`result_rows`).
        wide: One row per (method, dataset, scenario, seeds, model) and a column per metric
            (``NaN`` where a model has no such metric, e.g. the original's ``tow``), instead of
            one row per value.

    Returns:
        Long: columns ``method, dataset, scenario, seed, train_seed, split_seed,
        unlearn_seed, model, metric, value``. Wide: the eight identifying columns, then one per
        metric.

    Raises:
        RunError: ``pandas-missing`` (with how to install it), ``not-a-results-folder``,
            ``corrupt-cell``.

    Example::

        df = causalunlearn.results("runs/compare")
        df[df.metric == "forget_acc"].groupby(["method", "model"]).value.mean()
    """
    pd = _pandas()
    long = pd.DataFrame(result_rows(path), columns=list(COLUMNS))
    for column in ("seed", "train_seed", "split_seed", "unlearn_seed"):
        long[column] = long[column].astype("int64")
    long["value"] = long["value"].astype("float64")
    if not wide:
        return long
    # Rows come grouped by model (result_rows' order): one wide row per group, in that order.
    wide_rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in long.itertuples(index=False):
        key = tuple(getattr(row, c) for c in INDEX)
        wide_rows.setdefault(key, dict(zip(INDEX, key, strict=True)))[row.metric] = row.value
    metrics = list(dict.fromkeys(long["metric"]))
    return pd.DataFrame(list(wide_rows.values()), columns=[*INDEX, *metrics])


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write the long table (:data:`COLUMNS`) as CSV, atomically; ``nan`` values are empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        value = row["value"]
        writer.writerow({**row, "value": "" if math.isnan(value) else repr(value)})
    path = Path(path)
    atomic_write(path, buffer.getvalue())
    return path
