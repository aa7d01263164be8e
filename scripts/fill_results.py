"""Copy the results sweeps' tables and plots into docs/results.md and docs/img/results/.

Run after the sweeps of docs/results.md have finished (their folders are under the
repository's ``runs/``, where the commands of docs/results.md write them):

    python scripts/fill_results.py

Each sweep's ``summary.md`` (legend paragraph dropped, headings shortened) replaces what stands
between ``<!-- KEY -->`` and ``<!-- /KEY -->`` in docs/results.md. The four grids' ``plots/*.png``
are copied to docs/img/results/ as they are; the evaluation studies' (``eval:*``, ``lira:*``)
with the prefix ``eval-`` and only the figures the grids do not have (confusion matrices), so
they never replace a grid's bars. A sweep folder without a summary is left out.
"""

import re
import shutil
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
}
#: The figures an evaluation study adds to the page (the grids have the bars).
STUDY_FIGURES = ("confusion-*.png",)


def main() -> None:
    text = DOC.read_text()
    for key, folder in SWEEPS.items():
        summary = folder / "summary.md"
        if not summary.is_file():
            continue
        body = summary.read_text().split("\n\n", 1)[1].strip()  # drop the legend paragraph
        body = re.sub(r"^### .*?: ", "#### ", body, flags=re.M)
        start, end = f"<!-- {key} -->", f"<!-- /{key} -->"
        if start in text:
            a, b = text.index(start) + len(start), text.index(end)
            text = text[:a] + "\n" + body + "\n" + text[b:]
        if key.startswith("sweep:"):
            for png in (folder / "plots").glob("*.png"):
                shutil.copy(png, IMAGES / png.name)
        elif key.startswith("eval:"):  # the U-LiRA studies' figures are not on the page
            for pattern in STUDY_FIGURES:
                for png in (folder / "plots").glob(pattern):
                    shutil.copy(png, IMAGES / f"eval-{png.name}")
    DOC.write_text(text)


if __name__ == "__main__":
    main()
