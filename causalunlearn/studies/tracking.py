"""Experiment tracking of runs and sweep cells: TensorBoard, and where each run's log goes.

:class:`TensorBoardCallback` is a :class:`~causalunlearn.engine.callbacks.Callback` that writes
a run to a TensorBoard log folder (``torch.utils.tensorboard``, the optional extra
``pip install causalunlearn[tensorboard]``):

- ``terms/<stage>/<term>`` and ``terms/<stage>/loss``: the term values at every host read of
  the loop (x axis: optimiser steps of the run);
- ``epoch/<stage>/<term>``, ``epoch/seconds``: per-epoch means (x axis: epoch);
- ``final/<role>/<metric>``: the final metrics of the original, unlearned and oracle models;
- the method's resolved YAML as text (``method/yaml``) and, when Graphviz ``dot`` is installed,
  its diagram as an image (``method/diagram``).

With ``StudySettings.log_dir`` set (``--log-dir DIR``), ``run``, ``compare``, ``ablate`` and
``tune`` write one such log per run, in ``DIR/<method>/<dataset>/<scenario>/seed<S>``
(:func:`tracked`); ``tensorboard --logdir DIR`` shows them side by side.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from causalunlearn.engine.callbacks import Callback
from causalunlearn.errors import CausalUnlearnError, RunError
from causalunlearn.graph.yamlio import YamlDumper
from causalunlearn.studies.seeds import CellSeeds

__all__ = ["TensorBoardCallback", "require_tensorboard", "run_log_dir", "tracked"]

_log = logging.getLogger(__name__)

_INSTALL = "pip install causalunlearn[tensorboard] (or pip install tensorboard)"


def require_tensorboard() -> None:
    """Check that TensorBoard can be written (cheap: nothing is imported).

    Raises:
        RunError: ``tensorboard-missing`` saying how to install it.
    """
    if importlib.util.find_spec("tensorboard") is None:
        raise RunError(
            "tensorboard-missing",
            "logging to TensorBoard (log_dir / --log-dir) needs the tensorboard package,"
            " which is not installed",
            _INSTALL + "; or leave out --log-dir",
        )


def _safe(text: str) -> str:
    return text.replace(":", "-").replace(",", "_").replace("/", "_").replace("=", "")


def run_log_dir(
    log_dir: str | Path, label: str, dataset: str, scenario: str, seed: int | CellSeeds
) -> Path:
    """Where one run's log goes: ``log_dir/<label>/<dataset>/<scenario>/seed<S>`` (made safe;
    a sweep cell of nested seeds: its cell file's name, ``seed<T>-split<S>-unlearn<U>``)."""
    return Path(log_dir) / _safe(label) / dataset / _safe(scenario) / CellSeeds.of(seed).stem


class TensorBoardCallback(Callback):
    """Write a run's term values, per-epoch means and final metrics to TensorBoard.

    Args:
        log_dir: The run's log folder (created).
        method: The graph or method entry, attached as YAML text and (graphs only, when ``dot``
            is installed) as a diagram; ``None``: attach nothing.
        write_every_s: Scalars are queued in the callback and handed to TensorBoard's writer
            at most this often (and when the log is closed), so the loop is not slowed; a long
            run still shows up in TensorBoard as it goes.

    Raises:
        RunError: ``tensorboard-missing`` when the tensorboard package is not installed.
    """

    def __init__(
        self, log_dir: str | Path, method: Any = None, *, write_every_s: float = 10.0
    ) -> None:
        require_tensorboard()
        from tensorboard.compat.proto.summary_pb2 import Summary
        from torch.utils.tensorboard import SummaryWriter

        self._summary, self._value = Summary, Summary.Value
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.write_every_s = write_every_s
        self._pending: list[tuple[Any, int]] = []  # (Summary, step), handed over by _write
        self._written = time.monotonic()
        if method is not None:
            self._attach(method)

    def _attach(self, method: Any) -> None:
        from torch.utils.tensorboard.summary import text as text_summary

        from causalunlearn.methods.dispatch import causal_graph

        text = yaml.dump(
            method.to_dict(), Dumper=YamlDumper, sort_keys=False, allow_unicode=True, width=100
        )
        # TensorBoard renders text as Markdown: indented lines are a code block.
        block = "\n".join("    " + line for line in text.splitlines())
        self._pending.append((text_summary("method/yaml", block), 0))
        graph = causal_graph(method)
        if graph is None:  # a method entry has no diagram
            return
        png = _diagram_png(graph)
        if png is not None:
            from tensorboard.compat.proto.summary_pb2 import Summary

            height, width = int.from_bytes(png[20:24], "big"), int.from_bytes(png[16:20], "big")
            image = Summary.Image(
                height=height, width=width, colorspace=4, encoded_image_string=png
            )  # the PNG as dot wrote it (RGBA), not decoded and encoded again
            summary = Summary(value=[Summary.Value(tag="method/diagram", image=image)])
            self._pending.append((summary, 0))

    def _scalars(self, values: Mapping[str, float], step: int) -> None:
        """Queue ``values`` as one event of ``step``; hand the queue to the writer every
        ``write_every_s`` seconds (and on :meth:`close`).

        Why not ``add_scalar`` at once: each event handed to TensorBoard's writer thread costs
        60-250 µs of the loop's time (waking the thread, the GIL), 6-10 % of a digits CaMU loop
        of 20 steps; queued, the loop pays for building the summary, a few µs a value
        (docs/tracking.md has the measurements). The method's YAML and diagram are queued too.
        """
        if values:
            summary = self._summary(
                value=[self._value(tag=tag, simple_value=float(x)) for tag, x in values.items()]
            )  # what SummaryWriter.add_scalar writes, one value per tag
            self._pending.append((summary, step))
        if time.monotonic() - self._written >= self.write_every_s:
            self._write()

    def _write(self) -> None:
        pending, self._pending = self._pending, []
        for summary, step in pending:
            self.writer.file_writer.add_summary(summary, step)
        self._written = time.monotonic()

    def on_sync(self, step: int, epoch: int, terms: dict[str, float]) -> None:
        self._scalars({f"terms/{k}": v for k, v in terms.items()}, step)

    def on_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        self._scalars({f"epoch/{k}": v for k, v in logs.items() if k != "steps"}, epoch)

    def on_end(self, metrics: Mapping[str, Mapping[str, float]]) -> None:
        """Write the final metrics (``final/<role>/<metric>``), then flush and close the log."""
        self._scalars(
            {
                f"final/{role}/{key}": value
                for role, values in metrics.items()
                for key, value in values.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)
            },
            0,
        )
        self.close()

    def close(self) -> None:
        """Write what is queued, flush and close the log (safe to call twice)."""
        if self._pending:
            self._write()
        self.writer.flush()
        self.writer.close()


#: Rendered diagrams by graph digest: the cells of a sweep draw each method once per process.
_DIAGRAMS: dict[str, bytes | None] = {}


def _diagram_png(graph: Any) -> bytes | None:
    """The graph's diagram as PNG bytes, or ``None`` without Graphviz ``dot``."""
    from causalunlearn.graph.render import render

    digest = graph.digest()
    if digest in _DIAGRAMS:
        return _DIAGRAMS[digest]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            png: bytes | None = render(graph, Path(tmp) / "graph.png").read_bytes()
        except CausalUnlearnError as err:
            if err.code not in ("dot-not-found", "graphviz-missing"):
                raise
            _log.info("no diagram in the TensorBoard log: %s", err.message)
            png = None
    _DIAGRAMS[digest] = png
    return png


@contextlib.contextmanager
def tracked(
    log_dir: str | Path | None,
    method: Any,
    label: str,
    dataset: str,
    scenario: str,
    seed: int | CellSeeds,
) -> Iterator[list[Callback]]:
    """The callbacks of one run: a :class:`TensorBoardCallback` in :func:`run_log_dir` when
    ``log_dir`` is set, else none; their logs are closed on leaving (also on an error, so a
    failed run keeps what it logged)."""
    if log_dir is None:
        yield []
        return
    callback = TensorBoardCallback(run_log_dir(log_dir, label, dataset, scenario, seed), method)
    try:
        yield [callback]
    finally:
        callback.close()
