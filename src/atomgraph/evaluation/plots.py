"""Diagnostic plots, each written to a PNG whose path is returned.

Figures are built with ``matplotlib.figure.Figure`` on an Agg canvas, never through ``pyplot``: no
global backend is switched, no window is opened, and nothing stays registered after saving (so no
figure leaks, even in long training runs). Parent folders of ``path`` are created.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from atomgraph.evaluation._arrays import paired, to_numpy
from atomgraph.evaluation.metrics import mae, r2

__all__ = [
    "attention_heatmaps",
    "comparison_bar",
    "dataset_plot",
    "error_histogram",
    "error_qq_plot",
    "error_vs_size",
    "error_vs_true",
    "learning_curves",
    "parity_plot",
    "structures_grid",
    "uncertainty_panels",
]

PathLike = str | os.PathLike

HEXBIN_ABOVE = 5000
DPI = 150

# Lightning CSVLogger column names, most preferred first.
TRAIN_LOSS_COLUMNS = ("train_loss_epoch", "train_loss", "train_loss_step")
VAL_LOSS_COLUMNS = ("val_loss", "val_loss_epoch")


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    fig.clear()
    return path


def _with_unit(label: str, unit: str) -> str:
    return f"{label} [{unit}]" if unit else label


def _finite_pairs(y_true: Any, y_pred: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Labelled pairs with a finite prediction too (a NaN prediction cannot be drawn)."""
    t, p = paired(y_true, y_pred, name)
    ok = np.isfinite(p) & np.isfinite(t)
    if not ok.any():
        raise ValueError(f"{name}: no pair with a finite target and prediction")
    return t[ok], p[ok]


def parity_plot(y_true: Any, y_pred: Any, path: PathLike, title: str = "", unit: str = "") -> Path:
    """Predicted against true values with the ``y = x`` line; MAE, R² and n in the upper-left corner.

    ``y_true`` and ``y_pred`` have the same shape (flattened; NaN targets dropped). A scatter up to
    5000 points, a log-count hexbin above. Axes are equal and share limits.
    """
    t, p = _finite_pairs(y_true, y_pred, "parity_plot")
    fig = _new_figure((5.0, 5.0))
    ax = fig.add_subplot()
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    pad = 0.03 * (hi - lo) if hi > lo else 1.0
    lo, hi = lo - pad, hi + pad
    if t.size > HEXBIN_ABOVE:
        hb = ax.hexbin(t, p, gridsize=80, bins="log", mincnt=1, cmap="viridis", extent=(lo, hi, lo, hi))
        fig.colorbar(hb, ax=ax, label="count", shrink=0.8)
    else:
        ax.scatter(t, p, s=8, alpha=0.6, edgecolors="none")
    ax.plot([lo, hi], [lo, hi], color="k", lw=1, ls="--", zorder=3)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    text = f"MAE = {mae(t, p):.4g}{' ' + unit if unit else ''}\nR² = {r2(t, p):.4f}\nn = {t.size}"
    ax.text(
        0.04, 0.96, text, transform=ax.transAxes, va="top", ha="left",
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8},
    )  # fmt: skip
    ax.set_xlabel(_with_unit("true", unit))
    ax.set_ylabel(_with_unit("predicted", unit))
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _epoch_series(df: pd.DataFrame, x: str, candidates: tuple[str, ...]) -> tuple[str, pd.Series] | None:
    """The first candidate column with data, averaged per ``x`` value (sparse Lightning rows dropped)."""
    for col in candidates:
        if col in df.columns:
            sub = df[[x, col]].apply(pd.to_numeric, errors="coerce").dropna()
            if len(sub):
                return col, sub.groupby(x)[col].mean()
    return None


def _maybe_log(ax: Any, series: list[pd.Series]) -> None:
    values = np.concatenate([s.to_numpy(dtype=float) for s in series])
    if values.size and np.all(values > 0) and values.max() / values.min() > 20:
        ax.set_yscale("log")


def _prefixed_series(df: pd.DataFrame, x: str, prefix: str) -> list[tuple[str, pd.Series]]:
    """Every column ``prefix`` or ``prefix<sep>...`` (sep ``_`` or ``-``; per-step ``..._step`` columns
    left out) with data, averaged per ``x``."""
    found = []
    for col in df.columns:
        if (col == prefix or col.startswith((prefix + "_", prefix + "-"))) and not col.endswith("_step"):
            series = _epoch_series(df, x, (col,))
            if series is not None:
                found.append(series)
    return found


def _panel(ax: Any, x: str, title: str, ylabel: str) -> None:
    ax.set_xlabel(x)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)


def learning_curves(
    metrics_csv: PathLike, path: PathLike, val_variance: dict[str, float] | None = None
) -> Path:
    """The seed's learning-curve panels against epoch, each drawn when logged: train/validation loss,
    validation MAE (``val_mae`` or one line per ``val_mae_<target>``), validation R² (per target, from
    ``val_mse_<target>`` and ``val_variance[target]``, the variance of the validation labels: exact,
    where a per-batch R² would not be) and the learning rate (``lr-<optimizer>`` columns, log scale).

    Reads a Lightning ``CSVLogger`` ``metrics.csv``: sparse rows where each column is filled only on the
    steps it was logged. The train loss is the first present of ``train_loss_epoch``, ``train_loss``,
    ``train_loss_step`` and is averaged per epoch. The x axis is ``epoch`` (``step`` when there is no
    epoch column, else the row number). Raises ``ValueError`` when no loss or MAE column has data.
    """
    try:
        df = pd.read_csv(metrics_csv)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"learning_curves: {metrics_csv} is empty") from err
    x = "epoch" if "epoch" in df.columns else "step" if "step" in df.columns else None
    if x is None:
        df = df.assign(row=np.arange(len(df)))
        x = "row"
    losses = [
        (label, found)
        for label, cols in (("train", TRAIN_LOSS_COLUMNS), ("validation", VAL_LOSS_COLUMNS))
        if (found := _epoch_series(df, x, cols)) is not None
    ]
    val_mae = _prefixed_series(df, x, "val_mae")
    if not losses and not val_mae:
        wanted = [*TRAIN_LOSS_COLUMNS, *VAL_LOSS_COLUMNS, "val_mae[_<target>]"]
        raise ValueError(
            f"learning_curves: {metrics_csv} has none of the columns {wanted} with data "
            f"(columns: {list(df.columns)})"
        )
    val_r2 = [
        (col, 1.0 - s / val_variance[col.removeprefix("val_mse_")])
        for col, s in _prefixed_series(df, x, "val_mse")
        if val_variance and val_variance.get(col.removeprefix("val_mse_"), 0.0) > 0
    ]
    # Lightning logs the learning rate at the start of an epoch without its epoch number: take the next row's
    rates = _prefixed_series(df.assign(**{x: df[x].bfill()}), x, "lr")
    panels = [
        kind
        for kind, present in (("loss", losses), ("mae", val_mae), ("r2", val_r2), ("lr", rates))
        if present
    ]
    fig = _new_figure((5.0 * len(panels), 4.0))
    axes = dict(zip(panels, fig.subplots(1, len(panels), squeeze=False)[0], strict=True))
    marker = lambda s: "o" if len(s) < 30 else None  # noqa: E731
    if losses:
        ax = axes["loss"]
        for label, (col, s) in losses:
            ax.plot(s.index, s.to_numpy(), marker=marker(s), ms=3, label=f"{label} ({col})")
        _maybe_log(ax, [s for _, (_, s) in losses])
        _panel(ax, x, "loss", "loss")
    if val_mae:
        ax = axes["mae"]
        for k, (col, s) in enumerate(val_mae):
            ax.plot(s.index, s.to_numpy(), color=f"C{2 + k}", marker=marker(s), ms=3, label=col)
        if len(val_mae) == 1:
            s = val_mae[0][1]
            best = int(np.argmin(s.to_numpy()))
            ax.axhline(s.iloc[best], color="C2", lw=0.8, ls=":", label=f"best {s.iloc[best]:.4g}")
        _maybe_log(ax, [s for _, s in val_mae])
        _panel(ax, x, "validation MAE", "validation MAE")
    if val_r2:
        ax = axes["r2"]
        for k, (col, s) in enumerate(val_r2):
            ax.plot(
                s.index,
                s.to_numpy(),
                color=f"C{2 + k}",
                marker=marker(s),
                ms=3,
                label=col.replace("mse", "r2"),
            )
        _panel(ax, x, "validation R²", "R²")
    if rates:
        ax = axes["lr"]
        for col, s in rates:
            ax.plot(s.index, s.to_numpy(), color="C7", marker=marker(s), ms=3, label=col)
        if all(bool((s.to_numpy() > 0).all()) for _, s in rates):  # a zero rate cannot be drawn on a log axis
            ax.set_yscale("log")
        _panel(ax, x, "learning rate", "learning rate")
    return _save(fig, path)


def error_histogram(y_true: Any, y_pred: Any, path: PathLike, unit: str = "", bins: int = 50) -> Path:
    """Histogram of signed errors ``y_pred - y_true`` with mean (bias), standard deviation and MAE."""
    t, p = _finite_pairs(y_true, y_pred, "error_histogram")
    err = p - t
    fig = _new_figure((5.5, 4.0))
    ax = fig.add_subplot()
    ax.hist(err, bins=bins, color="C0", alpha=0.8)
    ax.axvline(0.0, color="k", lw=1, ls="--")
    u = f" {unit}" if unit else ""
    text = (
        f"mean = {err.mean():.3g}{u}\nstd = {err.std():.3g}{u}\n"
        f"MAE = {np.abs(err).mean():.3g}{u}\nn = {err.size}"
    )
    ax.text(
        0.97, 0.96, text, transform=ax.transAxes, va="top", ha="right",
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8},
    )  # fmt: skip
    ax.set_xlabel(_with_unit("error (predicted − true)", unit))
    ax.set_ylabel("count")
    return _save(fig, path)


def error_vs_size(
    sizes: Any,
    y_true: Any,
    y_pred: Any,
    path: PathLike,
    unit: str = "",
    size_label: str = "number of atoms",
) -> Path:
    """Mean absolute error per integer size (top) and the number of structures per size (bottom).

    ``sizes``, ``y_true`` and ``y_pred`` are ``[N]`` (one value per structure); sizes are rounded to ints.
    """
    s = to_numpy(sizes).reshape(-1)
    t, p = to_numpy(y_true).reshape(-1), to_numpy(y_pred).reshape(-1)
    if not (s.shape == t.shape == p.shape):
        raise ValueError(f"error_vs_size: shapes differ: sizes {s.shape}, y_true {t.shape}, y_pred {p.shape}")
    ok = np.isfinite(s) & np.isfinite(t) & np.isfinite(p)
    if not ok.any():
        raise ValueError("error_vs_size: no structure with finite size, target and prediction")
    s, abs_err = np.rint(s[ok]).astype(int), np.abs(p[ok] - t[ok])
    uniq, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    per_size = np.bincount(inverse, weights=abs_err) / counts
    fig = _new_figure((6.0, 5.0))
    ax, ax_n = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    ax.plot(uniq, per_size, marker="o", ms=3, color="C0")
    ax.axhline(abs_err.mean(), color="k", lw=0.8, ls="--", label=f"overall MAE {abs_err.mean():.3g}")
    ax.set_ylabel(_with_unit("MAE", unit))
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    ax_n.bar(uniq, counts, width=0.8, color="C7")
    ax_n.set_ylabel("count")
    ax_n.set_xlabel(size_label)
    return _save(fig, path)


def error_qq_plot(y_true: Any, y_pred: Any, path: PathLike, unit: str = "") -> Path:
    """Q-Q plot of the errors against a normal distribution of the same mean and standard deviation:
    points on the line = Gaussian errors; tails bending away = more large errors than a Gaussian."""
    from scipy import stats

    t, p = _finite_pairs(y_true, y_pred, "error_qq_plot")
    err = np.sort(p - t)
    probabilities = (np.arange(1, err.size + 1) - 0.5) / err.size
    spread = err.std() if err.std() > 0 else 1.0
    normal = err.mean() + spread * stats.norm.ppf(probabilities)
    fig = _new_figure((5.0, 5.0))
    ax = fig.add_subplot()
    ax.plot(normal, err, ".", ms=3, alpha=0.6)
    ax.plot(normal[[0, -1]], normal[[0, -1]], "k--", lw=1, label="normal")
    ax.set_xlabel(_with_unit("normal quantile", unit))
    ax.set_ylabel(_with_unit("error quantile (predicted − true)", unit))
    ax.set_title("Q–Q plot of the errors")
    ax.legend(loc="upper left")  # a Q-Q plot rises: that corner is empty
    ax.grid(alpha=0.3)
    return _save(fig, path)


def error_vs_true(y_true: Any, y_pred: Any, path: PathLike, unit: str = "", bins: int = 20) -> Path:
    """|error| against the true value, with the mean |error| per bin of true values: where in the
    target's range the model is worst (often its sparsely sampled tails)."""
    t, p = _finite_pairs(y_true, y_pred, "error_vs_true")
    abs_err = np.abs(p - t)
    edges = np.linspace(t.min(), t.max(), bins + 1) if t.max() > t.min() else np.array([t.min(), t.min() + 1])
    which = np.clip(np.digitize(t, edges) - 1, 0, len(edges) - 2)
    counts = np.bincount(which, minlength=len(edges) - 1)
    means = np.bincount(which, weights=abs_err, minlength=len(edges) - 1) / np.maximum(counts, 1)
    fig = _new_figure((6.0, 4.0))
    ax = fig.add_subplot()
    ax.scatter(t, abs_err, s=4, alpha=0.3, color="C0", rasterized=True)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.plot(centres[counts > 0], means[counts > 0], "o-", color="C3", ms=3, label="mean |error| per bin")
    ax.set_xlabel(_with_unit("true value", unit))
    ax.set_ylabel(_with_unit("|error|", unit))
    ax.legend(loc="upper right", framealpha=0.9)  # not "best": it tests every point
    ax.grid(alpha=0.3)
    return _save(fig, path)


def dataset_plot(sizes: dict[str, Any], targets: dict[str, dict[str, Any]], path: PathLike) -> Path:
    """The data a run saw: a histogram of structure sizes per split (``sizes``: split -> [M] counts)
    and one of every target's labels per split (``targets``: "name [unit]" -> split -> [M] values)."""
    panels = 1 + len(targets)
    fig = _new_figure((4.5 * panels, 3.6))
    axes = fig.subplots(1, panels, squeeze=False)[0]
    every = np.concatenate([to_numpy(v).reshape(-1) for v in sizes.values()])
    edges = np.arange(every.min() - 0.5, every.max() + 1.5) if every.size else 10
    for split, values in sizes.items():
        axes[0].hist(to_numpy(values).reshape(-1), bins=edges, alpha=0.6, label=f"{split} ({len(values)})")
    axes[0].set_xlabel("atoms per structure")
    axes[0].set_ylabel("count")
    axes[0].legend(loc="best")
    for ax, (name, per_split) in zip(axes[1:], targets.items(), strict=True):
        for split, values in per_split.items():
            finite = to_numpy(values).reshape(-1)
            finite = finite[np.isfinite(finite)]
            ax.hist(finite, bins=40, alpha=0.6, density=True, label=split)
        ax.set_xlabel(name)
        ax.set_ylabel("density")
        ax.legend(loc="best")
    return _save(fig, path)


def attention_heatmaps(
    layers: Sequence[np.ndarray],
    heads: Sequence[np.ndarray],
    labels: Sequence[str],
    path: PathLike,
    head_layer: str = "",
    diversity: float | None = None,
) -> Path:
    """The seed's attention figures for one molecule: the atoms x atoms attention matrix of every layer
    (top row; heads averaged) and of every head of one layer (bottom row, ``head_layer`` names it, with
    its head ``diversity``). Row i of a matrix: how atom i spreads its attention; ``labels``: atom names."""
    columns = max(len(layers), len(heads))
    fig = _new_figure((3.2 * columns + 0.8, 6.6))
    axes = fig.subplots(2, columns, squeeze=False)
    image = None
    for row, (matrices, name) in enumerate(((layers, "layer"), (heads, "head"))):
        for k in range(columns):
            ax = axes[row, k]
            if k >= len(matrices):
                ax.set_visible(False)
                continue
            image = ax.imshow(matrices[k], cmap="YlOrRd", vmin=0.0, vmax=1.0)
            ax.set_xticks(range(len(labels)), labels, fontsize=6, rotation=90)
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
            title = f"{name} {k}" + (" (heads averaged)" if row == 0 and k == 0 else "")
            if row == 1 and k == 0:
                title = f"{head_layer}, head 0" if head_layer else "head 0"
                if diversity is not None:
                    title += f"\nhead diversity {diversity:.2f}"
            ax.set_title(title, fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="attention of row atom on column atom")
    return _save(fig, path)


def structures_grid(
    structures: Sequence[Any], titles: Sequence[str], path: PathLike, columns: int = 5
) -> Path:
    """ASE ``Atoms`` drawn side by side (atoms as element-coloured discs, cells outlined), one titled
    panel each: the worst-error structures of ``atomgraph check``, molecules and crystals alike."""
    from ase.visualize.plot import plot_atoms

    if not structures:
        raise ValueError("structures_grid: no structures to draw")
    columns = min(columns, len(structures))
    rows = -(-len(structures) // columns)
    fig = _new_figure((3.0 * columns, 3.2 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).reshape(-1)
    for ax, atoms, title in zip(axes, structures, titles, strict=False):
        plot_atoms(atoms, ax, rotation="10x,20y,0z", radii=0.4, show_unit_cell=2 if atoms.pbc.any() else 0)
        ax.set_title(title, fontsize=7)
        ax.set_axis_off()
    for ax in axes[len(structures) :]:
        ax.set_visible(False)
    return _save(fig, path)


def volume_response_plot(scales: Any, curves: Any, path: PathLike, unit: str = "", title: str = "") -> Path:
    """E(V) check: predicted change from the DFT cell against the cell's volume ratio ``s³``, one thin
    line per crystal (at most 100 drawn) and the median in bold."""
    scales, curves = np.asarray(scales, dtype=float), np.asarray(curves, dtype=float)
    volume = scales**3
    fig = _new_figure((5.0, 4.0))
    ax = fig.add_subplot()
    for curve in curves[:100]:
        ax.plot(volume, curve, color="C7", alpha=0.25, linewidth=0.8)
    ax.plot(volume, np.median(curves, axis=0), color="C3", linewidth=2.5, label=f"median of {len(curves)}")
    ax.axvline(1.0, color="k", linewidth=0.8, linestyle=":")
    ax.axhline(0.0, color="k", linewidth=0.8)
    ax.set_xlabel("V / V_DFT")
    ax.set_ylabel(_with_unit("prediction - prediction at V_DFT", unit))
    ax.set_title(title or "fixed chemistry, scaled cell")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def oversmoothing_plot(energies: Any, path: PathLike, title: str = "") -> Path:
    """The normalised Dirichlet energy of the node states after each message-passing block
    (:func:`atomgraph.evaluation.checks.dirichlet_energies`): towards 0, neighbours become alike."""
    energies = np.asarray(energies, dtype=float)
    fig = _new_figure((5.0, 3.5))
    ax = fig.add_subplot()
    ax.plot(np.arange(1, len(energies) + 1), energies, marker="o")
    ax.set_xlabel("message-passing block")
    ax.set_ylabel("Dirichlet energy (normalised)")
    ax.set_title(title or "node-state similarity with depth")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return _save(fig, path)


def comparison_bar(results: dict[str, float], path: PathLike, metric: str = "MAE", unit: str = "") -> Path:
    """Horizontal bars of one metric for several models and baselines, in the given order, values written.

    NaN values are drawn as empty bars labelled ``n/a``.
    """
    if not results:
        raise ValueError("comparison_bar: results is empty")
    names = list(results)
    values = np.array([float(results[n]) for n in names], dtype=float)
    fig = _new_figure((6.0, 0.5 * len(names) + 1.5))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    colors = ["C7" if "baseline" in n.lower() else "C0" for n in names]
    ax.barh(y, np.nan_to_num(values), color=colors)
    finite = values[np.isfinite(values)]
    span = float(np.abs(finite).max()) if finite.size else 1.0
    for yi, v in zip(y, values, strict=True):
        label = "n/a" if not np.isfinite(v) else f"{v:.4g}"
        ax.text((v if np.isfinite(v) else 0.0) + 0.01 * span, yi, label, va="center", fontsize=9)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(right=ax.get_xlim()[1] + 0.15 * span)
    ax.set_xlabel(_with_unit(metric, unit))
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def uncertainty_panels(
    y_true: Any, y_pred: Any, sigma: Any, path: PathLike, title: str = "", unit: str = ""
) -> Path:
    """Three panels for a predicted sigma: the calibration curve (observed vs expected fraction inside
    the central Gaussian interval, with the miscalibration area shaded); the root mean squared error
    against the root mean sigma in ten equal-count bins of sigma (calibrated: on ``y = x``); and the
    confidence curve (MAE of the rows kept when the most uncertain are dropped first, beside the best
    order, by error)."""
    from atomgraph.evaluation.calibration import LEVELS, confidence_curve, observed_coverage

    t, p, s = (to_numpy(a).ravel().astype(float) for a in (y_true, y_pred, sigma))
    if not t.shape == p.shape == s.shape:
        raise ValueError(f"uncertainty_panels: shapes differ ({t.shape}, {p.shape}, {s.shape})")
    ok = np.isfinite(t) & np.isfinite(p) & np.isfinite(s)
    t, p, s = t[ok], p[ok], s[ok]
    if t.size < 2:
        raise ValueError("uncertainty_panels: fewer than two rows with a label, prediction and sigma")
    fig = _new_figure((13.0, 4.2))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    observed = observed_coverage(t, p, s, LEVELS)
    ax1.plot([0, 1], [0, 1], "k--", lw=1)
    ax1.plot(LEVELS, observed, lw=2)
    ax1.fill_between(LEVELS, LEVELS, observed, alpha=0.2)
    ax1.set(xlabel="expected fraction in interval", ylabel="observed fraction", xlim=(0, 1), ylim=(0, 1),
            title=f"calibration (area {np.abs(observed - LEVELS).mean():.3f})")  # fmt: skip
    order = np.argsort(s)
    bins = [b for b in np.array_split(order, min(10, t.size)) if b.size]
    rmv = np.array([np.sqrt(np.mean(s[b] ** 2)) for b in bins])
    rmse = np.array([np.sqrt(np.mean((t[b] - p[b]) ** 2)) for b in bins])
    top = float(max(rmv.max(), rmse.max())) * 1.05
    ax2.plot([0, top], [0, top], "k--", lw=1)
    ax2.plot(rmv, rmse, "o-")
    ax2.set(xlabel=_with_unit("root mean sigma (bin)", unit), ylabel=_with_unit("RMSE (bin)", unit),
            title="error vs sigma", xlim=(0, top), ylim=(0, top))  # fmt: skip
    fractions, by_sigma, by_error = confidence_curve(t, p, s)
    ax3.plot(fractions, by_sigma, "o-", label="drop largest sigma")
    ax3.plot(fractions, by_error, "--", label="drop largest error (best)")
    ax3.invert_xaxis()
    ax3.set(
        xlabel="fraction of rows kept", ylabel=_with_unit("MAE of kept rows", unit), title="confidence curve"
    )
    ax3.legend(frameon=False, loc="best")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
