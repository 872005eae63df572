"""Array plumbing shared by metrics, baselines and plots: tensors to numpy, shape checks, NaN masks."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy(x: Any, dtype: Any = float) -> np.ndarray:
    """``x`` (numpy array, list, scalar or torch tensor on any device) as a numpy array of ``dtype``."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def paired(y_true: Any, y_pred: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Flattened float arrays of the pairs whose target is not NaN.

    Raises ``ValueError`` mentioning ``name`` when the shapes differ or no labelled pair is left.
    NaN *predictions* are kept: a model that outputs NaN should produce a NaN metric, not a good one.
    """
    t = to_numpy(y_true)
    p = to_numpy(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"{name}: shapes differ: y_true {t.shape} vs y_pred {p.shape}")
    t = t.reshape(-1)
    p = p.reshape(-1)
    keep = ~np.isnan(t)
    if not keep.any():
        raise ValueError(f"{name}: no pairs with a non-NaN target (of {t.size})")
    return t[keep], p[keep]


def is_constant(x: np.ndarray) -> bool:
    """True when all entries are equal or there are fewer than two: correlations are undefined."""
    return x.size < 2 or bool(np.all(x == x[0]))
