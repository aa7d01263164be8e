"""Per-epoch checkpoints of original/oracle training, and resuming after an interruption.

The property: a training stopped after epoch k and started again ends with exactly the weights
(and the log) of a training that was never stopped. Checked on digits with the recipes that carry
the most state: SGD momentum, a cosine schedule, the CIFAR augmentation and batch-norm
statistics (ResNet-20), and Adam's moments (MLP).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from causalunlearn.data import load_dataset, make_split
from causalunlearn.engine import resume
from causalunlearn.engine.loop import lr_factor
from causalunlearn.engine.resume import CHECKPOINT_FORMAT, EpochCheckpoint
from causalunlearn.engine.verbs import train_from_scratch
from causalunlearn.errors import RunError
from causalunlearn.recipes import RECIPES, Recipe, recipe_named
from causalunlearn.studies.model_cache import ModelCache

CPU = torch.device("cpu")
SGD_COSINE_AUGMENT = Recipe(
    epochs=3,
    batch_size=64,
    lr=0.05,
    weight_decay=5e-4,
    optimizer="sgd",
    momentum=0.9,
    lr_schedule="cosine",
    augment="cifar",
)
CASES = [("resnet20", SGD_COSINE_AUGMENT), ("mlp", Recipe(epochs=3, batch_size=64))]


class Interrupted(Exception):
    """Stands for a kill: raised where the process would have died."""


class DiesAfter(EpochCheckpoint):
    """Saves the first ``k`` epochs' states, then dies while saving the next one: the file keeps
    epoch k, and epoch k+1 has been computed and is lost (a kill anywhere in epoch k+1)."""

    def __init__(self, path: Path, key: str, k: int) -> None:
        super().__init__(path, key)
        object.__setattr__(self, "k", k)

    def save(self, state):
        if state["epochs_done"] > self.k:
            raise Interrupted
        super().save(state)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    # 400 rows keep ResNet-20's epochs short; the split is only needed for its retain set.
    from dataclasses import replace

    small = replace(data, train_x=data.train_x[:400], train_y=data.train_y[:400])
    return small, make_split(small.train_y, "class:0", 0, small.num_classes)


def _train(data, split, model, recipe, checkpoint=None):
    return train_from_scratch(
        data,
        split,
        "train",
        model=model,
        recipe=recipe,
        seed=3,
        device=CPU,
        progress=False,
        checkpoint=checkpoint,
    )


def _assert_same_weights(a, b):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


@pytest.mark.parametrize(("model", "recipe"), CASES, ids=[c[0] for c in CASES])
def test_resumed_training_ends_with_the_uninterrupted_weights(digits, tmp_path, model, recipe):
    data, split = digits
    whole, whole_log = _train(data, split, model, recipe)
    path = tmp_path / "entry.partial.pt"
    with pytest.raises(Interrupted):
        _train(data, split, model, recipe, DiesAfter(path, "run", k=1))
    state = torch.load(path, weights_only=True)
    assert state["epochs_done"] == 1 and state["format"] == CHECKPOINT_FORMAT
    resumed, log = _train(data, split, model, recipe, EpochCheckpoint(path, "run"))
    _assert_same_weights(whole, resumed)  # batch-norm statistics included (ResNet-20)
    assert log.steps == whole_log.steps
    assert log.losses == whole_log.losses  # the log is the whole run's, rows and values


def test_the_checkpoint_is_not_written_after_the_last_epoch(digits, tmp_path):
    data, split = digits
    path = tmp_path / "p.pt"
    _train(data, split, "mlp", Recipe(epochs=2, batch_size=64), EpochCheckpoint(path, "k"))
    assert torch.load(path, weights_only=True)["epochs_done"] == 1  # never 2: the model is saved


def test_a_checkpoint_of_another_run_or_an_unreadable_one_is_not_resumed(digits, tmp_path, caplog):
    data, split = digits
    recipe = Recipe(epochs=2, batch_size=64)
    whole, _ = _train(data, split, "mlp", recipe)
    path = tmp_path / "p.pt"
    with pytest.raises(Interrupted):
        _train(
            data,
            split,
            "mlp",
            Recipe(epochs=3, batch_size=64, lr=5e-2),
            DiesAfter(path, "other", k=1),
        )
    bad = [
        ("belongs to another run", None),
        ("unreadable", b"not a checkpoint"),
        # A pickled Python object (here a class instance) is refused by weights_only=True.
        ("unreadable", "pickle"),
    ]
    for message, content in bad:
        if content == "pickle":
            torch.save({"format": CHECKPOINT_FORMAT, "key": "run", "x": Interrupted()}, path)
        elif content is not None:
            path.write_bytes(content)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="causalunlearn"):
            net, _ = _train(data, split, "mlp", recipe, EpochCheckpoint(path, "run"))
        assert message in caplog.text
        _assert_same_weights(whole, net)  # started over, so the uninterrupted weights


def test_the_model_cache_resumes_and_then_deletes_the_partial_file(digits, tmp_path, monkeypatch):
    data, split = digits
    recipe = Recipe(epochs=3, batch_size=64)
    cache = ModelCache(tmp_path / "models")
    path = cache.path(data, split, "oracle", model="mlp", recipe=recipe, seed=3)
    partial = ModelCache.partial_path(path)
    assert partial.name == path.stem + ".partial.pt"
    saves = []
    real_save = resume.EpochCheckpoint.save

    def dies_on_second(self, state):
        saves.append(state["epochs_done"])
        if len(saves) == 2:
            raise Interrupted
        real_save(self, state)

    monkeypatch.setattr(resume.EpochCheckpoint, "save", dies_on_second)
    with pytest.raises(Interrupted):
        cache.get(
            data, split, "oracle", model="mlp", recipe=recipe, seed=3, device=CPU, progress=False
        )
    monkeypatch.setattr(resume.EpochCheckpoint, "save", real_save)
    assert partial.is_file() and not path.exists()
    net, info = cache.get(
        data, split, "oracle", model="mlp", recipe=recipe, seed=3, device=CPU, progress=False
    )
    assert not info["cached"] and path.is_file() and not partial.exists()
    fresh, _ = train_from_scratch(
        data, split, "retain", model="mlp", recipe=recipe, seed=3, device=CPU, progress=False
    )
    _assert_same_weights(fresh, net)


def test_cosine_factors_by_hand():
    assert lr_factor("constant", 7, 10) == 1.0
    assert lr_factor("cosine", 0, 4) == 1.0
    assert lr_factor("cosine", 2, 4) == pytest.approx(0.5)  # cos(π/2) = 0
    assert lr_factor("cosine", 1, 4) == pytest.approx((1 + 2**-0.5) / 2)
    with pytest.raises(RunError) as err:
        lr_factor("step", 0, 4)
    assert err.value.code == "unknown-lr-schedule"


def test_the_cosine_schedule_sets_each_epochs_rate(digits, tmp_path):
    """Epoch e's SGD steps run at lr·(1 + cos(π e/E))/2: the optimiser state saved after epoch
    e holds that rate."""
    data, split = digits
    recipe = Recipe(epochs=3, batch_size=64, lr=0.1, optimizer="sgd", lr_schedule="cosine")
    rates = []

    class Spy(EpochCheckpoint):
        def save(self, state):
            rates.append(state["optimizers"]["train"]["param_groups"][0]["lr"])

    _train(data, split, "mlp", recipe, Spy(tmp_path / "x.pt"))
    assert rates == pytest.approx([0.1, 0.1 * (1 + 0.5) / 2])  # epochs 0 and 1 (cos π/3 = ½)


def test_augmenting_a_graph_with_frozen_models_is_refused(digits_class0):
    from causalunlearn.compile.materialise import materialise
    from causalunlearn.compile.objective import compile_objective
    from causalunlearn.data.augment import make_augment
    from causalunlearn.engine.loop import run_schedule
    from causalunlearn.graph import load_graph

    data, split, original = digits_class0
    graph = load_graph(Path(__file__).parents[2] / "graphs" / "camu.yaml", preset="digits-class")
    objective = compile_objective(graph, original, seed=0)
    streams = materialise(graph, data, split, seed=0, device=CPU, original=objective.original)
    with pytest.raises(RunError) as err:
        run_schedule(objective, streams, progress=False, augment=make_augment("cifar", data, 0))
    assert err.value.code == "augment-with-frozen-model"


def test_recipe_keys_and_fingerprints_keep_the_official_recipe_as_it_was():
    official = Recipe()
    assert official.key() == "adam-lr0.001-wd0.0001-e20-b32"  # the format before issue 17
    assert official.document() == {
        "epochs": 20,
        "batch_size": 32,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "optimizer": "adam",
    }
    cifar = recipe_named("cifar")
    assert cifar.key() == "sgd-lr0.1-wd0.0005-e20-b128-m0.9-cosine-augcifar"
    assert cifar.document()["augment"] == "cifar" and cifar.with_epochs(5).epochs == 5
    assert recipe_named("camu") == official and set(RECIPES) == {"camu", "cifar"}


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"momentum": 0.9}, "momentum is SGD's"),
        ({"optimizer": "sgd", "momentum": 1.0}, "momentum must be in [0, 1)"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of"),
        ({"augment": "mixup"}, "augment must be None or one of"),
    ],
)
def test_bad_recipes_are_refused(kwargs, words):
    with pytest.raises(RunError) as err:
        Recipe(**kwargs)
    assert err.value.code == "bad-recipe" and words in err.value.message


def test_unknown_recipe_names_get_a_hint_and_the_cli_takes_recipes():
    from causalunlearn.cli.app import build_parser
    from causalunlearn.cli.run import recipe_of

    with pytest.raises(RunError) as err:
        recipe_named("cifra")
    assert err.value.code == "unknown-recipe" and "did you mean 'cifar'" in err.value.hint
    args = build_parser().parse_args(["run", "camu", "--recipe", "cifar", "--epochs-original", "2"])
    assert recipe_of(args) == recipe_named("cifar").with_epochs(2)
    assert recipe_of(build_parser().parse_args(["run", "camu"])) == Recipe()
