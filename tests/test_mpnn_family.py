"""Gilmer et al.'s MPNN family: message functions, directed messages, towers, master node, readouts,
input states, distance bins, virtual edges and donor/acceptor features."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import SCAFFOLD_SMILES, write_csv
from rdkit import Chem
from rdkit.Chem import AllChem
from test_training import csv_config, load
from torch_geometric.data import Batch

from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.features import AtomFeaturizer
from atomgraph.features.bond_features import NUM_BOND_TYPES
from atomgraph.features.radial import distance_bins
from atomgraph.graphs import VIRTUAL_EDGE_TYPE, bond_graph
from atomgraph.graphs.spec import GraphSpec, resolve_graph_spec
from atomgraph.models import build_model
from atomgraph.nn.messages import EdgeNetworkMessage, MatrixMessage, PairMessage
from atomgraph.runs import TrainedRun
from atomgraph.structures import mol_to_atoms

SMILES = ["CCO", "c1ccncc1", "CC(=O)O", "OC1CCCC1"]
GRAPH = GraphSpec(kind="bond", cutoff=4.0, virtual_edges=True, atom_features="hbond")
SMALL = {"hidden": 16, "steps": 2, "set2set_steps": 2, "edge_hidden": 8}
VARIANTS = {
    "enn-s2s": {},
    "matrix+bins": {"message": "matrix", "distance": "bins"},
    "matrix": {"message": "matrix"},
    "pair+raw": {"message": "pair", "distance": "raw"},
    "directed": {"directed": True, "distance": "rbf", "num_rbf": 4},
    "towers": {"towers": 4, "distance": "bins"},
    "master": {"master_dim": 24, "distance": "rbf", "num_rbf": 4},
    "pad+ggnn": {"input_states": "pad", "hidden": 56, "pool": "ggnn"},
    "all": {
        "message": "pair", "directed": True, "towers": 2, "master_dim": 8, "input_states": "pad",
        "hidden": 56, "pool": "ggnn", "distance": "bins",
    },
}  # fmt: skip


def embedded(smiles: str, seed: int = 0):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    return mol


def graphs(spec: GraphSpec = GRAPH):
    return [spec.build(mol_to_atoms(embedded(s), s)) for s in SMILES]


def model_for(graph, graph_spec: GraphSpec = GRAPH, **arguments) -> torch.nn.Module:
    torch.manual_seed(0)
    settings = {**SMALL, **arguments}
    return build_model(
        "mpnn", graph=graph_spec, atom_dim=graph.x.shape[1], edge_dim=graph.edge_attr.shape[1],
        reductions=("sum", "mean"), **settings,
    ).eval()  # fmt: skip


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_batches_and_is_permutation_and_rotation_invariant(variant, float64):
    data = graphs()
    model = model_for(data[0], **VARIANTS[variant])
    batched = model(Batch.from_data_list(data))
    assert batched.shape == (len(SMILES), 2) and torch.isfinite(batched).all()
    torch.testing.assert_close(batched, torch.cat([model(g) for g in data]), rtol=1e-10, atol=1e-10)
    rng = np.random.default_rng(3)
    for smiles, graph in zip(SMILES, data, strict=True):
        mol = embedded(smiles)
        order = [int(i) for i in rng.permutation(mol.GetNumAtoms())]
        permuted = Chem.RenumberAtoms(mol, order)
        rotation = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
        moved = GRAPH.build(mol_to_atoms(permuted, smiles))
        moved.pos = moved.pos @ rotation.T + torch.tensor([1.0, -2.0, 0.5])
        torch.testing.assert_close(model(moved), model(graph), rtol=1e-9, atol=1e-9)


def test_matrix_message_is_one_matrix_per_edge_type_and_tower(float64):
    torch.manual_seed(1)
    function = MatrixMessage(num_types=3, towers=2, width=4)
    h = torch.randn(5, 2, 4)
    sender, receiver = torch.tensor([0, 1, 4, 2]), torch.tensor([1, 0, 2, 4])
    types = torch.tensor([0, 2, 1, 2])
    got = function(h, sender, receiver, None, types)
    for e in range(4):
        for k in range(2):
            expected = function.matrices[types[e], k] @ h[sender[e], k]
            torch.testing.assert_close(got[e, k], expected)
    with pytest.raises(ValueError, match="edge type 3"):
        function(h, sender, receiver, None, torch.tensor([0, 0, 0, 3]))


@pytest.mark.parametrize("function_class", [EdgeNetworkMessage, PairMessage])
def test_towers_do_not_see_each_other_within_a_message(function_class, float64):
    torch.manual_seed(2)
    function = function_class(edge_dim=3, towers=4, width=5, edge_hidden=6)
    h, edges = torch.randn(6, 4, 5), torch.randn(7, 3)
    sender, receiver = torch.randint(0, 6, (7,)), torch.randint(0, 6, (7,))
    before = function(h, sender, receiver, edges, None)
    changed = h.clone()
    changed[:, 1] += 1.0
    after = function(changed, sender, receiver, edges, None)
    assert not torch.allclose(after[:, 1], before[:, 1])
    torch.testing.assert_close(after[:, [0, 2, 3]], before[:, [0, 2, 3]])


def test_towers_shrink_the_edge_network():
    graph = graphs()[0]
    single = model_for(graph, hidden=64, edge_hidden=8)
    towers = model_for(graph, hidden=64, edge_hidden=8, towers=8)
    out = lambda m: m.messages[0].matrices[-1].out_features  # noqa: E731
    assert out(single) == 64 * 64 and out(towers) == 8 * 8 * 8
    assert len(towers.grus) == 8 and towers.grus[0].hidden_size == 8


@pytest.mark.parametrize("directed", [False, True])
def test_directed_messages_also_flow_against_the_edge(directed):
    """One directed edge 0 -> 1: M_in tells atom 1 about atom 0; only M_out tells atom 0 about atom 1."""
    graph = bond_graph("CO")
    keep = graph.edge_index[0] == 0
    graph.edge_index, graph.edge_attr, graph.edge_type = (
        graph.edge_index[:, keep],
        graph.edge_attr[keep],
        graph.edge_type[keep],
    )
    model = model_for(graph, GraphSpec(kind="bond"), directed=directed, steps=1)
    assert len(model.messages) == 1 + directed and model.grus[0].input_size == (1 + directed) * 16
    changed = graph.clone()
    changed.x = graph.x.clone()
    changed.x[1] += 1.0
    before, after = model.node_states(graph), model.node_states(changed)
    assert not torch.allclose(before[1], after[1])
    assert torch.allclose(before[0], after[0]) != directed


def test_master_node_has_its_own_width_and_gru_and_changes_the_prediction():
    graph = graphs()[1]
    plain, master = model_for(graph), model_for(graph, master_dim=24)
    assert master.master.gru.hidden_size == 24 and master.master.to_atoms.in_features == 24
    assert not torch.allclose(plain(graph), master(graph))
    # not pooled: the readout sees exactly the atoms
    seen = []
    hook = master.readout.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    master(graph)
    hook.remove()
    assert seen == [graph.num_nodes]


def test_padded_input_states_are_the_atom_features():
    graph = graphs()[0]
    model = model_for(graph, input_states="pad", hidden=64)
    h0 = model.initial_states(graph.x)
    torch.testing.assert_close(h0[:, : graph.x.shape[1]], graph.x)
    assert h0.shape == (graph.num_nodes, 64) and not h0[:, graph.x.shape[1] :].any()
    with pytest.raises(ValueError, match="hidden >= atom_dim"):
        model_for(graph, input_states="pad", hidden=16)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"towers": 3}, "multiple of towers"),
        ({"message": "tensor"}, "message must be one of"),
        ({"distance": "bohr"}, "distance must be one of"),
        ({"input_states": "zeros"}, "input_states must be one of"),
        ({"master_dim": -1}, "master_dim"),
    ],
)
def test_bad_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        model_for(graphs()[0], **arguments)


def test_distance_bins_become_the_type_of_virtual_edges_only():
    graph = graphs()[2]
    model = model_for(graph, message="matrix", distance="bins")
    vector, types = model.edge_input(graph)
    virtual = graph.edge_type == VIRTUAL_EDGE_TYPE
    d = (graph.pos[graph.edge_index[0]] - graph.pos[graph.edge_index[1]]).norm(dim=-1)
    assert torch.equal(types[virtual], VIRTUAL_EDGE_TYPE + distance_bins(d[virtual]))
    assert torch.equal(types[~virtual], graph.edge_type[~virtual])
    assert model.messages[0].matrices.shape[0] == NUM_BOND_TYPES + 10
    assert vector.shape[1] == graph.edge_attr.shape[1] + 10 and torch.equal(
        vector[:, -10:].sum(1), torch.ones(len(d))
    )


def test_checkpoints_of_the_single_edge_network_model_still_load():
    graph = graphs()[0]
    model = model_for(graph)
    old = {}
    for key, value in model.state_dict().items():
        key = key.replace("messages.0.matrices.", "edge_network.matrices.").replace("grus.0.", "gru.")
        old[key] = value.clone()
    fresh = model_for(graph)
    for p in fresh.parameters():
        torch.nn.init.zeros_(p)
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh(graph), model(graph))


def test_hbond_features_mark_donors_and_acceptors():
    mol = Chem.AddHs(Chem.MolFromSmiles("OC(=O)c1ccncc1N"))  # acid O-H, C=O, pyridine N, aniline N-H2
    featurizer = AtomFeaturizer(hbond=True)
    x = featurizer(mol)
    assert featurizer.dim == AtomFeaturizer().dim + 2
    donor, acceptor = (
        x[:, featurizer.slices["donor"]].squeeze(1),
        x[:, featurizer.slices["acceptor"]].squeeze(1),
    )
    assert donor.nonzero().flatten().tolist() == [0, 9]  # the O-H oxygen and the NH2 nitrogen
    assert acceptor.nonzero().flatten().tolist() == [0, 2, 6]  # both acid oxygens and the ring nitrogen
    torch.testing.assert_close(x[:, : AtomFeaturizer().dim], AtomFeaturizer()(mol))
    graph = bond_graph(mol, featurizer)
    assert graph.x.shape[1] == featurizer.dim


def test_cache_keys_of_specs_without_the_new_fields_are_unchanged_and_virtual_cutoff_is_checked():
    import hashlib

    spec = GraphSpec(kind="bond", cutoff=6.0, virtual_edges=True)
    old_layout = {"kind": "bond", "cutoff": 6.0, "max_neighbors": None, "explicit_hydrogens": True,
                  "virtual_edges": True, "master_node": False, "options": {}}  # fmt: skip
    assert spec.key() == hashlib.sha256(json.dumps(old_layout, sort_keys=True).encode()).hexdigest()[:12]
    assert GraphSpec(kind="bond", atom_features="hbond").key() != GraphSpec(kind="bond").key()
    within = GraphSpec(kind="bond", virtual_edges=True, virtual_cutoff=3.0)
    assert within.key() != spec.key() and "within 3 Å" in within.describe()
    for bad in ({"virtual_cutoff": 3.0}, {"virtual_edges": True, "virtual_cutoff": -1.0}):
        with pytest.raises(ValueError, match="virtual_cutoff"):
            GraphSpec(kind="bond", **bad)
    # a run recorded before virtual_cutoff existed had every pair: it still gets every pair
    recorded = {**spec.to_dict(), "master_node": False}
    del recorded["virtual_cutoff"], recorded["atom_features"], recorded["edge_rbf"]
    mol = embedded("CCCCCCCC")
    graph = GraphSpec.from_dict(recorded).build(mol_to_atoms(mol, "octane"))
    n = graph.num_nodes
    assert graph.edge_index.shape[1] == n * (n - 1)  # bonds and virtual edges: every ordered pair


def test_a_recorded_master_node_flag_reads_back_or_is_refused():
    recorded = {**GraphSpec(kind="bond").to_dict(), "master_node": False}
    assert GraphSpec.from_dict(recorded) == GraphSpec(kind="bond")
    assert resolve_graph_spec(recorded, GraphSpec()) == GraphSpec(kind="bond")
    with pytest.raises(ValueError, match="master_dim"):
        GraphSpec.from_dict({**recorded, "master_node": True})
    with pytest.raises(ValueError, match="atom_features must be one of"):
        GraphSpec(kind="bond", atom_features="gilmer")


def test_a_variant_trains_from_a_config_and_reports_chemical_accuracy(tmp_path, capsys):
    homo = [-6.0 - 0.05 * len(s) for s in SCAFFOLD_SMILES]  # eV: a QM9 name gets QM9's TargetSpec
    csv = write_csv(tmp_path / "homo.csv", SCAFFOLD_SMILES, homo=homo)
    config = csv_config(tmp_path, csv, "homo", epochs=2)
    config["data"]["graph"] = {"kind": "bond", "virtual_edges": True, "atom_features": "hbond"}
    config["model"].update(message="matrix", towers=2, master_dim=8, pool="ggnn", hidden=16)
    run_dir = train_and_evaluate(load(tmp_path, config))
    entry = json.loads((run_dir / "metrics.json").read_text())["test"]["homo"]
    assert entry["chemical_accuracy_ratio"] == pytest.approx(entry["model"]["mae"] / 0.043)
    assert "MAE / chemical accuracy" in capsys.readouterr().out
    run = TrainedRun.load(run_dir)
    assert run.graph.atom_features == "hbond" and run.graph.virtual_edges
    assert run.module.model.master.master_dim == 8 and len(run.module.model.grus) == 2
