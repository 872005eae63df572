"""Evaluate a finished run on its test split: metrics beside baselines, predictions and plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from atomgraph.evaluation.baselines import CompositionBaseline, MeanBaseline
from atomgraph.evaluation.metrics import classification_metrics, regression_metrics
from atomgraph.evaluation.plots import error_histogram, error_vs_size, learning_curves, parity_plot
from atomgraph.evaluation.predict import predict_graphs


def _baselines(train, test, t: int, extensive: bool, kind: str) -> dict[str, np.ndarray]:
    """Mean and composition-only predictions of target t for the test rows."""
    y_train = train.targets_array()[:, t]
    out = {"mean_baseline": MeanBaseline().fit(y_train).predict(len(test))}
    if kind == "regression":
        composition = CompositionBaseline("ridge", fractions=not extensive, alpha=None)
        out["composition_baseline"] = composition.fit(train.atomic_numbers(), y_train).predict(
            test.atomic_numbers()
        )
    return out


def _score(y: np.ndarray, p: np.ndarray, kind: str) -> dict:
    return regression_metrics(y, p) if kind == "regression" else classification_metrics(y, p)


def evaluate_run(run_dir: str | Path, dataset=None, split=None, module=None, verbose: bool = True) -> dict:
    """Write ``metrics.json``, ``predictions_test.csv`` and ``plots/`` for a run; return the metrics.

    For each target: the model's MAE, RMSE, R², Spearman (ROC-AUC and accuracy for classification)
    on the test split beside the training-mean and composition-only (ridge on element counts for
    extensive targets, fractions for intensive ones) baselines.
    """
    from atomgraph.data import load_split
    from atomgraph.training.datasets import load_dataset, select_targets
    from atomgraph.training.run import load_module, load_run_config, metrics_history

    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    if dataset is None:
        dataset = select_targets(load_dataset(config, progress=False), config["data"]["targets"])
    split = split or load_split(run_dir / "split.json", len(dataset))
    if module is None:  # a run stopped (max_steps) before its first validation has no best.ckpt
        best = (run_dir / "checkpoints" / "best.ckpt").exists()
        module = load_module(run_dir, "best" if best else "last")
    info = dataset.targets
    train = dataset[torch.as_tensor(split["train"])]
    test = dataset[torch.as_tensor(split["test"])]
    y_test = test.targets_array()
    pred = predict_graphs(module, test, config["training"]["eval_batch_size"])
    sizes = test.num_atoms()
    plots = run_dir / "plots"
    results: dict = {
        "run": config["name"],
        "model": config["model"]["name"],
        "n_train": len(split["train"]),
        "n_val": len(split["val"]),
        "n_test": len(split["test"]),
        "parameters": sum(p.numel() for p in module.model.parameters()),
        "test": {},
    }
    table = {"id": [dataset.meta.ids[i] for i in split["test"]] if dataset.meta.ids else split["test"]}
    for t, name in enumerate(info.names):
        unit = info.units[t]
        entry = {"unit": unit, "model": _score(y_test[:, t], pred[:, t], info.kind)}
        for label, baseline in _baselines(train, test, t, info.extensive[t], info.kind).items():
            entry[label] = _score(y_test[:, t], baseline, info.kind)
        results["test"][name] = entry
        table[f"{name}_true"] = y_test[:, t]
        table[f"{name}_pred"] = pred[:, t]
        if info.kind == "regression":
            parity_plot(
                y_test[:, t],
                pred[:, t],
                plots / f"parity_{name}.png",
                title=f"{config['model']['name']}: {name} (test)",
                unit=unit,
            )
            error_histogram(y_test[:, t], pred[:, t], plots / f"errors_{name}.png", unit=unit)
            error_vs_size(sizes, y_test[:, t], pred[:, t], plots / f"error_vs_size_{name}.png", unit=unit)
    metrics_csv = metrics_history(run_dir / "logs")
    if metrics_csv is not None:
        try:
            learning_curves(metrics_csv, plots / "learning_curves.png")
        except ValueError:
            pass  # a run stopped before its first validation has no curves to draw
    pd.DataFrame(table).to_csv(run_dir / "predictions_test.csv", index=False)
    (run_dir / "metrics.json").write_text(json.dumps(results, indent=2, default=float))
    if verbose:
        print(format_results(results))
    return results


def format_results(results: dict) -> str:
    """A plain-text table of a run's test metrics beside its baselines."""
    lines = [
        f"test set ({results['n_test']} rows; model {results['model']}, "
        f"{results['parameters']:,} parameters, {results['n_train']} training rows)"
    ]
    for name, entry in results["test"].items():
        unit = f" [{entry['unit']}]" if entry["unit"] else ""
        lines.append(f"  {name}{unit}")
        for label in ("model", "mean_baseline", "composition_baseline"):
            if label in entry:
                scores = "  ".join(f"{k}={v:.4g}" for k, v in entry[label].items() if k != "n")
                lines.append(f"    {label:<22}{scores}")
    return "\n".join(lines)
