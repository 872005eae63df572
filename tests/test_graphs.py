"""Graph builders: neighbour sets against brute force, geometry derivatives, Gilmer/DimeNet options."""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest
import torch
from ase import Atoms
from rdkit import Chem
from rdkit.Chem import AllChem
from torch_geometric.data import Batch, Data

from atomgraph.graphs import (
    VIRTUAL_EDGE_TYPE,
    GraphSpec,
    add_virtual_edges,
    apply_strain,
    bond_graph,
    edge_lengths,
    edge_pairs,
    edge_vectors,
    neighbor_list,
    radius_graph,
    triplet_angles,
    triplets,
)
from atomgraph.structures import StructureError


def brute_force_pairs(positions, cell, pbc, cutoff):
    """All (i, j, shift) within cutoff, by enumerating enough images along each periodic axis."""
    cell = np.asarray(cell, dtype=float)
    pbc = np.asarray(pbc, dtype=bool)
    # enough images: the cutoff over the spacing of lattice planes, plus one for atoms anywhere in the cell
    volume = abs(np.linalg.det(cell))
    reach = np.zeros(3, dtype=int)
    for axis in np.flatnonzero(pbc):
        spacing = volume / np.linalg.norm(np.cross(cell[(axis + 1) % 3], cell[(axis + 2) % 3]))
        reach[axis] = int(np.ceil(cutoff / spacing)) + 1
    found = set()
    ranges = [range(-r, r + 1) for r in reach]
    for shift in itertools.product(*ranges):
        offset = np.asarray(shift) @ cell
        d = np.linalg.norm(positions[None, :, :] + offset - positions[:, None, :], axis=-1)
        for i, j in zip(*np.nonzero(d < cutoff), strict=True):
            if i == j and not any(shift):
                continue
            found.add((int(i), int(j), *shift))
    return found


def graph_pairs(graph):
    j, i = graph.edge_index.tolist()
    return {(a, b, *s) for a, b, s in zip(i, j, graph.edge_shift.tolist(), strict=True)}


def test_nacl_primitive_cell_has_six_chlorine_neighbours():
    a = 5.64
    cell = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    nacl = Atoms("NaCl", positions=[[0, 0, 0], [a / 2, a / 2, a / 2]], cell=cell, pbc=True)
    graph = radius_graph(nacl, cutoff=4.0)
    j, i = graph.edge_index
    na_neighbours = graph.z[j[i == 0]]
    assert int((na_neighbours == 17).sum()) == 6
    lengths = edge_lengths(edge_vectors(graph))
    np.testing.assert_allclose(lengths[(i == 0) & (graph.z[j] == 17)].numpy(), a / 2, rtol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_random_triclinic_cells_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(2.0, 4.5, 3)) + rng.uniform(-1.0, 1.0, (3, 3)) * (1 - np.eye(3))
    n = int(rng.integers(1, 6))
    frac = rng.uniform(0, 1, (n, 3))
    positions = frac @ cell
    pbc = [True, True, True] if seed < 3 else rng.permutation([True, True, False]).tolist()
    if seed == 5:
        pbc = [False, True, False]
    cutoff = float(rng.uniform(3.5, 6.0))  # larger than the cell: several images of each pair
    atoms = Atoms(numbers=[6] * n, positions=positions, cell=cell, pbc=pbc)
    graph = radius_graph(atoms, cutoff)
    expected = brute_force_pairs(positions, cell, pbc, cutoff)
    assert graph_pairs(graph) == expected
    assert graph.edge_index.shape[1] == len(expected)  # no duplicates
    lengths = edge_lengths(edge_vectors(graph))
    assert bool((lengths < cutoff).all())


def test_water_molecule_edges():
    water = Atoms("OHH", positions=[[0, 0, 0], [0.757, 0.587, 0], [-0.757, 0.587, 0]])
    graph = radius_graph(water, cutoff=2.0)
    assert graph.edge_index.shape == (2, 6)
    lengths = sorted(edge_lengths(edge_vectors(graph)).tolist())
    np.testing.assert_allclose(lengths, [0.958] * 4 + [1.514] * 2, atol=1e-3)
    assert not bool(graph.pbc.any())


def test_max_neighbors_keeps_the_nearest_only_when_asked():
    rng = np.random.default_rng(0)
    atoms = Atoms(numbers=[14] * 8, positions=rng.uniform(0, 5, (8, 3)), cell=np.eye(3) * 5, pbc=True)
    full = radius_graph(atoms, cutoff=8.0)
    capped = radius_graph(atoms, cutoff=8.0, max_neighbors=12)
    counts = torch.bincount(capped.edge_index[1], minlength=8)
    assert bool((counts == 12).all())
    assert full.edge_index.shape[1] > capped.edge_index.shape[1]
    full_len = edge_lengths(edge_vectors(full))
    capped_len = edge_lengths(edge_vectors(capped))
    for centre in range(8):
        nearest = torch.sort(full_len[full.edge_index[1] == centre]).values[:12]
        kept = torch.sort(capped_len[capped.edge_index[1] == centre]).values
        torch.testing.assert_close(kept, nearest)


def test_distances_invariant_under_rotation_and_translation():
    rng = np.random.default_rng(1)
    atoms = Atoms(numbers=[6, 8, 1, 1, 7], positions=rng.uniform(-2, 2, (5, 3)))
    before = torch.sort(edge_lengths(edge_vectors(radius_graph(atoms, 3.0)))).values
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    moved = atoms.copy()
    moved.positions = atoms.positions @ q.T + rng.normal(size=3)
    after = torch.sort(edge_lengths(edge_vectors(radius_graph(moved, 3.0)))).values
    torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-5)


def test_periodic_distances_invariant_under_rotation_of_cell_and_atoms():
    rng = np.random.default_rng(2)
    cell = np.diag([3.0, 3.5, 4.0]) + 0.3 * rng.normal(size=(3, 3))
    atoms = Atoms(numbers=[11, 17, 11], positions=rng.uniform(0, 3, (3, 3)), cell=cell, pbc=True)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotated = Atoms(numbers=atoms.numbers, positions=atoms.positions @ q.T, cell=cell @ q.T, pbc=True)
    a = torch.sort(edge_lengths(edge_vectors(radius_graph(atoms, 5.0)))).values
    b = torch.sort(edge_lengths(edge_vectors(radius_graph(rotated, 5.0)))).values
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _energy_like(graph, pos, cell):
    d = edge_lengths(edge_vectors(graph, pos, cell))
    return (torch.exp(-d) * torch.cos(d)).sum()


def test_autograd_matches_finite_differences_for_positions_and_strain():
    torch.set_default_dtype(torch.float64)
    try:
        rng = np.random.default_rng(3)
        cell = np.diag([3.1, 3.3, 2.9]) + 0.2 * rng.normal(size=(3, 3))
        atoms = Atoms(numbers=[6] * 4, positions=rng.uniform(0, 3, (4, 3)), cell=cell, pbc=True)
        graph = radius_graph(atoms, 4.0)
        strain = torch.zeros(1, 3, 3, requires_grad=True)
        pos = graph.pos.clone().requires_grad_(True)
        graph.pos = pos
        spos, scell = apply_strain(graph, strain)
        energy = _energy_like(graph, spos, scell)
        grad_pos, grad_strain = torch.autograd.grad(energy, [pos, strain])
        eps = 1e-6
        for atom, axis in [(0, 0), (2, 1), (3, 2)]:
            plus, minus = pos.detach().clone(), pos.detach().clone()
            plus[atom, axis] += eps
            minus[atom, axis] -= eps
            fd = (_energy_like(graph, plus, graph.cell) - _energy_like(graph, minus, graph.cell)) / (2 * eps)
            assert abs(fd.item() - grad_pos[atom, axis].item()) < 1e-6
        for a, b in [(0, 0), (0, 1), (1, 2), (2, 2)]:

            def strained(delta, a=a, b=b):
                e = torch.zeros(1, 3, 3)
                e[0, a, b] += delta / 2
                e[0, b, a] += delta / 2
                p, c = apply_strain(graph, e)
                return _energy_like(graph, p.detach(), c)

            fd = (strained(eps) - strained(-eps)) / (2 * eps)
            sym = 0.5 * (grad_strain[0, a, b] + grad_strain[0, b, a])
            assert abs(fd.item() - sym.item()) < 1e-6
    finally:
        torch.set_default_dtype(torch.float32)


def test_batched_edge_vectors_use_each_graphs_own_cell():
    a = Atoms("Si", positions=[[0, 0, 0]], cell=np.eye(3) * 2.0, pbc=True)
    b = Atoms("Si", positions=[[0, 0, 0]], cell=np.eye(3) * 3.0, pbc=True)
    batch = Batch.from_data_list([radius_graph(a, 2.5), radius_graph(b, 3.5)])
    lengths = edge_lengths(edge_vectors(batch))
    first = batch.batch[batch.edge_index[1]] == 0
    torch.testing.assert_close(lengths[first].min(), torch.tensor(2.0))
    torch.testing.assert_close(lengths[~first].min(), torch.tensor(3.0))
    assert batch.cell.shape == (2, 3, 3)


def test_bond_graph_of_ethanol_has_both_directions_and_features():
    graph = bond_graph("CCO")
    assert graph.num_nodes == 3
    assert graph.edge_index.shape == (2, 4)
    pairs = set(map(tuple, graph.edge_index.t().tolist()))
    assert {(0, 1), (1, 0), (1, 2), (2, 1)} == pairs
    assert graph.edge_attr.shape[0] == 4
    assert graph.x.shape[0] == 3
    with_h = bond_graph("CCO", explicit_hydrogens=True)
    assert with_h.num_nodes == 9 and with_h.edge_index.shape[1] == 16


def test_bond_graph_rejects_bad_smiles_naming_it():
    with pytest.raises(StructureError, match="C1CC"):
        bond_graph("C1CC")


def test_virtual_edges_join_non_bonded_pairs_within_the_cutoff():
    graph = bond_graph("CCO")  # no conformer: every pair
    full = add_virtual_edges(graph, cutoff=1.0)
    assert full.edge_index.shape[1] == 3 * 2
    assert full.edge_attr.shape[1] == graph.edge_attr.shape[1] + 1
    assert full.edge_attr[:, -1].sum() == 2  # the C...O pair, both directions
    assert full.edge_type[-2:].tolist() == [VIRTUAL_EDGE_TYPE] * 2
    mol = Chem.AddHs(Chem.MolFromSmiles("CCCCCC"))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    hexane = bond_graph(mol)
    distance = torch.cdist(hexane.pos, hexane.pos)
    for cutoff in (2.0, 3.0, 100.0):
        virtual = add_virtual_edges(hexane, cutoff)
        added = virtual.edge_index[:, hexane.edge_index.shape[1] :]
        bonded = torch.zeros_like(distance, dtype=torch.bool)
        bonded[hexane.edge_index[0], hexane.edge_index[1]] = True
        expected = (distance < cutoff) & ~bonded & ~torch.eye(len(distance), dtype=torch.bool)
        assert added.shape[1] == int(expected.sum())
        assert bool(expected[added[0], added[1]].all())


def test_edge_rbf_appends_gaussians_of_every_bond_length_and_needs_3d():
    from atomgraph.features import GaussianRBF
    from atomgraph.graphs.spec import GraphSpec
    from atomgraph.models import build_model
    from atomgraph.structures import from_smiles, mol_to_atoms

    mol = Chem.AddHs(Chem.MolFromSmiles("CC(=O)N"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    spec = GraphSpec(kind="bond", cutoff=4.0, edge_rbf=8)
    plain, graph = (
        GraphSpec(kind="bond", cutoff=4.0).build(mol_to_atoms(mol, "x")),
        spec.build(mol_to_atoms(mol, "x")),
    )
    assert graph.edge_attr.shape[1] == plain.edge_attr.shape[1] + 8
    lengths = (graph.pos[graph.edge_index[0]] - graph.pos[graph.edge_index[1]]).norm(dim=-1)
    torch.testing.assert_close(graph.edge_attr[:, -8:], GaussianRBF(0.0, 4.0, 8)(lengths))
    torch.testing.assert_close(graph.edge_attr[:, :-8], plain.edge_attr)
    # the zoo's models see the bond lengths: stretching one bond changes a GAT's and a GCN's output
    stretched = Chem.Mol(mol)
    conformer = stretched.GetConformer()
    position = conformer.GetAtomPosition(3)
    conformer.SetAtomPosition(3, position * 1.1)
    moved = spec.build(mol_to_atoms(stretched, "y"))
    for name, extra in (("gat", {}), ("gcn", {"edge_features": True})):
        torch.manual_seed(0)
        dims = {"atom_dim": graph.x.shape[1], "edge_dim": graph.edge_attr.shape[1]}
        model = build_model(name, **dims, hidden=8, layers=2, **extra).eval()
        assert not torch.allclose(model(graph), model(moved))
    with pytest.raises(StructureError, match="3D"):
        spec.build(from_smiles("CCO"))
    for bad in (1, -2, True):
        with pytest.raises(ValueError, match="edge_rbf"):
            GraphSpec(kind="bond", edge_rbf=bad)
    with pytest.raises(ValueError, match="bond graphs only"):
        GraphSpec(kind="radius", edge_rbf=8)


def test_triplets_exclude_backtracking_and_give_right_angles():
    water = Atoms("OHH", positions=[[0, 0, 0], [0.757, 0.587, 0], [-0.757, 0.587, 0]])
    graph = radius_graph(water, cutoff=1.2)  # only the two O-H bonds
    idx_kj, idx_ji = triplets(graph.edge_index, graph.num_nodes, graph.edge_shift)
    # H1 -> O -> H2 and H2 -> O -> H1 are the only walks that do not turn back
    assert len(idx_kj) == 2
    angles = triplet_angles(edge_vectors(graph), idx_kj, idx_ji)
    expected = 2 * np.arctan2(0.757, 0.587)
    np.testing.assert_allclose(angles.numpy(), expected, rtol=1e-5)


def test_triplets_count_matches_brute_force_in_small_periodic_cell():
    atoms = Atoms("C", positions=[[0, 0, 0]], cell=np.eye(3) * 2.0, pbc=True)
    graph = radius_graph(atoms, cutoff=2.5)  # six images of itself
    idx_kj, idx_ji = triplets(graph.edge_index, graph.num_nodes, graph.edge_shift)
    assert len(idx_kj) == 6 * 5  # every ordered pair of distinct images
    angles = torch.sort(triplet_angles(edge_vectors(graph), idx_kj, idx_ji)).values
    assert torch.isclose(angles[0], torch.tensor(np.pi / 2, dtype=angles.dtype))


def test_neighbor_list_rejects_bad_arguments():
    with pytest.raises(ValueError, match="cutoff"):
        neighbor_list(np.zeros((1, 3)), None, False, 0.0)
    with pytest.raises(ValueError, match="max_neighbors"):
        neighbor_list(np.zeros((1, 3)), None, False, 1.0, max_neighbors=0)


GRAPH_FROM_SMILES_CASES = [
    "CCO", "c1ccccc1O", "C[C@@H](C(=O)O)N", "C/C=C/C", "[Na+].[Cl-]", "[H][H]", "[2H]C([2H])([2H])O",
    "O=S(=O)(O)c1ccc(Br)cc1", "C[Se]C", "[Fe+3]", "[NH4+]", "C1CC1", "FS(F)(F)(F)(F)F",
]  # fmt: skip


@pytest.mark.parametrize(
    "spec",
    [
        GraphSpec("bond", 6.0, explicit_hydrogens=False),
        GraphSpec("bond", 6.0),
        GraphSpec("bond", 6.0, atom_features="hbond", virtual_edges=True),
    ],
    ids=["heavy", "hydrogens", "gilmer_virtual"],
)
def test_graph_from_smiles_equals_build_of_the_structure(spec):
    """Prediction's fast path (no ase.Atoms) gives the graph the training path builds, field by field,
    and the same errors."""
    for smiles in GRAPH_FROM_SMILES_CASES:
        fast, slow = spec.graph_from_smiles(smiles), spec.build(spec.structure_from_smiles(smiles))
        assert fast.keys() == slow.keys(), smiles
        for key in slow.keys():
            assert torch.equal(fast[key], slow[key]) and fast[key].dtype == slow[key].dtype, (smiles, key)
    for bad in ("", "C1CC", "*C", "not a smiles"):
        with pytest.raises(StructureError) as slow_error:
            spec.build(spec.structure_from_smiles(bad))
        with pytest.raises(StructureError) as fast_error:
            spec.graph_from_smiles(bad)
        assert str(fast_error.value) == str(slow_error.value)


@pytest.mark.parametrize(
    "spec",
    [
        GraphSpec("bond", 6.0, explicit_hydrogens=False),
        GraphSpec("bond", 6.0),
        GraphSpec("bond", 6.0, atom_features="hbond", virtual_edges=True),
        GraphSpec("bond", 6.0, edge_rbf=4),  # needs 3D: every SMILES gets the error
        GraphSpec("radius", 5.0),
    ],
    ids=["heavy", "hydrogens", "gilmer_virtual", "rbf_without_3d", "radius"],
)
def test_graphs_from_smiles_equal_one_by_one(spec):
    """Featurising a chunk together gives each SMILES the graph (every field, dtype included) or the
    error it gets alone, in input order."""
    chunk = [*GRAPH_FROM_SMILES_CASES, "", "C1CC", "*C", "not a smiles", "CCO"]
    if spec.kind == "radius":  # 3D embedding: a few molecules are enough
        chunk = ["CCO", "C1CC", "c1ccccc1O", "*C"]
    together = spec.graphs_from_smiles(chunk)
    assert len(together) == len(chunk)
    for smiles, graph in zip(chunk, together, strict=True):
        try:
            alone = spec.graph_from_smiles(smiles)
        except StructureError as error:
            assert isinstance(graph, StructureError) and str(graph) == str(error), smiles
            continue
        assert isinstance(graph, Data) and graph.keys() == alone.keys(), smiles
        for key in alone.keys():
            assert graph[key].dtype == alone[key].dtype and torch.equal(graph[key], alone[key]), (smiles, key)
    graphs = [g for g in together if isinstance(g, Data)]
    if graphs:  # views into shared tensors collate like any graphs
        assert Batch.from_data_list(graphs).num_graphs == len(graphs)


def test_graphs_from_smiles_isolate_a_molecule_the_chunk_fails_on(monkeypatch):
    """A featurisation failure (not a parse error) costs only the molecule at fault, even one that
    fails half-way through being read (its atoms read, its bonds not): the others' graphs are the
    graphs they get alone."""
    module = importlib.import_module("atomgraph.graphs.bond_graph")
    read_bonds = module.bond_rows

    def failing(mol):
        if mol.GetNumAtoms() == 7 and mol.GetAtomWithIdx(0).GetSymbol() == "S":
            raise RuntimeError("featuriser failed")
        return read_bonds(mol)

    spec = GraphSpec("bond", 6.0, explicit_hydrogens=False)
    # more molecules than a builder reads RDKit's charges for one by one: the chunk's are computed at once
    chunk = ["CCO", "S(F)(F)(F)(F)(F)F", "C1CC", "c1ccccc1", *GRAPH_FROM_SMILES_CASES[:10]]
    assert len(chunk) > module.BondGraphBuilder.PER_MOLECULE_CHARGES + 2
    good = [k for k in range(len(chunk)) if k not in (1, 2)]
    alone = {k: spec.graph_from_smiles(chunk[k]) for k in good}
    monkeypatch.setattr(module, "bond_rows", failing)
    graphs = spec.graphs_from_smiles(chunk)
    assert isinstance(graphs[1], RuntimeError) and "featuriser failed" in str(graphs[1])
    assert isinstance(graphs[2], StructureError)
    for k, graph in alone.items():
        for key in graph.keys():
            assert torch.equal(graphs[k][key], graph[key]), (chunk[k], key)


def test_graphs_from_smiles_build_one_by_one_when_the_chunk_fails(monkeypatch):
    """Should encoding the chunk fail, the molecules are built one by one: each gets its graph or its
    own error, and a SMILES that could not be parsed keeps its error."""
    module = importlib.import_module("atomgraph.graphs.bond_graph")
    encode = module.BondGraphBuilder.graphs

    def failing(builder):
        if len(builder) > 1:
            raise ValueError("chunk encoding failed")
        return encode(builder)

    spec = GraphSpec("bond", 6.0, explicit_hydrogens=False)
    chunk = ["CCO", "C1CC", "c1ccccc1O"]
    alone = [spec.graph_from_smiles(chunk[k]) for k in (0, 2)]
    monkeypatch.setattr(module.BondGraphBuilder, "graphs", failing)
    graphs = spec.graphs_from_smiles(chunk)
    assert isinstance(graphs[1], StructureError)
    for graph, single in zip((graphs[0], graphs[2]), alone, strict=True):
        assert all(torch.equal(graph[key], single[key]) for key in single.keys())


def test_graphs_travel_between_processes_as_one_set_of_arrays():
    """A worker's graphs pickle as one array per field and come back equal, field by field; graphs
    whose fields differ, or do not stack, travel one by one."""
    import pickle

    from atomgraph.graphs.arrays import arrays_to_graphs, graphs_to_arrays

    spec = GraphSpec("bond", 6.0, explicit_hydrogens=False)
    graphs = [g for g in spec.graphs_from_smiles(GRAPH_FROM_SMILES_CASES) if isinstance(g, Data)]
    packed = graphs_to_arrays(graphs)
    assert "fields" in packed and packed["fields"]["edge_index"][2] == -1
    back = arrays_to_graphs(pickle.loads(pickle.dumps(packed)))
    for before, after in zip(graphs, back, strict=True):
        assert before.keys() == after.keys()
        for key in before.keys():
            assert before[key].dtype == after[key].dtype and torch.equal(before[key], after[key]), key
    odd = [graphs[0].clone(), graphs[1].clone()]
    odd[1].extra = torch.zeros(3)  # a field only one graph has
    wide = [graphs[0].clone(), graphs[1].clone()]
    wide[1].x = torch.zeros(wide[1].num_nodes, 5)  # a field that does not stack
    for different in (odd, wide):
        packed = graphs_to_arrays(different)
        assert "graphs" in packed
        assert all(torch.equal(a.x, b.x) for a, b in zip(different, arrays_to_graphs(packed), strict=True))
    assert arrays_to_graphs(graphs_to_arrays([])) == []


def test_heavy_atom_graphs_sanitise_a_molecule_given_unsanitised():
    """An unsanitised molecule without hydrogens (QM9's connectivity fallback, or one a user builds)
    is still sanitised on its way into a heavy-atom graph: hybridisation and conjugation are set, and
    an impossible valence is an error."""
    spec = GraphSpec("bond", 6.0, explicit_hydrogens=False)
    atoms = Atoms("C4", positions=np.zeros((4, 3)))
    atoms.info["rdkit_mol"] = Chem.MolFromSmiles("C=CC=C", sanitize=False)
    graph = spec.build(atoms)
    reference = spec.graph_from_smiles("C=CC=C")
    assert torch.equal(graph.x, reference.x) and torch.equal(graph.edge_attr, reference.edge_attr)
    atoms = Atoms("C7", positions=np.zeros((7, 3)))
    atoms.info["rdkit_mol"] = Chem.MolFromSmiles("CC(C)(C)(C)(C)C", sanitize=False)
    with pytest.raises(Exception, match="valence"):
        spec.build(atoms)


def test_edge_pairs_match_each_forward_edge_with_its_reverse_in_a_batch_without_splitting_compiled_code():
    """Forward edges and their reverses in matching order (P = E / 2 by the layout, so the indices have a
    static size: ``nonzero`` split every compiled forward in two); a mask that marks other than half the
    edges is refused."""
    rng = np.random.default_rng(4)
    graphs = [radius_graph(Atoms("CH4", positions=rng.normal(size=(5, 3))), 3.0) for _ in range(3)]
    crystal = Atoms("Si2", positions=[[0, 0, 0], [1.3, 1.3, 1.3]], cell=np.eye(3) * 5.4, pbc=True)
    batch = Batch.from_data_list([*graphs, radius_graph(crystal, 3.0)])
    forward, reverse = edge_pairs(batch)
    assert torch.equal(forward, batch.edge_forward.nonzero().view(-1))
    assert torch.equal(reverse, (~batch.edge_forward).nonzero().view(-1))
    assert torch.equal(batch.edge_index[:, forward], batch.edge_index[:, reverse].flip(0))
    assert torch.equal(batch.edge_shift[forward], -batch.edge_shift[reverse])
    explained = torch._dynamo.explain(lambda graph: edge_pairs(graph)[0] + 1)(batch)
    assert explained.graph_break_count == 0
    broken = batch.clone()
    broken.edge_forward = broken.edge_forward.clone()
    broken.edge_forward[-1] = True
    with pytest.raises(ValueError, match="not half"):
        edge_pairs(broken)
