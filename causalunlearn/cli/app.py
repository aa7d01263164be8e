"""The ``causalunlearn`` command line: a thin shell over the library's verbs.

Each subcommand is a :class:`Command` in the registry :data:`COMMANDS` (a
:class:`~causalunlearn.registry.Registry`, with its one duplicate policy); a new one is one
:func:`register_command` call (``run`` and ``compare`` plug in that way)::

    register_command("run", "unlearn with a graph", add_run_arguments, run_command)

A handler gets the parsed arguments and returns the exit status. Errors of causalunlearn
(:class:`~causalunlearn.errors.CausalUnlearnError`, graph problems included) are printed to
stderr without a traceback and give exit status 1; usage errors give 2; Ctrl-C gives 130. Any
other exception is a bug of causalunlearn: :func:`main` prints one line that says so, names the
failing command and where to report it, and exits 1; ``--debug`` (or ``CAUSALUNLEARN_DEBUG=1``)
prints the full stack as well.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from causalunlearn.cli.graph_cmds import (
    add_graphs_arguments,
    add_render_arguments,
    add_validate_arguments,
    graphs_command,
    render_command,
    validate_command,
)
from causalunlearn.cli.rescore import add_rescore_arguments, rescore_command
from causalunlearn.cli.run import add_run_arguments, run_command
from causalunlearn.cli.sweep import (
    ablate_command,
    add_ablate_arguments,
    add_compare_arguments,
    compare_command,
)
from causalunlearn.cli.tune import add_tune_arguments, tune_command
from causalunlearn.errors import BUG_REPORT, CausalUnlearnError
from causalunlearn.registry import Registry

#: Environment variable that, set to anything but ``0`` or empty, acts as ``--debug``.
DEBUG_ENV = "CAUSALUNLEARN_DEBUG"


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
COMMANDS: Registry[Command] = Registry(
    "command", label="subcommand", hint="register one with causalunlearn.cli.register_command"
)


def register_command(
    name: str,
    help: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    handler: Callable[[argparse.Namespace], int],
    *,
    overwrite: bool = False,
) -> Command:
    """Add a subcommand.

    Args:
        name: The word on the command line.
        help: One line for ``--help``.
        add_arguments: Called with the subcommand's ``ArgumentParser``.
        handler: Called with the parsed arguments; returns the exit status.
        overwrite: Replace a subcommand of the same name (it keeps its place in ``--help``).

    Raises:
        CausalUnlearnError: ``duplicate-command`` when the name is taken and ``overwrite`` is
            false.
    """
    return COMMANDS.register(name, Command(name, help, add_arguments, handler), overwrite=overwrite)


register_command(
    "validate", "check graph files; print every problem", add_validate_arguments, validate_command
)
register_command(
    "render", "draw a graph (or a diff) as SVG/PNG/PDF/DOT", add_render_arguments, render_command
)
register_command(
    "graphs",
    "list the shipped graphs; name one by its path without .yaml, e.g. baselines/scrub",
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
    "rescore",
    "recompute a finished run's or sweep's metrics from its saved per-example outputs"
    " (no training)",
    add_rescore_arguments,
    rescore_command,
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
        help="import a Python module first (repeatable): a module name (the working directory"
        " is searched), a .py file or a package folder, e.g. one that registers your own"
        " divergence, reference, do-operation or model",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"print the full stack of an error (or set {DEBUG_ENV}=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _, command in COMMANDS.items():
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
            "`tests/cli/test_cli.py` fails when this page is out of date.",
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


def import_user_modules(specs: Sequence[str]) -> None:
    """Import each module named by ``--import``: a module name (the working directory first on
    the path), a ``.py`` file or a package folder (:func:`causalunlearn.plugins.import_plugins`).

    Raises:
        CausalUnlearnError: ``import-failed`` naming the module and the reason.
    """
    from causalunlearn.plugins import import_plugins

    import_plugins(specs)


class _StderrHandler(logging.Handler):
    """Writes each record to the *current* ``sys.stderr`` (so a redirected or captured stderr
    gets the notices too), message only."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def configure_logging() -> None:
    """Show the ``causalunlearn`` logger's notices (INFO and up) on stderr, message only.

    Idempotent: calling it again (``main`` in a notebook or a test, many times) adds no
    second handler.
    """
    logger = logging.getLogger("causalunlearn")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def bug_message(err: BaseException, argv: Sequence[str]) -> str:
    """The one line printed for an unexpected exception: a bug, the command, where to report."""
    what = " ".join(f"{type(err).__name__}: {err}".split())
    if len(what) > 200:
        what = what[:199] + "…"
    command = shlex.join(["causalunlearn", *argv])
    if len(command) > 500:
        command = command[:499] + "…"
    return (
        f"error: [internal-error] this is a bug in causalunlearn ({what}); please report it to"
        f" {BUG_REPORT} with the command: {command} (rerun with --debug or {DEBUG_ENV}=1 for"
        " the full stack)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 error, 2 usage error, 130 Ctrl-C).

    Every failure ends in one message without a traceback: a coded error of causalunlearn, a
    usage error, or, for any other exception (a bug), one line from :func:`bug_message`. With
    ``--debug`` or ``CAUSALUNLEARN_DEBUG=1`` the full stack is printed before the message.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    configure_logging()
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
            return exc.code if isinstance(exc.code, int) else 2
        if getattr(args, "handler", None) is None:
            parser.print_help(sys.stderr)
            return 2
        debug = debug or args.debug
        import_user_modules(args.imports)
        return int(args.handler(args))
    except CausalUnlearnError as err:
        if debug:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the guard: a bug is one line, never a bare stack
        if debug:
            traceback.print_exc()
        print(bug_message(err, argv), file=sys.stderr)
        return 1
