"""Cross-attention affinity model: ligand and protein node states attend to each other, distance-aware.

Each side is encoded on its own (ligand bonded graph; pocket atom graph or residue graph), then
``attention_layers`` blocks let every ligand node attend to every protein node of the same complex and
back, with scores

    s_ij = q_i . k_j / sqrt(d_head) - gamma_h * d_ij          (distance_bias="linear", gamma_h >= 0 learned)
    s_ij = q_i . k_j / sqrt(d_head) + w_h . RBF(d_ij)         (distance_bias="rbf")

softmax over j (per head), d_ij the ligand-protein distance in Å; pairs beyond ``attention_cutoff`` Å
(if set) are masked. The pooled ligand and protein states are concatenated and mapped to the targets.
``last_attention`` keeps the ligand-to-protein weights of the last block ([B, heads, L_max, P_max]).

A batch may carry ``masked_pairs`` [2, M] (ligand node, protein node indices of the graph): those pairs
are left out of the attention (the interaction decomposition uses it at ``protein_level="atom"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.utils import to_dense_batch

from atomgraph.apps.complexes.features import ATOM_DIM, EDGE_DIM, RESIDUE_DIM
from atomgraph.apps.complexes.models.affinity_encoders import (
    NodeSet,
    build_encoder,
    ligand_encoder,
    ligand_encoder_parts,
    ligand_view,
    protein_view,
    radial_stops,
)
from atomgraph.features import GaussianRBF
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models.card import ModelCard
from atomgraph.models.registry import register_model
from atomgraph.nn.mlp import MLP

DISTANCE_BIASES = ("linear", "rbf")


class DistanceAwareAttention(nn.Module):
    """Multi-head attention of queries [B, n, d] over keys [B, m, d] with a distance term on the scores."""

    def __init__(
        self, dim: int, heads: int = 4, distance_bias: str = "linear", num_rbf: int = 16, rbf_stop=12.0
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden ({dim}) must be a multiple of heads ({heads})")
        if distance_bias not in DISTANCE_BIASES:
            raise ValueError(f"distance_bias must be one of {DISTANCE_BIASES}, got {distance_bias!r}")
        self.heads, self.head_dim = heads, dim // heads
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.out = nn.Linear(dim, dim)
        self.distance_bias = distance_bias
        if distance_bias == "linear":
            self.gamma = nn.Parameter(torch.full((heads,), -1.0))  # softplus -> about 0.31 per Å
        else:
            self.rbf = GaussianRBF(0.0, rbf_stop, num_rbf)
            self.bias = nn.Linear(num_rbf, heads)

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, distance: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries [B, n, d], keys [B, m, d], distance [B, n, m] Å, mask [B, n, m] bool (True = attend)
        -> updates [B, n, d] and weights [B, heads, n, m] (rows without any allowed key are zero)."""
        b, n, _ = queries.shape
        m = keys.shape[1]
        q = self.query(queries).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k = self.key(keys).view(b, m, self.heads, self.head_dim).transpose(1, 2)
        v = self.value(keys).view(b, m, self.heads, self.head_dim).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        if self.distance_bias == "linear":
            scores = scores - nn.functional.softplus(self.gamma).view(1, -1, 1, 1) * distance.unsqueeze(1)
        else:
            scores = scores + self.bias(self.rbf(distance)).permute(0, 3, 1, 2)
        allowed = mask.unsqueeze(1)
        scores = scores.masked_fill(~allowed, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        weights = torch.where(allowed, weights, torch.zeros_like(weights))  # rows with no key: 0, not NaN
        updates = (weights @ v).transpose(1, 2).reshape(b, n, -1)
        return self.out(updates), weights


class CrossAttentionBlock(nn.Module):
    """Ligand <- protein and protein <- ligand attention, each with residual, LayerNorm and a feed-forward."""

    def __init__(
        self,
        dim: int,
        heads: int,
        distance_bias: str,
        num_rbf: int,
        dropout: float = 0.0,
        rbf_stop: float = 12.0,
    ):
        super().__init__()
        self.ligand_attention = DistanceAwareAttention(dim, heads, distance_bias, num_rbf, rbf_stop)
        self.protein_attention = DistanceAwareAttention(dim, heads, distance_bias, num_rbf, rbf_stop)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(4))
        self.ligand_ff = MLP([dim, 2 * dim, dim], act="silu", dropout=dropout)
        self.protein_ff = MLP([dim, 2 * dim, dim], act="silu", dropout=dropout)

    def forward(self, ligand, protein, distance, mask):
        """ligand [B, L, d], protein [B, P, d], distance [B, L, P], mask [B, L, P]."""
        update, weights = self.ligand_attention(ligand, protein, distance, mask)
        new_ligand = self.norms[0](ligand + update)
        update, _ = self.protein_attention(protein, ligand, distance.transpose(1, 2), mask.transpose(1, 2))
        protein = self.norms[1](protein + update)
        ligand = self.norms[2](new_ligand + self.ligand_ff(new_ligand))
        protein = self.norms[3](protein + self.protein_ff(protein))
        return ligand, protein, weights


def _position_in_graph(batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Rank of each node within its graph ([n]; nodes of a graph are contiguous, as in PyG batches)."""
    counts = torch.bincount(batch, minlength=num_graphs)
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(batch.numel(), device=batch.device) - starts[batch]


CARD = ModelCard("complex", "complex", ("x", "edge_attr", "pos"), "layers", reads_positions=True)


@register_model("affinity_cross_attention", card=CARD)
class CrossAttentionAffinity(nn.Module):
    """Separate encoders, distance-aware cross attention, pooled states, MLP head.

    Args:
        atom_dim, edge_dim: widths of ``x`` and ``edge_attr`` (filled in from the data).
        reductions: the TargetSpec reduction of each target; its length is the number of outputs.
        hidden, layers: encoder width and depth; encoder / protein_encoder: see
            :func:`~atomgraph.apps.complexes.models.affinity_encoders.build_encoder`.
        ligand_inputs: "complex" (the complex feature layout and distances) or "molecule" (the molecule
            graph's columns only, so a molecule model can initialise a ``zoo:`` encoder: ``init.into``).
        protein_level: "atom" (pocket atoms) or "residue" (Cα nodes).
        attention_layers, heads: cross-attention blocks and heads per block.
        distance_bias: "linear" (- gamma d) or "rbf" (learned bias of RBF(d)).
        attention_cutoff: Å, mask pairs farther apart (None: attend to the whole pocket).
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
        protein_level: str = "atom",
        attention_layers: int = 2,
        heads: int = 4,
        distance_bias: str = "linear",
        attention_cutoff: float | None = None,
        num_rbf: int = 16,
        dropout: float = 0.0,
        residue_dim: int = RESIDUE_DIM,
        graph: GraphSpec | None = None,
    ):
        super().__init__()
        self.protein_level = protein_level
        self.attention_cutoff = attention_cutoff
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
        if self.ligand_encoder.out_dim != hidden or self.protein_encoder.out_dim != hidden:
            raise ValueError("cross attention needs encoders whose output width equals hidden")
        self.blocks = nn.ModuleList(
            CrossAttentionBlock(hidden, heads, distance_bias, num_rbf, dropout, stops["cross"])
            for _ in range(attention_layers)
        )
        self.head = MLP([2 * hidden, hidden, len(reductions)], act="silu", dropout=dropout)
        self.last_attention: torch.Tensor | None = None

    def _pair_mask(self, graph: Data, ligand: NodeSet, protein: NodeSet, lmask, pmask, distance):
        mask = lmask.unsqueeze(2) & pmask.unsqueeze(1)
        if self.attention_cutoff is not None:
            mask &= distance < self.attention_cutoff
        removed = getattr(graph, "masked_pairs", None)
        if removed is not None and removed.numel() and self.protein_level == "atom":
            lpos = torch.full((graph.num_nodes,), -1, dtype=torch.long, device=mask.device)
            ppos = torch.full_like(lpos, -1)
            lpos[ligand.index] = _position_in_graph(ligand.batch, ligand.num_graphs)
            ppos[protein.index] = _position_in_graph(protein.batch, protein.num_graphs)
            lig, pro = removed
            graphs = ligand.batch[_position_lookup(ligand.index, lig)]
            mask = mask.clone()
            mask[graphs, lpos[lig], ppos[pro]] = False
        return mask

    def forward(self, graph: Data) -> torch.Tensor:
        """ComplexData batch -> [B, T]."""
        ligand = ligand_view(graph, self.ligand_inputs)
        protein = protein_view(graph, self.protein_level)
        num_graphs = ligand.num_graphs
        lstates, lmask = to_dense_batch(self.ligand_encoder(ligand), ligand.batch, batch_size=num_graphs)
        pstates, pmask = to_dense_batch(self.protein_encoder(protein), protein.batch, batch_size=num_graphs)
        lpos, _ = to_dense_batch(ligand.pos, ligand.batch, batch_size=num_graphs)
        ppos, _ = to_dense_batch(protein.pos, protein.batch, batch_size=num_graphs)
        distance = torch.cdist(lpos, ppos)
        mask = self._pair_mask(graph, ligand, protein, lmask, pmask, distance)
        weights = None
        for block in self.blocks:
            lstates, pstates, weights = block(lstates, pstates, distance, mask)
        self.last_attention = None if weights is None else weights.detach()  # no graph kept between steps
        pooled_ligand = (lstates * lmask.unsqueeze(-1)).sum(1) / lmask.sum(1, keepdim=True).clamp(min=1)
        pooled_protein = (pstates * pmask.unsqueeze(-1)).sum(1) / pmask.sum(1, keepdim=True).clamp(min=1)
        return self.head(torch.cat([pooled_ligand, pooled_protein], dim=-1))


def _position_lookup(index: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
    """Where each of ``nodes`` sits in ``index`` (every node must be present)."""
    lookup = torch.full(
        (int(index.max()) + 1 if index.numel() else 0,), -1, dtype=torch.long, device=index.device
    )
    lookup[index] = torch.arange(index.numel(), device=index.device)
    return lookup[nodes]
