"""What a crystal run reports beyond the common metrics: seed 004's baseline protocol (slides 27-31).

For every target: top-k recall of the model and of every baseline, a composition-only MLP, the
descriptor baseline (Magpie-style statistics + structure fingerprints + random forest), the shortcut
diagnostic (R² kept after scrambling the elements) and the readout warnings. Options live in
``data.crystals`` (``top_k``, ``descriptor_baseline``, ``shortcut``; defaults in
:data:`atomgraph.apps.crystals.CRYSTAL_SETTINGS`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from atomgraph.apps.crystals.descriptor_baseline import DescriptorBaseline, descriptor_matrix
from atomgraph.apps.crystals.shortcut import shortcut_diagnostic
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
    if options["shortcut"]:
        batch_size = config["training"]["eval_batch_size"]
        results["shortcut"] = shortcut_diagnostic(
            module, test, info.names, y_test, pred, seed=seed, batch_size=batch_size
        )
    readouts = model_card(config["model"]["name"]).target_readouts(
        config["model"].get("readout", "auto"), info.reductions
    )
    messages = readout_mismatches(info, readouts)
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=2)
    results["warnings"] = results.get("warnings", []) + messages
    return results


def format_crystal_report(results: dict) -> str:
    """Plain-text lines for the shortcut diagnostic ("" when there is none); the warnings are printed by
    the generic report."""
    lines = []
    for name, entry in results.get("shortcut", {}).items():
        kept = "  ".join(f"{k}={v:.3g}" for k, v in entry.items() if k.startswith(("r2", "retained")))
        lines.append(f"  shortcut diagnostic {name}: {kept}")
    return "\n".join(lines)
