"""Energies above the hull from predicted formation energies, checked against the hull from DFT labels.

For a trained crystal run that predicts ``formation_energy_per_atom``: its test crystals are placed
against the convex hull of its training and validation crystals (their DFT labels, the known phases),
once with their DFT formation energies and once with the model's predictions
(:mod:`atomgraph.apps.crystals.stability`). Reported: MAE and Spearman of the predicted energy above
the hull against the DFT one, and how well "within 0.1 eV/atom of the hull" (the usual synthesisability
window) is recovered (precision, recall).

    python benchmarks/hull_check.py RUN_DIR --out benchmarks/results/hull_check.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from scipy.stats import spearmanr

from atomgraph.apps.crystals.stability import ConvexHulls
from atomgraph.data.splits import load_split
from atomgraph.evaluation.predict import predict_graphs
from atomgraph.runs import TrainedRun
from atomgraph.training.datasets import load_dataset

ROOT = Path(__file__).resolve().parent
TARGET = "formation_energy_per_atom"
WINDOW = 0.1  # eV/atom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "results" / "hull_check.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = TrainedRun.load(args.run_dir)
    dataset = load_dataset(run.config, progress=False)
    split = load_split(Path(args.run_dir) / "split.json", len(dataset))
    column = dataset.targets.names.index(TARGET)
    formulas = np.array([Atoms(numbers=n).get_chemical_formula() for n in dataset.atomic_numbers()])
    labels = dataset.targets_array()[:, column].astype(np.float64)
    known = np.concatenate([split["train"], split["val"]])
    test = split["test"]
    start = time.perf_counter()
    predicted = predict_graphs(run.module, dataset[torch.as_tensor(test)])[:, run.targets.names.index(TARGET)]
    hulls = ConvexHulls(formulas[known].tolist(), labels[known])
    dft = hulls.above(formulas[test].tolist(), labels[test])
    model = hulls.above(formulas[test].tolist(), predicted)
    seconds = time.perf_counter() - start
    ok = np.isfinite(dft) & np.isfinite(model)
    near_dft, near_model = dft[ok] <= WINDOW, model[ok] <= WINDOW
    hits = int((near_dft & near_model).sum())
    results = {
        "benchmark": "hull_check",
        "run_dir": str(args.run_dir),
        "model": run.config["model"]["name"],
        "test_crystals": int(ok.sum()),
        "reference_crystals": len(known),
        "formation_energy_mae": float(np.nanmean(np.abs(predicted - labels[test]))),
        "e_above_hull_mae": float(np.mean(np.abs(model[ok] - dft[ok]))),
        "e_above_hull_spearman": float(spearmanr(model[ok], dft[ok]).statistic),
        "window_ev_per_atom": WINDOW,
        "near_hull_dft": int(near_dft.sum()),
        "near_hull_predicted": int(near_model.sum()),
        "near_hull_precision": hits / max(int(near_model.sum()), 1),
        "near_hull_recall": hits / max(int(near_dft.sum()), 1),
        "seconds": seconds,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
