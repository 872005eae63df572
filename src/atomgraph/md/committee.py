"""A committee of potentials: the mean prediction, and the spread between members as uncertainty."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes

from atomgraph.md.calculator import Calculator
from atomgraph.training.ensemble_module import is_ensemble, member_dirs


class CommitteeCalculator(AseCalculator):
    """Mean energy, forces and stress of several potentials, with their standard deviation.

    members: run directories, potential PredictionModules or atomgraph :class:`Calculator` s (e.g. models
    trained with different seeds), or one ensemble's run directory (``atomgraph train --ensemble N``:
    its members); ``calculator_kwargs`` (skin, device, ...) go to those it builds.

    Results: ``energy``, ``free_energy`` (eV), ``forces`` [N, 3] eV/Å, ``stress`` (Voigt, eV/Å^3,
    periodic cells) as committee means; ``energy_std`` (eV), ``forces_std`` [N, 3] (eV/Å, per
    component) and ``stress_std`` as the population standard deviation over members (0 for identical
    members); ``energies`` [M], the members' energies.
    """

    implemented_properties: ClassVar[list[str]] = [
        "energy",
        "free_energy",
        "forces",
        "stress",
        "energy_std",
        "forces_std",
        "stress_std",
        "energies",
    ]

    def __init__(
        self, members: str | Path | Sequence[str | Path | torch.nn.Module | Calculator], **calculator_kwargs
    ):
        super().__init__()
        if isinstance(members, str | Path):
            if not is_ensemble(members):
                raise ValueError(f"{members}: not an ensemble's run directory (no ensemble.json)")
            members = member_dirs(members)
        if len(members) < 2:
            raise ValueError(f"a committee needs at least two members, got {len(members)}")
        self._derived = {"free_energy", "energy_std", "forces_std", "stress_std", "energies"}
        self.members = [
            m if isinstance(m, Calculator) else Calculator(m, **calculator_kwargs) for m in members
        ]

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if "stress" in properties and not self.atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs a cell periodic in all three directions")
        results = []
        for member in self.members:
            member.calculate(
                self.atoms, sorted({"energy", "forces", *properties} - self._derived), all_changes
            )
            results.append(member.results)
        energies = np.array([r["energy"] for r in results])
        forces = np.stack([r["forces"] for r in results])
        self.results = {
            "energy": float(energies.mean()),
            "free_energy": float(energies.mean()),
            "energies": energies,
            "energy_std": float(energies.std()),
            "forces": forces.mean(0),
            "forces_std": forces.std(0),
        }
        if all("stress" in r for r in results):
            stresses = np.stack([r["stress"] for r in results])
            self.results["stress"] = stresses.mean(0)
            self.results["stress_std"] = stresses.std(0)


def calculator_for(run_dir: str | Path, **calculator_kwargs) -> AseCalculator:
    """The ASE calculator of a trained potential: a :class:`CommitteeCalculator` of its members for an
    ensemble's run directory (energies, forces and their spread), else a :class:`Calculator`."""
    if is_ensemble(run_dir):
        return CommitteeCalculator(run_dir, **calculator_kwargs)
    return Calculator(run_dir, **calculator_kwargs)
