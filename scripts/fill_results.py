"""Copy the results sweeps' tables and plots into docs/results.md and docs/img/results/.

Run after the four sweeps of docs/results.md have finished (their folders are under the
repository's ``runs/``, where the commands of docs/results.md write them):

    python scripts/fill_results.py

Each sweep's ``summary.md`` (legend paragraph dropped, headings shortened) replaces what stands
between ``<!-- sweep:KEY -->`` and ``<!-- /sweep:KEY -->`` in docs/results.md; its ``plots/*.png``
are copied to docs/img/results/. A sweep folder without a summary is left out.
"""

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository (this file is scripts/...)
DOC = ROOT / "docs" / "results.md"
IMAGES = ROOT / "docs" / "img" / "results"
SWEEPS = {
    "mnist-class": ROOT / "runs" / "grid",
    "fashion-class": ROOT / "runs" / "grid-fashion",
    "mnist-random": ROOT / "runs" / "grid-mnist-random",
    "fashion-random": ROOT / "runs" / "grid-fashion-random",
}


def main() -> None:
    text = DOC.read_text()
    for key, folder in SWEEPS.items():
        summary = folder / "summary.md"
        if not summary.is_file():
            continue
        body = summary.read_text().split("\n\n", 1)[1].strip()  # drop the legend paragraph
        body = re.sub(r"^### .*?: ", "#### ", body, flags=re.M)
        start, end = f"<!-- sweep:{key} -->", f"<!-- /sweep:{key} -->"
        if start in text:
            a, b = text.index(start) + len(start), text.index(end)
            text = text[:a] + "\n" + body + "\n" + text[b:]
        for png in (folder / "plots").glob("*.png"):
            shutil.copy(png, IMAGES / png.name)
    DOC.write_text(text)


if __name__ == "__main__":
    main()
