"""SMILES -> :class:`ase.Atoms` with explicit hydrogens and 2D or 3D coordinates."""

from __future__ import annotations

import ase
import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem, rdDepictor
from rdkit.Geometry import Point3D
from scipy.spatial.distance import cdist

from atomgraph.structures.errors import StructureError
from atomgraph.structures.rdkit_convert import capture_rdkit_errors, mol_to_atoms
from atomgraph.structures.validate import check_elements, validate_atoms

#: Iteration cap of the force-field relaxation after embedding.
MAX_FF_ITERS = 2000
#: Atoms of no element (``*``, atomic number 0): the only ones a SMILES can hold that
#: :func:`~atomgraph.structures.validate.check_elements` refuses.
_NO_ELEMENT = Chem.MolFromSmarts("[#0]")
#: Smallest distance (Å) kept between disconnected fragments (salts, ions, solvent) after embedding.
FRAGMENT_GAP = 3.0


def from_smiles(
    smiles: str,
    embed_3d: bool = False,
    seed: int = 0,
    name: str | None = None,
    depict: bool = True,
    hydrogens: bool = True,
) -> ase.Atoms:
    """Build a molecule from a SMILES string, hydrogens included.

    Args:
        smiles: the SMILES string.
        embed_3d: ``True``: one ETKDGv3 conformer (random seed ``seed``) relaxed with MMFF94, or UFF when
            MMFF94 lacks parameters (``info["force_field"]`` says which; ``"none"`` when neither applies).
            Disconnected fragments (``"[Na+].[Cl-]"``) closer than ``FRAGMENT_GAP`` = 3 Å after
            the relaxation are moved apart rigidly along x (ETKDG stacks single-atom fragments at the origin).
            ``False``: 2D depiction coordinates (``rdDepictor.Compute2DCoords``, z = 0); these are a
            drawing, not a geometry, so the interatomic-distance check is skipped.
        seed: random seed of the embedding; the same seed gives the same coordinates.
        name: optional name, stored in ``info["name"]`` and as the molecule's ``_Name``.
        depict: without ``embed_3d``, ``False`` skips the 2D depiction (~8 ms for a drug-like molecule
            with its hydrogens, most of the time spent here): every position is 0 and
            ``info["coordinates"]`` is ``"none"``. Bond graphs never read a drawing (their ``pos`` is
            zero unless the molecule is 3D), so their data and prediction paths skip it.
        hydrogens: ``False`` keeps the hydrogens implicit, as parsed (not with ``embed_3d``): for graphs
            of the heavy atoms, which would remove them again.

    Returns:
        Non-periodic ``ase.Atoms`` (positions in Å; for 2D, RDKit depiction units ~ 1.5 per bond) in
        RDKit atom order, with ``info["smiles"]``, ``info["rdkit_mol"]`` (with explicit H),
        ``info["coordinates"]`` (``"3d"``/``"2d"``), ``info["charge"]`` and ``info["source"]``.

    Raises:
        StructureError: for an empty or unparsable SMILES, one with an atom of unknown element (``*``),
            or when 3D embedding fails (the message quotes the SMILES).
    """
    source = f"SMILES {smiles!r}"
    mol = parse_smiles(smiles, hydrogens or embed_3d)
    if name is not None:
        mol.SetProp("_Name", name)

    if embed_3d:
        force_field = _embed(mol, smiles, seed, source)
    elif depict:
        with capture_rdkit_errors():
            rdDepictor.Compute2DCoords(mol)
        force_field = None
    else:
        conformer = Chem.Conformer(mol.GetNumAtoms())  # every atom at the origin
        conformer.Set3D(False)
        mol.AddConformer(conformer, assignId=True)
        force_field = None

    atoms = mol_to_atoms(mol, source)
    atoms.info["coordinates"] = "3d" if embed_3d else "2d" if depict else "none"
    atoms.info["smiles"] = smiles
    if force_field is not None:
        atoms.info["force_field"] = force_field
    if name is not None:
        atoms.info["name"] = name
    return validate_atoms(atoms, source, check_distances=embed_3d)


def parse_smiles(smiles: str, hydrogens: bool = True) -> Chem.Mol:
    """The RDKit molecule of a SMILES (sanitised; ``hydrogens``: with every hydrogen explicit), as
    :func:`from_smiles` reads it. Raises StructureError for an empty or unparsable SMILES, one
    without atoms, or one with an atom of unknown element (``*``)."""
    source = f"SMILES {smiles!r}"
    if not isinstance(smiles, str) or not smiles.strip():
        raise StructureError(f"empty SMILES {smiles!r}", source=source)
    with capture_rdkit_errors() as log:
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        reason = log.reason()
        raise StructureError(f"invalid SMILES {smiles!r}: RDKit could not parse it{reason}", source=source)
    if mol.GetNumAtoms() == 0:
        raise StructureError(f"empty SMILES {smiles!r}: no atoms", source=source)
    if mol.HasSubstructMatch(_NO_ELEMENT):  # one query, not a loop over the atoms
        check_elements([mol.GetAtomWithIdx(i).GetAtomicNum() for i in range(mol.GetNumAtoms())], source)
    if hydrogens:
        with capture_rdkit_errors():
            mol = Chem.AddHs(mol)
    return mol


def _embed(mol: Chem.Mol, smiles: str, seed: int, source: str) -> str:
    """Embed one ETKDGv3 conformer in place and relax it; return the force field used."""
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    with capture_rdkit_errors() as log:
        conf_id = AllChem.EmbedMolecule(mol, params)
        if conf_id < 0:  # hard cases (large rings, cages) often embed from random coordinates
            params.useRandomCoords = True
            conf_id = AllChem.EmbedMolecule(mol, params)
    if conf_id < 0:
        raise StructureError(
            f"SMILES {smiles!r}: 3D embedding (ETKDGv3, seed {seed}) failed{log.reason()}", source=source
        )
    with capture_rdkit_errors():
        if AllChem.MMFFHasAllMoleculeParams(mol):
            AllChem.MMFFOptimizeMolecule(mol, mmffVariant="MMFF94", maxIters=MAX_FF_ITERS)
            force_field = "MMFF94"
        elif AllChem.UFFHasAllMoleculeParams(mol):
            AllChem.UFFOptimizeMolecule(mol, maxIters=MAX_FF_ITERS)
            force_field = "UFF"
        else:
            force_field = "none"
    _separate_fragments(mol)
    return force_field


def _separate_fragments(mol: Chem.Mol) -> None:
    """Rigidly shift disconnected fragments along +x until each is ``FRAGMENT_GAP`` Å from the others."""
    fragments = Chem.GetMolFrags(mol)
    if len(fragments) < 2:
        return
    conf = mol.GetConformer()
    pos = conf.GetPositions()
    placed = list(fragments[0])
    for fragment in fragments[1:]:
        idx = list(fragment)
        if cdist(pos[idx], pos[placed]).min() < FRAGMENT_GAP:
            pos[idx, 0] += pos[placed, 0].max() - pos[idx, 0].min() + FRAGMENT_GAP
        placed += idx
    for i, (x, y, z) in enumerate(np.asarray(pos, dtype=float)):
        conf.SetAtomPosition(i, Point3D(float(x), float(y), float(z)))
