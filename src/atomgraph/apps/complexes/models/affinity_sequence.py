"""Sequence-based affinity model (GraphDTA, Nguyen et al. 2021): ligand GNN + 1D CNN over the protein
sequence, concatenated, MLP head.

h_L = pool(GNN(ligand bonded graph))        (no 3D: edge features only)
h_P = Linear(maxpool_t(CNN(Embed(sequence))))  (``conv_layers`` Conv1d + ReLU, kernel ``kernel_size``)
y = MLP([h_L || h_P])

Input: samples of :func:`atomgraph.apps.complexes.sequence.sequence_graph` (``seq`` [B, max_length] tokens,
0 = padding, which the max-pool ignores).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Data

from atomgraph.apps.complexes.models.affinity_encoders import NodeSet, build_encoder
from atomgraph.apps.complexes.sequence import SEQUENCE_VOCAB
from atomgraph.features import DEFAULT_ATOM_FEATURIZER, DEFAULT_BOND_FEATURIZER
from atomgraph.graphs.fields import batch_vector
from atomgraph.models.card import ModelCard
from atomgraph.models.registry import register_model
from atomgraph.nn.mlp import MLP
from atomgraph.nn.readout import GraphReadout


class SequenceCNN(nn.Module):
    """Tokens [B, T] -> [B, out_dim]: embedding, Conv1d stack (padding kept at the ends), masked max-pool."""

    def __init__(
        self, embed_dim=128, filters=32, kernel_size=8, conv_layers=3, out_dim=64, vocab=SEQUENCE_VOCAB
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed_dim, padding_idx=0)
        channels = [embed_dim] + [filters * (k + 1) for k in range(conv_layers)]
        self.convs = nn.ModuleList(
            nn.Conv1d(channels[k], channels[k + 1], kernel_size) for k in range(conv_layers)
        )
        self.padding = ((kernel_size - 1) // 2, kernel_size // 2)  # output length = input length
        self.out = nn.Linear(channels[-1], out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = tokens > 0  # [B, T]
        h = self.embed(tokens).transpose(1, 2)  # [B, C, T]
        for conv in self.convs:
            h = torch.relu(conv(nn.functional.pad(h, self.padding))) * mask.unsqueeze(1)
        h = h.masked_fill(~mask.unsqueeze(1), float("-inf")).amax(dim=-1)
        return self.out(torch.nan_to_num(h, neginf=0.0))


CARD = ModelCard("sequence", "sequence", ("x", "edge_attr", "seq"), "layers")


@register_model("affinity_sequence", card=CARD)
class SequenceAffinity(nn.Module):
    """GraphDTA-style model on (ligand graph, protein sequence) samples.

    Args:
        atom_dim, edge_dim: widths of ``x`` and ``edge_attr`` (filled in from the data).
        reductions: the TargetSpec reduction of each target; its length is the number of outputs.
        hidden, layers, encoder: the ligand GNN (see
            :func:`~atomgraph.apps.complexes.models.affinity_encoders.build_encoder`; no distances are used).
        embed_dim, filters, kernel_size, conv_layers: the sequence CNN (GraphDTA: 128, 32, 8, 3).
        pool: the ligand's node pool (GraphDTA: max).
    """

    def __init__(
        self,
        atom_dim: int = DEFAULT_ATOM_FEATURIZER.dim,
        edge_dim: int = DEFAULT_BOND_FEATURIZER.dim,
        reductions: Sequence[str] = ("mean",),
        hidden: int = 64,
        layers: int = 3,
        encoder: str = "mpnn",
        embed_dim: int = 128,
        filters: int = 32,
        kernel_size: int = 8,
        conv_layers: int = 3,
        pool: str = "max",
        dropout: float = 0.1,
    ):
        super().__init__()
        self.ligand_encoder = build_encoder(
            encoder, atom_dim, edge_dim, hidden=hidden, layers=layers, use_distance=False, dropout=dropout
        )
        self.readout = GraphReadout(pool, self.ligand_encoder.out_dim)
        self.sequence_encoder = SequenceCNN(embed_dim, filters, kernel_size, conv_layers, hidden)
        self.head = MLP(
            [self.readout.out_dim + hidden, 2 * hidden, len(reductions)], act="relu", dropout=dropout
        )

    def forward(self, graph: Data) -> torch.Tensor:
        """Batch of sequence samples -> [B, T]."""
        batch, num_graphs = batch_vector(graph)
        view = NodeSet(graph.x, graph.pos, graph.edge_index, graph.edge_attr, None, batch, num_graphs)
        ligand = self.readout(self.ligand_encoder(view), batch, num_graphs)
        protein = self.sequence_encoder(graph.seq.view(num_graphs, -1))
        return self.head(torch.cat([ligand, protein], dim=-1))
