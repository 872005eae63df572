"""Geometry optimisation with ASE optimisers, optionally relaxing the cell too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.filters import ExpCellFilter, FrechetCellFilter
from ase.optimize import BFGS, FIRE, LBFGS

from atomgraph.md.dynamics import max_force_sigma

OPTIMIZERS = {"bfgs": BFGS, "lbfgs": LBFGS, "fire": FIRE}
CELL_FILTERS = {"frechet": FrechetCellFilter, "exp": ExpCellFilter}


@dataclass
class RelaxResult:
    """Outcome of a relaxation: the relaxed structure (``atoms``, relaxed in place), whether the largest
    force (eV/Å; generalised force with the cell) fell below ``fmax``, optimiser steps and energies (eV);
    with a committee, the largest per-atom force spread at the end (eV/Å) and whether the relaxation
    stopped because it exceeded ``force_sigma_limit``."""

    atoms: Atoms
    converged: bool
    steps: int
    energy_start: float
    energy_end: float
    fmax_end: float
    force_sigma: float | None = None
    stopped_uncertain: bool = False


def relax(
    atoms: Atoms,
    calculator: Calculator,
    fmax: float = 0.05,
    steps: int = 500,
    optimizer: str = "bfgs",
    cell: bool = False,
    cell_filter: str = "frechet",
    trajectory: str | Path | None = None,
    logfile: str | Path | None = None,
    force_sigma_limit: float | None = None,
) -> RelaxResult:
    """Relax ``atoms`` (in place) until every force is below ``fmax`` eV/Å or after ``steps`` steps, or
    (``force_sigma_limit``, eV/Å, with a committee calculator) when the largest per-atom force spread
    exceeds that limit: the structure has left what the model knows.

    optimizer: bfgs, lbfgs or fire. ``cell=True`` relaxes the cell too (zero external pressure) through
    ASE's FrechetCellFilter ("frechet") or ExpCellFilter ("exp"); it needs a 3D-periodic cell.
    """
    if optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {sorted(OPTIMIZERS)}")
    if cell and not atoms.pbc.all():
        raise ValueError("cell relaxation needs a cell periodic in all three directions")
    atoms.calc = calculator
    energy_start = float(atoms.get_potential_energy())
    target = CELL_FILTERS[cell_filter](atoms) if cell else atoms
    opt = OPTIMIZERS[optimizer.lower()](
        target,
        trajectory=str(trajectory) if trajectory else None,
        logfile=str(logfile) if logfile else None,
    )
    if force_sigma_limit is not None and max_force_sigma(calculator) is None:
        raise ValueError("force_sigma_limit needs a calculator with a force spread (an ensemble's run)")
    converged = stopped = False
    for converged in opt.irun(fmax=fmax, steps=steps):  # noqa: B007 (its last value is the answer)
        sigma = max_force_sigma(calculator)
        if force_sigma_limit is not None and sigma is not None and sigma > force_sigma_limit:
            stopped = True
            break
    fmax_end = float(np.sqrt((target.get_forces() ** 2).sum(axis=1).max()))
    return RelaxResult(
        atoms, bool(converged) and not stopped, int(opt.nsteps), energy_start,
        float(atoms.get_potential_energy()), fmax_end, max_force_sigma(calculator), stopped,
    )  # fmt: skip


def read_structure(path: str | Path) -> Atoms:
    """The first structure of a file, without stored labels (energy, forces, stress, calculator)."""
    from atomgraph.structures import read_all

    atoms = read_all(path)[0]
    atoms.calc = None
    for key in ("energy", "stress", "free_energy"):
        atoms.info.pop(key, None)
    if "forces" in atoms.arrays:
        del atoms.arrays["forces"]
    return atoms


def relax_file(
    run_dir: str | Path,
    structure: str | Path,
    output: str | Path,
    device: str = "cpu",
    skin: float = 0.5,
    compile: bool = False,
    **options,
) -> RelaxResult:
    """``atomgraph relax``: relax the first structure of a file with a trained run's potential and
    write it (extended XYZ with energy, forces and stress) to ``output``; ``options`` go to :func:`relax`;
    ``compile``: the model's forward through torch.compile (:class:`Calculator`)."""
    import ase.io

    from atomgraph.md.committee import calculator_for

    atoms = read_structure(structure)
    result = relax(atoms, calculator_for(run_dir, skin=skin, device=device, compile=compile), **options)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(output, atoms)
    return result
