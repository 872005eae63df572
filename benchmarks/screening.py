"""Streaming prediction at scale: ``atomgraph predict`` over SMILES libraries of growing size, with its
rate (molecules/s) and peak resident memory per size, each in a fresh process -- and chemprop's
``predict`` on the same files, in the same run, at the same sizes, for a ratio.

The libraries are randomised SMILES of the MoleculeNet molecules in ``../shared/data/moleculenet``
(RDKit ``doRandom``, seeded), so every row is a real molecule written differently. The model is a GCN
trained on ESOL for a few epochs (the numbers measure the pipeline, not the model). Writes
``benchmarks/results/screening.json``.

    python benchmarks/screening.py --sizes 1000 10000 50000 --threads 1
    python benchmarks/screening.py --sizes 10000 --workers 0 2   # in-process vs 2 worker processes
    python benchmarks/screening.py --sizes 10000 100000 --threads 1 --repeats 2 --no-chemprop

chemprop (2.3.1) is the peer the issue names. It lives in its own environment, ``.peers/main``, which
``benchmarks/peers/install.sh`` makes; ``--chemprop`` (the default when ``.peers/main/bin/chemprop``
exists) trains a chemprop D-MPNN on ESOL once (``chemprop train``, scaffold-balanced split, 5 epochs,
CPU, stored under ``--work`` and reused) and, for every size, runs ``chemprop predict`` on the same
library right after atomgraph (``--repeats`` alternates them), in a fresh process with the same torch
thread count (``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` and ``torch.set_num_threads``, through
``benchmarks/peers/chemprop_screening.py``). Each side runs its command-line tool's function in its
process (``atomgraph predict``: ``atomgraph.cli.main.console``; ``chemprop predict``:
``chemprop.cli.main.main``) and gets two times: ``seconds``, inside the process, around that call
(parsing the arguments, loading the model, reading, featurising, predicting, writing), and
``process_seconds``, the wall clock from starting the process to its end (Python start-up and imports
included). ``ratio_vs_chemprop`` is atomgraph's rate over chemprop's on ``process_seconds``;
``ratio_vs_chemprop_in_process`` the same on ``seconds``. Peak memory is each process's ``ru_maxrss``.
Both models' parameter counts and hyperparameters are recorded; ``--chemprop-hidden 150
--chemprop-ffn-hidden 150`` gives chemprop about the GCN's parameter count. chemprop reads its whole
input before predicting (atomgraph streams chunks of 1024 rows), so its peak memory grows with the
library: sizes above ``--chemprop-max-rows`` (default 200,000) are run by atomgraph only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from rdkit import Chem, RDLogger

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "moleculenet"
RESULTS = ROOT / "benchmarks" / "results" / "screening.json"
PEER_PYTHON = ROOT / ".peers" / "main" / "bin" / "python"
PEER_CHEMPROP = ROOT / ".peers" / "main" / "bin" / "chemprop"
PEER_HELPER = ROOT / "benchmarks" / "peers" / "chemprop_screening.py"
ATOMGRAPH_BATCH = 128  # predict_each's batch size inside predict_file

MEASURE = """
import resource, sys, time, torch
torch.set_num_threads(int(sys.argv[4]))
from atomgraph.cli.main import console
run, library, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5]
sys.argv = ["atomgraph", "predict", run, library, "-o", out, "--chunk-rows", "1024", "--workers", workers]
start = time.perf_counter()
console()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("RESULT", seconds, peak, workers_peak)
"""
#: the line ``atomgraph predict`` ends with on stderr
DONE = re.compile(r"predicted (\d+) of (\d+) rows")


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


def describe_atomgraph(run: Path) -> dict:
    """Parameter count and hyperparameters of a trained run directory (from its run.json, config.yaml)."""
    info: dict = {"run": str(run)}
    if (run / "run.json").exists():
        record = json.loads((run / "run.json").read_text())
        info.update(parameters=record.get("parameters"), versions=record.get("versions"))
    if (run / "config.yaml").exists():
        config = yaml.safe_load((run / "config.yaml").read_text())
        training = config.get("training", {})
        info["hyperparameters"] = {
            **config.get("model", {}),
            "graph": config.get("data", {}).get("graph", {}).get("preset"),
            "epochs": training.get("epochs"),
            "batch_size": training.get("batch_size"),
            "split": config.get("data", {}).get("split", {}).get("kind"),
        }
    info["predict"] = {"chunk_rows": 1024, "batch_size": ATOMGRAPH_BATCH}
    return info


def thread_env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def train_chemprop(
    work: Path, threads: int, hidden: int, depth: int, ffn_hidden: int, ffn_layers: int, epochs: int = 5
) -> dict:
    """A chemprop D-MPNN on ESOL (``chemprop train``, scaffold-balanced split, CPU), trained once into
    ``work`` and reused: its ``best.pt``, parameter count and hyperparameters."""
    save = work / f"chemprop_esol_h{hidden}_d{depth}_f{ffn_hidden}x{ffn_layers}_e{epochs}"
    model = save / "model_0" / "best.pt"
    flags = ["--message-hidden-dim", str(hidden), "--depth", str(depth), "--ffn-hidden-dim", str(ffn_hidden),
             "--ffn-num-layers", str(ffn_layers), "--epochs", str(epochs)]  # fmt: skip
    command = [
        "train", "-i", str(DATA / "delaney.csv"), "-s", "smiles", "--target-columns", "logp",
        "--task-type", "regression", "--split", "SCAFFOLD_BALANCED", "--data-seed", "0",
        "--pytorch-seed", "0", "-o", str(save), "--num-workers", "0", "--accelerator", "cpu",
        "--devices", "1", *flags,
    ]  # fmt: skip
    if not model.exists():
        shutil.rmtree(save, ignore_errors=True)  # a run cut short
        save.mkdir(parents=True)
        print(f"training chemprop -> {save}", flush=True)
        with open(save / "train.log", "w") as log:
            subprocess.run(
                [str(PEER_PYTHON), str(PEER_HELPER), "run", str(threads), *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=thread_env(threads),
                check=True,
            )
    done = subprocess.run(
        [str(PEER_PYTHON), str(PEER_HELPER), "describe", str(model)],
        capture_output=True,
        text=True,
        check=True,
        env=thread_env(threads),
    )
    info = json.loads(done.stdout.strip().splitlines()[-1])
    info["hyperparameters"].update(epochs=epochs, split="SCAFFOLD_BALANCED (0.8/0.1/0.1)")
    info["model"] = str(model)
    info["train_command"] = "chemprop " + " ".join(command)
    return info


def measure_atomgraph(run: Path, path: Path, out: Path, threads: int, workers: int) -> dict:
    """One ``atomgraph predict`` (the console script's function, in a fresh process, as chemprop's
    side runs chemprop's): its in-process and process wall seconds, peak RSS, rows predicted."""
    command = [sys.executable, "-c", MEASURE, str(run), str(path), str(out), str(threads), str(workers)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=thread_env(threads))
    wall = time.perf_counter() - started
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    _, seconds, peak_kb, workers_kb = line.split()
    predicted, total = DONE.findall(done.stderr)[-1]
    return {
        "rows": int(total),
        "predicted": int(predicted),
        "seconds": float(seconds),
        "process_seconds": wall,
        "peak_kb": int(peak_kb),
        "workers_kb": int(workers_kb),
    }


def measure_chemprop(model: Path, path: Path, out: Path, threads: int, batch_size: int, workers: int) -> dict:
    """One ``chemprop predict`` in a fresh process (the peers' Python): in-process and process wall
    seconds, peak RSS, and the rows it wrote with a prediction."""
    out.unlink(missing_ok=True)
    command = [
        str(PEER_PYTHON), str(PEER_HELPER), "run", str(threads),
        "predict", "-i", str(path), "-s", "smiles", "--model-paths", str(model), "-o", str(out),
        "--num-workers", str(workers), "--batch-size", str(batch_size), "--accelerator", "cpu",
        "--devices", "1",
    ]  # fmt: skip
    log = out.with_suffix(".log")
    started = time.perf_counter()
    with open(log, "w") as err:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, text=True, env=thread_env(threads))
    wall = time.perf_counter() - started
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"chemprop predict failed (exit {done.returncode}); see {log}")
    _, seconds, peak_kb, children_kb = line.split()
    predicted = 0
    if out.exists():
        table = pd.read_csv(out)
        values = table.drop(columns=[c for c in table.columns if c == "smiles"])
        predicted = int(values.notna().all(axis=1).sum()) if len(values.columns) else 0
    return {
        "seconds": float(seconds),
        "process_seconds": wall,
        "peak_kb": int(peak_kb),
        "children_kb": int(children_kb),
        "predicted": predicted,
    }


def summary(runs: list[dict], rows: int, repeats: int) -> dict:
    """One framework's measurements of one library: medians of the times over the repeats (the rates
    from them), the largest peak memory, the fewest rows predicted."""
    seconds = statistics.median(m["seconds"] for m in runs)
    process = statistics.median(m["process_seconds"] for m in runs)
    out = {
        "predicted": min(m["predicted"] for m in runs),
        "molecules_per_s": round(rows / seconds, 1),
        "process_molecules_per_s": round(rows / process, 1),
        "seconds": round(seconds, 2),
        "process_seconds": round(process, 2),
        "peak_rss_mb": round(max(m["peak_kb"] for m in runs) / 1024, 1),
    }
    if any(m.get("children_kb") for m in runs):  # chemprop's DataLoader workers
        out["worker_peak_rss_mb"] = round(max(m["children_kb"] for m in runs) / 1024, 1)
    if repeats > 1:
        out["process_seconds_each"] = [round(m["process_seconds"], 2) for m in runs]
    return out


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
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs per size, atomgraph and chemprop alternating; medians are reported",
    )
    parser.add_argument(
        "--chemprop",
        action=argparse.BooleanOptionalAction,
        default=PEER_CHEMPROP.exists(),
        help=f"also time chemprop predict (default: on when {PEER_CHEMPROP} exists)",
    )
    parser.add_argument("--chemprop-hidden", type=int, default=300, help="--message-hidden-dim")
    parser.add_argument("--chemprop-depth", type=int, default=3, help="--depth")
    parser.add_argument("--chemprop-ffn-hidden", type=int, default=300, help="--ffn-hidden-dim")
    parser.add_argument("--chemprop-ffn-layers", type=int, default=1, help="--ffn-num-layers")
    parser.add_argument("--chemprop-batch-size", type=int, default=64, help="chemprop predict --batch-size")
    parser.add_argument("--chemprop-workers", type=int, default=0, help="chemprop predict --num-workers")
    parser.add_argument(
        "--chemprop-max-rows",
        type=int,
        default=200_000,
        help="libraries larger than this are not given to chemprop: it holds every molecule in memory "
        "(~19 KiB a row measured here: ~19 GiB at 10^6, most of this 24 GB machine)",
    )
    args = parser.parse_args()
    if args.chemprop and not PEER_CHEMPROP.exists():
        parser.error(f"{PEER_CHEMPROP} is missing: run benchmarks/peers/install.sh")
    args.work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    run = args.run or train_model(args.work / "model")
    models = {"atomgraph": describe_atomgraph(Path(run))}
    if args.chemprop:
        models["chemprop"] = train_chemprop(
            args.work,
            args.threads,
            args.chemprop_hidden,
            args.chemprop_depth,
            args.chemprop_ffn_hidden,
            args.chemprop_ffn_layers,
        )
        models["chemprop"]["predict"] = {
            "batch_size": args.chemprop_batch_size,
            "num_workers": args.chemprop_workers,
            "max_rows": args.chemprop_max_rows,
        }
    rows = []
    for size in args.sizes:
        path = library(size, args.work / f"library_{size}.csv")
        ours: dict[int, list[dict]] = {w: [] for w in args.workers}
        theirs: list[dict] = []
        for _ in range(args.repeats):
            for workers in args.workers:
                out = args.work / f"predictions_{size}_w{workers}.csv"
                ours[workers].append(measure_atomgraph(Path(run), path, out, args.threads, workers))
                print(size, "atomgraph", workers, ours[workers][-1], flush=True)
            if args.chemprop and size <= args.chemprop_max_rows:
                out = args.work / f"chemprop_predictions_{size}.csv"
                theirs.append(
                    measure_chemprop(
                        Path(models["chemprop"]["model"]), path, out, args.threads, args.chemprop_batch_size,
                        args.chemprop_workers,
                    )
                )  # fmt: skip
                print(size, "chemprop", theirs[-1], flush=True)
        chemprop = summary(theirs, size, args.repeats) if theirs else None
        for workers, runs in ours.items():
            total = runs[0]["rows"]
            row = {"rows": total, "workers": workers, **summary(runs, total, args.repeats)}
            worker_peak = max(m["workers_kb"] for m in runs) / 1024
            row["worker_peak_rss_mb"] = round(worker_peak, 1) if workers else None
            if chemprop is not None:
                row["ratio_vs_chemprop"] = round(chemprop["process_seconds"] / row["process_seconds"], 2)
                row["ratio_vs_chemprop_in_process"] = round(chemprop["seconds"] / row["seconds"], 2)
                row["chemprop"] = chemprop
            elif args.chemprop:
                row["chemprop"] = (
                    f"not run: {size} rows > --chemprop-max-rows {args.chemprop_max_rows} (chemprop holds "
                    "the whole library in memory)"
                )
            rows.append(row)
            print(row, flush=True)
    report = {
        "benchmark": "atomgraph predict (streaming, chunks of 1024 rows) over randomised MoleculeNet SMILES"
        + (", and chemprop predict on the same files" if args.chemprop else ""),
        "command": "python benchmarks/screening.py " + " ".join(sys.argv[1:]),
        "model": "GCN (benchmarks/moleculenet.py settings) trained 5 epochs on ESOL",
        "threads": args.threads,
        "repeats": args.repeats,
        "cpu": platform.processor() or platform.machine(),
        "load_average": {
            "start": [round(x, 2) for x in load_start],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
        "timing": "seconds: inside the process, around the command-line tool's function (atomgraph: "
        "atomgraph.cli.main.console, chemprop: chemprop.cli.main.main; argument parsing, model loading, "
        "reading, featurising, predicting, writing); process_seconds: process start to end, Python "
        "start-up and imports included; molecules_per_s = rows / seconds, process_molecules_per_s = rows / "
        "process_seconds; peak_rss_mb: the process's ru_maxrss; medians over repeats (peaks: maxima)",
        "models": models,
        "results": rows,
    }
    if args.chemprop:
        report["ratio_vs_chemprop"] = (
            "atomgraph process_molecules_per_s / chemprop process_molecules_per_s (both include start-up); "
            "ratio_vs_chemprop_in_process: the same on seconds"
        )
    else:
        report["chemprop"] = (
            "not measured (--no-chemprop)"
            if PEER_CHEMPROP.exists()
            else "not installed here (benchmarks/peers/install.sh makes .peers/main); no ratio measured"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
