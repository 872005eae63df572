"""Behavioural tests of atomgraph.structures: SMILES, file readers, validation and their errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import ase
import ase.db
import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator
from rdkit import Chem
from rdkit.Chem import AllChem

from atomgraph.graphs.spec import GraphSpec
from atomgraph.structures import (
    StructureError,
    from_smiles,
    mol_to_atoms,
    read,
    read_all,
    validate_atoms,
)

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


@pytest.fixture(scope="module")
def aspirin_3d() -> ase.Atoms:
    return from_smiles(ASPIRIN, embed_3d=True, seed=7, name="aspirin")


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def frac_sites(atoms: ase.Atoms) -> set[tuple[int, float, float, float]]:
    """(Z, fractional coordinates wrapped to [0, 1)) of every site, rounded to 1e-4."""
    frac = np.round(atoms.get_scaled_positions(wrap=False), 4) % 1.0
    return {(int(n), *map(float, np.round(f, 4))) for n, f in zip(atoms.numbers, frac, strict=True)}


# ------------------------------------------------------------------------------------------- SMILES


def test_aspirin_composition_and_order(aspirin_3d: ase.Atoms) -> None:
    atoms = aspirin_3d
    assert len(atoms) == 21
    assert Counter(atoms.get_chemical_symbols()) == {"C": 9, "H": 8, "O": 4}
    mol = atoms.info["rdkit_mol"]
    assert [a.GetAtomicNum() for a in mol.GetAtoms()] == atoms.numbers.tolist()
    assert mol.GetNumAtoms() == 21  # hydrogens are explicit atoms of the molecule
    assert atoms.info["smiles"] == ASPIRIN
    assert atoms.info["coordinates"] == "3d"
    assert atoms.info["name"] == "aspirin"
    assert atoms.info["force_field"] == "MMFF94"
    assert not atoms.pbc.any()


def test_aspirin_3d_bond_lengths(aspirin_3d: ase.Atoms) -> None:
    mol = aspirin_3d.info["rdkit_mol"]
    pos = aspirin_3d.positions
    assert np.ptp(pos[:, 2]) > 0.5  # really 3D
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        d = np.linalg.norm(pos[i] - pos[j])
        pair = {bond.GetBeginAtom().GetSymbol(), bond.GetEndAtom().GetSymbol()}
        if "H" in pair:
            assert 0.93 < d < 1.13, (i, j, d)
        else:
            assert 1.15 < d < 1.56, (i, j, d)
    # conformer and Atoms agree
    assert np.allclose(mol.GetConformer().GetPositions(), pos)


def test_smiles_embedding_is_reproducible(aspirin_3d: ase.Atoms) -> None:
    again = from_smiles(ASPIRIN, embed_3d=True, seed=7)
    assert np.allclose(again.positions, aspirin_3d.positions, atol=1e-8)
    other = from_smiles(ASPIRIN, embed_3d=True, seed=8)
    assert other.numbers.tolist() == aspirin_3d.numbers.tolist()


def test_smiles_2d_depiction() -> None:
    atoms = from_smiles("c1ccccc1O")
    assert len(atoms) == 13
    assert atoms.info["coordinates"] == "2d"
    assert np.allclose(atoms.positions[:, 2], 0.0)
    assert np.ptp(atoms.positions[:, 0]) > 1.0
    assert atoms.info["rdkit_mol"].GetNumAtoms() == 13


@pytest.mark.parametrize(
    "spec",
    [
        GraphSpec("bond", explicit_hydrogens=False),
        GraphSpec("bond", explicit_hydrogens=True),  # (edge_rbf refuses molecules without 3D)
        GraphSpec("bond", explicit_hydrogens=False, virtual_edges=True, atom_features="hbond"),
    ],
)
def test_bond_graphs_never_read_the_2d_drawing(spec: GraphSpec) -> None:
    # predict and the SMILES datasets skip the depiction (most of the time of a row): nothing changes
    for smiles in ("CC(=O)Oc1ccccc1C(=O)O", "[Na+].[Cl-]", "C[C@H](N)C(=O)O"):
        drawn, undrawn = from_smiles(smiles), from_smiles(smiles, depict=False)
        assert undrawn.info["coordinates"] == "none" and np.all(undrawn.positions == 0)
        a, b = spec.build(drawn), spec.build(undrawn)
        assert a.keys() == b.keys()
        for key in a.keys():
            assert torch.equal(a[key], b[key]), (smiles, key)


@pytest.mark.parametrize("bad", ["C1CC(", "xyz", "C(C)(C)(C)(C)C"])
def test_invalid_smiles_names_the_smiles(bad: str) -> None:
    with pytest.raises(StructureError, match=r"invalid SMILES") as info:
        from_smiles(bad)
    assert bad in str(info.value)


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_smiles(bad: str) -> None:
    with pytest.raises(StructureError, match=r"empty SMILES"):
        from_smiles(bad)


def test_smiles_salt_fragments_do_not_overlap() -> None:
    atoms = from_smiles("[Na+].[Cl-]", embed_3d=True)
    assert atoms.get_distance(0, 1) >= 3.0 - 1e-9
    assert atoms.info["charge"] == 0


def test_smiles_dummy_atom_is_rejected() -> None:
    with pytest.raises(StructureError, match=r"SMILES '\*CC'.*unknown element"):
        from_smiles("*CC")


def test_mol_to_atoms_picks_conformer() -> None:
    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=3, randomSeed=3))
    atoms = mol_to_atoms(mol, "ethanol", conf_id=ids[2])
    assert np.allclose(atoms.positions, mol.GetConformer(ids[2]).GetPositions())
    assert atoms.info["rdkit_mol"].GetNumConformers() == 1
    assert atoms.info["source"] == "ethanol"
    with pytest.raises(StructureError, match="ethanol: no conformer with id 42"):
        mol_to_atoms(mol, "ethanol", conf_id=42)


def test_mol_to_atoms_without_conformer() -> None:
    with pytest.raises(StructureError, match=r"my-mol"):
        mol_to_atoms(Chem.MolFromSmiles("CCO"), "my-mol")


# ------------------------------------------------------------------------------------ round trips


def test_xyz_multi_frame_round_trip(tmp_path: Path) -> None:
    frames = [molecule("H2O"), molecule("CH4"), molecule("NH3")]
    path = tmp_path / "mols.xyz"
    ase.io.write(path, frames, format="xyz")
    images = read(path)
    assert isinstance(images, list) and len(images) == 3
    for ref, got in zip(frames, images, strict=True):
        assert got.numbers.tolist() == ref.numbers.tolist()
        assert np.allclose(got.positions, ref.positions, atol=1e-6)
    assert images[1].info["source"] == f"{path} record 1"
    assert "rdkit_mol" not in images[0].info


def test_single_structure_gives_atoms_and_read_all_gives_list(tmp_path: Path) -> None:
    path = tmp_path / "WATER.XYZ"  # extension is case-insensitive
    ase.io.write(path, molecule("H2O"), format="xyz")
    assert isinstance(read(path), ase.Atoms)
    images = read_all(str(path))
    assert isinstance(images, list) and len(images) == 1


def test_extxyz_results_arrays_and_info(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=1)
    forces = rng.normal(size=(len(atoms), 3))
    stress = rng.normal(size=6)
    atoms.calc = SinglePointCalculator(atoms, energy=-43.21, forces=forces, stress=stress)
    atoms.arrays["my_charges"] = rng.normal(size=len(atoms))
    atoms.info["config_type"] = "rattled"
    path = tmp_path / "si.extxyz"
    ase.io.write(path, [atoms, atoms], format="extxyz")

    images = read(path)
    assert len(images) == 2
    got = images[0]
    assert np.allclose(got.positions, atoms.positions)
    assert np.allclose(got.cell.array, atoms.cell.array)
    assert got.pbc.all()
    assert got.get_potential_energy() == pytest.approx(-43.21)
    assert np.allclose(got.get_forces(), forces)
    assert np.allclose(got.get_stress(), stress)
    assert got.info["energy"] == pytest.approx(-43.21)
    assert np.allclose(got.arrays["forces"], forces)
    xx, yy, zz, yz, xz, xy = stress
    assert np.allclose(got.info["stress"], [[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    assert np.allclose(got.arrays["my_charges"], atoms.arrays["my_charges"])
    assert got.info["config_type"] == "rattled"


def test_cif_multiple_blocks(tmp_path: Path) -> None:
    crystals = [bulk("Cu", "fcc", a=3.61, cubic=True), bulk("NaCl", "rocksalt", a=5.64, cubic=True)]
    path = tmp_path / "two.cif"
    ase.io.write(path, crystals, format="cif")
    images = read(path)
    assert isinstance(images, list) and len(images) == 2
    for ref, got in zip(crystals, images, strict=True):
        assert sorted(got.numbers.tolist()) == sorted(ref.numbers.tolist())
        assert np.allclose(got.cell.cellpar(), ref.cell.cellpar(), atol=1e-4)
        assert got.pbc.all()
        assert frac_sites(got) == frac_sites(ref)


@pytest.mark.parametrize("name", ["POSCAR", "CONTCAR", "nacl.vasp", "Si.poscar"])
def test_vasp_round_trip(tmp_path: Path, name: str) -> None:
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    path = tmp_path / name
    ase.io.write(path, atoms, format="vasp")
    got = read(path)
    assert isinstance(got, ase.Atoms)
    assert got.numbers.tolist() == atoms.numbers.tolist()
    assert np.allclose(got.cell.array, atoms.cell.array, atol=1e-6)
    assert np.allclose(got.positions, atoms.positions, atol=1e-6)
    assert got.pbc.all()


def test_db_rows_with_key_values_and_results(tmp_path: Path) -> None:
    path = tmp_path / "data.db"
    water, methane = molecule("H2O"), molecule("CH4")
    forces = np.arange(9, dtype=float).reshape(3, 3) / 10
    water.calc = SinglePointCalculator(water, energy=-14.2, forces=forces)
    with ase.db.connect(str(path)) as db:
        db.write(water, split="train", label=1.5)
        db.write(methane, split="test")
    images = read(path)
    assert len(images) == 2
    w, m = images
    assert w.numbers.tolist() == water.numbers.tolist()
    assert np.allclose(w.positions, water.positions)
    assert w.info["split"] == "train" and w.info["label"] == 1.5
    assert w.get_potential_energy() == pytest.approx(-14.2)
    assert w.info["energy"] == pytest.approx(-14.2)
    assert np.allclose(w.arrays["forces"], forces)
    assert m.info["split"] == "test" and "energy" not in m.info


def test_pdb_round_trip_keeps_bonds(tmp_path: Path) -> None:
    ethanol = molecule("CH3CH2OH")
    path = tmp_path / "ethanol.pdb"
    ase.io.write(path, ethanol, format="proteindatabank")
    got = read(path)
    assert isinstance(got, ase.Atoms)
    assert got.numbers.tolist() == ethanol.numbers.tolist()
    assert np.allclose(got.positions, ethanol.positions, atol=1e-3)
    assert not got.pbc.any() and np.allclose(got.cell.array, 0)
    mol = got.info["rdkit_mol"]
    assert mol.GetNumBonds() == 8
    assert [a.GetAtomicNum() for a in mol.GetAtoms()] == got.numbers.tolist()


def test_pdb_multi_model_and_periodic_box(tmp_path: Path) -> None:
    a = molecule("H2O")
    a.cell, a.pbc = [8.0, 9.0, 10.0], True
    b = a.copy()
    b.positions += 0.2
    path = tmp_path / "traj.pdb"
    ase.io.write(path, [a, b], format="proteindatabank")  # CRYST1 ... P 1: a simulation box
    images = read(path)
    assert len(images) == 2
    assert np.allclose(images[1].positions, b.positions, atol=1e-3)
    for got in images:
        assert got.pbc.all()
        assert np.allclose(got.cell.array, np.diag([8.0, 9.0, 10.0]), atol=1e-3)


def test_pdb_crystal_asymmetric_unit_is_not_periodic(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "asu.pdb",
        "CRYST1   30.000   40.000   50.000  90.00  90.00  90.00 P 21 21 21    4\n"
        "HETATM    1  O   HOH A   1       1.000   1.000   1.000  1.00  0.00           O\n"
        "HETATM    2  O   HOH A   2       4.000   1.000   1.000  1.00  0.00           O\n"
        "END\n",
    )
    got = read(path)
    assert not got.pbc.any()
    assert got.info["pdb_cryst1"] == [30.0, 40.0, 50.0, 90.0, 90.0, 90.0]
    assert got.arrays["residuenames"].tolist() == ["HOH", "HOH"]


def test_pdb_falls_back_to_ase_when_rdkit_fails(tmp_path: Path) -> None:
    atoms = molecule("CH4")
    atoms.append(ase.Atom("H", atoms.positions[0] + [0.0, 0.0, -1.09]))  # pentavalent carbon
    path = tmp_path / "weird.pdb"
    ase.io.write(path, atoms, format="proteindatabank")
    got = read(path)
    assert "rdkit_mol" not in got.info
    assert got.numbers.tolist() == atoms.numbers.tolist()
    assert np.allclose(got.positions, atoms.positions, atol=1e-3)


def test_sdf_multi_record_round_trip(tmp_path: Path, aspirin_3d: ase.Atoms) -> None:
    ethanol = from_smiles("CCO", embed_3d=True, seed=1).info["rdkit_mol"]
    aspirin = Chem.Mol(aspirin_3d.info["rdkit_mol"])
    aspirin.SetProp("_Name", "aspirin")
    aspirin.SetProp("pIC50", "5.25")
    ethanol.SetProp("_Name", "ethanol")
    ethanol.SetProp("pIC50", "3.5")
    path = tmp_path / "ligands.sdf"
    with Chem.SDWriter(str(path)) as writer:
        writer.write(aspirin)
        writer.write(ethanol)
    images = read(path)
    assert len(images) == 2
    for ref, got in zip([aspirin, ethanol], images, strict=True):
        assert got.numbers.tolist() == [a.GetAtomicNum() for a in ref.GetAtoms()]
        assert np.allclose(got.positions, ref.GetConformer().GetPositions(), atol=1e-3)
        assert got.info["rdkit_mol"].GetNumBonds() == ref.GetNumBonds()
        assert got.info["coordinates"] == "3d"
    assert images[0].info["name"] == "aspirin" and images[0].info["pIC50"] == pytest.approx(5.25)
    assert images[1].info["pIC50"] == pytest.approx(3.5)
    # a .mol file holds one record
    mol_path = write_text(tmp_path / "ethanol.MOL", Chem.MolToMolBlock(ethanol))
    single = read(mol_path)
    assert isinstance(single, ase.Atoms) and len(single) == 9


METHANOL_ATOMS = [
    ("C", "C.3", (-0.0471, 0.6644, 0.0), 0.15),
    ("O", "O.3", (-0.0471, -0.7586, 0.0), -0.6),
    ("H", "H", (-1.0930, 0.9698, 0.0), 0.05),
    ("H", "H", (0.8785, -1.0485, 0.0), 0.35),
    ("H", "H", (0.4371, 1.0804, 0.8918), 0.025),
    ("H", "H", (0.4371, 1.0804, -0.8918), 0.025),
]
METHANOL_BONDS = [(1, 2), (1, 3), (2, 4), (1, 5), (1, 6)]


def methanol_mol2(name: str, shift: float = 0.0) -> str:
    lines = ["@<TRIPOS>MOLECULE", name, f" {len(METHANOL_ATOMS)} {len(METHANOL_BONDS)} 1 0 0", "SMALL",
             "USER_CHARGES", "", "@<TRIPOS>ATOM"]  # fmt: skip
    for k, (sym, typ, (x, y, z), q) in enumerate(METHANOL_ATOMS, start=1):
        lines.append(f"{k:7d} {sym}{k:<4d} {x + shift:10.4f}{y:10.4f}{z:10.4f} {typ:<6s} 1 MOL {q:9.4f}")
    lines.append("@<TRIPOS>BOND")
    for k, (i, j) in enumerate(METHANOL_BONDS, start=1):
        lines.append(f"{k:6d}{i:6d}{j:6d}    1")
    return "\n".join(lines) + "\n"


def test_mol2_multi_molecule(tmp_path: Path) -> None:
    path = write_text(tmp_path / "two.mol2", methanol_mol2("meoh-a") + "\n" + methanol_mol2("meoh-b", 5.0))
    images = read(path)
    assert len(images) == 2
    ref = np.array([p for _, _, p, _ in METHANOL_ATOMS])
    assert images[0].get_chemical_symbols() == ["C", "O", "H", "H", "H", "H"]
    assert np.allclose(images[0].positions, ref, atol=1e-4)
    assert np.allclose(images[1].positions, ref + np.array([5.0, 0.0, 0.0]), atol=1e-4)
    assert images[1].info["name"] == "meoh-b"
    assert images[0].info["rdkit_mol"].GetNumBonds() == 5
    assert np.allclose(images[0].arrays["partial_charges"], [q for *_, q in METHANOL_ATOMS])
    single = read(write_text(tmp_path / "one.mol2", methanol_mol2("meoh")))
    assert isinstance(single, ase.Atoms)


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    path = tmp_path / "structure.txt"
    ase.io.write(path, molecule("H2O"), format="xyz")
    assert len(read(path, format="XYZ")) == 3
    with pytest.raises(StructureError, match=r"supported formats"):
        read(path, format="pdf")


# ----------------------------------------------------------------------------------------- errors


def test_truncated_xyz(tmp_path: Path) -> None:
    path = write_text(tmp_path / "trunc.xyz", "5\ncomment\nH 0 0 0\nH 0 0 1\nH 0 0 2\n")
    with pytest.raises(StructureError, match=r"trunc.xyz record 0"):
        read(path)
    two = "2\n\nH 0 0 0\nH 0 0 1\n" + "3\n\nH 0 0 0\nH 0 0 1\n"
    path = write_text(tmp_path / "trunc2.xyz", two)
    with pytest.raises(StructureError, match=r"trunc2.xyz record 1 \(starting at line 5\)") as info:
        read(path)
    assert info.value.record == 1


def test_unknown_element_symbol(tmp_path: Path) -> None:
    path = write_text(tmp_path / "xx.xyz", "2\n\nXx 0 0 0\nH 0 0 1\n")
    with pytest.raises(StructureError, match=r"xx.xyz.*unknown element symbol 'Xx'"):
        read(path)
    path = write_text(tmp_path / "dummy.xyz", "2\n\nH 0 0 0\nX 0 0 1\n")
    with pytest.raises(StructureError, match=r"dummy.xyz record 0: atom 1 has unknown element"):
        read(path)


def test_nan_coordinate(tmp_path: Path) -> None:
    path = write_text(tmp_path / "nan.xyz", "2\n\nH 0 0 0\nH nan 0 1\n")
    with pytest.raises(StructureError, match=r"nan.xyz record 0: atom 1 has non-finite"):
        read(path)


def test_atoms_too_close_and_configurable_threshold(tmp_path: Path) -> None:
    path = write_text(tmp_path / "close.xyz", "3\n\nO 0 0 0\nH 3 0 0\nH 3.3 0 0\n")
    with pytest.raises(StructureError, match=r"close.xyz record 0: atoms 1 \(H\) and 2 \(H\) are 0.3000 Å"):
        read(path)
    assert len(read(path, min_distance=0.2)) == 3


def test_too_close_through_periodic_image() -> None:
    atoms = ase.Atoms("H2", positions=[[0.1, 0, 0], [4.8, 0, 0]], cell=[5.0, 5.0, 5.0], pbc=True)
    with pytest.raises(StructureError, match=r"atoms 0 \(H\) and 1 \(H\) are 0.3000 Å apart \(via periodic"):
        validate_atoms(atoms, "box")
    atoms.pbc = False  # the same positions are fine without periodicity
    validate_atoms(atoms, "box")
    tiny = ase.Atoms("H", cell=[0.3, 5.0, 5.0], pbc=True)
    with pytest.raises(StructureError, match=r"own periodic image"):
        validate_atoms(tiny, "tiny")
    validate_atoms(tiny, "tiny", check_distances=False)


def test_empty_structure(tmp_path: Path) -> None:
    path = write_text(tmp_path / "empty.xyz", "0\n\n")
    with pytest.raises(StructureError, match=r"empty.xyz record 0: empty structure"):
        read(path)
    with pytest.raises(StructureError, match=r"nothing.xyz: no structures found"):
        read(write_text(tmp_path / "nothing.xyz", ""))
    with pytest.raises(StructureError, match=r"empty structure"):
        validate_atoms(ase.Atoms(), "in-memory")


def test_zero_volume_cell(tmp_path: Path) -> None:
    text = '2\nLattice="3 0 0 6 0 0 0 0 3" pbc="T T T"\nH 0 0 0\nH 1 1 1\n'
    with pytest.raises(StructureError, match=r"flat.extxyz record 0: periodic structure.*zero-volume"):
        read(write_text(tmp_path / "flat.extxyz", text))
    slab = ase.Atoms("H", cell=[[3, 0, 0], [0, 0, 0], [0, 0, 0]], pbc=[True, True, False])
    with pytest.raises(StructureError, match=r"zero-length lattice vector 1"):
        validate_atoms(slab, "slab")
    slab.cell = [[3, 0, 0], [6, 0, 0], [0, 0, 0]]
    with pytest.raises(StructureError, match=r"zero-area"):
        validate_atoms(slab, "slab")
    slab.cell = [[3, 0, 0], [0, 3, 0], [0, 0, 0]]  # a proper slab with an empty third vector
    validate_atoms(slab, "slab")


def test_sdf_with_broken_record(tmp_path: Path) -> None:
    blocks = []
    for smi in ["CCO", "CCN", "CCC"]:
        mol = from_smiles(smi, embed_3d=True).info["rdkit_mol"]
        blocks.append(Chem.MolToMolBlock(mol))
    lines = blocks[1].splitlines()
    lines[3] = "garbage counts line"
    blocks[1] = "\n".join(lines) + "\n"
    path = write_text(tmp_path / "broken.sdf", "$$$$\n".join(blocks) + "$$$$\n")
    with pytest.raises(StructureError, match=r"broken.sdf record 1") as info:
        read(path)
    assert info.value.record == 1


def test_unknown_extension_lists_formats(tmp_path: Path) -> None:
    path = write_text(tmp_path / "thing.abc", "whatever")
    with pytest.raises(StructureError, match=r"thing.abc") as info:
        read(path)
    for fmt in ("xyz", "extxyz", "sdf", "mol2", "cif", "vasp", "pdb", "db"):
        assert fmt in str(info.value)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("garbage.cif", "this is not a cif\nfoo bar\n"),
        ("garbage.xyz", "hello\nworld\n"),
        ("garbage.db", "not a database"),
        ("garbage.mol2", "@<TRIPOS>MOLECULE\nbroken\nnonsense\n"),
        ("POSCAR", "not a poscar\n"),
    ],
)
def test_garbage_files(tmp_path: Path, name: str, text: str) -> None:
    with pytest.raises(StructureError, match=name):
        read(write_text(tmp_path / name, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StructureError, match=r"missing.xyz: file not found"):
        read(tmp_path / "missing.xyz")
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(StructureError, match=r"file not found"):
        read(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()  # reading never creates a database


def test_validation_finds_the_one_close_pair_in_large_structures() -> None:
    """10,000 atoms on a 1.5 Å grid: accepted as they are; a single pair moved close together (far
    apart in atom order, or only through the periodic boundary) is found and named exactly."""
    grid = np.stack(np.meshgrid(*[np.arange(22.0)] * 3, indexing="ij"), -1).reshape(-1, 3)[:10000] * 1.5
    protein_like = ase.Atoms(numbers=np.full(len(grid), 6), positions=grid)
    crystal = ase.Atoms(numbers=np.full(len(grid), 6), positions=grid, cell=[33.0] * 3, pbc=True)
    assert validate_atoms(protein_like, "grid") is protein_like
    assert validate_atoms(crystal, "periodic grid") is crystal

    close = protein_like.copy()
    close.positions[7000] = close.positions[123] + [0.0, 0.3, 0.0]
    with pytest.raises(StructureError, match=r"grid: atoms 123 \(C\) and 7000 \(C\) are 0.3000 Å apart,"):
        validate_atoms(close, "grid")

    # atom 21 sits at z = 31.5 Å, the far side of the cell from atom 0 (z = 0): 0.2 Å through the boundary
    wrapped = crystal.copy()
    wrapped.positions[21, 2] = 32.8
    with pytest.raises(StructureError, match=r"atoms 0 \(C\) and 21 \(C\) are 0.2000 Å apart \(via periodic"):
        validate_atoms(wrapped, "periodic grid")
    wrapped.pbc = False
    assert validate_atoms(wrapped, "open grid") is wrapped
