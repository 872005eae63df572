"""The test report of a run on node-level targets (one label per atom, e.g. QM9's Mulliken charges).

Every atom of the test molecules is one scored row: the model's MAE, RMSE, R² and Spearman per
target beside the training mean of all atoms and the training mean of the atom's element (what the
atom type alone tells), and the error of the per-molecule sum (for charges: the molecule's total
charge, zero in the data, so it measures how neutral the predicted charges are). Plots: parity, error
histogram, Q-Q, |error| vs true value, MAE per element, the labels per split and the learning curves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from atomgraph.evaluation.baselines import ElementMeanBaseline, MeanBaseline
from atomgraph.evaluation.metrics import regression_metrics
from atomgraph.evaluation.plots import (
    error_histogram,
    error_qq_plot,
    error_vs_size,
    error_vs_true,
    parity_plot,
)
from atomgraph.evaluation.predict import predict_graphs
from atomgraph.evaluation.report import (
    dataset_panels,
    run_header,
    training_history,
    validation_variance,
    write_report,
)


def graph_sums(values: np.ndarray, natoms: np.ndarray) -> np.ndarray:
    """Per-atom values [sum n] summed per graph [M] (NaN where a graph has a missing label)."""
    starts = np.concatenate([[0], np.cumsum(natoms)[:-1]]).astype(np.int64)
    return np.add.reduceat(values, starts) if len(values) else np.zeros(0)


def _error_size(truth: np.ndarray, guess: np.ndarray) -> dict:
    scores = regression_metrics(truth, guess)
    return {key: scores[key] for key in ("mae", "rmse", "n")}


def evaluate_node_targets(run_dir: Path, config: dict, dataset, split, module, verbose: bool = True) -> dict:
    """Write ``metrics.json``, ``predictions_test.csv`` (one row per test atom) and ``plots/`` for a run
    on node-level targets; return the metrics (see the module docstring)."""
    info = dataset.targets
    parts = {name: dataset[torch.as_tensor(split[name])] for name in ("train", "val", "test")}
    train, test = parts["train"], parts["test"]
    labels = {name: part.targets_array() for name, part in parts.items()}
    y_test = labels["test"]
    pred = predict_graphs(module, test, config["training"]["eval_batch_size"])
    if pred.shape != y_test.shape:
        raise ValueError(f"the model predicts {pred.shape} for node-level labels {y_test.shape}")
    natoms = test.num_atoms()
    z_test, z_train = np.concatenate(test.atomic_numbers()), np.concatenate(train.atomic_numbers())
    plots = run_dir / "plots"
    title = config["model"]["name"]
    tests: dict = {}
    ids = [dataset.meta.ids[i] for i in split["test"]] if dataset.meta.ids else list(split["test"])
    table = {
        "id": np.repeat(ids, natoms),
        "atom": np.concatenate([np.arange(n) for n in natoms]),
        "z": z_test,
    }
    for t, name in enumerate(info.names):
        unit, truth, guess = info.units[t], y_test[:, t], pred[:, t]
        y_train = labels["train"][:, t]
        tests[name] = {
            "unit": unit,
            "level": "node (one row per atom)",
            "model": regression_metrics(truth, guess),
            "mean_baseline": regression_metrics(truth, MeanBaseline().fit(y_train).predict(len(truth))),
            "element_mean_baseline": regression_metrics(
                truth, ElementMeanBaseline().fit(z_train, y_train).predict(z_test)
            ),
            # the sums may be constant (a molecule's total charge is 0): R² and rank are not defined
            "sum_per_graph": _error_size(graph_sums(truth, natoms), graph_sums(guess, natoms)),
        }
        table[f"{name}_true"], table[f"{name}_pred"] = truth, guess
        heading = f"{title}: {name} (test atoms)"
        parity_plot(truth, guess, plots / f"parity_{name}.png", title=heading, unit=unit)
        error_histogram(truth, guess, plots / f"errors_{name}.png", unit=unit)
        error_qq_plot(truth, guess, plots / f"errors_qq_{name}.png", unit=unit)
        error_vs_true(truth, guess, plots / f"error_vs_true_{name}.png", unit=unit)
        by_element = plots / f"error_vs_element_{name}.png"
        error_vs_size(z_test, truth, guess, by_element, unit=unit, size_label="atomic number Z")
    dataset_panels(info, parts, labels, plots / "dataset.png")
    results = {**run_header(config, split, module), "n_test_atoms": int(natoms.sum()), "test": tests}
    training_history(run_dir, results, validation_variance(info, labels["val"]))
    return write_report(run_dir, config, results, table, verbose)
