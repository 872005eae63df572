"""Tests of atomgraph.features: featurisers, element property table, radial encodings."""

from __future__ import annotations

import math
import platform

import numpy as np
import pytest
import torch
from rdkit import Chem

from atomgraph.features import (
    DEFAULT_ATOM_FEATURIZER,
    ELEMENT_PROPERTIES,
    ELEMENT_TABLE_PATH,
    AtomFeaturizer,
    BesselRBF,
    BondFeaturizer,
    CosineCutoff,
    ElementEmbeddingTable,
    FeatureLayout,
    GaussianRBF,
    PolynomialEnvelope,
    bond_type_index,
    bond_type_indices,
    element_features,
    element_property_layout,
    element_property_table,
    element_symbols,
    gasteiger_charges,
    one_hot_block,
    one_hot_index,
    scalar_block,
)
from atomgraph.features.atom_features import atom_rows, record_charges
from atomgraph.features.bond_features import bond_array, bond_rows
from atomgraph.features.element_properties import _parse_table
from atomgraph.features.gasteiger import gasteiger_charges_of, rdkit_gasteiger_charges
from atomgraph.features.prepared import prepared_copy

SMILES = [
    "CC(=O)O",  # acetic acid
    "c1ccccc1",  # benzene
    "[NH4+]",
    "C[C@@H](C(=O)O)N",  # L-alanine
    "CC(=O)[O-]",
    "C/C=C/C",
    "C[Se]C",
    "O=S(=O)(O)c1ccc(Br)cc1",
    "C#N",
]


def mol(smiles: str, hs: bool = True) -> Chem.Mol:
    m = Chem.MolFromSmiles(smiles)
    assert m is not None, smiles
    return Chem.AddHs(m) if hs else m


def column(featurizer, name: str) -> int:
    return featurizer.names.index(name)


def one_hot_label(featurizer, x: torch.Tensor, block: str) -> str:
    """The column name that is set in one-hot ``block`` of row ``x``."""
    s = featurizer.slices[block]
    hot = torch.nonzero(x[s]).flatten()
    assert hot.numel() == 1
    return featurizer.names[s.start + int(hot[0])]


# --------------------------------------------------------------------------------------------- layout


def test_layout_basics():
    layout = FeatureLayout([one_hot_block("element", ["H", "C"]), scalar_block("mass")])
    assert layout.dim == len(layout) == 4
    assert layout.names == ["element=H", "element=C", "element=other", "mass"]
    assert layout.slices == {"element": slice(0, 3), "mass": slice(3, 4)}
    assert layout.one_hot_blocks == ["element"]
    assert layout.index("mass") == 3
    assert "element" in layout.describe()
    with pytest.raises(ValueError, match="duplicate"):
        FeatureLayout([scalar_block("a"), scalar_block("a")])
    with pytest.raises(KeyError):
        layout.block("charge")
    assert one_hot_index("C", ["H", "C"]) == 1
    assert one_hot_index("Se", ["H", "C"]) == 2


# ---------------------------------------------------------------------------------------------- atoms


def assert_partition(slices: dict[str, slice], dim: int) -> None:
    start = 0
    for s in slices.values():
        assert s.start == start and s.stop > s.start
        start = s.stop
    assert start == dim


def test_atom_layout():
    f = DEFAULT_ATOM_FEATURIZER
    assert f.dim == len(f.names) == 47
    assert len(set(f.names)) == f.dim
    assert_partition(f.slices, f.dim)
    assert list(f.slices) == [
        "element",
        "formal_charge",
        "gasteiger_charge",
        "hybridization",
        "total_num_hs",
        "aromatic",
        "chirality",
        "mass",
        "degree",
        "in_ring",
    ]
    for name in (
        "element=C",
        "element=other",
        "formal_charge=+1",
        "formal_charge=0",
        "formal_charge=-2",
        "mass",
        "chirality=CW",
        "hybridization=sp3d2",
    ):
        assert name in f.names


@pytest.mark.parametrize("hs", [True, False])
@pytest.mark.parametrize("smiles", SMILES)
def test_atom_one_hot_blocks_sum_to_one(smiles, hs):
    m = mol(smiles, hs)
    f = DEFAULT_ATOM_FEATURIZER
    x = f(m)
    assert x.shape == (m.GetNumAtoms(), f.dim)
    assert x.dtype == torch.get_default_dtype()
    assert torch.isfinite(x).all()
    for block in f.layout.one_hot_blocks:
        assert torch.equal(x[:, f.slices[block]].sum(1), torch.ones(m.GetNumAtoms())), block


def test_acetic_acid_values():
    f = DEFAULT_ATOM_FEATURIZER
    m = mol("CC(=O)O")
    x = f(m)
    methyl, carbonyl, o_double, o_h = x[0], x[1], x[2], x[3]
    assert one_hot_label(f, methyl, "element") == "element=C"
    assert one_hot_label(f, methyl, "hybridization") == "hybridization=sp3"
    assert one_hot_label(f, methyl, "total_num_hs") == "total_num_hs=3"
    assert one_hot_label(f, methyl, "degree") == "degree=4"
    assert one_hot_label(f, carbonyl, "hybridization") == "hybridization=sp2"
    assert one_hot_label(f, carbonyl, "total_num_hs") == "total_num_hs=0"
    assert one_hot_label(f, carbonyl, "degree") == "degree=3"
    assert one_hot_label(f, o_double, "element") == "element=O"
    assert one_hot_label(f, o_h, "total_num_hs") == "total_num_hs=1"
    assert one_hot_label(f, methyl, "formal_charge") == "formal_charge=0"
    assert one_hot_label(f, methyl, "chirality") == "chirality=unspecified"
    assert methyl[column(f, "mass")] == pytest.approx(12.011 / 100, abs=1e-4)
    assert o_h[column(f, "mass")] == pytest.approx(15.999 / 100, abs=1e-4)
    assert x[:, column(f, "aromatic")].sum() == 0 and x[:, column(f, "in_ring")].sum() == 0
    # the carbonyl carbon is positive, the oxygens negative
    q = x[:, column(f, "gasteiger_charge")]
    assert q[1] > 0 and q[2] < 0 and q[3] < 0
    # explicit hydrogens: element H, s hybridised, one neighbour
    for h in x[4:]:
        assert one_hot_label(f, h, "element") == "element=H"
        assert one_hot_label(f, h, "hybridization") == "hybridization=s"
        assert one_hot_label(f, h, "degree") == "degree=1"


def test_benzene_atoms():
    f = DEFAULT_ATOM_FEATURIZER
    x = f(mol("c1ccccc1"))
    carbons = x[:6]
    assert torch.all(carbons[:, column(f, "aromatic")] == 1)
    assert torch.all(carbons[:, column(f, "in_ring")] == 1)
    assert torch.all(carbons[:, column(f, "hybridization=sp2")] == 1)
    assert torch.all(carbons[:, column(f, "total_num_hs=1")] == 1)
    assert torch.all(x[6:, column(f, "in_ring")] == 0)


def test_ammonium():
    f = DEFAULT_ATOM_FEATURIZER
    for hs in (True, False):
        m = mol("[NH4+]", hs)
        x = f(m)
        n = x[0]
        assert one_hot_label(f, n, "formal_charge") == "formal_charge=+1"
        assert one_hot_label(f, n, "total_num_hs") == "total_num_hs=4"
        assert one_hot_label(f, n, "hybridization") == "hybridization=sp3"
        assert one_hot_label(f, n, "degree") == "degree=4"
        assert float(x[:, column(f, "gasteiger_charge")].sum()) == pytest.approx(1.0, abs=1e-4)


def test_chirality_tags():
    f = DEFAULT_ATOM_FEATURIZER
    l_ala = f(mol("C[C@@H](C(=O)O)N"))
    d_ala = f(mol("C[C@H](C(=O)O)N"))
    rac = f(mol("CC(C(=O)O)N"))
    assert one_hot_label(f, l_ala[1], "chirality") == "chirality=CW"
    assert one_hot_label(f, d_ala[1], "chirality") == "chirality=CCW"
    assert one_hot_label(f, rac[1], "chirality") == "chirality=unspecified"
    assert one_hot_label(f, l_ala[0], "chirality") == "chirality=unspecified"


def test_unknown_element_and_missing_gasteiger():
    f = DEFAULT_ATOM_FEATURIZER
    x = f(mol("C[Se]C"))
    assert one_hot_label(f, x[1], "element") == "element=other"
    assert one_hot_label(f, x[0], "element") == "element=C"
    # RDKit has no Gasteiger parameters for Se: NaN -> 0 for the whole molecule
    assert torch.all(x[:, column(f, "gasteiger_charge")] == 0)
    # Se is in a custom vocabulary
    custom = AtomFeaturizer(elements=["C", "Se", 1])
    assert custom.elements == ("C", "Se", "H")
    assert custom.names[:4] == ["element=C", "element=Se", "element=H", "element=other"]
    assert custom.dim == DEFAULT_ATOM_FEATURIZER.dim - 13 + 4
    assert one_hot_label(custom, custom(mol("C[Se]C"))[1], "element") == "element=Se"
    with pytest.raises(ValueError, match="Xx"):
        AtomFeaturizer(elements=["C", "Xx"])


@pytest.mark.parametrize("hs", [True, False])
@pytest.mark.parametrize(
    "smiles", ["CC(=O)O", "CC(=O)[O-]", "C[NH3+]", "c1ccccc1O", "O=S(=O)(O)c1ccc(Br)cc1"]
)
def test_gasteiger_sums_to_formal_charge(smiles, hs):
    m = mol(smiles, hs)
    q = gasteiger_charges(m)
    assert q.shape == (m.GetNumAtoms(),)
    assert np.isfinite(q).all()
    assert q.sum() == pytest.approx(Chem.GetFormalCharge(m), abs=1e-4)
    assert not m.GetAtomWithIdx(0).HasProp("_GasteigerCharge")  # computed on a copy


#: molecules for every branch of the Gasteiger method: shared formal charges (amidinium, guanidinium,
#: carboxylate, nitro, zwitterions, a charge alone), sulfur in each mode (thioether, sulfoxide, sulfone,
#: thiophene, sp3d and sp3d2 sulfur with one or two O neighbours), the extra elements (P, Si, B, Mg),
#: elements without parameters (Se, Fe), isotopes, explicit [H], radicals, salts and a large drug
GASTEIGER_CASES = [
    "CC(=O)O", "CC(=O)[O-]", "C[NH3+]", "NC(=[NH2+])c1ccccc1", "NC(N)=[NH2+]", "[O-][N+](=O)c1ccccc1",
    "[NH3+]CC([O-])=O", "C[N+](C)(C)C", "[O-]c1ccccc1", "CSC", "CS(C)=O", "CS(C)(=O)=O", "c1ccsc1",
    "O=S(=O)(O)c1ccc(Br)cc1", "OP(O)(O)=O", "CP(C)c1ccccc1", "C[Si](C)(C)Cl", "OB(O)c1ccccc1",
    "C[Mg]Br", "C[Se]C", "[Fe+2]", "FS(F)(F)(F)(F)F", "[2H]C([2H])([2H])O", "[H]C#N", "[CH3]", "[Na+].[Cl-]",
    "C#CC=C=CC", "N#Cc1ccc(I)cc1F", "C1=CC=CC=C1[N-][S](=O)(=O)c1ccccc1", "CS(O)(O)(F)(F)F", "CS(=O)(F)(F)F",
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "CN1CCC[C@H]1c1cccnc1", "O=C([O-])c1ccccc1C(=O)[O-]",
    "CC1(C)S[C@@H]2[C@H](NC(=O)Cc3ccccc3)C(=O)N2[C@H]1C(=O)O",
]  # fmt: skip


@pytest.mark.parametrize("hs", [False, True])
@pytest.mark.parametrize("fold", [True, False])
def test_gasteiger_charges_of_a_chunk_equal_rdkit(hs, fold):
    """The charges computed for a chunk at once are RDKit's to the last bit (on x86-64; within 1e-12
    elsewhere), with implicit or explicit hydrogens, folded or not; a molecule without parameters is 0."""
    molecules = [prepared_copy(mol(s, hs)) for s in GASTEIGER_CASES]
    atoms = np.concatenate([np.array(atom_rows(m), dtype=np.float64).reshape(-1, 9) for m in molecules])
    bonds = bond_array([row for m in molecules for row in bond_rows(m)])
    counts = np.array([m.GetNumAtoms() for m in molecules])
    bond_counts = np.array([m.GetNumBonds() for m in molecules])
    chunk = gasteiger_charges_of(
        atoms[:, 0], atoms[:, 1], atoms[:, 2], atoms[:, 3], counts, bonds, bond_counts, fold
    )
    expected = np.concatenate([rdkit_gasteiger_charges(Chem.Mol(m), fold) for m in molecules])
    folded = np.concatenate([rdkit_gasteiger_charges(Chem.Mol(m)) for m in molecules])
    if platform.machine().lower() in ("x86_64", "amd64"):  # RDKit's wheels here fuse no multiply-adds
        assert np.array_equal(chunk, expected)
        assert np.array_equal(record_charges(atoms, counts, bonds, bond_counts), folded)
    assert chunk == pytest.approx(expected, rel=1e-12, abs=1e-15)
    selenium = GASTEIGER_CASES.index("C[Se]C")
    first = int(counts[:selenium].sum())
    assert np.all(chunk[first : first + counts[selenium]] == 0)


def test_bond_graph_builder_charges_the_same_few_or_many():
    """A builder of a few molecules reads RDKit's charges, one of many computes them together: the
    graphs are bit-identical either way."""
    from atomgraph.graphs.bond_graph import BondGraphBuilder, bond_graphs

    molecules = [mol(s, False) for s in GASTEIGER_CASES]
    assert len(molecules) > BondGraphBuilder.PER_MOLECULE_CHARGES
    together = bond_graphs(molecules)
    for m, graph in zip(molecules, together, strict=True):
        alone = bond_graphs([m])[0]
        assert torch.equal(alone.x, graph.x), Chem.MolToSmiles(m)


def test_implicit_and_explicit_h_agree_on_heavy_atoms():
    f = DEFAULT_ATOM_FEATURIZER
    for smiles in ("CC(=O)O", "c1ccccc1O", "C[NH3+]"):
        implicit = f(mol(smiles, hs=False))
        explicit = f(mol(smiles, hs=True))[: implicit.shape[0]]
        keep = [i for i, name in enumerate(f.names) if name != "gasteiger_charge"]
        assert torch.equal(implicit[:, keep], explicit[:, keep])


def test_atom_featurizer_edge_cases():
    f = DEFAULT_ATOM_FEATURIZER
    assert f(Chem.Mol()).shape == (0, f.dim)
    unsanitized = Chem.MolFromSmiles("C1CC1C", sanitize=False)
    x = f(unsanitized)
    assert x[:, column(f, "in_ring")].tolist() == [1, 1, 1, 0]
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert f(mol("CC")).dtype == torch.float64
    finally:
        torch.set_default_dtype(old)


# ---------------------------------------------------------------------------------------------- bonds


def test_bond_layout():
    f = BondFeaturizer()
    assert f.dim == len(f.names) == 11
    assert_partition(f.slices, f.dim)
    assert f.names[:5] == [f"bond_type={t}" for t in ("single", "double", "triple", "aromatic", "other")]
    assert f.names[-4:] == ["stereo=none", "stereo=Z", "stereo=E", "stereo=other"]


@pytest.mark.parametrize("smiles", SMILES)
def test_bond_one_hot_blocks(smiles):
    m = mol(smiles)
    f = BondFeaturizer()
    x = f(m)
    assert x.shape == (m.GetNumBonds(), f.dim)
    for block in f.layout.one_hot_blocks:
        assert torch.equal(x[:, f.slices[block]].sum(1), torch.ones(m.GetNumBonds()))
    index = bond_type_indices(m)
    assert torch.equal(index, x[:, f.slices["bond_type"]].argmax(1))


def test_benzene_bonds():
    f = BondFeaturizer()
    m = mol("c1ccccc1", hs=False)
    x = f(m)
    assert x.shape == (6, 11)
    assert torch.all(x[:, f.names.index("bond_type=aromatic")] == 1)
    assert torch.all(x[:, f.names.index("conjugated")] == 1)
    assert torch.all(x[:, f.names.index("in_ring")] == 1)
    assert torch.all(x[:, f.names.index("stereo=none")] == 1)
    assert all(bond_type_index(b) == 3 for b in m.GetBonds())


def test_ethene_and_acetylene_bonds():
    f = BondFeaturizer()
    m = mol("C=C")
    x = f(m)
    double = [b.GetIdx() for b in m.GetBonds() if b.GetBondType() == Chem.BondType.DOUBLE]
    assert len(double) == 1
    assert x[double[0], f.names.index("bond_type=double")] == 1
    assert bond_type_index(m.GetBondWithIdx(double[0])) == 1
    assert int((x[:, f.names.index("bond_type=single")] == 1).sum()) == 4
    assert x[:, f.names.index("in_ring")].sum() == 0
    triple = mol("C#C", hs=False)
    assert bond_type_index(triple.GetBondWithIdx(0)) == 2
    assert bond_type_indices(triple).dtype == torch.long


def test_bond_stereo():
    f = BondFeaturizer()
    z_col, e_col, none_col = (f.names.index(n) for n in ("stereo=Z", "stereo=E", "stereo=none"))
    trans = f(mol("C/C=C/C", hs=False))
    cis = f(mol("C/C=C\\C", hs=False))
    unspecified = f(mol("CC=CC", hs=False))
    assert trans[1, e_col] == 1 and trans[1, z_col] == 0
    assert cis[1, z_col] == 1 and cis[1, e_col] == 0
    assert unspecified[1, none_col] == 1
    # STEREOCIS / STEREOTRANS map to Z / E as well
    m = mol("CC=CC", hs=False)
    bond = m.GetBondWithIdx(1)
    bond.SetStereoAtoms(0, 3)
    bond.SetStereo(Chem.BondStereo.STEREOCIS)
    assert f(m)[1, z_col] == 1
    bond.SetStereo(Chem.BondStereo.STEREOTRANS)
    assert f(m)[1, e_col] == 1
    bond.SetStereo(Chem.BondStereo.STEREOANY)
    assert f(m)[1, f.names.index("stereo=other")] == 1


def test_bond_featurizer_no_bonds():
    f = BondFeaturizer()
    assert f(mol("[Na+]", hs=False)).shape == (0, f.dim)
    assert bond_type_indices(mol("[Na+]", hs=False)).shape == (0,)


# ------------------------------------------------------------------------------------ element table


def test_element_table_shape_and_layout():
    table, names = element_property_table()
    layout = element_property_layout()
    assert table.shape == (101, 24) == (101, layout.dim)
    assert names == layout.names
    assert table.dtype == torch.get_default_dtype()
    assert torch.all(table[0] == 0)
    assert torch.isfinite(table).all()
    assert names[:10] == list(ELEMENT_PROPERTIES)
    assert names[10] == "electronegativity_is_missing"
    assert names[-4:] == ["block=s", "block=p", "block=d", "block=f"]
    assert torch.all(table[1:, layout.slices["block"]].sum(1) == 1)
    symbols = element_symbols()
    assert symbols[1] == "H" and symbols[6] == "C" and symbols[26] == "Fe" and symbols[100] == "Fm"


def test_element_table_values():
    table, names = element_property_table(standardize=False)
    col = {name: i for i, name in enumerate(names)}
    na, cl, c, h, fe = table[11], table[17], table[6], table[1], table[26]
    assert float(na[col["electronegativity"]]) == pytest.approx(0.93, abs=0.01)
    assert float(cl[col["electronegativity"]]) == pytest.approx(3.16, abs=0.01)
    assert 0.70 <= float(c[col["covalent_radius"]]) <= 0.77  # Å, not pm
    assert float(h[col["ionization_energy"]]) == pytest.approx(13.6, abs=0.01)  # eV
    assert float(c[col["atomic_mass"]]) == pytest.approx(12.011, abs=1e-3)
    assert float(cl[col["group"]]) == 17 and float(cl[col["period"]]) == 3
    assert float(c[col["valence_electrons"]]) == 4 and float(na[col["valence_electrons"]]) == 1
    assert float(cl[col["electron_affinity"]]) == pytest.approx(3.61, abs=0.01)
    assert fe[col["block=d"]] == 1 and c[col["block=p"]] == 1 and na[col["block=s"]] == 1
    assert table[58, col["block=f"]] == 1  # Ce
    assert 1.0 < float(fe[col["vdw_radius"]]) < 3.0


def test_element_table_missing_values():
    raw, names = element_property_table(standardize=False)
    col = {name: i for i, name in enumerate(names)}
    flag = raw[1:, col["electronegativity_is_missing"]].bool()
    en = raw[1:, col["electronegativity"]]
    # mendeleev has no Pauling electronegativity for He, Ne, Ar; it does for C
    for z in (2, 10, 18):
        assert raw[z, col["electronegativity_is_missing"]] == 1
    assert raw[6, col["electronegativity_is_missing"]] == 0
    # missing values are filled with the mean over the known elements
    mean_known = float(en[~flag].mean())
    assert torch.allclose(en[flag], torch.full_like(en[flag], mean_known), atol=1e-5)
    # lanthanides have no group in mendeleev
    assert raw[58, col["group_is_missing"]] == 1 and raw[6, col["group_is_missing"]] == 0
    # nothing lacks a period
    assert raw[:, col["period_is_missing"]].sum() == 0
    # standardised: known values have mean 0 and std 1, missing values are exactly 0
    std, _ = element_property_table(standardize=True)
    z_en = std[1:, col["electronegativity"]]
    assert float(z_en[~flag].mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(z_en[~flag].std(unbiased=False)) == pytest.approx(1.0, abs=1e-5)
    assert torch.all(z_en[flag] == 0)
    assert torch.equal(std[:, 10:], raw[:, 10:])  # flags and one-hots untouched


def test_element_table_is_a_fresh_copy():
    table, _ = element_property_table()
    table[6] = 123.0
    again, _ = element_property_table()
    assert not torch.any(again[6] == 123.0)


def test_element_features_and_embedding_table():
    table, _ = element_property_table()
    z = torch.tensor([1, 6, 8, 26, 0])
    x = element_features(z)
    assert x.shape == (5, 24)
    assert torch.equal(x, table[z])
    assert torch.all(x[-1] == 0)
    emb = ElementEmbeddingTable()
    assert emb.dim == 24 and emb.names == element_property_layout().names
    assert torch.equal(emb(z), x)
    assert "table" in emb.state_dict() and not list(emb.parameters())
    assert emb.double()(z).dtype == torch.float64
    raw = ElementEmbeddingTable(standardize=False)
    assert float(raw(torch.tensor([11]))[0, 0]) == pytest.approx(0.93, abs=0.01)
    for bad in (101, 118, -1):
        with pytest.raises(ValueError, match=str(bad)):
            element_features(torch.tensor([6, bad]))
        with pytest.raises(ValueError, match=str(bad)):
            emb(torch.tensor([bad]))
    with pytest.raises(TypeError):
        element_features(torch.tensor([6.0]))


def test_element_table_regenerates_from_mendeleev():
    pytest.importorskip("mendeleev")
    from atomgraph.features import build_element_table

    shipped = _parse_table(ELEMENT_TABLE_PATH.read_text())
    rebuilt = _parse_table(build_element_table())
    assert rebuilt[0] == shipped[0]  # symbols
    assert rebuilt[1] == shipped[1]  # blocks
    np.testing.assert_allclose(rebuilt[2], shipped[2], rtol=1e-7, equal_nan=True)
    assert shipped[2].shape == (100, len(ELEMENT_PROPERTIES))


# ----------------------------------------------------------------------------------------------- radial


def test_gaussian_rbf_shape_and_peaks():
    rbf = GaussianRBF(0.0, 5.0, 11)
    assert rbf.widths[0] == pytest.approx(0.5)
    d = torch.linspace(0, 5, 501)
    out = rbf(d)
    assert out.shape == (501, 11)
    peaks = d[out.argmax(0)]
    assert torch.allclose(peaks, rbf.centers, atol=1e-6)
    assert torch.allclose(rbf(rbf.centers).diagonal(), torch.ones(11))
    # one standard deviation away: exp(-1/2)
    assert float(rbf(torch.tensor([1.5]))[0, 2]) == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert rbf(torch.rand(3, 4)).shape == (3, 4, 11)


def test_gaussian_presets():
    cg = GaussianRBF.cgcnn()
    assert cg.num == 41 and cg.centers.shape == (41,)
    assert torch.allclose(cg.centers, torch.arange(0, 8.0001, 0.2), atol=1e-5)
    d = torch.tensor([0.0, 1.37, 3.9, 7.95])
    reference = torch.exp(-((d[:, None] - cg.centers) ** 2) / 0.2**2)  # CGCNN GaussianDistance, var=0.2
    assert torch.allclose(cg(d), reference, atol=1e-6)
    sn = GaussianRBF.schnet()
    assert sn.num == 50
    spacing = 5.0 / 49
    assert float(sn.widths[0]) == pytest.approx(spacing, rel=1e-6)
    reference = torch.exp(-0.5 / spacing**2 * (d[:, None] - sn.centers) ** 2)  # schnetpack / PyG
    assert torch.allclose(sn(d), reference, atol=1e-6)


def test_gaussian_trainable():
    rbf = GaussianRBF(num=8, trainable=True)
    assert {name for name, _ in rbf.named_parameters()} == {"centers", "widths"}
    rbf(torch.rand(5) * 5).sum().backward()
    assert rbf.centers.grad is not None and torch.isfinite(rbf.widths.grad).all()
    assert not list(GaussianRBF(num=8).parameters())


def test_bessel_rbf():
    cutoff, num = 5.0, 8
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # built in float64, the frequencies are exact to 1e-16
    try:
        rbf = BesselRBF(cutoff, num)
    finally:
        torch.set_default_dtype(old)
    assert rbf.freqs.dtype == torch.float64
    n = torch.arange(1, num + 1, dtype=torch.float64)
    d = torch.tensor([0.3, 1.0, 2.5, 4.99], dtype=torch.float64)
    reference = math.sqrt(2 / cutoff) * torch.sin(n * math.pi * d[:, None] / cutoff) / d[:, None]
    assert torch.allclose(rbf(d), reference, atol=1e-12)
    # d -> 0: finite value (the limit) and finite gradient (zero), also in float32
    rbf32 = BesselRBF(cutoff, num)
    d0 = torch.tensor([0.0, 1e-4, 0.5], requires_grad=True)
    out = rbf32(d0)
    assert out.shape == (3, num)
    assert torch.isfinite(out).all()
    limit = math.sqrt(2 / cutoff) * n.float() * math.pi / cutoff
    assert torch.allclose(out[0], limit, rtol=1e-6)
    (grad,) = torch.autograd.grad(out.sum(), d0, create_graph=True)
    assert torch.isfinite(grad).all() and float(grad[0].detach()) == 0.0
    (grad2,) = torch.autograd.grad(grad.sum(), d0)
    assert torch.isfinite(grad2).all()
    # continuous across the switch to the Taylor series
    eps = BesselRBF.small
    near = torch.tensor([eps * (1 - 1e-6), eps * (1 + 1e-6)], dtype=torch.float64)
    vals = rbf(near)
    assert torch.allclose(vals[0], vals[1], rtol=1e-9)
    trainable = BesselRBF(cutoff, num, trainable=True)
    assert [name for name, _ in trainable.named_parameters()] == ["freqs"]


@pytest.mark.parametrize("cls", [CosineCutoff, PolynomialEnvelope])
def test_cutoff_functions(cls):
    cutoff = 4.0
    fn = cls(cutoff).double()
    d = torch.tensor([0.0, cutoff, cutoff + 0.1, 10.0], dtype=torch.float64)
    out = fn(d)
    assert out.shape == (4,)
    assert out.tolist() == [1.0, 0.0, 0.0, 0.0]
    inner = torch.linspace(0, cutoff, 101, dtype=torch.float64)[:-1]
    values = fn(inner)
    assert torch.all(values > 0) and torch.all(values <= 1)
    assert torch.all(values[1:] <= values[:-1])  # monotonically decreasing
    # value and derivative(s) vanish as d -> cutoff from below
    x = torch.tensor([cutoff - 1e-6, cutoff, cutoff + 1.0], dtype=torch.float64, requires_grad=True)
    y = fn(x)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    assert torch.all(y.abs() < 1e-9)
    assert torch.all(g.abs() < 1e-5)
    if cls is PolynomialEnvelope:
        (g2,) = torch.autograd.grad(g.sum(), x)
        assert torch.all(g2.abs() < 1e-4)
        assert torch.all(fn(torch.tensor([0.0, 1e-3], dtype=torch.float64)) <= 1.0)


def test_cosine_cutoff_formula():
    fn = CosineCutoff(5.0)
    d = torch.tensor([1.0, 2.5])
    assert torch.allclose(fn(d), 0.5 * (torch.cos(math.pi * d / 5.0) + 1))
    assert float(fn(torch.tensor([2.5]))) == pytest.approx(0.5)


def test_polynomial_envelope_formula():
    p, c = 6, 5.0
    fn = PolynomialEnvelope(c, exponent=p)
    x = torch.tensor([0.2, 0.5, 0.9])
    reference = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
    assert torch.allclose(fn(x * c), reference, atol=1e-6)


@pytest.mark.parametrize(
    "module",
    [
        GaussianRBF(0.0, 5.0, 6),
        GaussianRBF.cgcnn(),
        GaussianRBF(0.0, 5.0, 6, trainable=True),
        BesselRBF(5.0, 6),
        CosineCutoff(5.0),
        PolynomialEnvelope(5.0),
    ],
    ids=["gaussian", "cgcnn", "gaussian-trainable", "bessel", "cosine", "polynomial"],
)
def test_radial_gradcheck(module):
    module = module.double()
    d = torch.tensor([0.0, 5e-4, 0.7, 1.9, 3.3, 4.8, 6.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (d,))
    assert torch.autograd.gradgradcheck(module, (d,))


def test_element_table_falls_back_to_mendeleev_without_csv(monkeypatch, tmp_path):
    pytest.importorskip("mendeleev")
    from atomgraph.features import element_properties as ep

    expected, _ = element_property_table()
    monkeypatch.setattr(ep, "ELEMENT_TABLE_PATH", tmp_path / "missing.csv")
    ep._raw_table.cache_clear()
    ep._table_array.cache_clear()
    try:
        with pytest.warns(UserWarning, match="missing"):
            table, _ = element_property_table()
        assert torch.allclose(table, expected, atol=1e-6)
    finally:
        ep._raw_table.cache_clear()
        ep._table_array.cache_clear()


def test_values_beyond_the_named_ones_fall_into_other():
    """Out-of-vocabulary values (large charges, degree 6, unusual chiral tags and hybridisations,
    dative bonds) set the block's ``other`` column and nothing else in that block."""
    f = DEFAULT_ATOM_FEATURIZER
    sf6 = f(mol("FS(F)(F)(F)(F)F", hs=False))
    assert one_hot_label(f, sf6[1], "degree") == "degree=other"
    assert one_hot_label(f, sf6[1], "hybridization") == "hybridization=sp3d2"
    m = Chem.RWMol(mol("CC", hs=False))
    m.GetAtomWithIdx(0).SetFormalCharge(3)
    m.GetAtomWithIdx(1).SetFormalCharge(-7)
    m.GetAtomWithIdx(0).SetChiralTag(Chem.ChiralType.CHI_SQUAREPLANAR)
    m.GetAtomWithIdx(1).SetHybridization(Chem.HybridizationType.UNSPECIFIED)
    m.GetAtomWithIdx(1).SetNumExplicitHs(6)
    x = f(m)
    assert one_hot_label(f, x[0], "formal_charge") == "formal_charge=other"
    assert one_hot_label(f, x[1], "formal_charge") == "formal_charge=other"
    assert one_hot_label(f, x[0], "chirality") == "chirality=other"
    assert one_hot_label(f, x[1], "hybridization") == "hybridization=other"
    assert one_hot_label(f, x[1], "total_num_hs") == "total_num_hs=other"
    for block in ("element", "formal_charge", "hybridization", "total_num_hs", "chirality", "degree"):
        assert torch.all(x[:, f.slices[block]].sum(dim=1) == 1)
    dative = Chem.RWMol(mol("CN", hs=False))
    dative.GetBondWithIdx(0).SetBondType(Chem.BondType.DATIVE)
    b = BondFeaturizer()(dative)
    assert b[0, BondFeaturizer().names.index("bond_type=other")] == 1
    assert b[0, :5].sum() == 1


def test_an_empty_element_vocabulary_puts_every_atom_in_other():
    f = AtomFeaturizer(elements=[])
    x = f(mol("CCO", hs=False))
    assert f.dim == DEFAULT_ATOM_FEATURIZER.dim - 12
    assert torch.all(x[:, f.names.index("element=other")] == 1)
