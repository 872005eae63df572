"""The GNN zoo (GCN, GraphSAGE, GAT, GATv2): permutation invariance for every node pool, batching, shapes,
attention normalisation, neighbour sampling, and a few optimisation steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem
from torch_geometric.data import Batch

from atomgraph.graphs import bond_graph
from atomgraph.models import available_models, build_model
from atomgraph.models.graphsage import NeighborLSTM, sample_incoming
from atomgraph.nn import POOLS

ATOM_DIM, EDGE_DIM = 47, 11
REDUCTIONS = ("sum", "mean")
SMILES = ["CCO", "c1ccncc1", "CC(=O)Oc1ccccc1C(=O)O", "OC1CC(N)C1", "C"]  # "C": one atom, no edges
SMALL = {"hidden": 8, "layers": 2}
#: name -> (registry name, arguments): every aggregator, norm, jumping knowledge and residual option.
VARIANTS = {
    "gcn": ("gcn", {}),
    "gcn_bond_inputs_layernorm": ("gcn", {"edge_features": True, "norm": "layer"}),
    "sage_mean_cat": ("graphsage", {"aggregator": "mean", "jumping_knowledge": "cat"}),
    "sage_maxpool_batchnorm": ("graphsage", {"aggregator": "max", "norm": "batch"}),
    "sage_lstm_max": ("graphsage", {"aggregator": "lstm", "jumping_knowledge": "max", "neighbor_samples": 2}),
    "gat_layernorm_cat": ("gat", {"heads": 2, "norm": "layer", "jumping_knowledge": "cat"}),
    "gatv2_plain_max": ("gatv2", {"heads": 2, "residual": False, "jumping_knowledge": "max"}),
    "gat_no_edge_features": ("gat", {"heads": 4, "edge_features": False, "norm": "batch"}),
}


def zoo_model(variant: str, pool: str = "mean", **extra) -> torch.nn.Module:
    name, arguments = VARIANTS[variant]
    torch.manual_seed(0)
    model = build_model(
        name, atom_dim=ATOM_DIM, edge_dim=EDGE_DIM, reductions=REDUCTIONS, pool=pool,
        **{**SMALL, **arguments, **extra},
    )  # fmt: skip
    return model.eval()


def test_zoo_is_registered_as_bond_graph_models():
    assert {"gcn", "graphsage", "gat", "gatv2"} <= set(available_models())
    for name in ("gcn", "graphsage", "gat", "gatv2"):
        assert build_model(name, atom_dim=ATOM_DIM).card.graph_kind == "bond"


def shuffled_edges(graph, rng: np.random.Generator):
    """The same graph with its edges listed in a random order."""
    out = graph.clone()
    order = torch.as_tensor(rng.permutation(graph.num_edges))
    for key in ("edge_index", "edge_attr", "edge_type", "edge_shift"):
        out[key] = graph[key][:, order] if key == "edge_index" else graph[key][order]
    del out.edge_forward
    return out


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_permutation_invariant(variant, pool, float64):
    model = zoo_model(variant, pool)
    rng = np.random.default_rng(3)
    for smiles in SMILES[:4]:
        mol = Chem.MolFromSmiles(smiles)
        order = rng.permutation(mol.GetNumAtoms())
        permuted = Chem.RenumberAtoms(mol, [int(i) for i in order])
        graph, moved = bond_graph(mol), bond_graph(permuted)
        torch.testing.assert_close(moved.x, graph.x[torch.as_tensor(order)])
        moved = shuffled_edges(moved, rng)  # RenumberAtoms keeps the bond order: shuffle it as well
        torch.testing.assert_close(model(moved), model(graph), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_batch_equals_single_graphs_and_shapes(variant, pool, float64):
    model = zoo_model(variant, pool)
    graphs = [bond_graph(s) for s in SMILES]
    batched = model(Batch.from_data_list(graphs))
    assert batched.shape == (len(SMILES), len(REDUCTIONS))
    single = torch.cat([model(g) for g in graphs])
    torch.testing.assert_close(batched, single, rtol=1e-10, atol=1e-10)
    states = model.node_states(graphs[2])
    assert len(states) == SMALL["layers"]
    width = SMALL["hidden"] * (SMALL["layers"] if model.jumping_knowledge == "cat" else 1)
    assert model.jump(states).shape == (graphs[2].num_nodes, width)
    assert model.readout.out_dim == (2 * width if pool == "set2set" else width)


@pytest.mark.parametrize("name", ["gat", "gatv2"])
@pytest.mark.parametrize("edge_features", [True, False])
def test_attention_sums_to_one_over_incoming_edges(name, edge_features, float64):
    torch.manual_seed(0)
    heads, layers = 3, 3
    model = build_model(
        name, atom_dim=ATOM_DIM, edge_dim=EDGE_DIM, hidden=12, layers=layers, heads=heads,
        attention_dropout=0.5, edge_features=edge_features,
    )  # fmt: skip
    model.train()
    batch = Batch.from_data_list([bond_graph(s) for s in SMILES])
    n, e = batch.num_nodes, batch.num_edges
    attention = model.attention_weights(batch)
    assert model.training, "attention_weights must restore the training mode"
    assert len(attention) == layers
    for edge_index, alpha in attention:
        assert edge_index.shape == (2, e + n) and alpha.shape == (e + n, heads)
        loops = edge_index[0] == edge_index[1]
        assert torch.equal(torch.sort(edge_index[0, loops]).values, torch.arange(n)), "one self-loop per node"
        total = torch.zeros(n, heads).index_add_(0, edge_index[1], alpha)
        torch.testing.assert_close(total, torch.ones(n, heads), rtol=1e-12, atol=1e-12)
        assert bool((alpha >= 0).all())


def test_attention_uses_edge_features(float64):
    graph = bond_graph("CC(=O)O")
    changed = graph.clone()
    changed.edge_attr = torch.rand_like(graph.edge_attr)
    for edge_features, differs in ((True, True), (False, False)):
        model = zoo_model("gat_layernorm_cat", edge_features=edge_features)
        alpha, alpha_changed = model.attention_weights(graph)[0][1], model.attention_weights(changed)[0][1]
        assert differs != torch.allclose(alpha, alpha_changed)


def test_neighbor_sampling_keeps_at_most_k_incoming_edges():
    graph = bond_graph("CC(C)(C)c1ccc(O)cc1")
    target = graph.edge_index[1]
    degree = torch.bincount(target, minlength=graph.num_nodes)
    draws = set()
    for seed in range(20):
        torch.manual_seed(seed)
        keep = sample_incoming(graph.edge_index, graph.num_nodes, 2)
        assert bool((keep[1:] > keep[:-1]).all())
        kept = torch.bincount(target[keep], minlength=graph.num_nodes)
        assert torch.equal(kept, degree.clamp(max=2))
        draws.add(tuple(keep.tolist()))
    assert len(draws) > 1, "the subsample must change between forwards"


def test_sampling_only_in_training(float64):
    model = zoo_model("sage_lstm_max")
    model.neighbor_samples = 1
    graph = bond_graph("CC(C)(C)c1ccc(O)cc1")
    assert model.edges(graph).index.shape[1] == graph.num_edges
    model.train()
    assert model.edges(graph).index.shape[1] == graph.num_nodes  # every atom here has a neighbour


def test_lstm_aggregation_ignores_edge_order_and_padding(float64):
    torch.manual_seed(0)
    lstm = NeighborLSTM(4)
    x = torch.randn(7, 4)
    index = torch.tensor([2, 0, 2, 1, 2, 0, 4])
    out = lstm(x, index, dim_size=5)
    assert out.shape == (5, 4) and torch.equal(out[3], torch.zeros(4))
    perm = torch.randperm(7)
    torch.testing.assert_close(lstm(x[perm], index[perm], dim_size=5), out)
    alone = lstm(x[index == 1], torch.zeros(1, dtype=torch.long), dim_size=1)  # degree 1, no padding
    torch.testing.assert_close(alone[0], out[1])


TRAIN_SMILES = ["CCO", "c1ccncc1", "CC(=O)O", "OC1CCCC1", "c1ccccc1O", "CCCC", "NCCO", "c1ccoc1", "CC#N"]


def labelled_graph(smiles: str):
    """A bond graph with an intensive synthetic label: aromatic fraction + oxygen fraction of the atoms."""
    mol = Chem.MolFromSmiles(smiles)
    graph = bond_graph(mol)
    atoms = list(mol.GetAtoms())
    label = np.mean([a.GetIsAromatic() for a in atoms]) + np.mean([a.GetAtomicNum() == 8 for a in atoms])
    graph.y = torch.tensor([[label]], dtype=torch.get_default_dtype())
    return graph


@pytest.mark.parametrize(
    "name, arguments",
    [
        ("gcn", {"norm": "batch", "edge_features": True}),
        ("graphsage", {"aggregator": "lstm", "neighbor_samples": 2, "dropout": 0.1}),
        ("graphsage", {"aggregator": "max", "jumping_knowledge": "cat"}),
        ("gat", {"heads": 2, "attention_dropout": 0.1, "norm": "layer"}),
        ("gatv2", {"heads": 2, "jumping_knowledge": "max", "pool": "attention"}),
    ],
)
def test_models_train_on_a_tiny_target(name, arguments):
    batch = Batch.from_data_list([labelled_graph(s) for s in TRAIN_SMILES])
    target = (batch.y - batch.y.mean()) / batch.y.std()
    torch.manual_seed(0)
    model = build_model(name, atom_dim=ATOM_DIM, edge_dim=EDGE_DIM, hidden=16, layers=2, **arguments)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(batch), target)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.3 * losses[0], losses


@pytest.mark.parametrize(
    "name, arguments, match",
    [
        ("gat", {"hidden": 10, "heads": 4}, "multiple of heads"),
        ("graphsage", {"aggregator": "sum"}, "aggregator"),
        ("graphsage", {"neighbor_samples": 0}, "neighbor_samples"),
        ("gcn", {"norm": "group"}, "norm"),
        ("gcn", {"jumping_knowledge": "lstm"}, "jumping_knowledge"),
        ("gcn", {"pool": "median"}, "node pool"),
        ("gcn", {"layers": 0}, "at least one layer"),
    ],
)
def test_bad_arguments_are_reported(name, arguments, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, atom_dim=ATOM_DIM, **arguments)


def test_gcn_layer_equals_pyg_gcnconv_with_gradients(float64):
    """The sparse-matrix convolution (adjacency normalised once per pass) gives PyG ``GCNConv``'s
    values and input gradients with the same weights, on a batch with an edgeless one-atom graph."""
    from torch_geometric.nn import GCNConv

    model = zoo_model("gcn")
    batch = Batch.from_data_list([bond_graph(s) for s in SMILES])
    edges = model.edges(batch)
    conv = model.convs[0]
    h = torch.randn(batch.num_nodes, SMALL["hidden"], requires_grad=True)
    reference = GCNConv(SMALL["hidden"], SMALL["hidden"], add_self_loops=True, normalize=True)
    reference.load_state_dict(conv.state_dict())
    ours, theirs = model.convolve(conv, h, edges), reference(h, batch.edge_index)
    torch.testing.assert_close(ours, theirs)
    weights = torch.randn_like(ours)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), h)
    (grad_theirs,) = torch.autograd.grad((theirs * weights).sum(), h)
    torch.testing.assert_close(grad_ours, grad_theirs)
