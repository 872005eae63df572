"""Ligand-only affinity baseline: a molecular encoder on the ligand's bonded graph, pooled, MLP head.

y = MLP(pool(E_L(ligand graph)))

The protein is ignored entirely. Every structure-based model should beat this on a held-out target;
when it does not, the complex model has learned ligand properties (size, lipophilicity) rather than
the interaction. Input: :class:`~atomgraph.apps.complexes.graph.ComplexData` batches, so it trains and
screens through the same code as the three complex models.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Data

from atomgraph.apps.complexes.features import ATOM_DIM, EDGE_DIM
from atomgraph.apps.complexes.models.affinity_encoders import (
    ligand_encoder,
    ligand_encoder_parts,
    ligand_view,
    radial_stops,
)
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models.card import ModelCard
from atomgraph.models.registry import register_model
from atomgraph.nn.mlp import MLP
from atomgraph.nn.readout import GraphReadout

CARD = ModelCard("complex", "complex", ("x", "edge_attr", "pos"), "layers", reads_positions=True)


@register_model("affinity_ligand_only", card=CARD)
class LigandOnlyAffinity(nn.Module):
    """One ligand encoder, a readout and a head; the protein part of the batch is not read.

    Args:
        atom_dim, edge_dim: widths of ``x`` and ``edge_attr`` (filled in from the data).
        reductions: the TargetSpec reduction of each target; its length is the number of outputs.
        hidden, layers: encoder width and depth.
        encoder: ``mpnn``, ``gine``, ``gatv2`` or ``zoo:<model>``
            (:func:`~atomgraph.apps.complexes.models.affinity_encoders.build_encoder`).
        ligand_inputs: "complex" (the complex feature layout and distances) or "molecule" (the molecule
            graph's columns only, so a molecule model can initialise a ``zoo:`` encoder: ``init.into``).
        pool: the node pool, any :data:`~atomgraph.nn.POOLS` kind.
        graph: the complex :class:`~atomgraph.graphs.spec.GraphSpec` the data was built with; its
            cutoffs set the ranges of the distance features (:func:`radial_stops`).
    """

    def __init__(
        self,
        atom_dim: int = ATOM_DIM,
        edge_dim: int = EDGE_DIM,
        reductions: Sequence[str] = ("mean",),
        hidden: int = 64,
        layers: int = 3,
        encoder: str = "mpnn",
        ligand_inputs: str = "complex",
        pool: str = "mean",
        num_rbf: int = 16,
        dropout: float = 0.0,
        graph: GraphSpec | None = None,
    ):
        super().__init__()
        self.radial_stops = stops = radial_stops(graph)
        common = {"hidden": hidden, "layers": layers, "num_rbf": num_rbf, "dropout": dropout}
        self.encoder = ligand_encoder(
            encoder, atom_dim, edge_dim, ligand_inputs, graph, rbf_stop=stops["ligand"], **common
        )
        self.ligand_inputs = ligand_inputs
        self.init_parts = ligand_encoder_parts("encoder", self.encoder, ligand_inputs)
        self.readout = GraphReadout(pool, self.encoder.out_dim)
        self.head = MLP([self.readout.out_dim, hidden, len(reductions)], act="silu", dropout=dropout)

    def forward(self, graph: Data) -> torch.Tensor:
        """ComplexData batch -> [B, T]."""
        ligand = ligand_view(graph, self.ligand_inputs)
        return self.head(self.readout(self.encoder(ligand), ligand.batch, ligand.num_graphs))
