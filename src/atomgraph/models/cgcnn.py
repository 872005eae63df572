"""CGCNN (Xie & Grossman, PRL 120, 145301 (2018)): gated graph convolutions on crystal graphs.

z_ij = h_i ‖ h_j ‖ e_ij,   h_i <- softplus(h_i + BN(Σ_j σ(z_ij W_f + b_f) ⊙ softplus(z_ij W_s + b_s)))

with batch norm on the edge pre-activations (both halves) as in the reference code, e_ij the Gaussian
expansion of the distance (0-8 Å, step 0.2 Å: :meth:`GaussianRBF.cgcnn`), and the crystal graph of
the 12 nearest neighbours within 8 Å. Readout: mean pooling, softplus, fully connected layers (the
paper's readout, ``"pooled"``: what ``"auto"`` gives targets that are not sums); ``sum`` targets, and
targets asked for ``"atom_mean"``, use an atom-wise head instead (see :mod:`atomgraph.nn.target_readout`).

Atom inputs (``atom_features``): ``"properties"`` (default) projects the 24 tabulated element
properties of :func:`atomgraph.features.element_features` (electronegativity, radii, group, period,
valence electrons, ionisation energy, electron affinity, mass, block, ...; z-scored) -- the same
physical information as CGCNN's ``atom_init.json`` one-hot bins, but as continuous values;
``"embedding"`` learns a vector per element instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional
from torch_geometric.data import Data

from atomgraph.features import ElementEmbeddingTable, GaussianRBF
from atomgraph.features.radial import gaussian_preset
from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.geometry import edge_lengths, edge_vectors
from atomgraph.graphs.spec import GraphSpec
from atomgraph.graphs.structure_features import read_site_attr
from atomgraph.models.card import ModelCard
from atomgraph.models.lattice import LATTICE_DIM, global_inputs
from atomgraph.models.registry import register_model
from atomgraph.nn.scatter import scatter_mean
from atomgraph.nn.target_readout import TargetHead, resolve_readouts

ATOM_FEATURES = ("properties", "embedding")


def batch_norm(norm: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)``, but with the running statistics when training on fewer than two rows."""
    if norm.training and x.shape[0] < 2:
        return functional.batch_norm(
            x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps
        )
    return norm(x)


def cgcnn_rbf(cutoff: float) -> GaussianRBF:
    """CGCNN's Gaussians (step 0.2 Å, exp(-(d - μ)² / 0.2²)) from 0 to ``cutoff`` Å."""
    if math.isclose(cutoff, 8.0):
        return GaussianRBF.cgcnn()
    return GaussianRBF(0.0, cutoff, round(cutoff / 0.2) + 1, width=0.2 / math.sqrt(2.0))


def within_cutoff(graph: Data, cutoff: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge index [2, E'] and lengths [E'] (Å) of the edges not longer than ``cutoff``."""
    lengths = edge_lengths(edge_vectors(graph))
    keep = lengths <= cutoff
    if bool(keep.all()):
        return graph.edge_index, lengths
    return graph.edge_index[:, keep], lengths[keep]


class CGCNNConv(nn.Module):
    """One gated convolution: ``h [N, F], e [E, G] -> [N, F]`` (edge_index row 0 = j, row 1 = i).

    The edge pre-activation ``z_ij W + b`` with ``z_ij = h_i ‖ h_j ‖ e_ij`` is computed as
    ``(h W_i)_i + (h W_j)_j + e_ij W_e + b`` (W split into its three column blocks): the atom parts are
    multiplied once per atom instead of once per edge (about 12 edges per atom), then gathered. Same
    parameters and values as the concatenated form (:meth:`reference_pre_activation`), fewer FLOPs.
    """

    def __init__(self, dim: int, edge_dim: int):
        super().__init__()
        self.dim = dim
        self.linear = nn.Linear(2 * dim + edge_dim, 2 * dim)
        self.norm_edges = nn.BatchNorm1d(2 * dim)
        self.norm_atoms = nn.BatchNorm1d(dim)

    def pre_activation(self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """``z_ij W + b`` [E, 2F], the atom blocks applied per atom."""
        source, target = edge_index
        weight, dim = self.linear.weight, self.dim
        atoms = h @ torch.cat([weight[:, :dim], weight[:, dim : 2 * dim]], dim=0).T  # [N, 4F]
        centre, neighbour = atoms[:, : 2 * dim], atoms[:, 2 * dim :]
        edges = functional.linear(e, weight[:, 2 * dim :], self.linear.bias)
        return edges + centre.index_select(0, target) + neighbour.index_select(0, source)

    def reference_pre_activation(
        self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor
    ) -> torch.Tensor:
        """The same, as written in the paper: the linear layer on the concatenation, per edge."""
        source, target = edge_index
        return self.linear(torch.cat([h.index_select(0, target), h.index_select(0, source), e], dim=-1))

    def forward(self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        _, target = edge_index
        z = self.pre_activation(h, e, edge_index)
        gate, core = batch_norm(self.norm_edges, z).chunk(2, dim=-1)
        messages = torch.sigmoid(gate) * functional.softplus(core)
        summed = torch.zeros_like(h).index_add_(0, target, messages)
        return functional.softplus(h + batch_norm(self.norm_atoms, summed))


CARD = ModelCard(
    "radius",
    "cgcnn_crystal",
    ("z", "pos", "cell", "site_attr", "state"),
    "layers",
    reads_positions=True,
    intensive_readout="pooled",
)


@register_model("cgcnn", card=CARD)
class CGCNN(nn.Module):
    """Crystal graph convolutional neural network.

    Args:
        reductions: the :attr:`~atomgraph.targets.TargetSpec.reduction` of each target; its length is
            the number of outputs.
        hidden: atom feature width (paper: 64).
        layers: number of convolutions (paper: 3).
        fc_hidden: width of the fully connected layers after pooling (paper: 128).
        fc_layers: number of hidden fully connected layers (paper: 1).
        graph: the GraphSpec of the input graphs (paper: 12 nearest within 8 Å, preset cgcnn_crystal).
        interaction_cutoff: Å, at most ``graph.cutoff`` (default: it); longer edges are ignored and the
            Gaussians span 0..interaction_cutoff.
        atom_features: "properties" (element property table, default) or "embedding" (learned).
        readout: per-target readout (:mod:`atomgraph.nn.target_readout`): "auto" ("sum" for ``sum``
            targets, "pooled" -- mean pooling then the MLP -- for the others), "sum", "mean" (of atomic
            contributions), "pooled", or a list with one per target.
        lattice: append a/b/c, cos α/β/γ and volume per atom to the pooled vector (and to each atom's
            input of the atom-wise head); a/b/c depend on the cell choice.
        The graph spec's ``site_features`` (``graph.site_attr``) are mapped by a linear layer and added
        to each atom's initial state; its ``state_features`` (``graph.state``) join the lattice
        features after pooling.
        max_z: largest atomic number (``"embedding"``).
        rbf: a named Gaussian grid for the edges (:data:`~atomgraph.features.radial.GAUSSIAN_PRESETS`,
            e.g. ``"materials_lecture"``: seed 004's 0-5 Å, step 0.1, σ 0.2) instead of CGCNN's own
            (step 0.2 Å over 0..interaction_cutoff).
    Input: a radius graph or batch (``z``, ``pos``, ``edge_index``, ``edge_shift``, ``cell``).
    Output: [B, T] in the normalised units of the task.
    """

    def __init__(
        self,
        graph: GraphSpec,
        reductions: Sequence[str] = ("mean",),
        hidden: int = 64,
        layers: int = 3,
        fc_hidden: int = 128,
        fc_layers: int = 1,
        interaction_cutoff: float | None = None,
        atom_features: str = "properties",
        readout: str | Sequence[str] = "auto",
        lattice: bool = False,
        max_z: int = 100,
        rbf: str | None = None,
    ):
        super().__init__()
        if atom_features not in ATOM_FEATURES:
            raise ValueError(f"atom_features must be one of {ATOM_FEATURES}, got {atom_features!r}")
        self.cutoff = graph.interaction_cutoff(interaction_cutoff, "cgcnn")
        self.lattice = lattice
        self.state_width = graph.state_width
        self.site_inputs = nn.Linear(graph.site_width, hidden) if graph.site_width else None
        self.rbf = gaussian_preset(rbf, self.cutoff) if rbf else cgcnn_rbf(self.cutoff)
        if atom_features == "properties":
            table = ElementEmbeddingTable()
            self.embedding = nn.Sequential(table, nn.Linear(table.dim, hidden))
        else:
            self.embedding = nn.Embedding(max_z + 1, hidden)
        self.convs = nn.ModuleList(CGCNNConv(hidden, self.rbf.num) for _ in range(layers))
        width = hidden + (LATTICE_DIM if lattice else 0) + self.state_width
        readouts = resolve_readouts(readout, reductions, CARD.intensive_readout)
        self.head = TargetHead(width, width, readouts, [fc_hidden] * fc_layers, act="softplus")

    def atom_states(self, graph: Data) -> torch.Tensor:
        """Atom features [N, hidden] after all convolutions."""
        edge_index, lengths = within_cutoff(graph, self.cutoff)
        e = self.rbf(lengths)
        h = self.embedding(graph.z)
        if self.site_inputs is not None:
            h = h + self.site_inputs(read_site_attr(graph, self.site_inputs.in_features))
        for conv in self.convs:
            h = conv(h, e, edge_index)
        return h

    def forward(self, graph: Data) -> torch.Tensor:
        batch, num_graphs = batch_vector(graph)
        h = self.atom_states(graph)
        # reference code: conv_to_fc(softplus(mean_i h_i)); the atom-wise head gets softplus(h_i)
        pooled = functional.softplus(scatter_mean(h, batch, num_graphs)) if self.head.needs_pooled else None
        h = functional.softplus(h)
        extra = global_inputs(graph, self.lattice, self.state_width, num_graphs)
        if extra is not None:
            pooled = None if pooled is None else torch.cat([pooled, extra], dim=-1)
            h = torch.cat([h, extra.index_select(0, batch)], dim=-1)
        return self.head(pooled, h, batch, num_graphs)
