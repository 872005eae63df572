"""rMD17 potentials: energy and force errors of PaiNN and the equivariant model, beside NequIP and MACE.

Per molecule (default aspirin, ethanol) and model: train on the 1,000 training frames of split 01
(950 fit + 50 validation, as in the NequIP/MACE protocol) under a wall-clock budget, then measure the
energy MAE (meV, total energy) and force MAE (meV/Å, per component) on the 1,000 test frames of
split 01. Energies and forces are converted from kcal/mol with 1 kcal/mol = 0.0433641 eV. Then MD
speed of our ASE calculator (NVE, 0.5 fs, neighbour list with a 0.5 Å skin) on the 192-atom periodic
water box of ``../shared/data/water_pbc`` and on that box replicated 5x1x1 (960 atoms), with the
model trained on the first molecule. Writes ``benchmarks/results/rmd17.json``.

    python benchmarks/rmd17.py --budget-min 60                   # the real run (CPU)
    python benchmarks/rmd17.py --device cuda --budget-min 30     # on a GPU
    python benchmarks/rmd17.py --smoke                           # minutes: tiny sizes, to /tmp
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from atomgraph.apps.potentials.deepmd import find_systems, read_system
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.md import Calculator, run_md
from atomgraph.models import available_models
from atomgraph.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "rmd17.json"

PUBLISHED = {
    "protocol": "rMD17, 1000 training configurations; energy MAE in meV (total energy), force MAE in meV/Å",
    "NequIP": {
        "source": "Batzner et al., Nat. Commun. 13, 2453 (2022), rMD17 table (l = 3)",
        "aspirin": {"energy_mae_mev": 2.3, "force_mae_mev_per_a": 8.2},
        "ethanol": {"energy_mae_mev": 0.4, "force_mae_mev_per_a": 2.8},
    },
    "MACE": {
        "source": "Batatia et al., NeurIPS 2022 (MACE), rMD17 table",
        "aspirin": {"energy_mae_mev": 2.2, "force_mae_mev_per_a": 6.6},
        "ethanol": {"energy_mae_mev": 0.4, "force_mae_mev_per_a": 2.1},
    },
}

#: Model settings of the benchmark (cutoff 5 Å for all); overridable with --model-args.
MODEL_ARGS = {
    "painn": {"hidden": 128, "interactions": 3, "num_rbf": 20},
    "equivariant": {},
    "mace": {},  # 64 channels, l_max 3, correlation 3, 2 layers (mace-torch's standard rMD17 size: 256)
    "schnet": {"hidden": 128, "filters": 128, "interactions": 6, "num_rbf": 50},
}
SMOKE_ARGS = {
    "painn": {"hidden": 16, "interactions": 1, "num_rbf": 8},
    "equivariant": {"hidden_irreps": "8x0e + 4x1o", "layers": 1},
    "mace": {"channels": 8, "sh_lmax": 2, "correlation": 2, "layers": 1, "radial_hidden": [8]},
    "schnet": {"hidden": 16, "filters": 16, "interactions": 1, "num_rbf": 8},
}


def write_split(path: Path, n_train: int, n_val: int, n_test: int, seed: int = 0) -> None:
    """Validation drawn (seeded) from the first ``n_train`` training frames, the rest fit; the test rows
    are the first ``n_test`` test frames (rows 1000.. of the dataset)."""
    order = np.random.default_rng(seed).permutation(n_train)
    split = {
        "train": sorted(order[n_val:].tolist()),
        "val": sorted(order[:n_val].tolist()),
        "test": list(range(1000, 1000 + n_test)),
    }
    path.write_text(json.dumps(split))


def run_config(args, molecule: str, model: str, run_dir: Path, split_file: Path) -> dict:
    model_args = {**(SMOKE_ARGS if args.smoke else MODEL_ARGS).get(model, {}), **json.loads(args.model_args)}
    minutes = int(args.budget_min)
    seconds = round((args.budget_min - minutes) * 60)
    overrides = [
        f"name=rmd17_{molecule}_{model}",
        f"run_dir={run_dir}",
        f"seed={args.seed}",
        "data.dataset=rmd17",
        f"data.path={args.data}",
        f"data.molecule={molecule}",
        "data.targets=[energy]",
        "data.graph.cutoff=5.0",
        f"data.split.file={split_file}",
        "task.kind=potential",
        f"task.energy_weight={args.energy_weight}",
        f"task.force_weight={args.force_weight}",
        f"model.name={model}",
        *(f"model.{k}={json.dumps(v)}" for k, v in model_args.items()),
        f"training.max_time=00:00:{minutes:02d}:{seconds:02d}",
        f"training.epochs={args.max_epochs}",
        f"training.batch_size={args.batch_size}",
        "training.eval_batch_size=50",
        f"training.lr={args.lr}",
        "training.scheduler=plateau",
        "training.plateau_patience=10",
        "training.plateau_factor=0.8",
        "training.early_stopping_patience=60",
        f"training.precision={args.precision}",
        f"training.accelerator={'gpu' if args.device.startswith('cuda') else 'cpu'}",
        "training.progress=false",
    ]
    if args.cache:
        overrides.append(f"data.cache={args.cache}")
    return load_config(None, overrides)


def water_box(replicate: tuple[int, int, int] = (1, 1, 1)):
    """The first frame of the DeePMD water data (192 atoms, 12.44 Å box), optionally replicated."""
    atoms = read_system(find_systems(DATA / "water_pbc")[0])[0]
    del atoms.arrays["forces"]
    atoms.info.clear()
    return atoms.repeat(replicate)


def md_speed(run_dir: Path, device: str, steps: int) -> dict[str, float]:
    """NVE steps per second (0.5 fs, 300 K start) of the run's calculator on two water cells."""
    out = {}
    for label, reps in (("water_192_atoms", (1, 1, 1)), ("water_960_atoms", (5, 1, 1))):
        atoms = water_box(reps)
        calc = Calculator(run_dir, skin=0.5, device=device)
        run_md(atoms, calc, "nve", temperature_K=300.0, timestep_fs=0.5, steps=3)  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        result = run_md(
            atoms, calc, "nve", temperature_K=300.0, timestep_fs=0.5, steps=steps, init_velocities=False
        )
        out[label] = round(result.steps_per_s, 3)
        out[f"{label}_neighbour_list_builds"] = calc.builds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--molecules", nargs="+", default=["aspirin", "ethanol"])
    parser.add_argument("--models", nargs="+", default=["painn", "equivariant"])
    parser.add_argument("--budget-min", type=float, default=60.0, help="training wall clock per model, min")
    parser.add_argument("--max-epochs", type=int, default=100_000)
    parser.add_argument("--n-train", type=int, default=1000, help="training frames (fit + validation)")
    parser.add_argument("--n-val", type=int, default=50)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--energy-weight", type=float, default=1.0, help="(eV/atom)^2 loss weight")
    parser.add_argument("--force-weight", type=float, default=100.0, help="(eV/Å)^2 loss weight")
    parser.add_argument("--precision", default="32-true", help='"32-true" or "64-true"')
    parser.add_argument("--model-args", default="{}", help="JSON merged into every model's arguments")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--md-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA / "rmd17")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_rmd17")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and models, minutes, to /tmp")
    parser.add_argument(
        "--md-only",
        action="store_true",
        help="re-measure only the MD speed of the runs already in --runs and update --out (e.g. on an "
        "idle machine after trainings that shared it)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.n_train, args.n_val, args.n_test = (
            min(args.n_train, 30),
            min(args.n_val, 10),
            min(args.n_test, 20),
        )
        args.budget_min, args.md_steps, args.max_epochs = (
            min(args.budget_min, 0.25),
            5,
            min(args.max_epochs, 3),
        )
        if args.out == RESULTS:
            args.out = Path("/tmp/atomgraph_rmd17_smoke.json")
        if args.runs == ROOT / "runs" / "bench_rmd17":
            args.runs = Path("/tmp/atomgraph_rmd17_smoke_runs")
    if args.threads:
        torch.set_num_threads(args.threads)
    models = []
    for model in args.models:
        if model not in available_models():
            print(f"model {model!r} is not registered (available: {available_models()}); using schnet")
            model = "schnet"
        models.append(model)

    if args.md_only:
        remeasure_md(args, models)
        return
    results: dict = {}
    md: dict = {}
    for molecule in args.molecules:
        for model in models:
            run_dir = args.runs / f"{molecule}_{model}"
            run_dir.mkdir(parents=True, exist_ok=True)
            split_file = run_dir.parent / f"split_{molecule}_{args.n_train}_{args.n_val}_{args.n_test}.json"
            write_split(split_file, args.n_train, args.n_val, args.n_test, args.seed)
            start = time.perf_counter()
            train_and_evaluate(run_config(args, molecule, model, run_dir, split_file), progress=False)
            seconds = time.perf_counter() - start
            metrics = json.loads((run_dir / "metrics.json").read_text())["test"]
            results.setdefault(molecule, {})[model] = {
                "energy_mae_mev": round(metrics["energy"]["model"]["mae"], 3),
                "energy_mean_signed_error_mev": round(metrics["energy"]["offset"]["mean_signed_error"], 3),
                "energy_mae_offset_removed_mev": round(metrics["energy"]["model_offset_removed"]["mae"], 3),
                "energy_mae_mev_per_atom": round(metrics["energy_per_atom"]["model"]["mae"], 4),
                "force_mae_mev_per_a": round(metrics["forces"]["model"]["mae"], 3),
                "composition_baseline_energy_mae_mev": round(
                    metrics["energy"]["composition_baseline"]["mae"], 3
                ),
                "epochs": json.loads((run_dir / "metrics.json").read_text())["epochs"],
                "train_and_eval_seconds": round(seconds, 1),
                "run_dir": str(run_dir),
            }
            print(molecule, model, results[molecule][model], flush=True)
            if molecule == args.molecules[0]:
                md[model] = md_speed(run_dir, args.device, args.md_steps)
                results[molecule][model]["md_steps_per_s"] = md[model]
                print("MD", model, md[model], flush=True)

    report = {
        "benchmark": "rMD17 split 01 energies and forces; MD speed of the ASE calculator",
        "units": {
            "energy_mae_mev": "meV (total energy per molecule)",
            "energy_mean_signed_error_mev": "meV, mean(predicted - true) over the test frames",
            "energy_mae_offset_removed_mev": "meV, MAE after subtracting that mean",
            "energy_mae_mev_per_atom": "meV/atom",
            "force_mae_mev_per_a": "meV/Å (per Cartesian component)",
            "md_steps_per_s": "NVE steps per second (0.5 fs)",
        },
        "conversion": "rMD17 kcal/mol -> eV with 1 kcal/mol = 0.0433641 eV",
        "settings": {
            "train_frames": args.n_train - args.n_val,
            "validation_frames": args.n_val,
            "test_frames": args.n_test,
            "budget_min_per_model": args.budget_min,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "loss_weights": {"energy_per_atom": args.energy_weight, "forces": args.force_weight},
            "precision": args.precision,
            "model_args": {
                m: {**(SMOKE_ARGS if args.smoke else MODEL_ARGS).get(m, {}), **json.loads(args.model_args)}
                for m in models
            },
            "device": args.device,
            "torch_threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
            "torch": torch.__version__,
            "md": f"water box from water_pbc (192 atoms) and replicated 5x1x1 (960 atoms); model trained on "
            f"{args.molecules[0]}; {args.md_steps} steps after 3 warm-up steps",
            "smoke": args.smoke,
        },
        "published": PUBLISHED,
        "results": results,
        "md_steps_per_s": md,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"-> {args.out}")


def remeasure_md(args, models: list[str]) -> None:
    """``--md-only``: MD speed of the first molecule's runs, written into the existing report."""
    molecule = args.molecules[0]
    for model in models:
        md = md_speed(args.runs / f"{molecule}_{model}", args.device, args.md_steps)
        md["steps"] = args.md_steps
        report = json.loads(args.out.read_text())  # written after each model: a long run keeps its parts
        report["md_steps_per_s"][model] = md
        report["results"][molecule][model]["md_steps_per_s"] = md
        note = f"; {model} re-measured alone with --md-only ({torch.get_num_threads()} thread(s))"
        report["settings"]["md"] += note
        args.out.write_text(json.dumps(report, indent=2))
        print("MD", model, md, flush=True)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
