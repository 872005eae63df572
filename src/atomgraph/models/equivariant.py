"""An E(3)-equivariant interatomic potential of the NequIP family (Batzner et al. 2022), on e3nn.

Atoms carry irreps features h (default ``32x0e + 16x1o + 8x2e``, l <= 2). Each interaction layer:

    x_i   = Linear(h_i)
    a_i   = (1 / avg_num_neighbors) sum_j TP_uvu(x_j, Y(r_ij); R(|r_ij|))     summed over the edges into i
    h_i  <- Gate(Linear(a_i) + SelfInteraction(h_i)) (+ h_i when the irreps match: residual)

with Y the spherical harmonics of the edge direction (``normalize=True``, "component") and R an MLP
(e3nn ``FullyConnectedNet``, no biases) of the Bessel basis times the polynomial envelope, so every
edge's weights vanish smoothly (C^2) at the cutoff. The gate (e3nn ``Gate``) applies silu to the even
scalars (tanh to odd ones) and multiplies every l > 0 channel by a sigmoid of its own scalar gate.
The last layer computes only the scalars (0e) that the readout reads, as NequIP does. Readout: those
scalars -> MLP -> per-atom energies, summed per graph.

Speed (same numbers as the textbook form): the tensor product and its sum over edges are fused per
input irrep (:class:`~atomgraph.nn.edge_tensor_product.EdgeTensorProduct`, ~2x e3nn's
``TensorProduct`` + ``index_add_`` on CPU); on symmetric graphs (pairs then their reverses,
:func:`~atomgraph.graphs.geometry.edge_pairs`) edge vectors, harmonics, the radial basis and the
radial MLP are computed once per pair: r_ji = -r_ij, so Y_l(r_ji) = (-1)^l Y_l(r_ij) and R is shared.

Two-body messages in stacked interaction layers: body order grows with depth (each layer adds one
neighbour to the correlation), which is what gives NequIP its accuracy. The body-ordered alternative,
symmetric powers of the atomic basis within one layer, is :mod:`atomgraph.models.mace`.

Normalisation: the aggregated messages are divided by ``avg_num_neighbors`` (a constructor argument,
a constant: energies stay exactly extensive). Works for molecules and periodic cells alike: edge vectors
come from :func:`edge_vectors`, differentiable w.r.t. positions and cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet, Gate
from torch import nn
from torch_geometric.data import Data

from atomgraph.features import BesselRBF, PolynomialEnvelope
from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models.card import ModelCard
from atomgraph.models.edge_harmonics import harmonic_edges, harmonic_parity
from atomgraph.models.registry import register_model
from atomgraph.nn.edge_tensor_product import EdgeTensorProduct, uvu_paths
from atomgraph.nn.mlp import MLP
from atomgraph.nn.target_readout import SumOrMean, resolve_readouts


def _reachable(irreps_in: o3.Irreps, irreps_edge: o3.Irreps, ir: o3.Irrep) -> bool:
    """Whether some path irreps_in x irreps_edge -> ir exists."""
    return any(ir in ir_in * ir_edge for _, ir_in in irreps_in for _, ir_edge in irreps_edge)


class EquivariantInteraction(nn.Module):
    """One NequIP interaction: h [N, irreps_in.dim] -> [N, irreps_out.dim] (``irreps_out`` below).

    The output keeps those irreps of ``irreps_target`` that the tensor product can reach from
    ``irreps_in`` (so the first layer, from scalars, still produces every l <= lmax of the edges).
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_target: o3.Irreps,
        irreps_edge: o3.Irreps,
        num_basis: int,
        radial_hidden: int,
        radial_layers: int,
        avg_num_neighbors: float,
    ):
        super().__init__()
        self.irreps_in = irreps_in
        self.avg_num_neighbors = float(avg_num_neighbors)
        scalars = o3.Irreps(
            [(mul, ir) for mul, ir in irreps_target if ir.l == 0 and _reachable(irreps_in, irreps_edge, ir)]
        )
        gated = o3.Irreps(
            [(mul, ir) for mul, ir in irreps_target if ir.l > 0 and _reachable(irreps_in, irreps_edge, ir)]
        )
        gates = o3.Irreps([(mul, "0e") for mul, _ in gated])
        self.gate = Gate(
            scalars,
            [torch.nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars],
            gates,
            [torch.sigmoid] * len(gates),
            gated,
        )
        irreps_conv = self.gate.irreps_in
        # "uvu" paths: every input channel times each spherical harmonic, to the irreps the gate takes
        irreps_mid, instructions = uvu_paths(irreps_in, irreps_edge, irreps_conv)
        self.linear_in = o3.Linear(irreps_in, irreps_in)
        self.tp = EdgeTensorProduct(irreps_in, irreps_edge, irreps_mid, instructions)
        self.radial = FullyConnectedNet(
            [num_basis, *[radial_hidden] * radial_layers, self.tp.weight_numel], torch.nn.functional.silu
        )
        self.linear_out = o3.Linear(irreps_mid.simplify(), irreps_conv)
        self.self_interaction = o3.Linear(irreps_in, irreps_conv)
        self.irreps_out = self.gate.irreps_out
        self.residual = self.irreps_out == irreps_in

    def forward(
        self,
        h: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_basis: torch.Tensor,
        source: torch.Tensor,
        target: torch.Tensor,
    ) -> torch.Tensor:
        """h [N, in], edge_sh [E, sh], source/target [E] (j, i); edge_basis [E, num_basis] (enveloped)
        or, on symmetric graphs laid out as pairs then their reverses in the same order, [E / 2,
        num_basis] for the pairs only: the radial weights are then computed once per pair."""
        weights = self.radial(edge_basis)
        aggregated = self.tp(self.linear_in(h), source, edge_sh, weights, target)
        out = self.linear_out(aggregated / self.avg_num_neighbors) + self.self_interaction(h)
        out = self.gate(out)
        return h + out if self.residual else out


CARD = ModelCard.interatomic("layers")


@register_model("equivariant", card=CARD)
@register_model("nequip", card=CARD)
class EquivariantPotential(nn.Module):
    """NequIP-style E(3)-equivariant message passing network (energies, invariant properties).

    Args:
        reductions: the :attr:`~atomgraph.targets.TargetSpec.reduction` of each target; its length is
            the number of outputs.
        hidden_irreps: node feature irreps, l <= 2 (e.g. "32x0e + 16x1o + 8x2e"); needs some 0e.
        layers: interaction layers (NequIP: 4-5).
        sh_lmax: largest degree of the edge spherical harmonics (default: that of ``hidden_irreps``).
        num_basis: Bessel radial basis functions (NequIP: 8).
        radial_hidden, radial_layers: width and depth of the radial MLP (NequIP: 64, 2).
        graph: the GraphSpec of the input graphs; the radial basis and the envelope span 0..graph.cutoff Å.
        envelope_exponent: exponent p of the polynomial envelope (NequIP: 6).
        avg_num_neighbors: the sum over neighbours is divided by this constant (set it to the data's
            mean number of neighbours within the cutoff; ~10-20 for organic molecules at 5 Å).
        max_z: largest atomic number.
        readout: per-target readout of the atomic contributions (:mod:`atomgraph.nn.target_readout`):
            "auto" (sum for ``sum`` targets, mean for the others), "sum", "atom_mean", or one per target.
    Input: a radius graph or batch (``z``, ``pos``, ``edge_index``, ``edge_shift``, ``cell``).
    Output: [B, T] in the normalised units of the task; differentiable w.r.t. ``pos`` and ``cell``.
    Build it under ``torch.set_default_dtype(torch.float64)`` for a double precision model.
    """

    def __init__(
        self,
        graph: GraphSpec,
        reductions: Sequence[str] = ("sum",),
        hidden_irreps: str = "32x0e + 16x1o + 8x2e",
        layers: int = 4,
        sh_lmax: int | None = None,
        num_basis: int = 8,
        radial_hidden: int = 64,
        radial_layers: int = 2,
        envelope_exponent: int = 6,
        avg_num_neighbors: float = 10.0,
        max_z: int = 100,
        readout: str | Sequence[str] = "auto",
    ):
        super().__init__()
        irreps_hidden = o3.Irreps(hidden_irreps).simplify()
        num_scalars = sum(mul for mul, ir in irreps_hidden if ir == o3.Irrep("0e"))
        irreps_scalars = o3.Irreps(f"{num_scalars}x0e")
        if num_scalars == 0:
            raise ValueError(
                f"hidden_irreps needs 0e channels for the embedding and readout: {hidden_irreps!r}"
            )
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        if not avg_num_neighbors > 0:
            raise ValueError(f"avg_num_neighbors must be positive, got {avg_num_neighbors}")
        self.cutoff = graph.cutoff
        supported = ("sum", "atom_mean", "atom")
        readouts = resolve_readouts(readout, reductions, CARD.intensive_readout, supported=supported)
        self.reduce = SumOrMean(readouts)
        sh_lmax = irreps_hidden.lmax if sh_lmax is None else sh_lmax
        self.irreps_edge = o3.Irreps.spherical_harmonics(sh_lmax)
        self.spherical_harmonics = o3.SphericalHarmonics(
            self.irreps_edge, normalize=True, normalization="component"
        )
        self.register_buffer("sh_parity", harmonic_parity(self.irreps_edge), persistent=False)
        self.rbf = BesselRBF(self.cutoff, num_basis, trainable=True)
        self.envelope = PolynomialEnvelope(self.cutoff, envelope_exponent)
        self.embedding = nn.Embedding(max_z + 1, num_scalars)
        irreps = irreps_scalars  # the embedding's
        self.interactions = nn.ModuleList()
        for layer in range(layers):
            # the readout reads the scalars only: the last layer computes nothing else (as NequIP)
            last = layer == layers - 1
            interaction = EquivariantInteraction(
                irreps,
                irreps_scalars if last else irreps_hidden,
                self.irreps_edge,
                num_basis,
                radial_hidden,
                radial_layers,
                avg_num_neighbors,
            )
            self.interactions.append(interaction)
            irreps = interaction.irreps_out
        self.irreps_out = irreps
        scalar_index = [
            torch.arange(part.start, part.stop)
            for (_, ir), part in zip(irreps, irreps.slices(), strict=True)
            if ir == o3.Irrep("0e")
        ]
        self.register_buffer("scalar_index", torch.cat(scalar_index), persistent=False)
        width = len(self.scalar_index)
        self.head = MLP([width, max(width // 2, 1), len(reductions)], act="silu")

    def node_features(self, graph: Data) -> torch.Tensor:
        """Features [N, irreps_out.dim] after all interactions (the scalars of the last layer)."""
        source, target, edge_sh, lengths = harmonic_edges(graph, self.spherical_harmonics, self.sh_parity)
        edge_basis = self.rbf(lengths) * self.envelope(lengths).unsqueeze(-1)
        h = self.embedding(graph.z)
        for interaction in self.interactions:
            h = interaction(h, edge_sh, edge_basis, source, target)
        return h

    def atom_outputs(self, graph: Data) -> torch.Tensor:
        """Per-atom contributions [N, T] (energies), from the invariant (0e) channels."""
        return self.head(self.node_features(graph).index_select(1, self.scalar_index))

    def forward(self, graph: Data) -> torch.Tensor:
        batch, num_graphs = batch_vector(graph)
        return self.reduce(self.atom_outputs(graph), batch, num_graphs)
