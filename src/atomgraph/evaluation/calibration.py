"""How good a predicted sigma is, and making it honest on the validation split.

Metrics (:func:`uncertainty_metrics`, for errors ``e = y - mu`` and predicted ``sigma``, all in the
target's unit except where said):

* ``nll``: mean Gaussian negative log-likelihood ``0.5 log(2 pi sigma^2) + e^2 / (2 sigma^2)`` (nats);
* ``miscalibration_area``: mean over p in 99 equally spaced levels (0.01 .. 0.99) of
  |observed - p|, where "observed" is the fraction of rows inside the central Gaussian interval of
  probability p (0: calibrated; 0.5 the worst), as uncertainty-toolbox's ``miscalibration_area``;
* ``spearman_abs_error_sigma``: rank correlation of |e| and sigma (does sigma rank the errors?);
* ``coverage_68``, ``coverage_95``: fractions of rows within mu +- 1 sigma and mu +- 1.96 sigma;
* ``mean_sigma`` and ``rmse``, for comparing the average claimed and the actual error.

Recalibration on the validation split (:func:`fit_calibration`): **variance scaling**, the one factor
``s = sqrt(mean((e / sigma)^2))`` that maximises the validation likelihood of ``N(mu, (s sigma)^2)``;
and **split-conformal intervals** (normalised by sigma): ``q`` = the ceil((n + 1) c) / n empirical
quantile of |e| / sigma on the n validation rows, so that mu +- q sigma covers a new row with
probability >= c when rows are exchangeable (Lei et al. 2018). I wrote these few formulas here rather
than depend on uncertainty-toolbox or MAPIE: both would need their own pinned stacks, and the tests check
the formulas on synthetic data with known answers.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from atomgraph.evaluation.jsonfile import write_json

if TYPE_CHECKING:
    from atomgraph.runs import TrainedRun

#: the coverage of the conformal intervals written by predict and scored in reports
CONFORMAL_COVERAGE = 0.95


def _valid(y: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y, mu, sigma = (np.asarray(a, dtype=float).ravel() for a in (y, mu, sigma))
    ok = ~(np.isnan(y) | np.isnan(mu) | np.isnan(sigma))
    return y[ok] - mu[ok], np.maximum(sigma[ok], 1e-12)


def observed_coverage(y: ArrayLike, mu: ArrayLike, sigma: ArrayLike, levels: ArrayLike) -> np.ndarray:
    """Fraction of rows inside the central Gaussian interval of each probability in ``levels``."""
    error, sigma = _valid(y, mu, sigma)
    z = np.abs(error) / sigma
    half_widths = stats.norm.ppf(0.5 + np.asarray(levels) / 2)
    return (z[None, :] <= half_widths[:, None]).mean(1)


LEVELS = np.linspace(0.01, 0.99, 99)


def uncertainty_metrics(y: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> dict:
    """The metrics of the module docstring (plus ``n``), as floats, for labels, means and sigmas [M]
    in one unit (NaN rows dropped)."""
    error, sigma = _valid(y, mu, sigma)
    n = len(error)
    if n == 0:
        return {"n": 0}
    nll = 0.5 * np.log(2 * np.pi * sigma**2) + error**2 / (2 * sigma**2)
    z = np.abs(error) / sigma
    rho = stats.spearmanr(np.abs(error), sigma).statistic if n > 2 and np.ptp(sigma) > 0 else float("nan")
    observed = (z[None, :] <= stats.norm.ppf(0.5 + LEVELS / 2)[:, None]).mean(1)
    return {
        "n": n,
        "nll": float(nll.mean()),
        "miscalibration_area": float(np.abs(observed - LEVELS).mean()),
        "spearman_abs_error_sigma": float(rho),
        "coverage_68": float((z <= 1.0).mean()),
        "coverage_95": float((z <= 1.959964).mean()),
        "mean_sigma": float(sigma.mean()),
        "rmse": float(np.sqrt((error**2).mean())),
    }


@dataclass
class Calibration:
    """Per-target recalibration fitted on the validation split: ``scale`` multiplies sigma;
    ``conformal`` is q of the intervals mu +- q * sigma (raw sigma) at ``coverage``; ``n`` rows used."""

    scale: list[float]
    conformal: list[float]
    coverage: float
    n: list[int]

    def sigma(self, sigma: np.ndarray) -> np.ndarray:
        """Recalibrated sigma [M, T] from raw sigma [M, T]."""
        return np.asarray(sigma) * np.asarray(self.scale)[None, :]

    def interval(self, mu: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Conformal lower and upper bounds [M, T] from mean and raw sigma [M, T]."""
        half = np.asarray(sigma) * np.asarray(self.conformal)[None, :]
        return mu - half, mu + half

    def save(self, path: str | Path) -> None:
        """Write as strict JSON (an infinite ``conformal`` q -- too few validation rows -- as null)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read what :meth:`save` wrote."""
        return cls.from_record(json.loads(Path(path).read_text()))

    @classmethod
    def from_record(cls, record: dict) -> Calibration:
        """From the JSON record :meth:`save` writes (null q: infinite)."""
        values = dict(record)
        values["conformal"] = [math.inf if q is None else q for q in values["conformal"]]
        return cls(**values)


def value_columns(names: list[str], sigma: bool, intervals: bool) -> list[str]:
    """The value columns ``predict`` writes: the targets, then (with a sigma) ``<target>_sigma``, then
    (with a calibration) the conformal bounds ``<target>_low`` and ``<target>_high``."""
    columns = [*names, *(f"{n}_sigma" for n in names if sigma)]
    return columns + [f"{n}_{side}" for side in ("low", "high") for n in names if intervals]


def uncertainty_values(mean: np.ndarray, sigma: np.ndarray, calibration: Calibration | None) -> np.ndarray:
    """The values the screens write (as ``predict`` does) for means and raw sigmas [M, T], in the order
    of :func:`value_columns`: means, sigmas (recalibrated by
    ``calibration``) and, with a calibration, its conformal lower and upper bounds ``mean -+ q sigma``
    (raw sigma) -- [M, 2T], or [M, 4T] with one; in the target's unit."""
    mean, sigma = np.asarray(mean, dtype=float), np.asarray(sigma, dtype=float)
    if calibration is None:
        return np.concatenate([mean, sigma], axis=1)
    return np.concatenate([mean, calibration.sigma(sigma), *calibration.interval(mean, sigma)], axis=1)


def variance_scale(y: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> float:
    """``sqrt(mean((e / sigma)^2))``: the maximum-likelihood factor for sigma (1 with no rows)."""
    error, sigma = _valid(y, mu, sigma)
    return float(np.sqrt(np.mean((error / sigma) ** 2))) if len(error) else 1.0


def conformal_quantile(
    y: ArrayLike, mu: ArrayLike, sigma: ArrayLike, coverage: float = CONFORMAL_COVERAGE
) -> float:
    """Split-conformal q with P(|e| <= q sigma) >= coverage for a new exchangeable row (inf when the
    validation rows are too few for that coverage)."""
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    error, sigma = _valid(y, mu, sigma)
    n = len(error)
    rank = math.ceil((n + 1) * coverage)
    if n == 0 or rank > n:
        return float("inf")
    return float(np.sort(np.abs(error) / sigma)[rank - 1])


def fit_calibration(
    y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, coverage: float = CONFORMAL_COVERAGE
) -> Calibration:
    """A :class:`Calibration` from validation labels, means and raw sigmas, all [M, T]."""
    y, mu, sigma = (np.asarray(a, dtype=float) for a in (y, mu, sigma))
    y, mu, sigma = (a[:, None] if a.ndim == 1 else a for a in (y, mu, sigma))
    columns = range(y.shape[1])
    return Calibration(
        scale=[variance_scale(y[:, t], mu[:, t], sigma[:, t]) for t in columns],
        conformal=[conformal_quantile(y[:, t], mu[:, t], sigma[:, t], coverage) for t in columns],
        coverage=coverage,
        n=[int((~np.isnan(y[:, t])).sum()) for t in columns],
    )


def confidence_curve(
    y: ArrayLike, mu: ArrayLike, sigma: ArrayLike, steps: int = 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fraction of rows kept, MAE of the rows kept when the most uncertain are dropped first, MAE of
    the rows kept when the largest errors are dropped first = the best any sigma could do)."""
    error, sigma = _valid(y, mu, sigma)
    fractions = np.linspace(1.0, 1.0 / steps, steps)
    by_sigma, by_error = np.abs(error)[np.argsort(sigma)], np.sort(np.abs(error))
    keep = [max(1, round(f * len(error))) for f in fractions]
    return (
        fractions,
        np.array([by_sigma[:k].mean() for k in keep]),
        np.array([by_error[:k].mean() for k in keep]),
    )


def run_calibration(run: TrainedRun) -> Calibration | None:
    """The recalibration of a :class:`~atomgraph.runs.TrainedRun` (its report's, or the one its exported
    file carries), or None."""
    return None if run.calibration is None else Calibration.from_record(run.calibration)
