"""The MACE-style model: its product basis (symmetric contraction) and the model around it.

The generic checks (rotation, translation and permutation invariance, autograd forces and stress
against finite differences, smoothness at the cutoff, batching) run for every registered model in
test_model_contract.py; here are the checks specific to the body-ordered product.
"""

from __future__ import annotations

import math

import pytest
import torch
from ase import Atoms
from e3nn import o3

from atomgraph.graphs.radius_graph import radius_graph
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models import build_model
from atomgraph.models.mace import MacePotential
from atomgraph.nn.symmetric_contraction import (
    SymmetricContraction,
    _chain_tensor,
    _coupled_chains,
    _symmetrised,
    independent_chains,
)

IRREPS = "0e + 1o + 2e + 3o"


@pytest.fixture
def float64():
    """Double precision for everything built inside (e3nn's Wigner matrices included)."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _dimension(inputs: list[o3.Irrep], nu: int, out: o3.Irrep, samples: int = 300) -> int:
    """The dimension of the symmetric equivariant maps (A^nu)_sym -> out, counted without the kept
    chains: the rank of the values, on random A, of *every* coupled chain (their span is the space)."""
    torch.manual_seed(0)
    dim = sum(ir.dim for ir in inputs)
    offsets = [sum(ir.dim for ir in inputs[:k]) for k in range(len(inputs))]
    a = torch.randn(samples, dim, dtype=torch.float64)
    formula = {1: "mi,si->sm", 2: "mij,si,sj->sm", 3: "mijk,si,sj,sk->sm"}[nu]
    columns = [
        torch.einsum(formula, _chain_tensor(chain, inputs, dim, offsets), *[a] * nu).reshape(-1)
        for chain in _coupled_chains(inputs, nu, out)
    ]
    return int(torch.linalg.matrix_rank(torch.stack(columns, dim=1), atol=1e-8)) if columns else 0


@pytest.mark.parametrize(
    ("nu", "out", "expected"),
    [(1, "0e", 1), (2, "0e", 4), (2, "1o", 3), (3, "0e", 8), (3, "1o", 12), (2, "1e", 0)],
)
def test_the_basis_has_the_dimension_of_the_symmetric_equivariants(nu, out, expected):
    inputs = [ir for _, ir in o3.Irreps(IRREPS)]
    chains = independent_chains(inputs, nu, o3.Irrep(out))
    assert len(chains) == expected
    assert _dimension(inputs, nu, o3.Irrep(out)) == expected


def test_the_kept_chains_are_independent_after_symmetrisation():
    inputs = [ir for _, ir in o3.Irreps(IRREPS)]
    dim, offsets = 16, [0, 1, 4, 9]
    chains = independent_chains(inputs, 3, o3.Irrep("1o"))
    stacked = torch.stack([_symmetrised(_chain_tensor(c, inputs, dim, offsets)).reshape(-1) for c in chains])
    assert int(torch.linalg.matrix_rank(stacked, atol=1e-8)) == len(chains)


def _dense_reference(
    contraction: SymmetricContraction, a: torch.Tensor, species: torch.Tensor
) -> torch.Tensor:
    """The textbook sum: sum_chains W[z, chain, k] U_chain[M, i1..inu] A[k, i1] ... A[k, inu]."""
    inputs = [ir for _, ir in contraction.irreps_in]
    dim = sum(ir.dim for ir in inputs)
    offsets = [sum(ir.dim for ir in inputs[:k]) for k in range(len(inputs))]
    blocks = []
    for m, chains in enumerate(contraction.outputs):
        weight = getattr(contraction, f"weight_{m}")[species]  # [N, P, k]
        total = 0
        for p, chain in enumerate(chains):
            values = _chain_tensor(chain, inputs, dim, offsets).to(a.dtype)  # [M, D, ..., D]
            values = values.unsqueeze(0).unsqueeze(0).expand(a.shape[0], a.shape[1], *values.shape)
            for _ in range(len(chain)):
                values = (values * a.view(a.shape[0], a.shape[1], *[1] * (values.dim() - 3), dim)).sum(-1)
            total = total + values * weight[:, p, :].unsqueeze(-1)  # [N, k, M]
        blocks.append(total.reshape(a.shape[0], -1))
    return torch.cat(blocks, dim=1)


def test_contraction_equals_the_dense_sum_and_is_equivariant(float64):
    torch.manual_seed(1)
    contraction = SymmetricContraction(o3.Irreps(IRREPS), o3.Irreps("0e + 1o + 2e"), 3, 5, 2)
    a = torch.randn(7, 5, 16, dtype=torch.float64)
    species = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    out = contraction(a, species)
    assert torch.allclose(out, _dense_reference(contraction, a, species), atol=1e-10)
    # rotate A (per channel, the block-diagonal Wigner matrices) -> the outputs rotate alike
    rotation = o3.rand_matrix(dtype=torch.float64)
    d_in = o3.Irreps(IRREPS).D_from_matrix(rotation)
    d_out = o3.Irreps("5x0e + 5x1o + 5x2e").D_from_matrix(rotation)
    rotated = contraction(a @ d_in.T, species)
    assert torch.allclose(rotated, out @ d_out.T, atol=1e-10)
    # parity: inversion flips the odd inputs and must flip exactly the odd outputs
    inversion = -torch.eye(3, dtype=torch.float64)
    inverted = contraction(a @ o3.Irreps(IRREPS).D_from_matrix(inversion).T, species)
    flips = o3.Irreps("5x0e + 5x1o + 5x2e").D_from_matrix(inversion)
    assert torch.allclose(inverted, out @ flips.T, atol=1e-10)


@pytest.mark.parametrize("correlation", [1, 2, 3])
def test_the_product_is_a_polynomial_of_the_correlation_degree(correlation, float64):
    """B(s A) is a polynomial of degree ``correlation`` in s: its (correlation + 1)-th finite difference
    vanishes and the correlation-th does not (the body order is what the argument says)."""
    torch.manual_seed(2)
    contraction = SymmetricContraction(o3.Irreps("0e + 1o + 2e"), o3.Irreps("0e"), correlation, 3, 1)
    a = torch.randn(4, 3, 9, dtype=torch.float64)
    species = torch.zeros(4, dtype=torch.long)
    values = [contraction(s * a, species) for s in range(correlation + 2)]

    def difference(order: int) -> torch.Tensor:
        return sum((-1) ** (order - j) * math.comb(order, j) * values[j] for j in range(order + 1))

    assert difference(correlation + 1).abs().max() < 1e-9
    assert difference(correlation).abs().max() > 1e-3


def test_elements_without_weights_are_refused_by_name():
    model = build_model("mace", GraphSpec("radius", 4.0), elements=[1, 8], channels=4, radial_hidden=[8])

    graph = radius_graph(Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]), 4.0)
    assert model(graph).shape == (1, 1)
    graph.z[0] = 79
    with pytest.raises(ValueError, match=r"Au"):
        model(graph)
    graph.z[0] = 101
    with pytest.raises(ValueError, match=r"atomic number 101 above its max_z 100"):
        model(graph)
    with pytest.raises(ValueError, match=r"atomic numbers 1\.\.100"):
        MacePotential(GraphSpec("radius", 4.0), elements=[0, 1])


def test_parameters_match_mace_torch_layout():
    """64 channels, l_max 3, correlation 3, two layers on H/C/O: the parameter count of mace-torch
    0.3.16's MACE (241,296) less its redundant product weights: mace-torch keeps every ordered coupling
    path (23 cubic invariants per element and channel, 51 cubic vectors, 6 quadratic vectors) where the
    symmetric power has 8, 12 and 3 independent ones."""
    model = build_model("mace", GraphSpec("radius", 5.0), elements=[1, 6, 8], envelope_exponent=6)
    redundant = 3 * 64 * ((23 - 8) + (51 - 12) + (6 - 3) + (23 - 8))  # two layers' 0e, one layer's 1o
    assert sum(p.numel() for p in model.parameters()) == 241_296 - redundant
