"""Late fusion affinity model: separate ligand and protein encoders, pooled, concatenated, MLP head.

y = MLP([pool(E_L(ligand graph)) || pool(E_P(protein graph))])

The ligand graph is the ligand's bonded graph; the protein graph is the pocket's residue graph
(``protein_level="residue"``, Cα nodes joined below 10 Å) or its atom graph (``"atom"``). Protein and
ligand never exchange messages, so the model sees the pocket and the ligand but not how they touch
(inter-molecular edges are ignored). Input: :class:`~atomgraph.apps.complexes.graph.ComplexData` batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Data

from atomgraph.apps.complexes.features import ATOM_DIM, EDGE_DIM, RESIDUE_DIM
from atomgraph.apps.complexes.models.affinity_encoders import (
    build_encoder,
    ligand_encoder,
    ligand_encoder_parts,
    ligand_view,
    protein_view,
    radial_stops,
)
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models.card import ModelCard
from atomgraph.models.registry import register_model
from atomgraph.nn.mlp import MLP
from atomgraph.nn.readout import GraphReadout

CARD = ModelCard("complex", "complex", ("x", "edge_attr", "pos"), "layers", reads_positions=True)


@register_model("affinity_late_fusion", card=CARD)
class LateFusionAffinity(nn.Module):
    """Two encoders, two readouts, one head.

    Args:
        atom_dim, edge_dim: widths of ``x`` and ``edge_attr`` (filled in from the data).
        reductions: the TargetSpec reduction of each target; its length is the number of outputs.
        hidden, layers: encoder width and depth.
        encoder: ligand encoder (``mpnn``, ``gine``, ``gatv2`` or ``zoo:<model>``, see
            :func:`~atomgraph.apps.complexes.models.affinity_encoders.build_encoder`);
            protein_encoder: the protein's (default: the same kind).
        ligand_inputs: "complex" (the complex feature layout and distances) or "molecule" (the molecule
            graph's columns only, so a molecule model can initialise a ``zoo:`` encoder: ``init.into``).
        protein_level: "residue" or "atom".
        pool: the node pool of both sides, any :data:`~atomgraph.nn.POOLS` kind.
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
        protein_encoder: str | None = None,
        protein_level: str = "residue",
        pool: str = "mean",
        num_rbf: int = 16,
        dropout: float = 0.0,
        residue_dim: int = RESIDUE_DIM,
        graph: GraphSpec | None = None,
    ):
        super().__init__()
        self.protein_level = protein_level
        self.radial_stops = stops = radial_stops(graph)
        common = {"hidden": hidden, "layers": layers, "num_rbf": num_rbf, "dropout": dropout}
        self.ligand_encoder = ligand_encoder(
            encoder, atom_dim, edge_dim, ligand_inputs, graph, rbf_stop=stops["ligand"], **common
        )
        self.ligand_inputs = ligand_inputs
        self.init_parts = ligand_encoder_parts("ligand_encoder", self.ligand_encoder, ligand_inputs)
        residue = protein_level == "residue"
        self.protein_encoder = build_encoder(
            protein_encoder or encoder,
            residue_dim if residue else atom_dim,
            0 if residue else edge_dim,
            rbf_stop=stops["residue" if residue else "pocket"],
            **common,
        )
        self.ligand_readout = GraphReadout(pool, self.ligand_encoder.out_dim)
        self.protein_readout = GraphReadout(pool, self.protein_encoder.out_dim)
        width = self.ligand_readout.out_dim + self.protein_readout.out_dim
        self.head = MLP([width, hidden, len(reductions)], act="silu", dropout=dropout)

    def forward(self, graph: Data) -> torch.Tensor:
        """ComplexData batch -> [B, T]."""
        ligand = ligand_view(graph, self.ligand_inputs)
        protein = protein_view(graph, self.protein_level)
        h_ligand = self.ligand_encoder(ligand)
        h_protein = self.protein_encoder(protein)
        pooled = torch.cat(
            [
                self.ligand_readout(h_ligand, ligand.batch, ligand.num_graphs),
                self.protein_readout(h_protein, protein.batch, protein.num_graphs),
            ],
            dim=-1,
        )
        return self.head(pooled)
