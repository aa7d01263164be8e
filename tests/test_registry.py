"""The one registry type, its one duplicate policy, and the graph layer's vocabulary."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from causalunlearn.errors import CausalUnlearnError, DataError, ModelError
from causalunlearn.graph import spec as S
from causalunlearn.graph import vocab
from causalunlearn.registry import Implementations, Registry

ROOT = Path(__file__).resolve().parents[1]
CAMU = ROOT / "graphs" / "camu.yaml"


# The type ----------------------------------------------------------------------------------------
def test_register_get_names_and_contains():
    shapes: Registry[int] = Registry("shape")
    assert shapes.register("square", 4) == 4

    @shapes.register("triangle")
    def triangle():
        return 3

    shapes.register("hexagon", 6)
    assert shapes.get("square") == 4 and shapes["hexagon"] == 6
    assert shapes.get("triangle") is triangle  # the decorator returns its argument
    assert shapes.names() == ("square", "triangle", "hexagon")  # registration order
    assert list(shapes) == list(shapes.names()) and len(shapes) == 3
    assert "square" in shapes and "circle" not in shapes and ["square"] not in shapes
    assert shapes.get("circle", None) is None


def test_unknown_name_has_its_code_and_a_did_you_mean_hint():
    shapes: Registry[int] = Registry("shape", hint="register one with SHAPES.register")
    shapes.register("square", 4)
    shapes.register("triangle", 3)
    with pytest.raises(CausalUnlearnError) as err:
        shapes.get("sqare")
    assert err.value.code == "unknown-shape"
    assert err.value.message == "no shape named 'sqare'"
    assert err.value.hint == "did you mean 'square'? register one with SHAPES.register"
    with pytest.raises(CausalUnlearnError) as err:
        shapes.get("zzzzzz")
    assert "expected one of: square, triangle" in err.value.hint


def test_a_taken_name_is_refused_unless_overwrite_even_for_the_same_value():
    shapes: Registry[object] = Registry("shape", error=ModelError)
    first = object()
    shapes.register("square", first)
    for again in (first, object()):
        with pytest.raises(ModelError) as err:
            shapes.register("square", again)
        assert err.value.code == "duplicate-shape" and "overwrite=True" in err.value.hint
    with pytest.raises(ModelError):  # the decorator refuses at its own line, before the body

        @shapes.register("square")
        def square():
            raise AssertionError("not reached")

    second = object()
    assert shapes.register("square", second, overwrite=True) is second
    assert shapes.get("square") is second and shapes.names() == ("square",)


@pytest.mark.parametrize("bad", ["", "  ", None, 3])
def test_a_name_is_a_non_empty_string(bad):
    with pytest.raises(CausalUnlearnError) as err:
        Registry("shape").register(bad, 1)
    assert err.value.code == "invalid-shape-name"


def test_key_check_lazy_pop_and_scratch():
    shapes: Registry[int] = Registry(
        "shape", key=str.lower, check=lambda name, v: None if v > 0 else 1 / 0
    )
    shapes.register("Square", 4)
    assert shapes.get("SQUARE") == 4 and shapes.names() == ("square",)
    with pytest.raises(ZeroDivisionError):
        shapes.register("void", 0)
    assert "void" not in shapes
    with shapes.scratch():
        shapes.register("circle", 1)
        shapes.pop("square")
        assert shapes.names() == ("circle",)
    assert shapes.names() == ("square",)
    assert shapes.pop("nope", None) is None
    with pytest.raises(CausalUnlearnError) as err:
        shapes.pop("nope")
    assert err.value.code == "unknown-shape"

    lazy: Registry[object] = Registry("method", lazy={"ssd": "causalunlearn.methods.ssd"})
    assert "ssd" in lazy and lazy.names() == ("ssd",)
    with pytest.raises(CausalUnlearnError) as err:  # the module registers elsewhere, not here
        lazy.get("ssd")
    assert err.value.code == "unknown-method"


def test_implementations_declare_new_names_in_their_vocabulary():
    names: Registry[str] = Registry("op")
    names.register("builtin", "declared")
    impls: Implementations[object, str] = Implementations(
        "op", names, lambda name, fn: f"declared by {fn.__name__}"
    )
    impls.register("builtin", len)  # a declared name: implemented, declaration kept
    assert names.get("builtin") == "declared"
    impls.register("mine", abs)  # a new name: declared too
    assert names.names() == ("builtin", "mine") and names.get("mine") == "declared by abs"
    with pytest.raises(CausalUnlearnError) as err:
        impls.register("builtin", max)
    assert err.value.code == "duplicate-op"
    with pytest.raises(CausalUnlearnError) as err:  # a different declaration of a taken name
        Implementations("op", names, lambda n, f: "").register("builtin", min, declaration="x")
    assert err.value.code == "duplicate-op" and names.get("builtin") == "declared"
    assert impls.pop("mine") is abs and "mine" not in names  # it takes back what it declared
    impls.pop("builtin")
    assert "builtin" in names  # ... and only that
    with impls.scratch():
        impls.register("temporary", abs)
        assert "temporary" in names
    assert "temporary" not in names and "temporary" not in impls


# The registries of the package -------------------------------------------------------------------
def _registries():
    from causalunlearn.compile.divergences import register_divergence
    from causalunlearn.compile.materialise import register_do_op
    from causalunlearn.compile.references import register_reference
    from causalunlearn.data import register_dataset
    from causalunlearn.methods.registry import register_method
    from causalunlearn.metrics.mia import register_attacker
    from causalunlearn.models import register_model

    return [
        (register_dataset, "digits", DataError, "duplicate-dataset"),
        (register_model, "cnn", ModelError, "duplicate-model"),
        (register_divergence, "kl", CausalUnlearnError, "duplicate-divergence"),
        (register_reference, "labels", CausalUnlearnError, "duplicate-reference"),
        (register_do_op, "relabel", CausalUnlearnError, "duplicate-op"),
        (register_method, "ssd", CausalUnlearnError, "duplicate-method"),  # a lazy built-in
        (register_attacker, "gbdt", CausalUnlearnError, "duplicate-attacker"),
    ]


@pytest.mark.parametrize("case", range(7))
def test_every_registry_refuses_a_taken_name_the_same_way(case):
    register, name, error, code = _registries()[case]
    with pytest.raises(error) as err:
        register(name)(lambda *a, **k: None)
    assert err.value.code == code and "overwrite=True" in err.value.hint


def test_the_vocabulary_knows_the_built_ins_without_torch():
    code = textwrap.dedent(
        """
        import json, sys
        from causalunlearn.graph import vocab, spec
        kinds = ("DIVERGENCES", "REFERENCES", "DO_OPS")
        out = {n: list(getattr(vocab, n).names()) for n in kinds}
        out["torch"] = "torch" in sys.modules
        out["same"] = spec.DIVERGENCE_KINDS is vocab.DIVERGENCES and spec.DO_OPS is vocab.DO_OPS
        import causalunlearn.compile.objective, causalunlearn.compile.materialise
        out["after"] = {n: list(getattr(vocab, n).names()) for n in kinds}
        print(json.dumps(out))
        """
    )
    out = json.loads(_python(code, ROOT))
    assert out["torch"] is False and out["same"] is True
    assert out["DIVERGENCES"] == ["kl", "cross_entropy", "mse", "l1"]
    assert out["REFERENCES"] == ["original", "labels", "random_model", "distribution"]
    assert out["DO_OPS"] == ["add_noise", "relabel", "adversarial"]
    after = {k: out[k] for k in ("DIVERGENCES", "REFERENCES", "DO_OPS")}
    assert out["after"] == after  # implementing the built-ins declares nothing new


def _python(code: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_user_divergence_validates_the_same_whatever_was_imported_first(tmp_path):
    (tmp_path / "my_divs.py").write_text(
        "from causalunlearn.compile.divergences import register_divergence\n"
        "@register_divergence('abs_gap')\n"
        "def abs_gap(value, reference, spec):\n"
        "    return (value - reference.value).abs().mean()\n"
    )
    (tmp_path / "mine.yaml").write_text(
        f"format: causalunlearn.graph/v1\nextends: {CAMU}\nname: mine\n"
        "set:\n  interventions.keep_retain_z.divergence: {kind: abs_gap}\n"
    )
    torch_side = "import causalunlearn.compile.objective, causalunlearn.engine.verbs\n"
    check = textwrap.dedent(
        """
        import json
        from causalunlearn.errors import GraphError
        from causalunlearn.graph import load_graph, spec
        def codes():
            try:
                g = load_graph("mine.yaml")
            except GraphError as err:
                return err.codes
            return [g.intervention("keep_retain_z").divergence.kind]
        kinds = spec.DIVERGENCE_KINDS  # taken before anything is registered
        before = codes()
        {first}
        import my_divs
        {then}
        print(json.dumps({{"before": before, "after": codes(), "live": "abs_gap" in kinds}}))
        """
    )
    orders = {
        "user module only": check.format(first="", then=""),
        "torch side first": check.format(first=torch_side, then=""),
        "torch side after": check.format(first="", then=torch_side),
    }
    results = {name: json.loads(_python(code, tmp_path)) for name, code in orders.items()}
    for name, result in results.items():
        assert result == {"before": ["bad-value"], "after": ["abs_gap"], "live": True}, name


def test_a_new_do_op_is_one_registration(tmp_path):
    import torch

    from causalunlearn.compile.materialise import DO_OP_IMPLS, materialise, register_do_op
    from causalunlearn.data import TensorData, make_split
    from causalunlearn.errors import GraphError
    from causalunlearn.graph import load_graph

    graph_file = tmp_path / "scaled.yaml"
    graph_file.write_text(
        f"format: causalunlearn.graph/v1\nextends: {CAMU}\nname: scaled\n"
        "set:\n  nodes.counterfactual.do: [{op: scale, factor: 3}]\n"
    )
    with pytest.raises(GraphError) as err:
        load_graph(graph_file)
    assert err.value.codes == ["unknown-op"]
    with DO_OP_IMPLS.scratch():

        @register_do_op("scale", params={"factor": (float, 2.0), "mode": (str, "x", ("x",))})
        def scale(op, x, y, **_):
            """Multiply the inputs by a factor."""
            return x * op.get("factor"), y

        assert "scale" in S.DO_OPS and vocab.DO_OPS.get("scale").doc.startswith("Multiply")
        graph = load_graph(graph_file)
        (op,) = graph.node("counterfactual").do
        assert op.get("factor") == 3.0 and op.get("mode") == "x"  # read as a float, defaulted
        g = torch.Generator().manual_seed(0)
        y = torch.arange(4).repeat_interleave(10)
        x = torch.randn(len(y), 1, 8, 8, generator=g)
        data = TensorData("tiny", x, y, x[::2].clone(), y[::2].clone(), ("0", "1", "2", "3"))
        streams = materialise(graph, data, make_split(y, "class:0", 0, 4), seed=0)
        perm = streams.pairings[("retain_sample", "forget")]
        cf_x, _ = streams.of("counterfactual")
        torch.testing.assert_close(cf_x, 3 * streams.of("retain_sample")[0][perm])
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            graph_file.read_text().replace("factor: 3", "factor: '3', facter: 1, mode: y")
        )
        with pytest.raises(GraphError) as err:
            load_graph(bad)
        assert sorted(err.value.codes) == ["bad-value", "unknown-field", "wrong-type"]
    assert "scale" not in S.DO_OPS and "scale" not in DO_OP_IMPLS
