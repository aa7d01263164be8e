"""Materialise a graph's data nodes as row-aligned tensors, once, before training.

Base nodes read rows of the dataset through the split (forget, retain, retain sample, test,
train). Derived nodes apply their do-operations, in order, with one seeded generator:

- ``add_noise``: x + U[low, high) (or N(0, std²)) in the model's input space, i.e. *after*
  normalisation, unclipped unless ``clip`` (CaMU: U[0, 1), unclipped).
- ``relabel``: keep each row's label unless it equals the avoided one (``paired_label``: the
  label of the paired row; ``own_label``: always), then draw uniformly among the other classes;
  ``avoid: none, draw: uniform`` gives uniform random labels. The authors' code has an indexing
  slip in this redraw; we implement the intent (a uniform draw among the other classes).
- ``adversarial``: FGSM/PGD on the frozen original model away from the row's label; the new
  label is the original model's prediction on the perturbed input (Boundary shrink).

A node with ``paired_with: P`` is built from its source rows permuted by a seeded random pairing
(without replacement), so that its row i belongs with row i of ``P``. The same permutation
aligns ``align: paired`` references between the two streams.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import networkx as nx
import torch
import torch.nn.functional as F

from causalunlearn.compile.keys import StreamKey
from causalunlearn.errors import DataError
from causalunlearn.graph import spec as S
from causalunlearn.graph import vocab
from causalunlearn.graph.validate import row_group
from causalunlearn.registry import Implementations

OpFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]

#: The do-operation implementations, keyed by the names in
#: :data:`causalunlearn.graph.vocab.DO_OPS`.
DO_OP_IMPLS: Implementations[OpFn, vocab.DoOpSchema] = Implementations(
    "op",
    vocab.DO_OPS,
    lambda name, fn: vocab.DoOpSchema(name, {}, vocab.first_line(fn.__doc__)),
    label="do-operation",
    hint="register one with causalunlearn.register_do_op",
)


def register_do_op(
    name: str,
    params: Mapping[str, tuple[Any, ...]] | None = None,
    *,
    doc: str | None = None,
    overwrite: bool = False,
) -> Callable[[OpFn], OpFn]:
    """Decorator: implement a do-operation and declare its parameters, in one call.

    The function is called as ``fn(op, x, y, *, paired_y, num_classes, generator, original)``
    and returns the new ``(x, y)``; ``op.get(param)`` reads a parameter (its default when the
    graph leaves it out). A new name and its ``params`` are added to the vocabulary the graph
    layer validates against (:data:`causalunlearn.graph.vocab.DO_OPS`). Example::

        @register_do_op("scale", params={"factor": (float, 2.0)})
        def scale(op, x, y, **_):
            return x * op.get("factor"), y

    Args:
        name: The name graphs use (``do: [{op: <name>, ...}]``).
        params: Parameter name → ``(type, default)`` or ``(type, default, allowed values)``,
            the type one of ``str``, ``int``, ``float``, ``bool``. Leave it out to implement a
            name already declared (a built-in); a new name without it takes no parameters.
        doc: One line on what it does (default: the first line of the function's docstring).
        overwrite: Replace a do-operation (and its declared parameters) registered under
            ``name``.

    Raises:
        CausalUnlearnError: ``duplicate-op`` when ``name`` is implemented already, or declared
            with other parameters, and ``overwrite`` is false; ``invalid-op-params`` for a
            parameter that is not ``(type, default[, allowed])``.
    """
    key = DO_OP_IMPLS.key(name)

    def decorate(fn: OpFn) -> OpFn:
        declaration = None
        if params is not None or doc is not None:
            declared = vocab.DO_OPS.get(key, None)
            declaration = vocab.DoOpSchema.of(
                key,
                params if params is not None else (declared.params if declared else {}),
                doc if doc is not None else vocab.first_line(fn.__doc__),
            )
        return DO_OP_IMPLS.register(key, fn, overwrite=overwrite, declaration=declaration)

    return decorate


def redraw_other_class(
    avoid: torch.Tensor, num_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """A uniform draw among the classes other than ``avoid`` (vectorised)."""
    r = torch.randint(0, num_classes - 1, avoid.shape, generator=generator, device=avoid.device)
    return r + (r >= avoid).long()


@register_do_op("add_noise")
def add_noise(op: S.DoOp, x, y, *, generator, **_):
    """Add uniform U[low, high) or Gaussian N(0, std²) noise to the inputs."""
    if op.get("dist") == "uniform":
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        noise = noise * (op.get("high") - op.get("low")) + op.get("low")
    else:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * op.get(
            "std"
        )
    x = x + noise
    if op.get("clip"):
        x = x.clamp(x.min().item(), x.max().item())
    return x, y


@register_do_op("relabel")
def relabel(op: S.DoOp, x, y, *, paired_y, num_classes, generator, **_):
    """Relabel rows away from an avoided label (see the module docstring)."""
    avoid = op.get("avoid")
    if avoid == "none":
        if op.get("draw") == "uniform":
            return x, torch.randint(0, num_classes, y.shape, generator=generator, device=y.device)
        return x, y
    banned = y if avoid == "own_label" else paired_y
    if op.get("draw") == "uniform":
        fresh = torch.randint(0, num_classes, y.shape, generator=generator, device=y.device)
    else:
        fresh = redraw_other_class(banned, num_classes, generator)
    if avoid == "own_label":
        return x, fresh
    return x, torch.where(y == banned, fresh, y)


#: Rows per forward pass of the attack (bounds memory on large forget sets; the attack is
#: per-row, so the chunking does not change the result).
ADVERSARIAL_CHUNK = 512


@register_do_op("adversarial")
def adversarial(op: S.DoOp, x, y, *, original, **_):
    """FGSM (or PGD) away from the label on the frozen original; label = original's prediction.

    FGSM: x' = x + eps · sign(∇ₓ CE(f₀(x), y)); PGD: ``steps`` steps of size ``step_size``,
    each projected onto the L∞ ball of radius ``eps`` around x (no random start). Both work in
    the model's input space (after normalisation, unclipped). The new label is argmax f₀(x')
    (Boundary shrink's "nearest but incorrect" class; it stays y where the attack fails).
    """
    if original is None:
        raise DataError(
            "needs-original",
            "the adversarial do-operation attacks the frozen original model, but none was given",
            "pass original=objective.original to materialise (engine.verbs.unlearn does)",
        )
    steps = 1 if op.get("attack") == "fgsm" else op.get("steps")
    step = op.get("eps") if op.get("attack") == "fgsm" else op.get("step_size")
    xs, labels = [], []
    for start in range(0, x.shape[0], ADVERSARIAL_CHUNK):
        x0, y0 = x[start : start + ADVERSARIAL_CHUNK], y[start : start + ADVERSARIAL_CHUNK]
        x_adv = x0.clone()
        for _step in range(steps):
            x_adv.requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(original(x_adv), y0)
                (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = (x_adv.detach() + step * grad.sign()).clamp(
                x0 - op.get("eps"), x0 + op.get("eps")
            )
        with torch.no_grad():
            labels.append(original(x_adv).argmax(1))
        xs.append(x_adv.detach())
    return torch.cat(xs), torch.cat(labels)


@dataclass
class Streams:
    """Materialised data: per stream key the rows ``(x, y)``, grouped by the stream they travel
    with.

    Attributes:
        rows: :class:`~causalunlearn.compile.keys.StreamKey` → ``(x, y)``: ``StreamKey(node)``
            for each data node; a paired reference between different streams is stored as
            ``StreamKey(ref, aligned_to=data)`` (the reference rows permuted into the data
            stream's row order). :meth:`of` reads them by node id.
        groups: Zip stream (group root node id) → keys of the rows aligned with it.
        seconds: Wall time of materialisation (counterfactual construction).
        pairings: ``(source, partner)`` node ids → the permutation of ``source``'s rows that
            pairs them with ``partner``'s.
    """

    rows: dict[StreamKey, tuple[torch.Tensor, torch.Tensor]]
    groups: dict[str, list[StreamKey]]
    seconds: float = 0.0
    pairings: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)

    def of(self, node: str, aligned_to: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows ``(x, y)`` of data node ``node`` (permuted into the row order of
        ``aligned_to``, a paired reference's data stream, when given)."""
        return self.rows[StreamKey(node, aligned_to)]

    def size(self, group: str) -> int:
        """Number of rows in a group."""
        return self.of(group)[0].shape[0]


def _base_rows(node: S.Node, data, split, device) -> tuple[torch.Tensor, torch.Tensor]:
    if node.sample == "same_size_as_forget" and node.split != "retain":
        raise DataError(
            "cannot-provide-node",
            f"data node '{node.id}' asks for a forget-sized sample of the {node.split} split;"
            " the split provides such a sample of the retain set only",
            "use 'split: retain, sample: same_size_as_forget' (CaMU's retain sample)",
        )
    if node.split == "test":
        x, y = data.test_x, data.test_y
    else:
        if node.split == "forget":
            idx = split.forget
        elif node.split == "train":
            idx = None
        elif node.sample == "same_size_as_forget":
            idx = split.retain_sample
        else:
            idx = split.retain
        if idx is None:
            x, y = data.train_x, data.train_y
        else:
            index = torch.tensor(idx, dtype=torch.long, device=data.train_x.device)
            x, y = data.train_x[index], data.train_y[index]
    if node.repeat > 1:
        x, y = x.repeat(node.repeat, *([1] * (x.dim() - 1))), y.repeat(node.repeat)
    if x.shape[0] == 0:
        raise DataError(
            "empty-stream",
            f"data node '{node.id}' (split {node.split}) has no rows",
            "check the scenario: the forget set and the retain set must both be non-empty",
        )
    return x.to(device), y.to(device)


def materialise(
    graph: S.Graph,
    data,
    split,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    original: torch.nn.Module | None = None,
) -> Streams:
    """Build every data node of ``graph`` as tensors on ``device`` (see the module docstring).

    Args:
        graph: The graph.
        data: A :class:`~causalunlearn.data.TensorData`.
        split: A :class:`~causalunlearn.data.Split`.
        seed: Seed of the generator used for pairings and do-operations.
        device: Where the tensors live.
        original: The frozen original model (needed by ``adversarial``).
    """
    start = time.perf_counter()
    generator = torch.Generator(device=device).manual_seed(seed)
    nodes = {n.id: n for n in graph.nodes if n.kind == "data"}
    dag = nx.DiGraph()
    dag.add_nodes_from(nodes)
    dag.add_edges_from((n.derived_from, n.id) for n in nodes.values() if n.derived_from)
    rows: dict[StreamKey, tuple[torch.Tensor, torch.Tensor]] = {}
    pairings: dict[tuple[str, str], torch.Tensor] = {}

    def pairing(source: str, partner: str) -> torch.Tensor:
        key = (source, partner)
        if key not in pairings:
            n_src = rows[StreamKey(source)][0].shape[0]
            n_partner = rows[StreamKey(partner)][0].shape[0]
            if n_src < n_partner:
                raise DataError(
                    "pairing-too-small",
                    f"cannot pair {n_partner} rows of '{partner}' with {n_src} rows of '{source}'",
                    "pair with a stream at least as large (sample: same_size_as_forget)",
                )
            pairings[key] = torch.randperm(n_src, generator=generator, device=device)[:n_partner]
        return pairings[key]

    for name in nx.topological_sort(dag):
        node = nodes[name]
        if not node.is_derived:
            rows[StreamKey(name)] = _base_rows(node, data, split, device)
            continue
        source = cast(str, node.derived_from)  # a derived node names its source
        x, y = rows[StreamKey(source)]
        paired_y = None
        if node.paired_with:
            perm = pairing(source, node.paired_with)
            x, y = x[perm], y[perm]
            paired_y = rows[StreamKey(node.paired_with)][1]
        for op in node.do:
            x, y = DO_OP_IMPLS.get(op.op)(
                op,
                x,
                y,
                paired_y=paired_y,
                num_classes=data.num_classes,
                generator=generator,
                original=original,
            )
        rows[StreamKey(name)] = (x, y)
    # Paired references across streams: the reference rows, permuted into the data's order.
    for e in graph.interventions:
        ref = e.reference
        if ref is None or ref.stream is None or ref.align != "paired" or e.data is None:
            continue
        if row_group(nodes, ref.stream) == row_group(nodes, e.data):
            continue
        perm = pairing(ref.stream, e.data)
        x, y = rows[StreamKey(ref.stream)]
        rows[StreamKey(ref.stream, aligned_to=e.data)] = (x[perm], y[perm])
    groups: dict[str, list[StreamKey]] = {}
    for key in rows:
        groups.setdefault(row_group(nodes, key.group_member), []).append(key)
    return Streams(rows, groups, time.perf_counter() - start, pairings)
