"""Simulation with trained potentials: an ASE calculator (with neighbour-list reuse), a committee
calculator with uncertainties, geometry/cell relaxation and NVE/NVT molecular dynamics.

Units are ASE's: Å, eV, eV/Å, eV/Å^3 (stress, ASE sign), fs for time steps, K for temperatures.

The names below are imported on first use (``from atomgraph.md import Calculator`` loads the calculator
only; loading a trained run also loads the training stack it was saved from).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atomgraph.md.calculator import Calculator, load_potential
    from atomgraph.md.committee import CommitteeCalculator
    from atomgraph.md.dynamics import MDResult, run_md
    from atomgraph.md.relax import RelaxResult, relax

_WHERE = {
    "Calculator": "calculator",
    "load_potential": "calculator",
    "CommitteeCalculator": "committee",
    "MDResult": "dynamics",
    "run_md": "dynamics",
    "RelaxResult": "relax",
    "relax": "relax",
}

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
    if name not in _WHERE:
        raise AttributeError(f"module 'atomgraph.md' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"atomgraph.md.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
