"""``causalunlearn compare`` and ``causalunlearn ablate``: sweeps from the command line.

Argument parsing only: sweep files are read by :mod:`causalunlearn.studies.sweep_file`, the
sweep is :class:`causalunlearn.studies.sweep.Sweep`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from causalunlearn.cli.run import (
    _seeds,
    add_evaluation_arguments,
    add_setup_arguments,
    evaluation_settings,
    int_list,
    numerics_of,
    recipe_of,
    show_progress,
)


def _nested(flag: str):
    """The argparse type of a nested seed flag: its usage errors carry the settings' codes."""

    def parse(text: str) -> list[int]:
        try:
            return int_list(text, flag.lstrip("-").replace("-", " "), f"{flag} 0,1,2")
        except argparse.ArgumentTypeError as err:
            code = "no-seeds" if not text.replace(",", "").strip() else "bad-seed"
            raise argparse.ArgumentTypeError(f"[{code}] {err}") from None

    return parse


def add_nested_seed_arguments(parser: argparse.ArgumentParser) -> None:
    """``--train-seeds``, ``--split-seeds``, ``--unlearn-seeds`` (``compare``, ``ablate``,
    ``tune``); :func:`seed_flags` reads them with ``--seeds``."""
    parser.add_argument(
        "--train-seeds",
        type=_nested("--train-seeds"),
        metavar="SEEDS",
        help="nested seeds (docs/sweeps.md, Seed protocol): training seeds of the originals and"
        " oracles; the cells are the cross product of the three lists, an unset one is 0",
    )
    parser.add_argument(
        "--split-seeds",
        type=_nested("--split-seeds"),
        metavar="SEEDS",
        help="nested: seeds of the forget/retain split and retain sample, per training seed",
    )
    parser.add_argument(
        "--unlearn-seeds",
        type=_nested("--unlearn-seeds"),
        metavar="SEEDS",
        help="nested: seeds of the unlearning runs, per original and split",
    )


def _fraction_of_resource(text: str) -> float:
    """A ``--cpus-per-cell`` / ``--gpus-per-cell`` value (an argparse type): a number ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"[bad-backend] expected a number such as 1 or 0.25, got {text[:40]!r}"
        )
    return value


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the cells run (``compare``, ``ablate``, ``tune``): docs/scaling.md."""
    from causalunlearn.cli.run import positive_int

    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: one cell at a time in this process (default); ray: cells in parallel on Ray"
        " (pip install 'causalunlearn[ray]'), on this machine's cores or the cluster at --address",
    )
    parser.add_argument(
        "--address",
        help="ray: the Ray cluster to join (host:6379 or ray://host:10001; default: start Ray"
        " on this machine)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        help="ray: cells at once (default: cores // cpus-per-cell on this machine; on a"
        " cluster, what its resources hold); without --threads each cell gets cores // N threads",
    )
    parser.add_argument(
        "--cpus-per-cell",
        type=_fraction_of_resource,
        metavar="C",
        help="ray: CPUs each cell reserves (default: its thread count)",
    )
    parser.add_argument(
        "--gpus-per-cell",
        type=_fraction_of_resource,
        metavar="G",
        help="ray: GPUs each cell reserves; 0.25 packs four cells on one GPU (default 0)",
    )


def backend_of(args: argparse.Namespace):
    """The :class:`~causalunlearn.studies.backends.Backend` of the backend arguments."""
    from causalunlearn.studies.backends import Backend

    return Backend(
        kind=args.backend,
        address=args.address,
        workers=args.workers,
        cpus_per_cell=args.cpus_per_cell,
        gpus_per_cell=args.gpus_per_cell if args.gpus_per_cell is not None else 0.0,
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        action="append",
        help="dataset (repeat for several; default digits)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        help="scenario, e.g. class:0 or random:0.1 (repeat for several; default class:0)",
    )
    parser.add_argument(
        "--seeds",
        type=_seeds,
        help="comma-separated paired seeds: each seeds the training, the split and the"
        " unlearning of its cells (default 0,1,2; not with the three below)",
    )
    add_nested_seed_arguments(parser)
    parser.add_argument("--out", help="sweep folder (default runs/compare or runs/ablate-<graph>)")
    parser.add_argument(
        "--relearn", action="store_true", help="also measure relearn time (forget fine-tuning)"
    )
    parser.add_argument(
        "--curves", action="store_true", help="also record relearning curves (retain fine-tuning)"
    )
    parser.add_argument("--no-plots", action="store_true", help="write no plots")
    parser.add_argument(
        "--summary-only",
        action="store_true",
        help="compute nothing: summarise the runs already finished in --out (e.g. while the"
        " sweep still runs elsewhere)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="recompute cells made with other settings"
    )
    parser.add_argument(
        "--csv",
        metavar="FILE",
        help="also write every number as a long CSV table (method, dataset, scenario, seed and"
        " the three seeds, model, metric, value; causalunlearn.results reads the same as a"
        " DataFrame)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[METHOD:]PATH=VALUE",
        help="override a field of every method that has PATH (an error when none has it), or"
        " of one method by its label (METHOD:PATH=VALUE); repeatable",
    )
    add_setup_arguments(parser)
    add_evaluation_arguments(parser)
    add_backend_arguments(parser)


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``causalunlearn compare``."""
    parser.add_argument(
        "methods",
        nargs="*",
        metavar="GRAPH",
        help="graph or method files; PATH@PRESET picks a preset (default: <dataset>-<class|random>"
        " when the file has it), PATH@- none",
    )
    parser.add_argument("--sweep", help="a sweep file (YAML) instead of / besides the flags")
    _common(parser)


def add_ablate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``causalunlearn ablate``."""
    parser.add_argument("graph", help="the full graph, e.g. graphs/camu.yaml")
    parser.add_argument("--preset", help="preset for every run (default: per dataset/scenario)")
    _common(parser)


def sweep_settings(args: argparse.Namespace, seeds, relearn: bool = False, curves: bool = False):
    """:class:`~causalunlearn.studies.settings.StudySettings` from the setup arguments.

    ``seeds`` is a list of paired seeds, or the seed fields of
    :func:`~causalunlearn.studies.sweep_file.seed_fields` (a dict).
    """
    from causalunlearn.studies.settings import StudySettings

    fields = dict(seeds) if isinstance(seeds, dict) else {"seeds": tuple(seeds)}
    return StudySettings(
        **fields,
        model=args.model,
        recipe=recipe_of(args),
        attacker=args.attacker,
        relearn=relearn,
        curves=curves,
        data_root=args.data_root,
        cache_dir=args.cache_dir,
        device=args.device,
        threads=args.threads,
        numerics=numerics_of(args),
        progress=show_progress(args),
        executor=args.executor,
        log_dir=args.log_dir,
        **evaluation_settings(args),
    )


def _run(entries, datasets, scenarios, settings, out, args) -> int:
    from causalunlearn.studies.sweep import Sweep

    sweep = Sweep(
        entries,
        datasets,
        scenarios,
        settings,
        out,
        overwrite=args.overwrite,
        plots=not args.no_plots,
        backend=backend_of(args),
    )
    total = len(sweep.cells())
    if settings.nested:
        seeds = (
            f"{len(settings.train_seeds)} training × {len(settings.split_seeds)} split ×"
            f" {len(settings.unlearn_seeds)} unlearning seed(s)"
        )
    else:
        seeds = f"{len(settings.seeds)} seed(s)"
    print(
        f"sweep: {len(entries)} method(s) × {len(datasets)} dataset(s) × {len(scenarios)}"
        f" scenario(s) × {seeds} = {total} runs → {out}",
        file=sys.stderr,
    )
    if args.summary_only:
        sweep.summarise()
    else:
        sweep.run()
    print((Path(out) / "summary.md").read_text())
    if args.csv:
        from causalunlearn.studies.results import result_rows, write_csv

        write_csv(args.csv, result_rows(out))
        print(f"long table: {args.csv}")
    print(f"sweep folder: {out} (summary.md, summary.json, runs/, plots/)")
    return 0


def seed_flags(args: argparse.Namespace) -> dict:
    """The seed flags as :func:`~causalunlearn.studies.sweep_file.seed_fields` takes them
    (``None``: not given)."""
    return {
        "seeds": args.seeds,
        "train_seeds": args.train_seeds,
        "split_seeds": args.split_seeds,
        "unlearn_seeds": args.unlearn_seeds,
    }


def compare_command(args: argparse.Namespace) -> int:
    """Handler of ``causalunlearn compare``."""
    from causalunlearn.studies import sweep_file as F

    file = F.read_sweep_file(args.sweep) if args.sweep else F.SweepFile()
    entries = F.sweep_entries(
        [*file.methods, *args.methods], file.ablate, assignments=[*file.set, *args.set]
    )
    datasets = args.dataset or file.datasets or F.DEFAULT_DATASETS
    scenarios = args.scenario or file.scenarios or F.DEFAULT_SCENARIOS
    seeds = F.seed_fields(file, **seed_flags(args))
    args.probe = args.probe or file.probe
    if args.oracles == 1:  # the flag's default: the file's count, if it gives one
        args.oracles = file.oracles
    settings = sweep_settings(args, seeds, args.relearn or file.relearn, args.curves or file.curves)
    out = args.out or F.DEFAULT_COMPARE_FOLDER
    return _run(entries, datasets, scenarios, settings, out, args)


def ablate_command(args: argparse.Namespace) -> int:
    """Handler of ``causalunlearn ablate``: the graph and one ablation per intervention edge."""
    from causalunlearn.studies import sweep_file as F

    entries = F.sweep_entries(ablate=args.graph, preset=args.preset or "auto", assignments=args.set)
    settings = sweep_settings(args, F.seed_fields(**seed_flags(args)), args.relearn, args.curves)
    out = args.out or F.default_ablate_folder(entries[0].label)
    datasets = args.dataset or F.DEFAULT_DATASETS
    return _run(entries, datasets, args.scenario or F.DEFAULT_SCENARIOS, settings, out, args)
