"""Figures of a sweep: metric bars, relearning curves, the ablation figure, confusion matrices,
and (nested seeds) where the variance comes from.

Each function takes one table of :meth:`causalunlearn.studies.sweep.Sweep.summarise` (one dataset
and
scenario) and writes a PNG atomically. Matplotlib runs headless (Agg).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from causalunlearn.atomic import atomic_write
from causalunlearn.metrics.catalogue import ABLATION_GAPS, BARS
from causalunlearn.metrics.gaps import mean_std

#: Gaps drawn by :func:`ablation_figure`: key, label (from the metric catalogue).
ABLATION_LABELS = tuple((m.key, m.short) for m in ABLATION_GAPS)


class _Figures:
    """The few ``pyplot`` calls the figures use, without ``pyplot``: figures are plain
    :class:`matplotlib.figure.Figure` objects saved to PNG, so drawing them neither switches the
    process's backend (``matplotlib.use("Agg")`` turned off a notebook's inline plots) nor
    shows them in a notebook."""

    @staticmethod
    def subplots(*args, figsize=None, **kwargs):
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        return fig, fig.subplots(*args, **kwargs)

    @staticmethod
    def close(fig) -> None:
        """Nothing to release: no pyplot figure manager holds these figures."""

    @staticmethod
    def get_cmap(name: str):
        import matplotlib

        return matplotlib.colormaps[name]

    @staticmethod
    def imread(*args, **kwargs):
        import matplotlib.image

        return matplotlib.image.imread(*args, **kwargs)


def _pyplot() -> _Figures:
    return _Figures()


def _save(fig, path: str | Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return atomic_write(path, buffer.getvalue())


def _title(table: Mapping[str, Any]) -> str:
    return f"{table['dataset']}, {table['scenario']}"


def metric_bars(table: Mapping[str, Any], path: str | Path) -> Path:
    """One panel per metric: a bar per method (mean, error bar = sample std over seeds), the
    original as a dotted line and the retrain oracle as a dashed line with a ± std band."""
    plt = _pyplot()
    rows = table["rows"]
    methods = list(table["methods"])
    metrics = [(b.key, b.axis_label) for b in BARS if any(b.key in rows[m] for m in methods)]
    cols = min(3, len(metrics)) or 1
    n_rows = math.ceil(len(metrics) / cols) or 1
    fig, axes = plt.subplots(
        n_rows, cols, figsize=(4.2 * cols, 0.25 * len(methods) + 2.6 * n_rows), squeeze=False
    )
    for ax, (key, label) in zip(axes.flat, metrics, strict=False):
        means = [_get(rows[m], key, "mean") for m in methods]
        stds = [_get(rows[m], key, "std", 0.0) for m in methods]
        positions = list(range(len(methods)))
        ax.barh(positions, means, xerr=stds, color="#4c72b0", capsize=3)
        failed = table.get("failures", {})
        for pos, (method, mean) in enumerate(zip(methods, means, strict=True)):
            if math.isnan(mean):  # no finished run (e.g. every seed diverged)
                ax.text(0, pos, " failed" if method in failed else " –", va="center", fontsize=7)
        ax.set_yticks(positions, methods, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(label, fontsize=10)
        for role, style in (("oracle", "--"), ("original", ":")):
            stat = rows.get(role, {}).get(key)
            if stat is None:
                continue
            ax.axvline(stat["mean"], color="k", linestyle=style, linewidth=1, label=role)
            if role == "oracle" and stat.get("std") and not math.isnan(stat["std"]):
                ax.axvspan(
                    stat["mean"] - stat["std"], stat["mean"] + stat["std"], color="k", alpha=0.1
                )
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=8)
    fig.suptitle(f"{_title(table)}: mean ± std over seeds", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def relearning_curves(table: Mapping[str, Any], path: str | Path) -> Path | None:
    """Forget and test accuracy along the relearning fine-tuning, mean ± std over seeds.

    Returns ``None`` (nothing written) when the table has no curves (sweep without ``curves``).
    """
    curves = table.get("curves") or {}
    if not curves:
        return None
    plt = _pyplot()
    panels = [k for k in ("forget", "test") if all(k in c[0] for c in curves.values())]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + 2.5, 4), squeeze=False)
    methods = [label for label in curves if label not in ("oracle", "original")]
    palette = plt.get_cmap("tab20" if len(methods) > 10 else "tab10")
    colors = {label: palette(i % palette.N) for i, label in enumerate(methods)}
    colors.update({"oracle": "k", "original": "k"})
    for ax, panel in zip(axes.flat, panels, strict=True):
        for label, runs in curves.items():
            style = {"oracle": "--", "original": ":"}.get(label, "-")
            color = colors[label]
            steps = runs[0]["step"]
            length = min(len(r[panel]) for r in runs)
            values = [[r[panel][i] for r in runs] for i in range(length)]
            mean = [sum(v) / len(v) for v in values]
            std = [_nan_to_zero(mean_std(v)[1]) for v in values]
            name = "retrain oracle" if label == "oracle" else label
            ax.plot(steps[:length], mean, style, color=color, label=name, linewidth=1.3)
            ax.fill_between(
                steps[:length],
                [m - s for m, s in zip(mean, std, strict=True)],
                [m + s for m, s in zip(mean, std, strict=True)],
                alpha=0.15,
            )
        ax.set_xlabel("fine-tuning steps on retain data (Adam 1e-3, batch 32)")
        ax.set_ylabel(f"{panel} accuracy (%)")
        ax.set_title(f"{panel} accuracy while relearning", fontsize=10)
        ax.grid(alpha=0.3)
    axes.flat[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"Relearning curves, {_title(table)}", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def ablation_figure(
    table: Mapping[str, Any],
    graphs: Mapping[str, Any],
    base: str,
    path: str | Path,
    *,
    gaps: Sequence[tuple[str, str]] = ABLATION_LABELS,
) -> Path:
    """One row per graph: its diagram (the difference from ``base``) beside its gaps to the oracle.

    Args:
        table: A summary table holding rows for the labels of ``graphs``.
        graphs: Label → graph (in row order); ``graphs[base]`` is drawn plain, the others as
            their difference from it (as ``causalunlearn render --diff`` draws it).
        base: The label of the full graph.
        path: The PNG to write.

    Without Graphviz's ``dot`` program the diagrams are left out (a note says so).
    """
    plt = _pyplot()
    from causalunlearn.graph.render import to_digraph

    rows = table["rows"]
    labels = [lab for lab in graphs if lab in rows]
    fig, axes = plt.subplots(
        len(labels), 2, figsize=(11, 2.6 * len(labels)), squeeze=False, width_ratios=(1.3, 1)
    )
    limit = max(
        (
            _get(rows[lab], k, "gap", 0.0) + _get(rows[lab], k, "gap_std", 0.0)
            for lab in labels
            for k, _ in gaps
        ),
        default=1.0,
    )
    for (ax_d, ax_b), label in zip(axes, labels, strict=True):
        ax_d.axis("off")
        try:
            digraph = to_digraph(graphs[label], base=None if label == base else graphs[base])
            digraph.graph_attr["dpi"] = "90"
            image = plt.imread(io.BytesIO(digraph.pipe(format="png", quiet=True)), format="png")
            ax_d.imshow(image)
        except Exception:  # noqa: BLE001 - no `dot`: the numbers are still worth drawing
            ax_d.text(0.5, 0.5, "(diagram needs Graphviz `dot`)", ha="center", va="center")
        ax_d.set_title(label, fontsize=10, loc="left")
        values = [_get(rows[label], k, "gap") for k, _ in gaps]
        errors = [_get(rows[label], k, "gap_std", 0.0) for k, _ in gaps]
        positions = list(range(len(gaps)))
        ax_b.barh(positions, values, xerr=errors, color="#dd8452", capsize=3)
        ax_b.set_yticks(positions, [name for _, name in gaps], fontsize=8)
        ax_b.invert_yaxis()
        ax_b.set_xlim(0, limit * 1.1 or 1.0)
        ax_b.set_xlabel("|gap to retrain oracle| (points), mean ± std over seeds", fontsize=8)
    fig.suptitle(f"Ablations, {_title(table)}", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


#: Colours of the variance parts, by seed (a merged level such as ``train+split`` gets grey).
VARIANCE_COLORS = {"train": "#4c72b0", "split": "#dd8452", "unlearn": "#55a868"}
#: Legend names of the parts (the components of
#: :func:`~causalunlearn.studies.seeds.variance_components`; the innermost one is the residual).
VARIANCE_NAMES = {
    "train": "training seed",
    "split": "split seed (within a training seed)",
    "unlearn": "unlearning seed (within a split; the residual)",
}


def _decomposed(parts: Mapping[str, Any] | None) -> bool:
    return bool(parts and parts.get("balanced") and len(parts.get("components", ())) >= 2)


def variance_metrics(table: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The metrics the variance figure draws: those of the metric bars (:data:`BARS`, wall
    times left out as in :func:`~causalunlearn.studies.summary.seed_variance`) that some row of
    the table's ``variance`` decomposes into two or more parts; ``(key, axis label)``."""
    variance = table.get("variance") or {}
    return [
        (b.key, b.axis_label)
        for b in BARS
        if b.unit != "s" and any(_decomposed(v.get(b.key)) for v in variance.values())
    ]


def draw_variance(table: Mapping[str, Any]):
    """The variance figure of one table, as a :class:`matplotlib.figure.Figure` (not saved), or
    ``None`` when there is nothing to decompose (see :func:`variance_figure`).

    One panel per metric of :func:`variance_metrics`, one row per model (the original, the
    retrain oracle, then the methods), a horizontal bar stacked from the variance components of
    ``table["variance"][row][metric]`` (:func:`~causalunlearn.studies.summary.seed_variance`),
    outermost seed first: each segment's width is that seed's σ² (points²), so the bar's length
    is their sum, the estimated variance of one cell (``σ`` is written after it). Each
    component name is one :class:`~matplotlib.container.BarContainer` of the panel (its label
    the name, one bar per row, width 0 where the row has no such part). A row whose design is
    unbalanced (cells missing) says ``n/a``; one without the metric ``–``.
    """
    metrics = variance_metrics(table)
    if not metrics:
        return None
    from matplotlib.ticker import FuncFormatter

    plt = _pyplot()
    variance = table["variance"]
    labels = [lab for lab in ("original", "oracle", *table["methods"]) if lab in variance]
    names = {"original": "original", "oracle": "retrain oracle"}
    order: list[str] = []  # component names, outermost first, over the whole table
    for label in labels:
        for key, _ in metrics:
            for comp in (variance[label].get(key) or {}).get("components", ()):
                if comp["name"] not in order:
                    order.append(comp["name"])
    cols = min(3, len(metrics))
    n_rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(
        n_rows, cols, figsize=(4.6 * cols, 0.3 * len(labels) + 2.4 * n_rows), squeeze=False
    )
    positions = list(range(len(labels)))
    for ax, (key, axis_label) in zip(axes.flat, metrics, strict=False):
        parts = [variance[label].get(key) for label in labels]
        by_name = [
            {c["name"]: c["variance"] for c in (p or {}).get("components", ())}
            if p and p.get("balanced")
            else {}
            for p in parts
        ]
        left = [0.0] * len(labels)
        for name in order:
            widths = [float(b.get(name, 0.0)) for b in by_name]
            ax.barh(
                positions,
                widths,
                left=left,
                color=VARIANCE_COLORS.get(name, "#8c8c8c"),
                label=VARIANCE_NAMES.get(name, f"{name} seeds (changing together)"),
            )
            left = [a + w for a, w in zip(left, widths, strict=True)]
        for pos, (p, total) in enumerate(zip(parts, left, strict=True)):
            if p is None:
                note = " –"
            elif not p.get("balanced"):
                note = " n/a (cells missing)"
            else:
                note = f" σ {math.sqrt(p['total']):.2f}"
            ax.text(total, pos, note, va="center", fontsize=7)
        ax.set_yticks(positions, [names.get(lab, lab) for lab in labels], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(axis_label, fontsize=10)
        ax.set_xlabel("variance of one cell (points²), by seed", fontsize=8)
        ax.set_xlim(0, 1.25 * max(left) or 1.0)  # room for the σ notes
        ax.locator_params(axis="x", nbins=4)  # tiny variances keep readable ticks
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    handles, legend = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, legend, loc="lower center", ncol=len(handles), fontsize=8)
    fig.suptitle(
        f"{_title(table)}: where the variance comes from (nested random-effects ANOVA)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def variance_figure(table: Mapping[str, Any], path: str | Path) -> Path | None:
    """Write :func:`draw_variance`'s figure (``variance-<dataset>-<scenario>.png``).

    Returns ``None`` (nothing written) unless the table has a ``variance`` (nested seeds) and
    some row splits a drawn metric into two or more seeds' parts: paired seeds (``--seeds``)
    cannot be told apart, and with one seed list varied there is one part only.
    """
    fig = draw_variance(table)
    return None if fig is None else _save(fig, path)


def confusion_matrices(matrices: Mapping[str, Any], title: str, path: str | Path) -> Path:
    """One panel per model: its confusion matrix (rows: true class, columns: predicted), each
    row as percent of that class's rows, so a removed class shows where its rows went.

    Args:
        matrices: Label → ``C×C`` counts (e.g. the test confusion matrices summed over seeds,
            :func:`causalunlearn.studies.comparison.per_class_stats`), in panel order.
        title: The figure's title.
        path: The PNG to write.
    """
    import numpy as np

    plt = _pyplot()
    labels = list(matrices)
    cols = min(4, len(labels)) or 1
    n_rows = math.ceil(len(labels) / cols) or 1
    fig, axes = plt.subplots(n_rows, cols, figsize=(3.3 * cols, 3.2 * n_rows), squeeze=False)
    image = None
    for ax, label in zip(axes.flat, labels, strict=False):
        counts = np.asarray(matrices[label], dtype=np.float64)
        support = counts.sum(axis=1, keepdims=True)
        share = np.divide(100 * counts, support, out=np.zeros_like(counts), where=support > 0)
        image = ax.imshow(share, vmin=0, vmax=100, cmap="Blues")
        classes = counts.shape[0]
        if classes <= 10:  # the numbers stay readable
            ax.set_xticks(range(classes))
            ax.set_yticks(range(classes))
            for i in range(classes):
                for j in range(classes):
                    if share[i, j] >= 0.5:
                        color = "white" if share[i, j] > 60 else "black"
                        ax.text(
                            j,
                            i,
                            f"{share[i, j]:.0f}",
                            ha="center",
                            va="center",
                            fontsize=6,
                            color=color,
                        )
        ax.set_title(f"{label}\n{int(counts.sum())} rows", fontsize=9)  # long labels fit
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true class", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(labels) :]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="% of the true class")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def _get(row: Mapping[str, Any], key: str, field: str, default: float = float("nan")) -> float:
    stat = row.get(key) or {}
    value = stat.get(field)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return float(value)


def _nan_to_zero(value: float) -> float:
    return 0.0 if math.isnan(value) else value
