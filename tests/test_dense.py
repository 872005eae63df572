"""Dense layers through oneDNN (:mod:`atomgraph.nn.dense`): the same products and gradients (first and
second order) as ``F.linear`` whatever the row count, oneDNN actually used where it applies, and SchNet's
padded rows changing nothing: outputs, forces, stress and parameter gradients equal those of the plain
products, eager and compiled; an exported (scripted) SchNet keeps plain products."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ase import Atoms
from ase.build import bulk
from conftest import random_molecule
from torch.profiler import profile
from torch_geometric.data import Batch

import atomgraph.nn.dense as dense_module
from atomgraph.evaluation.explain import attribute_atoms
from atomgraph.graphs import radius_graph
from atomgraph.graphs.geometry import apply_strain
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models import build_model
from atomgraph.nn.dense import ROWS, Dense, dense, onednn_available, row_padding
from atomgraph.training.compile import compile_forward


@pytest.fixture
def onednn(monkeypatch):
    """The fast path on, whatever the processor (it is chosen for AMD's, but computes the same anywhere)."""
    if not onednn_available():
        pytest.skip("this PyTorch build has no oneDNN")
    monkeypatch.setattr(dense_module, "ONEDNN", True)


def kernels(fn) -> set[str]:
    with profile() as prof:
        fn()
    return {event.key for event in prof.key_averages()}


@pytest.mark.parametrize("rows", [ROWS, 3 * ROWS, 130, 1])
def test_dense_equals_linear_with_gradients_of_both_orders(rows, onednn):
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


def test_onednn_only_for_row_multiples_of_float32_on_the_cpu(onednn):
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
    """Molecules, a periodic cell and a lone atom in one batch: row counts that are no multiple of ROWS."""
    rng = np.random.default_rng(1)
    crystal = bulk("Si", "diamond", a=5.43)
    crystal.rattle(0.05, seed=3)
    graphs = [radius_graph(random_molecule(rng, 5, 9), 4.0) for _ in range(5)] + [radius_graph(crystal, 4.0)]
    graphs.append(radius_graph(Atoms("H", positions=[[0.0, 0.0, 0.0]]), 4.0))  # an atom without edges
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


def test_schnet_padded_rows_change_nothing(onednn, monkeypatch):
    model, graph = schnet(), batch()
    assert "mkldnn::_linear_pointwise" in kernels(lambda: model(graph))
    padded = everything(model, graph)
    monkeypatch.setattr(dense_module, "ONEDNN", False)
    assert "mkldnn::_linear_pointwise" not in kernels(lambda: model(graph))
    plain = everything(model, graph)
    for a, e in zip(padded, plain, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5)


def test_compiled_schnet_with_padded_rows_equals_eager_in_one_graph(onednn):
    model, graph = schnet(), batch()
    smaller = Batch.from_data_list(graph.to_data_list()[:3])

    def run(g: Batch) -> list[torch.Tensor]:
        model.zero_grad()
        out = model(g)
        out.square().sum().backward()
        return [out.detach(), *(p.grad.clone() for p in model.parameters())]

    eager = [run(graph), run(smaller)]
    explained = torch._dynamo.explain(type(model).forward)(model, graph)
    assert explained.graph_break_count == 0
    compiled = compile_forward(model)
    for g, expected in zip((graph, smaller), eager, strict=True):
        for a, e in zip(run(g), expected, strict=True):
            torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5)
    assert not compiled.failed


def test_the_operator_s_fake_implementation_matches_it(onednn):
    x, weight, bias = torch.randn(ROWS, 8), torch.randn(4, 8), torch.randn(4)
    torch.library.opcheck(torch.ops.atomgraph.onednn_dense.default, (x, weight, bias))
    torch.library.opcheck(torch.ops.atomgraph.onednn_dense.default, (x[:5], weight, None))


def test_explain_finds_schnet_s_padded_embedding_at_any_atom_count(onednn):
    model = schnet()
    rng = np.random.default_rng(2)
    for atoms in (ROWS, 7):  # z padded by none (a copy) or by ROWS - 7 rows
        molecule = Atoms("C" * atoms, positions=rng.uniform(0, 12, size=(atoms, 3)))
        importance, kind = attribute_atoms(model, radius_graph(molecule, 4.0))
        assert kind == "embedding" and importance.shape == (atoms,)


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
