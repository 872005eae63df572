"""Seed 000's practical GAT: widths per head, residual rules, parameter count, attention weights."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from atomgraph.graphs.spec import GraphSpec
from atomgraph.models import build_model
from atomgraph.structures import from_smiles

SMILES = ["CCO", "c1ccncc1", "CC(=O)O", "OC1CCCC1"]


def graphs():
    return [GraphSpec(kind="bond").build(from_smiles(s)) for s in SMILES]


def practical(**arguments):
    torch.manual_seed(0)
    settings = {"atom_dim": graphs()[0].x.shape[1], "reductions": ("mean",), **arguments}
    return build_model("gat_practical", **settings)


def test_the_seed_size_has_every_head_as_wide_as_hidden_and_the_seed_parameter_count():
    model = practical(hidden=128, heads=4, layers=4)
    widths = [
        (conv.in_channels, conv.out_channels * conv.heads if conv.concat else conv.out_channels)
        for conv in model.convs
    ]
    assert widths == [(128, 512), (512, 512), (512, 512), (512, 128)]
    total = sum(p.numel() for p in model.parameters())
    projection = model.project_residual.weight.numel()
    assert projection == 512 * 128
    # the seed's count: embedding 47x128+128 (+BN), GATConv weights and attention vectors, BNs, fc1, fc2
    gat = 128 * 512 + 2 * 512 + 512 + 2 * (512 * 512 + 2 * 512 + 512) + 512 * 512 + 2 * 512 + 128
    norms = 2 * (128 + 3 * 512 + 128 + 64)
    expected = 47 * 128 + 128 + gat + norms + 128 * 64 + 64 + 64 + 1
    assert total - projection == expected == 875_905
    split = build_model("gat", atom_dim=47, edge_dim=11, reductions=("mean",), hidden=128, heads=4, layers=4)
    assert sum(p.numel() for p in split.parameters()) < total / 6


def test_residuals_skip_the_widening_layer_and_project_into_the_last():
    model = practical(hidden=8, heads=2, layers=3).eval()
    graph = graphs()[1]
    states = model.node_states(graph)
    assert [s.shape[1] for s in states] == [16, 16, 8]
    with torch.no_grad():
        model.project_residual.weight.zero_()
        without = model.node_states(graph)[-1]
        model.project_residual.weight.fill_(0.1)
        assert not torch.allclose(model.node_states(graph)[-1], without)
    assert practical(hidden=8, heads=1, layers=3).project_residual is None  # widths agree: plain sums


def test_kaiming_start_batching_and_attention_that_sums_to_one():
    model = practical(hidden=8, heads=2, layers=2)
    assert all(
        float(m.bias.detach().abs().max()) == 0
        for m in model.modules()
        if isinstance(m, torch.nn.Linear) and m.bias is not None
    )
    model.eval()
    data = graphs()
    batched = model(Batch.from_data_list(data))
    torch.testing.assert_close(batched, torch.cat([model(g) for g in data]), rtol=1e-5, atol=1e-6)
    layers = model.attention_weights(data[2])
    assert len(layers) == 2 and model.training is False
    for index, alpha in layers:
        assert alpha.shape == (index.shape[1], 2)
        sums = torch.zeros(data[2].num_nodes, 2).index_add_(0, index[1], alpha)
        torch.testing.assert_close(sums, torch.ones_like(sums))
    with pytest.raises(ValueError, match="layers"):
        practical(layers=0)
