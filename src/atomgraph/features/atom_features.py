"""Per-atom feature vectors for RDKit molecules.

:class:`AtomFeaturizer` turns an ``rdkit.Chem.Mol`` into a float tensor ``[n_atoms, dim]`` (rows in the
Mol's atom order) whose columns are described by a :class:`~atomgraph.features.layout.FeatureLayout`.
With the default element vocabulary the layout is (``dim = 47``):

=================  =====  ===================================================================
block              width  content
=================  =====  ===================================================================
element            13     one-hot: H, B, C, N, O, F, Si, P, S, Cl, Br, I, other
formal_charge      6      one-hot: -2, -1, 0, +1, +2, other
gasteiger_charge   1      Gasteiger partial charge (e); 0 where RDKit has no parameters (NaN/inf)
hybridization      7      one-hot: s, sp, sp2, sp3, sp3d, sp3d2, other (unspecified included)
total_num_hs       6      one-hot: 0, 1, 2, 3, 4, other (implicit + explicit H, H atoms included)
aromatic           1      0/1
chirality          4      one-hot: unspecified, CW, CCW, other
mass               1      atomic mass (u) / 100
degree             7      one-hot: 0, 1, 2, 3, 4, 5, other (total degree: H neighbours included)
in_ring            1      0/1
=================  =====  ===================================================================

``AtomFeaturizer(hbond=True)`` appends Gilmer et al.'s hydrogen-bond blocks (``dim = 49``): ``donor``
and ``acceptor`` (0/1), the ``Donor`` and ``Acceptor`` feature families of RDKit's
``BaseFeatures.fdef`` (SMARTS patterns: N-H and O-H donors; O, N and halide acceptors).

The Mol is expected to carry explicit hydrogens (``Chem.AddHs``) but need not: hydrogen counts and
degrees include implicit hydrogens, and the Gasteiger charge of implicit hydrogens is added to their
heavy atom, so a heavy atom gets (nearly) the same features either way and the charges of the atoms
always sum to the net formal charge.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from rdkit import Chem, RDConfig, rdBase
from rdkit.Chem import ChemicalFeatures

from atomgraph.features.gasteiger import gasteiger_charges_of, rdkit_gasteiger_charges
from atomgraph.features.layout import (
    FeatureLayout,
    LayoutIntrospection,
    one_hot_block,
    scalar_block,
)
from atomgraph.features.prepared import prepared_copy

__all__ = [
    "ATOM_FEATURE_SETS",
    "DEFAULT_ATOM_FEATURIZER",
    "DEFAULT_ELEMENTS",
    "AtomFeaturizer",
    "AtomRecords",
    "atom_records",
    "atom_rows",
    "gasteiger_charges",
    "hbond_roles",
    "record_charges",
]

DEFAULT_ELEMENTS: tuple[str, ...] = ("H", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Br", "I")
"""Element vocabulary of the default featurizer (organic chemistry); anything else is ``element=other``."""

FORMAL_CHARGES: tuple[int, ...] = (-2, -1, 0, 1, 2)
HYBRIDIZATIONS: tuple[Chem.HybridizationType, ...] = (
    Chem.HybridizationType.S,
    Chem.HybridizationType.SP,
    Chem.HybridizationType.SP2,
    Chem.HybridizationType.SP3,
    Chem.HybridizationType.SP3D,
    Chem.HybridizationType.SP3D2,
)
HYBRIDIZATION_LABELS: tuple[str, ...] = ("s", "sp", "sp2", "sp3", "sp3d", "sp3d2")
NUM_HS: tuple[int, ...] = (0, 1, 2, 3, 4)
CHIRAL_TAGS: tuple[Chem.ChiralType, ...] = (
    Chem.ChiralType.CHI_UNSPECIFIED,
    Chem.ChiralType.CHI_TETRAHEDRAL_CW,
    Chem.ChiralType.CHI_TETRAHEDRAL_CCW,
)
CHIRAL_LABELS: tuple[str, ...] = ("unspecified", "CW", "CCW")
DEGREES: tuple[int, ...] = (0, 1, 2, 3, 4, 5)


def _charge_label(charge: int) -> str:
    return f"{charge:+d}" if charge else "0"


def _atomic_number(element: str | int) -> int:
    table = Chem.GetPeriodicTable()
    if isinstance(element, str):
        try:
            z = table.GetAtomicNumber(element)
        except RuntimeError:
            z = 0
        if z <= 0 or table.GetElementSymbol(z) != element:
            raise ValueError(f"unknown element symbol {element!r}")
        return z
    z = int(element)
    if not 1 <= z <= 118:
        raise ValueError(f"unknown atomic number {z}")
    return z


def gasteiger_charges(mol: Chem.Mol, fold_implicit_hs: bool = True) -> np.ndarray:
    """Gasteiger-Marsili partial charges (units of e), shape ``[n_atoms]``, float64: RDKit's
    (:func:`~atomgraph.features.gasteiger.rdkit_gasteiger_charges`), of a copy (the Mol is not changed).
    With ``fold_implicit_hs`` the charge of an atom's implicit hydrogens is added to it, so the charges
    sum to the net formal charge whether or not hydrogens are explicit. An element without Gasteiger
    parameters makes its fragment's charges NaN or infinite; those are returned as 0.
    """
    return rdkit_gasteiger_charges(prepared_copy(mol), fold_implicit_hs)


@cache
def _feature_factory() -> ChemicalFeatures.MolChemicalFeatureFactory:
    return ChemicalFeatures.BuildFeatureFactory(os.path.join(RDConfig.RDDataDir, "BaseFeatures.fdef"))


def hbond_roles(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray]:
    """Hydrogen-bond donor and acceptor flags of every atom (``[n_atoms]`` bool each), from the
    ``Donor`` / ``Acceptor`` families of RDKit's ``BaseFeatures.fdef``."""
    factory = _feature_factory()
    flags = []
    with rdBase.BlockLogs():  # an over-valent perceived atom is matched as it is, not printed per molecule
        for family in ("Donor", "Acceptor"):
            flag = np.zeros(mol.GetNumAtoms(), dtype=bool)
            for feature in factory.GetFeaturesForMol(mol, includeOnly=family):
                flag[list(feature.GetAtomIds())] = True
            flags.append(flag)
    return flags[0], flags[1]


#: the columns of :attr:`AtomRecords.values`, one row per atom
RECORD_COLUMNS: tuple[str, ...] = (
    "atomic_number", "formal_charge", "hybridization", "total_num_hs", "chiral_tag", "total_degree",
    "aromatic", "in_ring", "mass",
)  # fmt: skip


@dataclass(frozen=True)
class AtomRecords:
    """What the atom featurizers read of one or more molecules, atom after atom, molecule after molecule.

    ``values`` [N, 9] float64 (:data:`RECORD_COLUMNS`: RDKit's integer codes, flags and the mass in u),
    ``charges`` [N] Gasteiger charges (e), ``counts`` [M] atoms per molecule, and ``roles`` [N, 2]
    hydrogen-bond donor/acceptor flags (None unless asked for).
    """

    values: np.ndarray
    charges: np.ndarray
    counts: np.ndarray
    roles: np.ndarray | None = None

    @classmethod
    def of(
        cls,
        values: list[tuple] | np.ndarray,
        charges: np.ndarray,
        counts: list[int],
        roles: list[np.ndarray] | None = None,
    ) -> AtomRecords:
        """The records of molecules read one by one: :func:`atom_rows` of all of them, their charges
        [N], their atoms per molecule and (``roles`` not None) per molecule its donor/acceptor flags."""
        return cls(
            np.asarray(values, dtype=np.float64).reshape(-1, len(RECORD_COLUMNS)),
            charges,
            np.array(counts, dtype=np.int64),
            _stacked_roles(roles),
        )


def _stacked_roles(roles: list[np.ndarray] | None) -> np.ndarray | None:
    """Per-molecule donor/acceptor flags [n, 2] as one [N, 2] array (None when not read)."""
    if roles is None:
        return None
    return np.concatenate(roles) if roles else np.zeros((0, 2), dtype=bool)


def atom_rows(work: Chem.Mol) -> list[tuple]:
    """The :data:`RECORD_COLUMNS` of every atom of a prepared Mol
    (:func:`~atomgraph.features.prepared.prepared_copy`), by index (RDKit's atom sequence is slow)."""
    return [
        (
            atom.GetAtomicNum(), atom.GetFormalCharge(), int(atom.GetHybridization()),
            atom.GetTotalNumHs(includeNeighbors=True), int(atom.GetChiralTag()), atom.GetTotalDegree(),
            atom.GetIsAromatic(), atom.IsInRing(), atom.GetMass(),
        )
        for atom in map(work.GetAtomWithIdx, range(work.GetNumAtoms()))
    ]  # fmt: skip


def atom_records(prepared: Sequence[Chem.Mol], hbond: bool = False) -> AtomRecords:
    """:class:`AtomRecords` of prepared Mols (:func:`~atomgraph.features.prepared.prepared_copy`; RDKit
    sets their Gasteiger properties): one pass over each molecule's atoms."""
    values: list[tuple] = []
    charges, counts, roles = [], [], []
    for work in prepared:
        n = work.GetNumAtoms()
        counts.append(n)
        charges.append(rdkit_gasteiger_charges(work) if n else np.zeros(0))
        values += atom_rows(work)
        if hbond:
            roles.append(np.stack(hbond_roles(work), axis=1) if n else np.zeros((0, 2), dtype=bool))
    return AtomRecords.of(
        values, np.concatenate(charges) if charges else np.zeros(0), counts, roles if hbond else None
    )


def record_charges(
    atoms: np.ndarray, counts: np.ndarray, bonds: np.ndarray, bond_counts: np.ndarray
) -> np.ndarray:
    """The Gasteiger charges [N] of many molecules at once, from their atom records [N, 9]
    (:data:`RECORD_COLUMNS`), atoms per molecule [M], bond records [B, 6]
    (:func:`~atomgraph.features.bond_features.bond_array`) and bonds per molecule [M]."""
    return gasteiger_charges_of(
        atoms[:, 0], atoms[:, 1], atoms[:, 2], atoms[:, 3], counts, bonds, bond_counts
    )


class AtomFeaturizer(LayoutIntrospection):
    """Callable ``rdkit.Chem.Mol -> torch.Tensor [n_atoms, dim]`` (float, default dtype).

    Args:
        elements: element vocabulary of the ``element`` one-hot, as symbols or atomic numbers; any other
            element falls into ``element=other``. Default :data:`DEFAULT_ELEMENTS`.

    The column layout is in :attr:`layout` (see the module docstring for the blocks); :attr:`names` gives
    one name per column (``"element=C"``, ``"formal_charge=+1"``, ``"mass"``, ...) and :attr:`slices`
    maps block name -> column slice.

    Notes:
        * Hydrogens count as ``s`` hybridised: RDKit marks hydrogens added by ``Chem.AddHs`` as
          ``UNSPECIFIED`` but hydrogens parsed from ``[H]`` as ``S``; both are reported as ``s``. Any
          other unspecified hybridisation goes to ``hybridization=other``.
        * ``total_num_hs`` and ``degree`` count implicit and explicit hydrogens alike
          (``GetTotalNumHs(includeNeighbors=True)``, ``GetTotalDegree()``).
        * ``chirality`` is RDKit's chiral tag (``@`` = CCW, ``@@`` = CW in SMILES), not a CIP R/S label.
    """

    def __init__(self, elements: Sequence[str | int] = DEFAULT_ELEMENTS, hbond: bool = False) -> None:
        table = Chem.GetPeriodicTable()
        atomic_numbers = tuple(_atomic_number(e) for e in elements)
        if len(set(atomic_numbers)) != len(atomic_numbers):
            raise ValueError(f"duplicate elements in {list(elements)!r}")
        self._atomic_numbers = atomic_numbers
        self._elements = tuple(table.GetElementSymbol(z) for z in atomic_numbers)
        self._layout = FeatureLayout(
            [
                one_hot_block("element", self._elements),
                one_hot_block("formal_charge", [_charge_label(c) for c in FORMAL_CHARGES]),
                scalar_block("gasteiger_charge"),
                one_hot_block("hybridization", HYBRIDIZATION_LABELS),
                one_hot_block("total_num_hs", NUM_HS),
                scalar_block("aromatic"),
                one_hot_block("chirality", CHIRAL_LABELS),
                scalar_block("mass"),
                one_hot_block("degree", DEGREES),
                scalar_block("in_ring"),
                *([scalar_block("donor"), scalar_block("acceptor")] if hbond else []),
            ]
        )
        self.hbond = hbond
        self._start = {name: s.start for name, s in self._layout.slices.items()}
        # per one-hot block: (value offset, table) with table[value + offset] = the value's column; the
        # values are clipped to the table, whose two ends (and unlisted values) are the "other" column
        self._tables = [
            self._column_table(name, [int(v) for v in values])
            for name, values in (
                ("element", atomic_numbers), ("formal_charge", FORMAL_CHARGES),
                ("hybridization", HYBRIDIZATIONS), ("total_num_hs", NUM_HS), ("chirality", CHIRAL_TAGS),
                ("degree", DEGREES),
            )
        ]  # fmt: skip

    def _column_table(self, block: str, values: list[int]) -> tuple[int, np.ndarray]:
        """``(offset, table)``: ``table[clip(v + offset)]`` is the column of integer value ``v`` in
        ``block``; values outside ``values`` (and beyond its range) give the block's "other" column."""
        low, high = min([*values, 0]) - 1, max([*values, 0]) + 1
        table = np.full(high - low + 1, self._start[block] + len(values), dtype=np.int64)
        table[np.asarray(values, dtype=np.int64) - low] = self._start[block] + np.arange(len(values))
        return -low, table

    @property
    def elements(self) -> tuple[str, ...]:
        """Element symbols of the ``element`` one-hot (without ``other``)."""
        return self._elements

    def __call__(self, mol: Chem.Mol) -> torch.Tensor:
        """Features of every atom of ``mol``: ``[n_atoms, dim]``, rows in atom index order."""
        features = self.encode(atom_records([prepared_copy(mol)], self.hbond))
        return torch.from_numpy(features).to(torch.get_default_dtype())

    def encode(self, records: AtomRecords) -> np.ndarray:
        """The feature rows ``[N, dim]`` (float64) of :func:`atom_records`' atoms, all at once."""
        if self.hbond and records.roles is None:
            raise ValueError("this featurizer has H-bond columns: call atom_records(..., hbond=True)")
        values = records.values
        n = len(values)
        x = np.zeros((n, self.dim), dtype=np.float64)
        codes = values[:, :8].astype(np.int64)
        # hydrogens added by AddHs are UNSPECIFIED, parsed ones S: both s
        hydrogen = (codes[:, 0] == 1) & (codes[:, 2] == int(Chem.HybridizationType.UNSPECIFIED))
        codes[hydrogen, 2] = int(Chem.HybridizationType.S)
        rows = np.arange(n)
        for k, (offset, table) in enumerate(self._tables):
            x[rows, table[np.clip(codes[:, k] + offset, 0, len(table) - 1)]] = 1.0
        start = self._start
        x[:, start["aromatic"]] = codes[:, 6]
        x[:, start["in_ring"]] = codes[:, 7]
        x[:, start["mass"]] = values[:, 8] / 100.0
        x[:, start["gasteiger_charge"]] = records.charges
        if self.hbond:
            x[:, start["donor"]], x[:, start["acceptor"]] = records.roles[:, 0], records.roles[:, 1]
        return x

    def __repr__(self) -> str:
        return f"AtomFeaturizer(elements={list(self._elements)}, hbond={self.hbond}, dim={self.dim})"


DEFAULT_ATOM_FEATURIZER = AtomFeaturizer()
"""The featurizer with :data:`DEFAULT_ELEMENTS` (``dim = 47``)."""

ATOM_FEATURE_SETS: dict[str, AtomFeaturizer] = {
    "standard": DEFAULT_ATOM_FEATURIZER,
    "hbond": AtomFeaturizer(hbond=True),
}
"""The atom feature sets a bond-graph :class:`~atomgraph.graphs.spec.GraphSpec` can name
(``atom_features``): the 47 standard columns, or those plus Gilmer's donor/acceptor flags (49)."""
