"""Scalar metrics for regression, ranking and classification, NaN-aware.

Conventions shared by every function here:

* Inputs are array-likes or torch tensors of the same shape (any shape; they are flattened).
* Pairs whose *target* is NaN are dropped (missing labels). NaN predictions are kept and usually make
  the metric NaN, so a broken model never looks good.
* A ``ValueError`` naming the metric is raised when the shapes differ or no labelled pair is left.
* Errors (``mae``, ``rmse``) are in the unit of the targets; the rest are dimensionless.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy import stats

from atomgraph.evaluation._arrays import is_constant, paired, to_numpy

__all__ = [
    "classification_metrics",
    "kendall_tau",
    "mae",
    "pearson",
    "per_task_metrics",
    "r2",
    "regression_metrics",
    "rmse",
    "roc_auc",
    "spearman",
    "top_k_recall",
]


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error, in the unit of the targets."""
    t, p = paired(y_true, y_pred, "mae")
    return float(np.mean(np.abs(p - t)))


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root-mean-square error, in the unit of the targets."""
    t, p = paired(y_true, y_pred, "rmse")
    return float(np.sqrt(np.mean((p - t) ** 2)))


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot``.

    1 for a perfect prediction, 0 for predicting the mean of the (labelled) targets, negative when
    worse. NaN when the targets are constant (``SS_tot = 0``), where R² is undefined.
    """
    t, p = paired(y_true, y_pred, "r2")
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    return float(1.0 - np.sum((p - t) ** 2) / ss_tot)


def spearman(y_true: Any, y_pred: Any) -> float:
    """Spearman rank correlation (``scipy.stats.spearmanr``); NaN for constant input or fewer than 2 pairs."""
    t, p = paired(y_true, y_pred, "spearman")
    if is_constant(t) or is_constant(p):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(t, p).statistic)


def pearson(y_true: Any, y_pred: Any) -> float:
    """Pearson linear correlation; NaN for constant input or fewer than 2 pairs."""
    t, p = paired(y_true, y_pred, "pearson")
    if is_constant(t) or is_constant(p):
        return float("nan")
    tc, pc = t - t.mean(), p - p.mean()
    return float(np.sum(tc * pc) / np.sqrt(np.sum(tc**2) * np.sum(pc**2)))


def kendall_tau(y_true: Any, y_pred: Any) -> float:
    """Kendall's tau-b rank correlation (``scipy.stats.kendalltau``); NaN for constant input."""
    t, p = paired(y_true, y_pred, "kendall_tau")
    if is_constant(t) or is_constant(p):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.kendalltau(t, p).statistic)


def top_k_recall(y_true: Any, y_pred: Any, k: int = 100, largest: bool = False) -> float:
    """Fraction of the true top-``k`` that is also in the predicted top-``k``.

    The top-k are the ``k`` smallest values when ``largest=False`` (e.g. the most stable formation
    energies) and the ``k`` largest when ``largest=True`` (e.g. the highest binding affinities).
    ``k`` is clipped to the number of labelled pairs ``n`` (so ``k >= n`` gives 1.0 trivially).
    Ties at the boundary are broken by position (stable sort); NaN predictions rank last.
    """
    t, p = paired(y_true, y_pred, "top_k_recall")
    if k < 1:
        raise ValueError(f"top_k_recall: k must be >= 1, got {k}")
    k = min(int(k), t.size)
    sign = -1.0 if largest else 1.0
    # argsort puts NaN last for both signs, so NaN predictions never enter the top-k before real ones.
    true_top = np.argsort(sign * t, kind="stable")[:k]
    pred_top = np.argsort(sign * p, kind="stable")[:k]
    return float(np.intersect1d(true_top, pred_top).size / k)


def _binary_labels(y: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isin(y, (0.0, 1.0))):
        raise ValueError(f"{name}: labels must be 0/1 (or NaN for missing), got {np.unique(y)[:5]}")
    return y.astype(int)


def roc_auc(y_true_binary: Any, scores: Any) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``) for 0/1 labels and real scores.

    Scores may be probabilities or logits (only their order matters). NaN when only one class is present.
    """
    t, s = paired(y_true_binary, scores, "roc_auc")
    labels = _binary_labels(t, "roc_auc")
    if np.unique(labels).size < 2:
        return float("nan")
    if np.isnan(s).any():
        raise ValueError("roc_auc: scores contain NaN where the label is present")
    from sklearn.metrics import roc_auc_score  # here: scikit-learn costs ~0.8 s of every start-up

    return float(roc_auc_score(labels, s))


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """``{"mae", "rmse", "r2", "spearman", "n"}`` over the labelled pairs (``n`` is an int count)."""
    t, p = paired(y_true, y_pred, "regression_metrics")
    return {
        "mae": mae(t, p),
        "rmse": rmse(t, p),
        "r2": r2(t, p),
        "spearman": spearman(t, p),
        "n": int(t.size),
    }


def classification_metrics(y_true: Any, prob: Any, threshold: float = 0.5) -> dict[str, float]:
    """``{"roc_auc", "accuracy", "n"}`` for 0/1 labels and predicted probabilities of class 1.

    Accuracy counts ``prob >= threshold`` as class 1. ``roc_auc`` is NaN when only one class is present.
    """
    t, p = paired(y_true, prob, "classification_metrics")
    labels = _binary_labels(t, "classification_metrics")
    return {
        "roc_auc": roc_auc(t, p),
        "accuracy": float(np.mean((p >= threshold).astype(int) == labels)),
        "n": int(t.size),
    }


def per_task_metrics(
    y_true: Any,
    y_pred: Any,
    names: Sequence[str],
    kind: Literal["regression", "classification"] = "regression",
) -> dict[str, dict[str, float]]:
    """Metrics of each column of ``[N, T]`` targets and predictions, keyed by task name.

    ``kind="regression"`` uses :func:`regression_metrics`, ``"classification"`` uses
    :func:`classification_metrics` (predictions are probabilities). A 1D input is treated as one task.
    A task with no labels raises ``ValueError`` naming the task.
    """
    t = to_numpy(y_true)
    p = to_numpy(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"per_task_metrics: shapes differ: y_true {t.shape} vs y_pred {p.shape}")
    if t.ndim == 1:
        t, p = t[:, None], p[:, None]
    if t.ndim != 2:
        raise ValueError(f"per_task_metrics: expected [N, T] arrays, got shape {t.shape}")
    names = list(names)
    if len(names) != t.shape[1]:
        raise ValueError(f"per_task_metrics: {len(names)} names for {t.shape[1]} tasks")
    if kind == "regression":
        fn = regression_metrics
    elif kind == "classification":
        fn = classification_metrics
    else:
        raise ValueError(f"per_task_metrics: kind must be 'regression' or 'classification', got {kind!r}")
    out: dict[str, dict[str, float]] = {}
    for j, name in enumerate(names):
        try:
            out[name] = fn(t[:, j], p[:, j])
        except ValueError as err:
            raise ValueError(f"per_task_metrics: task {name!r}: {err}") from err
    return out
