"""``causalunlearn rescore PATH``: recompute a finished run's or sweep's metrics from its saved
per-example outputs, without training (:mod:`causalunlearn.studies.rescore`)."""

from __future__ import annotations

import argparse


def add_rescore_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``causalunlearn rescore``."""
    parser.add_argument(
        "path",
        metavar="PATH",
        help="a run folder (causalunlearn run) or a sweep folder (compare, ablate)",
    )


def rescore_command(args: argparse.Namespace) -> int:
    """Handler of ``causalunlearn rescore``: prints what changed, returns the exit status."""
    from causalunlearn.studies.rescore import NOT_FROM_OUTPUTS, rescore

    report = rescore(args.path)
    print(f"rescored {report.models} model(s) of the {report.kind} folder {report.path}")
    if report.changed:
        print(f"{len(report.changed)} value(s) changed:")
        for where, role, key, old, new in report.changed:
            print(f"  {where} {role} {key}: {old} -> {new}")
    else:
        print("no value changed")
    kept = sorted(report.kept & set(NOT_FROM_OUTPUTS))
    if kept:
        print(f"kept as measured (they need the model, not its outputs): {', '.join(kept)}")
    return 0
