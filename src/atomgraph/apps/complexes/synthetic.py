"""Small synthetic complexes for tests, examples and smoke runs: peptides and ligands placed by hand.

Peptides come from RDKit (``Chem.MolFromSequence``, hydrogens added, ETKDG embedding) with PDB atom names,
and are turned into a :class:`~atomgraph.apps.complexes.protein.Protein` through PDB text (the same gemmi
path as real files). :func:`place` moves a ligand so that one of its atoms sits at a chosen point with a
chosen bond direction, which is how the interaction tests put groups at known distances.
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem
from rdkit.Geometry import Point3D

from atomgraph.apps.complexes.protein import Protein, protein_from_pdb_text


def peptide_mol(sequence: str, seed: int = 0, charged: bool = True) -> Chem.Mol:
    """An embedded peptide with hydrogens and PDB residue info; with ``charged`` Lys NZ and Arg NH2 carry
    +1 and Asp OD2 / Glu OE2 carry -1 (as at pH 7)."""
    mol = Chem.MolFromSequence(sequence)
    if mol is None:
        raise ValueError(f"RDKit cannot build a peptide from {sequence!r}")
    if charged:
        for atom in mol.GetAtoms():
            info = atom.GetPDBResidueInfo()
            key = (info.GetResidueName().strip(), info.GetName().strip())
            if key in {("LYS", "NZ"), ("ARG", "NH2")}:
                atom.SetFormalCharge(1)
                atom.SetNoImplicit(False)
            elif key in {("ASP", "OD2"), ("GLU", "OE2")}:
                atom.SetFormalCharge(-1)
        Chem.SanitizeMol(mol)
    mol = Chem.AddHs(mol, addResidueInfo=True)
    if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
        raise ValueError(f"could not embed the peptide {sequence!r}")
    return mol


def protein_from_mol(mol: Chem.Mol, source: str = "peptide") -> Protein:
    """A Protein from an RDKit molecule with PDB residue info (via PDB text, as a file would be read)."""
    return protein_from_pdb_text(Chem.MolToPDBBlock(mol), source)


def peptide(sequence: str, seed: int = 0, charged: bool = True) -> Protein:
    """:func:`peptide_mol` as a :class:`Protein`."""
    return protein_from_mol(peptide_mol(sequence, seed, charged), f"peptide {sequence}")


def molecule(smiles: str, seed: int = 0, name: str = "") -> Chem.Mol:
    """An embedded molecule with explicit hydrogens (ETKDG, seeded)."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
        raise ValueError(f"could not embed {smiles!r}")
    if name:
        mol.SetProp("_Name", name)
    return mol


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation matrix [3, 3] turning unit vector a onto unit vector b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(np.dot(a, b))
    if np.linalg.norm(v) < 1e-9:
        if c > 0:
            return np.eye(3)
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    skew = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + skew + skew @ skew / (1 + c)


def set_positions(mol: Chem.Mol, positions: np.ndarray) -> Chem.Mol:
    """A copy of ``mol`` whose (first) conformer has ``positions`` [N, 3] Å."""
    out = Chem.Mol(mol)
    conf = out.GetConformer()
    for i, p in enumerate(np.asarray(positions, dtype=float)):
        conf.SetAtomPosition(i, Point3D(*p))
    return out


def place(mol: Chem.Mol, atom: int, anchor: int, target: np.ndarray, direction: np.ndarray) -> Chem.Mol:
    """Move ``mol`` rigidly so that atom ``atom`` sits at ``target`` and the vector atom -> ``anchor``
    points along ``direction``."""
    positions = mol.GetConformer().GetPositions()
    rotation = _rotation_between(positions[anchor] - positions[atom], np.asarray(direction, dtype=float))
    moved = (positions - positions[atom]) @ rotation.T + np.asarray(target, dtype=float)
    return set_positions(mol, moved)


def rotate_about(mol: Chem.Mol, axis: np.ndarray, angle: float, centre: np.ndarray) -> Chem.Mol:
    """``mol`` rotated by ``angle`` degrees about ``axis`` through ``centre``."""
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    theta = np.radians(angle)
    skew = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(theta) * skew + (1 - np.cos(theta)) * skew @ skew
    positions = mol.GetConformer().GetPositions()
    return set_positions(mol, (positions - centre) @ rotation.T + centre)


def atom_named(protein: Protein, name: str, residue: str | None = None) -> int:
    """Index of the (first) atom called ``name`` (in residue ``residue``, e.g. "LYS")."""
    hits = np.flatnonzero(
        (protein.atom_names == name) & ((protein.residue_names == residue) if residue else True)
    )
    if len(hits) == 0:
        raise KeyError(f"no atom {name!r}" + (f" in {residue}" if residue else ""))
    return int(hits[0])


RING_ATOMS: dict[str, tuple[str, ...]] = {
    "PHE": ("CG", "CD1", "CD2", "CE1", "CE2", "CZ"),
    "TYR": ("CG", "CD1", "CD2", "CE1", "CE2", "CZ"),
    "TRP": ("CD2", "CE2", "CE3", "CZ2", "CZ3", "CH2"),
}


def ligand_over_ring(
    protein: Protein, smiles: str, residue: str = "PHE", distance: float = 3.8, seed: int = 0
) -> Chem.Mol:
    """An embedded ligand whose first aromatic ring lies parallel over the (first) ``residue`` ring, its
    centroid ``distance`` Å above the ring centroid on the side away from the rest of the protein."""
    from atomgraph.apps.complexes.interactions import _ring_geometry

    ring = [atom_named(protein, name, residue) for name in RING_ATOMS[residue]]
    centre, normal = _ring_geometry(protein.positions[ring])
    if np.dot(protein.positions.mean(axis=0) - centre, normal) > 0:
        normal = -normal
    ligand = molecule(smiles, seed)
    info = ligand.GetRingInfo()
    aromatic = next(
        list(r) for r in info.AtomRings() if all(ligand.GetAtomWithIdx(k).GetIsAromatic() for k in r)
    )
    positions = ligand.GetConformer().GetPositions()
    own_centre, own_normal = _ring_geometry(positions[aromatic])
    rotation = _rotation_between(own_normal, normal)
    return set_positions(ligand, (positions - own_centre) @ rotation.T + centre + distance * normal)


def example_graph(kind: str = "complex"):
    """A small sample for generic model tests: a ``ComplexData`` (benzoate stacked on the Phe of the
    peptide KFA) for ``kind="complex"``, a sequence sample (``seq`` + ligand bond graph) for
    ``"sequence"``. Its ``y`` is [1, 1] (NaN)."""
    import math

    if kind == "sequence":
        from atomgraph.apps.complexes.sequence import sequence_graph

        return sequence_graph("c1ccccc1C(=O)[O-]", "KFA", [math.nan], max_length=64)
    if kind != "complex":
        raise ValueError(f"kind must be 'complex' or 'sequence', got {kind!r}")
    from atomgraph.apps.complexes.complex import make_complex
    from atomgraph.apps.complexes.graph import complex_graph

    protein = peptide("KFA", seed=0)
    ligand = ligand_over_ring(protein, "c1ccccc1C(=O)[O-]")
    return complex_graph(make_complex(protein, ligand, name="example"), y=[math.nan])
