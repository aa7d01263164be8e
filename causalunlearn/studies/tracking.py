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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from causalunlearn.engine.callbacks import Callback
from causalunlearn.errors import CausalUnlearnError, RunError
from causalunlearn.graph.yamlio import YamlDumper

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


def run_log_dir(log_dir: str | Path, label: str, dataset: str, scenario: str, seed: int) -> Path:
    """Where one run's log goes: ``log_dir/<label>/<dataset>/<scenario>/seed<S>`` (made safe)."""
    return Path(log_dir) / _safe(label) / dataset / _safe(scenario) / f"seed{seed}"


class TensorBoardCallback(Callback):
    """Write a run's term values, per-epoch means and final metrics to TensorBoard.

    Args:
        log_dir: The run's log folder (created).
        method: The graph or method entry, attached as YAML text and (graphs only, when ``dot``
            is installed) as a diagram; ``None``: attach nothing.

    Raises:
        RunError: ``tensorboard-missing`` when the tensorboard package is not installed.
    """

    def __init__(self, log_dir: str | Path, method: Any = None) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        if method is not None:
            self._attach(method)

    def _attach(self, method: Any) -> None:
        from causalunlearn.methods.dispatch import causal_graph

        text = yaml.dump(
            method.to_dict(), Dumper=YamlDumper, sort_keys=False, allow_unicode=True, width=100
        )
        # TensorBoard renders text as Markdown: indented lines are a code block.
        self.writer.add_text("method/yaml", "\n".join("    " + line for line in text.splitlines()))
        graph = causal_graph(method)
        if graph is None:  # a method entry has no diagram
            return
        image = _diagram(graph)
        if image is not None:
            self.writer.add_image("method/diagram", image, dataformats="HWC")

    def on_sync(self, step: int, epoch: int, terms: dict[str, float]) -> None:
        for key, value in terms.items():
            self.writer.add_scalar(f"terms/{key}", value, step)

    def on_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            if key != "steps":
                self.writer.add_scalar(f"epoch/{key}", value, epoch)

    def on_end(self, metrics: Mapping[str, Mapping[str, float]]) -> None:
        """Write the final metrics (``final/<role>/<metric>``), then flush and close the log."""
        for role, values in metrics.items():
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"final/{role}/{key}", value, 0)
        self.close()

    def close(self) -> None:
        """Flush and close the log (safe to call twice)."""
        self.writer.flush()
        self.writer.close()


def _diagram(graph: Any) -> Any:
    """The graph's diagram as an ``H×W×3`` float array, or ``None`` without Graphviz ``dot``."""
    import matplotlib.image

    from causalunlearn.graph.render import render

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = render(graph, Path(tmp) / "graph.png")
        except CausalUnlearnError as err:
            if err.code != "dot-not-found":
                raise
            _log.info("no diagram in the TensorBoard log: Graphviz 'dot' is not installed")
            return None
        return matplotlib.image.imread(path)[..., :3]


@contextlib.contextmanager
def tracked(
    log_dir: str | Path | None, method: Any, label: str, dataset: str, scenario: str, seed: int
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
