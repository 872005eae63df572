"""Ranking a screened library by an acquisition: the predicted mean, or an optimistic bound with sigma.

``mean``: rank by the prediction. ``ucb``: the upper confidence bound ``mu + kappa * sigma`` when the
largest values rank first (band gaps, affinities), the lower bound ``mu - kappa * sigma`` when the
smallest do (formation energies) -- the candidates that may be best once the model's uncertainty is
counted, as in Bayesian optimisation and active learning (kappa = 1 by default; 0 gives the mean).
"""

from __future__ import annotations

import numpy as np

ACQUISITIONS = ("mean", "ucb")


def acquisition_scores(
    mean: np.ndarray, sigma: np.ndarray | None, descending: bool, kind: str = "mean", kappa: float = 1.0
) -> np.ndarray:
    """Scores [M] to sort by (in the direction ``descending``) for means and sigmas [M]."""
    if kind not in ACQUISITIONS:
        raise ValueError(f"unknown acquisition {kind!r}; choose one of {ACQUISITIONS}")
    mean = np.asarray(mean, dtype=float)
    if kind == "mean":
        return mean
    if sigma is None:
        raise ValueError(
            "acquisition 'ucb' needs a sigma: screen with an ensemble (train --ensemble N) or a model "
            "with its own sigma (task.uncertainty=mean_variance or evidential)"
        )
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    return mean + (kappa if descending else -kappa) * np.asarray(sigma, dtype=float)
