"""Affinity metrics: overall Pearson r, Spearman rho, Kendall tau, RMSE, MAE, and the same per target.

Ranking within a target is what lead optimisation needs (which of these ligands binds best to this
protein), so the per-target Spearman and Kendall tau, and their means over targets, are reported beside
the pooled numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from atomgraph.evaluation.metrics import kendall_tau, mae, pearson, rmse, spearman


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "pearson": pearson(y, p),
        "spearman": spearman(y, p),
        "kendall_tau": kendall_tau(y, p),
        "rmse": rmse(y, p),
        "mae": mae(y, p),
        "n": int((~np.isnan(y)).sum()),
    }


def _mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def affinity_metrics(
    y_true: Any, y_pred: Any, groups: Sequence[str] | None = None, min_group_size: int = 3
) -> dict[str, Any]:
    """Pooled metrics, and with ``groups`` (one label per row, e.g. the target) the metrics of every
    group (``per_target``) and the unweighted mean of Spearman and Kendall tau over groups with at least
    ``min_group_size`` labelled rows (``per_target_mean``). Units of RMSE/MAE are those of the labels
    (pK units for affinities)."""
    y = np.asarray(y_true, dtype=float).reshape(-1)
    p = np.asarray(y_pred, dtype=float).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"affinity_metrics: {y.shape[0]} labels but {p.shape[0]} predictions")
    out: dict[str, Any] = _scores(y, p)
    if groups is None:
        return out
    groups = np.asarray([str(g) for g in groups])
    if len(groups) != len(y):
        raise ValueError(f"affinity_metrics: {len(groups)} groups for {len(y)} rows")
    per: dict[str, dict[str, float]] = {}
    for group in sorted(set(groups.tolist())):
        rows = groups == group
        if (~np.isnan(y[rows])).sum() >= min_group_size:
            per[group] = _scores(y[rows], p[rows])
    out["per_target"] = per
    out["per_target_mean"] = {
        key: _mean([m[key] for m in per.values()]) for key in ("spearman", "kendall_tau", "pearson")
    }
    return out
