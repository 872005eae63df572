"""A pre-trained ligand encoder for protein-ligand affinity: pre-train on MoleculeNet, fine-tune per target.

1. Pre-train a GCN (``--hidden``/``--layers``, heavy-atom bond graphs: the MoleculeNet graphs) on
   MoleculeNet Lipophilicity (4,200 molecules' logD at pH 7.4, scaffold split 80/10/10) through
   ``atomgraph train``: lipophilicity is the part of binding a ligand brings on its own.
2. Run ``benchmarks/protein_ligand.py`` (leave-one-target-out on the OpenFF benchmark) twice with the same
   models whose ligand encoder is that GCN reading the ligand's molecule features
   (``encoder: zoo:gcn``, ``ligand_inputs: molecule``): from scratch, and initialised from the
   pre-trained GCN (``init.from``, ``init.load: encoder``, ``init.into`` the ligand encoder).

Usage (from the repository root)::

    .venv/bin/python benchmarks/pretrained_ligand.py --threads 1          # ~30 min on one core
    .venv/bin/python benchmarks/pretrained_ligand.py --pretrain-epochs 1 --epochs 1 --targets tyk2 cdk2 \
        --test-targets cdk2 --runs /tmp/plp --output /tmp/plp.json         # smoke run

Writes ``benchmarks/results/protein_ligand_pretrained.json`` and ``.md`` (or ``--output``), with the
pre-training run's test metrics and both variants' pooled and per-target metrics; exits 0 without
writing when the data is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protein_ligand

from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--models", nargs="+", default=["ligand_only_gnn", "late_fusion"])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--pretrain-epochs", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=12, help="affinity training epochs per fold")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="affinity training seeds")
    parser.add_argument("--targets", nargs="*", default=None, help="load only these targets (smoke runs)")
    parser.add_argument("--test-targets", nargs="*", default=None, help="hold out only these targets")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "pretrained_ligand")
    parser.add_argument("--reuse-pretrained", action="store_true", help="keep a finished pre-training run")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "protein_ligand_pretrained.json"
    )
    return parser.parse_args(argv)


def pretrain(args: argparse.Namespace) -> tuple[Path, dict]:
    """The Lipophilicity GCN run (trained here unless ``--reuse-pretrained`` finds it) and its summary."""
    run_dir = args.runs / "lipo_gcn"
    started = time.perf_counter()
    if not (args.reuse_pretrained and (run_dir / "metrics.json").exists()):
        settings = {
            "name": "lipo_gcn",
            "seed": 0,
            "run_dir": str(run_dir),
            "data": {
                "dataset": "csv",
                "path": str(args.data_root / "moleculenet" / "lipo.csv"),
                "smiles_column": "smiles",
                "targets": ["lipo"],
                "graph": {"kind": "bond", "explicit_hydrogens": False},
                "split": {"kind": "scaffold", "sizes": [0.8, 0.1, 0.1], "seed": 0},
            },
            "model": {"name": "gcn", "hidden": args.hidden, "layers": args.layers},
            "training": {
                "epochs": args.pretrain_epochs,
                "batch_size": 32,
                "lr": 1e-3,
                "early_stopping_patience": 15,
                "progress": False,
            },
        }
        train_and_evaluate(load_config(settings=settings), progress=False, overwrite=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"]["lipo"]
    return run_dir, {
        "run_dir": str(run_dir),
        "seconds": time.perf_counter() - started,  # ~0 when an existing run was reused
        "epochs": metrics["epochs"],
        "parameters": metrics["parameters"],
        "test_rmse_logD": test["model"]["rmse"],
        "test_rmse_mean_baseline": test["mean_baseline"]["rmse"],
    }


VARIANTS = ("scratch", "fine-tuned", "frozen")
"""The ligand encoder from scratch, initialised from the pre-trained GCN and trained on, or kept fixed."""


def variant_flags(variant: str, source: Path) -> list[str]:
    if variant == "scratch":
        return []
    return ["--init-from", str(source), *(["--freeze-encoder"] if variant == "frozen" else [])]


def summary_of(found: dict) -> dict:
    """Per model: the headline metrics of one protein_ligand.py run, and the model's parameter count."""
    return {
        name: {k: v for k, v in entry.items() if k not in ("metrics", "training")}
        | {"parameters": entry["training"][0]["parameters"] if entry.get("training") else None}
        for name, entry in found["models"].items()
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.data_root / "protein_ligand_openff" / "labels_pX.csv").exists():
        print(f"{args.data_root / 'protein_ligand_openff'} not found; nothing to do", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    source, summary = pretrain(args)
    print(f"pre-trained GCN: test RMSE {summary['test_rmse_logD']:.3f} logD", file=sys.stderr)
    sizes = ["--epochs", str(args.epochs), "--hidden", str(args.hidden), "--layers", str(args.layers)]
    encoder = ["--encoder", "zoo:gcn", "--ligand-inputs", "molecule"]
    common = ["--models", *args.models, "ligand_size", *sizes, *encoder, "--threads", str(args.threads)]
    common += ["--data-root", str(args.data_root)]
    for flag, values in (("--targets", args.targets), ("--test-targets", args.test_targets)):
        common += [flag, *values] if values else []
    results = {"pretraining": summary, "seeds": args.seeds, "runs": {}}
    for seed in args.seeds:  # seeds outermost: the variants of one seed run side by side
        for variant in VARIANTS:
            name = f"{variant}_seed{seed}"
            output = args.runs / f"{name}.json"
            flags = [*common, *variant_flags(variant, source), "--seed", str(seed)]
            protein_ligand.main([*flags, "--runs", str(args.runs / name), "--output", str(output)])
            results["runs"][name] = summary_of(json.loads(output.read_text()))
    results["mean_std"] = {
        variant: {
            model: {
                metric: [float(np.mean(values)), float(np.std(values))]
                for metric in ("pearson_r", "mean_target_spearman", "rmse")
                for values in [[results["runs"][f"{variant}_seed{s}"][model][metric] for s in args.seeds]]
            }
            for model in [*args.models, "ligand_size"]
        }
        for variant in VARIANTS
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=float))
    lines = [
        f"Leave one target out, mean ± std over seeds {args.seeds}:",
        "",
        "| model | ligand encoder | pooled r | mean per-target Spearman | RMSE (pK) |",
        "|---|---|---|---|---|",
    ]
    for model in [*args.models, "ligand_size"]:
        for variant in VARIANTS if model != "ligand_size" else VARIANTS[:1]:
            entry = results["mean_std"][variant][model]
            cells = " | ".join(
                f"{entry[m][0]:.2f} ± {entry[m][1]:.2f}"
                for m in ("pearson_r", "mean_target_spearman", "rmse")
            )
            lines.append(f"| {model} | {variant if model != 'ligand_size' else '–'} | {cells} |")
    args.output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
