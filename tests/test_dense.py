"""Dense layers through oneDNN (:mod:`atomgraph.nn.dense`): the same products and gradients (first and
second order) as ``F.linear`` whatever the row count, oneDNN actually used where it applies, and SchNet's
padded rows changing nothing: outputs, forces, stress and parameter gradients equal those of the plain
products, eager and compiled; an exported (scripted) SchNet keeps plain products."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ase.build import bulk
from conftest import random_molecule
from torch.profiler import profile
from torch_geometric.data import Batch

import atomgraph.nn.dense as dense_module
from atomgraph.graphs import radius_graph
from atomgraph.graphs.geometry import apply_strain
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models import build_model
from atomgraph.nn.dense import ROWS, Dense, dense, row_padding
from atomgraph.training.compile import compile_forward

needs_onednn = pytest.mark.skipif(not dense_module.ONEDNN, reason="oneDNN's fast path does not apply here")


def kernels(fn) -> set[str]:
    with profile() as prof:
        fn()
    return {event.key for event in prof.key_averages()}


@pytest.mark.parametrize("rows", [ROWS, 3 * ROWS, 130, 1])
def test_dense_equals_linear_with_gradients_of_both_orders(rows):
    torch.manual_seed(0)
    x = torch.randn(rows, 24, requires_grad=True)
    layer = Dense(24, 16)
    weight, bias = layer.weight, layer.bias

    def loss(fn):  # a second derivative: the gradient w.r.t. x, differentiated again
        (grad_x,) = torch.autograd.grad(torch.tanh(fn(x)).square().sum(), x, create_graph=True)
        return grad_x.square().sum(), torch.autograd.grad(grad_x.square().sum(), (x, weight, bias))

    expected_value, expected = loss(lambda v: F.linear(v, weight, bias))
    value, actual = loss(layer)
    torch.testing.assert_close(value, expected_value, rtol=1e-5, atol=1e-5)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5)
    assert layer.state_dict().keys() == torch.nn.Linear(24, 16).state_dict().keys()


@needs_onednn
def test_onednn_only_for_row_multiples_of_float32_on_the_cpu():
    weight = torch.randn(16, 24)
    assert "mkldnn::_linear_pointwise" in kernels(lambda: dense(torch.randn(2 * ROWS, 24), weight))
    assert "mkldnn::_linear_pointwise" not in kernels(lambda: dense(torch.randn(2 * ROWS + 1, 24), weight))
    assert "mkldnn::_linear_pointwise" not in kernels(
        lambda: dense(torch.randn(2 * ROWS, 24, dtype=torch.float64), weight.double())
    )
    assert [row_padding(n) for n in (0, 1, ROWS, ROWS + 1)] == [0, ROWS - 1, 0, ROWS - 1]


def schnet() -> torch.nn.Module:
    torch.manual_seed(0)
    graph = GraphSpec(cutoff=4.0)
    return build_model(
        "schnet", graph=graph, reductions=["sum", "mean"], hidden=16, filters=16, interactions=2, num_rbf=8
    )


def batch() -> Batch:
    """Molecules and a strained periodic cell in one batch: row counts that are no multiple of ROWS."""
    rng = np.random.default_rng(1)
    crystal = bulk("Si", "diamond", a=5.43)
    crystal.rattle(0.05, seed=3)
    graphs = [radius_graph(random_molecule(rng, 5, 9), 4.0) for _ in range(5)] + [radius_graph(crystal, 4.0)]
    return Batch.from_data_list(graphs)


def everything(model: torch.nn.Module, graph: Batch) -> list[torch.Tensor]:
    """Outputs, forces, stress-like strain gradient and the parameter gradients of a loss on all three."""
    strain = torch.zeros(graph.num_graphs, 3, 3, requires_grad=True)
    pos = graph.pos.clone().requires_grad_(True)
    strained = graph.clone()
    strained.pos, strained.cell = apply_strain(graph.update({"pos": pos}), strain)
    out = model(strained)
    forces, stress = torch.autograd.grad(out[:, 0].sum(), (pos, strain), create_graph=True)
    loss = out.square().sum() + forces.square().sum() + stress.square().sum()
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return [out, forces, stress, *grads]


@needs_onednn
def test_schnet_padded_rows_change_nothing(monkeypatch):
    model, graph = schnet(), batch()
    assert "mkldnn::_linear_pointwise" in kernels(lambda: model(graph))
    padded = everything(model, graph)
    monkeypatch.setattr(dense_module, "ONEDNN", False)
    assert "mkldnn::_linear_pointwise" not in kernels(lambda: model(graph))
    plain = everything(model, graph)
    for a, e in zip(padded, plain, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5)


@needs_onednn
def test_compiled_schnet_with_padded_rows_equals_eager():
    model, graph = schnet(), batch()
    out = model(graph)
    out.square().sum().backward()
    eager = [out.detach(), *(p.grad.clone() for p in model.parameters())]
    model.zero_grad()
    compile_forward(model)
    out = model(graph)
    out.square().sum().backward()
    compiled = [out.detach(), *(p.grad.clone() for p in model.parameters())]
    for a, e in zip(compiled, eager, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5)


def test_scripted_schnet_keeps_plain_products():
    class Exported(torch.nn.Module):  # how the metatomic export scripts it: through its entry point
        def __init__(self):
            super().__init__()
            self.model = schnet()

        def forward(self, z: torch.Tensor, pairs: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
            return self.model.pair_atom_outputs(z, pairs, vectors)

    graph = str(torch.jit.script(Exported()).forward.inlined_graph)
    assert "aten::linear" in graph
    assert "onednn" not in graph and "mkldnn" not in graph
