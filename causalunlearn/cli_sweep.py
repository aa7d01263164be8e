"""``causalunlearn compare`` and ``causalunlearn ablate``: sweeps from the command line.

A thin shell over :class:`causalunlearn.studies.sweep.Sweep`. A sweep file (YAML) says the same
as the flags::

    format: causalunlearn.sweep/v1
    methods: [graphs/camu.yaml, graphs/baselines/finetune.yaml, graphs/camu.yaml@mnist-class]
    ablate: graphs/camu.yaml        # optional: adds one ablation per intervention edge
    datasets: [mnist, fashion-mnist]
    scenarios: ["class:0", "random:0.1"]
    seeds: [0, 1, 2]
    relearn: true                   # optional: relearn time
    curves: true                    # optional: relearning curves
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from causalunlearn.cli_run import _seeds, add_setup_arguments, recipe_of, show_progress
from causalunlearn.errors import RunError, did_you_mean

SWEEP_FILE_KEYS = (
    "format",
    "methods",
    "ablate",
    "datasets",
    "scenarios",
    "seeds",
    "relearn",
    "curves",
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
    parser.add_argument("--seeds", type=_seeds, help="comma-separated seeds (default 0,1,2)")
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
    add_setup_arguments(parser)


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


def read_sweep_file(path: str) -> dict[str, Any]:
    """A sweep file's fields, checked (safe YAML; unknown fields are errors)."""
    from causalunlearn.graph.yamlio import load_yaml_text, read_text_file

    file = Path(path)
    if not file.is_file():
        raise RunError("missing-sweep-file", f"no sweep file at {path}", "check the path")
    data = load_yaml_text(read_text_file(file, "sweep file"), source=path)
    if not isinstance(data, dict):
        raise RunError(
            "bad-sweep-file", f"{path} is not a mapping", "see `causalunlearn compare --help`"
        )
    for key in data:
        if key not in SWEEP_FILE_KEYS:
            raise RunError(
                "bad-sweep-file",
                f"{path}: unknown field '{key}'; {did_you_mean(key, SWEEP_FILE_KEYS)}",
                f"fields: {', '.join(SWEEP_FILE_KEYS)}",
            )
    if data.get("format", "causalunlearn.sweep/v1") != "causalunlearn.sweep/v1":
        raise RunError(
            "bad-sweep-file", f"{path}: format must be causalunlearn.sweep/v1", "fix the format"
        )
    for key in ("methods", "datasets", "scenarios", "seeds"):
        if key in data and not isinstance(data[key], list):
            raise RunError(
                "bad-sweep-file", f"{path}: '{key}' must be a list", f"e.g. {key}: [...]"
            )
    return data


def sweep_settings(args: argparse.Namespace, seeds, relearn: bool = False, curves: bool = False):
    """:class:`~causalunlearn.studies.settings.StudySettings` from the setup arguments."""
    from causalunlearn.studies.settings import StudySettings

    return StudySettings(
        seeds=tuple(seeds),
        model=args.model,
        recipe=recipe_of(args),
        attacker=args.attacker,
        relearn=relearn,
        curves=curves,
        data_root=args.data_root,
        cache_dir=args.cache_dir,
        device=args.device,
        threads=args.threads,
        progress=show_progress(args),
        executor=args.executor,
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
    )
    total = len(sweep.cells())
    print(
        f"sweep: {len(entries)} method(s) × {len(datasets)} dataset(s) × {len(scenarios)}"
        f" scenario(s) × {len(settings.seeds)} seed(s) = {total} runs → {out}",
        file=sys.stderr,
    )
    if args.summary_only:
        sweep.summarise()
    else:
        sweep.run()
    print((Path(out) / "summary.md").read_text())
    print(f"sweep folder: {out} (summary.md, summary.json, runs/, plots/)")
    return 0


def compare_command(args: argparse.Namespace) -> int:
    """Handler of ``causalunlearn compare``."""
    from causalunlearn.graph import load_graph
    from causalunlearn.studies.entries import ablation_entries, load_entry

    file = read_sweep_file(args.sweep) if args.sweep else {}
    specs = list(file.get("methods", [])) + list(args.methods)
    entries = [load_entry(str(spec)) for spec in specs]
    if file.get("ablate"):
        graph = load_graph(file["ablate"])
        entries += [
            e
            for e in ablation_entries(graph, source=file["ablate"])
            if e.label not in {x.label for x in entries}
        ]
    if not entries:
        raise RunError(
            "no-methods",
            "no graph or method file given",
            "e.g. causalunlearn compare graphs/camu.yaml graphs/baselines/finetune.yaml",
        )
    datasets = args.dataset or file.get("datasets") or ["digits"]
    scenarios = args.scenario or [str(s) for s in file.get("scenarios", [])] or ["class:0"]
    seeds = args.seeds or file.get("seeds") or [0, 1, 2]
    settings = sweep_settings(
        args,
        seeds,
        args.relearn or bool(file.get("relearn")),
        args.curves or bool(file.get("curves")),
    )
    return _run(entries, datasets, scenarios, settings, args.out or "runs/compare", args)


def ablate_command(args: argparse.Namespace) -> int:
    """Handler of ``causalunlearn ablate``: the graph and one ablation per intervention edge."""
    from causalunlearn.graph import load_graph
    from causalunlearn.studies.entries import ablation_entries

    graph = load_graph(args.graph)
    entries = ablation_entries(graph, source=args.graph, preset=args.preset or "auto")
    settings = sweep_settings(args, args.seeds or [0, 1, 2], args.relearn, args.curves)
    out = args.out or f"runs/ablate-{graph.name}"
    return _run(
        entries, args.dataset or ["digits"], args.scenario or ["class:0"], settings, out, args
    )
