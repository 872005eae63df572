"""Gilmer et al.'s MPNN family on QM9 (seed 003): a variant grid under one CPU budget, and towers' speed.

Every variant trains on the same seeded random sample of QM9 (``--subset``, split 80/10/10), one
target (``--targets``, default HOMO), through the training system (``atomgraph.evaluation.experiment``)
with the same optimiser and at most ``--budget-min`` minutes of wall clock each (``training.max_time``;
the best validation checkpoint is evaluated), one thread per run, ``--workers`` runs at a time. The
report of each run gives the test MAE and Gilmer's headline metric, MAE / chemical accuracy
(``chemical_accuracy_ratio``, from the target's TargetSpec; below 1 = within chemical accuracy).

The variants (:data:`VARIANTS`): the message-function x readout grid -- {matrix (GG-NN, one matrix
per bond type), edge_network (enn), pair} x {set2set, ggnn} on the chemical graph with explicit
hydrogens, the vector-valued messages reading the distance as Gaussians -- then, on enn-s2s: directed
in/out messages, 8 towers, a latent master node, zero-padded input states, and Gilmer's virtual
graph (virtual edges between all non-bonded pairs, donor/acceptor atom features) with the
distance-binned matrix message (5 bond classes + 10 distance bins as edge types) and with the edge
network on one-hot bins.

Towers (``--towers-timing``): inference (forward, no gradient) of the edge-network and matrix MPNNs with
d = 200 and k = 1 vs k = 8 towers (the paper's example: n = 9 heavy atoms, a 2x speed-up), on QM9
molecules as heavy-atom chemical graphs and as complete graphs (virtual edges), one thread,
interleaved repetitions, medians and IQR.

    python benchmarks/qm9_mpnn.py                                  # 12 variants, 8 min each, 2 workers
    python benchmarks/qm9_mpnn.py --variants enn-s2s towers-8 --budget-min 2 --out /tmp/m.json
    python benchmarks/qm9_mpnn.py --variants --towers-timing       # the timing only

Writes ``benchmarks/results/qm9_mpnn.json``: ``variants`` (per variant: settings, parameters, epochs,
per target ``mae``, ``unit``, ``chemical_accuracy_ratio``, baselines) and ``towers`` (timings, speed-ups).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from results_json import finite_json, relative

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results" / "qm9_mpnn.json"
CHEMICAL = {"kind": "bond", "explicit_hydrogens": True, "cutoff": 6.0}
VIRTUAL = "gilmer_virtual"
BASE = {"name": "mpnn", "hidden": 64, "steps": 3, "set2set_steps": 3, "edge_hidden": 64}
RBF = {"distance": "rbf", "num_rbf": 16}
VARIANTS: dict[str, tuple[object, dict]] = {
    "matrix-s2s": (CHEMICAL, {"message": "matrix"}),
    "matrix-ggnn": (CHEMICAL, {"message": "matrix", "pool": "ggnn"}),
    "enn-s2s": (CHEMICAL, {"message": "edge_network", **RBF}),
    "enn-ggnn": (CHEMICAL, {"message": "edge_network", **RBF, "pool": "ggnn"}),
    "pair-s2s": (CHEMICAL, {"message": "pair", **RBF}),
    "pair-ggnn": (CHEMICAL, {"message": "pair", **RBF, "pool": "ggnn"}),
    "enn-s2s-directed": (CHEMICAL, {**RBF, "directed": True}),
    "enn-s2s-towers-8": (CHEMICAL, {**RBF, "towers": 8}),
    "enn-s2s-master": (CHEMICAL, {**RBF, "master_dim": 64}),
    "enn-s2s-padded": (CHEMICAL, {**RBF, "input_states": "pad"}),
    "matrix-bins-s2s-virtual": (VIRTUAL, {"message": "matrix", "distance": "bins"}),
    "enn-bins-s2s-virtual": (VIRTUAL, {"distance": "bins"}),
}


def settings(name: str, args, graph: object = None, subset: int | None = None) -> dict:
    """The config of one variant (``graph`` and ``subset`` replace the variant's, for the timing)."""
    from atomgraph.training.config import wall_clock_budget

    variant_graph, model = VARIANTS[name]
    return {
        "name": f"qm9_mpnn_{name}",
        "seed": args.seed,
        "run_dir": str(args.runs_dir / name),
        "data": {
            "dataset": "qm9",
            "source": "qm9pack",
            "subset": subset or args.subset,
            "targets": args.targets,
            "cache": args.cache,
            "graph": graph or variant_graph,
            "split": {"kind": "random", "sizes": [0.8, 0.1, 0.1], "seed": args.seed},
        },
        "model": {**BASE, **model},
        "task": {"loss": "l1"},
        "training": {
            "epochs": args.epochs,
            "max_time": wall_clock_budget(args.budget_min),
            "batch_size": 32,
            "eval_batch_size": 128,
            "optimizer": "adamw",
            "lr": 1e-3,
            "scheduler": "plateau",
            "plateau_patience": 3,
            "early_stopping_patience": 15,
            "progress": False,
        },
    }


def train_one(name: str, args) -> None:
    """Child process: train and evaluate one variant on one thread."""
    from atomgraph.evaluation.experiment import train_and_evaluate
    from atomgraph.training.config import load_config

    torch.set_num_threads(1)
    train_and_evaluate(load_config(settings=settings(name, args)), progress=False, overwrite=True)


def collect(name: str, args, seconds: float) -> dict:
    run_dir = args.runs_dir / name
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.exists():
        return {"error": f"no metrics.json in {relative(run_dir)} (see {relative(run_dir / 'train.log')})"}
    metrics = json.loads(metrics_file.read_text())
    graph, model = VARIANTS[name]
    targets = {}
    for target, entry in metrics["test"].items():
        targets[target] = {
            "unit": entry["unit"],
            "mae": entry["model"]["mae"],
            "rmse": entry["model"]["rmse"],
            "r2": entry["model"]["r2"],
            "chemical_accuracy_ratio": entry.get("chemical_accuracy_ratio"),
            "baselines_mae": {
                k: entry[k]["mae"] for k in ("mean_baseline", "composition_baseline") if k in entry
            },
        }
    return {
        "graph": graph,
        "model_settings": {**BASE, **model},
        "parameters": metrics["parameters"],
        "epochs": metrics.get("epochs"),
        "n_train": metrics["n_train"],
        "n_test": metrics["n_test"],
        "wall_seconds": seconds,
        "targets": targets,
        "run_dir": relative(run_dir),
    }


def run_variants(args) -> dict:
    """Build the graph caches once, then train ``--workers`` variants at a time in child processes."""
    from atomgraph.graphs.spec import GraphSpec, resolve_graph_spec
    from atomgraph.training.config import load_config
    from atomgraph.training.datasets import load_dataset

    first_of_graph = {json.dumps(VARIANTS[name][0], sort_keys=True): name for name in reversed(args.variants)}
    for name in first_of_graph.values():
        config = load_config(settings=settings(name, args))
        load_dataset(config, resolve_graph_spec(config["data"]["graph"], GraphSpec()), progress=True)

    def launch(name: str) -> tuple[str, float]:
        log = args.runs_dir / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, __file__, "--train-one", name, *args.forwarded]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        start = time.perf_counter()
        with log.open("w") as handle:
            subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False)
        seconds = time.perf_counter() - start
        print(f"  {name}: done in {seconds / 60:.1f} min", flush=True)
        return name, seconds

    print(f"training {len(args.variants)} variants, {args.workers} at a time, {args.budget_min:g} min each")
    with ThreadPoolExecutor(args.workers) as pool:
        done = dict(pool.map(launch, args.variants))
    return {name: collect(name, args, done[name]) for name in args.variants}


# ------------------------------------------------------------------------------------------ towers
def towers_timing(args) -> dict:
    """Forward time of k = 1 vs k = 8 towers at d = 200 on batches of QM9 molecules with 9 heavy atoms
    (chemical graphs of the heavy atoms, and complete graphs)."""
    from torch_geometric.data import Batch

    from atomgraph.graphs.spec import GraphSpec
    from atomgraph.models import build_model
    from atomgraph.training.config import load_config
    from atomgraph.training.datasets import load_dataset

    torch.set_num_threads(1)
    graphs = {
        "heavy_atoms": GraphSpec("bond", 6.0, explicit_hydrogens=False),
        "heavy_atoms_complete": GraphSpec("bond", 100.0, explicit_hydrogens=False, virtual_edges=True),
    }
    out: dict = {"hidden": 200, "batch": args.timing_batch, "repetitions": args.timing_reps, "cases": {}}
    for graph_name, spec in graphs.items():
        config = load_config(settings=settings("enn-s2s", args, spec.to_dict(), subset=2000))
        dataset = load_dataset(config, spec, progress=False)
        nine = [g for g in (dataset[i] for i in range(len(dataset))) if int(g.natoms) == 9]  # the paper's n
        batch = Batch.from_data_list(nine[: args.timing_batch])
        atoms = batch.num_nodes / batch.num_graphs
        edges = batch.edge_index.shape[1] / batch.num_graphs
        for message in ("edge_network", "matrix"):
            models = {}
            for k in (1, 8):
                torch.manual_seed(0)
                models[k] = build_model(
                    "mpnn", graph=spec, atom_dim=batch.x.shape[1], edge_dim=batch.edge_attr.shape[1],
                    reductions=("mean",), hidden=200, steps=3, edge_hidden=128, message=message, towers=k,
                ).eval()  # fmt: skip
            times: dict[int, list[float]] = {1: [], 8: []}
            with torch.no_grad():
                for k in (1, 8):
                    models[k](batch)  # warm-up
                for _ in range(args.timing_reps):
                    for k in (1, 8):
                        start = time.perf_counter()
                        models[k](batch)
                        times[k].append(time.perf_counter() - start)
            case = {"atoms_per_molecule": atoms, "edges_per_molecule": edges}
            for k in (1, 8):
                q = statistics.quantiles(times[k], n=4)
                case[f"k{k}"] = {
                    "median_ms": 1000 * statistics.median(times[k]),
                    "iqr_ms": [1000 * q[0], 1000 * q[2]],
                    "parameters": sum(p.numel() for p in models[k].parameters()),
                }
            case["speedup_k8_over_k1"] = case["k1"]["median_ms"] / case["k8"]["median_ms"]
            out["cases"][f"{message}/{graph_name}"] = case
            print(
                f"  towers {message:>12} on {graph_name:<21} ({atoms:.1f} atoms, {edges:.0f} edges each): "
                f"k=1 {case['k1']['median_ms']:.1f} ms, k=8 {case['k8']['median_ms']:.1f} ms -> "
                f"{case['speedup_k8_over_k1']:.2f}x",
                flush=True,
            )
    return out


def markdown(variants: dict, targets: list[str]) -> str:
    header = " | ".join(f"{t} MAE | {t} MAE / chem. acc." for t in targets)
    lines = [f"| Variant | Parameters | Epochs | {header} |", "|---|---:|---:|" + "---:|---:|" * len(targets)]
    for name, entry in variants.items():
        if "error" in entry:
            lines.append(f"| {name} | {entry['error']} |")
            continue
        cells = []
        for target in targets:
            t = entry["targets"][target]
            ratio = t["chemical_accuracy_ratio"]
            cells += [f"{t['mae']:.4g} {t['unit']}", "-" if ratio is None else f"{ratio:.2f}"]
        lines.append(f"| {name} | {entry['parameters']:,} | {entry['epochs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--targets", nargs="+", default=["homo"])
    parser.add_argument("--subset", type=int, default=20000)
    parser.add_argument("--budget-min", type=float, default=8.0)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=None, help="graph cache folder (default: the training default)")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "qm9_mpnn")
    parser.add_argument("--towers-timing", action="store_true")
    parser.add_argument("--timing-batch", type=int, default=64)
    parser.add_argument("--timing-reps", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--train-one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.forwarded = [
        "--targets", *args.targets, "--subset", str(args.subset), "--budget-min", str(args.budget_min),
        "--epochs", str(args.epochs), "--seed", str(args.seed), "--runs-dir", str(args.runs_dir),
        *(["--cache", args.cache] if args.cache else []),
    ]  # fmt: skip
    if args.train_one:
        train_one(args.train_one, args)
        return
    started = time.perf_counter()
    results: dict = {
        "benchmark": "Gilmer et al.'s MPNN family on QM9 (seed 003)",
        "command": "python benchmarks/qm9_mpnn.py " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "threads_per_run": 1,
        "workers": args.workers,
        "subset": args.subset,
        "split": [0.8, 0.1, 0.1],
        "targets": args.targets,
        "budget_min_per_variant": args.budget_min,
    }
    if args.variants:
        results["variants"] = run_variants(args)
        print(markdown(results["variants"], args.targets))
    if args.towers_timing:
        results["towers"] = towers_timing(args)
    results["total_minutes"] = (time.perf_counter() - started) / 60
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(finite_json(results), indent=2) + "\n")
    print(f"wrote {relative(args.out)}")


if __name__ == "__main__":
    main()
