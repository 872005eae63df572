"""Learning curves on the Materials Project crystals: test MAE against training-set size, log-log,
for SchNet (the best GNN of ``benchmarks/mp_crystals.py``) and the descriptor random forest.

The split is ``benchmarks/mp_crystals.py``'s (80/10/10, seed 0, the 36,737 crystals): the validation
and test crystals stay the same at every size, and the training rows of size n are the first n of a
seeded permutation of the full training split (nested: each size holds the smaller ones). At each
size SchNet (hidden 64, 64 filters, 3 interactions, 50 Gaussians; the 12 nearest neighbours within
8 Å) trains a fixed number of epochs (``--epochs``, one per size; cosine learning rate from 5e-4 to
1e-6, best validation checkpoint evaluated) and the random forest (Magpie-style composition statistics
+ structure descriptors, ``DescriptorBaseline``) is fitted on the same rows. The full-size SchNet
point is not retrained here: it is read from ``--full-run`` (the 125-minute run of
``mp_crystals_schnet_125min.json``, same split and model, plateau schedule, 69 epochs) and marked so.

    python benchmarks/crystal_learning_curve.py --sizes 1000 3000 10000 --epochs 150 80 30 --threads 1

Writes ``benchmarks/results/crystal_learning_curve.json`` and ``crystal_learning_curve.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mp_crystals import CRYSTAL_GRAPH, DATA, MODELS, TOP_K, scores

from atomgraph.apps.crystals.dataset import load_crystals
from atomgraph.apps.crystals.descriptor_baseline import DescriptorBaseline, descriptor_matrix
from atomgraph.data import save_split
from atomgraph.data.splits import random_split
from atomgraph.training.datasets import select_targets

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "crystal_learning_curve.json"
TARGET = "formation_energy_per_atom"


def train_schnet(size: int, epochs: int, split_file: Path, args) -> dict:
    """SchNet on the first ``size`` training rows for ``epochs`` epochs; its test metrics."""
    from atomgraph.evaluation.experiment import train_and_evaluate
    from atomgraph.training.config import load_config

    hyper, lr = MODELS["schnet"]
    run_dir = Path(args.run_root) / f"schnet_{size}"
    overrides = [
        f"name=learning_curve_schnet_{size}",
        f"seed={args.seed}",
        f"run_dir={run_dir}",
        "data.dataset=crystals",
        f"data.path={args.data}",
        f"data.targets=[{TARGET}]",
        f"data.split.file={split_file}",
        "data.crystals.workers=1",
        f"data.crystals.top_k={TOP_K}",
        "data.crystals.descriptor_baseline=false",  # fitted below on the same rows
        "data.crystals.shortcut=false",
        "data.crystals.volume_response=0",
        "model.name=schnet",
        *(f"model.{k}={v}" for k, v in hyper.items()),
        f"training.epochs={epochs}",
        "training.scheduler=cosine",
        f"training.lr={lr}",
        f"training.early_stopping_patience={epochs}",
        "training.batch_size=64",
        "training.eval_batch_size=256",
        "training.accelerator=cpu",
        "training.progress=false",
    ]
    start = time.perf_counter()
    train_and_evaluate(load_config(None, overrides), progress=False, overwrite=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    entry = {k: metrics["test"][TARGET]["model"].get(k) for k in ("mae", "rmse", "r2", "spearman")}
    entry.update(
        epochs=metrics.get("epochs"), parameters=metrics["parameters"], wall_s=time.perf_counter() - start
    )
    return entry


def plot(result: dict, path: Path) -> None:
    """Test MAE against training-set size, log-log, one line per model."""
    fig = Figure(figsize=(5.0, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, label in (("schnet", "SchNet"), ("descriptor_rf", "descriptor RF")):
        points = [(p["size"], p[name]["mae"]) for p in result["points"] if p.get(name)]
        ax.loglog(*zip(*points, strict=True), "o-", label=label)
    full = result.get("full_run")
    if full:
        ax.loglog(
            [full["size"]], [full["mae"]], "s", color="C0", mfc="none", label=f"SchNet, {full['label']}"
        )
    ax.set_xlabel("training crystals")
    ax.set_ylabel("test MAE (eV/atom)")
    ax.set_title("formation energy: learning curves")
    ax.legend()
    fig.savefig(path, dpi=150)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument(
        "--epochs", type=int, nargs="+", default=[150, 80, 30], help="SchNet epochs, one per size"
    )
    parser.add_argument("--full-run", default=str(ROOT / "results" / "mp_crystals_schnet_125min.json"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-root", default="runs/crystal_learning_curve")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if len(args.epochs) != len(args.sizes):
        parser.error("--epochs needs one count per --sizes entry")
    torch.set_num_threads(args.threads)
    dataset = select_targets(load_crystals(args.data, CRYSTAL_GRAPH, workers=1, progress=False), [TARGET])
    split = random_split(len(dataset), [0.8, 0.1, 0.1], seed=args.seed)
    order = np.random.default_rng(args.seed).permutation(split["train"])
    sizes = [*args.sizes, len(order)]
    test = dataset[torch.as_tensor(split["test"])]
    y_test = test.targets_array()[:, 0]
    x_train_all = descriptor_matrix(dataset[torch.as_tensor(order)])
    x_test = descriptor_matrix(test)
    y_train_all = dataset[torch.as_tensor(order)].targets_array()[:, 0]
    run_root = Path(args.run_root)
    run_root.mkdir(parents=True, exist_ok=True)
    points = []
    for k, size in enumerate(sizes):
        point: dict = {"size": size}
        start = time.perf_counter()
        train_rows = dataset[torch.as_tensor(order[:size])]
        forest = DescriptorBaseline(seed=args.seed).fit(train_rows, y_train_all[:size], x=x_train_all[:size])
        point["descriptor_rf"] = scores(y_test, forest.predict(test, x=x_test), largest=False)
        point["descriptor_rf"]["fit_s"] = time.perf_counter() - start
        if k < len(args.sizes):
            split_file = run_root / f"split_{size}.json"
            save_split({"train": order[:size], "val": split["val"], "test": split["test"]}, split_file)
            point["schnet"] = train_schnet(size, args.epochs[k], split_file, args)
        points.append(point)
        print(json.dumps(point), flush=True)
    result = {
        "benchmark": "crystal_learning_curve",
        "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
        "target": TARGET,
        "unit": "eV/atom",
        "threads": args.threads,
        "test_crystals": len(y_test),
        "schnet_hyperparameters": MODELS["schnet"][0],
        "points": points,
    }
    full = (
        json.loads(Path(args.full_run).read_text())["results"][TARGET].get("schnet")
        if args.full_run
        else None
    )
    if full:
        result["full_run"] = {
            "size": len(order),
            "mae": full["mae"],
            "epochs": full.get("epochs"),
            "source": str(Path(args.full_run).name),
            "label": f"{full.get('epochs')} epochs, 125 min",
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
