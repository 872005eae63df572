"""DimeNet (Gasteiger, Groß & Günnemann 2020) and DimeNet++ (Gasteiger et al. 2020, "Fast and
uncertainty-aware directional message passing").

Directional messages m_ji live on the directed edges j -> i. Each interaction updates m_ji from the
messages m_kj arriving at j, weighted by a spherical basis of the distance d_kj and the angle
alpha_kji between the bonds j -> i and j -> k (:class:`~atomgraph.nn.spherical.SphericalBasis`):

    m_kj' = act(W_down (act(W_kj m_kj) * W_rbf e_RBF(d_kj)))           [E, int_emb]   (++: down-projection)
    m_ji <- ResidualStack(act(W_ji m_ji) + act(W_up sum_k m_kj'[kj] * W_sbf a_SBF(d_kj, alpha_kji))) + m_ji
    t_i  = sum_blocks MLP(W_up sum_j W_rbf e_RBF(d_ji) * m_ji)          per-atom outputs, summed over blocks

``e_RBF`` is the radial Bessel basis :math:`\\sin(n\\pi d/c)/d` (trainable frequencies) times the polynomial
envelope; basis embeddings (``basis_emb``) factor the rbf/sbf projections as in DimeNet++.

The original DimeNet (``dimenet``) mixes each triplet's message and spherical basis bilinearly instead,
in the full width and without the down/up-projections, and its output blocks stay at the message width:

    m_kj' = act(W_kj m_kj) * W_rbf e_RBF(d_kj)                              [E, hidden]
    m_ji <- ... act(W_ji m_ji) + sum_k sum_{l,b} W[:, b, l] (W_sbf a_SBF)_b m_kj'[kj, l] ...  (same residuals)

with ``num_bilinear`` (paper: 8) basis projections; 6 blocks in the paper (2.1 M parameters on QM9,
PyTorch Geometric's count).

Triplets come from :func:`atomgraph.graphs.triplets` (no torch_sparse); in periodic cells smaller than
the cutoff they include the paths through other images of the same atom. Edges longer than
``interaction_cutoff`` (a graph built with a larger radius) are dropped in the forward pass: they would
carry no weight, but they would multiply the number of triplets.

Differences from the reference code: weights are Glorot-orthogonal initialised as there, but the last
output layer is not zero-initialised (so an untrained model is not identically zero); the spherical
basis follows the paper (see :mod:`atomgraph.nn.spherical`); targets flagged intensive are averaged
over atoms instead of summed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Data

from atomgraph.features import BesselRBF, PolynomialEnvelope
from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.geometry import edge_lengths, edge_vectors
from atomgraph.graphs.spec import GraphSpec
from atomgraph.graphs.triplets import triplets
from atomgraph.models.card import ModelCard
from atomgraph.models.registry import register_model
from atomgraph.nn.activations import activation
from atomgraph.nn.spherical import SphericalBasis
from atomgraph.nn.target_readout import SumOrMean, resolve_readouts


def glorot_orthogonal_(weight: torch.Tensor, scale: float = 2.0) -> torch.Tensor:
    """Orthogonal initialisation rescaled to the Glorot variance ``scale / (fan_in + fan_out)`` (DimeNet)."""
    with torch.no_grad():
        nn.init.orthogonal_(weight)
        fan_out, fan_in = weight.shape
        weight.mul_(math.sqrt(scale / ((fan_in + fan_out) * weight.var().clamp(min=1e-12))))
    return weight


def dense(n_in: int, n_out: int, bias: bool = True) -> nn.Linear:
    """A linear layer with DimeNet's initialisation (Glorot-orthogonal weight, zero bias)."""
    layer = nn.Linear(n_in, n_out, bias=bias)
    glorot_orthogonal_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class ResidualLayer(nn.Module):
    """x + act(W2 act(W1 x)): [*, F] -> [*, F]."""

    def __init__(self, dim: int, act: str):
        super().__init__()
        self.lin1, self.lin2 = dense(dim, dim), dense(dim, dim)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.lin2(self.act(self.lin1(x))))


class EmbeddingBlock(nn.Module):
    """Initial messages m_ji = act(W [h_i, h_j, act(W_rbf e_RBF(d_ji))]): -> [E, hidden]."""

    def __init__(self, num_radial: int, hidden: int, max_z: int, act: str):
        super().__init__()
        self.embedding = nn.Embedding(max_z + 1, hidden)
        nn.init.uniform_(self.embedding.weight, -math.sqrt(3.0), math.sqrt(3.0))
        self.lin_rbf = dense(num_radial, hidden)
        self.lin = dense(3 * hidden, hidden)
        self.act = activation(act)

    def forward(
        self, z: torch.Tensor, rbf: torch.Tensor, source: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """z [N], rbf [E, num_radial], source/target [E] (j, i) -> [E, hidden]."""
        h = self.embedding(z)
        rbf = self.act(self.lin_rbf(rbf))
        return self.act(self.lin(torch.cat([h.index_select(0, target), h.index_select(0, source), rbf], -1)))


class InteractionPPBlock(nn.Module):
    """DimeNet++ interaction: messages [E, hidden] -> [E, hidden], with triplet terms in ``int_emb``."""

    def __init__(
        self,
        hidden: int,
        int_emb: int,
        basis_emb: int,
        num_spherical: int,
        num_radial: int,
        num_before_skip: int,
        num_after_skip: int,
        act: str,
    ):
        super().__init__()
        self.act = activation(act)
        self.lin_rbf1 = dense(num_radial, basis_emb, bias=False)
        self.lin_rbf2 = dense(basis_emb, hidden, bias=False)
        self.lin_sbf1 = dense(num_spherical * num_radial, basis_emb, bias=False)
        self.lin_sbf2 = dense(basis_emb, int_emb, bias=False)
        self.lin_kj = dense(hidden, hidden)
        self.lin_ji = dense(hidden, hidden)
        self.lin_down = dense(hidden, int_emb, bias=False)
        self.lin_up = dense(int_emb, hidden, bias=False)
        self.before_skip = nn.Sequential(*(ResidualLayer(hidden, act) for _ in range(num_before_skip)))
        self.lin = dense(hidden, hidden)
        self.after_skip = nn.Sequential(*(ResidualLayer(hidden, act) for _ in range(num_after_skip)))

    def forward(
        self,
        m: torch.Tensor,
        rbf: torch.Tensor,
        sbf: torch.Tensor,
        idx_kj: torch.Tensor,
        idx_ji: torch.Tensor,
    ) -> torch.Tensor:
        """m [E, hidden], rbf [E, num_radial], sbf [T, num_spherical * num_radial], idx_kj/idx_ji [T]."""
        m_ji = self.act(self.lin_ji(m))
        m_kj = self.act(self.lin_kj(m)) * self.lin_rbf2(self.lin_rbf1(rbf))
        m_kj = self.act(self.lin_down(m_kj))
        triplet = m_kj.index_select(0, idx_kj) * self.lin_sbf2(self.lin_sbf1(sbf))
        m_kj = m_kj.new_zeros(m.shape[0], m_kj.shape[1]).index_add_(0, idx_ji, triplet)
        m_kj = self.act(self.lin_up(m_kj))
        h = self.before_skip(m_ji + m_kj)
        h = self.act(self.lin(h)) + m
        return self.after_skip(h)


class InteractionBlock(nn.Module):
    """DimeNet's interaction: messages [E, hidden] -> [E, hidden], triplets mixed by a bilinear layer."""

    def __init__(
        self,
        hidden: int,
        num_bilinear: int,
        num_spherical: int,
        num_radial: int,
        num_before_skip: int,
        num_after_skip: int,
        act: str,
    ):
        super().__init__()
        self.act = activation(act)
        self.lin_rbf = dense(num_radial, hidden, bias=False)
        self.lin_sbf = dense(num_spherical * num_radial, num_bilinear, bias=False)
        self.lin_kj = dense(hidden, hidden)
        self.lin_ji = dense(hidden, hidden)
        self.bilinear = nn.Parameter(torch.empty(hidden, num_bilinear, hidden).normal_(0.0, 2.0 / hidden))
        self.before_skip = nn.Sequential(*(ResidualLayer(hidden, act) for _ in range(num_before_skip)))
        self.lin = dense(hidden, hidden)
        self.after_skip = nn.Sequential(*(ResidualLayer(hidden, act) for _ in range(num_after_skip)))

    def forward(
        self,
        m: torch.Tensor,
        rbf: torch.Tensor,
        sbf: torch.Tensor,
        idx_kj: torch.Tensor,
        idx_ji: torch.Tensor,
    ) -> torch.Tensor:
        """m [E, hidden], rbf [E, num_radial], sbf [T, num_spherical * num_radial], idx_kj/idx_ji [T]."""
        m_ji = self.act(self.lin_ji(m))
        m_kj = self.act(self.lin_kj(m)) * self.lin_rbf(rbf)
        # [T, hidden] = sum over the bilinear index b and the input feature l
        triplet = torch.einsum(
            "tb,tl,ibl->ti", self.lin_sbf(sbf), m_kj.index_select(0, idx_kj), self.bilinear
        )
        m_kj = m_kj.new_zeros(m.shape[0], m_kj.shape[1]).index_add_(0, idx_ji, triplet)
        h = self.before_skip(m_ji + m_kj)
        h = self.act(self.lin(h)) + m
        return self.after_skip(h)


class OutputPPBlock(nn.Module):
    """Messages [E, hidden] -> per-atom outputs [N, T]: sum_j W_rbf e_RBF(d_ji) * m_ji, up-projection
    to ``out_emb`` (DimeNet++; ``out_emb=None``: none, DimeNet's block at the message width), MLP."""

    def __init__(
        self, num_radial: int, hidden: int, out_emb: int | None, num_targets: int, num_layers: int, act: str
    ):
        super().__init__()
        self.act = activation(act)
        self.lin_rbf = dense(num_radial, hidden, bias=False)
        self.lin_up = dense(hidden, out_emb, bias=False) if out_emb is not None else nn.Identity()
        out_emb = hidden if out_emb is None else out_emb
        self.lins = nn.ModuleList(dense(out_emb, out_emb) for _ in range(num_layers))
        self.lin = dense(out_emb, num_targets, bias=False)

    def forward(
        self, m: torch.Tensor, rbf: torch.Tensor, target: torch.Tensor, num_nodes: int
    ) -> torch.Tensor:
        x = self.lin_rbf(rbf) * m
        x = x.new_zeros(num_nodes, x.shape[1]).index_add_(0, target, x)
        x = self.lin_up(x)
        for lin in self.lins:
            x = self.act(lin(x))
        return self.lin(x)


CARD = ModelCard.interatomic("blocks", head=("outputs",))


@register_model("dimenet++", card=CARD)
@register_model("dimenetpp", card=CARD)
class DimeNetPlusPlus(nn.Module):
    """DimeNet++ for graph properties and potentials (defaults: the paper's QM9 hyperparameters).

    Args:
        reductions: the :attr:`~atomgraph.targets.TargetSpec.reduction` of each target; its length is
            the number of outputs.
        hidden: message width (paper: 128).
        out_emb: width of the output MLPs (paper: 256).
        int_emb: width of the triplet interaction after the down-projection (paper: 64).
        basis_emb: width of the rbf/sbf basis embeddings (paper: 8).
        blocks: number of interaction blocks (paper: 4); there is one more output block than that.
        num_spherical: degrees of the spherical basis (paper: 7).
        num_radial: radial basis functions (paper: 6).
        graph: the GraphSpec of the input graphs (paper: 5 Å).
        interaction_cutoff: Å, at most ``graph.cutoff`` (default: it); longer edges are ignored.
        envelope_exponent: exponent p of the polynomial envelope (the reference code's 5 + 1 = 6).
        num_before_skip, num_after_skip: residual layers around the skip connection (paper: 1, 2).
        num_output_layers: hidden layers of each output MLP (paper: 3).
        max_z: largest atomic number.
        act: activation (paper: swish = silu).
        readout: per-target readout of the atomic contributions (:mod:`atomgraph.nn.target_readout`):
            "auto" (sum for ``sum`` targets, mean for the others), "sum", "atom_mean", or one per target.
    Input: a radius graph or batch (``z``, ``pos``, ``edge_index``, ``edge_shift``, ``cell``).
    Output: [B, T] in the normalised units of the task; differentiable w.r.t. ``pos`` and ``cell``.
    """

    def __init__(
        self,
        graph: GraphSpec,
        reductions: Sequence[str] = ("sum",),
        hidden: int = 128,
        out_emb: int = 256,
        int_emb: int = 64,
        basis_emb: int = 8,
        blocks: int = 4,
        num_spherical: int = 7,
        num_radial: int = 6,
        interaction_cutoff: float | None = None,
        envelope_exponent: int = 6,
        num_before_skip: int = 1,
        num_after_skip: int = 2,
        num_output_layers: int = 3,
        max_z: int = 100,
        act: str = "silu",
        readout: str | Sequence[str] = "auto",
    ):
        super().__init__()
        self._bases(
            graph,
            "dimenet++",
            reductions,
            hidden,
            blocks,
            num_spherical,
            num_radial,
            interaction_cutoff,
            envelope_exponent,
            max_z,
            act,
            readout,
        )
        num_targets = len(reductions)
        self.interactions = nn.ModuleList(
            InteractionPPBlock(
                hidden, int_emb, basis_emb, num_spherical, num_radial, num_before_skip, num_after_skip, act
            )
            for _ in range(blocks)
        )
        self.outputs = nn.ModuleList(
            OutputPPBlock(num_radial, hidden, out_emb, num_targets, num_output_layers, act)
            for _ in range(blocks + 1)
        )

    def _bases(
        self, graph, name, reductions, hidden, blocks, num_spherical, num_radial, interaction_cutoff,
        envelope_exponent, max_z, act, readout,
    ) -> None:  # fmt: skip
        """What DimeNet and DimeNet++ share: cutoff, readout, radial and spherical bases, embedding."""
        if blocks < 1:
            raise ValueError(f"blocks must be at least 1, got {blocks}")
        self.cutoff = graph.interaction_cutoff(interaction_cutoff, name)
        supported = ("sum", "atom_mean", "atom")
        readouts = resolve_readouts(readout, reductions, CARD.intensive_readout, supported=supported)
        self.reduce = SumOrMean(readouts)
        self.rbf = BesselRBF(self.cutoff, num_radial, trainable=True)
        self.envelope = PolynomialEnvelope(self.cutoff, envelope_exponent)
        self.sbf = SphericalBasis(num_spherical, num_radial, self.cutoff, envelope_exponent)
        self.embedding = EmbeddingBlock(num_radial, hidden, max_z, act)

    def geometry(self, graph: Data) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Edges within the cutoff and their triplets.

        Returns ``edge_index`` [2, E'], lengths [E'] (Å), ``idx_kj``/``idx_ji`` [T] into those edges and
        ``cos(alpha_kji)`` [T] (the angle at j between j -> i and j -> k), all differentiable.
        """
        vectors = edge_vectors(graph)
        lengths = edge_lengths(vectors)
        edge_index = graph.edge_index
        shift = getattr(graph, "edge_shift", None)
        inside = lengths < self.cutoff
        if not bool(inside.all()):
            keep = inside.nonzero().view(-1)
            vectors, lengths, edge_index = vectors[keep], lengths[keep], edge_index[:, keep]
            shift = None if shift is None else shift[keep]
        idx_kj, idx_ji = triplets(edge_index, graph.num_nodes, shift)
        # the stored vector of edge j -> i points from i to j, so j -> i is its negative
        cos = -(vectors[idx_ji] * vectors[idx_kj]).sum(-1) / (lengths[idx_ji] * lengths[idx_kj])
        return edge_index, lengths, torch.stack([idx_kj, idx_ji]), cos

    def atom_outputs(self, graph: Data) -> torch.Tensor:
        """Per-atom contributions [N, T], summed over the output blocks."""
        edge_index, lengths, (idx_kj, idx_ji), cos = self.geometry(graph)
        source, target = edge_index
        num_nodes = graph.num_nodes
        rbf = self.rbf(lengths) * self.envelope(lengths).unsqueeze(-1)
        sbf = self.sbf(lengths, cos, idx_kj)
        m = self.embedding(graph.z, rbf, source, target)
        out = self.outputs[0](m, rbf, target, num_nodes)
        for interaction, output in zip(self.interactions, self.outputs[1:], strict=True):
            m = interaction(m, rbf, sbf, idx_kj, idx_ji)
            out = out + output(m, rbf, target, num_nodes)
        return out

    def forward(self, graph: Data) -> torch.Tensor:
        batch, num_graphs = batch_vector(graph)
        return self.reduce(self.atom_outputs(graph), batch, num_graphs)


@register_model("dimenet", card=CARD)
class DimeNet(DimeNetPlusPlus):
    """The original DimeNet (bilinear triplet interaction; see the module docstring); the geometry,
    bases, embedding and readout are DimeNet++'s.

    Args: as :class:`DimeNetPlusPlus`, without ``out_emb``, ``int_emb`` and ``basis_emb``;
        num_bilinear: projections of the spherical basis in the bilinear layer (paper: 8);
        blocks: interaction blocks (paper: 6).
    """

    def __init__(
        self,
        graph: GraphSpec,
        reductions: Sequence[str] = ("sum",),
        hidden: int = 128,
        num_bilinear: int = 8,
        blocks: int = 6,
        num_spherical: int = 7,
        num_radial: int = 6,
        interaction_cutoff: float | None = None,
        envelope_exponent: int = 6,
        num_before_skip: int = 1,
        num_after_skip: int = 2,
        num_output_layers: int = 3,
        max_z: int = 100,
        act: str = "silu",
        readout: str | Sequence[str] = "auto",
    ):
        nn.Module.__init__(self)
        self._bases(
            graph,
            "dimenet",
            reductions,
            hidden,
            blocks,
            num_spherical,
            num_radial,
            interaction_cutoff,
            envelope_exponent,
            max_z,
            act,
            readout,
        )
        self.interactions = nn.ModuleList(
            InteractionBlock(
                hidden, num_bilinear, num_spherical, num_radial, num_before_skip, num_after_skip, act
            )
            for _ in range(blocks)
        )
        self.outputs = nn.ModuleList(
            OutputPPBlock(num_radial, hidden, None, len(reductions), num_output_layers, act)
            for _ in range(blocks + 1)
        )
