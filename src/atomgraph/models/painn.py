"""PaiNN (Schütt, Unke & Gastegger 2021): equivariant message passing with scalar and vector features.

Every atom carries scalars s [N, F] and vectors v [N, 3, F] (v starts at zero). With r_ij the vector
from centre i to neighbour j (Å), n_ij = r_ij / |r_ij|, phi an MLP of s and W a linear map of a radial
basis times a cosine cutoff:

    message: (ds, dvv, dvs) = phi(s_j) * W(|r_ij|)
             s_i += sum_j ds,   v_i += sum_j (v_j * dvv + dvs * n_ij)
    update:  (a_vv, a_sv, a_ss) = MLP([s_i, |V v_i|])
             v_i += a_vv * U v_i,   s_i += a_ss + a_sv * <U v_i, V v_i>

Outputs:

* ``output="property"`` (default; alias "energy"): per-atom MLP of s, summed (``sum`` targets) or
  averaged (the others) per graph, like SchNet (:mod:`atomgraph.nn.target_readout`); [B, T] in
  normalised units.
* ``output="dipole"``: the molecular dipole moment magnitude |sum_i q_i r_i + sum_i mu_i| in Debye,
  [B, 1]. A gated equivariant block (two layers) maps (s, v) to latent charges q_i and atomic dipoles
  mu_i; the charges are shifted per molecule to sum to zero (neutral molecules), so the moment does not
  depend on the origin; positions are taken relative to the centroid anyway. Since the output is
  already physical (QM9's ``mu`` in Debye), the model sets ``physical_output = True``: the training
  module then skips the target de-normalisation. The dipole is defined for molecules, not periodic cells.
* ``output="polarizability"``: the isotropic polarisability tr(alpha) / 3, [B, 1], in the target's unit
  (QM9's ``alpha``: bohr^3), of the rank-2 tensor (Schütt et al. 2021, eq. 14)
  alpha = sum_i alpha0_i I_3 + nu_i (x) r_i + r_i (x) nu_i, with the scalars alpha0_i and vectors nu_i of the
  same gated equivariant head and r_i relative to the centroid: alpha(Q R + t) = Q alpha(R) Q^T
  (:meth:`PaiNN.polarizability_tensor`). Physical output, molecules only, like the dipole.

``direct_forces=True`` adds seed 000's direct force head F_i = w . v_i (a linear map of each atom's
vector features, [N, 3], in units of the energy's std per Å) beside the energy head: a potential
trained with it reads its forces from the head in the same pass instead of differentiating the energy
(faster; but the forces are not -dE/dx, so energy is not conserved in NVE -- ``atomgraph check`` shows
the drift and the force-vs-finite-difference gap -- and there is no stress).

The vectors may be narrower than the scalars (``vector_hidden``; the seed's 128 scalar / 64 vector
channels): the update then maps the scalar products <U v, V v> to the scalar width linearly.

Norms of vector features use sqrt(|x|^2 + eps) so that gradients stay finite where vectors vanish
(e.g. v = 0 before the first message).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Data

from atomgraph.features import BesselRBF, CosineCutoff
from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.geometry import edge_lengths, edge_pairs, edge_vectors
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models.card import ModelCard
from atomgraph.models.registry import register_model
from atomgraph.nn.activations import activation
from atomgraph.nn.edge_chunks import edge_chunk
from atomgraph.nn.mlp import MLP
from atomgraph.nn.scatter import scatter_mean, scatter_sum
from atomgraph.nn.target_readout import AtomwiseHead, resolve_readouts

#: 1 e·Å in Debye.
E_ANGSTROM_TO_DEBYE = 4.80320
OUTPUTS = ("property", "energy", "dipole", "polarizability")
VECTOR_OUTPUTS = ("dipole", "polarizability")
_EPS = 1e-8


def vector_norm(v: torch.Tensor, dim: int = -2, keepdim: bool = False) -> torch.Tensor:
    """sqrt(|v|^2 + eps) along the spatial axis: smooth, with a finite gradient at v = 0."""
    return torch.sqrt((v * v).sum(dim=dim, keepdim=keepdim) + _EPS)


class PaiNNMessage(nn.Module):
    """Message block: (s [N, F], v [N, 3, F_v]) -> increments of the same shapes, summed over neighbours."""

    def __init__(self, hidden: int, num_rbf: int, act: str, vector_hidden: int | None = None):
        super().__init__()
        self.sizes = [hidden, vector_hidden or hidden, vector_hidden or hidden]  # ds, dvv, dvs
        self.phi = MLP([hidden, hidden, sum(self.sizes)], act)
        self.filter = nn.Linear(num_rbf, sum(self.sizes))

    def forward(
        self,
        s: torch.Tensor,
        v: torch.Tensor | None,
        rbf: torch.Tensor,
        envelope: torch.Tensor,
        directions: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """rbf [P, num_rbf] and envelope [P] (cosine cutoff): one row per filter W(|r|); ``directions``: the
        (source [P], target [P], unit vector n [P, 3]) of the edges that use those rows -- on symmetric
        graphs the forward and the reverse edge of each pair (W(r_ij) = W(r_ji), n_ji = -n_ij), so each
        filter is computed once for both; otherwise one entry, every edge. ``v`` None: no vector
        features yet (before the first message; they would be zeros), so the v_j * dvv term is skipped.

        On CPUs the rows are taken a chunk at a time (:mod:`atomgraph.nn.edge_chunks`): the [chunk, 3,
        F] temporaries stay in cache instead of streaming [E, 3, F] arrays through memory (measured ~3x
        faster at 1,536 water atoms, ~1.5x at 192). The sums are the same up to the order of additions."""
        phi = self.phi(s)
        s_out = torch.zeros_like(s)
        v_out = s.new_zeros(s.shape[0], 3, self.sizes[1])
        chunk = edge_chunk(s.device, rbf.shape[0])
        chunked = [[t.split(chunk) for t in direction] for direction in directions]
        for index, (basis, cutoff) in enumerate(zip(rbf.split(chunk), envelope.split(chunk), strict=True)):
            w = self.filter(basis) * cutoff.unsqueeze(-1)
            for sources, targets, units in chunked:
                src, tgt = sources[index], targets[index]
                ds, dvv, dvs = torch.split(phi.index_select(0, src) * w, self.sizes, dim=-1)
                s_out.index_add_(0, tgt, ds)
                dv = dvs.unsqueeze(1) * units[index].unsqueeze(-1)
                if v is not None:
                    dv = torch.addcmul(dv, v.index_select(0, src), dvv.unsqueeze(1))
                v_out.index_add_(0, tgt, dv)
        return s_out, v_out


class PaiNNUpdate(nn.Module):
    """Update block: atom-wise mixing of s [N, F] and v [N, 3, F_v] -> increments of the same shapes.

    With F_v != F the scalar products <U v, V v> [N, F_v] reach the scalars through a linear map
    F_v -> F (the identity when the widths agree, as in the paper)."""

    def __init__(self, hidden: int, act: str, vector_hidden: int | None = None):
        super().__init__()
        width = vector_hidden or hidden
        self.width = width
        self.sizes = [width, width, hidden]  # a_vv, a_sv, a_ss
        self.mix = nn.Linear(width, 2 * width, bias=False)  # U and V, applied to the feature axis
        self.mlp = MLP([hidden + width, hidden, sum(self.sizes)], act)
        self.to_scalars = nn.Linear(width, hidden, bias=False) if width != hidden else None

    def forward(self, s: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        uv, vv = torch.split(self.mix(v), self.width, dim=-1)
        a = self.mlp(torch.cat([s, vector_norm(vv)], dim=-1))
        a_vv, a_sv, a_ss = torch.split(a, self.sizes, dim=-1)
        products = a_sv * (uv * vv).sum(dim=1)
        ds = a_ss + (products if self.to_scalars is None else self.to_scalars(products))
        dv = a_vv.unsqueeze(1) * uv
        return ds, dv


class GatedEquivariantBlock(nn.Module):
    """(s [N, F_in], v [N, 3, F_in_v]) -> (s' [N, F_out], v' [N, 3, F_out]) (Schütt et al. 2021, fig. 3).

    v is mixed into (W1 v, W2 v); s' and the gates come from an MLP of [s, |W1 v|]; v' = gate * W2 v.
    ``scalar_act`` (or None) is applied to s'. ``n_in_vector``: F_in_v (default F_in).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        n_hidden: int,
        act: str,
        scalar_act: str | None,
        n_in_vector: int | None = None,
    ):
        super().__init__()
        self.n_out = n_out
        self.mix = nn.Linear(n_in_vector or n_in, 2 * n_out, bias=False)
        self.mlp = MLP([n_in + n_out, n_hidden, 2 * n_out], act)
        self.scalar_act = activation(scalar_act) if scalar_act else nn.Identity()

    def forward(self, s: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v1, v2 = torch.split(self.mix(v), self.n_out, dim=-1)
        x = self.mlp(torch.cat([s, vector_norm(v1)], dim=-1))
        s_out, gate = torch.split(x, self.n_out, dim=-1)
        return self.scalar_act(s_out), gate.unsqueeze(1) * v2


def _centred(values: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Per-atom values [N, ...] minus their molecule's mean: positions relative to the centroid (the
    outputs do not depend on the origin), latent charges that sum to zero (a neutral molecule)."""
    return values - scatter_mean(values, batch, num_graphs).index_select(0, batch)


CARD = ModelCard.interatomic("interactions")


@register_model("painn", card=CARD)
class PaiNN(nn.Module):
    """PaiNN for graph properties, potentials, dipole moments and polarisabilities.

    Args:
        reductions: the :attr:`~atomgraph.targets.TargetSpec.reduction` of each target; its length is
            the number of outputs (must be 1 with ``output="dipole"`` or ``"polarizability"``).
        hidden: feature width F of s (and of v unless ``vector_hidden``; paper: 128).
        vector_hidden: feature width F_v of v (default: ``hidden``).
        interactions: message + update blocks (paper: 3).
        num_rbf: radial basis functions sin(n pi d / c) / d (paper: 20).
        graph: the GraphSpec of the input graphs; the radial basis and the envelope span 0..graph.cutoff Å.
        max_z: largest atomic number.
        act: activation (paper: silu).
        readout: per-target readout of the scalar head (:mod:`atomgraph.nn.target_readout`): "auto"
            (sum for ``sum`` targets, mean of the atomic contributions for the others), "sum", "atom_mean",
            "pooled", or a list with one per target.
        pool: node pool of the "pooled" readout (a :data:`~atomgraph.nn.readout.POOLS` kind).
        output: "property" (scalar head; alias "energy"), "dipole" (|dipole| in Debye, [B, 1]) or
            "polarizability" (tr(alpha) / 3 in the target's unit, [B, 1]).
        direct_forces: add the direct force head (with ``output="property"``): see the module docstring.
    Input: a radius graph or batch (``z``, ``pos``, ``edge_index``, ``edge_shift``, ``cell``).
    Output: [B, T]; differentiable w.r.t. ``pos`` and ``cell``.
    """

    physical_output = False

    def __init__(
        self,
        graph: GraphSpec,
        reductions: Sequence[str] = ("sum",),
        hidden: int = 128,
        interactions: int = 3,
        num_rbf: int = 20,
        max_z: int = 100,
        act: str = "silu",
        readout: str | Sequence[str] = "auto",
        pool: str = "mean",
        output: str = "property",
        vector_hidden: int | None = None,
        direct_forces: bool = False,
    ):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if output in VECTOR_OUTPUTS and len(reductions) != 1:
            raise ValueError(f"output={output!r} predicts one target, got {len(reductions)} reductions")
        if output in VECTOR_OUTPUTS and "node" in reductions:
            raise ValueError(f"output={output!r} predicts a molecule's tensor, not a node-level target")
        if direct_forces and output in VECTOR_OUTPUTS:
            raise ValueError(f"direct_forces go with the energy head (output='property'), not {output!r}")
        if vector_hidden is not None and vector_hidden < 1:
            raise ValueError(f"vector_hidden must be a positive width, got {vector_hidden}")
        self.output = "property" if output == "energy" else output
        self.physical_output = self.output in VECTOR_OUTPUTS
        self.hidden = hidden
        self.vector_hidden = vector_hidden or hidden
        self.cutoff = graph.cutoff
        self.embedding = nn.Embedding(max_z + 1, hidden)
        self.rbf = BesselRBF(self.cutoff, num_rbf)
        self.envelope = CosineCutoff(self.cutoff)
        self.messages = nn.ModuleList(
            PaiNNMessage(hidden, num_rbf, act, vector_hidden) for _ in range(interactions)
        )
        self.updates = nn.ModuleList(PaiNNUpdate(hidden, act, vector_hidden) for _ in range(interactions))
        if self.output in VECTOR_OUTPUTS:
            self.head = None
            half = max(hidden // 2, 1)
            self.vector_head = nn.ModuleList(
                [
                    GatedEquivariantBlock(hidden, half, hidden, act, act, n_in_vector=self.vector_hidden),
                    GatedEquivariantBlock(half, 1, half, act, None),
                ]
            )
        else:
            readouts = resolve_readouts(readout, reductions, CARD.intensive_readout)
            self.head = AtomwiseHead(hidden, readouts, hidden // 2, act=act, pool=pool)
            self.vector_head = None
        self.force_head = nn.Linear(self.vector_hidden, 1, bias=False) if direct_forces else None

    def atom_features(self, graph: Data) -> tuple[torch.Tensor, torch.Tensor]:
        """Scalar [N, F] and vector [N, 3, F_v] features after all interactions.

        On symmetric graphs (``edge_forward``, what :func:`radius_graph` builds) distances, radial basis,
        envelope and filters are computed once per pair and used for both of its edges."""
        source, target = graph.edge_index
        pairs = edge_pairs(graph)
        vectors = edge_vectors(graph, edges=None if pairs is None else pairs[0])
        lengths = edge_lengths(vectors)
        rbf, envelope = self.rbf(lengths), self.envelope(lengths)
        unit = vectors / lengths.unsqueeze(-1)
        if pairs is None:
            directions = [(source, target, unit)]
        else:
            (first, second), reverse = pairs, -unit
            directions = [(source[first], target[first], unit), (source[second], target[second], reverse)]
        s, v = self.embedding(graph.z), None
        for message, update in zip(self.messages, self.updates, strict=True):
            ds, dv = message(s, v, rbf, envelope, directions)
            s, v = s + ds, dv if v is None else v + dv
            ds, dv = update(s, v)
            s, v = s + ds, v + dv
        return s, s.new_zeros(s.shape[0], 3, self.vector_hidden) if v is None else v

    def _scalars_and_vectors(self, graph: Data) -> tuple[torch.Tensor, torch.Tensor]:
        if self.vector_head is None:
            raise RuntimeError(f"atomic charges and vectors need PaiNN(output in {VECTOR_OUTPUTS})")
        s, v = self.atom_features(graph)
        for block in self.vector_head:
            s, v = block(s, v)
        return s.squeeze(-1), v.squeeze(-1)

    def atomic_vectors(self, graph: Data) -> torch.Tensor:
        """Per-atom vectors [N, 3] from the gated equivariant head (the atomic dipoles mu_i in e·Å, or
        the nu_i of the polarisability)."""
        return self._scalars_and_vectors(graph)[1]

    def atomic_charges(self, graph: Data) -> torch.Tensor:
        """Latent atomic charges q_i [N] (e), shifted to sum to zero over each molecule."""
        batch, num_graphs = batch_vector(graph)
        return _centred(self._scalars_and_vectors(graph)[0], batch, num_graphs)

    def dipole_vector(self, graph: Data) -> torch.Tensor:
        """Dipole moment vectors [B, 3] in Debye: sum_i q_i (r_i - centroid) + sum_i mu_i, sum_i q_i = 0."""
        charges, dipoles = self._scalars_and_vectors(graph)
        batch, num_graphs = batch_vector(graph)
        charges = _centred(charges, batch, num_graphs)
        per_atom = charges.unsqueeze(-1) * _centred(graph.pos, batch, num_graphs) + dipoles
        return scatter_sum(per_atom, batch, num_graphs) * E_ANGSTROM_TO_DEBYE

    def polarizability_tensor(self, graph: Data) -> torch.Tensor:
        """Polarisability tensors [B, 3, 3] (the target's unit): sum_i alpha0_i I + nu_i (x) r_i
        + r_i (x) nu_i, r_i relative to the molecule's centroid; symmetric, rotating as Q alpha Q^T."""
        alpha0, nu = self._scalars_and_vectors(graph)
        batch, num_graphs = batch_vector(graph)
        outer = nu.unsqueeze(-1) * _centred(graph.pos, batch, num_graphs).unsqueeze(-2)
        eye = torch.eye(3, dtype=nu.dtype, device=nu.device)
        per_atom = alpha0.view(-1, 1, 1) * eye + outer + outer.transpose(-1, -2)
        return scatter_sum(per_atom, batch, num_graphs)

    @property
    def direct_forces(self) -> bool:
        """Whether forces come from the direct force head rather than -dE/dx."""
        return self.force_head is not None

    def energy_and_forces(self, graph: Data) -> tuple[torch.Tensor, torch.Tensor]:
        """The outputs [B, T] (normalised) and the direct forces [N, 3] (energy std per Å), one pass."""
        if self.force_head is None:
            raise RuntimeError("direct forces need PaiNN(direct_forces=True)")
        batch, num_graphs = batch_vector(graph)
        s, v = self.atom_features(graph)
        return self.head(s, batch, num_graphs), self.force_head(v).squeeze(-1)

    def forward(self, graph: Data) -> torch.Tensor:
        if self.output == "polarizability":
            return torch.diagonal(self.polarizability_tensor(graph), dim1=-2, dim2=-1).mean(-1, keepdim=True)
        if self.output == "dipole":
            moment = self.dipole_vector(graph)
            return torch.sqrt((moment * moment).sum(-1, keepdim=True) + 1e-12)
        batch, num_graphs = batch_vector(graph)
        s, _ = self.atom_features(graph)
        return self.head(s, batch, num_graphs)
