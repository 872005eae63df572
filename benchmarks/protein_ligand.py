"""Protein-ligand affinity on the OpenFF protein-ligand benchmark: the three complex models vs baselines.

Data: ``<data-root>/protein_ligand_openff`` (15 targets, 369 ligands with crystal-derived poses and
pIC50/pKi labels in ``labels_pX.csv``). Every complex becomes a :class:`atomgraph.apps.complexes.ComplexData`
(8 Å pocket, 5 Å typed interaction edges, heavy-atom nodes).

Models (small, CPU-sized; ``--hidden``/``--layers``):

* ``late_fusion``: ligand MPNN + pocket residue-graph MPNN, pooled and concatenated;
* ``joint``: one MPNN over the interaction graph with edge-type embeddings, Set2Set readout;
* ``cross_attention``: ligand and pocket-atom encoders with distance-aware cross attention;
* baselines: ``ligand_only_gnn`` (the same ligand MPNN with no protein at all), ``mean`` (training
  mean) and ``ligand_size`` (least squares on the ligand heavy-atom count, a known strong affinity
  baseline).

Splits: ``--split target`` (default) holds out each target in turn (leave-one-target-out; restrict with
``--test-targets``), validation is a random 10 % of the other targets' rows; ``--split random`` uses
80/10/10 random splits over ``--repeats`` seeds. Training: AdamW, MSE on standardised labels, random
rotation + 0.1 Å noise augmentation, the epoch with the lowest validation RMSE is kept.

Metrics (``atomgraph.apps.complexes.affinity_metrics``) on the pooled test predictions: Pearson r, Spearman
rho, Kendall tau, RMSE and MAE (pK units), and Spearman/Kendall within each target and their mean
over targets (the numbers that matter for ranking a congeneric series).

Usage (from the repository root)::

    .venv/bin/python benchmarks/protein_ligand.py                      # full run: hours on a 2-core CPU
    .venv/bin/python benchmarks/protein_ligand.py --targets cdk2 cmet tyk2 --test-targets cmet \\
        --epochs 1 --models joint --output /tmp/pl_smoke.json           # smoke run, seconds

Writes ``benchmarks/results/protein_ligand.json`` and ``.md`` (or ``--output``); exits 0 without writing
when the data is absent.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch_geometric.loader import DataLoader

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from atomgraph.apps.complexes import (  # noqa: E402
    ComplexGraphSettings,
    RandomRotationNoise,
    affinity_metrics,
    group_split,
    load_complexes,
)
from atomgraph.apps.complexes.models.affinity_cross_attention import CrossAttentionAffinity  # noqa: E402
from atomgraph.apps.complexes.models.affinity_joint import JointGraphAffinity  # noqa: E402
from atomgraph.apps.complexes.models.affinity_late_fusion import LateFusionAffinity  # noqa: E402
from atomgraph.apps.complexes.models.affinity_ligand_only import LigandOnlyAffinity  # noqa: E402
from atomgraph.data.splits import random_split  # noqa: E402

GNN_MODELS: dict[str, Callable[[int, int], torch.nn.Module]] = {
    "late_fusion": lambda hidden, layers: LateFusionAffinity(hidden=hidden, layers=layers),
    "joint": lambda hidden, layers: JointGraphAffinity(hidden=hidden, layers=layers),
    "cross_attention": lambda hidden, layers: CrossAttentionAffinity(hidden=hidden, layers=layers, heads=4),
    "ligand_only_gnn": lambda hidden, layers: LigandOnlyAffinity(hidden=hidden, layers=layers),
}
BASELINES = ("mean", "ligand_size")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--models", nargs="+", default=[*GNN_MODELS, *BASELINES])
    parser.add_argument("--split", choices=("target", "random"), default="target")
    parser.add_argument("--targets", nargs="*", default=None, help="load only these targets")
    parser.add_argument("--test-targets", nargs="*", default=None, help="target split: held-out targets")
    parser.add_argument("--repeats", type=int, default=3, help="random split: number of seeds")
    parser.add_argument("--limit", type=int, default=None, help="a seeded random subset of the complexes")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.1, help="augmentation noise, Å")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "protein_ligand.json"
    )
    return parser.parse_args(argv)


def folds(groups: list[str], args: argparse.Namespace) -> list[tuple[str, dict[str, np.ndarray]]]:
    if args.split == "random":
        return [
            (f"seed{s}", random_split(len(groups), [0.8, 0.1, 0.1], args.seed + s))
            for s in range(args.repeats)
        ]
    held_out = args.test_targets or sorted(set(groups))
    return [(t, group_split(groups, [t], val_fraction=0.1, seed=args.seed)) for t in held_out]


def baseline_predictions(name: str, dataset, split: dict[str, np.ndarray]) -> np.ndarray:
    y = dataset.targets_array()[:, 0]
    train, test = split["train"], split["test"]
    if name == "mean":
        return np.full(len(test), y[train].mean())
    size = np.array([int(dataset[int(i)].n_ligand) for i in range(len(dataset))], dtype=float)
    design = np.stack([size, np.ones_like(size)], axis=1)
    coef, *_ = np.linalg.lstsq(design[train], y[train], rcond=None)
    return design[test] @ coef


@torch.no_grad()
def predict(model: torch.nn.Module, subset, batch_size: int) -> np.ndarray:
    model.eval()
    return np.concatenate([model(b).view(-1).numpy() for b in DataLoader(subset, batch_size=batch_size)])


def train_model(
    name: str, dataset, split: dict[str, np.ndarray], args: argparse.Namespace
) -> tuple[np.ndarray, dict]:
    """Train on split["train"], keep the best validation epoch; test predictions in pK units."""
    torch.manual_seed(args.seed)
    y = dataset.targets_array()[:, 0]
    mean, std = float(y[split["train"]].mean()), float(y[split["train"]].std() or 1.0)
    train_set = dataset[torch.as_tensor(split["train"])]
    train_set.transform = RandomRotationNoise(noise=args.noise, seed=args.seed)
    val_set = dataset[torch.as_tensor(split["val"])] if len(split["val"]) else None
    model = GNN_MODELS[name](args.hidden, args.layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(args.seed),
    )
    best = (float("inf"), copy.deepcopy(model.state_dict()), 0)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        for batch in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(batch).view(-1), (batch.y.view(-1) - mean) / std)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
        if val_set is not None:
            val_pred = predict(model, val_set, 64) * std + mean
            val_rmse = float(np.sqrt(np.mean((val_pred - y[split["val"]]) ** 2)))
            if val_rmse < best[0]:
                best = (val_rmse, copy.deepcopy(model.state_dict()), epoch + 1)
    if val_set is not None:
        model.load_state_dict(best[1])
    test_pred = predict(model, dataset[torch.as_tensor(split["test"])], 64) * std + mean
    info = {
        "train_seconds": time.perf_counter() - start,
        "best_epoch": best[2] if val_set is not None else args.epochs,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return test_pred, info


def headline(metrics: dict) -> dict[str, float]:
    """The three numbers quoted per model: mean per-target Spearman, pooled Pearson r and RMSE (pK)."""
    return {
        "mean_target_spearman": metrics.get("per_target_mean", {}).get("spearman", float("nan")),
        "pearson_r": metrics["pearson"],
        "rmse": metrics["rmse"],
    }


def markdown(results: dict) -> str:
    lines = [
        f"# Protein-ligand affinity (OpenFF benchmark, {results['config']['split']} split)",
        "",
        f"{results['n_complexes']} complexes, {len(results['folds'])} folds. Pooled test metrics; per-target "
        "columns are means over held-out targets (target split) or over targets in the test rows.",
        "",
        "| model | Pearson r | Spearman | Kendall tau | RMSE (pK) | per-target Spearman "
        "| per-target Kendall |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in results["models"].items():
        m = entry["metrics"]
        per = m.get("per_target_mean", {})
        lines.append(
            f"| {name} | {m['pearson']:.3f} | {m['spearman']:.3f} | {m['kendall_tau']:.3f} "
            f"| {m['rmse']:.3f} | {per.get('spearman', float('nan')):.3f} "
            f"| {per.get('kendall_tau', float('nan')):.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    unknown = sorted(set(args.models) - set(GNN_MODELS) - set(BASELINES))
    if unknown:
        raise SystemExit(f"unknown models {unknown}; choose from {[*GNN_MODELS, *BASELINES]}")
    root = args.data_root / "protein_ligand_openff"
    if not (root / "labels_pX.csv").exists():
        print(f"{root} not found; nothing to do", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    dataset = load_complexes(root, ComplexGraphSettings(), "openff", args.targets, cache=args.cache)
    if args.limit is not None and args.limit < len(dataset):
        rows = np.sort(np.random.default_rng(args.seed).choice(len(dataset), args.limit, replace=False))
        dataset = dataset[torch.as_tensor(rows)]
    groups = dataset.groups()
    y = dataset.targets_array()[:, 0]
    results: dict = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "threads": args.threads,
        },
        "n_complexes": len(dataset),
        "skipped": dataset.meta.skipped,
        "folds": [],
        "models": {},
    }
    predictions = {name: np.full(len(dataset), np.nan) for name in args.models}
    training = {name: [] for name in args.models}
    for fold, split in folds(groups, args):
        results["folds"].append({"name": fold, **{k: len(v) for k, v in split.items()}})
        for name in args.models:
            if name in BASELINES:
                predictions[name][split["test"]] = baseline_predictions(name, dataset, split)
                continue
            values, info = train_model(name, dataset, split, args)
            predictions[name][split["test"]] = values
            training[name].append({"fold": fold, **info})
            print(
                f"{fold:>10} {name:>16}: {info['train_seconds']:.1f} s, best epoch {info['best_epoch']}",
                file=sys.stderr,
            )
    tested = ~np.isnan(predictions[args.models[0]])
    for name in args.models:
        metrics = affinity_metrics(y[tested], predictions[name][tested], np.asarray(groups)[tested])
        results["models"][name] = {**headline(metrics), "metrics": metrics, "training": training[name]}
    results["wall_seconds"] = time.perf_counter() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=float))
    args.output.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
