"""``causalunlearn run``: unlearn with a graph on a dataset and scenario over seeds.

A thin shell over :func:`causalunlearn.studies.experiment.run_experiment`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path


def int_list(text: str, what: str = "seeds", example: str = "--seeds 0,1,2") -> list[int]:
    """Comma-separated integers (an argparse type); ``what``/``example`` word the errors."""
    try:
        values = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{what} are integers separated by commas, got '{text}'"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError(f"give at least one, e.g. {example}")
    return values


def _seeds(text: str) -> list[int]:
    return int_list(text)


#: The devices ``--device`` takes (``auto``: CUDA when present, else CPU).
DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"


def device_name(text: str) -> str:
    """A ``--device`` value (an argparse type): refused at once, not after the data is loaded."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", text.strip()):
        raise argparse.ArgumentTypeError(
            f"[bad-device] unknown device {text[:40]!r}; use {DEVICE_FORMS}"
        )
    return text.strip()


def positive_int(text: str) -> int:
    """A count such as ``--threads`` (an argparse type): a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"[bad-count] expected a whole number of at least 1, got {text[:40]!r}"
            " (leave the option out for the default)"
        )
    return value


def thread_count(text: str) -> int | None:
    """A ``--threads`` value (an argparse type): ``auto`` (``None``: min(available cores,
    torch's count)) or a whole number of at least 1."""
    return None if text.strip().lower() == "auto" else positive_int(text)


def cache_folder(text: str) -> str:
    """A ``--cache-dir`` value (an argparse type): a folder that exists or can be made, and that
    this process can write in (tried by writing, since ``os.access`` says yes to root even on an
    immutable or read-only-mounted folder)."""
    path = Path(text).expanduser()
    probe = path
    while not probe.exists() and probe != probe.parent:  # the nearest folder that exists
        probe = probe.parent
    if not probe.is_dir():
        raise argparse.ArgumentTypeError(
            f"[bad-cache-dir] {text!r} cannot be a cache folder: {str(probe)!r} is a file"
        )
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise argparse.ArgumentTypeError(
            f"[bad-cache-dir] cannot write in {str(probe)!r} ({err.strerror or err});"
            " give a writable --cache-dir"
        ) from None
    return text


def add_setup_arguments(parser: argparse.ArgumentParser) -> None:
    """Where data and models come from, how to run (shared by run, compare, ablate, tune)."""
    parser.add_argument(
        "--model",
        help="registered model (default: mlp for digits, cnn for MNIST, resnet18 for CIFAR;"
        " resnet20: the CPU-sized CIFAR ResNet)",
    )
    parser.add_argument(
        "--recipe",
        default="camu",
        help="training recipe of originals and oracles: camu (default, the authors': Adam 1e-3,"
        " batch 32, 20 epochs) or cifar (SGD 0.1, momentum 0.9, wd 5e-4, batch 128, cosine,"
        " crop+flip, 20 epochs; docs/results.md)",
    )
    parser.add_argument(
        "--epochs-original",
        type=int,
        help="epochs of original/oracle training (the recipe's otherwise; official: 20)",
    )
    parser.add_argument(
        "--data-root", help="folder with the datasets (else $CAUSALUNLEARN_DATA_ROOT)"
    )
    parser.add_argument(
        "--cache-dir",
        type=cache_folder,
        help="cache of datasets and models (else $CAUSALUNLEARN_CACHE)",
    )
    parser.add_argument(
        "--device",
        type=device_name,
        default=None,
        help="cpu, cuda, cuda:N or mps (default: cuda when present)",
    )
    parser.add_argument(
        "--attacker", default="gbdt", help="attacker of the CaMU MIA: gbdt or xgboost"
    )
    parser.add_argument(
        "--threads",
        type=thread_count,
        default=None,
        help="CPU threads for torch and scikit-learn/OpenMP: N (at least 1; 1 suits small models)"
        " or auto (default: min(available cores, torch's count))",
    )
    parser.add_argument(
        "--flush-denormal",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="flush subnormal floats to zero on the CPU (faster with trained weights; changes"
        " numbers slightly and the model cache key; default off, docs/performance.md)",
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="channels_last memory format for conv models (inference and training loops)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--log-dir",
        metavar="DIR",
        help="write a TensorBoard log of every run in DIR/<method>/<dataset>/<scenario>/seed<S>"
        " (needs pip install causalunlearn[tensorboard]; docs/tracking.md)",
    )
    parser.add_argument(
        "--executor",
        choices=["fast", "reference"],
        default="fast",
        help="fast (default) or reference (the faithful oracle; docs/performance.md)",
    )


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """The opt-in evaluations (run, compare, ablate): the representation probe, K oracles,
    U-LiRA."""
    parser.add_argument(
        "--probe",
        action="store_true",
        help="also probe every model's representation with a linear classifier for the forgotten"
        " class (class removal) or membership (random), and a random-init network (the floor)",
    )
    parser.add_argument(
        "--oracles",
        type=positive_int,
        default=1,
        metavar="K",
        help="retrain oracles per split, training seeds seed..seed+K-1 (default 1); K >= 3 adds"
        " oracle_margin_z, K >= 8 with several seeds oracle_klom (per run, per sweep method);"
        " costs K-1 more oracle trainings per retain set (cached)",
    )
    parser.add_argument(
        "--lira-shadows",
        type=positive_int,
        default=0,
        metavar="N",
        help="run the U-LiRA attack with N shadow models (at least 4; 64 is the full attack;"
        " random removal only): N shadow trainings per dataset, split and seed (cached: every"
        " method of a sweep shares them) and N unlearning runs per cell (default: off)",
    )
    parser.add_argument(
        "--lira-epochs",
        type=positive_int,
        metavar="E",
        help="training epochs of each LiRA shadow (default: the original's recipe)",
    )


def evaluation_settings(args: argparse.Namespace) -> dict:
    """The settings of :func:`add_evaluation_arguments` (``StudySettings`` fields)."""
    return {
        "probe": args.probe,
        "oracles": args.oracles,
        "lira_shadows": args.lira_shadows,
        "lira_epochs": args.lira_epochs,
    }


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal, outside CI, and unless --no-progress."""
    return not args.no_progress and sys.stderr.isatty() and not os.environ.get("CI")


def numerics_of(args: argparse.Namespace):
    """The run's :class:`~causalunlearn.numerics.CpuNumerics` (``--flush-denormal``,
    ``--channels-last``)."""
    from causalunlearn.numerics import CpuNumerics

    return CpuNumerics(flush_denormal=args.flush_denormal, channels_last=args.channels_last)


def recipe_of(args: argparse.Namespace):
    """The original/oracle training recipe: ``--recipe`` (default ``camu``), with
    ``--epochs-original`` changing its epochs."""
    from causalunlearn.recipes import recipe_named

    recipe = recipe_named(getattr(args, "recipe", None) or "camu")
    return recipe.with_epochs(args.epochs_original)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``causalunlearn run``."""
    parser.add_argument("graph", help="graph file, e.g. graphs/camu.yaml")
    parser.add_argument(
        "--dataset",
        default="digits",
        help="digits (embedded), mnist, fashion-mnist, cifar10, cifar100",
    )
    parser.add_argument(
        "--scenario",
        default="class:0",
        help="class:0 | class:0,3 | random:0.1 | perclass:0=0.5 | indices:FILE (forget indices)",
    )
    parser.add_argument(
        "--seeds", type=_seeds, default=[0], help="comma-separated seeds (default 0)"
    )
    parser.add_argument(
        "--preset", help="a preset of the graph, e.g. mnist-class (see the graph file)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="PATH=VALUE", help="override a graph field"
    )
    parser.add_argument(
        "--checkpoint", help="your trained original model (state_dict) instead of training one"
    )
    parser.add_argument("--no-oracle", action="store_true", help="skip the retrain oracle")
    parser.add_argument("--out", help="run folder (default: runs/<graph>-<dataset>-<scenario>)")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    add_setup_arguments(parser)
    add_evaluation_arguments(parser)


def run_command(args: argparse.Namespace) -> int:
    """Handler of ``causalunlearn run``: prints the Markdown table, returns the exit status."""
    from causalunlearn.graph import parse_assignments
    from causalunlearn.methods import load_any
    from causalunlearn.studies.experiment import (
        RunSettings,
        default_run_folder,
        markdown_table,
        run_experiment,
    )

    overrides = parse_assignments(args.set)
    graph = load_any(args.graph, preset=args.preset, overrides=overrides)
    scenario = args.scenario
    recipe = recipe_of(args)
    settings = RunSettings(
        dataset=args.dataset,
        scenario=scenario,
        seeds=tuple(args.seeds),
        model=args.model,
        recipe=recipe,
        data_root=args.data_root,
        cache_dir=args.cache_dir,
        device=args.device,
        attacker=args.attacker,
        checkpoint=args.checkpoint,
        oracle=not args.no_oracle,
        threads=args.threads,
        numerics=numerics_of(args),
        executor=args.executor,
        progress=show_progress(args),
        log_dir=args.log_dir,
        **evaluation_settings(args),
    )
    out = args.out or default_run_folder(graph.name, args.dataset, scenario)
    manifest = run_experiment(graph, settings, out, overwrite=args.overwrite)
    print(markdown_table(manifest))
    print(f"run folder: {out} (manifest.json, results.md, splits, unlearned models)")
    return 0
