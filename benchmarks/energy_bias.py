"""Where a trained potential's mean signed energy error comes from: training, validation and test rows.

The energy offset of a potential is fitted on the training rows after training
(:mod:`atomgraph.training.energy_offset`), so its mean signed error (MSE) there is zero by construction.
A non-zero MSE on held-out rows is then either a shift of the whole held-out set (the same on validation
and test rows) or regression to the mean (the residual grows with the distance of a frame's energy from
the training mean). For each split this prints MAE, MSE with its standard error, the split's mean
energy relative to the training mean, and the slope of residual against energy; for the test rows, how
much of the MSE the slope explains.

    python benchmarks/energy_bias.py runs/bench_rmd17/ethanol_painn --out benchmarks/results/x.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch_geometric.loader import DataLoader

from atomgraph.runs import TrainedRun
from atomgraph.training.datasets import load_dataset


def energies(module, rows, batch_size: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted energies (eV) of ``rows``."""
    true, pred = [], []
    for batch in DataLoader(rows, batch_size=batch_size):
        with torch.enable_grad():  # the potential's compute path differentiates for forces
            energy = module.compute(batch, forces=False)["energy"]
        pred.append(energy.detach().double())
        true.append(batch.y[:, module.column].double())
    return torch.cat(true).numpy(), torch.cat(pred).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    run = TrainedRun.load(args.run_dir)
    module = run.module.eval()
    dataset = load_dataset(run.config, progress=False)
    split = json.loads((args.run_dir / "split.json").read_text())
    values = {
        name: energies(module, dataset[torch.as_tensor(split[name])]) for name in ("train", "val", "test")
    }
    train_mean = values["train"][0].mean()
    out: dict = {"run_dir": str(args.run_dir), "unit": "meV", "splits": {}}
    for name, (true, pred) in values.items():
        residual = pred - true
        slope = float(np.polyfit(true - train_mean, residual, 1)[0])
        out["splits"][name] = {
            "rows": len(true),
            "mae": 1000 * float(np.abs(residual).mean()),
            "mean_signed_error": 1000 * float(residual.mean()),
            "standard_error": 1000 * float(residual.std(ddof=1) / np.sqrt(len(residual))),
            "mean_energy_minus_training_mean": 1000 * float(true.mean() - train_mean),
            "residual_slope_per_energy": slope,
        }
        entry = out["splits"][name]
        shift = entry["mean_energy_minus_training_mean"]
        print(
            f"{name:>5}: {len(true)} rows, MAE {entry['mae']:.2f} meV, MSE {entry['mean_signed_error']:+.3f} "
            f"± {entry['standard_error']:.3f} meV, mean energy {shift:+.1f} meV from the training mean, "
            f"residual slope {slope:+.4f}"
        )
    test = out["splits"]["test"]
    test["mse_explained_by_slope"] = (
        test["residual_slope_per_energy"] * test["mean_energy_minus_training_mean"]
    )
    print(f"test MSE explained by regression to the mean: {test['mse_explained_by_slope']:+.3f} meV")
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))
        print(f"-> {args.out}")


if __name__ == "__main__":
    main()
