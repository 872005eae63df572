"""Side-by-side speed of atomgraph's potentials and their peers, interleaved, one process per framework.

Each framework runs in a worker process in its own environment (``benchmarks/peers/install.sh``:
PyG and NequIP in ``.peers/main``, schnetpack in ``.peers/schnetpack``, mace-torch in ``.peers/mace``;
atomgraph in the project's ``.venv``). For every section -- a model family, a mode and a system -- all
workers of the family build their model and their own graph of the same frames, warm up, and then
take turns: round r times ``--calls`` calls of each framework, the order alternating between rounds,
so drifts of the machine (another job, thermal state) hit every framework alike. Reported per
framework: parameters, median seconds per call (per MD step), interquartile range and throughput;
``ratio`` = peer median / atomgraph median (above 1: atomgraph faster). With ``--compile`` a third worker,
``atomgraph_compiled`` (the model's forward through torch.compile), joins the infer and md sections; its
``ratio`` is its median over the eager one's (below 1: compiling helps), and each peer gets
``ratio_compiled`` = peer median / compiled median.

Modes: ``train`` = energy + autograd forces with the graph kept, loss mean((dE/N)^2) + mean(dF^2),
backward, Adam step; ``infer`` = energy + forces; ``md`` = NVE velocity-Verlet steps (0.5 fs) through
the framework's ASE calculator (atomgraph's ``md`` is compared with its own ``infer`` of the same
structure: the calculator's overhead over a bare model call). Systems: 32 rMD17 aspirin frames as one
batch; the 192-atom periodic water box (DeePMD example); its 2x2x2 replica (1,536 atoms).

    bash benchmarks/peers/install.sh                      # once: the peer environments
    .venv/bin/python benchmarks/peers/run.py               # everything, one thread -> results/peers.json
    .venv/bin/python benchmarks/peers/run.py --threads 2 --only nequip --out /tmp/p.json
    .venv/bin/python benchmarks/peers/run.py --smoke       # tiny models, 2 rounds: checks the wiring
    .venv/bin/python benchmarks/peers/run.py --only painn --compile --sections infer:water192 md:water192
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from ase.io import write

from atomgraph.allocator import glibc_tunables

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "peers.json"
WORKER = Path(__file__).resolve().parent / "worker.py"

#: the environment of each framework (run.py itself runs in atomgraph's)
PYTHONS = {
    "atomgraph": ROOT / ".venv/bin/python",
    "atomgraph_compiled": ROOT / ".venv/bin/python",
    "pyg": ROOT / ".peers/main/bin/python",
    "nequip": ROOT / ".peers/main/bin/python",
    "schnetpack": ROOT / ".peers/schnetpack/bin/python",
    "mace": ROOT / ".peers/mace/bin/python",
}

CUTOFF = 5.0
#: per family: the frameworks and the hyperparameters every one of them gets (translated by its adapter)
#: the equivariant family's settings (NequIP's names translated by each adapter)
NEQUIP = {
    "hidden_irreps": "32x0e + 16x1o + 8x2e", "layers": 4, "num_basis": 8, "radial_hidden": 64,
    "radial_layers": 2, "envelope_exponent": 6, "avg_num_neighbors": 20.0, "cutoff": CUTOFF,
}  # fmt: skip
NEQUIP_SMOKE = {
    "hidden_irreps": "8x0e + 4x1o", "layers": 1, "num_basis": 4, "radial_hidden": 8, "radial_layers": 1,
    "envelope_exponent": 6, "avg_num_neighbors": 20.0, "cutoff": CUTOFF,
}  # fmt: skip
FAMILIES = {
    "schnet": {
        "frameworks": ["atomgraph", "pyg"],
        "hparams": {"hidden": 128, "filters": 128, "interactions": 6, "num_rbf": 50, "cutoff": CUTOFF},
        "smoke": {"hidden": 16, "filters": 16, "interactions": 1, "num_rbf": 8, "cutoff": CUTOFF},
    },
    "painn": {
        "frameworks": ["atomgraph", "schnetpack"],
        "hparams": {"hidden": 128, "interactions": 3, "num_rbf": 20, "cutoff": CUTOFF},
        "smoke": {"hidden": 16, "interactions": 1, "num_rbf": 8, "cutoff": CUTOFF},
    },
    "nequip": {"frameworks": ["atomgraph", "nequip"], "hparams": NEQUIP, "smoke": NEQUIP_SMOKE},
    "nequip_no_sc": {
        # NequIP without its default self-connection (a tensor product of the features with the one-hot
        # atom type, ~68K parameters per layer): less work per atom than atomgraph's plain linear one, so
        # the ratio against it is the conservative one
        "frameworks": ["atomgraph", "nequip"],
        "hparams": {**NEQUIP, "self_connection": False},
        "smoke": {**NEQUIP_SMOKE, "self_connection": False},
    },
    "mace": {
        "frameworks": ["atomgraph", "mace"],
        "hparams": {
            "hidden_irreps": "64x0e + 64x1o",
            "max_ell": 3,
            "correlation": 3,
            "interactions": 2,
            "num_bessel": 8,
            "avg_num_neighbors": 20.0,
            "cutoff": CUTOFF,
        },
        "smoke": {
            "hidden_irreps": "8x0e + 8x1o",
            "max_ell": 1,
            "correlation": 2,
            "interactions": 1,
            "num_bessel": 4,
            "avg_num_neighbors": 20.0,
            "cutoff": CUTOFF,
        },
    },
}
#: (mode, system) sections run for every family
SECTIONS = [
    ("train", "aspirin32"),
    ("infer", "aspirin32"),
    ("train", "water192"),
    ("infer", "water192"),
    ("infer", "water1536"),
    ("md", "water192"),
]


#: the systems the sections run on (extended XYZ files of these names)
SYSTEMS = ("aspirin32", "water192", "water1536")


def write_systems(folder: Path) -> dict[str, Path]:
    """The frames of each system as extended XYZ with energy (eV) and forces (eV/Å)."""
    from atomgraph.apps.potentials.deepmd import find_systems, read_system
    from atomgraph.apps.potentials.rmd17 import rmd17_atoms

    aspirin = rmd17_atoms(DATA / "rmd17", "aspirin", "train")[:32]
    water = read_system(find_systems(DATA / "water_pbc")[0])[0]
    replica = water.repeat((2, 2, 2))  # ase tiles arrays["forces"] with the atoms
    replica.info["energy"] = 8 * water.info["energy"]
    paths = {}
    for name, frames in zip(SYSTEMS, (aspirin, [water], [replica]), strict=True):
        paths[name] = folder / f"{name}.extxyz"
        write(paths[name], frames, format="extxyz")
    return paths


class Worker:
    """A framework's worker process and its line protocol."""

    def __init__(self, framework: str, timeout: float = 3600.0, env: dict[str, str] | None = None):
        """``env``: the worker's environment (default: this process's)."""
        self.framework = framework
        self.timeout = timeout
        self.process = subprocess.Popen(
            [str(PYTHONS[framework]), str(WORKER), framework],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )

    def ask(self, **command) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        # one reply line per command, so nothing is ever buffered ahead of this select
        ready, _, _ = select.select([self.process.stdout], [], [], self.timeout)
        if not ready:
            self.process.kill()
            raise RuntimeError(f"{self.framework}: no reply within {self.timeout:.0f} s (worker killed)")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.framework}: the worker died (see its stderr above)")
        try:
            reply = json.loads(line)
        except ValueError as error:
            raise RuntimeError(f"{self.framework}: unreadable reply {line[:200]!r} ({error})") from error
        if "error" in reply:
            raise RuntimeError(f"{self.framework}: {reply['error']}\n{reply.get('traceback', '')}")
        return reply

    def close(self) -> None:
        try:
            self.process.stdin.write('{"op": "quit"}\n')
            self.process.stdin.flush()
            self.process.wait(timeout=30)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.process.kill()


def worker_environment(framework: str, peer_malloc: bool) -> dict[str, str]:
    """A worker's environment: with ``peer_malloc`` a peer's worker gets atomgraph's malloc settings
    (``import atomgraph`` sets them in atomgraph's workers; :mod:`atomgraph.allocator`)."""
    env = dict(os.environ)
    if peer_malloc and not framework.startswith("atomgraph"):
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), glibc_tunables()]))
    return env


def summary(seconds: list[float], atoms: int, faults: list[float]) -> dict:
    """Median and IQR of the seconds per call, and the median minor page faults per call (both per MD step
    in the md sections)."""
    q1, median, q3 = np.percentile(seconds, [25, 50, 75])
    return {
        "median_s": float(median),
        "iqr_s": float(q3 - q1),
        "calls": len(seconds),
        "atoms_per_s": atoms / float(median),
        "minor_faults_per_call": float(np.median(faults)),
    }


def start_worker(
    framework: str, env: dict[str, str], family: str, hparams: dict, frames: Path, mode: str, args
) -> tuple[Worker, dict]:
    """A worker of ``framework`` in ``env`` with its model set up on ``frames`` and warmed up; its setup
    reply (parameters, versions). Raises RuntimeError (the worker closed) when either fails."""
    try:
        worker = Worker(framework, args.timeout, env)
    except OSError as error:  # no such interpreter, not executable
        raise RuntimeError(f"{framework}: cannot start {PYTHONS[framework]} ({error})") from error
    try:
        reply = worker.ask(
            op="setup",
            family=family,
            hparams=hparams,
            frames=str(frames),
            mode=mode,
            threads=args.threads,
            device=args.device,
            steps=args.md_steps,
        )
        worker.ask(op="time", repeats=args.warmup)
    except RuntimeError:
        worker.close()
        raise
    return worker, reply


def time_interleaved(
    workers: dict[str, Worker], rounds: int, calls: int, atoms: int
) -> tuple[dict[str, dict], dict[str, str]]:
    """``rounds`` rounds of ``calls`` timed calls of each worker, the order alternating between rounds.
    Returns the :func:`summary` of each worker that lasted, and the error line of each that failed (it is
    out of the section; the others go on)."""
    seconds = {label: [] for label in workers}
    faults = {label: [] for label in workers}
    failed = {}
    order = list(workers)
    for round_ in range(rounds):
        for label in order if round_ % 2 == 0 else order[::-1]:
            if label in failed:
                continue
            try:
                reply = workers[label].ask(op="time", repeats=calls)
            except RuntimeError as error:
                print(f"  {label}: failed: {str(error).strip()[:2000]}", file=sys.stderr)
                failed[label] = str(error).splitlines()[0]
                continue
            seconds[label] += reply["seconds"]
            faults[label].append(reply["minor_faults"])
    lasted = [label for label in order if label not in failed]
    return {label: summary(seconds[label], atoms, faults[label]) for label in lasted}, failed


def run_section(family: str, mode: str, system: str, frames: Path, args, atoms: int) -> dict:
    spec = FAMILIES[family]
    hparams = spec["smoke" if args.smoke else "hparams"]
    workers, out = (
        {},
        {
            "family": family,
            "mode": mode,
            "system": system,
            "atoms": atoms,
            "hparams": hparams,
            "frameworks": {},
        },
    )
    frameworks = list(spec["frameworks"])
    if args.compile and mode != "train":  # a training step's double backward is not compilable
        frameworks.insert(1, "atomgraph_compiled")
    # the workers start, build and warm up side by side (nothing is timed yet); they are timed in turn
    with ThreadPoolExecutor(len(frameworks)) as pool:
        starting = {
            framework: pool.submit(
                start_worker, framework, worker_environment(framework, args.peer_malloc), family, hparams,
                frames, mode, args,
            )
            for framework in frameworks
            if PYTHONS[framework].exists()
        }  # fmt: skip
    try:
        for framework in frameworks:
            if framework not in starting:
                out["frameworks"][framework] = {"skipped": f"{PYTHONS[framework]} missing"}
                continue
            try:
                worker, reply = starting[framework].result()
            except RuntimeError as error:
                out["frameworks"][framework] = {"skipped": str(error).splitlines()[0]}
                print(f"  {framework}: skipped: {str(error).strip()[:2000]}", file=sys.stderr)
                continue
            out["frameworks"][framework] = {"params": reply["params"], "versions": reply["versions"]}
            workers[framework] = worker
        timings, failed = time_interleaved(workers, args.rounds, args.calls, atoms)
        for name, result in timings.items():
            out["frameworks"][name].update(result)
        for name, line in failed.items():
            out["frameworks"][name]["failed"] = line
    finally:  # every worker that started, also those an unexpected error left uncollected
        for future in starting.values():
            if future.exception() is None:
                future.result()[0].close()
    ours = out["frameworks"].get("atomgraph", {}).get("median_s")
    compiled = out["frameworks"].get("atomgraph_compiled", {}).get("median_s")
    for name, result in out["frameworks"].items():
        if name != "atomgraph" and "median_s" in result:
            result["ratio"] = result["median_s"] / ours if ours else None
        if name not in ("atomgraph", "atomgraph_compiled") and "median_s" in result and compiled:
            result["ratio_compiled"] = result["median_s"] / compiled
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds per section")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per framework per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--md-steps", type=int, default=10, help="MD steps per timed call")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds a worker may take per reply")
    parser.add_argument("--only", nargs="*", default=sorted(FAMILIES), choices=sorted(FAMILIES))
    parser.add_argument("--sections", nargs="*", default=None, help="mode:system, e.g. train:aspirin32")
    parser.add_argument("--smoke", action="store_true", help="tiny models, 2 rounds of 1 call")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also atomgraph compiled (torch.compile) in the infer and md sections, interleaved",
    )
    parser.add_argument(
        "--peer-malloc",
        action="store_true",
        help="run the peers' workers with atomgraph's malloc settings too (GLIBC_TUNABLES; README)",
    )
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="FRAMEWORK=PATH",
        help="the interpreter of a framework's worker, instead of PYTHONS' (e.g. pyg=/opt/venv/bin/python)",
    )
    parser.add_argument(
        "--systems",
        type=Path,
        default=None,
        help="read the systems' extended XYZ files (SYSTEM.extxyz, as write_systems writes them) from this "
        "folder instead of writing them from ../shared/data (a machine without the datasets)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    for item in args.python:
        framework, _, path = item.partition("=")
        if framework not in PYTHONS or not path:
            parser.error(f"--python {item!r}: expected FRAMEWORK=PATH, FRAMEWORK one of {sorted(PYTHONS)}")
        PYTHONS[framework] = Path(path)
    if args.smoke:
        args.rounds, args.calls, args.warmup, args.md_steps = 2, 1, 1, 2
    sections = SECTIONS if args.sections is None else [tuple(s.split(":")) for s in args.sections]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        if args.systems is None:
            paths = write_systems(Path(folder))
        else:
            paths = {name: args.systems / f"{name}.extxyz" for name in SYSTEMS}
            missing = [str(path) for path in paths.values() if not path.exists()]
            if missing:
                parser.error(f"--systems: no {', '.join(missing)}")
        from ase.io import read

        sizes = {name: sum(len(a) for a in read(path, ":")) for name, path in paths.items()}
        for family in args.only:
            for mode, system in sections:
                start = time.perf_counter()
                section = run_section(family, mode, system, paths[system], args, sizes[system])
                section["wall_s"] = round(time.perf_counter() - start, 1)
                results.append(section)
                line = ", ".join(describe(name, r) for name, r in section["frameworks"].items())
                print(f"{family:7s} {mode:5s} {system:9s}: {line}", flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(report(results, args), indent=1))
    print(f"wrote {args.out}")


def describe(name: str, result: dict) -> str:
    if "median_s" not in result:
        return f"{name} {'failed' if 'failed' in result else 'skipped'}"
    ratio = f" (x{result['ratio']:.2f})" if result.get("ratio") else ""
    return f"{name} {result['median_s'] * 1e3:.1f} ms{ratio}"


def report(results: list[dict], args) -> dict:
    import torch

    return {
        "benchmark": "atomgraph vs peers, interleaved (benchmarks/peers/run.py)",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": args.threads,
            "device": args.device,
            "torch": torch.__version__,
        },
        "protocol": {
            "rounds": args.rounds,
            "calls_per_round": args.calls,
            "warmup": args.warmup,
            "md_steps_per_call": args.md_steps,
            "dtype": "float32",
            "cutoff_A": CUTOFF,
            "atomgraph_compiled": "infer and md sections" if args.compile else "not run",
            "malloc": {
                "atomgraph": "import atomgraph raises glibc's mmap and trim thresholds (atomgraph.allocator)",
                "peers": f"GLIBC_TUNABLES={glibc_tunables()}" if args.peer_malloc else "glibc defaults",
            },
        },
        "ratio": "peer median seconds / atomgraph median seconds (above 1: atomgraph faster)",
        "md_step_over_bare_call": calculator_overhead(results),
        "sections": results,
    }


def calculator_overhead(results: list[dict]) -> dict:
    """Per family: atomgraph's MD step (ASE calculator + integrator) over its bare energy + forces call
    on the same structure (the issue's target: at most 1.1); the compiled model's too, where it ran."""
    out = {}
    for framework, suffix in (("atomgraph", ""), ("atomgraph_compiled", " compiled")):
        median = {(r["family"], r["mode"], r["system"]): r["frameworks"].get(framework, {}).get("median_s")
                  for r in results}  # fmt: skip
        for family, mode, system in median:
            bare = median.get((family, "infer", system))
            if mode == "md" and median[(family, mode, system)] and bare:
                out[f"{family} {system}{suffix}"] = median[(family, mode, system)] / bare
    return out


if __name__ == "__main__":
    main()
