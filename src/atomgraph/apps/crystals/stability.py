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

import contextlib
import itertools
import warnings
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


@contextlib.contextmanager
def _quiet_pymatgen() -> Iterator[None]:
    """Without pymatgen's note on elements that have no Pauling electronegativity (He, Ne, Ar: it
    sorts formulas by electronegativity; nothing here depends on it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No Pauling electronegativity")
        yield


class ConvexHulls:
    """The hulls of known phases ``(formula, formation energy per atom in eV)``, one per chemical system
    as it is asked for (built once, kept), with the elements at 0 eV/atom."""

    def __init__(self, formulas: Sequence[str], formation_energies: Sequence[float]):
        self._entry, self._diagram, self._composition = _pymatgen()
        if len(formulas) != len(formation_energies):
            raise ValueError("each formula needs one formation energy")
        self._by_system: dict[frozenset, list] = {}
        with _quiet_pymatgen():
            for formula, energy in zip(formulas, formation_energies, strict=True):
                if np.isfinite(energy):
                    item = self.entry(formula, energy)
                    self._by_system.setdefault(self.system(item), []).append(item)
        self._diagrams: dict[frozenset, object] = {}

    def entry(self, formula: str, energy: float):
        composition = self._composition(formula)
        return self._entry(composition, float(energy) * composition.num_atoms)

    @staticmethod
    def system(item) -> frozenset:
        return frozenset(element.symbol for element in item.composition.elements)

    def above(self, formulas: Sequence[str], formation_energies: Sequence[float]) -> np.ndarray:
        """Energy above the hull (eV/atom) of each entry, negative below it, NaN without an energy."""
        with _quiet_pymatgen():
            return self._above(formulas, formation_energies)

    def _above(self, formulas: Sequence[str], formation_energies: Sequence[float]) -> np.ndarray:
        out = np.full(len(formulas), np.nan)
        for k, (formula, energy) in enumerate(zip(formulas, formation_energies, strict=True)):
            if not np.isfinite(energy):
                continue
            target = self.entry(formula, energy)
            system = self.system(target)
            if system not in self._diagrams:
                members = [self._entry(self._composition(element), 0.0) for element in system]
                for size in range(1, len(system) + 1):
                    for subset in itertools.combinations(sorted(system), size):
                        members += self._by_system.get(frozenset(subset), [])
                self._diagrams[system] = self._diagram(members)
            out[k] = self._diagrams[system].get_e_above_hull(target, allow_negative=True)
        return out


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
    if len(formulas) != len(formation_energies):
        raise ValueError("each formula needs one formation energy")
    if len(reference_formulas):
        return ConvexHulls(reference_formulas, reference_energies).above(formulas, formation_energies)
    return ConvexHulls(formulas, formation_energies).above(formulas, formation_energies)


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
