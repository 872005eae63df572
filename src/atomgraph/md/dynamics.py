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
ON_UNCERTAIN = ("stop", "flag")


def max_force_sigma(calculator: Calculator) -> float | None:
    """The largest per-atom force uncertainty (eV/Å) of the calculator's last results: max over atoms of
    the norm of the per-component committee standard deviations ``forces_std`` [N, 3]; None for a
    calculator without a spread."""
    spread = calculator.results.get("forces_std")
    return None if spread is None else float(np.sqrt((np.asarray(spread) ** 2).sum(axis=1)).max())


@dataclass
class MDResult:
    """A finished run: steps, wall time (s), speed (steps/s), the recorded energies (eV):
    ``energies`` [K, 4] = (step, potential, kinetic, total) every ``record_interval`` steps, and the
    number of atoms. With a committee (an ensemble's run): ``force_sigma`` [K] the largest per-atom
    force spread (eV/Å) at those steps, ``uncertain_steps`` the steps where it exceeded the threshold,
    and ``stopped`` whether the run stopped there (``on_uncertain="stop"``) before ``steps``."""

    steps: int
    seconds: float
    steps_per_s: float
    energies: np.ndarray
    natoms: int
    force_sigma: np.ndarray | None = None
    uncertain_steps: tuple[int, ...] = ()
    stopped: bool = False

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
    force_sigma_limit: float | None = None,
    on_uncertain: str = "stop",
) -> MDResult:
    """Run ``steps`` MD steps of ``timestep_fs`` fs on ``atoms`` (in place).

    ``force_sigma_limit`` (eV/Å; needs a committee calculator, e.g. an ensemble's run): after every step
    the largest per-atom force spread (:func:`max_force_sigma`) is compared with it; above it the run
    stops there (``on_uncertain="stop"``: the model is extrapolating, the trajectory can no longer be
    trusted) or records the step and goes on (``"flag"``, e.g. to collect frames for active learning).

    ensemble: "nve" (velocity Verlet) or "nvt" (Langevin at ``temperature_K`` K with friction
    ``friction_per_fs`` 1/fs). ``init_velocities`` draws Maxwell-Boltzmann velocities at
    ``temperature_K`` (seeded; no net momentum, and no net rotation for molecules). Trajectory (ASE
    .traj) and log (time in ps, energies in eV, temperature in K) are written every ``loginterval``.
    """
    ensemble = ensemble.lower()
    if ensemble not in ENSEMBLES:
        raise ValueError(f"unknown ensemble {ensemble!r}; choose from {ENSEMBLES}")
    if on_uncertain not in ON_UNCERTAIN:
        raise ValueError(f"unknown on_uncertain {on_uncertain!r}; choose from {ON_UNCERTAIN}")
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
    sigmas: list[float] = []

    def record() -> None:
        potential, kinetic = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        records.append((dyn.nsteps, potential, kinetic, potential + kinetic))
        sigma = max_force_sigma(calculator)
        if sigma is not None:
            sigmas.append(sigma)

    dyn.attach(record, interval=record_interval)
    if force_sigma_limit is not None and max_force_sigma(_evaluated(atoms, calculator)) is None:
        raise ValueError("force_sigma_limit needs a calculator with a force spread (an ensemble's run)")
    uncertain: list[int] = []
    stopped = False
    start = time.perf_counter()
    for _ in dyn.irun(steps):
        sigma = max_force_sigma(calculator) if force_sigma_limit is not None else None
        if sigma is not None and sigma > force_sigma_limit:
            uncertain.append(int(dyn.nsteps))
            if on_uncertain == "stop":
                stopped = True
                break
    seconds = time.perf_counter() - start
    done = int(dyn.nsteps)
    return MDResult(
        done, seconds, done / max(seconds, 1e-12), np.array(records), len(atoms),
        np.array(sigmas) if sigmas else None, tuple(uncertain), stopped,
    )  # fmt: skip


def _evaluated(atoms: Atoms, calculator: Calculator) -> Calculator:
    atoms.get_forces()
    return calculator


def md_file(
    run_dir: str | Path,
    structure: str | Path,
    output: str | Path | None = None,
    device: str = "cpu",
    skin: float = 0.5,
    compile: bool = False,
    **options,
) -> MDResult:
    """``atomgraph md``: molecular dynamics of the first structure of a file with a trained run's
    potential; the final frame goes to ``output`` (extended XYZ) if given; ``options`` go to
    :func:`run_md`; ``compile``: the model's forward through torch.compile (:class:`Calculator`)."""
    import ase.io

    from atomgraph.md.committee import calculator_for
    from atomgraph.md.relax import read_structure

    atoms = read_structure(structure)
    result = run_md(atoms, calculator_for(run_dir, skin=skin, device=device, compile=compile), **options)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        ase.io.write(output, atoms)
    return result
