"""A protein-ligand complex: the ligand with its pose, the binding pocket and the typing of both."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from rdkit import Chem

from atomgraph.apps.complexes.ligand import read_ligand
from atomgraph.apps.complexes.pocket import (
    DEFAULT_POCKET_RADIUS,
    check_frames,
    ligand_copies,
    pocket_atom_indices,
)
from atomgraph.apps.complexes.protein import Protein, read_protein
from atomgraph.apps.complexes.typing import AtomTyping, ligand_typing, protein_typing


@dataclass
class Complex:
    """A ligand in its binding pocket.

    name: identifier; ligand: sanitised RDKit molecule with its pose (hydrogens as read); pocket: the
    pocket residues (:class:`Protein`, whole residues within ``pocket_radius`` Å of the ligand);
    protein: the protein the pocket was cut from (for writing per-atom values back); ligand_typing and
    pocket_typing: :class:`AtomTyping` of the ligand and pocket atoms.
    """

    name: str
    ligand: Chem.Mol
    pocket: Protein
    protein: Protein
    ligand_typing: AtomTyping
    pocket_typing: AtomTyping
    pocket_radius: float = DEFAULT_POCKET_RADIUS

    @property
    def ligand_positions(self) -> np.ndarray:
        """[L, 3] Å, all ligand atoms."""
        return self.ligand.GetConformer().GetPositions()

    @property
    def ligand_numbers(self) -> np.ndarray:
        return np.array([a.GetAtomicNum() for a in self.ligand.GetAtoms()], dtype=np.int64)


def make_complex(
    protein: Protein, ligand: Chem.Mol, pocket_radius: float = DEFAULT_POCKET_RADIUS, name: str | None = None
) -> Complex:
    """Cut the pocket around ``ligand`` from ``protein`` and type both.

    A HETATM group of the protein file that duplicates the ligand (the co-crystallised ligand left in the
    protein file) is dropped first. Raises :class:`ComplexError` when no protein atom is within
    ``pocket_radius`` of the ligand or the two overlap (files from different frames).
    """
    name = name or (ligand.GetProp("_Name") if ligand.HasProp("_Name") else "") or protein.source
    positions = ligand.GetConformer().GetPositions()
    heavy = np.array([a.GetAtomicNum() > 1 for a in ligand.GetAtoms()])
    ligand_heavy = positions[heavy] if heavy.any() else positions
    copies = ligand_copies(protein, ligand_heavy)
    if len(copies):
        protein = protein.subset(np.setdiff1d(np.arange(len(protein)), copies))
    check_frames(protein, ligand_heavy, pocket_radius, name)
    indices = pocket_atom_indices(protein, ligand_heavy, pocket_radius)
    return Complex(
        name=name,
        ligand=ligand,
        pocket=protein.subset(indices),
        protein=protein,
        ligand_typing=ligand_typing(ligand),
        pocket_typing=protein_typing(protein).subset(indices),
        pocket_radius=pocket_radius,
    )


def load_complex(
    protein_path: str | os.PathLike[str],
    ligand_path: str | os.PathLike[str],
    pocket_radius: float = DEFAULT_POCKET_RADIUS,
    name: str | None = None,
    waters: bool = False,
    ligand_record: int = 0,
) -> Complex:
    """Read a protein (PDB/mmCIF) and a ligand (SDF/MOL2/PDBQT record ``ligand_record``) into a complex."""
    protein = read_protein(protein_path, waters=waters)
    ligand = read_ligand(ligand_path, record=ligand_record)
    return make_complex(protein, ligand, pocket_radius, name)
