"""atomgraph against itself: the peer harness's atomgraph worker in two or more environments, on the same
sections, taking turns round by round. A variant is ``LABEL:NAME=VALUE,...`` (environment variables added
to this process's; none after the colon: as it is). What it is for:

* the malloc settings of ``import atomgraph`` (:mod:`atomgraph.allocator`) against glibc's defaults::

    .venv/bin/python benchmarks/peers/variants.py --variant kept: --variant glibc:ATOMGRAPH_MALLOC=system \\
        --out benchmarks/results/allocator.json

* this checkout against an older commit (``git worktree add /tmp/old REV``)::

    .venv/bin/python benchmarks/peers/variants.py --variant new: --variant old:PYTHONPATH=/tmp/old/src

Reports per section each variant's median seconds per call, IQR and minor page faults per call, and
``speedup`` = each variant's median / the first variant's (above 1: the first is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from run import FAMILIES, ROOT, start_worker, time_interleaved, write_systems

RESULTS = ROOT / "benchmarks" / "results" / "variants.json"
SECTIONS = ["train:aspirin32", "infer:aspirin32", "train:water192", "infer:water1536"]


def variant(text: str) -> tuple[str, dict[str, str]]:
    """``LABEL:NAME=VALUE,NAME=VALUE`` -> (label, the variables to add)."""
    label, _, assignments = text.partition(":")
    if not label:
        raise argparse.ArgumentTypeError(f"variant {text!r}: LABEL:NAME=VALUE,... (a label first)")
    pairs = [item.partition("=") for item in assignments.split(",") if item]
    if any(not name or not sep for name, sep, _ in pairs):
        raise argparse.ArgumentTypeError(f"variant {text!r}: each setting is NAME=VALUE")
    return label, {name: value for name, _, value in pairs}


def run_section(family: str, mode: str, frames: Path, atoms: int, variants: dict, args) -> dict:
    workers, hparams = {}, FAMILIES[family]["hparams"]
    try:
        for label, extra in variants.items():
            env = {**os.environ, **extra}
            workers[label], setup = start_worker("atomgraph", env, family, hparams, frames, mode, args)
        out, failed = time_interleaved(workers, args.rounds, args.calls, atoms)
    finally:
        for worker in workers.values():
            worker.close()
    if failed:
        raise RuntimeError(f"{family} {mode}: {failed}")
    first = out[next(iter(variants))]["median_s"]
    return {
        "family": family,
        "mode": mode,
        "atoms": atoms,
        "params": setup["params"],
        "variants": out,
        "speedup": {label: out[label]["median_s"] / first for label in list(variants)[1:]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", type=variant, action="append", required=True, help="LABEL:NAME=VAL,...")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--md-steps", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--only", nargs="*", default=["painn", "schnet"], choices=sorted(FAMILIES))
    parser.add_argument("--sections", nargs="*", default=SECTIONS, help="mode:system")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    variants = dict(args.variant)
    if len(variants) < 2:
        parser.error("give at least two --variant with different labels")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        paths = write_systems(Path(folder))
        from ase.io import read

        sizes = {name: sum(len(a) for a in read(path, ":")) for name, path in paths.items()}
        for family in args.only:
            for mode, system in (s.split(":") for s in args.sections):
                start = time.perf_counter()
                section = run_section(family, mode, paths[system], sizes[system], variants, args)
                section["system"] = system
                section["wall_s"] = round(time.perf_counter() - start, 1)
                results.append(section)
                cells = ", ".join(
                    f"{label} {r['median_s'] * 1e3:.1f} ms ({r['minor_faults_per_call']:.0f} faults)"
                    for label, r in section["variants"].items()
                )
                print(f"{family:7s} {mode:5s} {system:9s}: {cells}", flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(report(results, variants, args), indent=1))
    print(f"wrote {args.out}")


def report(results: list[dict], variants: dict, args) -> dict:
    return {
        "benchmark": "atomgraph's worker in several environments, interleaved (benchmarks/peers/variants.py)",
        "variants": variants,
        "threads": args.threads,
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "speedup": "each variant's median seconds / the first variant's (above 1: the first is faster)",
        "sections": results,
    }


if __name__ == "__main__":
    main()
