"""The protein-ligand leak check: nearest training ligand by ECFP4 Tanimoto against RDKit's own
similarity, identical ligands flagged, metrics by similarity bin."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from atomgraph.apps.complexes.leak_check import format_leak_check, leak_check, tanimoto_nearest
from atomgraph.evaluation.fingerprint_baseline import morgan_fingerprints

TRAIN = ["c1ccccc1C(=O)O", "CCOC(=O)c1ccccc1", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "c1ccncc1", "CCCCCC"]
TEST = ["OC(=O)c1ccccc1", "CC(C)Cc1ccc(cc1)C(C)C(=O)OC", "C1CCNCC1", "CCCCCCO"]


def test_nearest_similarity_equals_rdkit_bulk_tanimoto():
    """The vectorised Tanimoto of the fingerprint bits equals RDKit's BulkTanimotoSimilarity, and the
    argmax is the training ligand RDKit ranks first; no training ligands: similarity 0, index -1."""
    train_bits, _ = morgan_fingerprints(TRAIN)
    test_bits, _ = morgan_fingerprints(TEST)
    similarity, nearest = tanimoto_nearest(train_bits, test_bits)
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    train_fps = [generator.GetFingerprint(Chem.MolFromSmiles(s)) for s in TRAIN]
    for k, smiles in enumerate(TEST):
        expected = DataStructs.BulkTanimotoSimilarity(
            generator.GetFingerprint(Chem.MolFromSmiles(smiles)), train_fps
        )
        assert similarity[k] == pytest.approx(max(expected), abs=1e-6)
        assert expected[nearest[k]] == pytest.approx(max(expected), abs=1e-6)
    empty = tanimoto_nearest(train_bits[:0], test_bits)
    assert (empty[0] == 0).all() and (empty[1] == -1).all()


def test_leak_check_flags_identical_ligands_and_bins_the_errors():
    """Benzoic acid written another way is identical to a training ligand (similarity 1, flagged);
    rows fall in the bin of their similarity, and per-bin errors are those rows' errors."""
    y_true = np.array([5.0, 6.0, 7.0, 8.0])
    y_pred = np.array([5.1, 6.5, 6.0, 8.4])
    check = leak_check(
        [f"tr{k}" for k in range(len(TRAIN))],
        TRAIN,
        [f"te{k}" for k in range(len(TEST))],
        TEST,
        y_true,
        y_pred,
    )
    assert check["identical"] == 1 and check["test_ligands"] == 4 and check["unparsed_test_smiles"] == 0
    first = check["ligands"][0]
    assert first == {"id": "te0", "nearest_train_id": "tr0", "similarity": 1.0, "identical_smiles": True}
    similarity = np.array([row["similarity"] for row in check["ligands"]])
    assert sum(entry["rows"] for entry in check["bins"]) == 4
    for entry in check["bins"]:
        lo, hi = entry["range"]
        inside = (similarity >= lo) & ((similarity <= hi) if hi == 1.0 else (similarity < hi))
        assert entry["rows"] == inside.sum()
        if entry["rows"] >= 2:
            assert entry["mae"] == pytest.approx(np.abs(y_true - y_pred)[inside].mean())
    assert "1 identical to a training ligand" in format_leak_check(check)


def test_unparsable_test_ligands_fall_in_no_bin():
    """A test SMILES RDKit cannot parse has no similarity and no nearest ligand, is counted, and is in
    no bin (an empty fingerprint would otherwise look like a novel ligand)."""
    check = leak_check(["tr0", "tr1"], TRAIN[:2], ["te0", "bad"], [TEST[0], "C1CC(("], [5.0, 6.0], [5.5, 6.0])
    assert check["unparsed_test_smiles"] == 1
    assert check["ligands"][1] == {
        "id": "bad",
        "nearest_train_id": None,
        "similarity": None,
        "identical_smiles": False,
    }
    assert sum(entry["rows"] for entry in check["bins"]) == 1
