"""What every framework's worker shares: the frames, the loss, the timing loop. Imports no framework
(each worker runs in its own environment: benchmarks/peers/install.sh)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from ase import Atoms
from ase.io import read


def read_frames(path: str) -> list[Atoms]:
    """The frames of an extended XYZ file written by run.py: energy (eV) in ``atoms.info["energy"]``,
    forces (eV/Å) in ``atoms.arrays["forces"]`` (labels, not a calculator: no framework reads them)."""
    frames = read(path, index=":", format="extxyz")
    for atoms in frames:
        calc = atoms.calc
        if calc is not None:  # ase reads energy/forces into a SinglePointCalculator
            atoms.info["energy"] = float(calc.results["energy"])
            atoms.arrays["forces"] = np.asarray(calc.results["forces"])
            atoms.calc = None
    return frames


def labels(frames: list[Atoms], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies [B] and forces [N, 3] of ``frames``, in the order frameworks batch them (frame by frame)."""
    energy = torch.tensor([a.info["energy"] for a in frames], dtype=dtype)
    forces = torch.from_numpy(np.concatenate([a.arrays["forces"] for a in frames])).to(dtype)
    return energy, forces


def energy_force_loss(
    energy: torch.Tensor,
    forces: torch.Tensor,
    true_energy: torch.Tensor,
    true_forces: torch.Tensor,
    natoms: torch.Tensor,
) -> torch.Tensor:
    """The same loss for every framework: mean ((E - E_ref) / N)^2 + mean (F - F_ref)^2 (eV, eV/Å)."""
    per_atom = (energy.to(true_energy.dtype) - true_energy) / natoms
    return per_atom.pow(2).mean() + (forces.to(true_forces.dtype) - true_forces).pow(2).mean()


def time_calls(call: Callable[[], None], repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls (CPU: torch ops are synchronous; CUDA: synchronised)."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - start)
    return out


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class Bench:
    """One framework's model on one system: ``call()`` runs a training step or an inference.

    mode "train": energy + forces (autograd, graph kept), the loss above, backward, Adam step;
    "infer": energy + forces, no parameter gradients kept; "md": ``steps`` velocity-Verlet steps
    (0.5 fs) with the framework's ASE calculator on the first frame.
    """

    params: int = 0
    steps_per_call: int = 1

    def call(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class ModelBench(Bench):
    """Train/infer on one prebuilt batch: ``forward()`` returns (energy [B], forces [N, 3])."""

    def __init__(self, model: torch.nn.Module, forward: Callable, frames: list[Atoms], mode: str, dtype):
        self.model = model
        self.forward = forward
        self.mode = mode
        self.params = count_parameters(model)
        device = next(model.parameters()).device  # the labels go where the model computes
        self.true_energy, self.true_forces = (t.to(device) for t in labels(frames, torch.float64))
        self.natoms = torch.tensor([len(a) for a in frames], dtype=torch.float64, device=device)
        if mode == "train":
            model.train()
            self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        elif mode == "infer":
            model.eval()
        else:
            raise ValueError(f"unknown mode {mode!r}")

    def call(self) -> None:
        if self.mode == "train":
            self.optimizer.zero_grad(set_to_none=True)
            energy, forces = self.forward(True)
            loss = energy_force_loss(energy, forces, self.true_energy, self.true_forces, self.natoms)
            loss.backward()
            self.optimizer.step()
        else:
            energy, forces = self.forward(False)
            float(energy.detach().sum()), forces.detach()


class MDBench(Bench):
    """``steps`` NVE steps (0.5 fs) of the first frame with an ASE calculator."""

    def __init__(self, calculator, frames: list[Atoms], steps: int, params: int):
        from ase import units
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
        from ase.md.verlet import VelocityVerlet

        atoms = frames[0].copy()
        atoms.calc = calculator
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
        self.dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
        self.steps_per_call = steps
        self.params = params

    def call(self) -> None:
        self.dynamics.run(self.steps_per_call)
