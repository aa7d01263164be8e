"""CPU cost of training a CIFAR-10 model with a recipe: seconds per step, per epoch, per training.

Not a test. Trains ``--steps`` steps of the recipe (``train_from_scratch``: the one loop, with
the recipe's augmentation and schedule) on ``steps × batch`` training rows of CIFAR-10 (JPEG),
drawn at random, and extrapolates: an epoch is ``ceil(50 000 / batch)`` steps; a full training
of the original plus its class-0 oracle (45 000 rows) is ``epochs × (1 + 0.9)`` epochs. The
figures are estimates from a few hundred steps on whatever else the machine is doing: the script
records the load average before and after. ``--compare resnet18`` also times that model (a
fifth of the steps).

Usage::

    CAUSALUNLEARN_DATA_ROOT=../shared/data python benchmarks/bench_cifar_epoch.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from causalunlearn.data import load_dataset, make_split
from causalunlearn.data.augment import make_augment
from causalunlearn.engine.verbs import train_from_scratch
from causalunlearn.recipes import recipe_named

ROOT = Path(__file__).resolve().parents[1]


def time_steps(data, model: str, recipe, steps: int) -> dict:
    """Train ``steps`` steps (one epoch of ``steps × batch`` rows); seconds per step."""
    rows = steps * recipe.batch_size
    # A seeded random subset: the image-folder rendition stores the rows sorted by class.
    pick = torch.randperm(data.train_x.shape[0], generator=torch.Generator().manual_seed(0))[:rows]
    sub = replace(data, train_x=data.train_x[pick], train_y=data.train_y[pick])
    split = make_split(sub.train_y, "class:0", 0, sub.num_classes)
    _, log = train_from_scratch(
        sub,
        split,
        "train",
        model=model,
        recipe=recipe.with_epochs(1),
        seed=0,
        device=torch.device("cpu"),
        progress=False,
    )
    return {
        "model": model,
        "steps": log.steps["train"],
        "loop_s": log.seconds,
        "step_s": log.seconds / log.steps["train"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--recipe", default="cifar")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compare", help="also time this model (a fifth of the steps)")
    parser.add_argument("--out", help="JSON output (default: print only)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    t = time.perf_counter()
    data = load_dataset("cifar10", data_root=os.environ.get("CAUSALUNLEARN_DATA_ROOT"))
    load_s = time.perf_counter() - t
    recipe = recipe_named(args.recipe)
    report: dict = {
        "command": "python benchmarks/bench_cifar_epoch.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "dataset": data.name,
        "recipe": recipe.key(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_s": load_s,
        "loadavg_before": load_before,
    }
    time_steps(data, args.model, recipe, 5)  # warm-up
    run = time_steps(data, args.model, recipe, args.steps)
    steps_per_epoch = math.ceil(data.train_x.shape[0] / recipe.batch_size)
    run["epoch_s_estimate"] = run["step_s"] * steps_per_epoch
    run["original_plus_oracle_s_estimate"] = run["epoch_s_estimate"] * recipe.epochs * 1.9
    augment = make_augment("cifar", data, 0)
    batch = data.train_x[: recipe.batch_size]
    t = time.perf_counter()
    for _ in range(50):
        augment(batch)
    run["augment_s_per_step"] = (time.perf_counter() - t) / 50
    report["run"] = run
    if args.compare:
        report["compare"] = time_steps(data, args.compare, recipe, max(5, args.steps // 5))
        report["compare"]["epoch_s_estimate"] = report["compare"]["step_s"] * steps_per_epoch
    report["loadavg_after"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return report


if __name__ == "__main__":
    main()
