"""The lecture's message-passing GNN (seed 001): message MLP([h_i, h_j, rbf(r_ij)]), sum, residual update.

Kept deliberately plain: it is the model a newcomer reads first, and a baseline for the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Data

from atomgraph.features import GaussianRBF
from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.geometry import edge_lengths, edge_vectors
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models.card import ModelCard
from atomgraph.models.registry import register_model
from atomgraph.nn.mlp import MLP
from atomgraph.nn.target_readout import AtomwiseHead, resolve_readouts


class MessagePassingLayer(nn.Module):
    """h_i <- h_i + MLP([h_i, sum_j MLP([h_i, h_j, e_ij])])."""

    def __init__(self, dim: int, edge_dim: int):
        super().__init__()
        self.message = MLP([2 * dim + edge_dim, dim, dim], act="silu")
        self.update = MLP([2 * dim, dim, dim], act="silu")

    def forward(self, h: torch.Tensor, edge_attr: torch.Tensor, source: torch.Tensor, target: torch.Tensor):
        messages = self.message(
            torch.cat([h.index_select(0, target), h.index_select(0, source), edge_attr], dim=-1)
        )
        aggregated = torch.zeros_like(h).index_add_(0, target, messages)
        return h + self.update(torch.cat([h, aggregated], dim=-1))


CARD = ModelCard(
    "radius", "molecule", ("z", "pos", "cell"), "layers", reads_positions=True, intensive_readout="atom_mean"
)


@register_model("simple_gnn", card=CARD)
class SimpleGNN(nn.Module):
    """Embedding -> message-passing layers on Gaussian-expanded distances -> per-atom MLP -> sum/mean.

    Args: reductions (the TargetSpec reduction of each target), dim (node width, lecture: 32), num_rbf
    (lecture: 16 Gaussians between 0.5 Å and ``graph.cutoff``, width 0.5 Å), layers (lecture: 3), max_z,
    readout ("auto", "sum", "atom_mean", "pooled" or one per target: :mod:`atomgraph.nn.target_readout`),
    pool (the node pool of "pooled").
    """

    def __init__(
        self,
        graph: GraphSpec,
        reductions: Sequence[str] = ("sum",),
        dim: int = 32,
        num_rbf: int = 16,
        layers: int = 3,
        max_z: int = 100,
        readout: str | Sequence[str] = "auto",
        pool: str = "mean",
    ):
        super().__init__()
        self.cutoff = graph.cutoff
        self.embedding = nn.Embedding(max_z + 1, dim)
        self.rbf = GaussianRBF(0.5, self.cutoff, num_rbf, width=0.5)
        self.layers = nn.ModuleList(MessagePassingLayer(dim, num_rbf) for _ in range(layers))
        readouts = resolve_readouts(readout, reductions, CARD.intensive_readout)
        self.head = AtomwiseHead(dim, readouts, dim, act="silu", pool=pool)

    def forward(self, graph: Data) -> torch.Tensor:
        edge_attr = self.rbf(edge_lengths(edge_vectors(graph)))
        source, target = graph.edge_index
        h = self.embedding(graph.z)
        for layer in self.layers:
            h = layer(h, edge_attr, source, target)
        batch, num_graphs = batch_vector(graph)
        return self.head(h, batch, num_graphs)
