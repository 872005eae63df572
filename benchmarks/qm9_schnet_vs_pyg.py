"""atomgraph's SchNet against PyTorch Geometric's SchNet on the same QM9 data, split, budget and loop.

Both models get the same graphs (atomgraph's vesin radius graph, 5 Å; PyG's own radius_graph needs
torch_cluster, which has no wheel here), the same target normalisation (fitted on the training split),
the same hyperparameters, the same plain PyTorch training loop (Adam, plateau schedule, L1 loss) and
the same wall-clock budget per target; each framework's own batching (atomgraph: the loader
``atomgraph train`` uses, batches gathered from the collated storage; PyG: its ``DataLoader``). Each
(framework, target) runs in its own process so the peak memory is its own; the runs of a target take
turns of ``--slice-s`` seconds (interleaved), so the machine's drifts hit them alike. Writes
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


class Training:
    """One framework's training run on one target, advanced in slices (:meth:`train_for`) so that runs of
    several frameworks can take turns on the machine; :meth:`finish` evaluates and reports."""

    def __init__(self, framework: str, target: str, args):
        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        dataset, split = data(args)
        self.framework, self.target = framework, target
        self.column = dataset.targets.names.index(target)
        reduction = dataset.targets.reductions[self.column]
        train = dataset[torch.as_tensor(split["train"])]
        self.normalizer = TargetNormalizer([reduction == "sum"]).fit(
            train.targets_array()[:, [self.column]], train.atomic_numbers()
        )
        self.model = make_model(framework, reduction, args)
        if framework in COMPILED[args.compile]:  # the wrapper `training.compile: true` uses, for both
            compile_forward(self.model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr, fused=True)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=0.5, patience=3)
        generator = torch.Generator().manual_seed(0)
        if framework == "atomgraph":  # the loader `atomgraph train` uses: batches gathered from the storage
            self.train_loader = row_loader(train, args.batch_size, shuffle=True, generator=generator)
        else:
            self.train_loader = DataLoader(
                train, batch_size=args.batch_size, shuffle=True, generator=generator
            )
        self.val_loader = DataLoader(dataset[torch.as_tensor(split["val"])], batch_size=256)
        self.test_loader = DataLoader(dataset[torch.as_tensor(split["test"])], batch_size=256)
        self.compile_s = warm_up(self.model, self.normalizer, self.train_loader, self.val_loader, self.column)
        self.trained, self.train_time, self.model_time, self.elapsed, self.epochs = 0, 0.0, 0.0, 0.0, 0
        self.best: tuple[float, dict | None] = (float("inf"), None)
        self.batches = None  # the epoch in progress

    def train_for(self, seconds: float) -> None:
        """Train for ``seconds`` of wall time (validation at each epoch's end included, as in the budget),
        stopping after the step that crosses it; an epoch goes on in the next slice."""
        end = self.elapsed + seconds
        while self.elapsed < end:
            start = time.perf_counter()
            if self.batches is None:
                self.batches = iter(self.train_loader)
            batch = next(self.batches, None)
            if batch is None:  # the epoch is done: validate (outside the training time)
                self.train_time += time.perf_counter() - start
                self.batches = None
                self.end_epoch()
                self.elapsed += time.perf_counter() - start
                continue
            step_start = time.perf_counter()  # what follows is the model's work; batching is shared
            y = self.normalizer.normalize(batch.y[:, [self.column]], batch)
            loss = (self.model(batch) - y).abs().mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            now = time.perf_counter()
            self.model_time += now - step_start
            self.train_time += now - start
            self.elapsed += now - start
            self.trained += batch.num_graphs

    def end_epoch(self) -> None:
        self.epochs += 1
        val = mae(self.model, self.normalizer, self.val_loader, self.column)
        self.plateau.step(val)
        if val < self.best[0]:
            self.best = (val, {k: v.clone() for k, v in self.model.state_dict().items()})

    def finish(self) -> dict:
        """Validate the epoch cut by the budget (as a whole epoch), take the best weights, test them."""
        if self.batches is not None:
            self.batches = None
            self.end_epoch()
        self.model.load_state_dict(self.best[1])
        return {
            "framework": self.framework,
            "target": self.target,
            "epochs": self.epochs,
            "molecules_trained": self.trained,
            "molecules_per_s": self.trained / self.train_time,
            "model_molecules_per_s": self.trained / self.model_time,
            "batching_share": 1 - self.model_time / self.train_time,
            "compile_s": self.compile_s,
            "best_val_mae_ev": self.best[0],
            "test_mae_ev": mae(self.model, self.normalizer, self.test_loader, self.column),
            "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }


def serve(framework: str, target: str, args) -> None:
    """A worker: set up, say ``ready``, then ``train SECONDS`` -> ``ok`` until ``finish`` -> the result
    as one JSON line (the protocol on stdin/stdout; whatever else prints goes to stderr)."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    training = Training(framework, target, args)
    protocol.write("ready\n")
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "train":
            training.train_for(float(rest[0]))
            protocol.write("ok\n")
        elif command == "finish":
            protocol.write(json.dumps(training.finish()) + "\n")
            return


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


def interleaved(target: str, labels: list[str], passthrough: list[str], args) -> dict:
    """The runs of ``labels`` on ``target``, each in its own process, taking turns of ``args.slice_s``
    seconds (the order reversed every round) until each has had ``args.budget_s``: a drift of the
    machine's speed (another job, its thermal state) hits every framework alike. Returns
    {(label, target): result}."""
    workers = {
        label: subprocess.Popen(
            [sys.executable, __file__, *passthrough, "--worker", RUNS[label][0], target],
            env=worker_environment(label),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        for label in labels
    }
    try:
        for label, process in workers.items():  # data, model and warm-up (compiling), untimed
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{label}: the worker failed to start (see its stderr above)")
        given = dict.fromkeys(labels, 0.0)
        round_ = 0
        while any(given[label] < args.budget_s for label in labels):
            for label in labels if round_ % 2 == 0 else labels[::-1]:
                seconds = min(args.slice_s, args.budget_s - given[label])
                if seconds <= 0:
                    continue
                workers[label].stdin.write(f"train {seconds}\n")
                workers[label].stdin.flush()
                if workers[label].stdout.readline().strip() != "ok":
                    raise RuntimeError(f"{label}: the worker died while training (see its stderr above)")
                given[label] += seconds
            round_ += 1
        results = {}
        for label, process in workers.items():
            process.stdin.write("finish\n")
            process.stdin.flush()
            results[(label, target)] = json.loads(process.stdout.readline())
            process.wait()
        return results
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.kill()


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
    parser.add_argument(
        "--slice-s",
        type=float,
        default=20.0,
        help="seconds each framework trains before the next takes a turn",
    )
    parser.add_argument("--cache", default=None, help="processed-data cache (default ~/.cache/atomgraph)")
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "TARGET"), help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.worker:
        serve(*args.worker, args)
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
        print(f"training {', '.join(labels)} SchNet on {target}, {args.budget_s:.0f} s each, taking turns "
              f"of {args.slice_s:.0f} s ...", flush=True)  # fmt: skip
        runs.update(interleaved(target, labels, passthrough, args))
        for label in labels:
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
