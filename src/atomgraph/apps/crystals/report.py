"""What a crystal run reports beyond the common metrics: seed 004's baseline protocol (slides 27-31).

For every target: top-k recall of the model and of every baseline, a composition-only MLP, the
descriptor baseline (Magpie-style statistics + structure fingerprints + random forest), the shortcut
diagnostic (R² kept after scrambling the elements), the five worst-predicted test crystals inspected
(seed 004, exercise 4: rare chemistry? large cell? a shortcut victim, wrong where composition alone is
wrong?), the E(V) check (:mod:`atomgraph.apps.crystals.volume_response`, with its plot) and the readout
warnings. Options live in ``data.crystals`` (``top_k``, ``descriptor_baseline``, ``shortcut``,
``volume_response``; defaults in :data:`atomgraph.apps.crystals.CRYSTAL_SETTINGS`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from atomgraph.apps.crystals.descriptor_baseline import DescriptorBaseline, descriptor_matrix
from atomgraph.apps.crystals.shortcut import shortcut_diagnostic
from atomgraph.apps.crystals.volume_response import volume_response
from atomgraph.evaluation.baselines import CompositionBaseline, MeanBaseline
from atomgraph.evaluation.metrics import regression_metrics, top_k_recall
from atomgraph.models import model_card
from atomgraph.nn.target_readout import readout_mismatches

BASELINE_LABELS = ("composition_mlp", "descriptor_rf")


def baseline_predictions(train, test, t: int, extensive: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """Test predictions of target t by the mean, composition ridge and composition MLP baselines."""
    y = train.targets_array()[:, t]
    numbers_train, numbers_test = train.atomic_numbers(), test.atomic_numbers()
    ridge = CompositionBaseline("ridge", fractions=not extensive, alpha=None).fit(numbers_train, y)
    mlp = CompositionBaseline("mlp", fractions=not extensive, seed=seed).fit(numbers_train, y)
    return {
        "mean_baseline": MeanBaseline().fit(y).predict(len(test)),
        "composition_baseline": ridge.predict(numbers_test),
        "composition_mlp": mlp.predict(numbers_test),
    }


def add_crystal_report(results: dict, config: dict, module, dataset, split: dict, pred: np.ndarray) -> dict:
    """Add top-k recall, the extra baselines, the shortcut diagnostic and readout warnings to the
    ``results`` of :func:`atomgraph.evaluation.report.evaluate_run` (in place; also returned)."""
    options = config["data"]["crystals"]  # filled from CRYSTAL_SETTINGS by the config loader
    train = dataset[torch.as_tensor(split["train"])]
    test = dataset[torch.as_tensor(split["test"])]
    y_test = test.targets_array()
    info, k, seed = dataset.targets, int(options["top_k"]), int(config.get("seed", 0))
    largest = [t.ranks_first == "high" for t in info]
    descriptors = None
    if options["descriptor_baseline"]:
        descriptors = descriptor_matrix(train), descriptor_matrix(test)
    for t, name in enumerate(info.names):
        entry = results["test"][name]
        if np.isnan(y_test[:, t]).all() or np.isnan(train.targets_array()[:, t]).all():
            continue
        predictions = {"model": pred[:, t], **baseline_predictions(train, test, t, info.extensive[t], seed)}
        if descriptors is not None:
            forest = DescriptorBaseline(seed=seed).fit(train, train.targets_array()[:, t], x=descriptors[0])
            predictions["descriptor_rf"] = forest.predict(test, x=descriptors[1])
        for label, values in predictions.items():
            if label not in entry:
                entry[label] = regression_metrics(y_test[:, t], values)
            entry[label][f"top{k}_recall"] = top_k_recall(y_test[:, t], values, k, largest[t])
        entry["top_k"] = {"k": k, "largest": largest[t]}
        entry["worst_five"] = worst_crystals(train, test, t, pred[:, t], predictions["composition_mlp"])
    batch_size = config["training"]["eval_batch_size"]
    if options["shortcut"]:
        results["shortcut"] = shortcut_diagnostic(
            module,
            test,
            info.names,
            y_test,
            pred,
            seed=seed,
            batch_size=batch_size,
            element_columns=module.graph_spec.element_site_columns,
        )
    if options["volume_response"]:
        results["volume_response"] = volume_check(module, test, config, int(options["volume_response"]))
    readouts = model_card(config["model"]["name"]).target_readouts(
        config["model"].get("readout", "auto"), info.reductions
    )
    messages = readout_mismatches(info, readouts)
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=2)
    results["warnings"] = results.get("warnings", []) + messages
    return results


def worst_crystals(train, test, t: int, pred: np.ndarray, composition: np.ndarray, count: int = 5) -> list:
    """The ``count`` test crystals with the largest absolute error on target ``t``, each with what might
    explain it: its rarest element's share of training crystals, its size against the training set
    (percentile of atoms per cell), and the composition-only MLP's error on it (similar: the model
    fails where composition alone fails -- a shortcut victim)."""
    y = test.targets_array()[:, t]
    error = np.abs(pred - y)
    train_numbers, test_numbers = train.atomic_numbers(), test.atomic_numbers()
    containing: dict[int, int] = {}
    for numbers in train_numbers:
        for z in set(numbers.tolist()):
            containing[z] = containing.get(z, 0) + 1
    train_sizes = np.sort(train.num_atoms())
    out = []
    for row in np.argsort(np.nan_to_num(error, nan=-1.0))[::-1][:count]:
        numbers = test_numbers[row]
        shares = {int(z): containing.get(int(z), 0) / len(train_numbers) for z in set(numbers.tolist())}
        rarest = min(shares, key=shares.get)
        out.append(
            {
                "id": test.meta.ids[test.indices()[row]] if test.meta.ids else str(row),
                "formula": Atoms(numbers=numbers).get_chemical_formula(),
                "true": float(y[row]),
                "pred": float(pred[row]),
                "abs_error": float(error[row]),
                "natoms": len(numbers),
                "natoms_percentile": _percentile(train_sizes, len(numbers)),
                "rarest_element": chemical_symbols[rarest],
                "rarest_element_training_share": shares[rarest],
                "composition_mlp_abs_error": float(abs(composition[row] - y[row])),
            }
        )
    return out


def _percentile(sorted_values: np.ndarray, value: float) -> float:
    """The percentile of ``value`` among ``sorted_values`` (ties count half: a size every crystal
    shares is the 50th percentile, not the 0th)."""
    below = np.searchsorted(sorted_values, value, side="left")
    not_above = np.searchsorted(sorted_values, value, side="right")
    return float(100 * (below + not_above) / 2 / len(sorted_values))


def volume_check(module, test, config: dict, count: int) -> dict:
    """The E(V) check on the first ``count`` test crystals, per target: the summary (and its plot in the
    run's ``plots/volume_response_<target>.png``)."""
    from pathlib import Path

    from atomgraph.evaluation.plots import volume_response_plot
    from atomgraph.training.datasets import graph_spec

    spec = graph_spec(config)
    graphs = [test[i] for i in range(min(count, len(test)))]
    out = {}
    for t, name in enumerate(test.targets.names):
        response = volume_response(
            module, graphs, spec, column=t, batch_size=config["training"]["eval_batch_size"]
        )
        out[name] = response["summary"]
        plot = Path(config["run_dir"]) / "plots" / f"volume_response_{name}.png"
        volume_response_plot(response["scales"], response["curves"], plot, test.targets.units[t], name)
    return out


def format_crystal_report(results: dict) -> str:
    """Plain-text lines for the shortcut diagnostic ("" when there is none); the warnings are printed by
    the generic report."""
    lines = []
    for name, entry in results.get("shortcut", {}).items():
        kept = "  ".join(f"{k}={v:.3g}" for k, v in entry.items() if k.startswith(("r2", "retained")))
        lines.append(f"  shortcut diagnostic {name}: {kept}")
    for name, entry in results.get("volume_response", {}).items():
        low, high = entry["median_change_at_smallest_scale"], entry["median_change_at_largest_scale"]
        lines.append(
            f"  E(V) check {name}: median change at V x0.73 {low:+.3g}, at V x1.33 {high:+.3g}; flat "
            f"{entry['flat_share']:.0%}, minimum within 3 % of the DFT cell "
            f"{entry['minimum_within_3_percent_share']:.0%}"
        )
    return "\n".join(lines)
