"""atomgraph's SchNet against PyTorch Geometric's SchNet on the same QM9 data, split, budget and loop.

Both models get the same graphs (atomgraph's vesin radius graph, 5 Å; PyG's own radius_graph needs
torch_cluster, which has no wheel here), the same target normalisation (fitted on the training split),
the same hyperparameters, the same plain PyTorch training loop (Adam, plateau schedule, L1 loss) and
the same wall-clock budget per target; each framework's own batching (atomgraph: the loader
``atomgraph train`` uses, batches gathered from the collated storage; PyG: its ``DataLoader``). Each
(framework, target) runs in its own process so the peak memory is its own. Writes
``benchmarks/results/qm9_schnet_vs_pyg.json``.

    python benchmarks/qm9_schnet_vs_pyg.py --budget-s 300
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch_geometric.loader import DataLoader

from atomgraph.allocator import OPT_OUT
from atomgraph.data import TargetNormalizer, random_split
from atomgraph.data.qm9 import load_qm9
from atomgraph.data.row_batches import row_loader
from atomgraph.graphs.geometry import edge_lengths, edge_vectors
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models import build_model
from atomgraph.training.compile import compile_forward

RESULTS = Path(__file__).resolve().parent / "results" / "qm9_schnet_vs_pyg.json"
TARGETS = {"homo": "mae_homo_ev", "U0": "mae_u0_ev"}
COMPILED = {"none": (), "atomgraph": ("atomgraph",), "both": ("atomgraph", "pyg")}


class GivenGraph:
    """PyG SchNet's ``interaction_graph`` hook: hands it the batch's precomputed edges and lengths."""

    edge_index: torch.Tensor
    lengths: torch.Tensor

    def __call__(self, pos, batch):
        return self.edge_index, self.lengths


class PyGSchNet(nn.Module):
    """torch_geometric.nn.models.SchNet fed with our graph; same widths, RBF count and cutoff."""

    def __init__(
        self, extensive: bool, hidden: int, filters: int, interactions: int, num_rbf: int, cutoff: float
    ):
        super().__init__()
        from torch_geometric.nn.models import SchNet

        self.graph = GivenGraph()
        self.net = SchNet(
            hidden_channels=hidden,
            num_filters=filters,
            num_interactions=interactions,
            num_gaussians=num_rbf,
            cutoff=cutoff,
            interaction_graph=self.graph,
            readout="add" if extensive else "mean",
        )

    def forward(self, batch):
        self.graph.edge_index = batch.edge_index
        self.graph.lengths = edge_lengths(edge_vectors(batch))
        return self.net(batch.z, batch.pos, batch.batch)


def make_model(framework: str, reduction: str, args) -> nn.Module:
    kwargs = dict(
        hidden=args.hidden, filters=args.hidden, interactions=args.interactions, num_rbf=args.num_rbf
    )
    if framework == "atomgraph":  # the cutoff is the graph spec's
        return build_model("schnet", graph=GraphSpec(cutoff=args.cutoff), reductions=[reduction], **kwargs)
    return PyGSchNet(reduction == "sum", cutoff=args.cutoff, **kwargs)


def data(args):
    dataset = load_qm9(
        GraphSpec(kind="radius", cutoff=args.cutoff),
        subset=args.train + args.val + args.test,
        seed=0,
        cache=args.cache,
        progress=False,
    )
    split = random_split(len(dataset), [args.train, args.val, args.test], seed=0)
    return dataset, split


def warm_up(model, normalizer, train_loader, val_loader, column) -> float:
    """One training forward/backward (gradients discarded, no step) and one validation forward,
    outside the timed budget: a compiled model compiles here. Returns the seconds taken."""
    start = time.perf_counter()
    batch = next(iter(train_loader))  # draws one shuffle from the loader's generator, for both frameworks
    y = normalizer.normalize(batch.y[:, [column]], batch)
    (model(batch) - y).abs().mean().backward()
    model.zero_grad(set_to_none=True)
    mae(model, normalizer, [next(iter(val_loader))], column)
    return time.perf_counter() - start


@torch.no_grad()
def mae(model, normalizer, loader, column) -> float:
    model.eval()
    errors = []
    for batch in loader:
        pred = normalizer.denormalize(model(batch), batch)[:, 0]
        errors.append((pred - batch.y[:, column]).abs())
    model.train()
    return float(torch.cat(errors).mean())


def worker(framework: str, target: str, args) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dataset, split = data(args)
    names = dataset.targets.names
    column = names.index(target)
    reduction = dataset.targets.reductions[column]
    train = dataset[torch.as_tensor(split["train"])]
    normalizer = TargetNormalizer([reduction == "sum"]).fit(
        train.targets_array()[:, [column]], train.atomic_numbers()
    )
    model = make_model(framework, reduction, args)
    if framework in COMPILED[args.compile]:  # the wrapper `training.compile: true` uses, for both
        compile_forward(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, fused=True)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=3)
    generator = torch.Generator().manual_seed(0)
    if framework == "atomgraph":  # the loader `atomgraph train` uses: batches gathered from the storage
        train_loader = row_loader(train, args.batch_size, shuffle=True, generator=generator)
    else:
        train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, generator=generator)
    val_loader = DataLoader(dataset[torch.as_tensor(split["val"])], batch_size=256)
    test_loader = DataLoader(dataset[torch.as_tensor(split["test"])], batch_size=256)

    compile_s = warm_up(model, normalizer, train_loader, val_loader, column)
    trained, train_time, model_time, epochs, best = 0, 0.0, 0.0, 0, (float("inf"), None)
    start = time.perf_counter()
    while time.perf_counter() - start < args.budget_s:
        epoch_start = time.perf_counter()
        for batch in train_loader:
            step_start = time.perf_counter()  # what follows is the model's work; batching is shared
            y = normalizer.normalize(batch.y[:, [column]], batch)
            loss = (model(batch) - y).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            model_time += time.perf_counter() - step_start
            trained += batch.num_graphs
            if time.perf_counter() - start > args.budget_s:
                break
        train_time += time.perf_counter() - epoch_start
        epochs += 1
        val = mae(model, normalizer, val_loader, column)
        plateau.step(val)
        if val < best[0]:
            best = (val, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    return {
        "framework": framework,
        "target": target,
        "epochs": epochs,
        "molecules_trained": trained,
        "molecules_per_s": trained / train_time,
        "model_molecules_per_s": trained / model_time,
        "batching_share": 1 - model_time / train_time,
        "compile_s": compile_s,
        "best_val_mae_ev": best[0],
        "test_mae_ev": mae(model, normalizer, test_loader, column),
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def without_output(argv: list[str]) -> list[str]:
    """The command line less ``--output PATH`` / ``--output=PATH`` (the workers print, the parent writes)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--output":
            skip = True
        elif not arg.startswith("--output="):
            kept.append(arg)
    return kept


#: each run's label -> (the framework its worker trains, whether it keeps atomgraph's malloc settings)
RUNS = {"atomgraph": ("atomgraph", True), "pyg": ("pyg", False), "pyg_atomgraph_malloc": ("pyg", True)}


def worker_environment(label: str) -> dict[str, str]:
    """The environment of run ``label``'s worker. Its ``import atomgraph`` (for the shared graphs and
    loaders) raises glibc's malloc thresholds (:mod:`atomgraph.allocator`); PyG's users run with glibc's
    defaults, so the ``pyg`` run opts out, and ``pyg_atomgraph_malloc`` shows PyG with atomgraph's."""
    env = {k: v for k, v in os.environ.items() if k != OPT_OUT[0]}
    if not RUNS[label][1]:
        env[OPT_OUT[0]] = OPT_OUT[1]
    return env


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--budget-s", type=float, default=300.0, help="training seconds per framework and target"
    )
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--interactions", type=int, default=3)
    parser.add_argument("--num-rbf", type=int, default=25)
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument(
        "--compile",
        choices=list(COMPILED),
        default="none",
        help="whose forward runs through torch.compile (atomgraph's training.compile wrapper)",
    )
    parser.add_argument(
        "--peer-malloc",
        action="store_true",
        help="also train PyG with atomgraph's malloc settings (PyG's own run keeps glibc's, as its users do)",
    )
    parser.add_argument("--cache", default=None, help="processed-data cache (default ~/.cache/atomgraph)")
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "TARGET"), help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args)))
        return
    try:
        data(args)  # processes (and caches) the graphs once, before any timing
    except ImportError as error:
        print(f"skipping: {error}")
        return
    passthrough = without_output(sys.argv[1:])
    labels = [label for label in RUNS if args.peer_malloc or label != "pyg_atomgraph_malloc"]
    runs = {}
    for target in args.targets:
        for label in labels:
            print(f"training {label} SchNet on {target} for {args.budget_s:.0f} s ...", flush=True)
            out = subprocess.run(
                [sys.executable, __file__, *passthrough, "--worker", RUNS[label][0], target],
                env=worker_environment(label),
                check=True,
                capture_output=True,
                text=True,
            )
            runs[(label, target)] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  {runs[(label, target)]}", flush=True)
    result: dict = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "output")},
        "malloc": "atomgraph and pyg_atomgraph_malloc: glibc's mmap and trim thresholds raised by import "
        f"atomgraph (atomgraph.allocator); pyg: glibc's defaults ({OPT_OUT[0]}={OPT_OUT[1]})",
        "command": "python benchmarks/qm9_schnet_vs_pyg.py " + " ".join(passthrough),
    }
    for framework in labels:
        rows = [runs[(framework, t)] for t in args.targets]
        entry = {
            "molecules_per_s": float(np.mean([r["molecules_per_s"] for r in rows])),
            "model_molecules_per_s": float(np.mean([r["model_molecules_per_s"] for r in rows])),
            "peak_memory_mb": float(max(r["peak_memory_mb"] for r in rows)),
            "parameters": rows[0]["parameters"],
            "runs": rows,
        }
        for t in args.targets:
            entry[TARGETS.get(t, f"mae_{t}_ev")] = runs[(framework, t)]["test_mae_ev"]
        result[framework] = entry
    result["throughput_ratio"] = result["atomgraph"]["molecules_per_s"] / result["pyg"]["molecules_per_s"]
    # the same ratio without the shared batching (PyG's collate of our graphs), i.e. model work only
    result["model_throughput_ratio"] = (
        result["atomgraph"]["model_molecules_per_s"] / result["pyg"]["model_molecules_per_s"]
    )
    if "pyg_atomgraph_malloc" in result:
        result["throughput_ratio_same_malloc"] = (
            result["atomgraph"]["molecules_per_s"] / result["pyg_atomgraph_malloc"]["molecules_per_s"]
        )
    result["machine"] = {
        "cpus": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "processor": platform.processor(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(
        f"throughput ratio atomgraph/PyG = {result['throughput_ratio']:.2f} "
        f"(model work only: {result['model_throughput_ratio']:.2f})"
    )
    for t in args.targets:
        key = TARGETS.get(t, f"mae_{t}_ev")
        print(f"{t}: test MAE atomgraph {result['atomgraph'][key]:.4f} eV, PyG {result['pyg'][key]:.4f} eV")


if __name__ == "__main__":
    main()
