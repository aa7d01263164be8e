"""Shared test settings."""

import pytest
import torch

# The tests use tiny models: one intra-op thread is faster, and immune to oversubscription when
# other processes share the CPU.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_class0(tmp_path_factory):
    """Digits with class 0 to forget, and an MLP trained on it for 5 epochs (cached per session)."""
    from causalunlearn.data import load_dataset, make_split
    from causalunlearn.recipes import Recipe
    from causalunlearn.studies.model_cache import ModelCache

    data = load_dataset("digits")
    split = make_split(data.train_y, "class:0", 0, data.num_classes)
    original, _ = ModelCache(tmp_path_factory.mktemp("models")).get(
        data,
        split,
        "original",
        model="mlp",
        recipe=Recipe(epochs=5),
        seed=0,
        device=torch.device("cpu"),
        progress=False,
    )
    return data, split, original
