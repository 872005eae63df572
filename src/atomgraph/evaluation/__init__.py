"""Evaluation: honest numbers and plots.

* :mod:`~atomgraph.evaluation.metrics` — NaN-aware metrics (MAE, RMSE, R², rank correlations,
  top-k recall, ROC AUC) and per-task summaries. Pairs with a NaN target are ignored everywhere.
* :mod:`~atomgraph.evaluation.baselines` — what every model is reported beside: the training mean and
  a composition-only regression (ridge or small MLP on element counts or fractions).
* :mod:`~atomgraph.evaluation.plots` — parity, learning curves, error histogram, error vs size and
  model comparison, each written to a PNG (Agg, no pyplot state).

Inputs are numpy arrays or torch tensors; errors are in the unit of the targets (eV, eV/Å, ...).
"""

from atomgraph.evaluation.baselines import CompositionBaseline, MeanBaseline, composition_matrix
from atomgraph.evaluation.metrics import (
    classification_metrics,
    kendall_tau,
    mae,
    pearson,
    per_task_metrics,
    r2,
    regression_metrics,
    rmse,
    roc_auc,
    spearman,
    top_k_recall,
)
from atomgraph.evaluation.plots import (
    comparison_bar,
    error_histogram,
    error_vs_size,
    learning_curves,
    parity_plot,
)

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
