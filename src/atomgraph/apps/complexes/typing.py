"""Atom typing for interaction detection: donors, acceptors, charged groups, hydrophobic atoms, rings.

:class:`AtomTyping` holds the same per-atom flags for a protein (typed from PDB residue and atom names
plus covalent bonds inferred from distances) and a ligand (typed from its RDKit molecule), so the
interaction rules in :mod:`atomgraph.apps.complexes.interactions` treat both sides alike.

Rules (heavy atoms; hydrogens are never donors/acceptors themselves):

* donor: ligand N/O with at least one hydrogen (explicit or implicit); protein: backbone N (not Pro),
  the side-chain donors of :data:`~atomgraph.apps.complexes.residues.SIDECHAIN_DONORS` (Asp/Glu O, His N and
  Cys S only when a bonded H or the residue name says they are protonated), water O; other HETATM
  groups: N/O with a bonded H (or every N/O when the group has no hydrogens).
* acceptor: ligand O with formal charge <= 0; ligand N with formal charge <= 0 that has a lone pair
  outside conjugation: aromatic with two neighbours, a triple bond, a non-aromatic double bond, or sp3
  (amines; amide and aniline N are sp2 in RDKit and excluded). Protein: backbone O/OXT, the side-chain
  acceptors of :data:`~atomgraph.apps.complexes.residues.SIDECHAIN_ACCEPTORS` (a His N with a bonded H is
  not one), water O, HETATM O.
* charge (+1/-1/0): ligand atoms with a formal charge not cancelled by a bonded opposite charge (nitro
  groups are neutral), spread over conjugated partners of the same element on a shared neighbour (both
  carboxylate O, all guanidinium N); protein Lys NZ, Arg NE/NH1/NH2, protonated His ND1/NE2, Asp
  OD1/OD2, Glu OE1/OE2, C-terminal O/OXT, the N-terminal N and metal ions, with protonation states
  read from hydrogens or residue names (LYN, ASH, GLH, HIP, ...) where present.
* hydrophobic: C, S, F, Cl, Br, I with no covalent N or O neighbour.
* aromatic rings: ligand rings of 5 or 6 aromatic atoms; protein Phe, Tyr, Trp (two rings), His.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.data import covalent_radii
from rdkit import Chem
from scipy.spatial import cKDTree

from atomgraph.apps.complexes.protein import Protein
from atomgraph.apps.complexes.residues import (
    AMINO_ACIDS,
    AROMATIC_RINGS,
    BACKBONE_ACCEPTORS,
    BACKBONE_ATOMS,
    BACKBONE_DONORS,
    METALS,
    NEGATIVE_ATOMS,
    POSITIVE_ATOMS,
    PROTONATED_HIS,
    SIDECHAIN_ACCEPTORS,
    SIDECHAIN_DONORS,
    canonical_residue,
    is_water,
)

HYDROPHOBIC_ELEMENTS = frozenset({6, 16, 9, 17, 35, 53})
"""C, S, F, Cl, Br, I."""
POLAR_ELEMENTS = frozenset({7, 8})
BOND_TOLERANCE = 0.45
"""Å added to the sum of covalent radii when inferring protein bonds."""


@dataclass
class AtomTyping:
    """Per-atom interaction flags of one molecule (N atoms).

    donor, acceptor, hydrophobic, aromatic, backbone: [N] bool; charge: [N] int (+1, -1, 0, the sign of
    the charged group the atom belongs to); bonds: [P, 2] int covalent bonds (i < j); h_parent: [N] int,
    the heavy atom a hydrogen is bonded to (-1 for heavy atoms and unbonded H); rings: aromatic rings as
    int arrays of atom indices.
    """

    donor: np.ndarray
    acceptor: np.ndarray
    charge: np.ndarray
    hydrophobic: np.ndarray
    aromatic: np.ndarray
    backbone: np.ndarray
    bonds: np.ndarray
    h_parent: np.ndarray
    rings: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.donor)

    def hydrogens(self, atom: int) -> np.ndarray:
        """Indices of the hydrogens bonded to ``atom``."""
        return np.flatnonzero(self.h_parent == atom)

    def subset(self, indices: np.ndarray) -> AtomTyping:
        """The typing of atoms ``indices`` (new numbering 0..len-1); bonds, H parents and rings that
        leave the subset are dropped."""
        indices = np.asarray(indices, dtype=np.int64)
        new = np.full(len(self), -1, dtype=np.int64)
        new[indices] = np.arange(len(indices))
        bonds = new[self.bonds] if len(self.bonds) else self.bonds.reshape(0, 2)
        bonds = bonds[(bonds >= 0).all(axis=1)] if len(bonds) else bonds
        parent = self.h_parent[indices]
        parent = np.where(parent >= 0, new[np.maximum(parent, 0)], -1)
        rings = tuple(new[r] for r in self.rings if (new[r] >= 0).all())
        return AtomTyping(
            donor=self.donor[indices],
            acceptor=self.acceptor[indices],
            charge=self.charge[indices],
            hydrophobic=self.hydrophobic[indices],
            aromatic=self.aromatic[indices],
            backbone=self.backbone[indices],
            bonds=bonds,
            h_parent=parent,
            rings=rings,
        )


def infer_bonds(positions: np.ndarray, numbers: np.ndarray, tolerance: float = BOND_TOLERANCE) -> np.ndarray:
    """Covalent bonds from distances: [P, 2] int pairs (i < j) with d < r_i + r_j + tolerance (Å).

    Radii are ASE's covalent radii; H-H pairs are never bonded.
    """
    positions = np.asarray(positions, dtype=float)
    if len(positions) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    radii = covalent_radii[np.asarray(numbers)]
    reach = min(2 * float(radii.max()) + tolerance, 3.2)
    pairs = cKDTree(positions).query_pairs(reach, output_type="ndarray").astype(np.int64)
    if len(pairs) == 0:
        return pairs.reshape(0, 2)
    i, j = pairs[:, 0], pairs[:, 1]
    d = np.linalg.norm(positions[i] - positions[j], axis=1)
    keep = (d < radii[i] + radii[j] + tolerance) & (d > 0.4) & ~((numbers[i] == 1) & (numbers[j] == 1))
    pairs = np.sort(pairs[keep], axis=1)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _hydrogen_parents(numbers: np.ndarray, positions: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """For every H the nearest bonded heavy atom (-1 for heavy atoms or lone H)."""
    parent = np.full(len(numbers), -1, dtype=np.int64)
    best = np.full(len(numbers), np.inf)
    for a, b in bonds:
        for h, heavy in ((a, b), (b, a)):
            if numbers[h] == 1 and numbers[heavy] > 1:
                d = float(np.linalg.norm(positions[h] - positions[heavy]))
                if d < best[h]:
                    best[h], parent[h] = d, heavy
    return parent


def _neighbours(n: int, bonds: np.ndarray) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in range(n)]
    for a, b in bonds:
        out[a].append(int(b))
        out[b].append(int(a))
    return out


def _hydrophobic(numbers: np.ndarray, neighbours: list[list[int]]) -> np.ndarray:
    return np.array(
        [
            int(z) in HYDROPHOBIC_ELEMENTS
            and not any(int(numbers[k]) in POLAR_ELEMENTS for k in neighbours[i])
            for i, z in enumerate(numbers)
        ],
        dtype=bool,
    )


# ------------------------------------------------------------------------------------------ protein


def protein_typing(protein: Protein) -> AtomTyping:
    """Typing of every atom of ``protein`` (cached on the object; compute it on the whole protein, then
    take :meth:`AtomTyping.subset` for a pocket so that bonds across the pocket edge are known)."""
    cached = protein._cache.get("typing")
    if cached is not None:
        return cached
    n = len(protein)
    numbers = protein.numbers
    bonds = infer_bonds(protein.positions, numbers)
    neighbours = _neighbours(n, bonds)
    h_parent = _hydrogen_parents(numbers, protein.positions, bonds)
    n_h = np.bincount(h_parent[h_parent >= 0], minlength=n)
    donor = np.zeros(n, dtype=bool)
    acceptor = np.zeros(n, dtype=bool)
    charge = np.zeros(n, dtype=np.int64)
    backbone = np.zeros(n, dtype=bool)
    aromatic = np.zeros(n, dtype=bool)
    rings: list[np.ndarray] = []
    first_residue_of_chain: set[int] = set()
    seen_chains: set[str] = set()

    order = np.argsort(protein.residue_index, kind="stable")
    boundaries = np.flatnonzero(np.diff(protein.residue_index[order])) + 1
    for atoms in np.split(order, boundaries):
        if len(atoms) == 0:
            continue
        raw_name = str(protein.residue_names[atoms[0]]).upper()
        name = canonical_residue(raw_name)
        chain = str(protein.chain_ids[atoms[0]])
        by_name = {str(protein.atom_names[a]): int(a) for a in atoms if numbers[a] > 1}
        has_h = bool((numbers[atoms] == 1).any())

        def protonated(atom_name: str, by_name: dict[str, int] = by_name) -> bool:
            return atom_name in by_name and n_h[by_name[atom_name]] > 0

        if is_water(raw_name):
            for a in by_name.values():
                if numbers[a] == 8:
                    donor[a] = acceptor[a] = True
            continue
        if name not in AMINO_ACIDS:
            _type_hetero_group(atoms, numbers, n_h, has_h, donor, acceptor, charge, protein)
            continue
        if chain not in seen_chains:
            seen_chains.add(chain)
            first_residue_of_chain.add(int(protein.residue_index[atoms[0]]))
        for atom_name, a in by_name.items():
            backbone[a] = atom_name in BACKBONE_ATOMS
            if atom_name in BACKBONE_DONORS and name != "PRO":
                donor[a] = True
            if atom_name in BACKBONE_ACCEPTORS:
                acceptor[a] = True
        for atom_name in SIDECHAIN_DONORS.get(name, ()):
            if atom_name not in by_name:
                continue
            a = by_name[atom_name]
            if name in ("ASP", "GLU", "HIS", "CYS"):
                by_residue_name = (
                    raw_name in ("ASH", "GLH", "HIP", "HSP", "HSH")
                    or (raw_name in ("HID", "HSD") and atom_name == "ND1")
                    or (raw_name in ("HIE", "HSE") and atom_name == "NE2")
                )
                if has_h:
                    donor[a] = protonated(atom_name)
                elif name == "HIS":
                    donor[a] = True  # tautomer unknown without hydrogens
                elif name == "CYS":
                    donor[a] = not any(numbers[k] == 16 for k in neighbours[a])  # not in a disulfide
                else:
                    donor[a] = by_residue_name
            else:
                donor[a] = True
        for atom_name in SIDECHAIN_ACCEPTORS.get(name, ()):
            if atom_name in by_name:
                a = by_name[atom_name]
                acceptor[a] = not (name == "HIS" and protonated(atom_name))
        _protein_charges(raw_name, name, by_name, n_h, has_h, charge, protonated)
        for ring_names in AROMATIC_RINGS.get(name, ()):
            if all(r in by_name for r in ring_names):
                ring = np.array([by_name[r] for r in ring_names], dtype=np.int64)
                rings.append(ring)
                aromatic[ring] = True
    protein_has_h = bool((numbers == 1).any())
    for a in np.flatnonzero(protein.atom_names == "N"):  # N-terminal amine (not bonded to a cap or residue)
        if int(protein.residue_index[a]) in first_residue_of_chain:
            linked = any(
                numbers[k] == 6 and protein.residue_index[k] != protein.residue_index[a]
                for k in neighbours[a]
            )
            if not linked and (n_h[a] >= 3 or not protein_has_h):
                charge[a] = 1
    backbone |= (h_parent >= 0) & backbone[np.maximum(h_parent, 0)]
    typing = AtomTyping(
        donor=donor & (numbers > 1),
        acceptor=acceptor & (numbers > 1),
        charge=charge,
        hydrophobic=_hydrophobic(numbers, neighbours),
        aromatic=aromatic,
        backbone=backbone,
        bonds=bonds,
        h_parent=h_parent,
        rings=tuple(rings),
    )
    protein._cache["typing"] = typing
    return typing


def _protein_charges(raw_name, name, by_name, n_h, has_h, charge, protonated) -> None:
    """Charged side chains and C-terminus of one amino-acid residue (sets ``charge`` in place)."""
    if name == "LYS" and "NZ" in by_name:
        neutral = raw_name == "LYN" or (has_h and n_h[by_name["NZ"]] < 3)
        charge[by_name["NZ"]] = 0 if neutral else 1
    elif name == "ARG" and raw_name != "ARN":
        for atom_name in POSITIVE_ATOMS["ARG"]:
            if atom_name in by_name:
                charge[by_name[atom_name]] = 1
    elif name == "HIS":
        both = has_h and protonated("ND1") and protonated("NE2")
        if raw_name in PROTONATED_HIS or both:
            for atom_name in POSITIVE_ATOMS["HIS"]:
                if atom_name in by_name:
                    charge[by_name[atom_name]] = 1
    elif name in NEGATIVE_ATOMS:
        names = NEGATIVE_ATOMS[name]
        neutral = raw_name in ("ASH", "GLH") or any(protonated(a) for a in names)
        if not neutral:
            for atom_name in names:
                if atom_name in by_name:
                    charge[by_name[atom_name]] = -1
    if "OXT" in by_name and not protonated("OXT"):
        charge[by_name["OXT"]] = -1
        if "O" in by_name:
            charge[by_name["O"]] = -1


def _type_hetero_group(atoms, numbers, n_h, has_h, donor, acceptor, charge, protein) -> None:
    """Generic typing of a non-amino-acid group (cofactor, ion, modified residue) by element."""
    for a in atoms:
        z = int(numbers[a])
        if z in (7, 8):
            donor[a] = n_h[a] > 0 if has_h else True
            acceptor[a] = z == 8 or (n_h[a] == 0)
        elif str(protein.elements[a]) in METALS:
            charge[a] = 1


# ------------------------------------------------------------------------------------------- ligand


def _n_acceptor(atom: Chem.Atom) -> bool:
    if atom.GetFormalCharge() > 0:
        return False
    if atom.GetIsAromatic():
        return atom.GetDegree() + atom.GetTotalNumHs() == 2
    bonds = [b.GetBondType() for b in atom.GetBonds()]
    if Chem.BondType.TRIPLE in bonds or Chem.BondType.DOUBLE in bonds:
        return True
    return atom.GetHybridization() == Chem.HybridizationType.SP3


def _charged_groups(mol: Chem.Mol) -> np.ndarray:
    """Sign of the charged group of every atom (see the module docstring)."""
    charge = np.zeros(mol.GetNumAtoms(), dtype=np.int64)
    for atom in mol.GetAtoms():
        q = atom.GetFormalCharge()
        if q == 0 or any(n.GetFormalCharge() * q < 0 for n in atom.GetNeighbors()):
            continue
        sign = 1 if q > 0 else -1
        charge[atom.GetIdx()] = sign
        for bond in atom.GetBonds():
            if not bond.GetIsConjugated():
                continue
            centre = bond.GetOtherAtom(atom)
            for partner_bond in centre.GetBonds():
                partner = partner_bond.GetOtherAtom(centre)
                if (
                    partner.GetIdx() != atom.GetIdx()
                    and partner.GetAtomicNum() == atom.GetAtomicNum()
                    and partner.GetFormalCharge() == 0
                    and partner_bond.GetIsConjugated()
                ):
                    charge[partner.GetIdx()] = sign
    return charge


def ligand_typing(mol: Chem.Mol) -> AtomTyping:
    """Typing of every atom of a sanitised RDKit ligand (hydrogens explicit or implicit)."""
    n = mol.GetNumAtoms()
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    bonds = np.array(
        sorted(
            (min(b.GetBeginAtomIdx(), b.GetEndAtomIdx()), max(b.GetBeginAtomIdx(), b.GetEndAtomIdx()))
            for b in mol.GetBonds()
        ),
        dtype=np.int64,
    ).reshape(-1, 2)
    neighbours = _neighbours(n, bonds)
    h_parent = np.full(n, -1, dtype=np.int64)
    donor = np.zeros(n, dtype=bool)
    acceptor = np.zeros(n, dtype=bool)
    for atom in mol.GetAtoms():
        i, z = atom.GetIdx(), atom.GetAtomicNum()
        if z == 1:
            heavy = [k for k in neighbours[i] if numbers[k] > 1]
            h_parent[i] = heavy[0] if heavy else -1
        elif z in (7, 8):
            donor[i] = atom.GetTotalNumHs(includeNeighbors=True) > 0
            acceptor[i] = atom.GetFormalCharge() <= 0 if z == 8 else _n_acceptor(atom)
    rings = []
    aromatic = np.zeros(n, dtype=bool)
    for ring in mol.GetRingInfo().AtomRings():  # a sanitised Mol has its rings perceived
        if len(ring) in (5, 6) and all(mol.GetAtomWithIdx(k).GetIsAromatic() for k in ring):
            rings.append(np.array(ring, dtype=np.int64))
            aromatic[list(ring)] = True
    return AtomTyping(
        donor=donor,
        acceptor=acceptor,
        charge=_charged_groups(mol),
        hydrophobic=_hydrophobic(numbers, neighbours),
        aromatic=aromatic,
        backbone=np.zeros(n, dtype=bool),
        bonds=bonds,
        h_parent=h_parent,
        rings=tuple(rings),
    )
