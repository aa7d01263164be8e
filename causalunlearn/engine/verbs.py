"""The engine's verbs: train a model from scratch, unlearn with a graph.

``load_graph → compile_objective → unlearn → evaluate``: both verbs compile a graph (training
from scratch is a one-edge graph, :mod:`causalunlearn.recipes`) and run it with the one loop,
:func:`~causalunlearn.engine.loop.run_schedule`. :mod:`causalunlearn.studies` runs them over
seeds and writes folders; :func:`causalunlearn.metrics.evaluate.evaluate` scores the result.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from causalunlearn.compile.materialise import materialise
from causalunlearn.compile.objective import compile_objective
from causalunlearn.data import TensorData
from causalunlearn.data.augment import make_augment
from causalunlearn.data.splits import Split
from causalunlearn.data.views import view_base
from causalunlearn.device import pick_device
from causalunlearn.engine.callbacks import CallbackLike
from causalunlearn.engine.loop import TrainLog, run_schedule
from causalunlearn.engine.plan import check_executor
from causalunlearn.engine.resume import EpochCheckpoint
from causalunlearn.engine.step import apply_run_options
from causalunlearn.graph import spec as S
from causalunlearn.models.zoo import build_model
from causalunlearn.recipes import Recipe

#: Model used for each built-in dataset when none is named.
DEFAULT_MODELS = {
    "digits": "mlp",
    "mnist": "cnn",
    "fashion-mnist": "cnn",
    "cifar10": "resnet18",
    "cifar10-jpeg": "resnet18",
    "cifar100": "resnet18",
}


def model_name_for(data: TensorData, model: str | None) -> str:
    """``model`` if given, else the default model of ``data``'s dataset (:data:`DEFAULT_MODELS`)."""
    if model:
        return model
    name = view_base(data.name)  # a validation view uses its dataset's model
    base = name.split("-jpeg")[0] if name.startswith("cifar") else name
    return DEFAULT_MODELS.get(name, DEFAULT_MODELS.get(base, "mlp"))


def training_graph(split: str, recipe: Recipe) -> S.Graph:
    """The graph that trains a model from scratch on ``split`` (``train`` or ``retain``)."""
    return S.Graph(
        name=f"train-{split}",
        summary=f"cross-entropy on the {split} data ({recipe.key()})",
        nodes=(S.Node("data", "data", split=split), S.Node("Y", "output")),
        mechanisms=(("data", "Y"),),
        interventions=(
            S.Intervention(
                "fit",
                stage="train",
                data="data",
                target="Y",
                reference=S.Reference("labels", stream="data"),
                divergence=S.Divergence("cross_entropy", softmax_over="classes"),
            ),
        ),
        stages=(
            S.Stage(
                "train",
                recipe.optimizer,
                recipe.lr,
                weight_decay=recipe.weight_decay,
                momentum=recipe.momentum,
            ),
        ),
        schedule=S.Schedule(
            order=("train",), epochs=recipe.epochs, batch_size=recipe.batch_size, zip=("data",)
        ),
    )


def train_from_scratch(
    data: TensorData,
    split: Split,
    on: str,
    *,
    model: str,
    recipe: Recipe,
    seed: int,
    device: torch.device,
    progress: bool = True,
    executor: str = "fast",
    checkpoint: EpochCheckpoint | None = None,
) -> tuple[nn.Module, TrainLog]:
    """Train a model from scratch with ``recipe`` on ``on`` = ``train`` (original) or ``retain``.

    The same loop as unlearning runs it (the recipe is a one-edge graph, plus the recipe's
    learning-rate schedule and augmentation); ``executor`` is
    :func:`~causalunlearn.engine.loop.run_schedule`'s (``fast`` or ``reference``). With a
    ``checkpoint`` the loop saves its state after every epoch and a later call with the same
    checkpoint resumes from it, ending with the weights an uninterrupted run ends with
    (:mod:`causalunlearn.engine.resume`); deleting it afterwards is the caller's job.
    """
    net = build_model(model, data.num_classes, data.input_shape, seed=seed).to(device)
    graph = training_graph(on, recipe)
    objective = compile_objective(graph, net, seed=seed)
    apply_run_options(objective, device)  # the run's memory format (CpuNumerics.channels_last)
    streams = materialise(graph, data, split, seed=seed, device=device)
    augment = make_augment(recipe.augment, data, seed) if recipe.augment else None
    label = f"{'original' if on == 'train' else 'oracle'} seed {seed}"
    log = run_schedule(
        objective,
        streams,
        seed=seed,
        progress=progress,
        log_every=100,
        description=label,
        executor=executor,
        lr_schedule=recipe.lr_schedule,
        augment=augment,
        checkpoint=checkpoint,
    )
    net.eval()
    return net, log


@dataclass
class Unlearned:
    """Result of :func:`unlearn`.

    Attributes:
        model: The unlearned model (eval mode).
        log: Steps, per-term losses and loop time.
        seconds: ``materialise`` (counterfactual construction), ``loop`` and ``total`` (the
            official unlearning time: counterfactuals + unlearning loop).
    """

    model: nn.Module
    log: TrainLog
    seconds: dict[str, float]


#: Rows per forward pass when measuring saliency (bounds memory; the result is the same).
SALIENCY_CHUNK = 512


def saliency_masks(
    objective, streams, graph: S.Graph
) -> dict[str, dict[nn.Parameter, torch.Tensor]]:
    """Gradient-saliency masks for stages with ``mask`` (SalUn), by stage id.

    The batch-mean cross-entropy of the model on the mask's data stream (its labels) is
    differentiated once at the current weights (in chunks of :data:`SALIENCY_CHUNK` rows,
    weighted to the mean over all rows); the ``keep`` fraction of the stage's weights with the
    largest gradient magnitude (one global threshold over all of them, as SalUn's
    ``generate_mask.py``) get mask 1, the rest 0. ``|∇ CE|`` equals SalUn's ``|∇(−CE)|``.
    :func:`~causalunlearn.engine.loop.run_schedule` then changes only the mask-1 weights in that
    stage.
    """
    masks: dict[str, dict[nn.Parameter, torch.Tensor]] = {}
    for stage in graph.stages:
        if stage.mask is None:
            continue
        x, y = streams.of(stage.mask.data)
        params = objective.stage_parameters(stage)
        grads: list[torch.Tensor | None] = [None] * len(params)
        for start in range(0, x.shape[0], SALIENCY_CHUNK):
            xc, yc = x[start : start + SALIENCY_CHUNK], y[start : start + SALIENCY_CHUNK]
            loss = nn.functional.cross_entropy(objective.model(xc), yc, reduction="sum")
            chunk = torch.autograd.grad(loss / x.shape[0], params, allow_unused=True)
            grads = [
                g if a is None else (a if g is None else a + g)
                for a, g in zip(grads, chunk, strict=True)
            ]
        flat = torch.cat([g.abs().flatten() for g in grads if g is not None])
        k = max(1, int(round(stage.mask.keep * flat.numel())))
        threshold = flat.kthvalue(flat.numel() - k + 1).values
        masks[stage.id] = {
            p: (g.abs() >= threshold).to(p.dtype) if g is not None else torch.zeros_like(p)
            for p, g in zip(params, grads, strict=True)
        }
    return masks


def unlearn(
    graph: S.Graph,
    model: nn.Module,
    data: TensorData,
    split: Split,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    executor: str = "fast",
    compile: bool = False,
    amp: str | None = None,
    cuda_graphs: bool = False,
    callbacks: Sequence[CallbackLike] = (),
) -> Unlearned:
    """Unlearn ``split.forget`` from a trained ``model`` with the objective ``graph`` describes.

    The model is copied (the argument is left as it is); the copy is compiled with a frozen
    original, the graph's data nodes are materialised once (seeded), and the schedule runs.
    ``compile``, ``amp`` and ``cuda_graphs`` are meant for GPUs (docs/performance.md); on the
    CPU, ``compile`` and ``amp="bf16"`` work and ``cuda_graphs`` stops with a RunError.

    Args:
        graph: A validated graph (e.g. ``load_graph("graphs/camu.yaml", preset="mnist-class")``).
        model: The trained original model.
        data: The dataset (tensors; moved to ``device``).
        split: Forget / retain / retain-sample indices.
        seed: Seed of the pairing, the do-operations, the shuffling and random references.
        device: The run's device (default: CUDA when present, else CPU).
        progress: Show a progress bar.
        executor: ``fast`` (default) or ``reference`` (the faithful oracle); see
            :mod:`causalunlearn.engine.step`.
        compile: Run the model's forwards through ``torch.compile``.
        amp: ``None`` (fp32) or ``"bf16"`` (autocast).
        cuda_graphs: Compile with CUDA graphs (``mode="reduce-overhead"``; CUDA only).
        callbacks: Trackers of the loop's term values and epochs
            (:mod:`causalunlearn.engine.callbacks`); their ``on_end`` is yours to call with
            the metrics you measure afterwards.

    Raises:
        RunError: ``unknown-executor``, ``unknown-amp``, ``cuda-graphs-need-cuda``,
            ``compile-failed``, ``non-finite-loss``.
    """
    device = pick_device(device)
    check_executor(executor)
    start = time.perf_counter()
    working = copy.deepcopy(model).to(device)
    objective = compile_objective(graph, working, seed=seed)
    apply_run_options(objective, device, compile=compile, cuda_graphs=cuda_graphs)
    t0 = time.perf_counter()
    streams = materialise(
        graph, data.to(device), split, seed=seed, device=device, original=objective.original
    )
    masks = saliency_masks(objective, streams, graph) if any(s.mask for s in graph.stages) else None
    t1 = time.perf_counter()
    # Unlearning runs are short: log every term at every step.
    log = run_schedule(
        objective,
        streams,
        seed=seed,
        progress=progress,
        masks=masks,
        log_every=1,
        description=graph.name,
        executor=executor,
        amp=amp,
        callbacks=callbacks,
    )
    working.eval()
    seconds = {"materialise": t1 - t0, "loop": log.seconds, "total": time.perf_counter() - start}
    return Unlearned(working, log, seconds)
