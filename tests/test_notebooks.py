"""The tutorial material runs: the notebooks top to bottom, and the Python API page's examples.

Each notebook is executed headlessly with nbclient in a fresh ``python3`` kernel (ipykernel, run
by this interpreter), in ``notebooks/`` as Jupyter would (so ``../graphs`` resolves), with
``CAUSALUNLEARN_NOTEBOOK_SMALL=1``: one seed and short training, a few seconds of work each. A
cell that raises fails the test with the cell and its traceback. The MNIST notebook is a slow
test and needs ``CAUSALUNLEARN_DATA_ROOT``. The saved notebooks must carry no outputs.

Without the Graphviz ``dot`` program everything still runs: the notebooks' diagram cells fall
back to text (they catch ``dot-not-found``; only the check for an SVG output is dropped) and the
docs examples leave out their lines marked ``# needs dot``. ``.ci/run`` runs these tests once
more with ``dot`` hidden from ``PATH``, so both paths stay tested.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
DIGITS = ("01-quickstart", "02-ablations", "03-your-own-method", "05-baselines-and-sweeps")
MNIST = "04-real-data-mnist"
CELL_TIMEOUT_S = 600


def execute(stem: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> nbformat.NotebookNode:
    """Run notebook ``stem`` with the small settings; return it with its outputs."""
    monkeypatch.setenv("CAUSALUNLEARN_NOTEBOOK_SMALL", "1")
    monkeypatch.delenv("CAUSALUNLEARN_NOTEBOOK_FULL", raising=False)
    monkeypatch.setenv("CAUSALUNLEARN_CACHE", str(tmp_path / "cache"))  # not the user's cache
    # The models are tiny: one thread each is faster than several fighting over a busy CPU.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # Pin "python3" to this interpreter: a user-level kernelspec of that name would win otherwise.
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> tuple[str, set[str]]:
    """All text the notebook printed or displayed, and the MIME types of its rich outputs."""
    texts, kinds = [], set()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                texts.append(out.text)
            for mime, value in out.get("data", {}).items():
                kinds.add(mime)
                if mime.startswith("text/"):
                    texts.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(texts), kinds


#: Text each notebook must show when it ran to the end (its result tables).
EXPECTED = {
    "01-quickstart": [
        "Python graph == graphs/camu.yaml",
        "| Forget acc (train) |",
        "forget paths cut: NO",
    ],
    "02-ablations": ["| metric | original | camu | camu-no-counterfactual |", "retrain oracle"],
    "03-your-own-method": [
        "| metric | original | camu | distill-uniform | distill-random-teacher |"
    ],
    MNIST: ["| Forget acc (train) |", "forget accuracy"],
    "05-baselines-and-sweeps": [
        "| retrain oracle |",
        "| random-label |",
        "second run: 0 runs",
        "probe accuracy",
        "paired comparison with camu",
        "than head-zero",
    ],
}


def check_ran(stem: str, nb: nbformat.NotebookNode) -> None:
    text, kinds = outputs(nb)
    for snippet in EXPECTED[stem]:
        assert snippet in text, f"{stem}: expected {snippet!r} in the outputs"
    assert "image/png" in kinds, f"{stem}: no plot was drawn"
    if shutil.which("dot") and stem != MNIST:
        assert "image/svg+xml" in kinds, f"{stem}: no diagram was drawn"
    assert "CausalUnlearnWarning" not in text


@pytest.mark.parametrize("stem", DIGITS)
def test_digits_notebook_runs(stem, monkeypatch, tmp_path):
    check_ran(stem, execute(stem, monkeypatch, tmp_path))


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("CAUSALUNLEARN_DATA_ROOT"),
    reason="set CAUSALUNLEARN_DATA_ROOT to the real datasets (e.g. ../shared/data)",
)
def test_mnist_notebook_runs(monkeypatch, tmp_path):
    check_ran(MNIST, execute(MNIST, monkeypatch, tmp_path))


def test_every_notebook_is_tested():
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == {*DIGITS, MNIST}


@pytest.mark.parametrize("stem", [*DIGITS, MNIST])
def test_saved_notebook_has_no_outputs(stem):
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count is not None)
    ]
    assert not dirty, f"{stem}: cells {dirty} carry outputs; run notebooks/build_notebooks.py"
    assert not [c for c in nb.cells if c.get("attachments")]


#: The comment that marks a line of a docs example needing the Graphviz ``dot`` program.
NEEDS_DOT = "# needs dot"


def without_dot_lines(code: str) -> tuple[str, int]:
    """``code`` with each ``# needs dot`` line replaced by ``pass`` (same indentation and line
    numbers, so tracebacks still point at the docs' lines), and how many lines were replaced."""
    lines = code.split("\n")
    marked = [i for i, line in enumerate(lines) if NEEDS_DOT in line]
    for i in marked:
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        lines[i] = f"{indent}pass  # skipped: needs the Graphviz `dot` program"
    return "\n".join(lines), len(marked)


def test_without_dot_lines_keeps_everything_else():
    code = 'x = 1\nif x:\n    render(g, "a.svg")  # needs dot\nprint(x)  # a comment'
    kept, dropped = without_dot_lines(code)
    assert dropped == 1
    assert kept.split("\n") == [
        "x = 1",
        "if x:",
        "    pass  # skipped: needs the Graphviz `dot` program",
        "print(x)  # a comment",
    ]
    assert without_dot_lines("print(1)") == ("print(1)", 0)


def test_python_api_page_examples_run(tmp_path):
    """Every ``python`` block of docs/python-api.md, in order, in one fresh interpreter.

    Without Graphviz the lines marked ``# needs dot`` (rendering to .svg / .png) are left out,
    everything else runs and is checked, then the test is reported as skipped, naming why.
    """
    text = (ROOT / "docs" / "python-api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 8
    code = "\n\n".join(blocks)
    assert NEEDS_DOT in code  # the render lines are marked
    dropped = 0
    if shutil.which("dot") is None:
        code, dropped = without_dot_lines(code)
    script = tmp_path / "python_api.py"
    script.write_text(code)
    env = {**os.environ, "CAUSALUNLEARN_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| Forget acc (train) |" in done.stdout
    if dropped:
        pytest.skip(
            f"the examples ran without their {dropped} `# needs dot` line(s) (render to .svg /"
            " .png): the Graphviz `dot` program is missing"
        )
