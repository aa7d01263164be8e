"""Copy the results sweeps' tables and plots into docs/results.md and docs/img/results/.

Run from the repository root after the four sweeps of docs/results.md have finished:

    python docs/sweeps-results/fill_results.py

Each sweep's ``summary.md`` (legend paragraph dropped, headings shortened) replaces what stands
between ``<!-- sweep:KEY -->`` and ``<!-- /sweep:KEY -->`` in docs/results.md; its ``plots/*.png``
are copied to docs/img/results/. A sweep folder without a summary is left out.
"""

import re
import shutil
from pathlib import Path

DOC = Path("docs/results.md")
SWEEPS = {
    "mnist-class": "runs/grid",
    "fashion-class": "runs/grid-fashion",
    "mnist-random": "runs/grid-mnist-random",
    "fashion-random": "runs/grid-fashion-random",
}


def main() -> None:
    text = DOC.read_text()
    for key, folder in SWEEPS.items():
        summary = Path(folder) / "summary.md"
        if not summary.is_file():
            continue
        body = summary.read_text().split("\n\n", 1)[1].strip()  # drop the legend paragraph
        body = re.sub(r"^### .*?: ", "#### ", body, flags=re.M)
        start, end = f"<!-- sweep:{key} -->", f"<!-- /sweep:{key} -->"
        if start in text:
            a, b = text.index(start) + len(start), text.index(end)
            text = text[:a] + "\n" + body + "\n" + text[b:]
        for png in (Path(folder) / "plots").glob("*.png"):
            shutil.copy(png, Path("docs/img/results") / png.name)
    DOC.write_text(text)


if __name__ == "__main__":
    main()
