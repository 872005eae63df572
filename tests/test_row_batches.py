"""Batches gathered from a dataset's collated storage equal PyG's, field by field, in the same order."""

from __future__ import annotations

import pytest
import torch
from ase.build import bulk, molecule
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from atomgraph.data.graph_dataset import DatasetMeta, GraphDataset
from atomgraph.data.row_batches import RowBatcher, row_loader
from atomgraph.graphs.spec import GraphSpec, preset
from atomgraph.targets import TargetSet, TargetSpec

TARGETS = TargetSet([TargetSpec("a"), TargetSpec("b")])


def dataset_of(graphs) -> GraphDataset:
    for k, graph in enumerate(graphs):
        graph.y = torch.tensor([[float(k), -float(k)]])
    return GraphDataset(graphs, DatasetMeta("t", TARGETS))


def molecules() -> GraphDataset:
    """Radius graphs with per-atom labels (forces, a node-level target) beside the graph labels."""
    names = ["H2O", "CH4", "C6H6", "NH3", "CH3OH", "C2H6", "CO2", "CH3CH2OH"] * 4
    graphs = [preset("molecule").build(molecule(name)) for name in names]
    for k, graph in enumerate(graphs):
        graph.forces = torch.full((graph.num_nodes, 3), float(k))
        graph.y_node = torch.arange(graph.num_nodes, dtype=torch.float32).view(-1, 1)
    return dataset_of(graphs)


def bond_graphs() -> GraphDataset:
    smiles = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C", "N#N", "CCN(CC)CC"] * 3
    return dataset_of([preset("bond").graph_from_smiles(s) for s in smiles])


def crystals() -> GraphDataset:
    spec = GraphSpec("radius", 6.0, max_neighbors=8, site_features=("coordination",))
    structures = [bulk("NaCl", "rocksalt", a=5.64), bulk("Cu", "fcc", a=3.6), bulk("Si", "diamond", a=5.43)]
    graphs = [spec.build(s.repeat((1 + k % 2, 1, 1))) for k, s in enumerate(structures * 4)]
    for graph in graphs:
        graph.state = torch.randn(1, 3)
    return dataset_of(graphs)


def assert_same_batch(fast: Batch, reference: Batch) -> None:
    assert sorted(fast.keys()) == sorted(reference.keys()) and fast.num_graphs == reference.num_graphs
    for key in reference.keys():
        assert fast[key].dtype == reference[key].dtype, key
        assert torch.equal(fast[key], reference[key]), key
    for mine, theirs in zip(fast.to_data_list(), reference.to_data_list(), strict=True):
        for key in theirs.keys():
            assert torch.equal(mine[key], theirs[key]), key


@pytest.mark.parametrize("make", [molecules, bond_graphs, crystals], ids=["radius", "bond", "crystal"])
def test_gathered_batches_equal_pyg_batches(make, tmp_path):
    """Every field (edge indices shifted per graph, periodic shifts, site and state features, per-atom
    and graph labels), ``batch``, ``ptr`` and the records ``to_data_list`` reads: on the full set, on a
    shuffled view, on a view of a view with repeated rows (a bootstrap sample) and on a reloaded cache."""
    dataset = make()
    view = dataset[torch.as_tensor([7, 3, 11, 0, 5, 2, 9])]
    bootstrap = view[torch.as_tensor([1, 1, 4, 0, 4])]
    dataset.save(tmp_path / "cache.pt")
    reloaded = GraphDataset.load_file(tmp_path / "cache.pt")
    cases = ((dataset, [4, 0, 9, 1]), (view, [6, 0, 3, 2]), (view, [5]), (bootstrap, [0, 1, 2, 3, 4]),
             (reloaded, [3, 8, 2]))  # fmt: skip
    for rows, positions in cases:
        fast = RowBatcher(rows)(positions)
        assert_same_batch(fast, Batch.from_data_list([rows[i] for i in positions]))


def test_row_loader_visits_rows_in_pyg_order():
    """With the same generator the loader yields PyG's batches, epoch after epoch; unshuffled, in order."""
    dataset = molecules()
    mine, theirs = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    fast = row_loader(dataset, 5, shuffle=True, generator=mine)
    reference = DataLoader(dataset, batch_size=5, shuffle=True, generator=theirs)
    for _ in range(2):
        for a, b in zip(fast, reference, strict=True):
            assert_same_batch(a, b)
    for a, b in zip(row_loader(dataset, 7), DataLoader(dataset, batch_size=7), strict=True):
        assert_same_batch(a, b)


def test_row_loader_falls_back_to_pyg_where_it_does_not_apply():
    """A set that transforms its items (augmentation), an empty one, or one whose node fields disagree
    in length (nodes would be counted wrongly) gets PyG's loader."""
    dataset = molecules()
    augmented = dataset[torch.arange(4)]
    augmented.transform = lambda graph: graph
    assert isinstance(row_loader(augmented, 2), DataLoader)
    assert isinstance(row_loader(dataset[torch.arange(0)], 2), DataLoader)
    assert not isinstance(row_loader(dataset, 2), DataLoader)
    with pytest.raises(ValueError, match="transforms"):
        RowBatcher(augmented)
    graphs = [preset("molecule").build(molecule(name)) for name in ("H2O", "CH4")]
    for graph in graphs:  # one more row of x than atoms in z: PyG counts x, z would shift edges wrongly
        graph.x = torch.zeros(graph.num_nodes + 1, 2)
    with pytest.raises(ValueError, match="differ in length"):
        RowBatcher(dataset_of(graphs))


def test_batches_of_one_batcher_are_independent():
    """Each batch is its own object: changing one changes neither another nor the batcher's template."""
    batcher = RowBatcher(molecules())
    first, second = batcher([0, 1, 2]), batcher([3, 4])
    reference = batcher([3, 4])
    first.pos.zero_()
    first.extra = torch.ones(1)
    del first.z
    assert "extra" not in second and "z" in second and not batcher.empty.keys()
    assert_same_batch(second, reference)
    assert (first.num_graphs, second.num_graphs) == (3, 2)
    assert float(batcher([0, 1, 2]).pos.abs().sum()) > 0  # the storage itself was not touched


def virtual_edge_graphs() -> list:
    """Bond graphs with Gilmer's virtual edges and H-bond features (other fields than plain bond graphs)."""
    from atomgraph.structures import from_smiles

    spec = GraphSpec("bond", 6.0, atom_features="hbond", virtual_edges=True)
    return [spec.build(from_smiles(s, seed=0)) for s in ["CCO", "c1ccccc1O", "CC(=O)N"]]


@pytest.mark.parametrize(
    "make",
    [molecules, bond_graphs, crystals, virtual_edge_graphs],
    ids=["radius", "bond", "crystal", "virtual"],
)
def test_collate_equals_pyg(make):
    """atomgraph's collate gives PyG's batch field by field (edge indices shifted, batch, ptr, the slices
    and increments to_data_list reads), for one graph, several, and graphs repeated."""
    from atomgraph.graphs.batching import collate

    rows = make()
    graphs = [rows[k] for k in range(len(rows))]
    for chosen in (graphs, graphs[:1], [graphs[2], graphs[0], graphs[2]]):
        fast, reference = collate(chosen), Batch.from_data_list(chosen)
        assert_same_batch(fast, reference)
        for name in ("_slice_dict", "_inc_dict"):
            mine, theirs = getattr(fast, name), getattr(reference, name)
            assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in theirs), name


def test_collate_hands_unusual_graphs_to_pyg():
    """Graphs the fast path would batch differently from PyG go to PyG: an index field of bools (PyG
    shifts it as int64), a 0-d field (PyG stacks it), a field that is not a tensor (PyG lists it)."""
    from atomgraph.graphs.batching import collate

    graphs = [bond_graphs()[k] for k in range(3)]
    flagged = [graph.clone() for graph in graphs]
    for graph in flagged:
        graph.ring_index = torch.ones(graph.num_nodes, dtype=torch.bool)
    scalar = [graph.clone() for graph in graphs]
    for k, graph in enumerate(scalar):
        graph.weight = torch.tensor(float(k))
    named = [graph.clone() for graph in graphs]
    for k, graph in enumerate(named):
        graph.name = f"molecule {k}"
    for chosen in (flagged, scalar):
        fast, reference = collate(chosen), Batch.from_data_list(chosen)
        assert_same_batch(fast, reference)
    assert collate(flagged).ring_index.dtype == torch.long and collate(scalar).weight.shape == (3,)
    assert collate(named).name == [f"molecule {k}" for k in range(3)]


def test_graph_of_equals_data():
    """graph_of(fields) is Data(**fields): the same fields, node count and batches."""
    from atomgraph.graphs.batching import graph_of

    graphs = [bond_graphs()[k] for k in range(4)]
    made = [graph_of(graph.to_dict()) for graph in graphs]
    for mine, theirs in zip(made, graphs, strict=True):
        assert mine.keys() == theirs.keys() and mine.num_nodes == theirs.num_nodes
        assert all(torch.equal(mine[key], theirs[key]) for key in theirs.keys())
    assert_same_batch(Batch.from_data_list(made), Batch.from_data_list(graphs))


def test_graph_batches_equal_dataloader():
    """graph_batches yields DataLoader's batches (the last one smaller) from a list or a dataset."""
    from atomgraph.graphs.batching import graph_batches

    rows = crystals()
    for graphs in (rows, [rows[k] for k in range(len(rows))]):
        mine = list(graph_batches(graphs, 5))
        theirs = list(DataLoader(graphs, batch_size=5, shuffle=False))
        assert [b.num_graphs for b in mine] == [5, 5, 2]
        for fast, reference in zip(mine, theirs, strict=True):
            assert_same_batch(fast, reference)
    with pytest.raises(ValueError, match="batch_size"):
        next(graph_batches(rows, 0))
