"""The fused edge tensor product against e3nn's TensorProduct followed by a sum over edges."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

import atomgraph.nn.edge_chunks as edge_chunks
from atomgraph.nn.edge_tensor_product import EdgeTensorProduct, uvu_paths

CASES = [
    ("5x0e", 2, "5x0e + 5x1o + 5x2e"),
    ("6x0e + 3x1o + 2x2e", 2, "6x0e + 3x1o + 2x2e"),
    ("4x0e + 2x0o + 3x1o + 3x1e", 1, "4x0e + 2x0o + 3x1o + 3x1e"),
    ("3x0e + 2x1o + 2x2e + 1x3o", 3, "3x0e + 2x1o + 2x2e + 1x3o"),
]


def reference(tp: o3.TensorProduct, x, y, w, target, nodes):
    messages = tp(x, y, w)
    return messages.new_zeros(nodes, messages.shape[1]).index_add_(0, target, messages)


@pytest.fixture(params=[1024, 7], ids=["one_chunk", "chunks_of_7"])
def chunk(request, monkeypatch):
    """The edges in one chunk, or in chunks of 7 (several, the last one shorter)."""
    monkeypatch.setattr(edge_chunks, "EDGE_CHUNK", request.param)
    return request.param


@pytest.mark.parametrize("irreps_in, lmax, wanted", CASES)
def test_values_and_gradients_equal_e3nn(irreps_in, lmax, wanted, float64, chunk):
    irreps_in, wanted = o3.Irreps(irreps_in), o3.Irreps(wanted)
    irreps_edge = o3.Irreps.spherical_harmonics(lmax)
    irreps_mid, instructions = uvu_paths(irreps_in, irreps_edge, wanted)
    fused = EdgeTensorProduct(irreps_in, irreps_edge, irreps_mid, instructions)
    e3 = o3.TensorProduct(irreps_in, irreps_edge, irreps_mid, [(*k, "uvu", True) for k in instructions],
                          shared_weights=False, internal_weights=False)  # fmt: skip
    assert fused.weight_numel == e3.weight_numel
    generator = torch.Generator().manual_seed(0)
    nodes, edges = 7, 40
    x = torch.randn(nodes, irreps_in.dim, generator=generator, requires_grad=True)
    y = o3.spherical_harmonics(irreps_edge, torch.randn(edges, 3, generator=generator), True, "component")
    y.requires_grad_(True)
    w = torch.randn(edges, e3.weight_numel, generator=generator, requires_grad=True)
    source = torch.randint(0, nodes, (edges,), generator=generator)
    target = torch.randint(0, nodes, (edges,), generator=generator)
    expected = reference(e3, x[source], y, w, target, nodes)
    actual = fused(x, source, y, w, target)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)
    probe = torch.randn(expected.shape, generator=generator)
    grads_expected = torch.autograd.grad((expected * probe).sum(), (x, y, w))
    grads_actual = torch.autograd.grad((actual * probe).sum(), (x, y, w))
    for a, b in zip(grads_actual, grads_expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_pair_shared_weights_equal_copied_weights(float64, chunk):
    """Weights given once per pair (edges = pairs, then their reverses) equal the same weights per edge."""
    irreps_in, irreps_edge = o3.Irreps("4x0e + 2x1o"), o3.Irreps.spherical_harmonics(2)
    irreps_mid, instructions = uvu_paths(irreps_in, irreps_edge, irreps_in)
    fused = EdgeTensorProduct(irreps_in, irreps_edge, irreps_mid, instructions)
    pairs, nodes = 12, 5
    x = torch.randn(nodes, irreps_in.dim)
    y = torch.randn(2 * pairs, irreps_edge.dim)
    w = torch.randn(pairs, fused.weight_numel)
    source = torch.randint(0, nodes, (2 * pairs,))
    target = torch.randint(0, nodes, (2 * pairs,))
    torch.testing.assert_close(fused(x, source, y, w, target), fused(x, source, y, torch.cat([w, w]), target))
    with pytest.raises(ValueError, match="weights for 5 edges or pairs, but 24 edges"):
        fused(x, source, y, w[:5], target)


def test_no_edges_gives_zeros(float64):
    irreps_in, irreps_edge = o3.Irreps("3x0e + 1x1o"), o3.Irreps.spherical_harmonics(1)
    irreps_mid, instructions = uvu_paths(irreps_in, irreps_edge, irreps_in)
    fused = EdgeTensorProduct(irreps_in, irreps_edge, irreps_mid, instructions)
    none = torch.zeros(0, dtype=torch.long)
    out = fused(
        torch.zeros(3, irreps_in.dim), none, torch.zeros(0, 4), torch.zeros(0, fused.weight_numel), none
    )
    assert out.shape == (3, irreps_mid.dim) and not out.any()


def test_refuses_paths_it_does_not_implement():
    with pytest.raises(ValueError, match="multiplicity 1"):
        EdgeTensorProduct(o3.Irreps("2x0e"), o3.Irreps("2x0e"), o3.Irreps("2x0e"), [(0, 0, 0)])
    sh = o3.Irreps.spherical_harmonics(2)
    with pytest.raises(ValueError, match="output irrep 0 has several instructions"):
        EdgeTensorProduct(o3.Irreps("2x1o"), sh, o3.Irreps("2x1o"), [(0, 0, 0), (0, 2, 0)])
    with pytest.raises(ValueError, match="exactly one instruction"):
        EdgeTensorProduct(o3.Irreps("2x0e"), o3.Irreps("1x0e"), o3.Irreps("2x0e + 2x0e"), [(0, 0, 0)])
