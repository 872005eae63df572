"""A MACE-style body-ordered equivariant potential (Batatia et al., NeurIPS 2022), on e3nn.

Each layer builds, per atom i and channel k, the atomic basis of the atomic cluster expansion
(seed 002) from its neighbours j, then raises it to every power up to the correlation order:

    A_i  = (1 / avg_num_neighbors) Linear( sum_j TP_uvu(Linear(h_j), Y(r_ij); R(|r_ij|)) )
    B_i  = SymmetricContraction_{z_i}(A_i)         powers 1..correlation, element-dependent weights
    h_i <- Linear(B_i) + SelfConnection_{z_i}(h_i)  (first layer: the self-connection maps A_i instead)

with A_i of irreps k x (0e + 1o + 2e + ... up to l_max), the harmonics' own parities. One layer thus
couples correlation + 1 atoms (body order), without the depth NequIP needs.

Energies: every layer's scalars are read out (a linear map; an MLP of width 16 on the last layer when
there are several layers; no biases) and summed per atom, then over atoms. As mace-torch's ``MACE``
with its ``RealAgnostic`` interaction blocks: Bessel basis (fixed frequencies) times the polynomial
envelope, a radial MLP (no biases) per edge, ``uvu`` convolution paths kept for the harmonics' own
parities (0e, 1o, 2e, 3o, ...), one-hot element weights in the product and the self-connection, the
last layer scalars only. Differences:
the product's basis (an independent one, see SymmetricContraction: fewer weights, the same functions)
and its initial weights (N(0, 1 / P) with P its basis functions per output irrep).

Speed: the convolution is fused with its sum over edges
(:class:`~atomgraph.nn.edge_tensor_product.EdgeTensorProduct`, radial weights once per pair on
symmetric graphs), and the product basis runs as nested Clebsch-Gordan couplings sharing their
intermediates (:class:`~atomgraph.nn.symmetric_contraction.SymmetricContraction`) instead of
contracting dense generalised Clebsch-Gordan tensors.

Elements: the element-dependent weights have one row per element of ``elements`` (training fills it
with those of every row of the dataset); an atom of another element is refused with the element named.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet
from torch import nn
from torch_geometric.data import Data

from atomgraph.features import BesselRBF, PolynomialEnvelope
from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models.card import ModelCard
from atomgraph.models.edge_harmonics import harmonic_edges, harmonic_parity
from atomgraph.models.registry import register_model
from atomgraph.nn.edge_tensor_product import EdgeTensorProduct, uvu_paths
from atomgraph.nn.symmetric_contraction import SymmetricContraction
from atomgraph.nn.target_readout import SumOrMean, resolve_readouts
from atomgraph.structures.validate import unseen_elements


class ElementLinear(nn.Module):
    """A linear map between irreps with one weight matrix per element: e3nn's fully connected tensor
    product with one-hot element attributes (MACE's self-connection), same irreps only, with its
    initial scale (weights ~ N(0, 1 / (mul_in * num_elements))).

    ``x [N, irreps_in.dim] -> [N, irreps_out.dim]``; ``groups``: the atoms grouped by element
    (:func:`element_groups` of their species rows, computed once per forward pass).
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, num_elements: int):
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.paths: list[tuple[int, int]] = []  # (input block, output block) with the same irrep
        for i, (mul_in, ir_in) in enumerate(self.irreps_in):
            for o, (mul_out, ir_out) in enumerate(self.irreps_out):
                if ir_in == ir_out:
                    weight = torch.randn(num_elements, mul_in, mul_out) / (mul_in * num_elements) ** 0.5
                    self.register_parameter(f"weight_{len(self.paths)}", nn.Parameter(weight))
                    self.paths.append((i, o))

    def forward(self, x: torch.Tensor, groups: tuple[torch.Tensor, torch.Tensor, list[int]]) -> torch.Tensor:
        order, inverse, counts = groups
        x = x.index_select(0, order)  # atoms grouped by element
        in_slices, out_slices = self.irreps_in.slices(), self.irreps_out.slices()
        blocks: list[torch.Tensor | None] = [None] * len(self.irreps_out)
        for n, (i, o) in enumerate(self.paths):
            mul_in, ir = self.irreps_in[i]
            block = x[:, in_slices[i]].reshape(-1, mul_in, ir.dim)
            weight = getattr(self, f"weight_{n}")
            parts = [
                torch.einsum("nud,uv->nvd", part, weight[e])
                for e, part in enumerate(block.split(counts))
                if part.shape[0]
            ]
            out = torch.cat(parts).reshape(x.shape[0], -1)
            blocks[o] = out if blocks[o] is None else blocks[o] + out
        full = [
            b if b is not None else x.new_zeros(x.shape[0], s.stop - s.start)
            for b, s in zip(blocks, out_slices, strict=True)
        ]
        return torch.cat(full, dim=1).index_select(0, inverse)


def element_groups(species: torch.Tensor, num_elements: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """``(order, inverse, counts)``: a permutation grouping atoms by element, its inverse, group sizes."""
    order = torch.argsort(species, stable=True)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return order, inverse, torch.bincount(species, minlength=num_elements).tolist()


def per_channel(x: torch.Tensor, irreps: o3.Irreps) -> torch.Tensor:
    """e3nn layout of ``k x`` each irrep [N, k * D] -> [N, k, D] (every irrep with multiplicity k)."""
    return torch.cat(
        [
            x[:, s].reshape(x.shape[0], mul, ir.dim)
            for (mul, ir), s in zip(irreps, irreps.slices(), strict=True)
        ],
        dim=2,
    )


class MaceInteraction(nn.Module):
    """One MACE layer: h [N, irreps_in.dim] -> [N, irreps_out.dim] (``channels x`` the hidden irreps)."""

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_out: o3.Irreps,
        irreps_edge: o3.Irreps,
        channels: int,
        correlation: int,
        num_elements: int,
        num_basis: int,
        radial_hidden: Sequence[int],
        avg_num_neighbors: float,
        first: bool,
    ):
        super().__init__()
        self.first = first
        self.avg_num_neighbors = float(avg_num_neighbors)
        # the atomic basis: k channels of every harmonic degree, each with the harmonics' parity
        self.irreps_atomic = o3.Irreps([(channels, ir) for _, ir in irreps_edge])
        self.linear_up = o3.Linear(irreps_in, irreps_in)
        irreps_mid, instructions = uvu_paths(irreps_in, irreps_edge, self.irreps_atomic)
        self.tp = EdgeTensorProduct(irreps_in, irreps_edge, irreps_mid, instructions)
        self.radial = FullyConnectedNet(
            [num_basis, *radial_hidden, self.tp.weight_numel], torch.nn.functional.silu
        )
        self.linear = o3.Linear(irreps_mid.simplify(), self.irreps_atomic)
        if first:  # MACE's first block: element-dependent map of the atomic basis, no residual
            self.self_connection = ElementLinear(self.irreps_atomic, self.irreps_atomic, num_elements)
        else:
            self.self_connection = ElementLinear(irreps_in, irreps_out, num_elements)
        per_channel_out = o3.Irreps([(1, ir) for _, ir in irreps_out])
        self.product = SymmetricContraction(
            o3.Irreps([(1, ir) for _, ir in irreps_edge]),
            per_channel_out,
            correlation,
            channels,
            num_elements,
        )
        self.linear_out = o3.Linear(irreps_out, irreps_out)
        self.irreps_out = irreps_out

    def forward(
        self,
        h: torch.Tensor,
        edge_sh: torch.Tensor,
        edge_basis: torch.Tensor,
        source: torch.Tensor,
        target: torch.Tensor,
        species: torch.Tensor,
        groups: tuple[torch.Tensor, torch.Tensor, list[int]],
    ) -> torch.Tensor:
        """h [N, in]; edge_sh [E, sh]; edge_basis [E or E / 2, num_basis] (see EdgeTensorProduct);
        source/target [E]; species [N] and their ``groups`` (:func:`element_groups`)."""
        weights = self.radial(edge_basis)
        summed = self.tp(self.linear_up(h), source, edge_sh, weights, target)
        atomic = self.linear(summed) / self.avg_num_neighbors
        if self.first:
            atomic = self.self_connection(atomic, groups)
        out = self.linear_out(self.product(per_channel(atomic, self.irreps_atomic), species))
        return out if self.first else out + self.self_connection(h, groups)


CARD = ModelCard.interatomic("layers", head=("readouts",))


@register_model("mace", card=CARD)
class MacePotential(nn.Module):
    """MACE-style body-ordered E(3)-equivariant potential (energies, invariant properties).

    Args:
        graph: the GraphSpec of the input graphs; the radial basis and envelope span 0..graph.cutoff Å.
        reductions: the :attr:`~atomgraph.targets.TargetSpec.reduction` of each target; its length is
            the number of outputs.
        elements: atomic numbers the model has element-dependent weights for (training sets them to
            those of every row of the dataset; default: every element 1..max_z, ~2.5M parameters at 64
            channels).
        channels: k, the channels of every irrep (MACE: 64-256).
        hidden_l: largest degree of the hidden features between layers (MACE's "64x0e + 64x1o": 1).
        sh_lmax: largest degree of the edge harmonics and of the atomic basis (MACE's max_ell: 3).
        correlation: largest power of the atomic basis (MACE: 3; body order correlation + 1).
        layers: interaction layers (MACE: 2).
        num_basis: Bessel functions (MACE: 8); envelope_exponent: of the polynomial envelope (MACE: 5).
        radial_hidden: widths of the radial MLP's hidden layers (MACE: [64, 64, 64]).
        readout_hidden: width of the last layer's readout MLP (MACE: 16).
        avg_num_neighbors: neighbour sums are divided by this constant (training: the data's mean).
        max_z: the largest atomic number ``elements`` may hold.
        readout: per-target readout (:mod:`atomgraph.nn.target_readout`): "auto", "sum", "atom_mean".
    Input: a radius graph or batch (``z``, ``pos``, ``edge_index``, ``edge_shift``, ``cell``).
    Output: [B, T] in the task's normalised units; differentiable w.r.t. ``pos`` and ``cell``.
    """

    def __init__(
        self,
        graph: GraphSpec,
        reductions: Sequence[str] = ("sum",),
        elements: Sequence[int] | None = None,
        channels: int = 64,
        hidden_l: int = 1,
        sh_lmax: int = 3,
        correlation: int = 3,
        layers: int = 2,
        num_basis: int = 8,
        envelope_exponent: int = 5,
        radial_hidden: Sequence[int] = (64, 64, 64),
        readout_hidden: int = 16,
        avg_num_neighbors: float = 10.0,
        max_z: int = 100,
        readout: str | Sequence[str] = "auto",
    ):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        if not 0 <= hidden_l <= sh_lmax:
            raise ValueError(f"hidden_l must lie in 0..sh_lmax ({sh_lmax}), got {hidden_l}")
        if not avg_num_neighbors > 0:
            raise ValueError(f"avg_num_neighbors must be positive, got {avg_num_neighbors}")
        elements = sorted({int(z) for z in elements}) if elements else list(range(1, max_z + 1))
        if elements[0] < 1 or elements[-1] > max_z:
            raise ValueError(f"elements must be atomic numbers 1..{max_z}, got {elements}")
        self.elements = elements
        species_of = torch.full((max_z + 1,), -1, dtype=torch.long)
        species_of[torch.tensor(elements)] = torch.arange(len(elements))
        self.register_buffer("species_of", species_of, persistent=False)
        supported = ("sum", "atom_mean", "atom")
        readouts = resolve_readouts(readout, reductions, CARD.intensive_readout, supported=supported)
        self.reduce = SumOrMean(readouts)
        self.irreps_edge = o3.Irreps.spherical_harmonics(sh_lmax)
        self.spherical_harmonics = o3.SphericalHarmonics(
            self.irreps_edge, normalize=True, normalization="component"
        )
        self.register_buffer("sh_parity", harmonic_parity(self.irreps_edge), persistent=False)
        self.rbf = BesselRBF(graph.cutoff, num_basis, trainable=False)
        self.envelope = PolynomialEnvelope(graph.cutoff, envelope_exponent)
        self.embedding = nn.Embedding(len(elements), channels)
        scalars = o3.Irreps(f"{channels}x0e")
        hidden = o3.Irreps([(channels, ir) for _, ir in self.irreps_edge if ir.l <= hidden_l])
        outputs = len(reductions)
        irreps = scalars
        self.interactions, self.readouts = nn.ModuleList(), nn.ModuleList()
        for layer in range(layers):
            # as mace-torch: after the first layer, the last computes only the scalars it reads out (MLP)
            last = layers > 1 and layer == layers - 1
            irreps_out = scalars if last else hidden
            self.interactions.append(
                MaceInteraction(
                    irreps, irreps_out, self.irreps_edge, channels, correlation, len(elements),
                    num_basis, radial_hidden, avg_num_neighbors, first=layer == 0,
                )
            )  # fmt: skip
            self.readouts.append(
                nn.Sequential(
                    nn.Linear(channels, readout_hidden, bias=False),
                    nn.SiLU(),
                    nn.Linear(readout_hidden, outputs, bias=False),
                )
                if last
                else nn.Linear(channels, outputs, bias=False)  # no biases, as mace-torch's readouts
            )
            irreps = irreps_out

    def species(self, z: torch.Tensor) -> torch.Tensor:
        """Row of each atom's element [N]; an element without weights is an error naming it."""
        if z.numel() and int(z.max()) >= self.species_of.shape[0]:
            raise ValueError(
                f"mace model: atomic number {int(z.max())} above its max_z {self.species_of.shape[0] - 1}"
            )
        species = self.species_of[z]
        if bool((species < 0).any()):
            unknown = unseen_elements(z[species < 0].tolist(), self.elements) or ["Z=0"]
            raise ValueError(
                f"mace model has weights for the elements Z={self.elements} only, got {', '.join(unknown)}"
            )
        return species

    def atom_outputs(self, graph: Data) -> torch.Tensor:
        """Per-atom contributions [N, T]: the sum of every layer's readout of its scalars."""
        species = self.species(graph.z)
        groups = element_groups(species, len(self.elements))
        source, target, edge_sh, lengths = harmonic_edges(graph, self.spherical_harmonics, self.sh_parity)
        edge_basis = self.rbf(lengths) * self.envelope(lengths).unsqueeze(-1)
        h = self.embedding(species)
        out = 0
        for interaction, readout in zip(self.interactions, self.readouts, strict=True):
            h = interaction(h, edge_sh, edge_basis, source, target, species, groups)
            out = out + readout(h[:, : interaction.irreps_out[0].mul])  # the 0e block comes first
        return out

    def forward(self, graph: Data) -> torch.Tensor:
        batch, num_graphs = batch_vector(graph)
        return self.reduce(self.atom_outputs(graph), batch, num_graphs)
