"""Complex datasets (PDBbind-style folders, the OpenFF benchmark, sequence CSVs), splits, augmentation,
metrics and the config section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem
from torch_geometric.loader import DataLoader

from atomgraph.apps.complexes import (
    ComplexData,
    ComplexDataset,
    RandomRotationNoise,
    affinity_metrics,
    group_split,
    leave_one_group_out,
    load_complexes,
    load_pdbbind,
    load_sequence_csv,
    parse_pdbbind_index,
)
from atomgraph.apps.complexes.config import ComplexConfig, group_split_from_config, load_complex_dataset
from atomgraph.apps.complexes.features import ATOM_DIM, EDGE_DIM, EDGE_TYPE_INDEX, RESIDUE_DIM
from atomgraph.apps.complexes.models.affinity_joint import JointGraphAffinity
from atomgraph.apps.complexes.models.affinity_sequence import SequenceAffinity
from atomgraph.apps.complexes.synthetic import ligand_over_ring, peptide_mol, protein_from_mol

OPENFF = Path(__file__).resolve().parents[2] / "shared" / "data" / "protein_ligand_openff"

INDEX = """# ==============================================================================
# List of protein-ligand complexes with known binding data in PDBbind v.2020
# PDB code, resolution, release year, -logKd/Ki, Kd/Ki, reference, ligand name
# ==============================================================================
aaa1  2.00  2010   5.22  Kd=6uM        // aaa1.pdf (LIG)
bbb2  1.80  2011   7.00  Ki=100nM      // bbb2.pdf (LIG)
ccc3  NMR   2012   4.10  IC50=79uM     // ccc3.pdf (LIG)
"""


def _ligand_over_phe(mol: Chem.Mol, smiles: str) -> Chem.Mol:
    return ligand_over_ring(protein_from_mol(mol), smiles)


@pytest.fixture(scope="module")
def pdbbind_root(tmp_path_factory) -> Path:
    """aaa1 and bbb2 complete (bbb2 with a pocket file), ccc3 missing its folder."""
    root = tmp_path_factory.mktemp("pdbbind")
    for code, sequence, smiles, seed in (
        ("aaa1", "KFA", "c1ccccc1C(=O)[O-]", 0),
        ("bbb2", "DFW", "Cc1ccccc1", 1),
    ):
        folder = root / code
        folder.mkdir()
        mol = peptide_mol(sequence, seed=seed)
        Chem.MolToPDBFile(mol, str(folder / f"{code}_protein.pdb"))
        if code == "bbb2":
            Chem.MolToPDBFile(mol, str(folder / f"{code}_pocket.pdb"))
        ligand = _ligand_over_phe(mol, smiles)
        (folder / f"{code}_ligand.sdf").write_text(Chem.MolToMolBlock(ligand) + "$$$$\n")
    (root / "index").mkdir()
    (root / "index" / "INDEX_general_PL_data.2020").write_text(INDEX)
    return root


def test_parse_pdbbind_index(tmp_path):
    path = tmp_path / "INDEX"
    path.write_text(INDEX)
    table = parse_pdbbind_index(path)
    assert table["id"].tolist() == ["aaa1", "bbb2", "ccc3"]
    assert table["pK"].tolist() == [5.22, 7.0, 4.1]
    assert np.isnan(table["resolution"][2])


def test_pdbbind_folder_dataset(pdbbind_root, tmp_path):
    dataset = load_pdbbind(pdbbind_root, cache=tmp_path, progress=False)
    assert isinstance(dataset, ComplexDataset) and len(dataset) == 2
    assert dataset.meta.ids == ["aaa1", "bbb2"]
    assert [s["id"] for s in dataset.meta.skipped] == ["ccc3"]
    assert "no such entry folder" in dataset.meta.skipped[0]["error"]
    np.testing.assert_allclose(dataset.targets_array().ravel(), [5.22, 7.0])
    sample = dataset[0]
    assert isinstance(sample, ComplexData)
    assert sample.x.shape[1] == ATOM_DIM and sample.edge_attr.shape[1] == EDGE_DIM
    assert sample.res_x.shape[1] == RESIDUE_DIM
    assert int((sample.edge_type == EDGE_TYPE_INDEX["pi_stacking"]).sum()) > 0
    # cached copy: ComplexData comes back, and batches offset the residue graph
    again = load_pdbbind(pdbbind_root, cache=tmp_path, progress=False)
    batch = next(iter(DataLoader(again, batch_size=2)))
    assert isinstance(again[1], ComplexData)
    assert int(batch.res_edge_index.max()) < batch.res_x.shape[0]
    assert batch.res_batch.tolist() == sorted(batch.res_batch.tolist()) and int(batch.res_batch.max()) == 1
    assert JointGraphAffinity(hidden=16, layers=1)(batch).shape == (2, 1)


def test_labels_csv_with_groups(pdbbind_root, tmp_path):
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"pdb_id": ["aaa1", "bbb2"], "pK": [5.0, 6.0], "target": ["t1", "t2"]}).to_csv(
        labels, index=False
    )
    dataset = load_complexes(pdbbind_root, labels=labels, cache=tmp_path, progress=False)
    assert dataset.groups() == ["t1", "t2"]
    assert dataset[torch.tensor([1])].groups() == ["t2"]


def test_group_splits():
    groups = ["a"] * 5 + ["b"] * 3 + ["c"] * 12
    split = group_split(groups, ["b"], val_fraction=0.25, seed=1)
    assert split["test"].tolist() == [5, 6, 7]
    assert len(split["val"]) == 4 and not set(split["val"]) & set(split["test"])
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(20))
    held = dict(leave_one_group_out(groups, val_fraction=0.0))
    assert sorted(held) == ["a", "b", "c"] and held["a"]["test"].tolist() == [0, 1, 2, 3, 4]
    assert group_split(groups, ["a"], val_groups=["b"])["val"].tolist() == [5, 6, 7]
    with pytest.raises(ValueError, match="unknown groups"):
        group_split(groups, ["zzz"])


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a[:, None] - b[None]).norm(dim=-1)


def test_augmentation_rotates_rigidly_and_adds_noise(pdbbind_root, tmp_path):
    sample = load_pdbbind(pdbbind_root, cache=tmp_path, progress=False)[0]
    rotated = RandomRotationNoise(noise=0.0, seed=0)(sample)
    assert not torch.allclose(rotated.pos, sample.pos)
    for before, after in ((sample.pos, rotated.pos), (sample.res_pos, rotated.res_pos)):
        torch.testing.assert_close(
            _distances(rotated.pos, after), _distances(sample.pos, before), atol=1e-4, rtol=0
        )
    noisy = RandomRotationNoise(rotate=False, noise=0.1, seed=0)(sample)
    rms = float((noisy.pos - sample.pos).pow(2).mean().sqrt())
    assert 0.07 < rms < 0.13
    assert torch.equal(sample.pos, load_pdbbind(pdbbind_root, cache=tmp_path, progress=False)[0].pos)


def test_affinity_metrics_per_target():
    y = np.array([5.0, 6.0, 7.0, 8.0, 4.0, 5.0, 6.0])
    p = np.array([5.1, 6.2, 6.9, 8.1, 6.0, 5.0, 4.0])
    groups = ["a", "a", "a", "a", "b", "b", "b"]
    result = affinity_metrics(y, p, groups)
    assert result["n"] == 7 and result["rmse"] > 0
    assert result["per_target"]["a"]["spearman"] == pytest.approx(1.0)
    assert result["per_target"]["b"]["kendall_tau"] == pytest.approx(-1.0)
    assert result["per_target_mean"]["spearman"] == pytest.approx(0.0)
    assert set(result) >= {"pearson", "spearman", "kendall_tau", "rmse", "mae"}


def test_sequence_csv_dataset_and_model(tmp_path):
    path = tmp_path / "pairs.csv"
    pd.DataFrame(
        {
            "smiles": ["CCO", "c1ccccc1O", "not a smiles", "CC(=O)O"],
            "sequence": ["MKTAYIAK", "MKVL", "MKV", "MK1V"],
            "affinity": [5.0, 6.5, 7.0, 4.0],
        }
    ).to_csv(path, index=False)
    dataset = load_sequence_csv(
        path, target_columns=["affinity"], max_length=32, cache=tmp_path, progress=False
    )
    assert len(dataset) == 2 and [s["index"] for s in dataset.meta.skipped] == [2, 3]
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    assert batch.seq.shape == (2, 32) and batch.seq_length.tolist() == [8, 4]
    dims = {"atom_dim": batch.x.shape[1], "edge_dim": batch.edge_attr.shape[1]}
    model = SequenceAffinity(**dims, hidden=16, layers=1, embed_dim=8, filters=4, kernel_size=3)
    assert model(batch).shape == (2, 1)


def test_config_section(pdbbind_root, tmp_path):
    options = ComplexConfig.from_section({"pocket_radius": 6.0, "augment_noise": 0.0, "test_groups": ["t2"]})
    assert options.settings.pocket_radius == 6.0 and options.augmentation().noise == 0.0
    assert ComplexConfig.from_section({"augment_rotate": False, "augment_noise": 0}).augmentation() is None
    with pytest.raises(ValueError, match=r"unknown data\.complex keys"):
        ComplexConfig.from_section({"pocket_radios": 6.0})
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"id": ["aaa1", "bbb2"], "pK": [5.0, 6.0], "group": ["t1", "t2"]}).to_csv(
        labels, index=False
    )
    config = {
        "data": {
            "dataset": "complexes",
            "path": str(pdbbind_root),
            "cache": str(tmp_path),
            "targets": ["pK"],
            "split": {"seed": 0},
            "complex": {"labels": str(labels), "test_groups": ["t2"], "val_fraction": 0.0},
        }
    }
    dataset = load_complex_dataset(config, progress=False)
    assert len(dataset) == 2
    assert group_split_from_config(config, dataset)["test"].tolist() == [1]


@pytest.mark.realdata
@pytest.mark.skipif(not OPENFF.exists(), reason="needs ../shared/data/protein_ligand_openff")
def test_openff_benchmark_layout(tmp_path):
    dataset = load_complexes(OPENFF, targets=["cmet"], cache=tmp_path, progress=False)
    labels = pd.read_csv(OPENFF / "labels_pX.csv")
    expected = labels[(labels["target"] == "cmet") & labels["has_structure"]]
    assert len(dataset) == len(expected) and set(dataset.groups()) == {"cmet"}
    assert dataset.meta.ids == [f"cmet/{name}" for name in expected["ligand"]]
    np.testing.assert_allclose(dataset.targets_array().ravel(), expected["pX"].to_numpy(), rtol=1e-6)
    sample = dataset[0]
    assert 20 < int(sample.n_residues) < 120 and int(sample.n_ligand) > 10


def test_graph_settings_variants(pdbbind_root):
    from atomgraph.apps.complexes import ComplexGraphSettings, complex_graph, load_complex

    folder = pdbbind_root / "aaa1"
    complex_ = load_complex(folder / "aaa1_protein.pdb", folder / "aaa1_ligand.sdf")
    graphs = {
        mode: complex_graph(complex_, ComplexGraphSettings(hydrogens=mode))
        for mode in ("none", "polar", "all")
    }
    sizes = [int(graphs[m].natoms) for m in ("none", "polar", "all")]
    assert sizes[0] < sizes[1] < sizes[2] == complex_.ligand.GetNumAtoms() + len(complex_.pocket)
    assert int((graphs["none"].z == 1).sum()) == 0
    radius = complex_graph(complex_, ComplexGraphSettings(protein_edges="radius"))
    assert int((radius.edge_type == EDGE_TYPE_INDEX["protein_contact"]).sum()) > 0
    for graph in (*graphs.values(), radius):
        assert JointGraphAffinity(hidden=8, layers=1)(graph).shape == (1, 1)
    with pytest.raises(ValueError, match="hydrogens must be one of"):
        ComplexGraphSettings(hydrogens="some")
