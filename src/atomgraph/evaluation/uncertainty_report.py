"""The uncertainty part of a run's report: sigma scored on the test split, before and after the
recalibration fitted on the validation split (:mod:`atomgraph.evaluation.calibration`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from atomgraph.data import GraphDataset
from atomgraph.evaluation.calibration import fit_calibration, uncertainty_metrics
from atomgraph.evaluation.plots import uncertainty_panels
from atomgraph.evaluation.predict import predict_distribution
from atomgraph.training.run_files import CALIBRATION_FILE


def report_uncertainty(
    module: torch.nn.Module,
    val: GraphDataset,
    test: GraphDataset,
    run_dir: Path,
    batch_size: int = 128,
    mc_samples: int = 0,
    title: str = "",
) -> tuple[dict[str, dict], np.ndarray, np.ndarray]:
    """Score the sigma of ``module`` (its own, or MC dropout's with ``mc_samples``) on ``test`` after
    fitting the recalibration on ``val`` (written to ``run_dir/calibration.json``); draw
    ``plots/uncertainty_<target>.png`` with the recalibrated sigma.

    Returns ({target: {"uncertainty": raw metrics, "uncertainty_recalibrated": metrics with the scaled
    sigma, "conformal_95": coverage and mean width of the conformal intervals on the test rows}}, the
    recalibrated test sigma [M, T], the test means [M, T] that were scored).
    """
    validation = predict_distribution(module, val, batch_size, mc_samples)
    tested = predict_distribution(module, test, batch_size, mc_samples)
    return score_uncertainty(module.info, val.targets_array(), *validation, test.targets_array(), *tested,
                             run_dir, title)  # fmt: skip


def score_uncertainty(
    info,
    y_val: np.ndarray,
    mu_val: np.ndarray,
    sigma_val: np.ndarray,
    y_test: np.ndarray,
    mu_test: np.ndarray,
    sigma_test: np.ndarray,
    run_dir: Path,
    title: str = "",
) -> tuple[dict[str, dict], np.ndarray, np.ndarray]:
    """:func:`report_uncertainty` from predictions made elsewhere: labels, means and raw sigmas [M, T] of
    the validation and test rows (``info``: the targets' names and units). Same return and files."""
    calibration = fit_calibration(y_val, mu_val, sigma_val)
    calibration.save(Path(run_dir) / CALIBRATION_FILE)
    scaled = calibration.sigma(sigma_test)
    low, high = calibration.interval(mu_test, sigma_test)
    entries = {}
    for t, name in enumerate(info.names):
        labelled = ~np.isnan(y_test[:, t])
        inside = (y_test[labelled, t] >= low[labelled, t]) & (y_test[labelled, t] <= high[labelled, t])
        width = high[labelled, t] - low[labelled, t]
        entries[name] = {
            "uncertainty": uncertainty_metrics(y_test[:, t], mu_test[:, t], sigma_test[:, t]),
            "uncertainty_recalibrated": {
                **uncertainty_metrics(y_test[:, t], mu_test[:, t], scaled[:, t]),
                "scale": calibration.scale[t],
            },
            "conformal_95": {
                "n": int(labelled.sum()),
                "coverage": float(inside.mean()) if labelled.any() else float("nan"),
                "mean_width": float(width.mean()) if labelled.any() else float("nan"),
                "q": calibration.conformal[t],
            },
        }
        if labelled.sum() >= 2:
            uncertainty_panels(y_test[:, t], mu_test[:, t], scaled[:, t],
                               Path(run_dir) / "plots" / f"uncertainty_{name}.png",
                               f"{title}: {name} (test, recalibrated sigma)", info.units[t])  # fmt: skip
    return entries, scaled, mu_test
