"""Data pipeline: splits, split files, target normalisation, the graph dataset cache and CSV loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import REFS, SCAFFOLD_GROUPS, SCAFFOLD_SMILES, random_molecules, write_csv, write_xyz
from torch_geometric.data import Batch

import atomgraph.data.csv_dataset as csv_dataset
from atomgraph.data import (
    GraphDataset,
    TargetNormalizer,
    load_csv,
    load_split,
    load_structures,
    random_split,
    save_split,
    scaffold_split,
    structures_dataset,
)
from atomgraph.data.build import build_dataset
from atomgraph.data.graph_dataset import DatasetMeta
from atomgraph.data.qm9 import molecule_from_xyz
from atomgraph.data.splits import murcko_scaffold, split_sizes
from atomgraph.graphs.spec import GraphSpec
from atomgraph.structures import from_smiles
from atomgraph.targets import TargetSet, TargetSpec

RADIUS = GraphSpec(kind="radius", cutoff=4.0)


def assert_partition(split: dict, n: int, complete: bool = True) -> None:
    """Disjoint subsets of range(n); covering it when ``complete``."""
    rows = np.concatenate([split[k] for k in ("train", "val", "test")])
    assert len(np.unique(rows)) == len(rows), "train/val/test overlap"
    assert rows.min() >= 0 and rows.max() < n
    if complete:
        assert sorted(rows.tolist()) == list(range(n))


# ---------------------------------------------------------------------------------------------- splits


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [((0.8, 0.1, 0.1), (40, 5, 5)), ((0.7, 0.2, 0.1), (35, 10, 5)), ((30, 10, 5), (30, 10, 5))],
)
def test_random_split_sizes_disjoint_and_reproducible(sizes, expected):
    a = random_split(50, sizes, seed=3)
    b = random_split(50, sizes, seed=3)
    assert tuple(len(a[k]) for k in ("train", "val", "test")) == expected
    assert_partition(a, 50, complete=sum(expected) == 50)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_random_split_fractions_below_one_leave_rows_out():
    split = random_split(100, (0.5, 0.1, 0.2), seed=0)
    assert [len(split[k]) for k in ("train", "val", "test")] == [50, 10, 20]
    assert_partition(split, 100, complete=False)


def test_random_split_seeds_differ():
    a, b = random_split(60, (0.8, 0.1, 0.1), seed=0), random_split(60, (0.8, 0.1, 0.1), seed=1)
    assert not np.array_equal(a["test"], b["test"]) or not np.array_equal(a["val"], b["val"])


def test_split_sizes_errors_and_mixed_fractions():
    with pytest.raises(ValueError, match="three"):
        split_sizes(10, (0.5, 0.5))
    with pytest.raises(ValueError, match="more than 1"):
        split_sizes(10, (0.8, 0.2, 0.1))
    with pytest.raises(ValueError, match="do not fit"):
        split_sizes(10, (8, 2, 1))
    # a YAML list like [0.8, 0.2, 0] (no test set) means fractions, not counts
    assert split_sizes(50, [0.8, 0.2, 0]) == [40, 10, 0]
    assert split_sizes(50, [1, 0, 0]) == [1, 0, 0]  # all integers: counts


def test_scaffold_groups_are_what_the_fixture_says():
    for scaffold, group in SCAFFOLD_GROUPS.items():
        assert {murcko_scaffold(s) for s in group} == {scaffold}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scaffold_split_keeps_each_scaffold_in_one_subset(seed):
    split = scaffold_split(SCAFFOLD_SMILES, (0.8, 0.1, 0.1), seed=seed)
    assert_partition(split, len(SCAFFOLD_SMILES))
    where = {}
    for name, rows in split.items():
        for i in rows:
            where.setdefault(murcko_scaffold(SCAFFOLD_SMILES[i]), set()).add(name)
    assert set(where) == set(SCAFFOLD_GROUPS)
    assert all(len(names) == 1 for names in where.values()), where
    assert len(split["train"]) <= 48 and len(split["val"]) <= 6
    again = scaffold_split(SCAFFOLD_SMILES, (0.8, 0.1, 0.1), seed=seed)
    for k in split:
        np.testing.assert_array_equal(split[k], again[k])


def test_scaffold_split_seeds_differ():
    splits = [scaffold_split(SCAFFOLD_SMILES, (0.6, 0.2, 0.2), seed=s) for s in range(4)]
    tests = {tuple(s["test"].tolist()) for s in splits}
    assert len(tests) > 1


def test_scaffold_split_with_counts_respects_them():
    split = scaffold_split(SCAFFOLD_SMILES, (30, 10, 5), seed=0)
    assert len(split["train"]) <= 30 and len(split["val"]) <= 10 and len(split["test"]) <= 5
    assert_partition(split, len(SCAFFOLD_SMILES), complete=False)


def test_split_file_round_trip(tmp_path):
    split = random_split(30, (0.6, 0.2, 0.2), seed=5)
    save_split(split, tmp_path / "split.json")
    loaded = load_split(tmp_path / "split.json", n=30)
    for k in split:
        np.testing.assert_array_equal(loaded[k], split[k])
        assert loaded[k].dtype == np.int64


@pytest.mark.parametrize(
    ("content", "n", "message"),
    [
        ({"train": [0, 1, 2], "val": [2], "test": [3]}, 10, "overlap"),
        ({"train": [0, 1], "val": [5], "test": [10]}, 10, "outside"),
        ({"train": [-1, 1], "val": [5], "test": [6]}, 10, "outside"),
        ({"train": [0, 1], "val": [5]}, 10, "missing"),
    ],
)
def test_split_file_errors(tmp_path, content, n, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message):
        load_split(path, n)


def test_split_file_unreadable(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        load_split(tmp_path / "broken.json")
    with pytest.raises(ValueError, match="cannot read"):
        load_split(tmp_path / "absent.json")


# -------------------------------------------------------------------------------------- normalisation


def counts_matrix(molecules, elements):
    return np.array([[np.sum(a.numbers == z) for z in elements] for a in molecules], dtype=float)


@pytest.fixture
def labelled():
    """A dataset of 40 molecules with an extensive (energy) and an intensive (gap) target, and a split."""
    molecules = random_molecules(40, seed=1, noise=0.3)
    dataset = structures_dataset(molecules, RADIUS, properties=("energy", "gap"), progress=False)
    split = random_split(len(dataset), (0.6, 0.2, 0.2), seed=0)
    return molecules, dataset, split


def fit_on_train(dataset, split) -> TargetNormalizer:
    train = dataset[torch.as_tensor(split["train"])]
    return TargetNormalizer(dataset.targets.extensive).fit(train.targets_array(), train.atomic_numbers())


def test_normalizer_fit_equals_hand_statistics_of_training_rows(labelled):
    molecules, dataset, split = labelled
    norm = fit_on_train(dataset, split)
    train = [molecules[i] for i in split["train"]]
    # intensive target: plain mean / population std of the training labels
    gap = np.array([a.info["gap"] for a in train])
    assert norm.mean[1].item() == pytest.approx(gap.mean(), rel=1e-5)
    assert norm.std[1].item() == pytest.approx(gap.std(), rel=1e-5)
    # extensive target: least-squares element references, then the mean residual per atom
    energy = np.array([a.info["energy"] for a in train])
    elements = sorted(REFS)
    counts = counts_matrix(train, elements)
    coef, *_ = np.linalg.lstsq(counts, energy, rcond=None)
    residual = energy - counts @ coef
    per_atom = residual.sum() / counts.sum()
    spread = residual - per_atom * counts.sum(1)
    np.testing.assert_allclose(norm.atomref[elements, 0].numpy(), coef, rtol=1e-5, atol=1e-5)
    others = np.setdiff1d(np.arange(norm.atomref.shape[0]), elements)
    assert torch.all(norm.atomref[others] == 0)
    assert torch.all(norm.atomref[:, 1] == 0)  # no references for the intensive target
    assert norm.mean[0].item() == pytest.approx(per_atom, rel=1e-4, abs=1e-6)
    assert norm.std[0].item() == pytest.approx(spread.std(), rel=1e-4)


def test_normalizer_ignores_labels_outside_the_rows_given(labelled):
    _, dataset, split = labelled
    before = {k: v.clone() for k, v in fit_on_train(dataset, split).state_dict().items()}
    for row in [*split["test"], *split["val"]]:
        dataset._data.y[row] = torch.tensor([1e4, -1e4])  # wild labels outside the training rows
    after = fit_on_train(dataset, split).state_dict()
    for k in before:
        torch.testing.assert_close(after[k], before[k], rtol=0, atol=0)
    # ... while fitting on all rows does see them
    everything = TargetNormalizer(dataset.targets.extensive).fit(
        dataset.targets_array(), dataset.atomic_numbers()
    )
    assert not torch.allclose(everything.mean, before["mean"])


def test_normalizer_skips_missing_labels_and_needs_two():
    numbers = [np.array([1, 6]), np.array([6, 8]), np.array([1, 1, 8])]
    y = np.array([[1.0], [np.nan], [3.0]])
    norm = TargetNormalizer([False]).fit(y, numbers)
    assert norm.mean.item() == pytest.approx(2.0) and norm.std.item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="fewer than two"):
        TargetNormalizer([False]).fit(np.array([[1.0], [np.nan], [np.nan]]), numbers)


def test_normalize_then_denormalize_is_identity_and_standardises(labelled):
    _, dataset, split = labelled
    norm = fit_on_train(dataset, split)
    train = Batch.from_data_list([dataset[int(i)] for i in split["train"]])
    z = norm.normalize(train.y, train)
    torch.testing.assert_close(norm.denormalize(z, train), train.y, rtol=1e-5, atol=1e-4)
    # in the normalised space the training targets have mean 0 and unit variance
    np.testing.assert_allclose(z.double().mean(0).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.double().std(0, unbiased=False).numpy(), 1.0, atol=1e-4)
    everything = Batch.from_data_list(list(dataset))
    y = torch.randn_like(everything.y) * 10
    torch.testing.assert_close(
        norm.denormalize(norm.normalize(y, everything), everything), y, rtol=1e-5, atol=1e-4
    )


def test_extensive_targets_recover_element_references():
    molecules = random_molecules(30, seed=2)
    for atoms in molecules:  # exact sums of references plus a tiny perturbation
        atoms.info["energy"] = sum(REFS[int(z)] for z in atoms.numbers) + 1e-3 * np.sin(len(atoms))
    dataset = structures_dataset(molecules, RADIUS, progress=False)
    norm = TargetNormalizer([True]).fit(dataset.targets_array(), dataset.atomic_numbers())
    for z, ref in REFS.items():
        assert norm.atomref[z, 0].item() == pytest.approx(ref, abs=5e-3)
    assert abs(norm.mean.item()) < 1e-3


def test_normalizer_without_atomref_uses_mean_per_atom():
    molecules = random_molecules(20, seed=4)
    dataset = structures_dataset(molecules, RADIUS, progress=False)
    norm = TargetNormalizer([True]).fit(dataset.targets_array(), dataset.atomic_numbers(), atomref=False)
    energy = np.array([a.info["energy"] for a in molecules])
    n_atoms = np.array([len(a) for a in molecules])
    assert torch.all(norm.atomref == 0)
    assert norm.mean.item() == pytest.approx(energy.sum() / n_atoms.sum(), rel=1e-5)


# ------------------------------------------------------------------------------------ dataset storage


def test_graph_dataset_save_load_round_trip(tmp_path):
    molecules = random_molecules(6, seed=3)
    for atoms in molecules:
        atoms.arrays["forces"] = np.arange(3 * len(atoms), dtype=float).reshape(-1, 3)
    dataset = structures_dataset(molecules, RADIUS, name="tiny", properties=("energy", "gap"), progress=False)
    path = tmp_path / "ds.pt"
    dataset.save(path)
    raw = torch.load(path, weights_only=True)  # plain tensors and containers only
    assert set(raw) == {"data", "slices", "meta"}
    loaded = GraphDataset.load_file(path)
    assert len(loaded) == len(dataset)
    assert loaded.meta.to_dict() == dataset.meta.to_dict()
    assert loaded.targets.names == ["energy", "gap"] and loaded.targets.extensive == [True, False]
    for a, b in zip(dataset, loaded, strict=True):
        assert sorted(a.keys()) == sorted(b.keys())
        for key in a.keys():
            assert torch.equal(a[key], b[key]), key
    np.testing.assert_array_equal(loaded.num_atoms(), [len(m) for m in molecules])
    for z, atoms in zip(loaded.atomic_numbers(), molecules, strict=True):
        np.testing.assert_array_equal(z, atoms.numbers)
    with pytest.raises(ValueError, match="whole dataset"):
        dataset[torch.tensor([0, 1])].save(tmp_path / "view.pt")


def test_empty_dataset_is_an_error():
    def broken():
        raise ValueError("nope")

    meta = DatasetMeta("empty", TargetSet([TargetSpec("y")]))
    with pytest.raises(ValueError, match="no graphs"):
        build_dataset([("r0", broken, np.array([1.0]))], RADIUS, meta, progress=False)
    assert meta.skipped and meta.skipped[0]["error"] == "nope"


def test_load_structures_keeps_energies_forces_and_caches(tmp_path):
    path = tmp_path / "mols.xyz"
    molecules = write_xyz(path, n=5, seed=7)
    dataset = load_structures(path, RADIUS, cache=tmp_path / "cache", progress=False)
    np.testing.assert_allclose(
        dataset.targets_array()[:, 0], [a.info["energy"] for a in molecules], rtol=1e-6
    )
    assert dataset.targets.extensive == [True] and dataset.targets.units == ["eV"]
    assert len(list((tmp_path / "cache").glob("structures-*.pt"))) == 1


# ------------------------------------------------------------------------------------------- CSV files


def test_load_csv_skips_bad_smiles_and_reports_its_line(tmp_path):
    smiles = ["CCO", "CCN", "C1CC(", "c1ccccc1", "CC(=O)O"]
    path = write_csv(tmp_path / "mols.csv", smiles, y=[1.0, 2.0, 3.0, 4.0, 5.0])
    dataset = load_csv(path, target_columns=["y"], cache=tmp_path / "cache", progress=False)
    assert len(dataset) == 4
    assert len(dataset.meta.skipped) == 1
    skipped = dataset.meta.skipped[0]
    assert skipped["index"] == 2
    assert skipped["id"] == "mols.csv:4"  # header is line 1, so the third row is line 4
    assert "C1CC(" in skipped["error"]
    assert dataset.meta.ids == ["mols.csv:2", "mols.csv:3", "mols.csv:5", "mols.csv:6"]
    assert dataset.meta.smiles == ["CCO", "CCN", "c1ccccc1", "CC(=O)O"]
    np.testing.assert_array_equal(dataset.targets_array()[:, 0], [1.0, 2.0, 4.0, 5.0])
    # the report survives the cache
    again = load_csv(path, target_columns=["y"], cache=tmp_path / "cache", progress=False)
    assert again.meta.skipped == dataset.meta.skipped


def test_load_csv_blank_labels_are_nan_and_missing_columns_error(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("smiles,a,b\nCCO,1.0,\nCCN,,2.0\n")
    dataset = load_csv(path, target_columns=["a", "b"], cache=tmp_path / "cache", progress=False)
    y = dataset.targets_array()
    assert y[0, 0] == 1.0 and np.isnan(y[0, 1]) and np.isnan(y[1, 0]) and y[1, 1] == 2.0
    with pytest.raises(ValueError, match="missing columns"):
        load_csv(path, target_columns=["c"], cache=tmp_path / "cache", progress=False)
    with pytest.raises(ValueError, match="at least one target"):
        load_csv(path, cache=tmp_path / "cache", progress=False)


def test_load_csv_second_call_reads_the_cache(tmp_path, monkeypatch):
    path = write_csv(tmp_path / "mols.csv", ["CCO", "CCN", "c1ccccc1"], y=[1.0, 2.0, 3.0])
    cache = tmp_path / "cache"
    first = load_csv(path, target_columns=["y"], cache=cache, progress=False)
    assert len(list(cache.glob("*.pt"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("the dataset was rebuilt instead of read from the cache")

    monkeypatch.setattr(csv_dataset, "build_dataset", fail)
    second = load_csv(path, target_columns=["y"], cache=cache, progress=False)
    assert second.meta.ids == first.meta.ids
    for a, b in zip(first, second, strict=True):
        for key in a.keys():
            assert torch.equal(a[key], b[key]), key
    # another graph setting is another cache file (and would need a build)
    with pytest.raises(AssertionError, match="rebuilt"):
        load_csv(
            path,
            target_columns=["y"],
            settings=GraphSpec(kind="bond", explicit_hydrogens=True),
            cache=cache,
            progress=False,
        )
    monkeypatch.undo()
    with_h = load_csv(
        path,
        target_columns=["y"],
        settings=GraphSpec(kind="bond", explicit_hydrogens=True),
        cache=cache,
        progress=False,
    )
    assert len(list(cache.glob("*.pt"))) == 2
    assert with_h[0].num_nodes > first[0].num_nodes  # CCO: 9 atoms with H, 3 without
    assert not list(cache.glob("*.tmp"))


def test_load_csv_cached_dataset_follows_task_kind_and_flags(tmp_path):
    path = write_csv(tmp_path / "mols.csv", ["CCO", "CCN", "c1ccccc1"], y=[0.0, 1.0, 1.0])
    cache = tmp_path / "cache"
    first = load_csv(path, target_columns=["y"], cache=cache, progress=False)
    assert first.targets.kind == "regression"
    cached = load_csv(path, target_columns=["y"], kind="classification", cache=cache, progress=False)
    assert cached.targets.kind == "classification"
    flagged = load_csv(
        path, target_columns=["y"], extensive=[True], units=["eV"], cache=cache, progress=False
    )
    assert flagged.targets.extensive == [True] and flagged.targets.units == ["eV"]
    assert len(list(cache.glob("*.pt"))) == 1


def test_load_csv_radius_graphs_embed_3d(tmp_path):
    path = write_csv(tmp_path / "mols.csv", ["CCO", "CC"], y=[1.0, 2.0])
    dataset = load_csv(path, target_columns=["y"], settings=RADIUS, cache=tmp_path / "c", progress=False)
    graph = dataset[0]
    assert graph.num_nodes == 9 and graph.edge_index.shape[1] > 0
    d = torch.linalg.vector_norm(graph.pos[graph.edge_index[0]] - graph.pos[graph.edge_index[1]], dim=-1)
    assert float(d.min()) > 0.8 and float(d.max()) <= 4.0


# ------------------------------------------------------------------------------------------------ QM9


def test_qm9_molecule_from_xyz_keeps_atom_order_and_bonds():
    atoms = from_smiles("CCO", embed_3d=True)
    mol = molecule_from_xyz(atoms.numbers, atoms.positions)
    assert [a.GetAtomicNum() for a in mol.GetAtoms()] == atoms.numbers.tolist()
    assert mol.GetNumBonds() == 8
    np.testing.assert_allclose(mol.GetConformer().GetPositions(), atoms.positions, atol=1e-6)
