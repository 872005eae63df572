"""Molecular dynamics with ASE: NVE (velocity Verlet) and NVT (Langevin)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet

ENSEMBLES = ("nve", "nvt")


@dataclass
class MDResult:
    """A finished run: steps, wall time (s), speed (steps/s), the recorded energies (eV):
    ``energies`` [K, 4] = (step, potential, kinetic, total) every ``record_interval`` steps, and the
    number of atoms."""

    steps: int
    seconds: float
    steps_per_s: float
    energies: np.ndarray
    natoms: int

    @property
    def drift_per_atom(self) -> float:
        """|E_total(end) - E_total(start)| / N in eV/atom (NVE energy conservation)."""
        return float(abs(self.energies[-1, 3] - self.energies[0, 3]) / self.natoms)


def run_md(
    atoms: Atoms,
    calculator: Calculator,
    ensemble: str = "nve",
    temperature_K: float = 300.0,
    timestep_fs: float = 0.5,
    steps: int = 1000,
    friction_per_fs: float = 0.01,
    trajectory: str | Path | None = None,
    logfile: str | Path | None = None,
    loginterval: int = 10,
    record_interval: int = 1,
    seed: int = 0,
    init_velocities: bool = True,
) -> MDResult:
    """Run ``steps`` MD steps of ``timestep_fs`` fs on ``atoms`` (in place).

    ensemble: "nve" (velocity Verlet) or "nvt" (Langevin at ``temperature_K`` K with friction
    ``friction_per_fs`` 1/fs). ``init_velocities`` draws Maxwell-Boltzmann velocities at
    ``temperature_K`` (seeded; no net momentum, and no net rotation for molecules). Trajectory (ASE
    .traj) and log (time in ps, energies in eV, temperature in K) are written every ``loginterval``.
    """
    ensemble = ensemble.lower()
    if ensemble not in ENSEMBLES:
        raise ValueError(f"unknown ensemble {ensemble!r}; choose from {ENSEMBLES}")
    rng = np.random.default_rng(seed)
    atoms.calc = calculator
    if init_velocities:
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
        Stationary(atoms)
        if not atoms.pbc.any():
            ZeroRotation(atoms)
    io = {
        "trajectory": str(trajectory) if trajectory else None,
        "logfile": str(logfile) if logfile else None,
        "loginterval": loginterval,
    }
    if ensemble == "nve":
        dyn = VelocityVerlet(atoms, timestep=timestep_fs * units.fs, **io)
    else:
        friction = friction_per_fs / units.fs
        dyn = Langevin(
            atoms,
            timestep_fs * units.fs,
            temperature_K=temperature_K,
            friction=friction,
            fixcm=False,  # ASE's fixcm=True is deprecated (biased sampling); the centre of mass may drift
            rng=rng,
            **io,
        )
    records: list[tuple[float, float, float, float]] = []

    def record() -> None:
        potential, kinetic = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        records.append((dyn.nsteps, potential, kinetic, potential + kinetic))

    dyn.attach(record, interval=record_interval)
    start = time.perf_counter()
    dyn.run(steps)
    seconds = time.perf_counter() - start
    return MDResult(steps, seconds, steps / max(seconds, 1e-12), np.array(records), len(atoms))


def md_file(
    run_dir: str | Path,
    structure: str | Path,
    output: str | Path | None = None,
    device: str = "cpu",
    skin: float = 0.5,
    **options,
) -> MDResult:
    """``atomgraph md``: molecular dynamics of the first structure of a file with a trained run's
    potential; the final frame goes to ``output`` (extended XYZ) if given; ``options`` go to
    :func:`run_md`."""
    import ase.io

    from atomgraph.md.calculator import Calculator
    from atomgraph.md.relax import read_structure

    atoms = read_structure(structure)
    result = run_md(atoms, Calculator(run_dir, skin=skin, device=device), **options)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        ase.io.write(output, atoms)
    return result
