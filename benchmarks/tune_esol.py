"""ESOL: the GCN of ``benchmarks/moleculenet.py`` with its default settings beside the best config an
``atomgraph tune`` search finds, on the test split of the split the search used.

1. Search (:func:`atomgraph.evaluation.tune.tune`, TPE + median pruning) over hidden width, depth,
   dropout, learning rate, weight decay and batch size on the scaffold split of seed 0, each trial
   scored by its best validation loss (the test split is not used for choosing).
2. The default and the best config are trained with initialisation seeds 0, 1, 2 on that same split
   and scored on its test rows (RMSE, log mol/L).
Writes ``benchmarks/results/tune_esol.json``.

    python benchmarks/tune_esol.py --trials 20 --budget-min 1.5 --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moleculenet import DATA, DATASETS, make_config

from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.evaluation.tune import tune, with_values
from atomgraph.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "tune_esol.json"

SEARCH = {
    "metric": "val_loss",
    "pruner": "median",
    "startup_trials": 5,
    "overrides": [],
    "space": {
        "model.hidden": {"int": [64, 256]},
        "model.layers": {"int": [2, 6]},
        "model.dropout": {"float": [0.0, 0.4]},
        "training.lr": {"float": [3.0e-4, 3.0e-3], "log": True},
        "training.weight_decay": {"float": [1.0e-6, 1.0e-3], "log": True},
        "training.batch_size": {"choice": [16, 32, 64]},
    },
}


def base_config(args, seed: int, run_dir: Path) -> dict:
    """The moleculenet.py GCN config on ESOL, split seed 0, initialisation seed ``seed``."""
    spec = DATASETS["esol"]
    config = make_config("esol", spec, DATA / spec.file, "gcn", 0, args)
    config["data"]["split"]["seed"] = 0
    config.update(seed=seed, name=f"esol_gcn_tune_seed{seed}", run_dir=str(run_dir))
    config["training"]["progress"] = False
    return config


def test_rmse(config: dict) -> float:
    run_dir = train_and_evaluate(config, progress=False, overwrite=True)
    return float(json.loads((run_dir / "metrics.json").read_text())["test"]["logp"]["model"]["rmse"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--budget-min", type=float, default=1.5, help="wall clock per run, min")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "bench_tune_esol")
    parser.add_argument("--cache", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.runs_dir = args.runs_dir.resolve()
    args.no_progress = True
    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    study = tune(
        base_config(args, 0, args.runs_dir / "search"), SEARCH, args.trials, args.runs_dir / "search"
    )
    search_s = time.perf_counter() - start
    best = study.best_trial
    print(f"best trial {best.number}: val_loss {best.value:.4f} {best.params}", flush=True)

    results: dict[str, list[float]] = {"default": [], "tuned": []}
    for seed in args.seeds:
        for label in results:
            config = base_config(args, seed, args.runs_dir / label / f"seed{seed}")
            if label == "tuned":
                config = load_config(settings=with_values(config, best.params))
            results[label].append(test_rmse(config))
            print(label, seed, round(results[label][-1], 4), flush=True)

    states: dict[str, int] = {}
    for trial in study.trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    report = {
        "benchmark": "ESOL (delaney.csv, log solubility), GCN: default settings vs the best of an atomgraph "
        "tune search; scaffold split 80/10/10 of seed 0, test RMSE over initialisation seeds",
        "command": "python benchmarks/tune_esol.py " + " ".join(sys.argv[1:]),
        "search": {
            "space": SEARCH["space"],
            "sampler": "TPE (seeded)",
            "pruner": f"median after {SEARCH['startup_trials']} trials",
            "trials": states,
            "best_trial": best.number,
            "best_validation_loss": best.value,
            "best_params": best.params,
            "seconds": round(search_s, 1),
        },
        "per_run": {"epochs": args.epochs, "budget_min": args.budget_min},
        "default_model": base_config(args, 0, Path("x"))["model"],
        "test_rmse": {
            label: {
                "seeds": args.seeds,
                "values": values,
                "mean": float(np.mean(values)),
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            }
            for label, values in results.items()
        },
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["test_rmse"], indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
