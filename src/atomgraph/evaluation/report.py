"""Evaluate a finished run on its test split: metrics beside baselines, predictions and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from atomgraph.evaluation.baselines import CompositionBaseline, MeanBaseline
from atomgraph.evaluation.jsonfile import write_json
from atomgraph.evaluation.metrics import classification_metrics, regression_metrics
from atomgraph.evaluation.plots import (
    dataset_plot,
    error_histogram,
    error_qq_plot,
    error_vs_size,
    error_vs_true,
    learning_curves,
    parity_plot,
)
from atomgraph.evaluation.predict import has_sigma, predict_graphs
from atomgraph.evaluation.protocols import formatters_for, protocols_for


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


def evaluate_run(
    run_dir: str | Path,
    dataset=None,
    split=None,
    module=None,
    verbose: bool = True,
    device: torch.device | str | None = None,
) -> dict:
    """Write ``metrics.json``, ``predictions_test.csv`` and ``plots/`` for a run; return the metrics.

    For each target: the model's MAE, RMSE, R², Spearman (ROC-AUC and accuracy for classification)
    on the test split beside the training-mean and composition-only (ridge on element counts for
    extensive targets, fractions for intensive ones) baselines, and MAE / chemical accuracy where the
    TargetSpec has one. Plots (regression): parity, error histogram, Q-Q of the errors, |error| vs true
    value, error vs atom and heavy-atom count per target; the data (sizes and labels per split); the
    learning curves (loss, validation MAE and R², learning rate). ``device``: where the predictions are
    computed (``atomgraph train`` passes the one it trained on; None: where the module is, the CPU for a
    loaded run).
    """
    from atomgraph.data import load_split
    from atomgraph.runs import TrainedRun
    from atomgraph.training.datasets import load_dataset

    run_dir = Path(run_dir)
    run = TrainedRun.load(run_dir)  # best, else last: a run stopped before its first validation
    config = run.config
    if dataset is None:
        dataset = load_dataset(config, run.graph, progress=False)
    split = split or load_split(run_dir / "split.json", len(dataset))
    module = module or run.module
    if device is not None:
        module.to(device)
    if module.kind == "potential":
        return evaluate_potential(run_dir, config, dataset, split, module, verbose)
    info = dataset.targets
    if info.node_level:
        from atomgraph.evaluation.node_report import evaluate_node_targets

        return evaluate_node_targets(run_dir, config, dataset, split, module, verbose)
    train = dataset[torch.as_tensor(split["train"])]
    val = dataset[torch.as_tensor(split["val"])]
    test = dataset[torch.as_tensor(split["test"])]
    y_test = test.targets_array()
    pred = predict_graphs(module, test, config["training"]["eval_batch_size"])
    sizes = test.num_atoms()
    heavy = np.array([int((z > 1).sum()) for z in test.atomic_numbers()])
    plots = run_dir / "plots"
    results: dict = {**run_header(config, split, module), "test": {}}
    table = {"id": [dataset.meta.ids[i] for i in split["test"]] if dataset.meta.ids else split["test"]}
    scored, sigma = {}, None
    if has_sigma(module) and info.kind == "regression":
        from atomgraph.evaluation.uncertainty_report import report_uncertainty

        batch_size = config["training"]["eval_batch_size"]
        scored, sigma, _ = report_uncertainty(
            module, val, test, run_dir, batch_size, title=config["model"]["name"]
        )
    for t, name in enumerate(info.names):
        unit = info.units[t]
        entry = {"unit": unit, "model": _score(y_test[:, t], pred[:, t], info.kind)}
        for label, baseline in _baselines(train, test, t, info.extensive[t], info.kind).items():
            entry[label] = _score(y_test[:, t], baseline, info.kind)
        accuracy = info[t].chemical_accuracy
        if accuracy is not None and info.kind == "regression":  # Gilmer et al.'s headline metric
            entry["chemical_accuracy_ratio"] = entry["model"]["mae"] / accuracy
        results["test"][name] = {**entry, **scored.get(name, {})}
        table[f"{name}_true"] = y_test[:, t]
        table[f"{name}_pred"] = pred[:, t]
        if sigma is not None:
            table[f"{name}_sigma"] = sigma[:, t]
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
            error_vs_size(
                heavy, y_test[:, t], pred[:, t], plots / f"error_vs_heavy_atoms_{name}.png", unit=unit,
                size_label="heavy atoms (Z > 1)",
            )  # fmt: skip
            error_qq_plot(y_test[:, t], pred[:, t], plots / f"errors_qq_{name}.png", unit=unit)
            error_vs_true(y_test[:, t], pred[:, t], plots / f"error_vs_true_{name}.png", unit=unit)
    y_val = val.targets_array()
    if info.kind == "regression":
        parts = {"train": train, "val": val, "test": test}
        labels = {"train": train.targets_array(), "val": y_val, "test": y_test}
        dataset_panels(info, parts, labels, plots / "dataset.png")
    training_history(run_dir, results, validation_variance(info, y_val))
    for protocol in protocols_for(config["data"]["dataset"]):  # e.g. seed 004's crystal protocol
        protocol(results, config, module, dataset, split, pred)
    return write_report(run_dir, config, results, table, verbose)


def run_header(config: dict, split: dict, module) -> dict:
    """The first entries of every report: run and model names, split sizes, parameter count."""
    return {
        "run": config["name"],
        "model": config["model"]["name"],
        "n_train": len(split["train"]),
        "n_val": len(split["val"]),
        "n_test": len(split["test"]),
        "parameters": sum(p.numel() for p in module.model.parameters()),
    }


def validation_variance(info, y_val: np.ndarray) -> dict[str, float]:
    """The variance of each target's validation labels (rows of ``y_val``; NaN left out), for the
    learning curves' R² panel."""
    labelled = [y_val[np.isfinite(y_val[:, t]), t] for t in range(len(info.names))]
    return {name: float(v.var()) for name, v in zip(info.names, labelled, strict=True) if len(v) > 1}


def dataset_panels(info, parts: dict, labels: dict[str, np.ndarray], path: Path) -> None:
    """``dataset_plot`` of the splits: sizes of ``parts`` and each target's ``labels`` per split."""
    labelled = {
        f"{name} [{info.units[t]}]" if info.units[t] else name: {k: y[:, t] for k, y in labels.items()}
        for t, name in enumerate(info.names)
    }
    dataset_plot({k: part.num_atoms() for k, part in parts.items()}, labelled, path)


def training_history(run_dir: Path, results: dict, val_variance: dict[str, float] | None = None) -> None:
    """Add the epochs trained and an ensemble's member scores to ``results``; draw the learning curves
    (``val_variance``: for the R² panel)."""
    from atomgraph.training.run import metrics_history

    metrics_csv = metrics_history(run_dir / "logs")
    results["epochs"] = epochs_trained(metrics_csv)
    if metrics_csv is not None:
        try:
            learning_curves(metrics_csv, run_dir / "plots" / "learning_curves.png", val_variance=val_variance)
        except ValueError:
            pass  # a run stopped before its first validation has no curves to draw
    results.update(member_scores(run_dir))


def write_report(run_dir: Path, config: dict, results: dict, table: dict, verbose: bool) -> dict:
    """Write ``predictions_test.csv`` and ``metrics.json``; print the table when ``verbose``."""
    pd.DataFrame(table).to_csv(run_dir / "predictions_test.csv", index=False)
    write_json(run_dir / "metrics.json", results)
    if verbose:
        print(format_results(results, config["data"]["dataset"]))
    return results


def evaluate_potential(run_dir: Path, config: dict, dataset, split, module, verbose: bool = True) -> dict:
    """Potential runs: test MAE/RMSE of the energy per atom (meV/atom), the total energy (meV), force
    components (meV/Å) and stress (meV/Å^3, when labelled) beside baselines (training-mean energy per
    atom, composition-only ridge on element counts, zero forces = the mean force); parity plots of
    energies and forces; ``metrics.json``, ``predictions_test.csv`` (energies in eV)."""
    from atomgraph.evaluation.predict import predict_potential

    train = dataset[torch.as_tensor(split["train"])]
    test = dataset[torch.as_tensor(split["test"])]
    pred = predict_potential(module, test, config["training"]["eval_batch_size"])
    natoms, e_true, e_pred = pred["natoms"], pred["energy_true"], pred["energy"]
    e_train = train.targets_array()[:, module.column]
    composition = CompositionBaseline("ridge", fractions=False, alpha=None)
    e_comp = composition.fit(train.atomic_numbers(), e_train).predict(test.atomic_numbers())
    per_atom_mean = np.full(len(e_true), np.nanmean(e_train / train.num_atoms()))
    mev = 1000.0
    tests: dict = {
        "energy_per_atom": {
            "unit": "meV/atom",
            "model": regression_metrics(mev * e_true / natoms, mev * e_pred / natoms),
            "mean_baseline": regression_metrics(mev * e_true / natoms, mev * per_atom_mean),
            "composition_baseline": regression_metrics(mev * e_true / natoms, mev * e_comp / natoms),
        },
        "energy": {
            "unit": "meV",
            "model": regression_metrics(mev * e_true, mev * e_pred),
            **offset_metrics(mev * e_true, mev * e_pred),
            "composition_baseline": regression_metrics(mev * e_true, mev * e_comp),
        },
    }
    plots = run_dir / "plots"
    title = f"{config['model']['name']} (test)"
    parity_plot(e_true / natoms, e_pred / natoms, plots / "parity_energy.png", f"{title}: energy", "eV/atom")
    if "forces_true" in pred:
        f_true, f_pred = pred["forces_true"].ravel(), pred["forces"].ravel()
        tests["forces"] = {
            "unit": "meV/Å",
            "model": regression_metrics(mev * f_true, mev * f_pred),
            "mean_baseline": regression_metrics(mev * f_true, np.zeros_like(f_true)),
        }
        parity_plot(f_true, f_pred, plots / "parity_forces.png", f"{title}: force components", "eV/Å")
        error_histogram(f_true, f_pred, plots / "errors_forces.png", unit="eV/Å")
    if "stress_true" in pred:
        s_true, s_pred = pred["stress_true"].ravel(), pred["stress"].ravel()
        tests["stress"] = {"unit": "meV/Å^3", "model": regression_metrics(mev * s_true, mev * s_pred)}
        parity_plot(s_true, s_pred, plots / "parity_stress.png", f"{title}: stress", "eV/Å^3")
    results = {
        **run_header(config, split, module),
        "task": "potential",
        "units": "energies eV (metrics meV, meV/atom), forces eV/Å (metrics meV/Å), stress eV/Å^3",
        "test": tests,
    }
    training_history(run_dir, results)
    ids = [dataset.meta.ids[i] for i in split["test"]] if dataset.meta.ids else split["test"]
    table = {"id": ids, "natoms": natoms.astype(int), "energy_true": e_true, "energy_pred": e_pred}
    return write_report(run_dir, config, results, table, verbose)


def member_scores(run_dir: Path) -> dict:
    """An ensemble's report lists its members' test MAE per target (from their own reports, where
    written): ``{"members": {target: [MAE of member k]}}``; empty for other runs."""
    import json

    from atomgraph.training.ensemble_module import is_ensemble, member_dirs

    if not is_ensemble(run_dir):
        return {}
    scores: dict[str, list] = {}
    for member in member_dirs(run_dir):
        file = member / "metrics.json"
        tests = json.loads(file.read_text())["test"] if file.exists() else {}
        for name, entry in tests.items():
            scores.setdefault(name, []).append(entry["model"].get("mae"))
    return {"members": scores} if scores else {}


def offset_metrics(e_true: np.ndarray, e_pred: np.ndarray) -> dict:
    """The constant part of an energy error: ``offset`` (``mean_signed_error`` = mean(pred - true)) and
    ``model_offset_removed`` (the metrics after subtracting it), so that a report shows how much of the
    MAE one shift explains."""
    ok = ~np.isnan(e_true) & ~np.isnan(e_pred)
    shift = float(np.mean(e_pred[ok] - e_true[ok])) if ok.any() else float("nan")
    return {
        "offset": {"mean_signed_error": shift, "n": int(ok.sum())},
        "model_offset_removed": regression_metrics(e_true, e_pred - shift),
    }


def epochs_trained(metrics_csv: Path | None) -> int | None:
    """Epochs a run completed (from its logged metrics; None without a log). Wall-clock budgets
    (``training.max_time``) make this depend on the machine's load, so every report states it."""
    if metrics_csv is None:
        return None
    epochs = pd.read_csv(metrics_csv).get("epoch")
    return None if epochs is None or epochs.dropna().empty else int(epochs.max()) + 1


def format_results(results: dict, dataset: str | None = None) -> str:
    """A plain-text table of a run's test metrics beside its baselines: every scored entry of a target
    (a metrics dict, which carries its count ``n``), then the lines of the protocols registered for
    ``dataset`` (``data.dataset``) and any warnings."""
    epochs = results.get("epochs")
    trained = f", {epochs} epochs" if epochs is not None else ""
    members = len(next(iter(results.get("members", {}).values()), []))
    model = f"an ensemble of {members} {results['model']} models" if members else f"model {results['model']}"
    atoms = f", {results['n_test_atoms']} atoms" if "n_test_atoms" in results else ""
    lines = [
        f"test set ({results['n_test']} rows{atoms}; {model}, "
        f"{results['parameters']:,} parameters, {results['n_train']} training rows{trained})"
    ]
    for name, entry in results["test"].items():
        unit = f" [{entry['unit']}]" if entry["unit"] else ""
        ratio = entry.get("chemical_accuracy_ratio")
        within = f"  (MAE / chemical accuracy = {ratio:.3g})" if ratio is not None else ""
        lines.append(f"  {name}{unit}{within}")
        for label, scores in entry.items():
            if isinstance(scores, dict) and "n" in scores:
                text = "  ".join(f"{k}={v:.4g}" for k, v in scores.items() if k != "n")
                lines.append(f"    {label:<25}{text}")
    for formatter in formatters_for(dataset) if dataset is not None else []:
        text = formatter(results)
        if text:
            lines.append(text)
    for name, maes in results.get("members", {}).items():
        lines.append(
            f"  ensemble members' MAE, {name}: " + ", ".join(f"{m:.4g}" for m in maes if m is not None)
        )
    lines += [f"  WARNING: {m}" for m in results.get("warnings", [])]
    return "\n".join(lines)
