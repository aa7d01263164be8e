"""Copy the results sweeps' tables and plots into docs/results.md and docs/img/results/.

Run after the sweeps of docs/results.md have finished (their folders are under the
repository's ``runs/``, where the commands of docs/results.md write them):

    python scripts/fill_results.py

Each sweep's ``summary.md`` (legend paragraph dropped, headings shortened) replaces what stands
between ``<!-- KEY -->`` and ``<!-- /KEY -->`` in docs/results.md. The four grids' ``plots/*.png``
are copied to docs/img/results/ as they are; the evaluation studies' (``eval:*``, ``lira:*``)
with the prefix ``eval-`` and only the figures the grids do not have (confusion matrices), so
they never replace a grid's bars; the CIFAR-10 sweeps' (``cifar:*``) ablation and confusion
figures, prefixed with their folder's name. A sweep folder without a summary is left out.

The U-LiRA studies' reference rows are scored on each cell's own shadows (which unlearned with
the cell's method), so their summaries leave them empty; ``<!-- lira-refs:NAME -->`` gets the
table of every method's cells instead (:func:`lira_reference_table`, from ``extra.lira``).
"""

import json
import re
import shutil
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository (this file is scripts/...)
DOC = ROOT / "docs" / "results.md"
IMAGES = ROOT / "docs" / "img" / "results"
SWEEPS = {
    "sweep:mnist-class": ROOT / "runs" / "grid",
    "sweep:fashion-class": ROOT / "runs" / "grid-fashion",
    "sweep:mnist-random": ROOT / "runs" / "grid-mnist-random",
    "sweep:fashion-random": ROOT / "runs" / "grid-fashion-random",
    "eval:mnist-class": ROOT / "runs" / "eval-mnist-class",
    "eval:fashion-class": ROOT / "runs" / "eval-fashion-class",
    "lira:digits": ROOT / "runs" / "eval-digits-lira",
    "lira:mnist": ROOT / "runs" / "eval-mnist-lira",
    "cifar:ablate": ROOT / "runs" / "cifar-ablate",
    "cifar:baselines": ROOT / "runs" / "cifar-baselines",
}
#: The U-LiRA studies whose per-cell reference scores get a table of their own.
LIRA_REFERENCES = {
    "lira-refs:digits": SWEEPS["lira:digits"],
    "lira-refs:mnist": SWEEPS["lira:mnist"],
}
#: The figures an evaluation study adds to the page (the grids have the bars).
STUDY_FIGURES = ("confusion-*.png",)
#: The CIFAR-10 sweeps' figures on the page (the ablation figure exists for ``ablate`` only).
CIFAR_FIGURES = ("ablation-*.png", "confusion-*.png")


def _mean_sd(values: list[float]) -> str:
    """``mean ± sample sd`` to three places (the mean alone for one value)."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def lira_reference_table(folder: Path) -> str | None:
    """Markdown: per method of the sweep in ``folder``, the U-LiRA AUC of the original, the
    unlearned model and the retrain oracle on the cell's shadows (mean ± sd over seeds), and
    how far the method is above the oracle in null sds of one seed's AUC; ``None`` when no
    cell has the attack."""
    sweep = json.loads((folder / "sweep.json").read_text())
    rows = []
    for method in sweep["methods"]:
        cells = [
            json.loads(f.read_text())
            for f in (folder / "runs" / method["label"]).glob("*/*/seed*.json")
        ]
        liras = [
            c["extra"]["lira"]
            for c in cells
            if c.get("status") != "failed" and "lira" in c.get("extra", {})
        ]
        if not liras:
            continue
        auc = {k: [lira[k]["auc"] for lira in liras] for k in ("original", "unlearned", "oracle")}
        gap = [
            (lira["unlearned"]["auc"] - lira["oracle"]["auc"]) / lira["unlearned"]["null_auc_sd"]
            for lira in liras
        ]
        rows.append(
            f"| {method['label']} | {_mean_sd(auc['original'])} | {_mean_sd(auc['unlearned'])} "
            f"| {_mean_sd(auc['oracle'])} | {statistics.mean(gap):+.1f} | {len(liras)} |"
        )
    if not rows:
        return None
    head = (
        "| method | U-LiRA AUC: original | method | retrain oracle "
        "| method − oracle, null sds | seeds |\n|---|---|---|---|---|---|"
    )
    return "\n".join([head, *rows])


def _replace(text: str, key: str, body: str) -> str:
    start, end = f"<!-- {key} -->", f"<!-- /{key} -->"
    if start not in text:
        return text
    a, b = text.index(start) + len(start), text.index(end)
    return text[:a] + "\n" + body + "\n" + text[b:]


def main() -> None:
    text = DOC.read_text()
    for key, folder in LIRA_REFERENCES.items():
        table = lira_reference_table(folder) if (folder / "sweep.json").is_file() else None
        if table is not None:
            text = _replace(text, key, table)
    for key, folder in SWEEPS.items():
        summary = folder / "summary.md"
        if not summary.is_file():
            continue
        body = summary.read_text().split("\n\n", 1)[1].strip()  # drop the legend paragraph
        body = re.sub(r"^### .*?: ", "#### ", body, flags=re.M)
        text = _replace(text, key, body)
        if key.startswith("sweep:"):
            for png in (folder / "plots").glob("*.png"):
                shutil.copy(png, IMAGES / png.name)
        elif key.startswith("cifar:"):  # the figures on the page, named after their folder
            for pattern in CIFAR_FIGURES:
                for png in (folder / "plots").glob(pattern):
                    shutil.copy(png, IMAGES / f"{folder.name}-{png.name}")
        elif key.startswith("eval:"):  # the U-LiRA studies' figures are not on the page
            for pattern in STUDY_FIGURES:
                for png in (folder / "plots").glob(pattern):
                    shutil.copy(png, IMAGES / f"eval-{png.name}")
    DOC.write_text(text)


if __name__ == "__main__":
    main()
