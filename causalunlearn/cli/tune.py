"""``causalunlearn tune``: choose a method's hyperparameters on a validation task.

A thin shell over :func:`causalunlearn.studies.tuning.tune` (the protocol is in its module
docstring and in docs/baselines.md, "Tuning protocol")::

    causalunlearn tune graphs/baselines/neggrad.yaml --dataset digits --scenario class:0 \\
        --grid stages.unlearn.lr=1e-3,1e-2 --grid schedule.epochs=2,3

The seeds are compare's (docs/sweeps.md, "Seed protocol"): ``--seeds`` (paired; default 100) or
``--train-seeds 100,101 --unlearn-seeds 0,1`` (nested: every candidate runs the 4 cells, and
the choice averages over them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from causalunlearn.cli.run import _seeds, add_setup_arguments, int_list
from causalunlearn.errors import RunError


def _classes(text: str) -> list[int]:
    return int_list(text, "proxy classes", "--proxy-class 1")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a fraction such as 0.2, got '{text}'") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"the fraction must be in (0, 1), got {value:g}")
    return value


def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``causalunlearn tune``."""
    parser.add_argument("graph", metavar="GRAPH", help="graph or method entry file to tune")
    parser.add_argument("--dataset", default="digits", help="the real dataset (default digits)")
    parser.add_argument(
        "--scenario",
        default="class:0",
        help="the real scenario, class:C or random:F (default class:0); the validation task"
        " removes another class, or a fresh random draw",
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="PATH=V1,V2",
        help="candidate values of a field (repeatable; the grid is the product). Default: every"
        " stage learning rate of the current preset × 0.01, 0.1, 1, 10 (4 candidates per graph)",
    )
    parser.add_argument(
        "--val-fraction",
        type=_fraction,
        default=0.2,
        help="share of the training rows held out as validation rows (default 0.2)",
    )
    parser.add_argument(
        "--view-seed", type=int, default=100, help="seed of the validation hold-out (default 100)"
    )
    parser.add_argument(
        "--proxy-class",
        type=_classes,
        help="class(es) removed in the validation task (class removal; default (c+1) mod C)",
    )
    parser.add_argument(
        "--seeds",
        type=_seeds,
        help="paired tuning seeds: each seeds the split, original, oracle and unlearning of one"
        " cell of the validation task (default 100; several measure the oracle's noise floor;"
        " not with the three below)",
    )
    from causalunlearn.cli.sweep import add_backend_arguments, add_nested_seed_arguments

    add_nested_seed_arguments(parser)  # as compare's: choose over I originals × J unlearnings
    parser.add_argument("--out", help="tuning folder (default runs/tune-<graph>-<dataset>-<kind>)")
    parser.add_argument("--overwrite", action="store_true", help="recompute mismatched cells")
    add_setup_arguments(parser)
    add_backend_arguments(parser)
    # A tuning scores candidates by the average gap: the opt-in evaluations of run and compare
    # (add_evaluation_arguments) stay off, and sweep_settings reads them from here.
    parser.set_defaults(probe=False, oracles=1, lira_shadows=0, lira_epochs=None)


def tune_command(args: argparse.Namespace) -> int:
    """Handler of ``causalunlearn tune``: run the grid, print the table and the preset line."""
    from causalunlearn.cli.sweep import backend_of, seed_flags, sweep_settings
    from causalunlearn.studies.entries import load_method_file
    from causalunlearn.studies.tuning import (
        default_tuning_folder,
        parse_grid,
        tune,
        tuning_markdown,
        tuning_seed_fields,
    )

    grid = parse_grid(args.grid) if args.grid else None
    method = load_method_file(args.graph)
    out = args.out or default_tuning_folder(method.name, args.dataset, args.scenario)
    settings = sweep_settings(args, tuning_seed_fields(**seed_flags(args)))
    try:
        report = tune(
            method,
            args.dataset,
            args.scenario,
            settings,
            out,
            grid=grid,
            val_fraction=args.val_fraction,
            view_seed=args.view_seed,
            proxy_class=args.proxy_class,
            overwrite=args.overwrite,
            source=args.graph,
            backend=backend_of(args),
        )
    except RunError as err:
        report_md = Path(out) / "tuning.md"
        if err.code == "no-candidate" and report_md.is_file():
            print(report_md.read_text())  # what was tried, before the error
        raise
    print(tuning_markdown(report))
    print(f"tuning folder: {out} (tuning.md, tuning.json, summary.md, runs/)")
    return 0
