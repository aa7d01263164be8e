"""``causalunlearn rescore``: recompute a finished run's or sweep's metrics from its saved
per-example outputs (:mod:`causalunlearn.studies.outputs`), without training anything.

What is recomputed (:data:`FROM_OUTPUTS`): every metric of
:func:`~causalunlearn.metrics.evaluate.scores_from_logits` (the accuracies and the four
membership attacks), the activation distance to the oracle, the average gap and ToW, and, when
the outputs hold what they need, ``oracle_margin_z`` (the oracles' forget outputs,
``--oracles K``), ``lira_auc`` / ``lira_tpr_1fpr`` (the shadows' statistics, ``--lira-shadows``)
and a run's ``oracle_klom``; and every model's per-class report (``per_class``: confusion
matrices and per-class accuracy, :mod:`causalunlearn.metrics.per_class`). What is **kept as it
was** (:data:`NOT_FROM_OUTPUTS`): the relearn time and the relearning curves (they fine-tune the
model), the representation probe (``probe_acc``: it reads the model's features, not its
outputs), the wall times, and anything else a newer version added that this one does not
compute.

Everything is computed first and written only at the end, each file atomically, manifest and
cells before the tables made from them: a rescore that fails leaves every old number in place.
A changed value is recorded under ``rescored.changed`` (old and new) in the manifest, or in the
cell.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from causalunlearn.atomic import atomic_write, write_json
from causalunlearn.errors import RunError
from causalunlearn.locks import exclusive
from causalunlearn.metrics.catalogue import AVERAGE_GAP, keys
from causalunlearn.metrics.evaluate import scores_from_logits
from causalunlearn.metrics.gaps import activation_distance, average_gap, tow
from causalunlearn.studies.outdir import FolderState, folder_state
from causalunlearn.studies.outputs import Outputs, beside, load_outputs, missing_outputs
from causalunlearn.studies.records import MANIFEST_FORMAT, RunManifest, read_record, versions

#: Metrics a rescore recomputes from outputs (when the outputs hold what each needs).
FROM_OUTPUTS = (
    "retain_acc",
    "forget_acc",
    "test_acc",
    "test_retained_classes_acc",
    "test_forgotten_classes_acc",
    "mia_acc",
    "mia_forget_member_rate",
    "mia_efficacy_svc",
    "mia_entropy_member_rate",
    "mia_loss_cv_acc",
    "activation_distance",
    "average_gap",
    "tow",
    "oracle_margin_z",
    "oracle_klom",
    "lira_auc",
    "lira_tpr_1fpr",
)
#: Metrics that need the model itself (fine-tuning) or were measured while it ran: kept.
NOT_FROM_OUTPUTS = ("relearn_steps", "unlearn_seconds", "relearning_curve", "probe_acc")


@dataclass
class RescoreReport:
    """What a rescore did.

    Attributes:
        path: The folder.
        kind: ``run`` or ``sweep``.
        models: Models rescored (roles × seeds, or cells and references).
        changed: ``(where, role, metric, old, new)`` of every value that changed.
        kept: Metrics found but not recomputable from outputs (kept as they were).
    """

    path: Path
    kind: str
    models: int = 0
    changed: list[tuple[str, str, str, Any, Any]] = field(default_factory=list)
    kept: set[str] = field(default_factory=set)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def model_scores(
    outs: Outputs,
    role: str,
    *,
    seed: int,
    attacker: str,
    oracle: Outputs | None = None,
) -> dict[str, float]:
    """Every metric of ``role`` that the outputs give (see the module docstring); ``oracle``
    holds the oracle's outputs when they are in another file (a sweep's reference)."""
    from causalunlearn.studies.oracles import oracle_z
    from causalunlearn.studies.shadows import ShadowStats, lira_metrics

    data, split = outs.labels_data(), outs.split
    train = torch.as_tensor(outs.logits[role]["train"])
    test = torch.as_tensor(outs.logits[role]["test"])
    scores = scores_from_logits(
        train, test, data, split, seed=seed, attacker=attacker, extended=True
    )
    forget = torch.as_tensor(split.forget.copy())
    source = oracle if oracle is not None else outs
    if role == "unlearned" and "oracle" in source.logits:
        reference = torch.as_tensor(source.logits["oracle"]["train"])[forget]
        scores["activation_distance"] = activation_distance(train[forget], reference)
    if "oracles.forget" in source.arrays:
        refs = source.arrays["oracles.forget"]
        scores.update(oracle_z(train[forget], refs, data.train_y[forget], seed=seed)[0])
    shadows = ShadowStats.from_arrays(outs.arrays)
    if shadows is not None:
        scores.update(lira_metrics(shadows, train, test, data.train_y, data.test_y)[0])
    return scores


def _per_class(outs: Outputs, role: str) -> dict[str, Any]:
    """The per-class report of ``role`` from its saved outputs
    (:func:`~causalunlearn.metrics.per_class.per_class_report`)."""
    from causalunlearn.metrics.per_class import per_class_report

    logits = outs.logits[role]
    return per_class_report(
        logits["train"],
        outs.train_y,
        outs.split.forget,
        outs.split.retain,
        logits["test"],
        outs.test_y,
        int(logits["train"].shape[1]),
    )


def _merge(
    old: dict[str, Any], new: dict[str, float], where: str, role: str, report: RescoreReport
) -> dict[str, Any]:
    merged = dict(old)
    for key, value in new.items():
        previous = old.get(key)
        previous = float("nan") if previous is None else previous
        if not _same(previous, value):
            report.changed.append((where, role, key, _plain(previous), _plain(value)))
        merged[key] = value
    report.kept |= {k for k in old if k not in new}
    report.models += 1
    return merged


def _gaps(unlearned: dict[str, Any], oracle: dict[str, Any] | None) -> dict[str, float]:
    if not oracle:
        return {}
    return {
        "average_gap": average_gap(unlearned, oracle, keys(AVERAGE_GAP)),
        "tow": tow(unlearned, oracle),
    }


def _attacker(settings_key: dict[str, Any] | None) -> str:
    return str((settings_key or {}).get("attacker", "gbdt"))


def _stamp(report: RescoreReport, where: str) -> dict[str, Any]:
    return {
        "at": time.time(),
        "versions": versions(),
        "changed": [
            {"role": role, "metric": key, "old": old, "new": new}
            for w, role, key, old, new in report.changed
            if w == where
        ],
    }


def rescore_run(folder: Path, report: RescoreReport) -> None:
    """Rescore a run folder (``manifest.json``, ``outputs-seed<S>.npz``)."""
    from causalunlearn.studies.experiment import markdown_table, per_class_summary, summarise
    from causalunlearn.studies.oracles import group_klom

    manifest = read_record(folder / "manifest.json", RunManifest)
    attacker = _attacker(manifest.get("settings"))
    klom_parts = []
    for entry in manifest["per_seed"]:
        seed = int(entry["seed"])
        record = entry.get("outputs")
        if not record:
            raise missing_outputs(
                f"run folder {folder} (seed {seed})",
                "rerun it into a new folder with this version (causalunlearn run ... --out NEW),"
                " or in place with --overwrite",
            )
        outs = load_outputs(folder / record["file"], split_digest=entry["split"]["digest"])
        metrics = entry["metrics"]
        new: dict[str, dict[str, float]] = {}
        for role in ("original", "oracle", "unlearned"):
            if role in metrics and role in outs.logits:
                new[role] = model_scores(outs, role, seed=seed, attacker=attacker)
        if "unlearned" in new:
            new["unlearned"].update(_gaps(new["unlearned"], new.get("oracle")))
        for role, scores in new.items():
            metrics[role] = _merge(metrics[role], scores, f"seed {seed}", role, report)
        entry["per_class"] = {role: _per_class(outs, role) for role in new}
        klom_parts.append((outs, outs, seed))  # the seed's archive holds its oracles too
    klom = group_klom(klom_parts, seed=int(manifest["seeds"][0]))
    if klom is not None:
        klom["seeds"] = list(manifest["seeds"])
        old = (manifest.get("oracle_distribution") or {}).get("value")
        if not _same(float("nan") if old is None else old, klom["value"]):
            report.changed.append(("run", "unlearned", "oracle_klom", old, klom["value"]))
        manifest["oracle_distribution"] = klom
    manifest["summary"] = summarise(manifest["per_seed"], klom)
    manifest["per_class"] = per_class_summary(manifest["per_seed"])
    manifest["rescored"] = {
        "at": time.time(),
        "versions": versions(),
        "changed": [
            {"where": w, "role": role, "metric": key, "old": old, "new": new}
            for w, role, key, old, new in report.changed
        ],
    }
    write_json(folder / "manifest.json", manifest)
    atomic_write(folder / "results.md", markdown_table(manifest))


def _cell_files(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "runs").rglob("*.json") if not p.name.startswith("."))


def rescore_sweep(folder: Path, report: RescoreReport) -> None:
    """Rescore a sweep folder: every reference and finished cell, then its summary."""
    from causalunlearn.studies.seeds import CellSeeds
    from causalunlearn.studies.sweep import read_cell

    describe = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
    attacker = _attacker(describe.get("settings"))
    references: dict[Path, tuple[dict[str, Any], Outputs]] = {}
    cells: list[tuple[Path, dict[str, Any]]] = []
    for path in _cell_files(folder):
        cell = read_cell(path)
        if cell.get("status") != "finished":
            continue  # a failed cell has no numbers to recompute
        if not cell.get("outputs"):
            raise missing_outputs(
                f"sweep cell {path}",
                "recompute that cell with this version: delete it (and its .outputs.npz) and run"
                " the sweep again (the other cells are kept), or run it again with --overwrite",
            )
        seeds = CellSeeds.of_record(cell)
        ref_path = (
            folder
            / "references"
            / path.relative_to(folder / "runs").parts[1]
            / path.parent.name
            / f"{seeds.reference_stem}.json"
        )
        if ref_path not in references:
            ref = read_cell(ref_path)
            if not ref.get("outputs"):
                raise missing_outputs(
                    f"sweep reference {ref_path}",
                    "delete it and run the sweep again to recompute it (the cells are kept)",
                )
            ref_outs = load_outputs(
                beside(ref_path), split_digest=ref.get("identity", {}).get("split")
            )
            new = {
                role: model_scores(ref_outs, role, seed=seeds.train, attacker=attacker)
                for role in ("original", "oracle")
                if role in ref["metrics"] and role in ref_outs.logits
            }
            for role, scores in new.items():
                ref["metrics"][role] = _merge(
                    ref["metrics"][role], scores, str(ref_path), role, report
                )
                extra = ref.setdefault("extra", {}).setdefault(role, {})
                extra["per_class"] = _per_class(ref_outs, role)
            references[ref_path] = (ref, ref_outs)
        ref, ref_outs = references[ref_path]
        outs = load_outputs(beside(path), split_digest=cell["split"]["digest"])
        scores = model_scores(
            outs, "unlearned", seed=int(cell["seed"]), attacker=attacker, oracle=ref_outs
        )
        scores.update(_gaps(scores, ref["metrics"].get("oracle")))
        cell["metrics"] = _merge(cell["metrics"], scores, str(path), "unlearned", report)
        cell.setdefault("extra", {})["per_class"] = _per_class(outs, "unlearned")
        cells.append((path, cell))
    # Everything computed: now write (cells and references first, the summary from them last).
    for path, cell in cells:
        cell["rescored"] = _stamp(report, str(path))
        write_json(path, cell)
    for path, (ref, _) in references.items():
        ref["rescored"] = _stamp(report, str(path))
        write_json(path, ref)
    _write_summary(folder, describe, report)


def _group_values(summary: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    """``(dataset, scenario, method) → oracle_klom`` of a summary (the one per-group metric)."""
    return {
        (table["dataset"], table["scenario"], label): (row.get("oracle_klom") or {}).get("mean")
        for table in summary.get("tables", ())
        for label, row in table.get("rows", {}).items()
        if label not in ("original", "oracle", "random_init")
    }


def _write_summary(
    folder: Path, describe: dict[str, Any], report: RescoreReport | None = None
) -> None:
    """``summary.json`` / ``summary.md`` from the rescored cells (the plots are left as they
    were: redraw them with ``compare ... --summary-only``). A method's ``oracle_klom`` (one
    value per table, from the cells' and references' outputs: ``Sweep._table``) is computed
    again here; a changed value is added to ``report``."""
    from causalunlearn.studies.comparison import comparison_markdown
    from causalunlearn.studies.entries import Entry
    from causalunlearn.studies.settings import StudySettings
    from causalunlearn.studies.summary import summary_markdown
    from causalunlearn.studies.sweep import Sweep

    seeds = {
        k: describe[k]
        for k in ("seeds", "train_seeds", "split_seeds", "unlearn_seeds")
        if describe.get(k) is not None
    }
    entries = [  # labels are all a summary reads; the methods are not resolved again
        Entry(m["label"], None, m.get("preset"), m.get("remove"), m.get("source", ""))  # type: ignore[arg-type]
        for m in describe["methods"]
    ]
    sweep = Sweep(
        entries,
        describe["datasets"],
        describe["scenarios"],
        # the oracles per split decide whether a table's oracle_klom can apply
        StudySettings(
            **seeds,
            oracles=int((describe.get("settings") or {}).get("oracles", 1)),
            progress=False,
        ),
        folder,
        plots=False,
    )
    old_path = folder / "summary.json"
    old = json.loads(old_path.read_text(encoding="utf-8")) if old_path.is_file() else {}
    summary = {
        "format": describe.get("format"),
        "tables": [sweep._table(d, sc) for d in sweep.datasets for sc in sweep.scenarios],
        "describe": describe,
    }
    if report is not None:
        before, after = _group_values(old), _group_values(summary)
        for (dataset, scenario, label), value in after.items():
            previous = before.get((dataset, scenario, label))
            if value is not None and not _same(
                float("nan") if previous is None else previous, value
            ):
                where = f"summary {dataset} {scenario}"
                report.changed.append((where, label, "oracle_klom", previous, value))
    if old.get("plots"):
        summary["plots"] = old["plots"]
    write_json(old_path, summary)
    atomic_write(
        folder / "summary.md", summary_markdown(summary) + "\n" + comparison_markdown(summary)
    )


def rescore(path: str | Path) -> RescoreReport:
    """Recompute the metrics of the run or sweep folder ``path`` from its outputs.

    Raises:
        RunError: ``not-a-result-folder`` (not a finished run or a sweep of causalunlearn),
            ``outputs-missing`` (a run or cell written before outputs were saved: rerun it),
            ``outputs-split-mismatch``, ``corrupt-outputs``, ``busy`` (another process writes
            the folder), and the errors of reading its records.
    """
    folder = Path(path)
    state = folder_state(folder)
    if state not in (FolderState.RUN, FolderState.SWEEP):
        raise RunError(
            "not-a-result-folder",
            f"{folder} is not a finished run or a sweep folder of causalunlearn (it is"
            f" {'absent' if state is FolderState.ABSENT else 'a ' + state.value})",
            "pass a folder written by causalunlearn run (manifest.json) or compare / ablate"
            " (sweep.json)",
        )
    kind = "run" if state is FolderState.RUN else "sweep"
    report = RescoreReport(folder, kind)
    with exclusive(folder, wait=False, what=f"{kind} folder"):
        if kind == "run":
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            if manifest.get("format") != MANIFEST_FORMAT:
                read_record(folder / "manifest.json", RunManifest)  # raises record-version
            rescore_run(folder, report)
        else:
            rescore_sweep(folder, report)
    return report
