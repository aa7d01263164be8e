"""The ``causalunlearn`` command line: a thin shell over the library's verbs.

Each subcommand is a ``(name, help, add_arguments, handler)`` entry of :data:`COMMANDS`; a new one
is one :func:`register_command` call (``run`` and ``compare`` plug in that way)::

    register_command("run", "unlearn with a graph", add_run_arguments, run_command)

A handler gets the parsed arguments and returns the exit status. Errors of causalunlearn
(:class:`~causalunlearn.errors.CausalUnlearnError`, graph problems included) are printed to
stderr without a traceback and give exit status 1; usage errors give 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from causalunlearn.cli_run import add_run_arguments, run_command
from causalunlearn.cli_sweep import (
    ablate_command,
    add_ablate_arguments,
    add_compare_arguments,
    compare_command,
)
from causalunlearn.cli_tune import add_tune_arguments, tune_command
from causalunlearn.errors import CausalUnlearnError, GraphError

#: Environment variable naming the folder that ``causalunlearn graphs`` lists.
GRAPHS_ENV = "CAUSALUNLEARN_GRAPHS"


@dataclass(frozen=True)
class Command:
    """A subcommand of ``causalunlearn``.

    Attributes:
        name: The word on the command line (``validate``).
        help: One line for ``causalunlearn --help``.
        add_arguments: Adds the subcommand's arguments to its parser.
        handler: Runs the subcommand; returns the exit status.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]


#: The registered subcommands, in the order ``--help`` lists them.
COMMANDS: list[Command] = []


def register_command(
    name: str,
    help: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    handler: Callable[[argparse.Namespace], int],
) -> None:
    """Add a subcommand (replacing one of the same name).

    Args:
        name: The word on the command line.
        help: One line for ``--help``.
        add_arguments: Called with the subcommand's ``ArgumentParser``.
        handler: Called with the parsed arguments; returns the exit status.
    """
    COMMANDS[:] = [c for c in COMMANDS if c.name != name]
    COMMANDS.append(Command(name, help, add_arguments, handler))


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
    from causalunlearn.methods import MethodEntry, load_any

    failed = 0
    for file in args.files:
        try:
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
        if isinstance(graph, MethodEntry):
            print(f"ok   {file}: {graph.name} (method entry '{graph.method}': not a graph)")
            continue
        stages = len(graph.stages)
        print(
            f"ok   {file}: {graph.name} ({len(graph.nodes)} nodes, "
            f"{len(graph.interventions)} intervention edges, {stages} stage(s))"
        )
        if args.check:
            from causalunlearn.graph.causal import causal_check  # imports pgmpy: only here

            report = causal_check(graph)
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
def graphs_folder() -> Path:
    """The folder of shipped graph files: ``$CAUSALUNLEARN_GRAPHS``, else the repository's
    ``graphs/`` next to the package."""
    env = os.environ.get(GRAPHS_ENV)
    if env:
        return Path(env)
    import causalunlearn

    return Path(causalunlearn.__file__).resolve().parents[1] / "graphs"


def add_graphs_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``causalunlearn graphs`` (none)."""


def graphs_command(args: argparse.Namespace) -> int:
    """Handler of ``causalunlearn graphs``: each graph (or method entry) file, name, summary."""
    from causalunlearn.methods import load_any

    folder = graphs_folder()
    if not folder.is_dir():
        raise CausalUnlearnError(
            "graphs-not-found",
            f"no graphs folder at {folder}",
            f"set {GRAPHS_ENV} to a folder of graph files (the repository's graphs/)",
        )
    files = sorted(
        (p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()),
        key=lambda p: (len(p.relative_to(folder).parts), str(p.relative_to(folder))),
    )
    print(f"graphs in {folder}:")
    if not files:
        print("  (none)")
    width = max((len(str(p.relative_to(folder))) for p in files), default=0)
    for path in files:
        rel = str(path.relative_to(folder))
        try:
            graph = load_any(path)
            summary = " ".join(graph.summary.split())
            if len(summary) > 90:
                summary = summary[:89] + "…"
            about = f"{graph.name}" + (f" — {summary}" if summary else "")
        except CausalUnlearnError as err:
            about = f"(invalid: [{err.code}]; see `causalunlearn validate {path}`)"
        print(f"  {rel:<{width}}  {about}")
    return 0


register_command(
    "validate", "check graph files; print every problem", add_validate_arguments, validate_command
)
register_command(
    "render", "draw a graph (or a diff) as SVG/PNG/PDF/DOT", add_render_arguments, render_command
)
register_command(
    "graphs",
    "list the graph files shipped with causalunlearn",
    add_graphs_arguments,
    graphs_command,
)
register_command(
    "run",
    "unlearn with a graph on a dataset and scenario over seeds; print the table",
    add_run_arguments,
    run_command,
)
register_command(
    "compare",
    "run several graphs over datasets, scenarios and seeds; summary table and plots (resumable)",
    add_compare_arguments,
    compare_command,
)
register_command(
    "ablate",
    "run a graph and one ablation per intervention edge; summary, plots, ablation figure",
    add_ablate_arguments,
    ablate_command,
)
register_command(
    "tune",
    "choose hyperparameters on a validation task carved from the training data (never test)",
    add_tune_arguments,
    tune_command,
)


# ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="causalunlearn",
        description="Causal machine unlearning: validate, draw and run unlearning graphs.",
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a Python module first (repeatable), e.g. one that registers your own"
        " divergence, reference, do-operation or model; the working directory is searched",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(handler=command.handler)
    return parser


def markdown_reference() -> str:
    """The CLI reference as Markdown, generated from the parser (``docs/cli.md``).

    Regenerate with ``python -c "from causalunlearn.cli import markdown_reference as m;
    print(m(), end='')" > docs/cli.md``; a test checks the file is current.
    """
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal width
    try:
        parser = build_parser()
        parts = [
            "# Command-line reference",
            "",
            "Generated from the argument parser by `causalunlearn.cli.markdown_reference()`;",
            "`tests/test_cli.py` fails when this page is out of date.",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
        ]
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, subparser in sub.choices.items():
            parts += [
                "",
                f"## `causalunlearn {name}`",
                "",
                "```text",
                subparser.format_help().rstrip(),
                "```",
            ]
        return "\n".join(parts) + "\n"
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def import_user_modules(names: Sequence[str]) -> None:
    """Import each module named by ``--import`` (the working directory first on the path).

    Raises:
        CausalUnlearnError: ``import-failed`` naming the module and the reason.
    """
    import importlib

    if names and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - any failure of user code is reported the same
            raise CausalUnlearnError(
                "import-failed",
                f"--import {name}: {type(err).__name__}: {err}",
                "give an importable module name (e.g. my_divergences for ./my_divergences.py)",
            ) from err


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 error, 2 usage error).

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        import_user_modules(args.imports)
        return int(args.handler(args))
    except CausalUnlearnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
