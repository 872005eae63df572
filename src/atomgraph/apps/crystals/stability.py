"""Stability screening as seed 004 describes it: energy above the convex hull from formation energies,
and new candidates by element substitution on known prototypes.

Energies above the hull (eV/atom) come from pymatgen's :class:`~pymatgen.analysis.phase_diagram.
PhaseDiagram`, one per chemical system: an entry is compared with the reference phases whose elements
are a subset of its own (the elements themselves at 0 eV/atom, formation energies being relative to
them), so a set of tens of thousands of crystals never needs one hull in ~90 dimensions. The
references are phases with known formation energies (e.g. a dataset's DFT labels); the entries can be
predictions for new candidates, or the same phases predicted, to check predicted hulls against DFT ones.

Substitution rule (stated, not learned): an element may be replaced by another element of the same
group of the periodic table, from periods ``periods`` (2-6 by default) and with a stable isotope (not
Tc, Pm, or beyond Bi) -- Na -> Li, K, Rb, Cs; Cl -> F, Br, I -- applied to every site of that element
at once, so the prototype's structure and stoichiometry are kept and the cell is left for the caller
to relax or rescale.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from ase import Atoms

from atomgraph.features.element_properties import group_and_period


def _pymatgen():
    try:
        from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
        from pymatgen.core import Composition
    except ImportError as error:  # an optional dependency (extra "bench")
        raise ImportError("energies above the hull need pymatgen (pip install pymatgen)") from error
    return PDEntry, PhaseDiagram, Composition


def energies_above_hull(
    formulas: Sequence[str],
    formation_energies: Sequence[float],
    reference_formulas: Sequence[str] = (),
    reference_energies: Sequence[float] = (),
) -> np.ndarray:
    """Energy above the hull (eV/atom) of each entry ``(formula, formation energy per atom in eV)``.

    The hull of each entry's chemical system is built from the references of that system -- or, without
    references, from the entries themselves (judged against each other: every value >= 0) -- with the
    elements at 0 eV/atom. Against references a value is negative where an entry lies below their hull
    (a candidate more stable than every known phase); NaN where its formation energy is not finite.
    """
    pd_entry, phase_diagram, composition = _pymatgen()
    if len(formulas) != len(formation_energies) or len(reference_formulas) != len(reference_energies):
        raise ValueError("each formula needs one formation energy")

    def entry(formula: str, energy: float):
        comp = composition(formula)
        return pd_entry(comp, float(energy) * comp.num_atoms)

    references = bool(len(reference_formulas))
    hull_formulas = reference_formulas if references else formulas
    hull_energies = reference_energies if references else formation_energies
    known = [entry(f, e) for f, e in zip(hull_formulas, hull_energies, strict=True) if np.isfinite(e)]
    by_system: dict[frozenset, list] = {}
    for item in known:
        by_system.setdefault(frozenset(el.symbol for el in item.composition.elements), []).append(item)
    diagrams: dict[frozenset, object] = {}
    out = np.full(len(formulas), np.nan)
    for k, (formula, energy) in enumerate(zip(formulas, formation_energies, strict=True)):
        if not np.isfinite(energy):
            continue
        target = entry(formula, energy)
        system = frozenset(el.symbol for el in target.composition.elements)
        if system not in diagrams:
            members = [pd_entry(composition(el), 0.0) for el in system]
            for size in range(1, len(system) + 1):
                for subset in itertools.combinations(sorted(system), size):
                    members += by_system.get(frozenset(subset), [])
            diagrams[system] = phase_diagram(members)
        out[k] = diagrams[system].get_e_above_hull(target, allow_negative=True)
    return out


#: elements without a stable isotope up to Bi, never substituted in
UNSTABLE = {"Tc", "Pm"}


def same_group_substitutions(
    symbols: Sequence[str], periods: tuple[int, int] = (2, 6)
) -> dict[str, list[str]]:
    """For each element, the other elements of its group within ``periods`` (the stated rule)."""
    table = {
        symbol: place
        for z, (symbol, place) in enumerate(group_and_period().items(), start=1)
        if z <= 83 and symbol not in UNSTABLE
    }
    out = {}
    for symbol in symbols:
        group, _ = table[symbol]
        out[symbol] = [
            other
            for other, (g, p) in table.items()
            if group is not None and g == group and other != symbol and periods[0] <= p <= periods[1]
        ]
    return out


def substituted(
    prototype: Atoms, substitutions: Mapping[str, Sequence[str]] | None = None
) -> Iterator[tuple[str, Atoms]]:
    """Every structure made from ``prototype`` by replacing each of its elements by itself or one of its
    substitutes (default: :func:`same_group_substitutions`), all sites of an element at once; the
    prototype itself is left out, and two substitutions never merge two of its elements into one.
    Yields ``(reduced formula, atoms)``."""
    symbols = sorted(set(prototype.get_chemical_symbols()))
    substitutions = substitutions or same_group_substitutions(symbols)
    choices = [[symbol, *substitutions.get(symbol, [])] for symbol in symbols]
    for picked in itertools.product(*choices):
        if list(picked) == symbols or len(set(picked)) < len(symbols):
            continue
        mapping = dict(zip(symbols, picked, strict=True))
        atoms = prototype.copy()
        atoms.set_chemical_symbols([mapping[s] for s in prototype.get_chemical_symbols()])
        yield atoms.get_chemical_formula(mode="metal", empirical=True), atoms
