"""Baselines that every model result is reported beside.

* :class:`MeanBaseline` predicts the training mean: the floor any model must beat.
* :class:`CompositionBaseline` regresses the target on element counts (or fractions) alone, with no
  geometry: for energies this is the classic "sum of per-element reference energies" fit. Use counts
  for extensive targets (total energies) and ``fractions=True`` for intensive ones (energy per atom,
  band gaps); the caller chooses.
* :class:`ElementMeanBaseline` predicts a node-level label (one per atom, e.g. a partial charge) as
  the training mean of the atom's element: what an atom's type alone tells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from atomgraph.evaluation._arrays import to_numpy

__all__ = ["CompositionBaseline", "ElementMeanBaseline", "MeanBaseline", "composition_matrix"]

RIDGE_ALPHAS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


class MeanBaseline:
    """Predicts the NaN-aware mean of the training targets (per column for ``[N, T]`` targets)."""

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None

    def fit(self, y_train: Any) -> MeanBaseline:
        """Store the mean of ``y_train`` (``[N]`` or ``[N, T]``), ignoring NaN; returns ``self``."""
        y = to_numpy(y_train)
        if y.ndim not in (1, 2) or y.shape[0] == 0:
            raise ValueError(f"MeanBaseline.fit: expected non-empty [N] or [N, T] targets, got {y.shape}")
        labelled = (~np.isnan(y)).sum(axis=0)
        if np.any(labelled == 0):
            raise ValueError("MeanBaseline.fit: a target column has no non-NaN value")
        self.mean_ = np.nanmean(y, axis=0)
        return self

    def predict(self, n: int) -> np.ndarray:
        """``n`` copies of the training mean: shape ``[n]`` (1D fit) or ``[n, T]`` (2D fit)."""
        if self.mean_ is None:
            raise RuntimeError("MeanBaseline.predict called before fit")
        return np.broadcast_to(self.mean_, (int(n), *np.shape(self.mean_))).copy()


class ElementMeanBaseline:
    """Per-atom labels [N] predicted as the NaN-aware training mean of each atom's element; elements
    absent from the training atoms get the mean of all training atoms."""

    def __init__(self) -> None:
        self.means_: dict[int, float] = {}
        self.overall_: float | None = None

    def fit(self, z_train: Any, y_train: Any) -> ElementMeanBaseline:
        """Fit on atomic numbers [N] and labels [N] of the training atoms; returns ``self``."""
        z, y = to_numpy(z_train, dtype=np.int64).reshape(-1), to_numpy(y_train).reshape(-1)
        if z.shape != y.shape:
            raise ValueError(f"ElementMeanBaseline.fit: {z.shape[0]} atomic numbers for {y.shape[0]} labels")
        ok = ~np.isnan(y)
        if not ok.any():
            raise ValueError("ElementMeanBaseline.fit: no labelled atom")
        self.overall_ = float(y[ok].mean())
        self.means_ = {int(e): float(y[ok & (z == e)].mean()) for e in np.unique(z[ok])}
        return self

    def predict(self, z: Any) -> np.ndarray:
        """The element means for atomic numbers [N]."""
        if self.overall_ is None:
            raise RuntimeError("ElementMeanBaseline.predict called before fit")
        numbers = to_numpy(z, dtype=np.int64).reshape(-1)
        return np.array([self.means_.get(int(e), self.overall_) for e in numbers], dtype=float)


def composition_matrix(
    atomic_numbers: Sequence[Any], max_z: int = 100, fractions: bool = False
) -> np.ndarray:
    """Element counts (or fractions) per structure, shape ``[n_structures, max_z]``.

    Column ``j`` holds element ``Z = j + 1``. ``atomic_numbers`` is a list of integer arrays (or
    tensors), one per structure. With ``fractions=True`` each non-empty row sums to 1. Atomic numbers
    outside ``1..max_z`` raise ``ValueError``.
    """
    out = np.zeros((len(atomic_numbers), max_z), dtype=float)
    for i, numbers in enumerate(atomic_numbers):
        z = to_numpy(numbers, dtype=np.int64).reshape(-1)
        if z.size == 0:
            continue
        if z.min() < 1 or z.max() > max_z:
            raise ValueError(f"composition_matrix: structure {i} has atomic numbers outside 1..{max_z}")
        out[i] = np.bincount(z - 1, minlength=max_z)
    if fractions:
        totals = out.sum(axis=1, keepdims=True)
        out = np.divide(out, totals, out=np.zeros_like(out), where=totals > 0)
    return out


class CompositionBaseline:
    """Regression of a scalar target on composition only.

    Args:
        model: ``"ridge"`` (linear: per-element contributions plus intercept) or ``"mlp"`` (small
            sklearn ``MLPRegressor``, inputs and target standardised, early stopping).
        fractions: use element fractions instead of counts (intensive targets).
        alpha: ridge penalty; ``None`` picks it by cross-validation (``RidgeCV`` over ``RIDGE_ALPHAS``).
        seed: random state of the MLP (initialisation, early-stopping split).
        max_z: largest atomic number; elements never seen in training contribute 0 at prediction.
        fit_intercept: ridge intercept (a per-structure constant).
        hidden: MLP hidden layer sizes.

    After :meth:`fit`, ``coef_`` (ridge only) holds the per-element contributions, ``[max_z]``, in
    target units per atom (counts) or per unit fraction (fractions); ``intercept_`` the constant.
    """

    def __init__(
        self,
        model: Literal["ridge", "mlp"] = "ridge",
        fractions: bool = False,
        alpha: float | None = 1e-3,
        seed: int = 0,
        max_z: int = 100,
        fit_intercept: bool = True,
        hidden: tuple[int, ...] = (64, 64),
    ) -> None:
        if model not in ("ridge", "mlp"):
            raise ValueError(f"CompositionBaseline: model must be 'ridge' or 'mlp', got {model!r}")
        self.model = model
        self.fractions = fractions
        self.alpha = alpha
        self.seed = seed
        self.max_z = max_z
        self.fit_intercept = fit_intercept
        self.hidden = hidden
        self.estimator_: Any = None

    def _features(self, numbers_list: Sequence[Any]) -> np.ndarray:
        return composition_matrix(numbers_list, max_z=self.max_z, fractions=self.fractions)

    def _make_estimator(self, n_samples: int) -> Any:
        if self.model == "ridge":
            if self.alpha is None:
                return RidgeCV(alphas=RIDGE_ALPHAS, fit_intercept=self.fit_intercept)
            return Ridge(alpha=self.alpha, fit_intercept=self.fit_intercept)
        mlp = MLPRegressor(
            hidden_layer_sizes=self.hidden,
            early_stopping=n_samples >= 50,  # needs a validation split worth the name
            max_iter=1000,
            n_iter_no_change=20,
            random_state=self.seed,
        )
        return TransformedTargetRegressor(
            regressor=make_pipeline(StandardScaler(), mlp), transformer=StandardScaler()
        )

    def fit(self, numbers_list: Sequence[Any], y: Any) -> CompositionBaseline:
        """Fit on a list of per-structure atomic-number arrays and a 1D target; NaN targets are dropped."""
        target = to_numpy(y)
        if target.ndim == 2 and target.shape[1] == 1:
            target = target[:, 0]
        if target.ndim != 1:
            raise ValueError(f"CompositionBaseline.fit: expected a 1D target, got shape {target.shape}")
        if len(numbers_list) != target.shape[0]:
            raise ValueError(
                f"CompositionBaseline.fit: {len(numbers_list)} structures but {target.shape[0]} targets"
            )
        keep = ~np.isnan(target)
        if not keep.any():
            raise ValueError("CompositionBaseline.fit: no non-NaN target")
        x = self._features(numbers_list)[keep]
        self.estimator_ = self._make_estimator(int(keep.sum()))
        self.estimator_.fit(x, target[keep])
        return self

    def predict(self, numbers_list: Sequence[Any]) -> np.ndarray:
        """Predicted targets, shape ``[n_structures]``."""
        if self.estimator_ is None:
            raise RuntimeError("CompositionBaseline.predict called before fit")
        return np.asarray(self.estimator_.predict(self._features(numbers_list)), dtype=float)

    @property
    def coef_(self) -> np.ndarray:
        """Per-element contributions ``[max_z]`` (column ``j`` is ``Z = j + 1``); ridge only."""
        if self.model != "ridge" or self.estimator_ is None:
            raise AttributeError("coef_ exists only for a fitted ridge CompositionBaseline")
        return np.asarray(self.estimator_.coef_, dtype=float)

    @property
    def intercept_(self) -> float:
        """Constant term of the ridge fit (0 with ``fit_intercept=False``); ridge only."""
        if self.model != "ridge" or self.estimator_ is None:
            raise AttributeError("intercept_ exists only for a fitted ridge CompositionBaseline")
        return float(self.estimator_.intercept_)
