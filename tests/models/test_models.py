"""Tests of the model registry, the built-in models, representation capture and checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from causalunlearn.errors import ModelError
from causalunlearn.models import (
    MODELS,
    build_model,
    capture_representation,
    forward_with_representation,
    load_state,
    register_model,
    resolve_layer,
    resolve_layer_path,
    save_state,
)

# name, input shape, representation size
BUILT_INS = [
    ("cnn", (1, 28, 28), 256),
    ("cnn", (1, 8, 8), 256),
    ("resnet18", (3, 32, 32), 512),
    ("resnet18-224", (3, 32, 32), 512),
    ("mlp", (1, 8, 8), 64),
]


@pytest.fixture
def scratch_registry():
    """Registrations made by a test are removed afterwards."""
    with MODELS.scratch():
        yield MODELS


def _inputs(shape: tuple[int, ...], n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("name", "shape", "rep_dim"), BUILT_INS)
def test_builtin_output_and_representation_shapes(name, shape, rep_dim):
    model = build_model(name, 10, shape, seed=0)
    assert isinstance(model.representation_layer, str)
    logits, z = forward_with_representation(model, _inputs(shape))
    assert logits.shape == (2, 10)
    assert z.shape == (2, rep_dim)
    assert torch.equal(logits, model(_inputs(shape)))  # the hook does not change the output


def test_cnn_flatten_size_follows_input_shape():
    assert build_model("cnn", 10, (1, 28, 28)).fc1.in_features == 32 * 7 * 7 == 1568
    assert build_model("cnn", 10, (1, 8, 8)).fc1.in_features == 32 * 2 * 2


def test_cnn_representation_is_fc1_without_activation():
    model = build_model("cnn", 10, (1, 28, 28), seed=3)
    x = _inputs((1, 28, 28), n=4)
    logits, z = forward_with_representation(model, x, "representation")
    manual = model.fc1(torch.flatten(model.conv2(model.conv1(x)), 1))
    torch.testing.assert_close(z, manual)
    assert (z < 0).any()  # no ReLU after the representation
    # The head is fc2 then fc3 with nothing in between, as in the official code.
    torch.testing.assert_close(logits, model.fc3(model.fc2(manual)))


def test_resnet18_stems():
    cifar = build_model("resnet18", 10, (3, 32, 32))
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, nn.Identity)
    official = build_model("resnet18-224", 100, (3, 32, 32))
    assert official.conv1.kernel_size == (7, 7) and official.fc.out_features == 100


def test_resnet18_224_resizes_before_the_stem():
    model = build_model("resnet18-224", 10, (3, 32, 32), seed=0).eval()
    seen = []
    handle = model.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    try:
        with torch.no_grad():
            model(_inputs((3, 32, 32), n=1))
    finally:
        handle.remove()
    assert seen == [torch.Size([1, 3, 224, 224])]


def test_mlp_representation_is_pre_activation():
    model = build_model("mlp", 10, (1, 8, 8), seed=0)
    x = _inputs((1, 8, 8), n=8)
    _, z = forward_with_representation(model, x)
    torch.testing.assert_close(z, model.rep(torch.relu(model.fc1(x.flatten(1)))))
    assert (z < 0).any()


def test_module_path_and_alias_resolve():
    model = build_model("resnet18", 10, (3, 32, 32))
    assert resolve_layer_path(model, "representation") == "avgpool"
    assert resolve_layer(model, "layer4.1.conv2") is model.layer4[1].conv2
    with capture_representation(model, "layer4.1.conv2") as capture:
        model(_inputs((3, 32, 32)))
    assert capture.value.shape == (2, 512 * 4 * 4)  # 32 → 32 → 16 → 8 → 4


def test_hook_registered_once_and_removed():
    model = build_model("cnn", 10, (1, 8, 8), seed=0)
    x = _inputs((1, 8, 8), n=3)
    with capture_representation(model) as capture:
        assert len(model.fc1._forward_hooks) == 1
        first = capture(x)[1]
        model(x[:1])
        assert len(model.fc1._forward_hooks) == 1 and capture.calls == 2
        assert capture.value.shape == (1, 256)
    assert len(model.fc1._forward_hooks) == 0
    torch.testing.assert_close(first, forward_with_representation(model, x)[1])
    assert len(model.fc1._forward_hooks) == 0
    with pytest.raises(RuntimeError), capture_representation(model):
        raise RuntimeError("boom")
    assert len(model.fc1._forward_hooks) == 0


def test_representation_keeps_gradients():
    model = build_model("mlp", 3, (4,), seed=0)
    _, z = forward_with_representation(model, torch.randn(5, 4))
    z.sum().backward()
    assert model.rep.weight.grad is not None and model.head.weight.grad is None


def test_seeded_init_is_deterministic_and_leaves_global_rng_alone():
    before = torch.get_rng_state()
    a = build_model("resnet18", 10, (3, 32, 32), seed=7)
    b = build_model("resnet18", 10, (3, 32, 32), seed=7)
    c = build_model("resnet18", 10, (3, 32, 32), seed=8)
    assert torch.equal(torch.get_rng_state(), before)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_unknown_model_suggests_a_name():
    with pytest.raises(ModelError) as info:
        build_model("resnet81", 10, (3, 32, 32))
    assert info.value.code == "unknown-model"
    assert "resnet18" in info.value.hint


@pytest.mark.parametrize(
    ("num_classes", "input_shape", "seed", "code"),
    [
        (1, (1, 28, 28), None, "invalid-num-classes"),
        (10, (2, 1, 28, 28), None, "invalid-input-shape"),  # batch dimension given by mistake
        (10, (1, 2, 2), None, "invalid-input-shape"),  # too small for two max-pools
        (10, (1, 0, 28), None, "invalid-input-shape"),
        (10, (1, 28, 28), -1, "invalid-seed"),
    ],
)
def test_build_model_rejects_bad_arguments(num_classes, input_shape, seed, code):
    with pytest.raises(ModelError) as info:
        build_model("cnn", num_classes, input_shape, seed=seed)
    assert info.value.code == code


def test_user_registered_model(scratch_registry):
    @register_model("tiny-linear")
    class TinyLinear(nn.Module):
        representation_layer = "body.0"

        def __init__(self, num_classes, input_shape):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(input_shape[0], 5), nn.Tanh())
            self.head = nn.Linear(5, num_classes)

        def forward(self, x):
            return self.head(self.body(x))

    model = build_model("tiny-linear", 3, (4,), seed=0)
    assert isinstance(model, TinyLinear)
    logits, z = forward_with_representation(model, torch.randn(6, 4))
    assert logits.shape == (6, 3) and z.shape == (6, 5)

    with pytest.raises(ModelError) as info:
        register_model("tiny-linear")(TinyLinear)
    assert info.value.code == "duplicate-model"
    register_model("tiny-linear", overwrite=True)(lambda num_classes, shape: "not a module")
    with pytest.raises(ModelError) as info:
        build_model("tiny-linear", 3, (4,))
    assert info.value.code == "invalid-model-factory"


class NoDeclaration(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Linear(4, 6)
        self.classifier = nn.Linear(6, 2)

    def forward(self, x):
        return self.classifier(self.features(x))


def test_missing_representation_layer_errors():
    with pytest.raises(ModelError) as info:
        resolve_layer(NoDeclaration(), "representation")
    error = info.value
    assert error.code == "missing-representation-layer"
    assert "NoDeclaration" in error.message
    assert "representation_layer" in error.hint and "'features'" in error.hint

    with pytest.raises(ModelError) as info:
        forward_with_representation(
            build_model("cnn", 10, (1, 8, 8)), torch.randn(1, 1, 8, 8), "fc9"
        )
    assert info.value.code == "missing-representation-layer"
    assert "CNN" in info.value.message and "fc1" in info.value.hint

    class BadDeclaration(NoDeclaration):
        representation_layer = "feature"

    with pytest.raises(ModelError) as info:
        resolve_layer(BadDeclaration(), "representation")
    assert info.value.code == "missing-representation-layer"
    assert "did you mean 'features'" in info.value.hint
    # A module path works without any declaration.
    assert resolve_layer(NoDeclaration(), "features") is not None


def test_layer_that_does_not_run_and_tuple_outputs():
    class Unused(NoDeclaration):
        representation_layer = "spare"

        def __init__(self):
            super().__init__()
            self.spare = nn.Linear(1, 1)

    with pytest.raises(ModelError) as info:
        forward_with_representation(Unused(), torch.randn(2, 4))
    assert info.value.code == "representation-not-computed"

    class ReturnsPair(NoDeclaration):
        representation_layer = "features"

        def forward(self, x):
            z = self.features(x)
            return self.classifier(z), z

    with pytest.raises(ModelError) as info:
        forward_with_representation(ReturnsPair(), torch.randn(2, 4))
    assert info.value.code == "model-output-not-tensor"


def test_state_round_trip(tmp_path):
    source = build_model("cnn", 10, (1, 8, 8), seed=1)
    target = build_model("cnn", 10, (1, 8, 8), seed=2)
    x = _inputs((1, 8, 8), n=3)
    assert not torch.equal(source(x), target(x))
    path = save_state(source, tmp_path / "deep" / "model.pt")
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left
    assert load_state(target, path) is target
    assert torch.equal(source(x), target(x))


def test_load_uses_weights_only(tmp_path, monkeypatch):
    model = build_model("mlp", 10, (1, 8, 8), seed=0)
    path = save_state(model, tmp_path / "m.pt")
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_state(model, path)
    assert calls and calls[0].get("weights_only") is True


class _Payload:
    """Not loadable with weights_only=True."""


def test_load_refuses_pickled_objects_and_bad_files(tmp_path):
    model = build_model("mlp", 10, (1, 8, 8), seed=0)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"weights": model.state_dict(), "extra": _Payload()}, unsafe)
    with pytest.raises(ModelError) as info:
        load_state(model, unsafe)
    assert info.value.code == "unreadable-state-file"

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError) as info:
        load_state(model, garbage)
    assert info.value.code == "unreadable-state-file"

    with pytest.raises(ModelError) as info:
        load_state(model, tmp_path / "absent.pt")
    assert info.value.code == "state-file-not-found"

    other = save_state(build_model("mlp", 3, (1, 8, 8)), tmp_path / "other.pt")
    with pytest.raises(ModelError) as info:
        load_state(model, other)
    assert info.value.code == "state-mismatch"


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = build_model("mlp", 10, (1, 8, 8), seed=0)
    path = save_state(model, tmp_path / "m.pt")
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_state(build_model("mlp", 10, (1, 8, 8), seed=1), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


# The constructor contract of a registered model (issue 12 §5) -----------------------------------
class _NoArguments(nn.Module):
    def __init__(self):
        super().__init__()


class _KeywordOnly(nn.Module):
    def __init__(self, *, num_classes, input_shape):
        super().__init__()


class _ExtraRequired(nn.Module):
    def __init__(self, hidden, num_classes, input_shape):
        super().__init__()


class _Raises(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        raise TypeError("unsupported operand in my own layer code")


class _WithDefaults(nn.Module):
    representation_layer = "body"

    def __init__(self, num_classes, input_shape, hidden=8):
        super().__init__()
        self.body = nn.Linear(int(torch.tensor(input_shape).prod()), hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.body(x.flatten(1)))


@pytest.mark.parametrize("cls", [_NoArguments, _KeywordOnly, _ExtraRequired], ids=str)
def test_a_model_class_off_the_contract_is_a_coded_error(scratch_registry, cls):
    register_model("off-contract")(cls)
    with pytest.raises(ModelError) as info:
        build_model("off-contract", 10, (1, 8, 8), seed=0)
    assert info.value.code == "model-contract"
    assert "(num_classes, input_shape)" in str(info.value)
    assert cls.__name__ in str(info.value)  # names the class and its signature


def test_an_error_inside_a_model_is_coded_and_keeps_its_cause(scratch_registry):
    register_model("raises")(_Raises)
    with pytest.raises(ModelError) as info:
        build_model("raises", 10, (1, 8, 8))
    assert info.value.code == "model-build-failed"
    assert "unsupported operand in my own layer code" in str(info.value)
    assert isinstance(info.value.__cause__, TypeError)


def test_a_model_on_the_contract_builds(scratch_registry):
    register_model("with-defaults")(_WithDefaults)
    register_model("by-function")(
        lambda num_classes, input_shape: _WithDefaults(num_classes, (64,))
    )
    for name in ("with-defaults", "by-function"):
        model = build_model(name, 10, (1, 8, 8), seed=0)
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ModelError) as info:  # the built-ins' own checks still come through
        build_model("cnn", 10, (8,))
    assert info.value.code == "invalid-input-shape"
