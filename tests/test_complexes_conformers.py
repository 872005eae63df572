"""Ligand conformer augmentation: aligned RDKit poses, their cache, and training-only sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem

from atomgraph.apps.complexes import load_pdbbind
from atomgraph.apps.complexes.config import ComplexConfig
from atomgraph.apps.complexes.conformers import CLASH_DISTANCE, aligned_conformers
from atomgraph.apps.complexes.synthetic import molecule
from atomgraph.training.run import loaders


def _heavy(mol: Chem.Mol) -> list[int]:
    return [atom.GetIdx() for atom in mol.GetAtoms() if atom.GetAtomicNum() > 1]


def test_poses_keep_the_atoms_sit_on_the_crystal_pose_and_differ():
    ligand = molecule("OCCc1ccccc1CCCN", seed=11)  # flexible: several rotatable bonds
    poses = aligned_conformers(ligand, 3)
    assert 1 <= len(poses) <= 3
    heavy = _heavy(ligand)
    crystal = ligand.GetConformer().GetPositions()[heavy]
    rmsds = [rmsd for _, rmsd in poses]
    assert rmsds == sorted(rmsds) and rmsds[0] > 0.05
    for pose, rmsd in poses:
        assert [a.GetAtomicNum() for a in pose.GetAtoms()] == [a.GetAtomicNum() for a in ligand.GetAtoms()]
        assert pose.GetNumConformers() == 1
        moved = pose.GetConformer().GetPositions()[heavy]
        # aligned onto the crystal pose: the stored RMSD is the one of these coordinates, centroids agree
        assert np.sqrt(((moved - crystal) ** 2).sum(axis=1).mean()) == pytest.approx(rmsd, abs=1e-6)
        np.testing.assert_allclose(moved.mean(axis=0), crystal.mean(axis=0), atol=0.5)
    if len(poses) > 1:  # distinct conformers (RDKit's seed 0 embeds every conformer alike)
        a, b = (p.GetConformer().GetPositions() for p, _ in poses[:2])
        assert np.abs(a - b).max() > 0.1
    again = aligned_conformers(ligand, 3)
    for (p, r), (q, s) in zip(poses, again, strict=True):
        assert r == s and np.array_equal(p.GetConformer().GetPositions(), q.GetConformer().GetPositions())


def test_poses_that_clash_with_the_pocket_are_dropped():
    ligand = molecule("OCCc1ccccc1CCCN", seed=11)
    crystal = ligand.GetConformer().GetPositions()[_heavy(ligand)]
    # protein atoms on every crystal heavy atom: every aligned pose comes within CLASH_DISTANCE of one
    assert aligned_conformers(ligand, 3, pocket_positions=crystal) == []
    far = crystal.mean(axis=0) + np.array([[40.0, 0.0, 0.0]])
    assert len(aligned_conformers(ligand, 3, pocket_positions=far)) >= 1
    assert CLASH_DISTANCE < 2.5  # crystal heavy-atom contacts (>= ~2.5 Å) are never clashes
    with pytest.raises(ValueError, match="count"):
        aligned_conformers(ligand, 0)


def test_training_rows_visit_conformer_poses_and_evaluation_rows_never(flexible_complexes, tmp_path):
    dataset = load_pdbbind(flexible_complexes, cache=tmp_path, progress=False)
    assert dataset.conformer_poses is None and not list(tmp_path.glob("*-poses-*.pt"))
    options = ComplexConfig.from_section({"conformers": 3, "augment_rotate": False, "augment_noise": 0.0})
    data = {"path": str(flexible_complexes), "cache": str(tmp_path)}
    split = {"train": np.array([1, 2]), "val": np.array([0]), "test": np.array([3])}
    training = {"batch_size": 1, "eval_batch_size": 1, "num_workers": 0}
    out = loaders(
        dataset, split, training, seed=0, augment=lambda subset: options.augment(subset, data, False)
    )
    assert dataset.conformer_poses is None  # only the training subset holds the poses
    assert len(list(tmp_path.glob("*-poses-*.pt"))) == 1  # built once, cached beside the dataset
    poses = out["train"].dataset.conformer_poses
    with_poses, total = poses.coverage(range(len(dataset)))
    assert with_poses >= 3 and 3 <= total <= 12  # aaa1's chain clashes with the pocket in every conformer
    assert len(poses.by_row.get(1, [])) == len(poses.by_row.get(2, [])) == 3
    # every pose graph is a complete complex of the same ligand, with the label of its complex
    for k in range(len(poses.poses)):
        row = dataset.meta.ids.index(poses.poses.meta.ids[k])
        assert int(poses.poses[k].n_ligand) == int(dataset[row].n_ligand)
        assert float(poses.poses[k].y) == float(dataset[row].y)

    labels = [float(dataset[i].y) for i in range(4)]  # all different: a batch's label names its row
    torch.manual_seed(0)
    moved = 0
    for _ in range(10):
        for batch in out["train"]:
            row = labels.index(float(batch.y))
            assert row in (1, 2)  # a training row, in its own pose or one of its own conformer poses
            assert int(batch.n_ligand) == int(dataset[row].n_ligand)
            moved += not torch.equal(batch.pos, dataset[row].pos)
    assert 3 <= moved <= 17  # each visit: the crystal pose or one of up to 3 poses, at random
    for name, rows in (("val", [0]), ("test", [3])):
        for _ in range(3):
            for batch in out[name]:
                assert torch.equal(batch.pos, dataset[rows[0]].pos)


def test_conformers_key_is_a_whole_number():
    assert ComplexConfig.from_section({"conformers": 4}).conformers == 4
    for bad in (-1, 1.5, True, "4"):
        with pytest.raises(ValueError, match="conformers"):
            ComplexConfig.from_section({"conformers": bad})
