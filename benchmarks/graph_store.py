"""The on-disk graph store against the in-memory dataset: build rate, size, random reads, training.

For QM9 (qm9pack, 5 Å radius graphs) and the Materials Project crystals of ``../shared/data/mp_crystals``
(CGCNN's 12 nearest within 8 Å), in a fresh cache folder:

* build: rows per second of the in-memory dataset (``data.storage: memory``, one process) and of the
  store (``data.storage: lmdb``, ``--workers`` processes), and their sizes on disk;
* random access: graphs per second read at random indices (one process);
* training: optimiser steps per second of a SchNet (64/64/3) on batches of 32 drawn by a shuffled
  DataLoader from each, with no loader worker (reading in the training process) and with one (reading
  beside it, as training from a store is meant to run), the two interleaved over ``--repeats`` rounds
  of ``--steps`` steps; the median ratio store / memory is reported for each.

    python benchmarks/graph_store.py --threads 1 --workers 1
    python benchmarks/graph_store.py --qm9-subset 3000 --crystals-subset 500 --steps 20 --out /tmp/s.json

Writes ``benchmarks/results/graph_store.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch_geometric.loader import DataLoader

from atomgraph.apps.crystals.dataset import crystals_store, load_crystals
from atomgraph.data.qm9 import load_qm9, qm9_store
from atomgraph.graphs.spec import preset
from atomgraph.models import build_model

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "mp_crystals"
MODEL = {"hidden": 64, "filters": 64, "interactions": 3, "num_rbf": 50}  # SchNet


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def read_rate(dataset, count: int, seed: int = 0) -> float:
    """Graphs per second read at random indices."""
    rows = np.random.default_rng(seed).integers(0, len(dataset), count)
    start = time.perf_counter()
    for i in rows:
        dataset[int(i)]
    return count / (time.perf_counter() - start)


def train_rate(dataset, spec, steps: int, seed: int, workers: int) -> float:
    """Optimiser steps per second of SchNet on shuffled batches of 32 drawn from ``dataset``."""
    torch.manual_seed(seed)
    model = build_model("schnet", spec, **MODEL, reductions=list(dataset.targets.reductions)[:1])
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=32, shuffle=True, generator=generator, num_workers=workers)
    batches = (batch for _ in iter(int, 1) for batch in loader)  # epoch after epoch
    next(batches)  # warm-up outside the timing
    start = time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
        loss = (model(batch)[:, 0] - batch.y[:, 0]).pow(2).nanmean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return steps / (time.perf_counter() - start)


def compare(name: str, spec, build_memory, build_store, args, cache: Path) -> dict:
    start = time.perf_counter()
    memory = build_memory(cache)
    memory_s = time.perf_counter() - start
    start = time.perf_counter()
    store = build_store(cache)
    store_s = time.perf_counter() - start
    memory_file = next(cache.glob("*.pt"))
    entry = {
        "rows": len(memory),
        "rows_store": len(store),
        "build_memory_s": memory_s,
        "build_store_s": store_s,
        "build_memory_rows_per_s": len(memory) / memory_s,
        "build_store_rows_per_s": len(store) / store_s,
        "store_workers": args.workers,
        "size_memory_mb": size_mb(memory_file),
        "size_store_mb": size_mb(store.directory),
        "shards": len(store._shards),
        "random_read_memory_per_s": read_rate(memory, args.reads),
        "random_read_store_per_s": read_rate(store, args.reads),
    }
    for workers in (0, 1):
        memory_rates, store_rates = [], []
        for repeat in range(args.repeats):  # interleaved
            memory_rates.append(train_rate(memory, spec, args.steps, repeat, workers))
            store_rates.append(train_rate(store, spec, args.steps, repeat, workers))
        ratios = [s / m for s, m in zip(store_rates, memory_rates, strict=True)]
        entry[f"training_loader_workers_{workers}"] = {
            "steps_per_s_memory": memory_rates,
            "steps_per_s_store": store_rates,
            "ratio_store_vs_memory_median": statistics.median(ratios),
        }
    print(
        f"{name}: {entry['rows']} rows; build memory {entry['build_memory_rows_per_s']:.0f}/s, store "
        f"{entry['build_store_rows_per_s']:.0f}/s; size {entry['size_memory_mb']:.0f} vs "
        f"{entry['size_store_mb']:.0f} MB; random reads {entry['random_read_memory_per_s']:.0f} vs "
        f"{entry['random_read_store_per_s']:.0f}/s; training store/memory "
        f"{entry['training_loader_workers_0']['ratio_store_vs_memory_median']:.3f} (no loader worker), "
        f"{entry['training_loader_workers_1']['ratio_store_vs_memory_median']:.3f} (one)",
        flush=True,
    )
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qm9-subset", type=int, default=None, help="a seeded sample (default: all)")
    parser.add_argument("--crystals", default=str(DATA))
    parser.add_argument("--crystals-subset", type=int, default=None)
    parser.add_argument("--workers", type=int, default=1, help="processes that build the store")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=["qm9", "crystals"], choices=["qm9", "crystals"])
    parser.add_argument("--out", default=str(ROOT / "results" / "graph_store.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {
        "benchmark": "graph_store",
        "settings": vars(args) | {"model": {"name": "schnet", **MODEL}, "batch_size": 32},
        "hardware": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "versions": {"torch": torch.__version__},
        "results": {},
    }
    root = Path(tempfile.mkdtemp(prefix="graph_store_bench_"))
    try:
        if "qm9" in args.only:
            spec, subset = preset("molecule"), args.qm9_subset
            results["results"]["qm9"] = compare(
                "qm9",
                spec,
                lambda cache: load_qm9(spec, subset, cache=cache, progress=False),
                lambda cache: qm9_store(spec, subset, cache=cache, progress=True, workers=args.workers),
                args,
                root / "qm9",
            )
        if "crystals" in args.only:
            spec, subset = preset("cgcnn_crystal"), args.crystals_subset
            results["results"]["crystals"] = compare(
                "crystals",
                spec,
                lambda cache: load_crystals(
                    args.crystals, spec, subset=subset, workers=1, cache=cache, progress=False
                ),
                lambda cache: crystals_store(
                    args.crystals, spec, subset=subset, cache=cache, progress=True, workers=args.workers
                ),
                args,
                root / "crystals",
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
