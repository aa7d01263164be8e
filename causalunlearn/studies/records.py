"""What studies write: format identifiers of their files and the provenance they record.

Every file a study writes names its format (``causalunlearn.run/v1`` and so on): a later version
that reads an older folder can tell what it holds, and :mod:`causalunlearn.studies.outdir`
recognises the toolkit's own folders by these names.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, TypedDict, TypeVar, cast

from causalunlearn.errors import RunError, shown

#: ``manifest.json`` of a run folder (``causalunlearn run``).
MANIFEST_FORMAT = "causalunlearn.run/v1"
#: ``sweep.json`` / ``summary.json`` of a sweep folder (``compare``, ``ablate``, ``tune``).
SWEEP_FORMAT = "causalunlearn.sweep/v1"
#: One cell file of a sweep (``runs/<method>/<dataset>/<scenario>/seed<S>.json``).
CELL_FORMAT = "causalunlearn.cell/v1"
#: ``tuning.json`` of a tuning folder.
TUNING_FORMAT = "causalunlearn.tuning/v1"


def versions() -> dict[str, str]:
    """Versions of the software a run used."""
    import numpy
    import sklearn
    import torch

    import causalunlearn

    return {
        "causalunlearn": causalunlearn.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


# -- the records, typed ----------------------------------------------------------------------
# Each file is a JSON object; these TypedDicts say which keys it holds (mypy checks the code that
# builds and reads them; the JSON stays plain, so older folders and other tools read it as is).
# ``read_record`` checks a file's format before anything trusts its content.


class RunManifest(TypedDict, total=False):
    """``manifest.json`` of a run folder (:data:`MANIFEST_FORMAT`)."""

    format: str
    status: str  # "finished"
    graph: dict[str, Any]  # name, digest, resolved (the method's plain form)
    dataset: str
    scenario: str
    model: str
    recipe: dict[str, Any]
    device: str
    seeds: list[int]
    versions: dict[str, str]
    started: float
    seconds: float
    per_seed: list[dict[str, Any]]  # seed, split, metrics per role, seconds, models, steps, ...
    summary: dict[str, dict[str, dict[str, float]]]  # role → metric → {mean, std}
    numerics: dict[str, Any]  # CPU numerics settings in force
    threads: int | None


class SweepCell(TypedDict, total=False):
    """One cell file of a sweep (:data:`CELL_FORMAT`): finished, or failed with its error."""

    format: str
    status: str  # "finished" or "failed"
    identity: dict[str, Any]  # what the cell's numbers depend on (checked on resume)
    method: dict[str, Any]  # label, source, resolved
    dataset: str
    scenario: str
    seed: int
    model: str
    recipe: dict[str, Any]
    device: str
    executor: str | None
    split: dict[str, Any]
    metrics: dict[str, float]
    extra: dict[str, Any]
    seconds: dict[str, float]
    steps: dict[str, int]
    versions: dict[str, str]
    error: dict[str, str]  # failed cells: code, message
    finished: float
    numerics: dict[str, Any]
    threads: int | None


class SweepSummary(TypedDict, total=False):
    """``summary.json`` of a sweep folder (:data:`SWEEP_FORMAT`)."""

    format: str
    tables: list[dict[str, Any]]  # per (dataset, scenario): methods, rows, best, curves, ...
    describe: dict[str, Any]  # the grid (as sweep.json)
    plots: list[str]


class TuningReport(TypedDict, total=False):
    """``tuning.json`` of a tuning folder (:data:`TUNING_FORMAT`)."""

    format: str
    method: str
    source: str
    task: dict[str, Any]
    criterion: str
    grid: Any
    budget: str
    base_preset: str | None
    margin: float | None
    oracle_std: dict[str, float]
    noise_floor: float | None
    candidates: list[dict[str, Any]]
    chosen: dict[str, Any] | None
    preset_line: str | None
    sweep: str


RECORD_FORMATS: dict[type, str] = {
    RunManifest: MANIFEST_FORMAT,
    SweepCell: CELL_FORMAT,
    SweepSummary: SWEEP_FORMAT,
    TuningReport: TUNING_FORMAT,
}
RecordT = TypeVar("RecordT", RunManifest, SweepCell, SweepSummary, TuningReport)


def read_record(path: str | Path, kind: type[RecordT]) -> RecordT:
    """Read a record file and check that it is one of ``kind``, written by a version that this
    one reads.

    Raises:
        RunError: ``corrupt-record`` (not JSON, not an object: it names the file and says to
            delete it so it is recomputed), ``wrong-record`` (a file of another kind), or
            ``record-version`` (the same kind, another format version: it names the version
            that wrote it and how to go on).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as err:
        raise RunError(
            "corrupt-record",
            f"{path} cannot be read as JSON ({shown(str(err))})",
            "delete the file to have it recomputed (a sweep cell or reference), or restore it",
        ) from None
    if not isinstance(data, dict):
        raise RunError(
            "corrupt-record",
            f"{path} holds a {type(data).__name__}, not a JSON object",
            "delete the file to have it recomputed, or restore it",
        )
    expected = RECORD_FORMATS[kind]
    found = str(data.get("format", ""))
    family = expected.rsplit("/", 1)[0]
    if found != expected:
        if found.rsplit("/", 1)[0] == family:
            written = (data.get("versions") or {}).get("causalunlearn", "an unknown version")
            raise RunError(
                "record-version",
                f"{path} is a {found} file (written by causalunlearn {written}); this version"
                f" reads {expected}",
                "rerun the command into a new --out folder with this version, or read the"
                " folder with the version that wrote it",
            )
        raise RunError(
            "wrong-record",
            f"{path} is not a {kind.__name__} file (format {found or 'missing'}, expected"
            f" {expected})",
            "point at the folder's own file (manifest.json, summary.json, tuning.json, a cell)",
        )
    return cast(RecordT, data)
