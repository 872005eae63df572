"""The per-edge inputs of the e3nn potentials: spherical harmonics of the edge directions and lengths.

On symmetric graphs (pairs then their reverses, :func:`~atomgraph.graphs.geometry.edge_pairs`) the
vectors and harmonics are computed once per pair: r_ji = -r_ij, so Y_l(r_ji) = (-1)^l Y_l(r_ij), and
the lengths (hence every radial term) are returned per pair, which
:class:`~atomgraph.nn.edge_tensor_product.EdgeTensorProduct` takes as shared weights.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch_geometric.data import Data

from atomgraph.graphs.geometry import edge_lengths, edge_pairs, edge_vectors


def harmonic_parity(irreps_edge: o3.Irreps) -> torch.Tensor:
    """(-1)^l per component [irreps_edge.dim]: the harmonics of the reversed edge."""
    return torch.tensor([(-1.0) ** ir.l for _, ir in irreps_edge for _ in range(ir.dim)])


def harmonic_edges(
    graph: Data, harmonics: o3.SphericalHarmonics, parity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(source [E], target [E], harmonics [E, dim], lengths)`` of ``graph``'s edges (Å), in the order
    the other three are laid out; lengths are [E] or, on symmetric graphs, [E / 2] (one per pair)."""
    pairs = edge_pairs(graph)
    if pairs is None:
        source, target = graph.edge_index
        vectors = edge_vectors(graph)
        return source, target, harmonics(vectors), edge_lengths(vectors)
    forward, reverse = pairs
    source, target = graph.edge_index.index_select(1, torch.cat([forward, reverse]))
    vectors = edge_vectors(graph, edges=forward)
    sh = harmonics(vectors)
    return source, target, torch.cat([sh, sh * parity]), edge_lengths(vectors)
