"""Simulation with trained potentials: an ASE calculator (with neighbour-list reuse), a committee
calculator with uncertainties, geometry/cell relaxation and NVE/NVT molecular dynamics.

Units are ASE's: Å, eV, eV/Å, eV/Å^3 (stress, ASE sign), fs for time steps, K for temperatures.

The calculators are imported on first use (``from atomgraph.md import Calculator`` loads the calculator
only; loading a trained run loads its model, never the trainer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atomgraph.lazy_names import lazy_names

# dynamics and relaxation need only ASE and numpy: bound here, so that the function ``relax`` is never
# shadowed by its submodule of the same name (a lazy attribute would be, once the submodule is imported)
from atomgraph.md.dynamics import MDResult, run_md
from atomgraph.md.relax import RelaxResult, relax

if TYPE_CHECKING:
    from atomgraph.md.calculator import Calculator, load_potential
    from atomgraph.md.committee import CommitteeCalculator

_LAZY = {"Calculator": "calculator", "load_potential": "calculator", "CommitteeCalculator": "committee"}

__all__ = [
    "Calculator",
    "CommitteeCalculator",
    "MDResult",
    "RelaxResult",
    "load_potential",
    "relax",
    "run_md",
]
__getattr__, __dir__ = lazy_names(__name__, _LAZY)
