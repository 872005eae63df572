"""The seed's practical (GAT on QM9 HOMO) as one command: its results table, on this machine's CPU.

Seed 000's practical trains a 4-layer, 4-head GAT (hidden 128, dropout 0.2, L1 loss, Adam 1e-3 with
weight decay 1e-5, ReduceLROnPlateau factor 0.5 / patience 10, gradient clipping 1.0, early stopping
patience 30, 200 epochs at most) on an 80/10/10 split of QM9 and quotes a results table for HOMO
(meV): Baseline 300, Linear 180, MLP 120, GCN 45, GAT 35-40, DimeNet++ 25-30. This script fills
in that table with numbers measured here, every model on the same seeded random 80/10/10 split of a
seeded random sample of QM9 (``--subset``, default 20,000 molecules):

* **mean baseline**: the training-set mean HOMO for every molecule.
* **linear**: ridge regression (alpha by cross-validation over 1e-6..10, standardised inputs) on nine
  counts per molecule: atoms of each element (H, C, N, O, F) and bonds of each type (single,
  double, triple, aromatic; RDKit bond orders perceived from the QM9 geometry, the same bonds the
  GNNs see).
* **MLP**: scikit-learn ``MLPRegressor`` (two hidden layers of 128 ReLU units, Adam, early stopping
  on a 10 % validation slice of the training rows, inputs and target standardised) on the same nine
  counts.
* **ECFP4 + RF**: Morgan fingerprints (radius 2, 2,048 bits) of the QM9 SMILES and a 500-tree random
  forest (``atomgraph.evaluation.fingerprint_baseline``), the fingerprint baseline of the literature.
* **GCN** and **GAT**: trained through the training system (``atomgraph.training.run.train``) on
  bond graphs with explicit hydrogens (as PyG's QM9, which the seed uses), with the seed's
  hyperparameters and at most ``--budget-min`` minutes of wall clock each (``training.max_time``;
  the best validation checkpoint is evaluated). Their run directories
  (``runs/qm9_gat_practical/<model>``) hold the learning curves, parity, error-histogram and
  error-vs-size plots; copies go beside the results file. The GAT run is the one of
  ``configs/qm9_gat_homo_practical_cpu.yaml`` (same data, model and training settings).

The GAT row is the seed's ``GATForQM9`` layer for layer (``model.name: gat_practical``: each of the
4 heads 128 wide, 941K parameters, the seed's "800K"; the residual projection of its last layer is
trained here, where the seed's lazily created one never was); ``gat_split`` is the GNN zoo's GAT
(``gat``), whose heads split the width (4 x 32), with bond features in the attention (152K). The
seed's expected numbers are quoted under ``seed_expected``: they are for full QM9 (~105k training
molecules) trained to convergence, not for a CPU budget, so they are a reference, not a like-for-like
comparison. (The seed's split takes the first 80/10/10 % of PyG's QM9 in file order; here the split is
random, seeded.)

    python benchmarks/qm9_gat_practical.py                      # 20,000 molecules, 30 min per GNN
    python benchmarks/qm9_gat_practical.py --subset 130831 --budget-min 240   # closer to the seed
    python benchmarks/qm9_gat_practical.py --quick --output /tmp/qm9_gat.json  # smoke test
    python benchmarks/qm9_gat_practical.py --models --output X.json   # the baselines only (no GNN)

Writes ``benchmarks/results/qm9_gat_practical.json`` (one entry per model: ``mae_mev``,
``rmse_mev``, ``r2``, ``chemical_accuracy_ratio`` (MAE / 43 meV), ``parameters``, ``train_seconds``,
``epochs``, ``seed_expected``), the bar
plot ``benchmarks/results/qm9_gat_practical.png`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from results_json import finite_json, relative
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import RidgeCV
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from atomgraph.evaluation.baselines import RIDGE_ALPHAS, MeanBaseline, composition_matrix
from atomgraph.evaluation.fingerprint_baseline import FingerprintForest
from atomgraph.evaluation.metrics import regression_metrics
from atomgraph.evaluation.plots import comparison_bar
from atomgraph.targets import known_target
from atomgraph.training.config import load_config, wall_clock_budget
from atomgraph.training.datasets import load_dataset, make_split, select_targets

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results" / "qm9_gat_practical.json"
TARGET = "homo"  # eV in atomgraph's QM9; reported in meV
CHEMICAL_ACCURACY = known_target(TARGET).chemical_accuracy  # eV
MEV = 1000.0
ELEMENTS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
BOND_TYPES = ("single", "double", "triple", "aromatic")  # the first columns of the bond features

# The seed's table, verbatim ("For HOMO energy prediction (in meV)"; "Results vary by hyperparameters
# and random seed"). Ranges are [low, high].
SEED_EXPECTED = {
    "mean_baseline": {"label": "Baseline", "mae_mev": 300, "rmse_mev": 420, "r2": 0.00, "parameters": "-"},
    "linear": {"label": "Linear", "mae_mev": 180, "rmse_mev": 250, "r2": 0.45, "parameters": "10K"},
    "mlp": {"label": "MLP", "mae_mev": 120, "rmse_mev": 170, "r2": 0.72, "parameters": "50K"},
    "gcn": {"label": "GCN", "mae_mev": 45, "rmse_mev": 65, "r2": 0.94, "parameters": "500K"},
    "gat": {
        "label": "GAT (ours)",
        "mae_mev": [35, 40],
        "rmse_mev": [50, 55],
        "r2": 0.96,
        "parameters": "800K",
    },
    "dimenet++": {
        "label": "DimeNet++",
        "mae_mev": [25, 30],
        "rmse_mev": [40, 45],
        "r2": 0.98,
        "parameters": "2M",
    },
}
LABELS = {
    "mean_baseline": "Mean baseline",
    "linear": "Linear (ridge)",
    "mlp": "MLP",
    "ecfp_rf": "ECFP4 + RF",
    "gcn": "GCN",
    "gat": "GAT (the seed's)",
    "gat_split": "GAT, split-width heads",
}

# The seed's GAT: 4 layers, 4 heads of width 128, dropout 0.2 (node states and attention), batch norm,
# ReLU, residual connections, mean pooling, fc1-BN-ReLU-dropout-fc2 (gat_practical). The split-width
# zoo GAT and the GCN get the zoo's stack with the same settings (no GCN recipe in the seed); GCNConv
# takes no bond features, so the mean of each atom's bond features is appended to its input.
MODELS = {
    "gat": {"name": "gat_practical", "hidden": 128, "layers": 4, "heads": 4, "dropout": 0.2},
    "gat_split": {
        "name": "gat",
        "hidden": 128,
        "layers": 4,
        "heads": 4,
        "dropout": 0.2,
        "attention_dropout": 0.2,
        "norm": "batch",
        "act": "relu",
        "residual": True,
        "pool": "mean",
    },
    "gcn": {
        "name": "gcn",
        "hidden": 128,
        "layers": 4,
        "dropout": 0.2,
        "norm": "batch",
        "act": "relu",
        "residual": True,
        "pool": "mean",
        "edge_features": True,
    },
}


def run_settings(model: str, args) -> dict:
    """The config of one GNN run, as nested settings applied over the defaults."""
    return {
        "name": f"qm9_gat_practical_{model}",
        "seed": args.seed,
        "run_dir": str(args.runs_dir / model),
        "data": {
            "dataset": "qm9",
            "source": "qm9pack",
            "subset": args.subset,
            "targets": [TARGET],
            "cache": args.cache,
            "graph": {"kind": "bond", "explicit_hydrogens": True},
            "split": {"kind": "random", "sizes": [0.8, 0.1, 0.1], "seed": args.seed},
        },
        "model": MODELS[model],
        "task": {"loss": "l1"},
        "training": {
            "epochs": args.epochs,
            "max_time": wall_clock_budget(args.budget_min),
            "batch_size": 32,
            "eval_batch_size": 128,
            "optimizer": "adam",
            "lr": 1e-3,
            "weight_decay": 1e-5,
            "scheduler": "plateau",
            "plateau_factor": 0.5,
            "plateau_patience": 10,
            "min_lr": 1e-6,
            "early_stopping_patience": 30,
            "gradient_clip": 1.0,
            "progress": not args.no_progress,
        },
    }


def make_config(model: str, args) -> dict:
    return load_config(settings=run_settings(model, args))


# ------------------------------------------------------------------------------------------------
# descriptor models
# ------------------------------------------------------------------------------------------------
def descriptors(dataset) -> tuple[np.ndarray, list[str]]:
    """Counts per molecule: atoms of H, C, N, O, F and bonds by type, ``[M, 9]``, and their names."""
    z_counts = composition_matrix(dataset.atomic_numbers(), max_z=9)
    atoms = z_counts[:, [z - 1 for z in ELEMENTS.values()]]
    if not np.allclose(atoms.sum(axis=1), z_counts.sum(axis=1)):
        raise ValueError("QM9 molecules with elements other than H, C, N, O, F")
    attr = dataset._data.edge_attr[:, : len(BOND_TYPES)].double().numpy()
    cumulative = np.concatenate([np.zeros((1, attr.shape[1])), np.cumsum(attr, axis=0)])
    offsets = dataset.slices["edge_attr"].numpy()
    rows = np.asarray(dataset.indices())
    bonds = (cumulative[offsets[rows + 1]] - cumulative[offsets[rows]]) / 2.0  # each bond twice
    names = [f"n_{e}" for e in ELEMENTS] + [f"n_{b}_bonds" for b in BOND_TYPES]
    return np.concatenate([atoms, bonds], axis=1), names


def linear_model() -> TransformedTargetRegressor:
    return TransformedTargetRegressor(
        regressor=make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)), transformer=StandardScaler()
    )


def mlp_model(seed: int, quick: bool) -> TransformedTargetRegressor:
    mlp = MLPRegressor(
        hidden_layer_sizes=(128, 128),
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=20,
        max_iter=20 if quick else 1000,
        random_state=seed,
    )
    return TransformedTargetRegressor(
        regressor=make_pipeline(StandardScaler(), mlp), transformer=StandardScaler()
    )


def sklearn_parameters(model: TransformedTargetRegressor) -> int:
    """Trainable numbers of a fitted ridge (coefficients + intercept) or MLP (weights + biases)."""
    last = model.regressor_.steps[-1][1]
    if isinstance(last, MLPRegressor):
        return int(sum(w.size for w in last.coefs_) + sum(b.size for b in last.intercepts_))
    return int(np.size(last.coef_) + np.size(last.intercept_))


def score(y_true_ev: np.ndarray, y_pred_ev: np.ndarray) -> dict:
    m = regression_metrics(MEV * y_true_ev, MEV * y_pred_ev)
    return {
        "mae_mev": m["mae"],
        "rmse_mev": m["rmse"],
        "r2": m["r2"],
        "spearman": m["spearman"],
        "n_test": m["n"],
        "chemical_accuracy_ratio": m["mae"] / (MEV * CHEMICAL_ACCURACY),
    }


def descriptor_models(dataset, split: dict, args) -> dict:
    """Mean baseline, ridge, MLP and the ECFP4 random forest on the same split as the GNNs."""
    x, names = descriptors(dataset)
    y = dataset.targets_array()[:, 0]
    train, test = split["train"], split["test"]
    out = {}
    start = time.perf_counter()
    mean = MeanBaseline().fit(y[train])
    out["mean_baseline"] = {
        **score(y[test], mean.predict(len(test))),
        "parameters": 1,
        "train_seconds": time.perf_counter() - start,
        "epochs": None,
        "description": "training-set mean HOMO for every molecule",
    }
    for name, make in (("linear", linear_model), ("mlp", lambda: mlp_model(args.seed, args.quick))):
        model = make()
        start = time.perf_counter()
        model.fit(x[train], y[train])
        seconds = time.perf_counter() - start
        last = model.regressor_.steps[-1][1]
        entry = {
            **score(y[test], model.predict(x[test])),
            "parameters": sklearn_parameters(model),
            "train_seconds": seconds,
            "epochs": int(last.n_iter_) if isinstance(last, MLPRegressor) else None,
            "features": names,
        }
        if name == "linear":
            entry["description"] = (
                "ridge regression (RidgeCV over alphas 1e-6..10, standardised inputs and target) on "
                "counts of H, C, N, O, F atoms and of single, double, triple, aromatic bonds; "
                "fit on the training split"
            )
            entry["alpha"] = float(last.alpha_)
        else:
            entry["description"] = (
                "sklearn MLPRegressor (128-128 ReLU, Adam, early stopping on 10% of the training rows, "
                "standardised inputs and target) on the same nine counts; fit on the training split"
            )
        out[name] = entry
    smiles = dataset.meta.smiles
    start = time.perf_counter()
    forest = FingerprintForest("regression", seed=args.seed).fit([smiles[i] for i in train], y[train])
    seconds = time.perf_counter() - start
    out["ecfp_rf"] = {
        **score(y[test], forest.predict([smiles[i] for i in test])),
        "parameters": forest.parameters,
        "train_seconds": seconds,
        "epochs": None,
        "unparsed_smiles": forest.unparsed,
        "description": "ECFP4 (Morgan radius 2, 2,048 bits, RDKit) + random forest (500 trees, sqrt "
        "features per split; atomgraph.evaluation.fingerprint_baseline) on the QM9 SMILES; parameters = "
        "tree nodes",
    }
    return out


# ------------------------------------------------------------------------------------------------
# GNNs through the training system
# ------------------------------------------------------------------------------------------------
PLOTS = {
    "learning_curves": "learning_curves.png",
    "parity": f"parity_{TARGET}.png",
    "errors": f"errors_{TARGET}.png",
    "error_vs_size": f"error_vs_size_{TARGET}.png",
}


TRAINING_KEYS = (
    "epochs", "max_time", "batch_size", "optimizer", "lr", "weight_decay", "scheduler", "plateau_factor",
    "plateau_patience", "min_lr", "early_stopping_patience", "gradient_clip",
)  # fmt: skip


def epochs_run(run_dir: Path) -> tuple[int, int | None]:
    """(epochs with a validation pass, epoch of the lowest val_loss) from the run's metrics log."""
    log = run_dir / "logs" / "metrics.csv"
    if not log.exists():
        return 0, None
    frame = pd.read_csv(log)
    if "val_loss" not in frame:
        return 0, None
    val = frame.dropna(subset=["val_loss"])
    if val.empty:
        return 0, None
    return int(val["epoch"].nunique()), int(val.loc[val["val_loss"].idxmin(), "epoch"])


def train_gnn(model: str, args, plots_dir: Path) -> dict:
    from atomgraph.evaluation.experiment import train_and_evaluate

    config = make_config(model, args)
    print(f"\n=== {model.upper()}: at most {args.epochs} epochs / {args.budget_min:g} min ===", flush=True)
    start = time.perf_counter()
    run_dir = train_and_evaluate(config, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"][TARGET]
    epochs, best_epoch = epochs_run(run_dir)
    budget_s = args.budget_min * 60
    if epochs >= args.epochs:
        stopped = "max_epochs"
    elif seconds >= 0.97 * budget_s:
        stopped = "time budget"
    else:
        stopped = "early stopping"
    plots, copies = {}, {}
    for key, file in PLOTS.items():
        source = run_dir / "plots" / file
        if source.exists():
            plots[key] = relative(source)
            target = plots_dir / model / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            copies[key] = relative(target)
    return {
        "mae_mev": MEV * test["model"]["mae"],
        "rmse_mev": MEV * test["model"]["rmse"],
        "r2": test["model"]["r2"],
        "spearman": test["model"]["spearman"],
        "n_test": test["model"]["n"],
        "chemical_accuracy_ratio": test["chemical_accuracy_ratio"],
        "parameters": metrics["parameters"],
        "train_seconds": seconds,
        "epochs": epochs,
        "best_epoch": best_epoch,
        "stopped_by": stopped,
        "run_dir": relative(run_dir),
        "model_settings": config["model"],
        "training_settings": {k: config["training"][k] for k in TRAINING_KEYS},
        "run_baselines_mae_mev": {
            k: MEV * test[k]["mae"] for k in ("mean_baseline", "composition_baseline") if k in test
        },
        "plots": plots,
        "plot_copies": copies,
    }


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------
def _fmt_seed(value) -> str:
    if isinstance(value, list):
        return f"{value[0]:g}-{value[1]:g}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _fmt_params(n) -> str:
    if n is None:
        return "-"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


def markdown_table(models: dict, subset: int, n_train: int) -> str:
    lines = [
        f"HOMO, QM9 sample of {subset:,} molecules ({n_train:,} training), test split; seed's expected "
        "numbers (full QM9, trained to convergence) in the last columns.",
        "",
        "| Method | MAE (meV) | RMSE (meV) | R² | Parameters | Train time | Epochs "
        "| Seed MAE | Seed RMSE | Seed R² | Seed params |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in [*models, *(k for k in SEED_EXPECTED if k not in models)]:
        seed = SEED_EXPECTED.get(key, {})
        seed_cells = " | ".join(
            _fmt_seed(seed.get(k, "-")) for k in ("mae_mev", "rmse_mev", "r2", "parameters")
        )
        if key not in models:
            lines.append(f"| {seed.get('label', key)} (not run) | - | - | - | - | - | - | {seed_cells} |")
            continue
        m = models[key]
        seconds = m["train_seconds"]
        epochs = "-" if m["epochs"] is None else m["epochs"]
        time_cell = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"
        lines.append(
            f"| {LABELS.get(key, key)} | {m['mae_mev']:.1f} | {m['rmse_mev']:.1f} | {m['r2']:.3f} "
            f"| {_fmt_params(m['parameters'])} | {time_cell} | {epochs} "
            f"| {seed_cells} |"
        )
    return "\n".join(lines)


def data_available() -> str | None:
    """None when qm9pack's data files are there, else the reason they are not."""
    from atomgraph.data.qm9_source import qm9pack_data_dir

    try:
        qm9pack_data_dir()
    except (ImportError, FileNotFoundError) as error:
        return str(error)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--subset", type=int, default=None, help="QM9 molecules (seeded sample); default 20000"
    )
    parser.add_argument(
        "--budget-min", type=float, default=None, help="wall-clock minutes per GNN; default 30"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="epoch cap per GNN; default 200 (the seed's)"
    )
    parser.add_argument(
        "--models", nargs="*", default=list(MODELS), choices=list(MODELS), help="none: the baselines only"
    )
    parser.add_argument("--seed", type=int, default=0, help="subset, split and initialisation seed")
    parser.add_argument("--quick", action="store_true", help="smoke test: 500 molecules, 2 epochs")
    parser.add_argument(
        "--output", "--out", type=Path, default=None, help="results JSON, PNG beside it (quick: a temp path)"
    )
    parser.add_argument("--runs-dir", type=Path, default=None, help="default runs/qm9_gat_practical")
    parser.add_argument("--cache", default=None, help="processed-data cache (default ~/.cache/atomgraph)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (one line per epoch)")
    args = parser.parse_args(argv)
    if args.subset is None:
        args.subset = 500 if args.quick else 20000
    if args.budget_min is None:
        args.budget_min = 1.0 if args.quick else 30.0
    if args.epochs is None:
        args.epochs = 2 if args.quick else 200
    if args.output is None:  # smoke numbers never overwrite the real results
        args.output = (
            Path(tempfile.gettempdir()) / "atomgraph_smoke" / RESULTS.name if args.quick else RESULTS
        )
    if args.runs_dir is None:
        args.runs_dir = ROOT / "runs" / ("qm9_gat_practical_quick" if args.quick else "qm9_gat_practical")
    args.runs_dir = args.runs_dir.resolve()

    missing = data_available()
    if missing:
        print(f"skipping: QM9 data not available ({missing})")
        return 0

    # the dataset and split every model uses (the GNN runs build the same ones from their configs)
    config = make_config(args.models[0] if args.models else "gat", args)
    print(
        f"QM9: {args.subset:,} molecules, bond graphs with hydrogens (built once, then cached) ...",
        flush=True,
    )
    dataset = select_targets(load_dataset(config, progress=not args.no_progress), [TARGET])
    split = make_split(config, dataset)
    sizes = {k: len(v) for k, v in split.items()}
    print(f"split (random 80/10/10, seed {args.seed}): {sizes}", flush=True)

    models = descriptor_models(dataset, split, args)
    for key in ("mean_baseline", "linear", "mlp", "ecfp_rf"):
        print(f"{LABELS[key]:<16} MAE {models[key]['mae_mev']:.1f} meV", flush=True)
    plots_dir = args.output.with_suffix("")  # benchmarks/results/qm9_gat_practical/<model>/*.png
    for model in args.models:
        models[model] = train_gnn(model, args, plots_dir)
        print(f"{LABELS[model]:<16} MAE {models[model]['mae_mev']:.1f} meV", flush=True)
    for key, entry in models.items():
        if key in SEED_EXPECTED:
            entry["seed_expected"] = {k: v for k, v in SEED_EXPECTED[key].items() if k != "label"}

    argv_used = sys.argv[1:] if argv is None else argv
    result = {
        "description": "Seed 000's practical (GAT on QM9 HOMO): its results table measured on this machine",
        "target": f"{TARGET} (HOMO energy), metrics in meV on the test split",
        "command": "python benchmarks/qm9_gat_practical.py " + " ".join(argv_used),
        "settings": {
            "subset": args.subset,
            "split": {"kind": "random", "sizes": [0.8, 0.1, 0.1], "seed": args.seed, **sizes},
            "graph": "bond graph with explicit hydrogens (RDKit bonds perceived from the QM9 geometry)",
            "budget_min_per_gnn": args.budget_min,
            "max_epochs": args.epochs,
            "quick": args.quick,
            "seed": args.seed,
        },
        "models": models,
        "seed_expected": {
            "table": SEED_EXPECTED,
            "note": "seed 000, practical 6, 'Expected Results' (full QM9, 80/10/10 split in file order, "
            "up to 200 epochs); 'Results vary by hyperparameters and random seed'. DimeNet++ is not "
            "run here.",
        },
        "machine": {
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "processor": platform.processor() or platform.machine(),
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    bars = {LABELS[k]: v["mae_mev"] for k, v in models.items()}
    png = comparison_bar(bars, args.output.with_suffix(".png"), metric="HOMO test MAE", unit="meV")
    result["plot"] = relative(png)
    args.output.write_text(json.dumps(finite_json(result), indent=2, default=float))
    print()
    print(markdown_table(models, args.subset, sizes["train"]))
    print(f"\nwrote {relative(args.output)} and {relative(png)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
