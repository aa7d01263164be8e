"""Every case of the bad-input corpus (``cases.py``) through ``main(argv)``: a coded error."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from causalunlearn.cli import main

from .cases import CASES, ROOT, Case

#: No message of a refused input is longer than this (an alias bomb once printed 1 GB).
MAX_OUTPUT = 20_000


def _immutable_folder(path: Path) -> bool:
    """Make ``path`` an immutable folder (root ignores chmod); False where chattr cannot."""
    path.mkdir()
    try:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    except OSError:
        return False
    if done:
        try:
            (path / "probe").write_text("x")
        except OSError:
            return True
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    return False


def _prepare(case: Case, tmp: Path, request: pytest.FixtureRequest) -> list[str]:
    for name, content in case.files.items():
        file = tmp / name
        file.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, int):
            with open(file, "wb") as handle:
                handle.truncate(content)
        else:
            file.write_bytes(content)
    if case.needs == "chattr":
        frozen = tmp / "frozen"
        if not _immutable_folder(frozen):
            pytest.skip("chattr +i does not work here (not root, or the file system lacks it)")
        request.addfinalizer(lambda: subprocess.run(["chattr", "-i", str(frozen)]))
    camu = str(ROOT / "graphs" / "camu.yaml")
    return [a.replace("{tmp}", str(tmp)).replace("{camu}", camu) for a in case.argv]


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.name, marks=[pytest.mark.xfail(reason=c.xfail, strict=True)])
        if c.xfail
        else pytest.param(c, id=c.name)
        for c in CASES
    ],
)
def test_bad_input_ends_in_its_code(case, tmp_path, capsys, monkeypatch, request):
    monkeypatch.chdir(tmp_path)  # nothing a case writes lands outside its folder
    monkeypatch.delenv("CAUSALUNLEARN_DEBUG", raising=False)
    argv = _prepare(case, tmp_path, request)
    status = main(argv)
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output
    assert "internal-error" not in output, output
    assert f"[{case.code}]" in output, output
    for text in case.also:
        assert text in output, output
    assert len(output) < MAX_OUTPUT
    assert status == case.status, output


def test_corpus_is_a_list_of_distinct_cases():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    assert all(c.code and c.status in (1, 2) for c in CASES)
    assert os.path.basename(__file__) == "test_corpus.py"
