"""Seed 004's "pre-train on energies, fine-tune on elasticity": bulk and shear moduli from scratch and
fine-tuned from the formation-energy model.

The 3,191 crystals of ``../shared/data/mp_crystals/elasticity`` with their VRH bulk and shear moduli
in log space (``log10_bulk_modulus``, ``log10_shear_modulus``, log10 GPa: the moduli span three
decades; a modulus <= 0 is missing), one seeded 80/10/10 split, the crystal graph of the
formation-energy runs (12 nearest neighbours within 8 Å). Two SchNet runs with the same architecture,
split and wall-clock budget through ``atomgraph train``'s path (early stopping on validation, best
checkpoint evaluated):

* ``scratch``: random initial weights;
* ``finetuned``: every layer but the output head from a formation-energy SchNet trained on the
  36,737 MP crystals (``--pretrained``; ``init.load: encoder``, a new head for the two moduli).

The runs' reports put each beside the training mean, the composition ridge / MLP and the descriptor
random forest on the same test crystals.

    python benchmarks/elasticity.py --budget-min 10 --threads 1 --pretrained RUN_DIR

Writes ``benchmarks/results/elasticity.json`` and the runs (parity plots etc.) under ``--run-root``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from atomgraph.apps.crystals.dataset import load_crystals
from atomgraph.data import save_split
from atomgraph.data.splits import random_split
from atomgraph.graphs.spec import preset
from atomgraph.training.datasets import select_targets

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "mp_crystals" / "elasticity"
TARGETS = ("log10_bulk_modulus", "log10_shear_modulus")
SCHNET = {"hidden": 64, "filters": 64, "interactions": 3, "num_rbf": 50}  # the formation-energy model's
KEEP = ("mae", "rmse", "r2", "spearman")


def train(label: str, args, split_file: Path, pretrained: str | None) -> dict:
    """One run; its test metrics per target (model and baselines), epochs, parameters and wall time."""
    from atomgraph.evaluation.experiment import train_and_evaluate
    from atomgraph.training.config import load_config, wall_clock_budget

    run_dir = Path(args.run_root) / label
    overrides = [
        f"name=elasticity_schnet_{label}",
        f"seed={args.seed}",
        f"run_dir={run_dir}",
        "data.dataset=crystals",
        f"data.path={args.data}",
        f"data.targets=[{','.join(TARGETS)}]",
        f"data.split.file={split_file}",
        "data.crystals.workers=1",
        "data.crystals.top_k=50",
        "model.name=schnet",
        *(f"model.{k}={v}" for k, v in SCHNET.items()),
        "training.epochs=10000",
        f"training.max_time={wall_clock_budget(args.budget_min)}",
        "training.batch_size=32",
        f"training.lr={args.lr}",
        "training.early_stopping_patience=40",
        "training.accelerator=cpu",
        "training.progress=false",
    ]
    if pretrained:
        overrides += [f"init.from={pretrained}", "init.load=encoder", "init.allow_new_elements=true"]
    start = time.perf_counter()
    train_and_evaluate(load_config(None, overrides), progress=False, overwrite=True)
    wall = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = {
        target: {
            name: {k: entry.get(k) for k in KEEP}
            for name, entry in metrics["test"][target].items()
            if isinstance(entry, dict) and "mae" in entry
        }
        for target in TARGETS
    }
    return {
        "init": pretrained or "random",
        "epochs": metrics.get("epochs"),
        "parameters": metrics["parameters"],
        "wall_s": round(wall, 1),
        "run_dir": str(run_dir),
        "test": test,
        "shortcut": metrics.get("shortcut"),
        "volume_response": metrics.get("volume_response"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--pretrained", required=True, help="a formation-energy SchNet run (64/64/3)")
    parser.add_argument("--budget-min", type=float, default=10.0, help="wall-clock minutes per run")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-root", default="runs/elasticity")
    parser.add_argument("--out", default=str(ROOT / "results" / "elasticity.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    crystals = load_crystals(args.data, preset("cgcnn_crystal"), workers=1, progress=False)
    dataset = select_targets(crystals, list(TARGETS))
    split = random_split(len(dataset), [0.8, 0.1, 0.1], seed=args.seed)
    run_root = Path(args.run_root)
    run_root.mkdir(parents=True, exist_ok=True)
    save_split(split, run_root / "split.json")
    labelled = (~torch.isnan(torch.as_tensor(dataset.targets_array()))).sum(dim=0).tolist()
    results = {
        "benchmark": "elasticity",
        "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
        "crystals": {
            "total": len(dataset),
            "labelled": dict(zip(TARGETS, labelled, strict=True)),
            **{k: len(v) for k, v in split.items()},
        },
        "units": "log10(GPa)",
        "model": {"name": "schnet", **SCHNET, "lr": args.lr, "batch_size": 32},
        "budget_min_per_run": args.budget_min,
        "threads": args.threads,
        "runs": {},
    }
    for label, pretrained in (("scratch", None), ("finetuned", args.pretrained)):
        results["runs"][label] = train(label, args, run_root / "split.json", pretrained)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))  # partial results too
    for target in TARGETS:
        print(f"{target} [log10 GPa], test MAE")
        baselines = results["runs"]["scratch"]["test"][target]
        for name, entry in baselines.items():
            if name != "model":
                print(f"  {name:<24}{entry['mae']:.4f}")
        for label, run in results["runs"].items():
            print(f"  schnet {label:<17}{run['test'][target]['model']['mae']:.4f}  ({run['epochs']} epochs)")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
