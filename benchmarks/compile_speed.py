"""``training.compile`` per model: a training step (forward, backward, optimiser step) eager against
compiled, on the QM9 batches and with the model of each config, interleaved in one process.

For each config the model is built exactly as ``atomgraph train`` builds it (the config's model section
completed from the data), twice from the same initial weights; one copy's forward goes through
:func:`atomgraph.training.compile.compile_forward` (what ``training.compile: true`` does). Both are warmed
up outside the timing (the compiled one compiles there: ``compile_s`` is the difference of the two
warm-ups), then timed in alternating rounds of ``--steps`` steps over the same batches (which variant goes
first alternates too). ``speedup`` = eager median / compiled median (above 1: the compiled step is
faster). A model whose compile fails runs eagerly (``fell_back: true``). Potentials are not in the list:
their force loss needs a double backward, which torch.compile does not support.

    python benchmarks/compile_speed.py --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from atomgraph.data.row_batches import row_loader
from atomgraph.training.compile import compile_forward
from atomgraph.training.config import load_config
from atomgraph.training.datasets import load_dataset, resolve_run
from atomgraph.training.prediction_module import build_parts
from atomgraph.training.run import model_arguments

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "compile_speed.json"
CONFIGS = [
    "configs/qm9_schnet_homo_cpu.yaml",
    "configs/qm9_painn_alpha_cpu.yaml",
    "configs/qm9_dimenetpp_homo_cpu.yaml",
    "configs/qm9_mpnn_cpu.yaml",
    "configs/qm9_gat_homo_practical_cpu.yaml",
]


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch) -> None:
    """One L1 step on the batch's targets (raw units: the same for both variants)."""
    loss = (model(batch) - batch.y).abs().nanmean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure(path: str, args: argparse.Namespace) -> dict:
    """Eager and compiled training steps of the model of config ``path``: medians, IQRs, speed-up."""
    config = load_config(ROOT / path, [f"data.subset={args.molecules}"])
    spec = resolve_run(config)
    dataset = load_dataset(config, spec, progress=False)
    model_args = model_arguments(config, dataset)
    torch.manual_seed(0)
    eager, _, _ = build_parts(model_args, dataset.targets.to_list(), spec.to_dict())
    compiled = copy.deepcopy(eager)
    forward = compile_forward(compiled)
    batches = list(
        row_loader(dataset, args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    )
    batches = batches[: args.steps]
    optimizers = {
        name: torch.optim.Adam(model.parameters(), lr=1e-4)
        for name, model in (("eager", eager), ("compiled", compiled))
    }
    models = {"eager": eager, "compiled": compiled}
    warm = {}
    for name, model in models.items():
        start = time.perf_counter()
        for batch in batches[: args.warmup]:
            training_step(model, optimizers[name], batch)
        warm[name] = time.perf_counter() - start
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for round_ in range(args.rounds):  # alternating which variant goes first
        for name in sorted(models, reverse=round_ % 2 == 1):
            model = models[name]
            start = time.perf_counter()
            for batch in batches:
                training_step(model, optimizers[name], batch)
            times[name].append(1000 * (time.perf_counter() - start) / len(batches))
    entry = {"config": path, "model": model_args["name"], "fell_back": forward.failed}
    entry["parameters"] = sum(p.numel() for p in eager.parameters())
    entry["compile_s"] = warm["compiled"] - warm["eager"]
    for name, values in times.items():
        quartiles = statistics.quantiles(values, n=4)
        entry[name] = {"median_ms_per_step": statistics.median(values), "iqr_ms": quartiles[2] - quartiles[0]}
    entry["speedup"] = entry["eager"]["median_ms_per_step"] / entry["compiled"]["median_ms_per_step"]
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=CONFIGS)
    parser.add_argument("--molecules", type=int, default=2000, help="QM9 molecules to draw batches from")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="training steps per timed round")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed rounds (at least 2)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds: at least 2 (the IQR needs two)")
    torch.set_num_threads(args.threads)
    rows = []
    for path in args.configs:
        print(f"{path} ...", flush=True)
        try:
            entry = measure(path, args)
        except ImportError as error:  # a dataset package not installed
            print(f"  skipped: {error}")
            continue
        rows.append(entry)
        print(
            f"  {entry['model']}: eager {entry['eager']['median_ms_per_step']:.1f} ms, compiled "
            f"{entry['compiled']['median_ms_per_step']:.1f} ms per step -> {entry['speedup']:.2f}x "
            f"(compile {entry['compile_s']:.0f} s{', fell back to eager' if entry['fell_back'] else ''})",
            flush=True,
        )
    result = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"python": platform.python_version(), "torch": torch.__version__},
        "models": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
