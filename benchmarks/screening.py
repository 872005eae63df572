"""Streaming prediction at scale: ``atomgraph predict`` over SMILES libraries of growing size, with its
rate (molecules/s) and peak resident memory per size, each in a fresh process.

The libraries are randomised SMILES of the MoleculeNet molecules in ``../shared/data/moleculenet``
(RDKit ``doRandom``, seeded), so every row is a real molecule written differently. The model is a GCN
trained on ESOL for a few epochs (the numbers measure the pipeline, not the model). Writes
``benchmarks/results/screening.json``.

    python benchmarks/screening.py --sizes 1000 10000 50000 --threads 1
    python benchmarks/screening.py --sizes 10000 --workers 0 2   # in-process vs 2 worker processes

chemprop's ``predict`` is the peer the issue names; it is not installed in this environment
(``pip install chemprop==2.2.4``), and the script says so in its report instead of a ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rdkit import Chem, RDLogger

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "moleculenet"
RESULTS = ROOT / "benchmarks" / "results" / "screening.json"

MEASURE = """
import resource, sys, time, torch
torch.set_num_threads(int(sys.argv[4]))
from atomgraph.evaluation.predict import predict_file
start = time.perf_counter()
summary = predict_file(sys.argv[1], sys.argv[2], sys.argv[3], chunk_rows=1024, workers=int(sys.argv[5]))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("RESULT", summary.rows, summary.predicted, seconds, peak, workers_peak)
"""


def library(size: int, path: Path, seed: int = 0) -> Path:
    """``size`` randomised SMILES of the MoleculeNet molecules (cycling through them)."""
    RDLogger.DisableLog("rdApp.*")
    smiles = []
    for name, column in (("delaney.csv", "smiles"), ("lipo.csv", "smiles"), ("freesolv.csv", "smiles")):
        smiles += pd.read_csv(DATA / name)[column].astype(str).tolist()
    mols = [m for m in (Chem.MolFromSmiles(s) for s in smiles) if m is not None]
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(size):
        mol = mols[k % len(mols)]
        Chem.rdBase.SeedRandomNumberGenerator(int(rng.integers(1 << 30)))
        rows.append(Chem.MolToSmiles(mol, doRandom=True, canonical=False))
    pd.DataFrame({"smiles": rows}).to_csv(path, index=False)
    return path


def train_model(run_dir: Path) -> Path:
    """A GCN on ESOL (scaffold split), a few epochs: the model whose predictions are timed."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from moleculenet import DATASETS, make_config

    from atomgraph.evaluation.experiment import train_and_evaluate

    args = argparse.Namespace(epochs=5, budget_min=5.0, cache=None, no_progress=True, runs_dir=run_dir.parent)
    config = make_config("esol", DATASETS["esol"], DATA / "delaney.csv", "gcn", 0, args)
    config.update(run_dir=str(run_dir), name="screening_gcn")
    return train_and_evaluate(config, progress=False, overwrite=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, nargs="+", default=[0], help="predict --workers settings")
    parser.add_argument("--run", type=Path, default=None, help="a trained run (default: train a GCN on ESOL)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_screening")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    run = args.run or train_model(args.work / "model")
    rows = []
    for size in args.sizes:
        path = library(size, args.work / f"library_{size}.csv")
        for workers in args.workers:
            out = args.work / f"predictions_{size}_w{workers}.csv"
            started = time.perf_counter()
            command = [
                sys.executable,
                "-c",
                MEASURE,
                str(run),
                str(path),
                str(out),
                str(args.threads),
                str(workers),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - started
            line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
            _, total, predicted, seconds, peak_kb, workers_kb = line.split()
            rows.append({
                "rows": int(total),
                "workers": workers,
                "predicted": int(predicted),
                "molecules_per_s": round(int(total) / float(seconds), 1),
                "seconds": round(float(seconds), 1),
                "process_seconds": round(wall, 1),
                "peak_rss_mb": round(int(peak_kb) / 1024, 1),
                "worker_peak_rss_mb": round(int(workers_kb) / 1024, 1) if workers else None,
            })  # fmt: skip
            print(rows[-1], flush=True)
    report = {
        "benchmark": "atomgraph predict (streaming, chunks of 1024 rows) over randomised MoleculeNet SMILES",
        "command": "python benchmarks/screening.py " + " ".join(sys.argv[1:]),
        "model": "GCN (benchmarks/moleculenet.py settings) trained 5 epochs on ESOL",
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "results": rows,
        "chemprop": "not installed here (pip install chemprop==2.2.4); no ratio measured",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
