"""Callbacks of the loop: when they are called, with what, and that they change nothing.

The expected values come from the run's own log (``unlearn`` logs every step's terms), so the
callbacks' means are checked against an independent record of the same steps.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from causalunlearn.engine.callbacks import Callback, CallbackLike, notify_end
from causalunlearn.engine.verbs import unlearn
from causalunlearn.graph import load_graph

CAMU = Path(__file__).resolve().parents[2] / "graphs" / "camu.yaml"


class Recorder(Callback):
    def __init__(self) -> None:
        self.syncs: list[tuple[int, int, dict[str, float]]] = []
        self.epochs: list[tuple[int, dict[str, float]]] = []
        self.ends: list[dict] = []

    def on_sync(self, step, epoch, terms):
        self.syncs.append((step, epoch, terms))

    def on_epoch(self, epoch, logs):
        self.epochs.append((epoch, logs))

    def on_end(self, metrics):
        self.ends.append(metrics)


def _run(digits_class0, executor, callbacks=()):
    data, split, original = digits_class0
    graph = load_graph(CAMU, preset="digits-class")
    torch.manual_seed(0)
    return unlearn(
        graph,
        original,
        data,
        split,
        seed=0,
        progress=False,
        executor=executor,
        callbacks=callbacks,
    )


def _epoch_means_from_log(log, epoch):
    """Mean of every ``stage/term`` over the log rows (one per step) of one epoch."""
    out = {}
    for sid, rows in log.losses.items():
        rows = [r for r in rows if r["epoch"] == epoch]
        for key in rows[0]:
            if key not in ("step", "epoch"):
                out[f"{sid}/{key}"] = sum(r[key] for r in rows) / len(rows)
    return out


@pytest.mark.parametrize("executor", ["fast", "reference"])
def test_callbacks_see_every_epoch_and_the_sync_points(digits_class0, executor):
    rec = Recorder()
    result = _run(digits_class0, executor, [rec])
    total = sum(result.log.steps.values())
    assert [e for e, _ in rec.epochs] == [0, 1]  # the digits-class preset runs 2 epochs
    for epoch, logs in rec.epochs:
        expected = _epoch_means_from_log(result.log, epoch)
        for key, value in expected.items():
            assert logs[key] == pytest.approx(value, rel=1e-6), key
        assert {"representation/loss", "output/loss"} <= logs.keys()
        assert logs["seconds"] > 0
    assert rec.epochs[-1][1]["steps"] == total
    steps = [s for s, _, _ in rec.syncs]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert steps[-1] == total
    if executor == "reference":  # each step is read on the host: each one is a sync point
        assert len(rec.syncs) == total
        # one stage's step per call, in run order (stage steps alternate in schedule order)
        order = {sid: i for i, sid in enumerate(result.log.losses)}
        rows = sorted(
            ((r["step"], order[sid], sid, r) for sid, rs in result.log.losses.items() for r in rs),
            key=lambda x: x[:2],
        )
        for (_, _, terms), (_, _, sid, row) in zip(rec.syncs, rows, strict=True):
            for key, value in row.items():
                if key not in ("step", "epoch"):
                    assert terms[f"{sid}/{key}"] == pytest.approx(value, rel=1e-6)
    else:  # one read per sync_every (50) steps, plus one at the end of each epoch
        assert len(rec.syncs) <= math.ceil(total / 50) + 2 < total
    assert rec.ends == []  # on_end is the caller's (the study layer's) to call


def test_callbacks_change_no_number(digits_class0):
    plain = _run(digits_class0, "fast")
    tracked = _run(digits_class0, "fast", [Callback(), Recorder()])
    assert plain.log.losses == tracked.log.losses
    for p, q in zip(plain.model.parameters(), tracked.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_any_object_with_the_hooks_is_a_callback(digits_class0):
    class Plain:  # not a subclass of Callback
        def __init__(self):
            self.steps = []

        def on_sync(self, step, epoch, terms):
            self.steps.append(step)

        def on_epoch(self, epoch, logs):
            pass

        def on_end(self, metrics):
            self.metrics = metrics

    plain = Plain()
    assert isinstance(plain, CallbackLike)
    result = _run(digits_class0, "fast", [plain])
    assert plain.steps[-1] == sum(result.log.steps.values())
    notify_end([plain], {"unlearned": {"forget_acc": 1.0}})
    assert plain.metrics == {"unlearned": {"forget_acc": 1.0}}
