"""Gilmer et al. (2017) message passing neural network: edge network, tied GRU, set2set readout.

m_v^{t+1} = sum_w A(e_vw) h_w^t      (edge network: an MLP maps each edge to a d x d matrix)
h_v^{t+1} = GRU(h_v^t, m_v^{t+1})     (one GRU shared by all T steps)
y = MLP(set2set({Lin([h_v^T, x_v])}))  (set2set over projected (h^T, x) pairs, M steps)

Edges carry the bond features of the chemical graph and, with ``distance="raw"`` or ``"rbf"``, the
interatomic distance (the paper's "distance + bond type"). Virtual edges and a master node come from
the graph builder (``GraphSpec(virtual_edges=True, master_node=True)``), flagged in the features.
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
from atomgraph.nn.readout import GraphReadout

DISTANCE_ENCODINGS = ("none", "raw", "rbf")


class EdgeNetwork(nn.Module):
    """Messages A(e_vw) h_w summed over neighbours w: [N, d] -> [N, d]."""

    def __init__(self, edge_dim: int, hidden: int, edge_hidden: int):
        super().__init__()
        self.hidden = hidden
        self.matrices = MLP([edge_dim, edge_hidden, hidden * hidden], act="relu")

    def forward(self, h: torch.Tensor, edge_input: torch.Tensor, source: torch.Tensor, target: torch.Tensor):
        matrices = self.matrices(edge_input).view(-1, self.hidden, self.hidden)
        messages = torch.bmm(matrices, h.index_select(0, source).unsqueeze(-1)).squeeze(-1)
        return torch.zeros_like(h).index_add_(0, target, messages)


# positions are read with distance="raw" or "rbf"
CARD = ModelCard("bond", "bond", ("x", "edge_attr", "pos"), "steps", reads_positions=True, head=("output",))


@register_model("mpnn", card=CARD)
class GilmerMPNN(nn.Module):
    """The enn-s2s MPNN of Gilmer et al. on bonded (optionally complete) molecular graphs.

    Args:
        graph: the GraphSpec of the input graphs (its cutoff bounds the distance features).
        atom_dim, edge_dim: widths of ``x`` and ``edge_attr`` (filled in from the data).
        reductions: the TargetSpec reduction of each target; its length is the number of outputs
            (every target is read out ``"pooled"``: :mod:`atomgraph.nn.target_readout`).
        hidden: node state width d (paper: up to 200).
        steps: message passing steps T (paper: 3-8; the GRU and edge network are shared by all).
        set2set_steps: M (paper: 1-12).
        distance: "none" (chemical graph only, the default), "raw" (distance as one feature, the
            paper's "distance + bond type") or "rbf" (Gaussian expansion over 0..graph.cutoff Å); the
            last two need 3D positions.
        pool: the node pool, "set2set" (paper) or any :data:`~atomgraph.nn.POOLS` kind (the module
            keeps the attribute name ``readout`` for it, the name its weights have in checkpoints).
    """

    def __init__(
        self,
        graph: GraphSpec,
        atom_dim: int,
        edge_dim: int,
        reductions: Sequence[str] = ("sum",),
        hidden: int = 64,
        steps: int = 3,
        set2set_steps: int = 3,
        edge_hidden: int = 128,
        distance: str = "none",
        num_rbf: int = 16,
        pool: str = "set2set",
    ):
        super().__init__()
        if distance not in DISTANCE_ENCODINGS:
            raise ValueError(f"distance must be one of {DISTANCE_ENCODINGS}, got {distance!r}")
        self.distance = distance
        self.steps = steps
        self.rbf = GaussianRBF(0.0, graph.cutoff, num_rbf) if distance == "rbf" else None
        extra = {"none": 0, "raw": 1, "rbf": num_rbf}[distance]
        self.project_atoms = nn.Linear(atom_dim, hidden)
        self.edge_network = EdgeNetwork(edge_dim + extra, hidden, edge_hidden)
        self.gru = nn.GRUCell(hidden, hidden)
        self.project_readout = nn.Linear(hidden + atom_dim, hidden)
        self.readout = GraphReadout(pool, hidden, set2set_steps=set2set_steps)
        self.output = MLP([self.readout.out_dim, hidden, len(reductions)], act="relu")

    def edge_input(self, graph: Data) -> torch.Tensor:
        if self.distance == "none":
            return graph.edge_attr
        if hasattr(graph, "has_3d") and not bool(graph.has_3d.all()):
            raise ValueError(
                "MPNN with distance features needs 3D positions; use distance='none' for 2D graphs"
            )
        d = edge_lengths(edge_vectors(graph))
        encoded = d.unsqueeze(-1) if self.distance == "raw" else self.rbf(d)
        return torch.cat([graph.edge_attr, encoded], dim=-1)

    def forward(self, graph: Data) -> torch.Tensor:
        source, target = graph.edge_index
        edge_input = self.edge_input(graph)
        h = torch.relu(self.project_atoms(graph.x))
        for _ in range(self.steps):
            h = self.gru(self.edge_network(h, edge_input, source, target), h)
        batch, num_graphs = batch_vector(graph)
        pooled = self.readout(self.project_readout(torch.cat([h, graph.x], dim=-1)), batch, num_graphs)
        return self.output(pooled)
