"""The command line, through ``main(argv)``: exit codes, what is printed, clean errors."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import graphviz
import pytest

from causalunlearn.cli import app as cli
from causalunlearn.cli import build_parser, main, register_command
from causalunlearn.cli.graph_cmds import GRAPHS_ENV
from causalunlearn.errors import CausalUnlearnError

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "graphs"
CAMU = str(GRAPHS / "camu.yaml")
NO_CUT_Z = str(GRAPHS / "ablations" / "no-cut-forget-z.yaml")
INVALID = Path(__file__).resolve().parents[1] / "invalid_graphs"


def _expected_codes(path: Path) -> list[str]:
    """The codes an invalid graph file declares in its ``# expect:`` header line."""
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect:")
    return [c.strip() for c in first.removeprefix("# expect:").split(",")]


# ------------------------------------------------------------------------------------------------
# validate
def test_validate_valid_files(capsys):
    assert main(["validate", CAMU, NO_CUT_Z]) == 0
    out = capsys.readouterr().out
    assert f"ok   {CAMU}: camu" in out and "camu-no-cut-forget-z" in out
    assert "2 of 2 file(s) valid" in out


def test_validate_prints_every_problem_of_every_file(capsys):
    several = INVALID / "several-problems.yaml"
    unknown = INVALID / "unknown-node.yaml"
    assert main(["validate", CAMU, str(several), str(unknown)]) == 1
    captured = capsys.readouterr()
    assert f"FAIL {several}: 6 problem(s)" in captured.out
    for code in _expected_codes(several) + _expected_codes(unknown):
        assert f"[{code}]" in captured.out, code
    assert "hint: did you mean 'weight'?" in captured.out
    assert "1 of 3 file(s) valid" in captured.out
    assert "Traceback" not in captured.out + captured.err


def test_validate_missing_file(capsys, tmp_path):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "[file-not-found]" in capsys.readouterr().out


def test_validate_check_prints_the_causal_summary(capsys):
    assert main(["validate", CAMU, "--check"]) == 0
    out = capsys.readouterr().out
    assert "cut_forget_z cut" in out and "keep_retain_z preserve" in out
    assert "forget paths cut: yes" in out and "do(Z[forget])" in out


# ------------------------------------------------------------------------------------------------
# render
def test_render_dot(capsys, tmp_path):
    out = tmp_path / "camu.dot"
    assert main(["render", CAMU, "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    assert text.startswith("digraph camu {") and "cluster_representation" in text


def test_render_diff_preset_and_set(tmp_path):
    out = tmp_path / "diff.dot"
    argv = ["render", NO_CUT_Z, "-o", str(out), "--diff", CAMU, "--preset", "cifar-class"]
    argv += ["--set", "interventions.keep_retain_y.weight=1.0"]
    assert main(argv) == 0
    text = out.read_text()
    assert "✗ removed" in text and "t_cut_forget_z" in text
    assert "lr 1e-3 → 5e-5" in text  # the preset's change of the output stage
    assert "w 0.9 → 1" in text  # the --set change


@pytest.mark.needs_dot
@pytest.mark.skipif(shutil.which("dot") is None, reason="the Graphviz `dot` program is missing")
def test_render_svg(tmp_path):
    out = tmp_path / "camu.svg"
    assert main(["render", CAMU, "-o", str(out)]) == 0
    assert ET.parse(out).getroot().tag == "{http://www.w3.org/2000/svg}svg"


def test_render_set_typo_is_a_clean_error(capsys, tmp_path):
    out = tmp_path / "x.dot"
    assert main(["render", CAMU, "-o", str(out), "--set", "stages.outptu.lr=1e-3"]) == 1
    err = capsys.readouterr().err
    assert "[unknown-override-path]" in err and "did you mean 'output'?" in err
    assert "Traceback" not in err and not out.exists()


def test_render_set_without_equals_and_unknown_preset(capsys, tmp_path):
    out = str(tmp_path / "x.dot")
    assert main(["render", CAMU, "-o", out, "--set", "stages.output.lr"]) == 1
    assert "[bad-override]" in capsys.readouterr().err
    assert main(["render", CAMU, "-o", out, "--preset", "mnist-clas"]) == 1
    assert "did you mean 'mnist-class'?" in capsys.readouterr().err


def test_render_without_dot_program(capsys, tmp_path, monkeypatch):
    def missing(*args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(graphviz.Digraph, "pipe", missing)
    assert main(["render", CAMU, "-o", str(tmp_path / "camu.png")]) == 1
    err = capsys.readouterr().err
    assert "[dot-not-found]" in err and "apt-get install graphviz" in err
    assert "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    assert main(["render", CAMU]) == 2  # no -o
    assert "required" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["nonsense"]) == 2
    assert main(["--help"]) == 0


# ------------------------------------------------------------------------------------------------
# graphs
def test_graphs_lists_shipped_files_with_name_and_summary(capsys, monkeypatch):
    monkeypatch.delenv(GRAPHS_ENV, raising=False)
    assert main(["graphs"]) == 0
    out = capsys.readouterr().out
    shipped = sorted(p.relative_to(GRAPHS) for p in GRAPHS.rglob("*.yaml"))
    assert shipped and all(str(p) in out for p in shipped)
    line = next(x for x in out.splitlines() if x.strip().startswith("camu.yaml"))
    assert "camu — CaMU two-stage objective" in line
    assert "ablations/no-cut-forget-z.yaml" in out and "camu-no-cut-forget-z" in out


def test_graphs_folder_from_environment(capsys, monkeypatch, tmp_path):
    (tmp_path / "baselines").mkdir()
    shutil.copy(GRAPHS / "camu.yaml", tmp_path / "baselines" / "mine.yaml")
    shutil.copy(INVALID / "unknown-node.yaml", tmp_path / "broken.yaml")
    monkeypatch.setenv(GRAPHS_ENV, str(tmp_path))
    assert main(["graphs"]) == 0
    out = capsys.readouterr().out
    assert "baselines/mine.yaml" in out and "camu —" in out
    assert "broken.yaml" in out and "invalid: [unknown-node]" in out
    monkeypatch.setenv(GRAPHS_ENV, str(tmp_path / "missing"))
    assert main(["graphs"]) == 1
    assert "[graphs-not-found]" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
def test_a_new_command_is_one_registration(capsys):
    def add_arguments(parser):
        parser.add_argument("who")

    with cli.COMMANDS.scratch():
        register_command("hello", "say hello", add_arguments, lambda a: print(f"hi {a.who}") or 3)
        assert "hello" in build_parser().format_help()
        assert main(["hello", "you"]) == 3
        assert capsys.readouterr().out == "hi you\n"
        with pytest.raises(CausalUnlearnError) as err:  # the one duplicate policy
            register_command("hello", "again", add_arguments, lambda a: 0)
        assert err.value.code == "duplicate-command"
        register_command("hello", "again", add_arguments, lambda a: 0, overwrite=True)
        assert list(cli.COMMANDS.names()).count("hello") == 1
        assert main(["hello", "you"]) == 0
    assert "hello" not in cli.COMMANDS


def test_cli_reference_page_is_current():
    """Every command and option of the parser is on docs/cli.md (argparse's wording varies
    across Python versions, so the page is compared option by option, not byte by byte)."""
    import argparse
    from pathlib import Path

    from causalunlearn.cli import build_parser

    page = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, parser in sub.choices.items():
        if f"## `causalunlearn {name}`" not in page:
            missing.append(name)
        for action in parser._actions:
            missing += [f"{name} {o}" for o in action.option_strings if o not in page]
    assert not missing, f"regenerate docs/cli.md (see its first lines); missing: {missing}"


def test_import_option_loads_a_users_divergence_for_any_command(tmp_path, monkeypatch, capsys):
    from causalunlearn.compile.divergences import DIVERGENCES

    (tmp_path / "my_divs.py").write_text(
        "from causalunlearn.compile.divergences import register_divergence\n"
        "@register_divergence('abs_gap_cli')\n"
        "def abs_gap(value, reference, spec):\n"
        "    return (value - reference.value).abs().mean()\n"
    )
    camu = Path(__file__).resolve().parents[2] / "graphs" / "camu.yaml"
    graph_file = tmp_path / "mine.yaml"
    graph_file.write_text(
        f"format: causalunlearn.graph/v1\nextends: {camu}\nname: mine\n"
        "set:\n  interventions.keep_retain_z.divergence: {kind: abs_gap_cli}\n"
    )
    monkeypatch.chdir(tmp_path)
    try:
        assert main(["validate", str(graph_file)]) == 1  # unknown without the module
        assert "abs_gap_cli" in capsys.readouterr().out
        assert main(["--import", "my_divs", "validate", str(graph_file)]) == 0
        assert "ok" in capsys.readouterr().out
        assert main(["--import", "no_such_module_xyz", "validate", str(graph_file)]) == 1
        assert "import-failed" in capsys.readouterr().err
    finally:
        DIVERGENCES.pop("abs_gap_cli", None)


def test_import_takes_a_file_path_and_unknown_kinds_suggest_it(tmp_path, capsys):
    plugin = tmp_path / "my_plugin_for_cli_test.py"
    plugin.write_text(
        "from causalunlearn.compile.divergences import DIVERGENCES\n"
        "if 'abs_gap_plugin' not in DIVERGENCES:\n"
        "    @DIVERGENCES.register('abs_gap_plugin')\n"
        "    def abs_gap(value, ref, spec):\n"
        "        return (value - ref).abs().mean()\n"
    )
    text = (ROOT / "graphs" / "camu.yaml").read_text()
    graph = tmp_path / "g.yaml"
    graph.write_text(text.replace("kind: kl", "kind: abs_gap_plugin", 1))
    from causalunlearn.compile.divergences import DIVERGENCES

    try:
        assert main(["validate", str(graph)]) == 1
        out = capsys.readouterr().out
        assert "abs_gap_plugin" in out and "--import" in out  # the hint says how
        assert main(["--import", str(plugin), "validate", str(graph)]) == 0
        assert "ok" in capsys.readouterr().out
    finally:
        DIVERGENCES.pop("abs_gap_plugin", None)
