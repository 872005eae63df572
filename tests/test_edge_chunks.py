"""Edges taken a chunk at a time (atomgraph.nn.edge_chunks) give the sums of one pass over every edge:
energies, forces and the gradients of a force loss, for each model that chunks its messages."""

from __future__ import annotations

import pytest
import torch
from ase.build import molecule

import atomgraph.nn.edge_chunks as edge_chunks
from atomgraph.graphs.radius_graph import radius_graph
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models import build_model

SMALL = {
    "painn": {"hidden": 8, "interactions": 2, "num_rbf": 6},
    "equivariant": {"hidden_irreps": "6x0e + 3x1o", "layers": 2, "num_basis": 4, "radial_hidden": 8},
    "mace": {
        "channels": 4,
        "sh_lmax": 2,
        "correlation": 3,
        "layers": 2,
        "radial_hidden": [8],
        "elements": [1, 6, 8],
    },
}


def energy_forces_gradients(model, graph):
    pos = graph.pos.clone().requires_grad_(True)
    graph = graph.clone()
    graph.pos = pos
    energy = model(graph).sum()
    forces = -torch.autograd.grad(energy, pos, create_graph=True)[0]
    loss = forces.pow(2).sum()  # what force training differentiates (double backward)
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True)
    return energy.detach(), forces.detach(), [g for g in grads if g is not None]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_chunks_equal_one_pass(name, float64, monkeypatch):
    torch.manual_seed(0)
    model = build_model(name, GraphSpec("radius", 4.0), **SMALL[name])
    # 72 directed edges, 36 pairs (PaiNN chunks pairs): chunks of 5 leave a remainder either way
    graph = radius_graph(molecule("CH3CH2OH"), 4.0)
    whole = energy_forces_gradients(model, graph)
    monkeypatch.setattr(edge_chunks, "EDGE_CHUNK", 5)
    chunked = energy_forces_gradients(model, graph)
    torch.testing.assert_close(chunked[0], whole[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(chunked[1], whole[1], rtol=1e-12, atol=1e-12)
    assert len(chunked[2]) == len(whole[2]) > 0
    for a, b in zip(chunked[2], whole[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
