"""Where a trained potential's mean signed energy error comes from: training, validation and test rows.

The energy offset of a potential is fitted on the training rows after training
(:mod:`atomgraph.training.energy_offset`), so its mean signed error (MSE) there is zero by construction.
A non-zero MSE on held-out rows is then either a shift of the whole held-out set (the same on validation
and test rows) or regression to the mean (the residual grows with the distance of a frame's energy from
the training mean). For each split this prints MAE, MSE with its standard error, the split's mean
energy relative to the training mean, and the slope of residual against energy; for the test rows, how
much of the MSE the slope explains. Then, per test frame, the distance (aligned RMSD) to the nearest training
frame and the residual estimated from that frame's residual and the force errors at both ends (the path
integral of :func:`path_integral`): the MSE per quartile of that distance, observed and estimated.

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


def frames(module, rows, batch_size: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Positions [F, n, 3] Å and force errors (predicted - true) [F, n, 3] eV/Å of same-size frames."""
    positions, errors = [], []
    for batch in DataLoader(rows, batch_size=batch_size):
        forces = module.compute(batch, forces=True)["forces"].detach().double()
        n = batch.num_nodes // batch.num_graphs
        positions.append(batch.pos.double().view(-1, n, 3))
        errors.append((forces - batch.forces.double()).view(-1, n, 3))
    return torch.cat(positions).numpy(), torch.cat(errors).numpy()


def aligned(moving: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kabsch: rotations [R, 3, 3] and RMSDs [R] (Å) putting the centred frame ``moving`` [n, 3] best onto
    each centred frame of ``reference`` [R, n, 3] (atoms in the same order)."""
    covariance = np.einsum("ni,rnj->rij", moving, reference)
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))
    u[:, :, -1] *= sign[:, None]
    rotations = u @ vt  # moving @ rotation ~ reference
    rmsd = np.sqrt(((moving @ rotations - reference) ** 2).sum(axis=(1, 2)) / moving.shape[0])
    return rotations, rmsd


def path_integral(module, train_rows, test_rows, train_residual, test_residual) -> dict:
    """The held-out residual predicted from the nearest training frame and the force errors alone.

    A potential's energy residual r = E_pred - E_true has gradient -(F_pred - F_true), so along the straight
    path from a training frame x_n to a test frame x_t (aligned onto it), r(x_t) = r(x_n) - integral of
    the force error. The trapezoid rule with the force errors at both ends (both frames are labelled):
    r(x_t) ~ r(x_n) - (dF(x_t) + dF(x_n)) . (x_t - x_n) / 2. If this reproduces the held-out mean signed
    error, the shift is in the learned forces (the surface's shape between the frames), not in the constant.
    """
    train_pos, train_err = frames(module, train_rows)
    test_pos, test_err = frames(module, test_rows)
    train_pos = train_pos - train_pos.mean(axis=1, keepdims=True)
    test_pos = test_pos - test_pos.mean(axis=1, keepdims=True)
    predicted, distance = np.empty(len(test_pos)), np.empty(len(test_pos))
    for t, (pos, err) in enumerate(zip(test_pos, test_err, strict=True)):
        rotations, rmsd = aligned(pos, train_pos)
        n = int(rmsd.argmin())
        step = pos @ rotations[n] - train_pos[n]
        predicted[t] = train_residual[n] - 0.5 * float(((err @ rotations[n] + train_err[n]) * step).sum())
        distance[t] = rmsd[n]
    quartile = np.searchsorted(np.quantile(distance, [0.25, 0.5, 0.75]), distance)
    return {
        "observed_mean_signed_error": 1000 * float(test_residual.mean()),
        "predicted_mean_signed_error": 1000 * float(predicted.mean()),
        "correlation_observed_predicted": float(np.corrcoef(predicted, test_residual)[0, 1]),
        "by_nearest_rmsd_quartile": [
            {
                "rmsd_angstrom": [float(distance[quartile == q].min()), float(distance[quartile == q].max())],
                "observed_mean_signed_error": 1000 * float(test_residual[quartile == q].mean()),
                "observed_mae": 1000 * float(np.abs(test_residual[quartile == q]).mean()),
                "predicted_mean_signed_error": 1000 * float(predicted[quartile == q].mean()),
            }
            for q in range(4)
        ],
    }


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
    residuals = {name: true_pred[1] - true_pred[0] for name, true_pred in values.items()}
    rows = {name: dataset[torch.as_tensor(split[name])] for name in ("train", "test")}
    path = path_integral(module, rows["train"], rows["test"], residuals["train"], residuals["test"])
    out["path_integral"] = path
    print(
        "test MSE from the nearest training frame and the force errors: "
        f"{path['predicted_mean_signed_error']:+.3f} meV "
        f"(observed {path['observed_mean_signed_error']:+.3f}; per-frame correlation "
        f"{path['correlation_observed_predicted']:.2f}); by distance to the nearest training frame:"
    )
    for q in path["by_nearest_rmsd_quartile"]:
        low, high = q["rmsd_angstrom"]
        print(
            f"  RMSD {low:.3f}-{high:.3f} Å: MSE {q['observed_mean_signed_error']:+.3f} meV of MAE "
            f"{q['observed_mae']:.2f} (path integral {q['predicted_mean_signed_error']:+.3f})"
        )
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))
        print(f"-> {args.out}")


if __name__ == "__main__":
    main()
