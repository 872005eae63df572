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

from atomgraph.lazy_names import lazy_names

# Each public name's module, imported on first use: ``predict`` and ``screen`` import this package, and
# baselines (scikit-learn) and plots (matplotlib) would add ~1 s to every start-up they do not use.
_MODULES = {
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
__all__ = sorted(name for names in _MODULES.values() for name in names)
__getattr__, __dir__ = lazy_names(
    __name__, {name: module for module, names in _MODULES.items() for name in names}, _MODULES
)
