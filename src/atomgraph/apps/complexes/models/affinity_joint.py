"""Joint interaction-graph affinity model: one GNN over ligand and pocket atoms together.

Edges are ligand bonds, protein bonds and ligand-pocket contacts typed as H-bond, hydrophobic,
pi-stacking, salt bridge, electrostatic or plain contact (``edge_type``). Each edge's input is its
features, a learned embedding of its type and RBFs of its length; node states are pooled with Set2Set
(default) or attention over all nodes (or the ligand's only) and mapped to the targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Data

from atomgraph.apps.complexes.features import ATOM_DIM, EDGE_DIM, NUM_EDGE_TYPES
from atomgraph.apps.complexes.models.affinity_encoders import (
    build_encoder,
    full_view,
    radial_stops,
    with_edge_attr,
)
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models.card import ModelCard
from atomgraph.models.registry import register_model
from atomgraph.nn.mlp import MLP
from atomgraph.nn.readout import GraphReadout

READOUT_NODES = ("all", "ligand")


CARD = ModelCard("complex", "complex", ("x", "edge_attr", "pos"), "layers", reads_positions=True)


@register_model("affinity_joint", card=CARD)
class JointGraphAffinity(nn.Module):
    """One encoder over the interaction graph with interaction-type embeddings.

    Args:
        atom_dim, edge_dim: widths of ``x`` and ``edge_attr`` (filled in from the data).
        reductions: the TargetSpec reduction of each target; its length is the number of outputs.
        hidden, layers: encoder width and depth; encoder: see
            :func:`~atomgraph.apps.complexes.models.affinity_encoders.build_encoder`.
        type_dim: width of the learned edge-type embedding.
        pool: the node pool, "set2set" (default), "attention" or any other :data:`~atomgraph.nn.POOLS` kind.
        readout_nodes: pool over "all" nodes or the "ligand" atoms only.
        graph: the complex :class:`~atomgraph.graphs.spec.GraphSpec` the data was built with; its
            cutoffs set the ranges of the distance features (:func:`radial_stops`).
    """

    def __init__(
        self,
        atom_dim: int = ATOM_DIM,
        edge_dim: int = EDGE_DIM,
        reductions: Sequence[str] = ("mean",),
        hidden: int = 64,
        layers: int = 4,
        encoder: str = "mpnn",
        type_dim: int = 16,
        pool: str = "set2set",
        readout_nodes: str = "all",
        num_rbf: int = 16,
        dropout: float = 0.0,
        graph: GraphSpec | None = None,
    ):
        super().__init__()
        if readout_nodes not in READOUT_NODES:
            raise ValueError(f"readout_nodes must be one of {READOUT_NODES}, got {readout_nodes!r}")
        self.readout_nodes = readout_nodes
        self.radial_stops = radial_stops(graph)
        self.type_embedding = nn.Embedding(NUM_EDGE_TYPES, type_dim)
        self.encoder = build_encoder(
            encoder,
            atom_dim,
            edge_dim + type_dim,
            hidden=hidden,
            layers=layers,
            num_rbf=num_rbf,
            rbf_stop=self.radial_stops["interaction"],
            dropout=dropout,
        )
        self.readout = GraphReadout(pool, self.encoder.out_dim)
        self.head = MLP([self.readout.out_dim, hidden, len(reductions)], act="silu", dropout=dropout)

    def node_states(self, graph: Data) -> torch.Tensor:
        """[N, hidden] states of every node of the interaction graph."""
        view = full_view(graph)
        typed = torch.cat([view.edge_attr, self.type_embedding(view.edge_type)], dim=-1)
        return self.encoder(with_edge_attr(view, typed))

    def forward(self, graph: Data) -> torch.Tensor:
        """ComplexData batch -> [B, T]."""
        view = full_view(graph)
        h = self.node_states(graph)
        batch = view.batch
        if self.readout_nodes == "ligand":
            keep = graph.node_role == 0
            h, batch = h[keep], batch[keep]
        return self.head(self.readout(h, batch, view.num_graphs))
