"""Fine-tuning: does pre-training on QM9 help MoleculeNet regression at an equal budget?

1. Pre-train the GCN of ``benchmarks/moleculenet.py`` (4 layers, hidden 128, dropout 0.1, heavy-atom
   bond graphs: ``data.graph.explicit_hydrogens: false``, the MoleculeNet graphs) on a seeded QM9 sample
   (``--qm9-subset`` molecules; the intensive targets HOMO, LUMO, gap and dipole moment -- this GCN reads
   every target out mean-pooled -- normalised, L1 loss), for ``--pretrain-min`` minutes.
2. On ESOL and FreeSolv (balanced scaffold splits 80/10/10, seeds 0, 1, 2): train from scratch and
   fine-tune from the pre-trained run (``init.from``, ``init.load: encoder``: every layer but the output
   head; a new head for the new target; ``init.allow_new_elements``: the MoleculeNet sets have S, Cl,
   Br, P, I that QM9 does not), both with the same epochs cap and wall-clock budget; test RMSE.

    python benchmarks/finetune.py --threads 1
    python benchmarks/finetune.py --smoke

Writes ``benchmarks/results/finetune.json``.
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
from moleculenet import DATA, DATASETS, MODELS, make_config

from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.training.config import load_config, wall_clock_budget

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "finetune.json"
QM9_TARGETS = ["homo", "lumo", "gap", "mu"]  # intensive: the GCN reads every target out mean-pooled


def pretrain(args) -> Path:
    run_dir = args.runs_dir / "qm9_pretrain"
    settings = {
        "name": "qm9_pretrain_gcn",
        "run_dir": str(run_dir),
        "data": {
            "dataset": "qm9",
            "subset": args.qm9_subset,
            "targets": QM9_TARGETS,
            "graph": {"kind": "bond", "explicit_hydrogens": False},
            "split": {"kind": "random", "sizes": [0.9, 0.05, 0.05], "seed": 0},
        },
        "model": MODELS["gcn"],
        "task": {"loss": "l1"},
        "training": {
            "epochs": 1000,
            "max_time": wall_clock_budget(args.pretrain_min),
            "batch_size": 64,
            "lr": 1e-3,
            "scheduler": "plateau",
            "plateau_patience": 5,
            "early_stopping_patience": 30,
            "progress": False,
            "accelerator": "cpu",
        },
    }
    train_and_evaluate(load_config(settings=settings), progress=False, overwrite=True)
    return run_dir


def downstream(name: str, seed: int, source: Path | None, args) -> dict:
    spec = DATASETS[name]
    ns = argparse.Namespace(
        runs_dir=args.runs_dir, cache=None, epochs=args.epochs, budget_min=args.budget_min, no_progress=True
    )
    config = make_config(name, spec, DATA / spec.file, "gcn", seed, ns)
    label = "finetuned" if source else "scratch"
    config.update(
        run_dir=str(args.runs_dir / name / f"{label}_seed{seed}"), name=f"{name}_{label}_seed{seed}"
    )
    if source is not None:
        config["init"].update({"from": str(source), "load": "encoder", "allow_new_elements": True})
    start = time.perf_counter()
    run_dir = train_and_evaluate(config, progress=False, overwrite=True)
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    return {
        "rmse": metrics["test"][spec.target]["model"]["rmse"],
        "mae": metrics["test"][spec.target]["model"]["mae"],
        "epochs": metrics["epochs"],
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["esol", "freesolv"], choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--qm9-subset", type=int, default=30000)
    parser.add_argument("--pretrain-min", type=float, default=20.0)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--budget-min", type=float, default=1.5, help="wall clock per downstream run, min")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "bench_finetune")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--skip-pretrain", action="store_true", help="reuse the pre-trained run in --runs-dir"
    )
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.qm9_subset, args.pretrain_min, args.epochs, args.budget_min, args.seeds = 600, 0.2, 2, 0.1, [0]
        args.runs_dir = Path("/tmp/atomgraph_finetune_smoke")
        args.out = Path("/tmp/atomgraph_finetune_smoke.json") if args.out == RESULTS else args.out
    args.runs_dir = args.runs_dir.resolve()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    source = args.runs_dir / "qm9_pretrain" if args.skip_pretrain else pretrain(args)
    pretrain_metrics = json.loads((source / "metrics.json").read_text())
    report = {
        "benchmark": "GCN pre-trained on QM9, fine-tuned on MoleculeNet regression, vs from scratch",
        "settings": {
            "model": MODELS["gcn"],
            "pretrain": {
                "qm9_subset": args.qm9_subset,
                "targets": QM9_TARGETS,
                "budget_min": args.pretrain_min,
                "epochs": pretrain_metrics["epochs"],
                "seconds": None if args.skip_pretrain else round(time.perf_counter() - start, 1),
            },
            "downstream": {
                "split": "balanced scaffold 80/10/10",
                "epochs_cap": args.epochs,
                "budget_min_per_run": args.budget_min,
                "init": "load encoder, new head, all trainable",
            },
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "cpu": platform.machine(),
            "smoke": args.smoke,
        },
        "results": {},
    }
    for name in args.datasets:
        entry: dict = {"unit": DATASETS[name].description, "seeds": args.seeds}
        done = {label: [] for label in ("scratch", "finetuned")}
        for seed in args.seeds:  # interleaved: both see the same machine load
            for label, init in (("scratch", None), ("finetuned", source)):
                done[label].append(downstream(name, seed, init, args))
        for label, runs in done.items():
            rmse = [r["rmse"] for r in runs]
            entry[label] = {
                "rmse": rmse,
                "rmse_mean": float(np.mean(rmse)),
                "rmse_std": float(np.std(rmse)),
                "epochs": [r["epochs"] for r in runs],
            }
            print(name, label, entry[label], flush=True)
        entry["gain_percent"] = 100 * (1 - entry["finetuned"]["rmse_mean"] / entry["scratch"]["rmse_mean"])
        report["results"][name] = entry
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
