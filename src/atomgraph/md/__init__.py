"""Simulation with trained potentials: an ASE calculator (with neighbour-list reuse), a committee
calculator with uncertainties, geometry/cell relaxation and NVE/NVT molecular dynamics.

Units are ASE's: Å, eV, eV/Å, eV/Å^3 (stress, ASE sign), fs for time steps, K for temperatures.

The calculators are imported on first use (``from atomgraph.md import Calculator`` loads the calculator
only; loading a trained run also loads the training stack it was saved from).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'atomgraph.md' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"atomgraph.md.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
