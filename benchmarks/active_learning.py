"""Active learning of a potential: committee disagreement vs random selection, on rMD17 ethanol.

Pool: the 1,000 training frames of rMD17 split 01 less 50 fixed validation frames; test: the first
``--n-test`` test frames. Each strategy starts from the same ``--start`` random frames and, for
``--rounds`` rounds, (1) trains a committee of ``--members`` PaiNN models (seeds s, s + 1, ...; one
ensemble run through ``atomgraph.evaluation.experiment.train_and_evaluate``) on the labelled frames,
(2) scores it on the test frames (force MAE of the committee mean, meV/Å, and energy MAE, meV), and (3)
labels ``--add`` more frames -- the ones with the largest committee force spread
(:func:`atomgraph.evaluation.active_learning.force_disagreement`) or random ones -- reading their
stored DFT labels, which stand in for new DFT calculations. Three seeds (start set, initialisation,
random picks); the strategies alternate round by round so that both see the same machine load.

    python benchmarks/active_learning.py --threads 1
    python benchmarks/active_learning.py --smoke

Writes ``benchmarks/results/active_learning.json`` and ``benchmarks/results/active_learning.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from atomgraph.evaluation.active_learning import force_disagreement, select_frames
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.runs import TrainedRun
from atomgraph.training.config import load_config, wall_clock_budget
from atomgraph.training.datasets import load_dataset

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "rmd17"
RESULTS = ROOT / "benchmarks" / "results" / "active_learning.json"
MODEL = {"name": "painn", "hidden": 64, "interactions": 3, "num_rbf": 20}
STRATEGIES = ("committee", "random")


def config_for(args, run_dir: Path, split_file: Path, seed: int) -> dict:
    settings = {
        "name": run_dir.name,
        "seed": seed,
        "run_dir": str(run_dir),
        "data": {"dataset": "rmd17", "path": str(DATA), "molecule": args.molecule, "targets": ["energy"],
                 "graph": {"cutoff": 5.0}, "split": {"file": str(split_file)}},
        "model": MODEL,
        "task": {"kind": "potential", "energy_weight": 1.0, "force_weight": 100.0},
        "ensemble": {"members": args.members},
        "training": {"epochs": args.epochs, "max_time": wall_clock_budget(args.budget_min), "batch_size": 5,
                     "eval_batch_size": 100, "lr": 1e-3, "scheduler": "plateau", "plateau_patience": 10,
                     "plateau_factor": 0.8, "early_stopping_patience": 50, "progress": False,
                     "accelerator": "cpu"},
    }  # fmt: skip
    return load_config(settings=settings)


def run_round(args, strategy: str, seed: int, labelled: list[int], val: list[int], test: list[int], k: int):
    """Train the committee on ``labelled``; return its test scores and the committee itself."""
    run_dir = args.runs_dir / f"seed{seed}" / strategy / f"round{k}"
    run_dir.mkdir(parents=True, exist_ok=True)
    split_file = run_dir.parent / f"split_round{k}.json"
    split_file.write_text(json.dumps({"train": sorted(labelled), "val": val, "test": test}))
    start = time.perf_counter()
    train_and_evaluate(config_for(args, run_dir, split_file, seed), progress=False, overwrite=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())["test"]
    scores = {
        "labelled": len(labelled),
        "force_mae_mev_per_a": metrics["forces"]["model"]["mae"],
        "energy_mae_mev": metrics["energy"]["model"]["mae"],
        "seconds": round(time.perf_counter() - start, 1),
    }
    return scores, TrainedRun.load(run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--molecule", default="ethanol")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--start", type=int, default=20)
    parser.add_argument("--add", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5, help="labelling rounds (scores: rounds + 1 points)")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--budget-min", type=float, default=0.75, help="wall clock per committee member, min")
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "bench_active_learning")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.start, args.add, args.rounds, args.members = [0], 5, 5, 1, 2
        args.epochs, args.budget_min, args.n_test = 2, 0.1, 20
        args.runs_dir = Path("/tmp/atomgraph_al_smoke")
        args.out = Path("/tmp/atomgraph_al_smoke.json") if args.out == RESULTS else args.out
    args.runs_dir = args.runs_dir.resolve()
    if args.threads:
        torch.set_num_threads(args.threads)
    val = sorted(np.random.default_rng(1234).choice(1000, 50, replace=False).tolist())
    pool_all = [i for i in range(1000) if i not in set(val)]
    test = list(range(1000, 1000 + args.n_test))
    report = {
        "benchmark": f"active learning on rMD17 {args.molecule}: committee force disagreement vs random",
        "settings": {
            "model": MODEL, "members": args.members, "start": args.start, "add_per_round": args.add,
            "rounds": args.rounds, "epochs_cap": args.epochs, "budget_min_per_member": args.budget_min,
            "validation_frames": len(val), "pool_frames": len(pool_all), "test_frames": len(test),
            "selection": "largest max-atom force spread of the committee (eV/Å)",
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "cpu": platform.machine(),
            "smoke": args.smoke,
        },
        "results": {},
    }  # fmt: skip
    graphs = None
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        start = rng.choice(pool_all, args.start, replace=False).tolist()
        labelled = {s: list(start) for s in STRATEGIES}
        curves: dict[str, list] = {s: [] for s in STRATEGIES}
        for k in range(args.rounds + 1):
            for strategy in STRATEGIES:
                scores, committee = run_round(args, strategy, seed, labelled[strategy], val, test, k)
                curves[strategy].append(scores)
                print(seed, strategy, scores, flush=True)
                if k == args.rounds:
                    continue
                pool = [i for i in pool_all if i not in set(labelled[strategy])]
                if strategy == "random":
                    picked = rng.choice(pool, args.add, replace=False).tolist()
                else:
                    if graphs is None:
                        graphs = load_dataset(committee.config, committee.graph, progress=False)
                    spread = force_disagreement(committee.module, [graphs[i] for i in pool])
                    picked = [pool[j] for j in select_frames(spread, args.add)]
                    scores["pool_spread_max"] = float(spread.max())
                    scores["pool_spread_median"] = float(np.median(spread))
                labelled[strategy] += picked
        report["results"][f"seed{seed}"] = curves
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    summarise(report, args.out.with_suffix(".png"))
    args.out.write_text(json.dumps(report, indent=2))
    print(f"-> {args.out}")


def summarise(report: dict, png: Path) -> None:
    """Mean and std over seeds per strategy and labelled-set size (into the report) and the plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = list(report["results"].values())
    summary = {}
    fig = Figure(figsize=(5.5, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for strategy in STRATEGIES:
        sizes = [point["labelled"] for point in runs[0][strategy]]
        maes = np.array([[point["force_mae_mev_per_a"] for point in run[strategy]] for run in runs])
        summary[strategy] = {"labelled": sizes, "force_mae_mean": maes.mean(0).tolist(),
                             "force_mae_std": maes.std(0).tolist()}  # fmt: skip
        ax.errorbar(sizes, maes.mean(0), yerr=maes.std(0), marker="o", capsize=3, label=strategy)
    ax.set(xlabel="labelled frames", ylabel="test force MAE [meV/Å]", xscale="log", yscale="log",
           title=f"active learning, {len(runs)} seed(s)")  # fmt: skip
    ax.legend(frameon=False)
    fig.savefig(png, dpi=150)
    report["summary"] = summary


if __name__ == "__main__":
    main()
