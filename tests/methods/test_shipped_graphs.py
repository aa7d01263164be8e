"""Shipped methods by name (``camu``, ``baselines/scrub``): in-process and from a wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from causalunlearn.errors import GraphError
from causalunlearn.graph import load_graph
from causalunlearn.graph.shipped import resolve_source, shipped_graphs
from causalunlearn.methods import MethodEntry, load_any

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "graphs"


def _files_under_graphs() -> dict[str, Path]:
    """The names the scheme promises, derived from the repository folder independently."""
    return {
        p.relative_to(GRAPHS).with_suffix("").as_posix(): p for p in sorted(GRAPHS.rglob("*.yaml"))
    }


# ------------------------------------------------------------------------------------------------
# in-process
def test_every_file_under_graphs_is_shipped_under_its_path_without_yaml():
    expected = _files_under_graphs()
    assert {"camu", "ablations/no-cut-forget-z", "baselines/scrub"} <= set(expected)
    shipped = shipped_graphs()
    assert set(shipped) == set(expected)
    for name, path in shipped.items():
        assert path.read_text() == expected[name].read_text(), name


@pytest.mark.parametrize("name", ["camu", "ablations/no-cut-forget-z", "baselines/scrub"])
def test_a_shipped_name_loads_what_its_file_path_loads(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no graphs/ here: only the name scheme can find the file
    by_name = load_any(name)
    by_path = load_any(GRAPHS / f"{name}.yaml")
    assert by_name == by_path and by_name.digest() == by_path.digest()


def test_the_shipped_method_entry_loads_by_name_with_a_preset():
    entry = load_any("baselines/ssd", preset="digits-class")
    assert isinstance(entry, MethodEntry) and entry.method == "ssd"
    file = load_any(GRAPHS / "baselines" / "ssd.yaml", preset="digits-class")
    assert entry.params == file.params


def test_a_preset_and_overrides_apply_to_a_shipped_name():
    base = load_graph(GRAPHS / "camu.yaml", preset="digits-class")
    lr = 3 * base.stage("output").lr
    graph = load_any("camu", preset="digits-class", overrides={"stages.output.lr": lr})
    assert graph.stage("output").lr == lr
    assert graph == load_graph(
        GRAPHS / "camu.yaml", preset="digits-class", overrides={"stages.output.lr": lr}
    )


def test_an_existing_path_wins_over_a_shipped_name(monkeypatch, tmp_path):
    text = (GRAPHS / "baselines" / "finetune.yaml").read_text()
    (tmp_path / "camu").write_text(text)  # a file literally named like a shipped method
    monkeypatch.chdir(tmp_path)
    assert resolve_source("camu") == Path("camu")
    assert load_any("camu").name == "finetune"
    assert load_any(str(GRAPHS / "camu.yaml")).name == "camu"  # a path as text still works


def test_yaml_text_is_not_taken_for_a_name():
    text = (GRAPHS / "camu.yaml").read_text()
    assert resolve_source(text) == text
    assert load_any(text).name == "camu"


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("camuu", "did you mean 'camu'?"),
        ("baselines/scrubb", "did you mean 'baselines/scrub'?"),
        ("scrub", "did you mean 'baselines/scrub'?"),
    ],
)
def test_an_unknown_name_is_a_coded_error_with_a_suggestion(name, hint, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GraphError) as info:
        load_any(name)
    assert info.value.codes == ["unknown-graph"]
    assert info.value.problems[0].where == name
    assert hint in info.value.problems[0].hint
    assert "causalunlearn graphs" in info.value.problems[0].hint


def test_a_missing_yaml_path_is_file_not_found_naming_the_shipped_graph(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # `graphs/camu.yaml` only exists in a checkout
    with pytest.raises(GraphError) as info:
        load_any("graphs/camu.yaml")
    assert info.value.codes == ["file-not-found"]
    assert "did you mean the shipped 'camu'?" in info.value.problems[0].hint


def test_the_cli_validates_shipped_names_from_any_folder(capsys, monkeypatch, tmp_path):
    from causalunlearn.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["validate", "camu", "ablations/no-cut-forget-z", "baselines/ssd"]) == 0
    out = capsys.readouterr().out
    assert "ok   camu: camu" in out and "ok   baselines/ssd: ssd (method entry" in out
    assert main(["validate", "camuu"]) == 1
    assert "[unknown-graph]" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# from a wheel, outside the checkout
def _copy_sources(dest: Path) -> None:
    """What a clean clone holds (tracked and new files, not ignored build outputs)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for rel in listed:
        source = ROOT / rel
        if rel.startswith(("tests/", "notebooks/", "docs/")):
            continue
        if source.is_symlink():  # causalunlearn/shipped_graphs -> ../graphs, as a clone has it
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).symlink_to(os.readlink(source))
        elif source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout, installed into a bare folder; its path."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know which files a clean clone holds")
    base = tmp_path_factory.mktemp("wheel")
    src, dist, site = base / "src", base / "dist", base / "site"
    src.mkdir()
    _copy_sources(src)  # building in the checkout would leave build/ and *.egg-info there
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = ["wheel", str(src), "-w", str(dist), "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, *build], check=True, cwd=base, capture_output=True)
    (wheel,) = dist.glob("causalunlearn-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        inside = set(zf.namelist())
    for name in _files_under_graphs():
        assert f"causalunlearn/shipped_graphs/{name}.yaml" in inside, name
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    return site


def _outside(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python with only the installed wheel importable as causalunlearn, in an empty folder.

    The checkout's editable finder is still on ``sys.meta_path``, but ``PYTHONPATH`` comes
    first on the path, and the working folder holds no ``causalunlearn/``.
    """
    work = site.parent / "work"
    work.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CAUSALUNLEARN_GRAPHS")}
    env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_installed_wheel_loads_every_shipped_name_outside_the_checkout(installed_wheel):
    names = sorted(_files_under_graphs())
    code = (
        "import sys, causalunlearn\n"
        "from causalunlearn import load_any, shipped_graphs\n"
        "print(causalunlearn.__file__)\n"
        "print(*sorted(shipped_graphs()), sep=',')\n"
        "print(*sorted(str(p) for p in shipped_graphs().values()), sep=',')\n"
        "for name in sys.argv[1:]:\n"
        "    load_any(name)\n"
    )
    done = _outside(installed_wheel, "-c", code, *names)
    assert done.returncode == 0, done.stderr
    imported, listed, paths = done.stdout.splitlines()
    assert Path(imported).is_relative_to(installed_wheel)
    assert listed.split(",") == names
    assert all(Path(p).is_relative_to(installed_wheel) for p in paths.split(","))


def test_the_installed_cli_lists_and_validates_shipped_names(installed_wheel):
    listing = _outside(installed_wheel, "-m", "causalunlearn.cli", "graphs")
    assert listing.returncode == 0, listing.stderr
    assert (
        f"shipped graphs in {installed_wheel / 'causalunlearn' / 'shipped_graphs'}"
        in listing.stdout
    )
    assert "ablations/no-cut-forget-z.yaml" in listing.stdout and "invalid" not in listing.stdout
    names = ["camu", "ablations/no-cut-forget-z", "baselines/scrub", "baselines/ssd"]
    checked = _outside(installed_wheel, "-m", "causalunlearn.cli", "validate", *names)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "4 of 4 file(s) valid" in checked.stdout
