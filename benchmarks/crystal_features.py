"""Seed 004's crystal inputs, measured: oxidation states, coordination and space group on the
perovskites, and metal / non-metal classification on all Materials Project crystals.

``--part perovskites``: the ABX3 crystals of ``benchmarks/perovskites.py`` (their own labels file,
as in ``perovskite_ablation.py``), one seeded 80/10/10 split, a 3-layer CGCNN (hidden 64, fc 128) on
formation energy on CGCNN's graph (12 nearest within 8 Å), for each input set

* ``elements``: the element property table only (CGCNN's own inputs);
* ``site``: + each site's guessed oxidation state (with its flag) and effective coordination number
  (``data.graph.site_features: [oxidation_state, coordination]``);
* ``site+state``: + the space group as a state (``state_features: [space_group]``);

each trained with ``--seeds`` weight seeds for ``--epochs`` epochs (cosine schedule; best validation
checkpoint). The test crystals are the same for all runs, so the input sets are compared by the paired
difference of absolute errors (mean over crystals and seeds, with its standard error).

``--part metal``: ``data.targets: [is_metal]`` (PBE band gap 0) on all 36,737 crystals, the
``mp_crystals.py`` split, a CGCNN for ``--budget-min`` minutes: ROC-AUC and accuracy on the test
crystals beside a random forest on element fractions (composition only) on the same split.

    python benchmarks/crystal_features.py --part perovskites --epochs 100 --seeds 0 1
    python benchmarks/crystal_features.py --part metal --budget-min 20

Writes ``benchmarks/results/crystal_features.json`` (each part its own key; a part run later keeps
the other's results).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from perovskite_ablation import abx3_labels, perovskite_overrides
from perovskites import DATA, TARGET

from atomgraph.apps.crystals.dataset import locate

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "crystal_features.json"
INPUT_SETS = {
    "elements": [],
    "site": ["data.graph.site_features=[oxidation_state, coordination]"],
    "site+state": [
        "data.graph.site_features=[oxidation_state, coordination]",
        "data.graph.state_features=[space_group]",
    ],
}


def train(overrides: list[str]) -> tuple[dict, float]:
    """Train and evaluate one config; its metrics.json and the wall time (s)."""
    from atomgraph.evaluation.experiment import train_and_evaluate
    from atomgraph.training.config import load_config

    config = load_config(None, overrides)
    start = time.perf_counter()
    train_and_evaluate(config, progress=False)
    wall = time.perf_counter() - start
    return json.loads((Path(config["run_dir"]) / "metrics.json").read_text()), wall


def absolute_errors(run_dir: Path) -> pd.Series:
    table = pd.read_csv(run_dir / "predictions_test.csv").set_index("id")
    return (table[f"{TARGET}_pred"] - table[f"{TARGET}_true"]).abs()


def paired(errors: dict[str, list[pd.Series]], name: str, reference: str = "elements") -> dict:
    """Mean over test crystals and seeds of |error(name)| - |error(reference)| (eV/atom; negative:
    ``name`` is better), with the standard error of the per-crystal seed-mean differences."""
    differences = [(mine - errors[reference][k].loc[mine.index]) for k, mine in enumerate(errors[name])]
    per_crystal = pd.concat(differences, axis=1).mean(axis=1).dropna()
    return {
        "mean_abs_error_difference": float(per_crystal.mean()),
        "standard_error": float(per_crystal.std(ddof=1) / np.sqrt(len(per_crystal))),
        "crystals": len(per_crystal),
    }


def perovskites(args) -> dict:
    run_root = Path(args.run_root) / "perovskites"
    labels, count = abx3_labels(Path(args.data), run_root / "abx3")
    archive = locate(args.data).structures
    runs, errors = [], {name: [] for name in INPUT_SETS}
    for seed in args.seeds:
        for name, extra in INPUT_SETS.items():
            run_dir = run_root / f"{name}_seed{seed}"
            base = perovskite_overrides(run_dir, archive, labels, 0, 12, args.epochs, args.run_budget_min)
            overrides = [*base, f"seed={seed}", "data.graph.cutoff=8.0", *extra]
            metrics, wall = train(overrides)
            test = metrics["test"][TARGET]
            runs.append(
                {
                    "inputs": name,
                    "seed": seed,
                    "mae": test["model"]["mae"],
                    "spearman": test["model"]["spearman"],
                    "top100_recall": test["model"].get("top100_recall"),
                    "descriptor_rf_mae": test.get("descriptor_rf", {}).get("mae"),
                    "parameters": metrics["parameters"],
                    "epochs": metrics.get("epochs"),
                    "wall_s": wall,
                    "run_dir": str(run_dir),
                }
            )
            errors[name].append(absolute_errors(run_dir))
            print(
                f"{name:<11} seed {seed}: MAE {test['model']['mae']:.4f} eV/atom ({wall:.0f} s)", flush=True
            )
    return {
        "protocol": " ".join(__doc__.split("\n\n")[1:4]).replace("\n", " "),
        "crystals": count,
        "graph": "12 nearest within 8 Å",
        "epochs": args.epochs,
        "seeds": args.seeds,
        "runs": runs,
        "mean_mae": {
            name: float(np.mean([r["mae"] for r in runs if r["inputs"] == name])) for name in INPUT_SETS
        },
        "paired_vs_elements": {name: paired(errors, name) for name in INPUT_SETS if name != "elements"},
    }


def composition_forest(dataset, split: dict, seed: int) -> dict:
    """ROC-AUC and accuracy of a random forest on element fractions (composition only)."""
    from sklearn.ensemble import RandomForestClassifier

    from atomgraph.evaluation.metrics import classification_metrics

    fractions = np.zeros((len(dataset), 101))
    labels = np.zeros(len(dataset))
    for k, graph in enumerate(dataset):
        counts = np.bincount(graph.z.numpy(), minlength=101)
        fractions[k] = counts / counts.sum()
        labels[k] = float(graph.y[0, 0])
    train, test = np.asarray(split["train"]), np.asarray(split["test"])
    known = ~np.isnan(labels[train])
    forest = RandomForestClassifier(n_estimators=300, n_jobs=1, random_state=seed)
    forest.fit(fractions[train][known], labels[train][known])
    return classification_metrics(labels[test], forest.predict_proba(fractions[test])[:, 1])


def metal(args) -> dict:
    from atomgraph.apps.crystals.dataset import load_crystals
    from atomgraph.data import save_split
    from atomgraph.data.splits import random_split
    from atomgraph.training.config import wall_clock_budget
    from atomgraph.training.datasets import select_targets

    run_root = Path(args.run_root) / "metal"
    run_root.mkdir(parents=True, exist_ok=True)
    dataset = select_targets(load_crystals(args.data, classes=["is_metal"], workers=1), ["is_metal"])
    split = random_split(len(dataset), [0.8, 0.1, 0.1], seed=0)  # mp_crystals.py's
    split_file = run_root / "split.json"
    save_split(split, split_file)
    forest = composition_forest(dataset, split, 0)
    run_dir = run_root / "cgcnn"
    overrides = [
        "name=mp_is_metal_cgcnn",
        "seed=0",
        f"run_dir={run_dir}",
        "data.dataset=crystals",
        f"data.path={args.data}",
        "data.targets=[is_metal]",
        f"data.split.file={split_file}",
        "data.crystals.workers=1",
        "model.name=cgcnn",
        "model.hidden=64",
        "model.fc_hidden=128",
        "training.epochs=10000",
        f"training.max_time={wall_clock_budget(args.budget_min)}",
        "training.batch_size=64",
        "training.lr=1e-3",
        "training.early_stopping_patience=30",
        "training.accelerator=cpu",
        "training.progress=false",
    ]
    metrics, wall = train(overrides)
    test = metrics["test"]["is_metal"]
    metals = float(np.nanmean(dataset.targets_array()[:, 0]))
    print(f"is_metal: CGCNN ROC-AUC {test['model']['roc_auc']:.3f}, composition RF {forest['roc_auc']:.3f}")
    return {
        "protocol": __doc__.split("\n\n")[4].replace("\n", " "),
        "crystals": len(dataset),
        "metal_share": metals,
        "split": {k: len(v) for k, v in split.items()},
        "cgcnn": {
            **test["model"],
            "parameters": metrics["parameters"],
            "epochs": metrics.get("epochs"),
            "wall_s": wall,
            "run_dir": str(run_dir),
        },
        "composition_random_forest": forest,
        "majority_class": test.get("mean_baseline"),
        "budget_min": args.budget_min,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["perovskites", "metal"], required=True)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--run-budget-min", type=float, default=15.0, help="wall-clock cap per run")
    parser.add_argument("--budget-min", type=float, default=20.0, help="the metal classifier's budget")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--run-root", default="runs/crystal_features")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"benchmark": "crystal_features"}
    results[args.part] = perovskites(args) if args.part == "perovskites" else metal(args)
    results[args.part]["threads"] = args.threads
    results[args.part]["date"] = time.strftime("%Y-%m-%d")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
