"""Seed 004's crystal inputs beyond the element: guessed oxidation states per site and the space group
as a state, registered as graph features (``data.graph: {preset: cgcnn_crystal, site_features:
[oxidation_state, coordination], state_features: [space_group]}``; the mechanism and the built-in
``coordination`` are :mod:`atomgraph.graphs.structure_features`'s).

* ``oxidation_state`` (per site, 2 columns): pymatgen's most probable charge-balanced assignment
  (``Composition.oxi_state_guesses``, ICSD statistics) of the reduced formula, the element's average
  state divided by 4, and a flag that is 1 when a guess exists (an element on its own is guessed as
  0). Intermetallics and other formulas with no charge-balanced assignment, and reduced formulas of
  more than :data:`MAX_GUESS_ATOMS` atoms (the search is combinatorial: a 40-atom formula took 4 s),
  get 0 with the flag 0 -- "none, flagged".
* ``space_group`` (state, 8 columns): spglib's space group at a tolerance of
  :data:`SYMPREC` Å, as the one-hot of its crystal system (triclinic ... cubic) and its number / 230;
  all zeros when spglib finds none.

Lattice parameters are read inside the models from the cell (``model.lattice: true``, CGCNN and
MEGNet), so they follow the structure a model is given, strained or not.
"""

from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms
from torch_geometric.data import Data

from atomgraph.graphs.structure_features import (
    StructureFeature,
    register_site_feature,
    register_state_feature,
)

MAX_GUESS_ATOMS = 24
"""Reduced formulas with more atoms get no oxidation-state guess (flagged)."""
OXIDATION_SCALE = 4.0
SYMPREC = 0.1
"""Å: spglib's distance tolerance for the space group (pymatgen's SpacegroupAnalyzer default)."""
CRYSTAL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")
_SYSTEM_ENDS = (2, 15, 74, 142, 167, 194, 230)
"""The last space group number of each crystal system (International Tables)."""


def guessed_oxidation_states(atoms: Atoms) -> dict[str, float] | None:
    """Element -> average oxidation state of pymatgen's most probable guess, or None (no guess). An
    element on its own is guessed as 0 (pymatgen's answer); intermetallics get no guess."""
    from pymatgen.core import Composition

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. noble gases without electronegativity
        composition = Composition(atoms.get_chemical_formula()).reduced_composition
        if composition.num_atoms > MAX_GUESS_ATOMS:
            return None
        try:
            guesses = composition.oxi_state_guesses(max_sites=-1)
        except ValueError:  # pymatgen refuses some compositions
            return None
    return {str(element): float(state) for element, state in guesses[0].items()} if guesses else None


def oxidation_state_columns(atoms: Atoms, graph: Data | None = None) -> np.ndarray:
    """``[N, 2]``: each site's guessed oxidation state / 4 and the flag (1: guessed, 0: none)."""
    states = guessed_oxidation_states(atoms)
    out = np.zeros((len(atoms), 2))
    if states is not None:
        out[:, 0] = [states[symbol] / OXIDATION_SCALE for symbol in atoms.get_chemical_symbols()]
        out[:, 1] = 1.0
    return out


def space_group_number(atoms: Atoms) -> int | None:
    """spglib's space group number (1..230) at :data:`SYMPREC`, or None (no cell, or none found)."""
    import spglib

    if not atoms.pbc.all() or atoms.cell.rank < 3:
        return None
    cell = (np.asarray(atoms.cell[:]), atoms.get_scaled_positions(wrap=True), atoms.numbers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dataset = spglib.get_symmetry_dataset(cell, symprec=SYMPREC)
        except Exception:  # newer spglib raises SpglibError where older ones return None
            return None
    return None if dataset is None else int(dataset.number)


def crystal_system(number: int) -> str:
    """The crystal system of space group ``number`` (1..230)."""
    if not 1 <= number <= 230:
        raise ValueError(f"space group numbers run from 1 to 230, got {number}")
    return CRYSTAL_SYSTEMS[int(np.searchsorted(_SYSTEM_ENDS, number))]


def space_group_columns(atoms: Atoms, graph: Data | None = None) -> np.ndarray:
    """``[8]``: one-hot crystal system (:data:`CRYSTAL_SYSTEMS` order) and space group number / 230."""
    out = np.zeros(len(CRYSTAL_SYSTEMS) + 1)
    number = space_group_number(atoms)
    if number is not None:
        out[CRYSTAL_SYSTEMS.index(crystal_system(number))] = 1.0
        out[-1] = number / 230.0
    return out


register_site_feature(
    StructureFeature(
        "oxidation_state",
        ("oxidation_state / 4", "oxidation_state_guessed"),
        oxidation_state_columns,
        "pymatgen's most probable oxidation state of the site's element (0 and flag 0 when none)",
        per_element=True,
        requires=("pymatgen",),
    )
)
register_state_feature(
    StructureFeature(
        "space_group",
        (*(f"crystal_system_{name}" for name in CRYSTAL_SYSTEMS), "space_group_number / 230"),
        space_group_columns,
        "spglib's space group (tolerance 0.1 Å): crystal system one-hot and number / 230",
        requires=("spglib",),
    )
)
