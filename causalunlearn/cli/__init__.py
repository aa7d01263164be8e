"""The ``causalunlearn`` command line: argparse shells over the library's verbs, nothing more.

- :mod:`~causalunlearn.cli.app`: :func:`main`, the subcommand registry, the error guard, logging.
- :mod:`~causalunlearn.cli.graph_cmds`: ``validate``, ``render``, ``graphs``.
- :mod:`~causalunlearn.cli.run`, :mod:`~causalunlearn.cli.sweep`, :mod:`~causalunlearn.cli.tune`:
  ``run``; ``compare`` and ``ablate``; ``tune``.
"""

from causalunlearn.cli.app import (
    COMMANDS,
    Command,
    build_parser,
    main,
    markdown_reference,
    register_command,
)

__all__ = ["COMMANDS", "Command", "build_parser", "main", "markdown_reference", "register_command"]
