"""Simulation with trained potentials: an ASE calculator (with neighbour-list reuse), a committee
calculator with uncertainties, geometry/cell relaxation and NVE/NVT molecular dynamics.

Units are ASE's: Å, eV, eV/Å, eV/Å^3 (stress, ASE sign), fs for time steps, K for temperatures.
"""

from atomgraph.md.calculator import Calculator, load_potential
from atomgraph.md.committee import CommitteeCalculator
from atomgraph.md.dynamics import MDResult, run_md
from atomgraph.md.relax import RelaxResult, relax

__all__ = [
    "Calculator",
    "CommitteeCalculator",
    "MDResult",
    "RelaxResult",
    "load_potential",
    "relax",
    "run_md",
]
