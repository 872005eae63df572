"""Graph convolutional network (Kipf & Welling 2017) on the shared :class:`ConvStack`.

GCN: h_i' = sum_{j in N(i) + i} W h_j / sqrt(d_i d_j) with self-loops (PyG ``GCNConv``'s weights and
normalisation). It has no use for bond features in the convolution; with ``edge_features=True`` the
mean of each atom's incoming bond features is appended to its input features instead.

The normalised adjacency D^-1/2 (A + I) D^-1/2 is the same in every layer, so it is built once per
forward pass as a sparse matrix and each layer is one sparse-dense product (``GCNConv`` would redo
the normalisation and a gather/scatter per layer: ~1.6x slower per layer on CPU, forward and backward;
`benchmarks/featurisation.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from atomgraph.models.card import ModelCard
from atomgraph.models.conv_stack import ConvStack, Edges
from atomgraph.models.registry import register_model

ZOO_CARD = ModelCard("bond", "bond", ("x", "edge_attr"), "layers")


@dataclass
class NormalisedEdges(Edges):
    """:class:`Edges` with ``adjacency``: D^-1/2 (A + I) D^-1/2 as a sparse COO [N, N] (row: target)."""

    adjacency: torch.Tensor


def normalised_adjacency(edge_index: torch.Tensor, num_nodes: int, dtype: torch.dtype) -> torch.Tensor:
    """GCN's symmetric normalisation with self-loops (PyG's ``gcn_norm``, as ``GCNConv`` uses it) as a
    coalesced sparse [N, N] matrix whose row i holds the weights of the messages atom i receives."""
    index, weight = gcn_norm(edge_index, None, num_nodes, add_self_loops=True, dtype=dtype)
    matrix = torch.sparse_coo_tensor(index.flip(0), weight, (num_nodes, num_nodes), check_invariants=False)
    return matrix.coalesce()


@register_model("gcn", card=ZOO_CARD)
class GCN(ConvStack):
    """Kipf & Welling's GCN: symmetric normalisation D^-1/2 (A + I) D^-1/2 with self-loops.

    Args: see :class:`ConvStack`; ``edge_features`` (default False) appends the mean incoming bond
    features to the atom inputs, since the convolution itself takes no edge features.
    Input: bonded graph or batch (``x``, ``edge_index``, ``edge_attr``). Output: [B, len(reductions)].
    """

    def __init__(
        self,
        atom_dim: int,
        edge_dim: int | None = None,
        reductions: Sequence[str] = ("mean",),
        hidden: int = 128,
        layers: int = 4,
        dropout: float = 0.0,
        norm: str = "none",
        residual: bool = True,
        jumping_knowledge: str = "none",
        pool: str = "mean",
        act: str = "relu",
        edge_features: bool = False,
        set2set_steps: int = 3,
    ):
        convs = [GCNConv(hidden, hidden, add_self_loops=True, normalize=True) for _ in range(layers)]
        super().__init__(
            convs, atom_dim, edge_dim, reductions, hidden, dropout, norm, residual, jumping_knowledge,
            pool, act, edge_features, set2set_steps,
        )  # fmt: skip

    def edges(self, graph: Data) -> NormalisedEdges:
        adjacency = normalised_adjacency(graph.edge_index, graph.num_nodes, self.embed.weight.dtype)
        return NormalisedEdges(graph.edge_index, getattr(graph, "edge_attr", None), adjacency)

    def convolve(self, conv: nn.Module, h: torch.Tensor, edges: NormalisedEdges) -> torch.Tensor:
        out = torch.sparse.mm(edges.adjacency, conv.lin(h))
        return out if conv.bias is None else out + conv.bias
