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
80/10/10 random splits over ``--repeats`` seeds. Every model trains through ``atomgraph train``'s path
(:func:`atomgraph.evaluation.experiment.train_and_evaluate` on a config with ``data.dataset:
complexes``, ``data.split.kind: group``): AdamW, MSE on standardised labels, random rotation + 0.1 Å
noise augmentation, the checkpoint with the lowest validation loss is evaluated. Each run directory is
kept under ``--runs`` (git-ignored).

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
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from atomgraph.apps.complexes import ComplexGraphSettings, affinity_metrics, load_complexes  # noqa: E402
from atomgraph.apps.complexes.leak_check import metrics_by_similarity, nearest_training  # noqa: E402
from atomgraph.evaluation.experiment import train_and_evaluate  # noqa: E402
from atomgraph.training.config import load_config  # noqa: E402

GNN_MODELS: dict[str, dict] = {
    "late_fusion": {"name": "affinity_late_fusion"},
    "joint": {"name": "affinity_joint"},
    "cross_attention": {"name": "affinity_cross_attention", "heads": 4},
    "ligand_only_gnn": {"name": "affinity_ligand_only"},
}
BASELINES = ("mean", "ligand_size")
LIGAND_PARTS = {  # the module ``init.into`` fills: each model's ligand encoder (a zoo: model)
    "late_fusion": "ligand_encoder.model",
    "cross_attention": "ligand_encoder.model",
    "ligand_only_gnn": "encoder.model",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--models", nargs="+", default=[*GNN_MODELS, *BASELINES])
    parser.add_argument("--split", choices=("target", "random"), default="target")
    parser.add_argument("--targets", nargs="*", default=None, help="load only these targets")
    parser.add_argument("--test-targets", nargs="*", default=None, help="target split: held-out targets")
    parser.add_argument("--repeats", type=int, default=3, help="random split: number of seeds")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.1, help="augmentation noise, Å")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--residue-structure",
        action="store_true",
        help="residue nodes with secondary structure and solvent accessibility (residue_structure)",
    )
    parser.add_argument(
        "--conformers", type=int, default=0, help="aligned RDKit conformer poses per training complex"
    )
    parser.add_argument("--encoder", default=None, help="ligand encoder (default: the model's, mpnn)")
    parser.add_argument(
        "--ligand-inputs",
        choices=("complex", "molecule"),
        default="complex",
        help="what the ligand encoder reads",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="a molecule run whose encoder initialises the ligand encoder",
    )
    parser.add_argument(
        "--freeze-encoder", action="store_true", help="with --init-from: keep the loaded ligand encoder fixed"
    )
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--runs", type=Path, default=REPO_ROOT / "runs" / "protein_ligand")
    parser.add_argument(
        "--reuse-runs", action="store_true", help="read finished runs under --runs instead of retraining"
    )
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "protein_ligand.json"
    )
    args = parser.parse_args(argv)
    if args.freeze_encoder and args.init_from is None:
        parser.error("--freeze-encoder keeps a loaded encoder fixed: it needs --init-from")
    if args.init_from is not None:
        others = sorted(set(args.models) & set(GNN_MODELS) - set(LIGAND_PARTS))
        if args.ligand_inputs != "molecule" or not (args.encoder or "").startswith("zoo:") or others:
            parser.error(
                "--init-from needs --ligand-inputs molecule, a zoo: --encoder and models with a ligand "
                f"encoder ({sorted(LIGAND_PARTS)}); not {others or 'these flags'}"
            )
    return args


def folds(groups: list[str], args: argparse.Namespace) -> list[tuple[str, dict]]:
    """(fold name, the ``data.split`` / ``data.complex`` settings that make it)."""
    if args.split == "random":
        return [
            (f"seed{s}", {"split": {"kind": "random", "sizes": [0.8, 0.1, 0.1], "seed": args.seed + s}})
            for s in range(args.repeats)
        ]
    held_out = args.test_targets or sorted(set(groups))
    split = {"kind": "group", "seed": args.seed}
    return [(t, {"split": split, "complex": {"test_groups": [t], "val_fraction": 0.1}}) for t in held_out]


def baseline_predictions(name: str, dataset, split: dict[str, np.ndarray]) -> np.ndarray:
    y = dataset.targets_array()[:, 0]
    train, test = split["train"], split["test"]
    if name == "mean":
        return np.full(len(test), y[train].mean())
    size = np.array([int(dataset[int(i)].n_ligand) for i in range(len(dataset))], dtype=float)
    design = np.stack([size, np.ones_like(size)], axis=1)
    coef, *_ = np.linalg.lstsq(design[train], y[train], rcond=None)
    return design[test] @ coef


def ligand_encoder(name: str, args: argparse.Namespace) -> dict:
    """Model settings of ``--encoder`` and ``--ligand-inputs`` (the protein side keeps the MPNN)."""
    if name not in LIGAND_PARTS:  # the joint model: one encoder over the whole interaction graph
        return {}
    settings = {"ligand_inputs": args.ligand_inputs} if args.ligand_inputs != "complex" else {}
    if args.encoder:
        settings["encoder"] = args.encoder
        if name != "ligand_only_gnn":
            settings["protein_encoder"] = "mpnn"
    return settings


def run_config(name: str, fold: str, fold_settings: dict, root: Path, args: argparse.Namespace) -> dict:
    """The config ``atomgraph train`` would read for one model and fold."""
    complex_section = {"layout": "openff", "targets": args.targets, "augment_noise": args.noise,
                       "residue_structure": args.residue_structure, "conformers": args.conformers,
                       **fold_settings.get("complex", {})}  # fmt: skip
    settings = {
        "name": f"{name}_{fold}",
        "seed": args.seed,
        "run_dir": str(args.runs / f"{fold}_{name}"),
        "data": {
            "dataset": "complexes",
            "path": str(root),
            "targets": ["pK"],
            "cache": str(args.cache) if args.cache else None,
            "split": fold_settings["split"],
            "complex": complex_section,
        },
        "model": {
            **GNN_MODELS[name],
            "hidden": args.hidden,
            "layers": args.layers,
            **ligand_encoder(name, args),
        },
        "init": {
            "from": str(args.init_from),
            "load": "encoder",
            "into": LIGAND_PARTS.get(name),
            "freeze": [LIGAND_PARTS[name]] if args.freeze_encoder else [],
        }
        if args.init_from
        else {},
        "task": {"loss": "mse"},
        "training": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "eval_batch_size": 64,
            "optimizer": "adamw",
            "lr": args.lr,
            "weight_decay": 1e-4,
            "scheduler": "none",
            "gradient_clip": 10.0,
            "early_stopping_patience": args.epochs + 1,
            "accelerator": "cpu",
            "progress": False,
        },
    }
    return load_config(settings=settings)


def train_model(name: str, fold: str, fold_settings: dict, root: Path, args: argparse.Namespace):
    """Train one model on one fold through the ``atomgraph train`` path; returns (test rows, test
    predictions in pK, info)."""
    started = time.perf_counter()
    config = run_config(name, fold, fold_settings, root, args)
    run_dir = Path(config["run_dir"])
    finished = (run_dir / "metrics.json").exists() and (run_dir / "predictions_test.csv").exists()
    if not (args.reuse_runs and finished):  # --reuse-runs: a finished run of this model and fold is read
        run_dir = train_and_evaluate(config, progress=False, overwrite=True)
        (run_dir / "benchmark_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    seconds_file = run_dir / "benchmark_seconds.txt"
    rows = np.asarray(json.loads((run_dir / "split.json").read_text())["test"], dtype=int)
    table = pd.read_csv(run_dir / "predictions_test.csv")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = pd.read_csv(run_dir / "logs" / "metrics.csv")
    val = history.dropna(subset=["val_loss"]) if "val_loss" in history else history.iloc[0:0]
    info = {
        "train_seconds": float(seconds_file.read_text()) if seconds_file.exists() else float("nan"),
        "best_epoch": int(val.loc[val["val_loss"].idxmin(), "epoch"]) + 1 if len(val) else args.epochs,
        "parameters": metrics["parameters"],
        "run_dir": str(run_dir),
    }
    return rows, table["pK_pred"].to_numpy(), info


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
    leak = results.get("leak_check")
    if leak:
        bins = [f"{e['range'][0]:.1f}-{e['range'][1]:.1f} ({e['rows']})" for e in leak["bins"]]
        lines += [
            "",
            f"Leak check: nearest training ligand by {leak['fingerprint']}; median similarity "
            f"{leak['median_similarity']:.2f}, {leak['identical']} test rows identical to a training ligand. "
            "RMSE (pK) by similarity bin (rows):",
            "",
            "| model | " + " | ".join(bins) + " |",
            "|---|" + "---|" * len(bins),
        ]
        for name, entries in leak["by_model"].items():
            cells = [f"{e['rmse']:.3f}" if "rmse" in e else "" for e in entries]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
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
    smiles = [dataset.meta.smiles[i] for i in dataset.indices()]
    similarity, identical = np.full(len(dataset), np.nan), np.zeros(len(dataset), dtype=bool)
    training = {name: [] for name in args.models}
    for fold, fold_settings in folds(groups, args):
        split = None
        for name in [m for m in args.models if m in GNN_MODELS]:
            rows, values, info = train_model(name, fold, fold_settings, root, args)
            predictions[name][rows] = values
            training[name].append({"fold": fold, **info})
            split = json.loads((Path(info["run_dir"]) / "split.json").read_text())
            print(
                f"{fold:>10} {name:>16}: {info['train_seconds']:.1f} s, best epoch {info['best_epoch']}",
                file=sys.stderr,
            )
        if split is None:  # baselines only: the fold's split, as a run would make it
            from atomgraph.training.datasets import make_split

            config = run_config("joint", fold, fold_settings, root, args)
            split = make_split(config, dataset)
        split = {k: np.asarray(v, dtype=int) for k, v in split.items()}
        results["folds"].append({"name": fold, **{k: len(v) for k, v in split.items()}})
        nearest = nearest_training([smiles[i] for i in split["train"]], [smiles[i] for i in split["test"]])
        similarity[split["test"]], identical[split["test"]] = nearest[0], nearest[2]
        for name in [m for m in args.models if m in BASELINES]:
            predictions[name][split["test"]] = baseline_predictions(name, dataset, split)
    tested = ~np.isnan(predictions[args.models[0]])
    for name in args.models:
        metrics = affinity_metrics(y[tested], predictions[name][tested], np.asarray(groups)[tested])
        results["models"][name] = {**headline(metrics), "metrics": metrics, "training": training[name]}
    results["leak_check"] = {
        "fingerprint": "ECFP4 (Morgan radius 2, 2,048 bits), Tanimoto to the nearest training ligand",
        "median_similarity": float(np.nanmedian(similarity[tested])),
        "unparsed": int(np.isnan(similarity[tested]).sum()),
        "identical": int(identical[tested].sum()),
        "bins": [
            {"range": e["range"], "rows": e["rows"]}
            for e in metrics_by_similarity(similarity[tested], y[tested], y[tested])
        ],
        "by_model": {
            name: metrics_by_similarity(similarity[tested], y[tested], predictions[name][tested])
            for name in args.models
        },
    }
    results["wall_seconds"] = time.perf_counter() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=float))
    args.output.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
