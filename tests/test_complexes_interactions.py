"""Reading complexes, pockets and interaction detection on peptides with ligands placed at known geometry."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from atomgraph.apps.complexes import ComplexError, make_complex, read_ligand, read_ligands, read_protein
from atomgraph.apps.complexes.interactions import _ring_geometry, detect
from atomgraph.apps.complexes.pocket import extract_pocket
from atomgraph.apps.complexes.synthetic import (
    _rotation_between,
    atom_named,
    molecule,
    peptide,
    peptide_mol,
    place,
    rotate_about,
    set_positions,
)
from atomgraph.apps.complexes.typing import ligand_typing, protein_typing

THREE_LETTER = {"F": "PHE", "Y": "TYR", "W": "TRP"}
RING_NAMES = {
    "F": ("CG", "CD1", "CD2", "CE1", "CE2", "CZ"),
    "Y": ("CG", "CD1", "CD2", "CE1", "CE2", "CZ"),
    "W": ("CD2", "CE2", "CE3", "CZ2", "CZ3", "CH2"),
}


def interactions(protein, ligand, kind: str | None = None):
    found = detect(
        ligand.GetConformer().GetPositions(),
        np.array([a.GetAtomicNum() for a in ligand.GetAtoms()]),
        ligand_typing(ligand),
        protein.positions,
        protein.numbers,
        protein_typing(protein),
    )
    return [i for i in found if kind is None or i.kind == kind]


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


# ------------------------------------------------------------------------------------- salt bridge


@pytest.fixture(scope="module")
def lysine():
    return peptide("K")


@pytest.fixture(scope="module")
def acetate():
    mol = molecule("CC(=O)[O-]")
    oxygen = next(a.GetIdx() for a in mol.GetAtoms() if a.GetFormalCharge() == -1)
    carbon = mol.GetAtomWithIdx(oxygen).GetNeighbors()[0].GetIdx()
    return mol, oxygen, carbon


@pytest.mark.parametrize(
    ("distance", "expected"), [(3.0, "salt_bridge"), (4.5, "electrostatic"), (6.0, None)]
)
def test_salt_bridge_only_within_4_angstrom_of_lys_nz(lysine, acetate, distance, expected):
    mol, oxygen, carbon = acetate
    nz, ce = atom_named(lysine, "NZ"), atom_named(lysine, "CE")
    u = unit(lysine.positions[nz] - lysine.positions[ce])
    ligand = place(mol, oxygen, carbon, lysine.positions[nz] + distance * u, u)
    charged = [i for i in interactions(lysine, ligand) if i.kind in ("salt_bridge", "electrostatic")]
    if expected is None:
        assert charged == []
        return
    assert [(i.kind, i.ligand_atoms, i.protein_atoms) for i in charged] == [(expected, (oxygen,), (nz,))]
    assert charged[0].distance == pytest.approx(distance, abs=1e-6)


def test_neutral_lysine_makes_no_salt_bridge(acetate):
    neutral = peptide("K", charged=False)  # NZ with two hydrogens: LYN
    mol, oxygen, carbon = acetate
    nz, ce = atom_named(neutral, "NZ"), atom_named(neutral, "CE")
    u = unit(neutral.positions[nz] - neutral.positions[ce])
    ligand = place(mol, oxygen, carbon, neutral.positions[nz] + 3.0 * u, u)
    assert interactions(neutral, ligand, "salt_bridge") == []


# -------------------------------------------------------------------------------------- pi-stacking


def _stacked_benzene(protein, residue: str, distance: float, tilt: float = 0.0):
    ring = [atom_named(protein, name, THREE_LETTER[residue]) for name in RING_NAMES[residue]]
    centre, normal = _ring_geometry(protein.positions[ring])
    if np.dot(protein.positions.mean(axis=0) - centre, normal) > 0:
        normal = -normal  # the face away from the rest of the residue
    benzene = molecule("c1ccccc1")
    carbons = [a.GetIdx() for a in benzene.GetAtoms() if a.GetAtomicNum() == 6]
    positions = benzene.GetConformer().GetPositions()
    own_centre, own_normal = _ring_geometry(positions[carbons])
    rotation = _rotation_between(own_normal, normal)
    target = centre + distance * normal
    ligand = set_positions(benzene, (positions - own_centre) @ rotation.T + target)
    if tilt:
        ligand = rotate_about(ligand, np.cross(normal, [1.0, 0.0, 0.0]), tilt, target)
    return ligand, tuple(ring)


@pytest.mark.parametrize("residue", ["F", "Y", "W"])
def test_parallel_stacking_detected_and_45_degrees_not(residue):
    protein = peptide(residue)
    ligand, ring = _stacked_benzene(protein, residue, 3.8)
    stacked = interactions(protein, ligand, "pi_stacking")
    assert [(i.protein_atoms, i.detail) for i in stacked] == [(ring, "parallel")]
    assert stacked[0].distance == pytest.approx(3.8, abs=1e-6)
    assert stacked[0].angle == pytest.approx(0.0, abs=1e-3)
    tilted, _ = _stacked_benzene(protein, residue, 3.8, tilt=45.0)
    assert interactions(protein, tilted, "pi_stacking") == []


def test_t_shaped_stacking_at_90_degrees():
    protein = peptide("F")
    ligand, ring = _stacked_benzene(protein, "F", 5.0, tilt=90.0)
    stacked = interactions(protein, ligand, "pi_stacking")
    assert [(i.protein_atoms, i.detail) for i in stacked] == [(ring, "t-shaped")]
    assert stacked[0].angle == pytest.approx(90.0, abs=1e-3)
    far, _ = _stacked_benzene(protein, "F", 5.8, tilt=90.0)  # centroids beyond 5.5 Å
    assert interactions(protein, far, "pi_stacking") == []


# ---------------------------------------------------------------------------------------- H-bonds


@pytest.fixture(scope="module")
def glycine_oxygen():
    protein = peptide("AGA")
    o = int(np.flatnonzero(protein.atom_names == "O")[1])
    c = int(np.flatnonzero(protein.atom_names == "C")[1])
    return protein, o, unit(protein.positions[o] - protein.positions[c])


def _methanol_at(protein, o, u, h_direction):
    mol = molecule("CO")
    oxygen = next(a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == "O")
    hydrogen = next(n.GetIdx() for n in mol.GetAtomWithIdx(oxygen).GetNeighbors() if n.GetSymbol() == "H")
    return place(mol, oxygen, hydrogen, protein.positions[o] + 2.9 * u, h_direction), oxygen


def test_hbond_with_hydrogen_pointing_at_backbone_oxygen(glycine_oxygen):
    protein, o, u = glycine_oxygen
    ligand, oxygen = _methanol_at(protein, o, u, -u)
    hbonds = interactions(protein, ligand, "hbond")
    assert [(i.ligand_atoms, i.protein_atoms, i.detail) for i in hbonds] == [
        ((oxygen,), (o,), "ligand donor")
    ]
    assert hbonds[0].distance == pytest.approx(2.9, abs=1e-6)
    assert hbonds[0].angle == pytest.approx(180.0, abs=1e-3)


def test_no_hbond_with_hydrogen_pointing_away(glycine_oxygen):
    protein, o, u = glycine_oxygen
    ligand, _ = _methanol_at(protein, o, u, u)
    assert interactions(protein, ligand, "hbond") == []
    # without explicit hydrogens only the distance can be judged: counted, angle unknown
    hbonds = interactions(protein, Chem.RemoveHs(ligand), "hbond")
    assert len(hbonds) == 1 and np.isnan(hbonds[0].angle)


# ------------------------------------------------------------------------------ hydrophobic / far


def test_methyl_4_angstrom_from_side_chain_carbon_is_hydrophobic():
    protein = peptide("L")
    cd1, cg = atom_named(protein, "CD1"), atom_named(protein, "CG")
    u = unit(protein.positions[cd1] - protein.positions[cg])
    ligand = place(molecule("CCC"), 0, 1, protein.positions[cd1] + 4.0 * u, u)
    found = {(i.ligand_atoms[0], i.protein_atoms[0]) for i in interactions(protein, ligand, "hydrophobic")}
    hydrophobic = {atom_named(protein, n) for n in ("CB", "CG", "CD1", "CD2")}
    lpos = ligand.GetConformer().GetPositions()
    expected = {
        (a, p) for a in (0, 1, 2) for p in hydrophobic if np.linalg.norm(lpos[a] - protein.positions[p]) < 4.5
    }
    assert (0, cd1) in found
    assert found == expected
    assert all(i.kind == "hydrophobic" for i in interactions(protein, ligand))


def test_far_ligand_has_no_interactions_and_no_complex():
    protein = peptide("KDFYW")
    ligand = place(
        molecule("CC(=O)[O-]"), 0, 1, protein.positions.mean(axis=0) + np.array([40.0, 0.0, 0.0]), [1.0, 0, 0]
    )
    assert interactions(protein, ligand) == []
    with pytest.raises(ComplexError, match="do not seem to share a coordinate frame"):
        make_complex(protein, ligand, name="far")


def test_overlapping_ligand_is_reported():
    mol = peptide_mol("GG")
    protein = peptide("GG")
    ligand = molecule("CCCC")
    heavy = protein.positions[protein.heavy][:4]
    ligand = set_positions(ligand, np.vstack([heavy, ligand.GetConformer().GetPositions()[4:] + heavy[0]]))
    assert mol.GetNumAtoms() == len(protein)
    with pytest.raises(ComplexError, match="ligand heavy atoms lie within"):
        make_complex(protein, ligand, name="overlap")


# ------------------------------------------------------------------------------------------ pocket


def test_pocket_holds_exactly_the_residues_within_the_radius():
    protein = peptide("KDFYWGAL", seed=3)
    ligand, _ = _stacked_benzene(protein, "F", 3.8)
    ligand_heavy = ligand.GetConformer().GetPositions()[[a.GetAtomicNum() > 1 for a in ligand.GetAtoms()]]
    for radius in (4.0, 6.0, 8.0):
        pocket = extract_pocket(protein, ligand_heavy, radius)
        expected = set()
        for residue in np.unique(protein.residue_index):
            atoms = (protein.residue_index == residue) & protein.heavy
            d = np.linalg.norm(protein.positions[atoms][:, None] - ligand_heavy[None], axis=-1)
            if d.min() < radius:
                expected.add(int(residue))
        assert set(np.unique(pocket.residue_index).tolist()) == expected
        for residue in expected:  # whole residues, hydrogens included
            assert (pocket.residue_index == residue).sum() == (protein.residue_index == residue).sum()


# -------------------------------------------------------------------------------------------- files


def test_broken_ligand_record_is_reported_with_its_name(tmp_path):
    good = molecule("CCO", name="ethanol")
    broken = Chem.RWMol(molecule("C", name="broken_mol"))
    extra = broken.AddAtom(Chem.Atom(1))
    broken.AddBond(0, extra, Chem.BondType.SINGLE)
    broken.GetConformer().SetAtomPosition(extra, (0.0, 0.0, 1.1))
    block = Chem.MolToMolBlock(broken, kekulize=False)
    path = tmp_path / "ligands.sdf"
    path.write_text(Chem.MolToMolBlock(good) + "$$$$\n" + block + "$$$$\n")
    records = read_ligands(path)
    assert [r.ok for r in records] == [True, False]
    assert "broken_mol" in str(records[1].error) and "ligands.sdf record 1" in str(records[1].error)
    assert "sanitise" in str(records[1].error)
    with pytest.raises(ComplexError, match="broken_mol"):
        read_ligand(path, record=1)


def test_two_dimensional_ligand_and_missing_files_are_errors(tmp_path):
    flat = Chem.MolFromSmiles("CCO")
    Chem.rdDepictor.Compute2DCoords(flat)
    path = tmp_path / "flat.sdf"
    path.write_text(Chem.MolToMolBlock(flat) + "$$$$\n")
    with pytest.raises(ComplexError, match="2D coordinates"):
        read_ligand(path)
    with pytest.raises(ComplexError, match="not found"):
        read_protein(tmp_path / "missing.pdb")
    with pytest.raises(ComplexError, match="unknown ligand format"):
        read_ligands(tmp_path / "ligand.xyz")


def test_protein_file_round_trip_keeps_hydrogens_and_names(tmp_path):
    mol = peptide_mol("KD")
    path = tmp_path / "protein.pdb"
    Chem.MolToPDBFile(mol, str(path))
    protein = read_protein(path)
    assert len(protein) == mol.GetNumAtoms()
    assert (protein.numbers == 1).sum() == sum(a.GetAtomicNum() == 1 for a in mol.GetAtoms())
    assert set(protein.residue_names) == {"LYS", "ASP"}
    typing = protein_typing(protein)
    charged = {
        (str(protein.residue_names[i]), str(protein.atom_names[i])) for i in np.flatnonzero(typing.charge)
    }
    assert ("LYS", "NZ") in charged and ("ASP", "OD2") in charged
    no_h = read_protein(path, hydrogens=False)
    assert (no_h.numbers > 1).all()


def test_pdbqt_poses_with_a_template(tmp_path):
    mol = Chem.RemoveHs(molecule("c1ccccc1C(=O)O"))
    atoms = [line for line in Chem.MolToPDBBlock(mol).splitlines() if line.startswith("HETATM")]
    types = ["A"] * 6 + ["C", "OA", "OA"]
    pose = [f"{line[:66]}    +0.000 {kind:<2}" for line, kind in zip(atoms, types, strict=True)]
    path = tmp_path / "poses.pdbqt"
    path.write_text("\n".join(["MODEL 1", *pose, "ENDMDL", "MODEL 2", *pose, "ENDMDL"]) + "\n")
    records = read_ligands(path, template_smiles="c1ccccc1C(=O)O")
    assert [r.ok for r in records] == [True, True]
    assert Chem.MolToSmiles(Chem.RemoveHs(records[1].mol)) == Chem.MolToSmiles(mol)
    assert ligand_typing(records[0].mol).rings  # aromaticity restored from the template
    with pytest.warns(UserWarning, match="no bond orders"):
        read_ligands(path)


def test_ligand_copy_in_the_protein_file_is_dropped():
    from atomgraph.apps.complexes.protein import protein_from_pdb_text

    mol = peptide_mol("KFA", seed=0)
    protein = peptide("KFA", seed=0)
    ligand, _ = _stacked_benzene(protein, "F", 3.8)
    copy = Chem.Mol(ligand)
    for atom in copy.GetAtoms():
        info = Chem.AtomPDBResidueInfo(f" {atom.GetSymbol()}{atom.GetIdx() + 1}"[:4], residueName="LIG")
        info.SetIsHeteroAtom(True)
        info.SetChainId("B")
        atom.SetMonomerInfo(info)
    peptide_lines = [line for line in Chem.MolToPDBBlock(mol).splitlines() if line.startswith("ATOM")]
    ligand_lines = [line for line in Chem.MolToPDBBlock(copy).splitlines() if line.startswith("HETATM")]
    with_copy = protein_from_pdb_text("\n".join([*peptide_lines, "TER", *ligand_lines, "END"]) + "\n")
    assert "LIG" in set(with_copy.residue_names)
    complex_ = make_complex(with_copy, ligand, name="holo")
    assert "LIG" not in set(complex_.pocket.residue_names)
