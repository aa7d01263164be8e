"""``causalunlearn validate``, ``render`` and ``graphs``: the commands of the graph layer."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from causalunlearn.errors import CausalUnlearnError, GraphError

#: Environment variable naming a folder that ``causalunlearn graphs`` lists too.
GRAPHS_ENV = "CAUSALUNLEARN_GRAPHS"


# ------------------------------------------------------------------------------------------------
# validate
def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``causalunlearn validate``."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="graph files (.yaml)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="also run the causal check (forget paths cut? retain streams preserved?)",
    )


def validate_command(args: argparse.Namespace) -> int:
    """Handler of ``causalunlearn validate``: every problem of every file; 1 if any is invalid."""
    from causalunlearn.graph.yamlio import read_text_file
    from causalunlearn.methods import load_any
    from causalunlearn.methods.dispatch import causal_graph, describe

    failed = 0
    for file in args.files:
        try:
            if Path(file).is_file():
                read_text_file(Path(file))  # a binary or non-UTF-8 file is one FAIL line
            graph = load_any(Path(file))
        except GraphError as err:
            failed += 1
            print(f"FAIL {file}: {len(err.problems)} problem(s)")
            for problem in err.problems:
                print("  " + str(problem).replace("\n", "\n  "))
            continue
        except CausalUnlearnError as err:
            failed += 1
            print(f"FAIL {file}: {err}")
            continue
        print(f"ok   {file}: {describe(graph)}")
        checked = causal_graph(graph)
        if args.check and checked is not None:
            from causalunlearn.graph.causal import causal_check  # imports pgmpy: only here

            report = causal_check(checked)
            effects = ", ".join(f"{edge} {effect}" for edge, effect in report.effects.items())
            print(f"  edges: {effects}")
            print("  " + report.summary().replace("\n", "\n  "))
    if len(args.files) > 1:
        print(f"{len(args.files) - failed} of {len(args.files)} file(s) valid")
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------------
# render
def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``causalunlearn render``."""
    parser.add_argument("file", metavar="FILE", help="graph file (.yaml)")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output file; the suffix picks the format: .svg, .png, .pdf or .dot",
    )
    parser.add_argument(
        "--diff",
        metavar="BASE",
        help="draw the difference from graph BASE (loaded as it is: --preset and --set apply "
        "to FILE only, so '--diff FILE --preset P' shows what preset P changes)",
    )
    parser.add_argument("--preset", help="apply a preset of the graph (e.g. mnist-class)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a field, e.g. --set stages.output.lr=5e-5 (repeatable)",
    )


def render_command(args: argparse.Namespace) -> int:
    """Handler of ``causalunlearn render``."""
    from causalunlearn.graph import load_graph, parse_assignments
    from causalunlearn.graph.render import render
    from causalunlearn.methods import is_method_file

    for file in (args.file, args.diff):
        if file and is_method_file(Path(file)):
            raise CausalUnlearnError(
                "not-a-graph",
                f"{file} is a method entry (a non-training method), not a graph: it has no diagram",
                "render graph files only (`causalunlearn graphs` lists them)",
            )
    overrides = parse_assignments(args.set)
    graph = load_graph(Path(args.file), preset=args.preset, overrides=overrides)
    base = load_graph(Path(args.diff)) if args.diff else None
    path = render(graph, args.output, base=base)
    print(f"wrote {path}")
    return 0


# ------------------------------------------------------------------------------------------------
# graphs
def extra_graphs_folder() -> Path | None:
    """The folder ``$CAUSALUNLEARN_GRAPHS`` names, listed by ``causalunlearn graphs`` beside the
    shipped files (``None`` when the variable is unset)."""
    env = os.environ.get(GRAPHS_ENV)
    return Path(env) if env else None


def add_graphs_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``causalunlearn graphs`` (none)."""


def _print_files(files: dict[str, Path], folder: Path) -> None:
    """One line per file: its path under ``folder``, its name and summary (or why it is invalid)."""
    from causalunlearn.methods import load_any

    if not files:
        print("  (none)")
    rels = {name: path.relative_to(folder).as_posix() for name, path in files.items()}
    width = max(map(len, rels.values()), default=0)
    for name, path in files.items():
        try:
            graph = load_any(path)
            summary = " ".join(graph.summary.split())
            if len(summary) > 90:
                summary = summary[:89] + "…"
            about = f"{graph.name}" + (f" — {summary}" if summary else "")
        except CausalUnlearnError as err:
            about = f"(invalid: [{err.code}]; see `causalunlearn validate {path}`)"
        print(f"  {rels[name]:<{width}}  {about}")


def graphs_command(args: argparse.Namespace) -> int:
    """Handler of ``causalunlearn graphs``: each shipped graph (or method entry) file, its name
    and summary; then the files of ``$CAUSALUNLEARN_GRAPHS`` when it is set."""
    from causalunlearn.graph.shipped import method_files, shipped_folder

    extra = extra_graphs_folder()
    if extra is not None and not extra.is_dir():
        raise CausalUnlearnError(
            "graphs-not-found",
            f"no graphs folder at {extra} (named by {GRAPHS_ENV})",
            f"set {GRAPHS_ENV} to a folder of graph files, or unset it",
        )
    folder = shipped_folder()
    if folder is None:
        raise CausalUnlearnError(
            "graphs-not-found",
            "the shipped graphs are not installed with this copy of causalunlearn",
            "reinstall the package (`pip install causalunlearn`, or `pip install -e .` in a "
            "checkout)",
        )
    print(f"shipped graphs in {folder}")
    print(
        "(name one by its path without .yaml: `causalunlearn validate ablations/no-cut-forget-z`)"
    )
    _print_files(method_files(folder), folder)
    if extra is not None:
        print(f"graphs in {extra} ({GRAPHS_ENV}; give their file paths):")
        _print_files(method_files(extra), extra)
    return 0
