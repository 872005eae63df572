"""Proteins from PDB/mmCIF files with gemmi: flat per-atom arrays plus the structure for writing back.

gemmi is used rather than RDKit or Biopython: it reads PDB and mmCIF quickly (a 9,000-atom protein in a
few ms), never fails on valence or charge perception (RDKit's PDB reader sanitises the protein as one
molecule and rejects e.g. unusual protonation states or metal sites), handles alternative locations,
insertion codes and hydrogens, and writes a structure back with new B-factors. Bonds are not taken from
the file: :mod:`atomgraph.apps.complexes.typing` infers them from covalent radii.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np

from atomgraph.apps.complexes.errors import ComplexError
from atomgraph.apps.complexes.residues import is_water


@dataclass
class Protein:
    """A protein (or a pocket of one) as per-atom arrays, all of length N in file order.

    positions [N, 3] float (Å); numbers [N] int (atomic numbers); elements, atom_names, residue_names,
    chain_ids, insertion_codes [N] str; residue_numbers [N] int; hetero [N] bool (HETATM);
    residue_index [N] int: the residue each atom belongs to, numbered 0.. in file order over the *whole*
    protein it was read as (so a pocket keeps the numbering of its protein); atom_ids [N] int: the atom's
    position in the structure as read (gemmi keeps each residue's atoms together, so this is file order
    except for files that list a residue's atoms apart, e.g. all hydrogens at the end), used to write
    values back with :func:`write_protein_bfactors`. ``structure`` is the gemmi structure read (first model),
    ``source`` the file.
    """

    positions: np.ndarray
    numbers: np.ndarray
    elements: np.ndarray
    atom_names: np.ndarray
    residue_names: np.ndarray
    residue_numbers: np.ndarray
    insertion_codes: np.ndarray
    chain_ids: np.ndarray
    hetero: np.ndarray
    residue_index: np.ndarray
    atom_ids: np.ndarray
    source: str = "protein"
    structure: gemmi.Structure | None = field(default=None, repr=False, compare=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def heavy(self) -> np.ndarray:
        """[N] bool: not hydrogen."""
        return self.numbers > 1

    def subset(self, indices: np.ndarray) -> Protein:
        """The atoms ``indices`` (int array, kept in that order) as a new :class:`Protein`."""
        indices = np.asarray(indices, dtype=np.int64)
        arrays = {
            name: getattr(self, name)[indices]
            for name in (
                "positions",
                "numbers",
                "elements",
                "atom_names",
                "residue_names",
                "residue_numbers",
                "insertion_codes",
                "chain_ids",
                "hetero",
                "residue_index",
                "atom_ids",
            )
        }
        return Protein(**arrays, source=self.source, structure=self.structure)

    def with_positions(self, positions: np.ndarray) -> Protein:
        """A copy with new coordinates [N, 3] (Å); typing caches are dropped."""
        out = self.subset(np.arange(len(self)))
        out.positions = np.asarray(positions, dtype=float).reshape(len(self), 3).copy()
        return out

    def residue_label(self, atom: int) -> str:
        """``"LYS A 42"`` (with insertion code) for atom ``atom``."""
        icode = self.insertion_codes[atom].strip()
        return f"{self.residue_names[atom]} {self.chain_ids[atom]} {self.residue_numbers[atom]}{icode}"

    def residues(self) -> np.ndarray:
        """Distinct ``residue_index`` values in order of first appearance: [R] int."""
        _, first = np.unique(self.residue_index, return_index=True)
        return self.residue_index[np.sort(first)]


def read_protein(
    path: str | os.PathLike[str], waters: bool = False, hydrogens: bool = True, model: int = 0
) -> Protein:
    """Read a protein from a PDB or mmCIF file (gemmi; the format is guessed from the extension).

    Args:
        path: the file.
        waters: keep water molecules (HOH, WAT, ...). Off by default.
        hydrogens: keep hydrogens present in the file (they are never added).
        model: the model (0-based) of a multi-model file.

    Alternative locations: the first conformer of each atom is kept. Everything else in the file
    (HETATM cofactors, ions, modified residues) is kept; a copy of the ligand inside the protein file is
    removed later when a complex is assembled (see :func:`~atomgraph.apps.complexes.complex.make_complex`).

    Raises:
        ComplexError: missing or unreadable file, an unknown element, or no atoms.
    """
    path = Path(path)
    if not path.is_file():
        raise ComplexError(f"{path}: protein file not found", source=str(path))
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as error:
        raise ComplexError(f"{path}: gemmi could not read the protein: {error}", source=str(path)) from error
    if len(structure) <= model:
        raise ComplexError(f"{path}: no model {model} (the file has {len(structure)})", source=str(path))
    if len(structure) > 1:
        for index in reversed(range(len(structure))):
            if index != model:
                del structure[index]
    structure.remove_alternative_conformations()
    if not hydrogens:
        structure.remove_hydrogens()
    if not waters:
        structure.remove_waters()
    structure.remove_empty_chains()
    return protein_from_structure(structure, str(path))


def protein_from_structure(structure: gemmi.Structure, source: str = "protein") -> Protein:
    """Flat arrays of the first model of a gemmi structure (see :class:`Protein`)."""
    columns: dict[str, list] = {
        k: [] for k in ("pos", "z", "el", "name", "res", "num", "icode", "chain", "het")
    }
    residue_index: list[int] = []
    unknown: list[str] = []
    n_residue = 0
    for chain in structure[0]:
        for residue in chain:
            for atom in residue:
                z = atom.element.atomic_number
                if z <= 0:
                    unknown.append(f"{atom.name} of {residue.name} {chain.name} {residue.seqid.num}")
                columns["pos"].append(atom.pos.tolist())
                columns["z"].append(z)
                columns["el"].append(atom.element.name)
                columns["name"].append(atom.name)
                columns["res"].append(residue.name)
                columns["num"].append(residue.seqid.num)
                columns["icode"].append(residue.seqid.icode.strip())
                columns["chain"].append(chain.name)
                columns["het"].append(residue.het_flag == "H" or is_water(residue.name))
                residue_index.append(n_residue)
            n_residue += 1
    if unknown:
        raise ComplexError(f"{source}: unknown element for atoms {unknown[:5]}", source=source)
    if not columns["z"]:
        raise ComplexError(f"{source}: no atoms in the protein file", source=source)
    n = len(columns["z"])
    return Protein(
        positions=np.array(columns["pos"], dtype=float).reshape(n, 3),
        numbers=np.array(columns["z"], dtype=np.int64),
        elements=np.array(columns["el"]),
        atom_names=np.array(columns["name"]),
        residue_names=np.array(columns["res"]),
        residue_numbers=np.array(columns["num"], dtype=np.int64),
        insertion_codes=np.array(columns["icode"]),
        chain_ids=np.array(columns["chain"]),
        hetero=np.array(columns["het"], dtype=bool),
        residue_index=np.array(residue_index, dtype=np.int64),
        atom_ids=np.arange(n, dtype=np.int64),
        source=source,
        structure=structure,
    )


def protein_from_pdb_text(text: str, source: str = "PDB text", **options) -> Protein:
    """:func:`read_protein` for PDB-format text (tests, generated structures)."""
    structure = gemmi.read_pdb_string(text)
    if not options.get("hydrogens", True):
        structure.remove_hydrogens()
    if not options.get("waters", False):
        structure.remove_waters()
    structure.remove_alternative_conformations()
    structure.remove_empty_chains()
    if len(structure) == 0:
        raise ComplexError(f"{source}: no atoms in the PDB text", source=source)
    return protein_from_structure(structure, source)


def write_protein_bfactors(protein: Protein, values: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write the protein's structure as PDB with ``values`` in the B-factor column.

    values: one number per atom of ``protein`` (which may be a pocket: every other atom of the structure
    gets 0). Needs ``protein.structure`` (proteins read by :func:`read_protein` have it).
    """
    if protein.structure is None:
        raise ValueError("this protein has no gemmi structure to write (read it with read_protein)")
    values = np.asarray(values, dtype=float).reshape(-1)
    if len(values) != len(protein):
        raise ValueError(f"{len(values)} values for {len(protein)} protein atoms")
    per_atom = np.zeros(int(protein.atom_ids.max()) + 1 if len(protein) else 0)
    per_atom[protein.atom_ids] = values
    structure = protein.structure.clone()
    k = 0
    for chain in structure[0]:
        for residue in chain:
            for atom in residue:
                atom.b_iso = float(per_atom[k]) if k < len(per_atom) else 0.0
                k += 1
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    structure.write_pdb(str(path))
    return path
