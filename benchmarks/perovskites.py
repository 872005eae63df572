"""Seed 004, exercise 2: a 3-layer CGCNN on the ABX3 perovskites of the Materials Project set.

The ABX3 crystals are taken from ``../shared/data/mp_crystals`` by formula pattern: three elements in
the ratio 1 : 1 : 3 (any multiple of the formula unit), the element with three atoms an anion
(O, F, Cl, Br, I, S, Se, Te, N). A seeded 80/10/10 split of those crystals (a split file indexing the
full dataset: the other crystals are not used) trains a CGCNN (3 convolutions, hidden 64, fc 128) on
formation energy through ``atomgraph train``'s path, within ``--budget-min`` minutes of wall clock
(early stopping on validation, best checkpoint evaluated). The run's report gives the test MAE,
Spearman rho and top-100 recall (lowest formation energies) of the model beside the training mean,
the composition baselines and the descriptor random forest, all on the same crystals.

    python benchmarks/perovskites.py --budget-min 20 --threads 1

Writes ``benchmarks/results/perovskites.json`` and the run (parity plots etc.) under ``--run-root``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from math import gcd
from pathlib import Path

import numpy as np
import torch

from atomgraph.apps.crystals.dataset import load_crystals
from atomgraph.data import save_split
from atomgraph.data.splits import random_split
from atomgraph.graphs.spec import preset

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "mp_crystals"
ANIONS = {8, 9, 17, 35, 53, 16, 34, 52, 7}  # O F Cl Br I S Se Te N
TARGET = "formation_energy_per_atom"


def is_abx3(numbers: np.ndarray) -> bool:
    """Three elements in the ratio 1 : 1 : 3, the triple one an anion."""
    counts = Counter(numbers.tolist())
    if len(counts) != 3:
        return False
    unit = gcd(*counts.values())
    reduced = sorted((count // unit, z) for z, count in counts.items())
    return [r[0] for r in reduced] == [1, 1, 3] and reduced[2][1] in ANIONS


def _scored(entry) -> bool:
    """A model or baseline entry of the report (not the top-k settings)."""
    return isinstance(entry, dict) and "mae" in entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--budget-min", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--atom-features",
        default="properties",
        choices=["properties", "embedding"],
        help="CGCNN's atom inputs: tabulated element properties, or a learned vector per element",
    )
    parser.add_argument("--run-root", default="runs/perovskites")
    parser.add_argument("--out", default=str(ROOT / "results" / "perovskites.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from atomgraph.evaluation.experiment import train_and_evaluate
    from atomgraph.training.config import load_config, wall_clock_budget

    dataset = load_crystals(args.data, preset("cgcnn_crystal"), workers=1, progress=False)
    rows = np.flatnonzero([is_abx3(z) for z in dataset.atomic_numbers()])
    parts = random_split(len(rows), [0.8, 0.1, 0.1], seed=args.seed)
    split = {name: rows[indices] for name, indices in parts.items()}
    run_root = Path(args.run_root)
    run_root.mkdir(parents=True, exist_ok=True)
    save_split(split, run_root / "split.json")
    run_dir = run_root / f"cgcnn_{args.atom_features}"
    overrides = [
        f"name=perovskites_cgcnn_{args.atom_features}",
        f"seed={args.seed}",
        f"run_dir={run_dir}",
        "data.dataset=crystals",
        f"data.path={args.data}",
        f"data.targets=[{TARGET}]",
        f"data.split.file={run_root / 'split.json'}",
        "data.crystals.workers=1",
        "data.crystals.top_k=100",
        "model.name=cgcnn",
        "model.layers=3",
        "model.hidden=64",
        "model.fc_hidden=128",
        f"model.atom_features={args.atom_features}",
        "training.epochs=10000",
        f"training.max_time={wall_clock_budget(args.budget_min)}",
        "training.batch_size=64",
        "training.lr=1e-3",
        "training.early_stopping_patience=40",
        "training.accelerator=cpu",
        "training.progress=false",
    ]
    start = time.perf_counter()
    train_and_evaluate(load_config(None, overrides), progress=False, overwrite=True)
    wall = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"][TARGET]
    keep = ("mae", "rmse", "r2", "spearman", "top100_recall")
    results = {
        "benchmark": "perovskites",
        "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
        "crystals": {"abx3": len(rows), "of": len(dataset), **{k: len(v) for k, v in split.items()}},
        "atom_features": args.atom_features,
        "budget_min": args.budget_min,
        "threads": args.threads,
        "epochs": metrics.get("epochs"),
        "parameters": metrics["parameters"],
        "wall_s": wall,
        "run_dir": str(run_dir),
        "test": {name: {k: entry.get(k) for k in keep} for name, entry in test.items() if _scored(entry)},
        "worst_five": test.get("worst_five"),
        "shortcut": metrics.get("shortcut", {}).get(TARGET),
        "volume_response": metrics.get("volume_response", {}).get(TARGET),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    for name, entry in results["test"].items():
        shown = {key: "n/a" if value is None else f"{value:.3f}" for key, value in entry.items()}
        recall = shown["top100_recall"]
        print(f"{name:<22} MAE {shown['mae']}  Spearman {shown['spearman']}  top-100 {recall}")
    print(f"{len(rows)} ABX3 crystals of {len(dataset)}; -> {args.out}")


if __name__ == "__main__":
    main()
