"""atomgraph's potentials with and without the malloc settings of ``import atomgraph`` (atomgraph.allocator):
the peer harness's atomgraph worker twice on the same sections, one of them with ``ATOMGRAPH_MALLOC=system``
(glibc's defaults), the two taking turns round by round. Reports per section the median seconds per call,
the IQR and the minor page faults per call of each, and ``speedup`` = glibc's median / atomgraph's.

    .venv/bin/python benchmarks/peers/allocator.py --threads 1     # -> benchmarks/results/allocator.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from run import FAMILIES, ROOT, Worker, summary, write_systems

from atomgraph.allocator import OPT_OUT

RESULTS = ROOT / "benchmarks" / "results" / "allocator.json"
SECTIONS = ["train:aspirin32", "infer:aspirin32", "train:water192", "infer:water1536"]


def environments() -> dict[str, dict[str, str]]:
    """label -> worker environment: ``kept`` as atomgraph runs, ``glibc`` with the opt-out."""
    base = {k: v for k, v in os.environ.items() if k != OPT_OUT[0]}
    return {"kept": base, "glibc": {**base, OPT_OUT[0]: OPT_OUT[1]}}


def run_section(family: str, mode: str, frames: Path, atoms: int, args) -> dict:
    workers = {label: Worker("atomgraph", args.timeout, env) for label, env in environments().items()}
    try:
        for worker in workers.values():
            setup = worker.ask(
                op="setup",
                family=family,
                hparams=FAMILIES[family]["hparams"],
                frames=str(frames),
                mode=mode,
                threads=args.threads,
                steps=args.md_steps,
            )
            worker.ask(op="time", repeats=args.warmup)
        seconds = {label: [] for label in workers}
        faults = {label: [] for label in workers}
        order = list(workers)
        for round_ in range(args.rounds):
            for label in order if round_ % 2 == 0 else order[::-1]:
                reply = workers[label].ask(op="time", repeats=args.calls)
                seconds[label] += reply["seconds"]
                faults[label].append(reply["minor_faults"])
    finally:
        for worker in workers.values():
            worker.close()
    out = {label: summary(seconds[label], atoms, faults[label]) for label in workers}
    return {
        "family": family,
        "mode": mode,
        "atoms": atoms,
        "params": setup["params"],
        **out,
        "speedup": out["glibc"]["median_s"] / out["kept"]["median_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--md-steps", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--only", nargs="*", default=["painn", "schnet"], choices=sorted(FAMILIES))
    parser.add_argument("--sections", nargs="*", default=SECTIONS, help="mode:system")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        paths = write_systems(Path(folder))
        from ase.io import read

        sizes = {name: sum(len(a) for a in read(path, ":")) for name, path in paths.items()}
        for family in args.only:
            for mode, system in (s.split(":") for s in args.sections):
                start = time.perf_counter()
                section = run_section(family, mode, paths[system], sizes[system], args)
                section["system"] = system
                section["wall_s"] = round(time.perf_counter() - start, 1)
                results.append(section)
                print(
                    f"{family:7s} {mode:5s} {system:9s}: kept {section['kept']['median_s'] * 1e3:.1f} ms "
                    f"({section['kept']['minor_faults_per_call']:.0f} faults), glibc "
                    f"{section['glibc']['median_s'] * 1e3:.1f} ms "
                    f"({section['glibc']['minor_faults_per_call']:.0f} faults): x{section['speedup']:.2f}",
                    flush=True,
                )
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(report(results, args), indent=1))
    print(f"wrote {args.out}")


def report(results: list[dict], args) -> dict:
    return {
        "benchmark": "atomgraph with its malloc settings (kept) and glibc's defaults (glibc), interleaved",
        "command": "benchmarks/peers/allocator.py "
        + f"--threads {args.threads} --rounds {args.rounds} --calls {args.calls} "
        + f"--only {' '.join(args.only)} --sections {' '.join(args.sections)}",
        "threads": args.threads,
        "speedup": "glibc median seconds / kept median seconds (above 1: the settings help)",
        "sections": results,
    }


if __name__ == "__main__":
    main()
