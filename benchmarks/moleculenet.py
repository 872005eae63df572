"""MoleculeNet: GCN, GAT, GATv2 and the MPNN on five datasets, scaffold split, mean ± std over seeds.

Datasets (``../shared/data/moleculenet``): ESOL (``delaney.csv``; its ``logp`` column holds the ESOL
log solubility, log mol/L), FreeSolv (hydration free energy, kcal/mol), Lipophilicity (logD at
pH 7.4) — regression, test RMSE — and BBBP (blood-brain barrier penetration), BACE (beta-secretase
inhibition) — binary classification, test ROC-AUC. Every run goes through the training system
(``atomgraph.training.run.train``) on heavy-atom bond graphs (``data.graph.explicit_hydrogens:
false``) with a balanced Bemis-Murcko scaffold split 80/10/10 (``atomgraph.data.splits``, chemprop's
variant); seed k sets the split seed and the initialisation, so each seed is a different split
shared by all models. SMILES that RDKit cannot parse are skipped (listed in the JSON).

Models (hyperparameters in ``MODELS``): ``gcn``, ``gat``, ``gatv2`` (4 layers, hidden 128, mean
readout, dropout 0.1) and ``mpnn`` (Gilmer's edge network, d = 64, T = 3, set2set, ``distance:
none``: the chemical graph only). Training: AdamW 1e-3, plateau schedule, MSE loss (regression) or
BCE (classification) on normalised targets, early stopping after 20 epochs without improvement,
``--epochs`` (100) and ``--budget-min`` (5) per run at most; the best validation checkpoint is
evaluated. A training-mean baseline is reported for the regression sets, and for every set the
fingerprint baseline: ECFP4 (Morgan radius 2, 2,048 bits) + a 500-tree random forest on the same split
(``atomgraph.evaluation.fingerprint_baseline``).

Chemprop (v2, the D-MPNN) runs on the same splits when it imports: the kept molecules and the split
indices are written to ``runs/moleculenet/<dataset>/chemprop_seed<k>/{data.csv,splits.json}``
(usable with ``chemprop train --splits-file``) and trained through its Python API with its CLI
defaults (d = 300, depth 3, mean aggregation, one 300-wide FFN layer, batch 64, Noam schedule
1e-4 -> 1e-3 -> 1e-4, ``--chemprop-epochs`` 50, best ``val_loss`` checkpoint), under the same
``--budget-min``. Otherwise the JSON records why it was not run. ``chemprop==2.2.4`` installs
beside this project's pins; 2.3.x pins rdkit==2026.3.6 (through cuik_molmaker_pin), a downgrade.

    python benchmarks/moleculenet.py                                    # everything (hours on 2 cores)
    python benchmarks/moleculenet.py --datasets esol bbbp --models gat mpnn --seeds 0 1 2
    python benchmarks/moleculenet.py --quick --output /tmp/moleculenet.json  # smoke test
    python benchmarks/moleculenet.py --models --no-chemprop --output X.json   # the baselines only

Writes ``benchmarks/results/moleculenet.json`` (``results``: one entry per dataset and model with the
metric per seed, mean and std) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from results_json import finite_json, relative

from atomgraph.data import load_split
from atomgraph.evaluation.fingerprint_baseline import FingerprintForest
from atomgraph.evaluation.metrics import rmse, roc_auc
from atomgraph.training.config import load_config, wall_clock_budget
from atomgraph.training.datasets import load_dataset, make_split, select_targets

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results" / "moleculenet.json"
DATA = ROOT.parent / "shared" / "data" / "moleculenet"


@dataclass(frozen=True)
class Spec:
    label: str
    file: str
    smiles: str
    target: str
    kind: str  # regression | classification
    description: str

    @property
    def metric(self) -> str:
        return "rmse" if self.kind == "regression" else "roc_auc"

    @property
    def metric_label(self) -> str:
        return "RMSE ↓" if self.kind == "regression" else "ROC-AUC ↑"


# Column names as they are in the files (checked with head -2).
DATASETS = {
    "esol": Spec("ESOL", "delaney.csv", "smiles", "logp", "regression", "log solubility, log(mol/L)"),
    "freesolv": Spec(
        "FreeSolv", "freesolv.csv", "smiles", "freesolv", "regression", "hydration free energy, kcal/mol"
    ),
    "lipo": Spec("Lipophilicity", "lipo.csv", "smiles", "lipo", "regression", "octanol/water logD at pH 7.4"),
    "bbbp": Spec("BBBP", "BBBP.csv", "smiles", "p_np", "classification", "blood-brain barrier penetration"),
    "bace": Spec("BACE", "bace.csv", "mol", "Class", "classification", "BACE-1 inhibition"),
}

STACK = {"hidden": 128, "layers": 4, "dropout": 0.1, "pool": "mean"}
MODELS = {
    "gcn": {"name": "gcn", **STACK, "edge_features": True},  # mean bond features appended to atom inputs
    "gat": {"name": "gat", **STACK, "heads": 4},  # bond features in the attention
    "gatv2": {"name": "gatv2", **STACK, "heads": 4},
    "mpnn": {"name": "mpnn", "hidden": 64, "steps": 3, "edge_hidden": 128, "distance": "none"},  # set2set
}
LABELS = {"mean_baseline": "Mean baseline", "gcn": "GCN", "gat": "GAT", "gatv2": "GATv2", "mpnn": "MPNN"}
LABELS["chemprop"] = "chemprop D-MPNN"
LABELS["ecfp_rf"] = "ECFP4 + random forest"


# ------------------------------------------------------------------------------------------------
# configs
# ------------------------------------------------------------------------------------------------


def make_config(name: str, spec: Spec, path: Path, model: str, seed: int, args) -> dict:
    settings = {
        "name": f"moleculenet_{name}_{model}_seed{seed}",
        "seed": seed,
        "run_dir": str(args.runs_dir / name / f"{model}_seed{seed}"),
        "data": {
            "dataset": "csv",
            "path": str(path),
            "smiles_column": spec.smiles,
            "targets": [spec.target],
            "kind": spec.kind,
            "cache": args.cache,
            "graph": {"kind": "bond", "explicit_hydrogens": False},
            "split": {"kind": "scaffold", "sizes": [0.8, 0.1, 0.1], "seed": seed},
        },
        "model": MODELS[model],
        "task": {"loss": "mse" if spec.kind == "regression" else "bce"},
        "training": {
            "epochs": args.epochs,
            "max_time": wall_clock_budget(args.budget_min),
            "batch_size": 32,
            "eval_batch_size": 128,
            "optimizer": "adamw",
            "lr": 1e-3,
            "scheduler": "plateau",
            "plateau_factor": 0.5,
            "plateau_patience": 5,
            "early_stopping_patience": 20,
            "progress": not args.no_progress,
        },
    }
    return load_config(settings=settings)


# ------------------------------------------------------------------------------------------------
# runs
# ------------------------------------------------------------------------------------------------
def epochs_run(run_dir: Path) -> int:
    """Epochs with a validation pass, from a Lightning CSV log under ``run_dir``."""
    logs = sorted(run_dir.glob("**/metrics.csv"))
    if not logs:
        return 0
    frame = pd.read_csv(logs[0])
    if "val_loss" not in frame:
        return 0
    return int(frame.dropna(subset=["val_loss"])["epoch"].nunique())


def run_ours(config: dict, spec: Spec, split: dict, args) -> dict:
    from atomgraph.evaluation.experiment import train_and_evaluate

    start = time.perf_counter()
    run_dir = train_and_evaluate(config, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    saved = load_split(run_dir / "split.json")
    if any(not np.array_equal(saved[k], split[k]) for k in split):
        raise RuntimeError(
            f"{run_dir}: the run's split differs from the benchmark's (chemprop would not match)"
        )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "value": float(metrics["test"][spec.target]["model"][spec.metric]),
        "parameters": int(metrics["parameters"]),
        "train_seconds": seconds,
        "epochs": epochs_run(run_dir),
        "run_dir": relative(run_dir),
    }


def chemprop_status(args) -> dict:
    """{"status": "run", "version": ...} when chemprop v2 imports, else {"status": "not run", "reason"}."""
    if args.no_chemprop:
        return {"status": "not run", "reason": "--no-chemprop given"}
    try:
        import chemprop
        from chemprop import data, featurizers, models, nn  # noqa: F401
    except ImportError as error:
        return {
            "status": "not run",
            "reason": f"chemprop does not import here ({error}). `pip install chemprop==2.2.4` adds it "
            "without replacing torch, rdkit or numpy; chemprop 2.3.x would downgrade rdkit to 2026.3.6 "
            "(cuik_molmaker_pin pins it).",
        }
    version = getattr(chemprop, "__version__", "unknown")
    if not version.startswith("2."):
        return {"status": "not run", "reason": f"chemprop {version} is not v2 (this script uses the v2 API)"}
    return {"status": "run", "version": version}


def run_chemprop(dataset, spec: Spec, split: dict, seed: int, run_dir: Path, args) -> dict:
    """Chemprop's D-MPNN (CLI defaults) on exactly our molecules and split, through its Python API."""
    import lightning as L
    from chemprop import data, featurizers, models, nn
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    run_dir.mkdir(parents=True, exist_ok=True)
    smiles = list(dataset.meta.smiles)
    y = dataset.targets_array()[:, 0]
    pd.DataFrame({"smiles": smiles, spec.target: y}).to_csv(run_dir / "data.csv", index=False)
    indices = {k: np.asarray(v).tolist() for k, v in split.items()}
    (run_dir / "splits.json").write_text(json.dumps([indices]))  # chemprop train --splits-file format

    L.seed_everything(seed, workers=True, verbose=False)
    points = [data.MoleculeDatapoint.from_smi(s, [v]) for s, v in zip(smiles, y, strict=True)]
    featurizer = featurizers.SimpleMoleculeMolGraphFeaturizer()
    sets = {
        k: data.MoleculeDataset([points[i] for i in split[k]], featurizer) for k in ("train", "val", "test")
    }
    if spec.kind == "regression":
        scaler = sets["train"].normalize_targets()
        sets["val"].normalize_targets(scaler)
        predictor = nn.RegressionFFN(output_transform=nn.UnscaleTransform.from_standard_scaler(scaler))
    else:
        predictor = nn.BinaryClassificationFFN()
    model = models.MPNN(nn.BondMessagePassing(), nn.MeanAggregation(), predictor)
    loaders = {
        "train": data.build_dataloader(sets["train"], batch_size=64, seed=seed, num_workers=0),
        "val": data.build_dataloader(sets["val"], batch_size=64, shuffle=False, num_workers=0),
        "test": data.build_dataloader(sets["test"], batch_size=64, shuffle=False, num_workers=0),
    }
    best = ModelCheckpoint(
        run_dir / "checkpoints", "best", "val_loss", mode="min", enable_version_counter=False
    )
    trainer = L.Trainer(
        logger=CSVLogger(run_dir, name="logs", version=""),
        enable_progress_bar=not args.no_progress,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        max_epochs=args.chemprop_epochs,
        max_time=wall_clock_budget(args.budget_min),
        callbacks=[best],
    )
    start = time.perf_counter()
    trainer.fit(model, loaders["train"], loaders["val"])
    seconds = time.perf_counter() - start
    if best.best_model_path:
        model = models.MPNN.load_from_checkpoint(best.best_model_path)
    pred = torch.cat(trainer.predict(model, loaders["test"])).numpy().reshape(-1)
    truth = y[split["test"]]
    value = rmse(truth, pred) if spec.kind == "regression" else roc_auc(truth, pred)
    return {
        "value": float(value),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "train_seconds": seconds,
        "epochs": epochs_run(run_dir),
        "run_dir": relative(run_dir),
    }


def fingerprint_baseline(dataset, spec: Spec, split: dict, seed: int) -> dict:
    """ECFP4 + random forest (atomgraph.evaluation.fingerprint_baseline) on the same split's SMILES."""
    smiles = dataset.meta.smiles
    y = dataset.targets_array()[:, 0]
    start = time.perf_counter()
    forest = FingerprintForest(spec.kind, seed=seed).fit(
        [smiles[i] for i in split["train"]], y[split["train"]]
    )
    seconds = time.perf_counter() - start
    pred = forest.predict([smiles[i] for i in split["test"]])
    truth = y[split["test"]]
    value = rmse(truth, pred) if spec.kind == "regression" else roc_auc(truth, pred)
    return {"value": float(value), "parameters": forest.parameters, "train_seconds": seconds, "epochs": None,
            "unparsed_smiles": forest.unparsed}  # fmt: skip


def mean_baseline(dataset, split: dict) -> dict:
    y = dataset.targets_array()[:, 0]
    pred = np.full(len(split["test"]), np.nanmean(y[split["train"]]))
    return {"value": rmse(y[split["test"]], pred), "parameters": 1, "train_seconds": 0.0, "epochs": None}


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
def data_file(spec: Spec, args) -> Path:
    """The CSV to use: the original, or (``--limit``) a seeded sample of its rows in a temp folder."""
    path = args.data_dir / spec.file
    if args.limit is None:
        return path
    table = pd.read_csv(path)
    if len(table) > args.limit:
        table = table.sample(n=args.limit, random_state=0).sort_index()
    sample = Path(args.limit_dir) / f"{path.stem}_limit{args.limit}.csv"
    table.to_csv(sample, index=False)
    return sample


# ------------------------------------------------------------------------------------------------
# summary
# ------------------------------------------------------------------------------------------------
def summarise(name: str, spec: Spec, model: str, seeds: list[int], runs: dict) -> dict:
    values = [runs[s].get("value") for s in seeds]
    values = [v if v is not None and math.isfinite(v) else None for v in values]  # NaN: one class in test
    finite = [v for v in values if v is not None]
    entry = {
        "dataset": name,
        "model": model,
        "metric": spec.metric,
        "seeds": seeds,
        "values": values,
        "mean": float(np.mean(finite)) if finite else None,
        "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else (0.0 if finite else None),
        "n_seeds": len(finite),
        "parameters": next((runs[s]["parameters"] for s in seeds if "parameters" in runs[s]), None),
        "train_seconds": [runs[s].get("train_seconds") for s in seeds],
        "epochs": [runs[s].get("epochs") for s in seeds],
    }
    run_dirs = [runs[s].get("run_dir") for s in seeds]
    if any(run_dirs):
        entry["run_dirs"] = run_dirs
    errors = {str(s): runs[s]["error"] for s in seeds if "error" in runs[s]}
    if errors:
        entry["errors"] = errors
    return entry


def markdown_table(results: list[dict], names: list[str]) -> str:
    cells: dict[tuple[str, str], str] = {}
    order: list[str] = []
    for entry in results:
        if entry["model"] not in order:
            order.append(entry["model"])
        if entry["mean"] is None:
            text = "failed"
        else:
            text = f"{entry['mean']:.3f} ± {entry['std']:.3f}"
            if entry["n_seeds"] < len(entry["seeds"]):
                text += f" ({entry['n_seeds']}/{len(entry['seeds'])} seeds)"
        cells[(entry["dataset"], entry["model"])] = text
    header = (
        "| Model | " + " | ".join(f"{DATASETS[n].label} {DATASETS[n].metric_label}" for n in names) + " |"
    )
    lines = [header, "|---|" + "---:|" * len(names)]
    for model in order:
        row = " | ".join(cells.get((n, model), "-") for n in names)
        lines.append(f"| {LABELS.get(model, model)} | {row} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument(
        "--models", nargs="*", default=list(MODELS), choices=list(MODELS), help="none: the baselines only"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="default 0 1 2 (quick: 0 1)")
    parser.add_argument("--epochs", type=int, default=None, help="epoch cap per run; default 100 (quick: 2)")
    parser.add_argument("--chemprop-epochs", type=int, default=None, help="default 50, chemprop's (quick: 2)")
    parser.add_argument(
        "--budget-min", type=float, default=None, help="wall-clock minutes per run; default 5"
    )
    parser.add_argument("--no-chemprop", action="store_true", help="do not run chemprop even if it imports")
    parser.add_argument(
        "--limit", type=int, default=None, help="a seeded sample of this many rows per dataset"
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 150 rows, 2 epochs, seeds 0 1")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument(
        "--output", "--out", type=Path, default=None, help="results JSON (quick: a temp path)"
    )
    parser.add_argument("--runs-dir", type=Path, default=None, help="default runs/moleculenet")
    parser.add_argument("--cache", default=None, help="processed-data cache (default ~/.cache/atomgraph)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (one line per epoch)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.seeds = args.seeds if args.seeds is not None else ([0, 1] if quick else [0, 1, 2])
    args.epochs = args.epochs if args.epochs is not None else (2 if quick else 100)
    args.chemprop_epochs = args.chemprop_epochs if args.chemprop_epochs is not None else (2 if quick else 50)
    args.budget_min = args.budget_min if args.budget_min is not None else (1.0 if quick else 5.0)
    args.limit = args.limit if args.limit is not None else (150 if quick else None)
    if args.output is None:  # smoke numbers never overwrite the real results
        args.output = Path(tempfile.gettempdir()) / "atomgraph_smoke" / RESULTS.name if quick else RESULTS
    if args.runs_dir is None:
        args.runs_dir = ROOT / "runs" / ("moleculenet_quick" if quick else "moleculenet")
    args.runs_dir = args.runs_dir.resolve()

    present = [n for n in args.datasets if (args.data_dir / DATASETS[n].file).exists()]
    for name in args.datasets:
        if name not in present:
            print(f"skipping {name}: {args.data_dir / DATASETS[name].file} not found")
    if not present:
        print(f"skipping: no MoleculeNet data in {args.data_dir}")
        return 0
    chemprop = chemprop_status(args)
    print(f"chemprop: {chemprop}", flush=True)
    limit_dir = tempfile.TemporaryDirectory(prefix="moleculenet_limit_")
    args.limit_dir = limit_dir.name

    results: list[dict] = []
    datasets_info: dict = {}
    failures = 0
    total = len(present) * len(args.seeds) * (len(args.models) + (chemprop["status"] == "run"))
    done = 0
    for name in present:
        spec = DATASETS[name]
        path = data_file(spec, args)
        runs: dict[str, dict[int, dict]] = {
            m: {} for m in ["mean_baseline", "ecfp_rf", *args.models, "chemprop"]
        }
        first = make_config(name, spec, path, args.models[0] if args.models else "gcn", args.seeds[0], args)
        print(f"\n##### {spec.label} ({path.name}): building graphs (cached afterwards) ...", flush=True)
        dataset = select_targets(load_dataset(first, progress=not args.no_progress), [spec.target])
        datasets_info[name] = {
            "file": relative(path) if args.limit is None else str(path.name),
            "smiles_column": spec.smiles,
            "target_column": spec.target,
            "description": spec.description,
            "task": spec.kind,
            "metric": spec.metric,
            "molecules": len(dataset),
            "skipped_smiles": [s.get("id") for s in dataset.meta.skipped],
            "split_sizes": {},
        }
        for seed in args.seeds:
            split = make_split(make_config(name, spec, path, "gcn", seed, args), dataset)
            datasets_info[name]["split_sizes"][str(seed)] = {k: len(v) for k, v in split.items()}
            if spec.kind == "regression":
                runs["mean_baseline"][seed] = mean_baseline(dataset, split)
            try:
                runs["ecfp_rf"][seed] = fingerprint_baseline(dataset, spec, split, seed)
            except Exception as error:  # a failed baseline must not lose the runs that follow
                traceback.print_exc()
                runs["ecfp_rf"][seed] = {"error": f"{type(error).__name__}: {error}"}
                failures += 1
            print(f"{spec.label} ECFP4 + RF seed {seed}: {runs['ecfp_rf'][seed]}", flush=True)
            for model in args.models:
                done += 1
                print(f"\n=== [{done}/{total}] {spec.label} {model} seed {seed} ===", flush=True)
                try:
                    config = make_config(name, spec, path, model, seed, args)
                    runs[model][seed] = run_ours(config, spec, split, args)
                except Exception as error:  # keep going: one failed run must not lose hours of others
                    traceback.print_exc()
                    runs[model][seed] = {"error": f"{type(error).__name__}: {error}"}
                    failures += 1
                print(f"{spec.label} {model} seed {seed}: {runs[model][seed]}", flush=True)
            if chemprop["status"] == "run":
                done += 1
                print(f"\n=== [{done}/{total}] {spec.label} chemprop seed {seed} ===", flush=True)
                try:
                    run_dir = args.runs_dir / name / f"chemprop_seed{seed}"
                    runs["chemprop"][seed] = run_chemprop(dataset, spec, split, seed, run_dir, args)
                except Exception as error:
                    traceback.print_exc()
                    runs["chemprop"][seed] = {"error": f"{type(error).__name__}: {error}"}
                    failures += 1
                print(f"{spec.label} chemprop seed {seed}: {runs['chemprop'][seed]}", flush=True)
        for model, per_seed in runs.items():
            if per_seed:
                results.append(summarise(name, spec, model, args.seeds, per_seed))

    if chemprop["status"] == "run":
        chemprop["settings"] = (
            "CLI defaults through the Python API: BondMessagePassing (d_h 300, depth 3), MeanAggregation, "
            "RegressionFFN / BinaryClassificationFFN (1 hidden layer of 300), batch 64, Noam schedule "
            f"(1e-4 -> 1e-3 -> 1e-4, 2 warm-up epochs), {args.chemprop_epochs} epochs, best val_loss "
            "checkpoint, same molecules and split indices as ours (run_dir/data.csv, run_dir/splits.json)"
        )
    argv_used = sys.argv[1:] if argv is None else argv
    result = {
        "description": "MoleculeNet regression (RMSE) and classification (ROC-AUC), scaffold split 80/10/10, "
        "mean ± std (ddof=1) over seeds; seed k sets the split and the initialisation",
        "command": "python benchmarks/moleculenet.py " + " ".join(argv_used),
        "settings": {
            "seeds": args.seeds,
            "epochs": args.epochs,
            "budget_min_per_run": args.budget_min,
            "limit_rows": args.limit,
            "quick": quick,
            "graph": "heavy-atom bond graph (explicit_hydrogens: false)",
            "split": "balanced Bemis-Murcko scaffold split 80/10/10 (atomgraph.data.splits.scaffold_split)",
            "models": {m: MODELS[m] for m in args.models},
            "training": "AdamW 1e-3, plateau (0.5, patience 5), early stopping 20, batch 32, MSE "
            "(regression) or BCE (classification) loss on normalised targets, best validation checkpoint "
            "evaluated",
        },
        "datasets": datasets_info,
        "results": results,
        "chemprop": chemprop,
        "machine": {
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "processor": platform.processor() or platform.machine(),
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(finite_json(result), indent=2, default=float))
    limit_dir.cleanup()
    print()
    print(markdown_table(results, present))
    print(f"\nwrote {relative(args.output)}" + (f"; {failures} runs failed" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
