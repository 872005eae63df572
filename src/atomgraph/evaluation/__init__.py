"""Evaluation: honest numbers and plots.

* :mod:`~atomgraph.evaluation.metrics` — NaN-aware metrics (MAE, RMSE, R², rank correlations,
  top-k recall, ROC AUC) and per-task summaries. Pairs with a NaN target are ignored everywhere.
* :mod:`~atomgraph.evaluation.baselines` — what every model is reported beside: the training mean and
  a composition-only regression (ridge or small MLP on element counts or fractions).
* :mod:`~atomgraph.evaluation.plots` — parity, learning curves, error histogram, error vs size and
  model comparison, each written to a PNG (Agg, no pyplot state).

Inputs are numpy arrays or torch tensors; errors are in the unit of the targets (eV, eV/Å, ...).
"""

from __future__ import annotations

import importlib
from typing import Any

# Each public name's module, imported on first use: ``predict`` and ``screen`` import this package, and
# baselines (scikit-learn) and plots (matplotlib) would add ~1 s to every start-up they do not use.
_HOMES = {
    "baselines": ["CompositionBaseline", "MeanBaseline", "composition_matrix"],
    "metrics": [
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
    ],
    "plots": ["comparison_bar", "error_histogram", "error_vs_size", "learning_curves", "parity_plot"],
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    """A public name (or one of its modules: ``evaluation.metrics``), imported on first use."""
    if name in _HOMES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _HOME_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME_OF[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_HOMES})


__all__ = [
    "CompositionBaseline",
    "MeanBaseline",
    "classification_metrics",
    "comparison_bar",
    "composition_matrix",
    "error_histogram",
    "error_vs_size",
    "kendall_tau",
    "learning_curves",
    "mae",
    "parity_plot",
    "pearson",
    "per_task_metrics",
    "r2",
    "regression_metrics",
    "rmse",
    "roc_auc",
    "spearman",
    "top_k_recall",
]
