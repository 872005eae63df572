"""Uncertainty on real data: one model vs a 5-member deep ensemble vs mean-variance and evidential models
vs MC dropout vs latent distance.

Datasets and models (every run through ``atomgraph.evaluation.experiment.train_and_evaluate``):

* ``esol``: ESOL log solubility (``../shared/data/moleculenet/delaney.csv``), the GCN of
  ``benchmarks/moleculenet.py`` (4 layers, hidden 128, dropout 0.1, heavy-atom bond graphs), balanced
  scaffold split 80/10/10 of seed 0, MSE loss;
* ``qm9_homo``: QM9 HOMO (eV), a seeded sample (``--qm9-subset``, 13,000: 10,000 / 1,000 / 2,000
  random), the same GCN on bond graphs with hydrogens, L1 loss;
* ``mp_formation``: Materials Project formation energy per atom (eV/atom, ``../shared/data/mp_crystals``),
  a seeded sample (``--mp-subset``) split 80/10/10, CGCNN (3 layers, hidden 64) with L1 loss. CGCNN has
  no dropout layer, so MC dropout is not applicable there (recorded as such).

Methods: ``single`` = ensemble member 0 (seed 0; no sigma); ``ensemble`` = members with seeds 0..4
(mean and spread); ``mc_dropout`` = member 0 with ``--mc-samples`` stochastic passes; ``latent_distance``
= member 0 with the mean distance of a graph's latent vector to its ``--latent-k`` nearest training
graphs' as sigma (:mod:`atomgraph.evaluation.latent_distance`; no training); ``mean_variance``
= one model (seed 0) with a variance head trained on the Gaussian NLL (``task.uncertainty``);
``evidential`` = one model (seed 0) with deep evidential regression's Normal-Inverse-Gamma head. Every sigma
is scored on the test split raw and after variance scaling fitted on the validation split
(:mod:`atomgraph.evaluation.calibration`): MAE, NLL, miscalibration area, Spearman(|error|, sigma), 95 %
coverage (Gaussian interval) and the coverage of the split-conformal 95 % interval. Each training run has
the same wall-clock budget (``--budget-min``, per dataset) and epoch cap, so the numbers depend on the
machine's load: the epochs reached are recorded.

    python benchmarks/uncertainty.py --threads 1                      # the README table
    python benchmarks/uncertainty.py --smoke                          # minutes, to /tmp
    python benchmarks/uncertainty.py --threads 1 --methods evidential # one method; the rest kept

Writes ``benchmarks/results/uncertainty.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moleculenet import DATA, DATASETS, MODELS, make_config

from atomgraph.data import load_split
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.evaluation.latent_distance import latent_distance_sigma
from atomgraph.evaluation.metrics import regression_metrics
from atomgraph.evaluation.uncertainty_report import report_uncertainty, score_uncertainty
from atomgraph.outputs.uncertainty import dropout_modules
from atomgraph.runs import TrainedRun
from atomgraph.training.config import load_config, wall_clock_budget
from atomgraph.training.datasets import load_dataset

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "uncertainty.json"
MP_DATA = ROOT.parent / "shared" / "data" / "mp_crystals"
SCORES = ("mae", "nll", "miscalibration_area", "spearman_abs_error_sigma", "coverage_95")


def esol_config(args) -> tuple[dict, str]:
    spec = DATASETS["esol"]
    ns = argparse.Namespace(
        runs_dir=args.runs_dir,
        cache=None,
        epochs=args.epochs,
        budget_min=args.budget_min["esol"],
        no_progress=True,
    )
    config = make_config("esol", spec, DATA / spec.file, "gcn", 0, ns)
    return config, spec.target


def qm9_config(args) -> tuple[dict, str]:
    n = args.qm9_subset
    sizes = [n - 3 * n // 13, n // 13, 2 * n // 13]  # 10,000 / 1,000 / 2,000 of 13,000
    settings = {
        "name": "qm9_homo_gcn",
        "data": {
            "dataset": "qm9",
            "subset": n,
            "targets": ["homo"],
            "graph": {"kind": "bond"},
            "split": {"kind": "random", "sizes": sizes, "seed": 0},
        },
        "model": MODELS["gcn"],
        "task": {"loss": "l1"},
        "training": _training(args, "qm9_homo", batch_size=32),
    }
    return load_config(settings=settings), "homo"


def mp_config(args) -> tuple[dict, str]:
    settings = {
        "name": "mp_formation_cgcnn",
        "data": {
            "dataset": "crystals",
            "path": str(MP_DATA),
            "subset": args.mp_subset,
            "targets": ["formation_energy_per_atom"],
            "split": {"kind": "random", "sizes": [0.8, 0.1, 0.1], "seed": 0},
            "crystals": {"descriptor_baseline": False, "shortcut": False},
        },
        "model": {"name": "cgcnn", "hidden": 64, "layers": 3, "fc_hidden": 128},
        "task": {"loss": "l1"},
        "training": _training(args, "mp_formation", batch_size=64),
    }
    return load_config(settings=settings), "formation_energy_per_atom"


def _training(args, dataset: str, batch_size: int) -> dict:
    return {
        "epochs": args.epochs,
        "max_time": wall_clock_budget(args.budget_min[dataset]),
        "batch_size": batch_size,
        "eval_batch_size": 256,
        "optimizer": "adamw",
        "lr": 1e-3,
        "scheduler": "plateau",
        "plateau_patience": 5,
        "early_stopping_patience": 20,
        "progress": False,
        "accelerator": "cpu",
    }


CONFIGS = {"esol": esol_config, "qm9_homo": qm9_config, "mp_formation": mp_config}
OWN_SIGMA = ("mean_variance", "evidential")  # one model each, with task.uncertainty set
METHOD_GROUPS = ("ensemble", *OWN_SIGMA)


def scores(entry: dict, key: str = "uncertainty_recalibrated") -> dict:
    """The README's scores of one target's report entry (sigma scores after recalibration)."""
    out = {"mae": entry["model"]["mae"]}
    if key in entry:
        out.update({k: entry[key][k] for k in SCORES[1:]})
        out["raw"] = {k: entry["uncertainty"][k] for k in SCORES[1:]}
        out["scale"] = entry[key]["scale"]
        out["conformal_95_coverage"] = entry["conformal_95"]["coverage"]
    return out


def run_dataset(name: str, args, previous: dict) -> dict:
    """The methods of ``args.methods`` on one dataset; the entries of the others kept from ``previous``
    (this dataset's results of an earlier run)."""
    config, target = CONFIGS[name](args)
    base = args.runs_dir / name
    out, seconds = dict(previous), dict(previous.get("seconds", {}))
    if "ensemble" in args.methods:
        entries, timings = ensemble_methods(config, target, base, args)
        out.update(entries)
        seconds.update(timings)
    for method in OWN_SIGMA:
        if method in args.methods:
            out[method], seconds[method] = own_sigma(config, target, base, method)
            out[method]["settings"] = {"budget_min": args.budget_min[name], "epochs_cap": args.epochs}
            if "target" not in out:  # a dataset the file did not hold: what the ensemble would record
                metrics = json.loads((base / method / "metrics.json").read_text())
                out.update({"target": target, "unit": metrics["test"][target]["unit"],
                            **{k: metrics[k] for k in ("n_train", "n_val", "n_test")}})  # fmt: skip
    out["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    print(name, json.dumps(out, indent=1), flush=True)
    return out


def own_sigma(config: dict, target: str, base: Path, method: str) -> tuple[dict, float]:
    """One model (seed 0) with a sigma of its own (``task.uncertainty`` = ``method``), scored, and its
    training and evaluation seconds."""
    own = json.loads(json.dumps(config))
    own.update(run_dir=str(base / method), name=f"{config['name']}_{method}", seed=0)
    own["ensemble"]["members"] = 1
    own["task"].update(uncertainty=method, loss=None)
    start = time.perf_counter()
    train_and_evaluate(own, progress=False, overwrite=True)
    seconds = time.perf_counter() - start
    metrics = json.loads((base / method / "metrics.json").read_text())
    entry = {
        **scores(metrics["test"][target]),
        "epochs": metrics["epochs"],
        "measured": time.strftime("%Y-%m-%d"),
    }
    return entry, seconds


def ensemble_methods(config: dict, target: str, base: Path, args) -> tuple[dict, dict]:
    """single, ensemble, MC dropout and latent distance, all from one deep ensemble: their entries and
    seconds."""
    config = json.loads(json.dumps(config))
    config.update(run_dir=str(base / "ensemble"), seed=0)
    config["ensemble"]["members"] = args.members
    start = time.perf_counter()
    train_and_evaluate(config, progress=False, overwrite=True)
    seconds = {"ensemble": time.perf_counter() - start}
    ensemble = json.loads((base / "ensemble" / "metrics.json").read_text())
    member0 = json.loads((base / "ensemble" / "members" / "0" / "metrics.json").read_text())
    members = ensemble["members"][target]
    out = {
        "target": target,
        "unit": ensemble["test"][target]["unit"],
        "n_train": ensemble["n_train"],
        "n_val": ensemble["n_val"],
        "n_test": ensemble["n_test"],
        "model": config["model"],
        "parameters_per_member": member0["parameters"],
        "epochs_per_member": [
            json.loads((base / "ensemble" / "members" / str(k) / "metrics.json").read_text())["epochs"]
            for k in range(args.members)
        ],
        "single": {
            "mae": member0["test"][target]["model"]["mae"],
            "member_mae_mean": sum(members) / len(members),
            "member_mae": members,
        },
        "ensemble": scores(ensemble["test"][target]),
    }
    # MC dropout on member 0
    run = TrainedRun.load(base / "ensemble" / "members" / "0")
    dataset = load_dataset(run.config, run.graph, progress=False)
    split = load_split(base / "ensemble" / "members" / "0" / "split.json", len(dataset))
    val, test = (dataset[torch.as_tensor(split[k])] for k in ("val", "test"))
    if dropout_modules(run.module.model):
        torch.manual_seed(0)
        start = time.perf_counter()
        entries, _, mean = report_uncertainty(
            run.module,
            val,
            test,
            base / "mc_dropout",
            256,
            args.mc_samples,
            f"{config['model']['name']} MC dropout",
        )
        entry = {"model": regression_metrics(test.targets_array()[:, 0], mean[:, 0]), **entries[target]}
        out["mc_dropout"] = {**scores(entry), "samples": args.mc_samples}
        seconds["mc_dropout_inference"] = time.perf_counter() - start
    else:
        out["mc_dropout"] = {"not_applicable": f"{config['model']['name']} has no dropout layers"}
    # latent distance of member 0 to its training graphs
    start = time.perf_counter()
    train = dataset[torch.as_tensor(split["train"])]
    (mu_val, d_val), (mu_test, d_test) = latent_distance_sigma(run.module, train, [val, test], args.latent_k)
    entries, _, _ = score_uncertainty(
        run.module.info, val.targets_array(), mu_val, d_val, test.targets_array(), mu_test, d_test,
        base / "latent_distance", f"{config['model']['name']} latent distance",
    )  # fmt: skip
    entry = {"model": regression_metrics(test.targets_array()[:, 0], mu_test[:, 0]), **entries[target]}
    out["latent_distance"] = {**scores(entry), "k": args.latent_k}
    seconds["latent_distance"] = time.perf_counter() - start
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(METHOD_GROUPS),
        choices=list(METHOD_GROUPS),
        help="ensemble: single, ensemble, MC dropout and latent distance (one deep ensemble); the others "
        "one model each; the entries of methods not run are kept from --out",
    )
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument(
        "--budget-min",
        type=float,
        nargs=3,
        default=[1.0, 2.5, 2.5],
        help="wall clock per training run (esol, qm9_homo, mp_formation), min",
    )
    parser.add_argument("--mc-samples", type=int, default=20)
    parser.add_argument("--latent-k", type=int, default=5, help="neighbours of the latent distance")
    parser.add_argument("--qm9-subset", type=int, default=13000)
    parser.add_argument("--mp-subset", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "bench_uncertainty")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and budgets, written to /tmp")
    args = parser.parse_args()
    if args.smoke:
        args.members, args.epochs, args.mc_samples, args.qm9_subset, args.mp_subset = 2, 2, 3, 650, 300
        args.budget_min = [0.2, 0.2, 0.2]
        args.out = Path("/tmp/atomgraph_uncertainty_smoke.json") if args.out == RESULTS else args.out
        args.runs_dir = Path("/tmp/atomgraph_uncertainty_smoke_runs")
    args.budget_min = dict(zip(CONFIGS, args.budget_min, strict=True))
    args.runs_dir = args.runs_dir.resolve()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {
        "benchmark": "uncertainty: single model vs deep ensemble vs mean-variance vs evidential vs MC "
        "dropout vs latent distance",
        "settings": {
            "members": args.members,
            "epochs_cap": args.epochs,
            "budget_min_per_run": args.budget_min,
            "mc_samples": args.mc_samples,
            "latent_k": args.latent_k,
            "qm9_subset": args.qm9_subset,
            "mp_subset": args.mp_subset,
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "cpu": platform.machine(),
            "recalibration": "variance scaling fitted on the validation split; conformal 95 % intervals "
            "from the validation split",
            "smoke": args.smoke,
        },
        "results": {},
    }
    if args.out.exists() and not args.smoke:  # keep the datasets not re-run
        report["results"] = json.loads(args.out.read_text()).get("results", {})
    for name in args.datasets:
        report["results"][name] = run_dataset(name, args, report["results"].get(name, {}))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
