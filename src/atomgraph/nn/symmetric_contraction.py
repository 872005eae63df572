"""MACE's product basis: symmetric tensor powers of the atomic basis, contracted to equivariants.

The atomic basis A_i (per atom i and channel k, irreps ``0e + 1o + 2e + 3o`` ... of degree <= l_max,
D = sum (2l + 1) components) is raised to every power nu = 1..correlation and contracted to the output
irreps (L, p) with element-dependent weights (Batatia et al. 2022, eq. 10; the atomic cluster
expansion of seed 002):

    B_i[k, LM] = sum_nu sum_eta W[z_i, nu, eta, k]
                 sum_{i_1..i_nu} U^{LM}_{nu,eta}[i_1..i_nu] A_i[k, i_1] ... A_i[k, i_nu]

where the U_{nu, eta} are a basis of the equivariant maps from the *symmetric* nu-th power of the
D-dimensional space to L. Their number eta(nu, L) -- the weights per element and channel -- is the
dimension of that space.

How the basis is built (once, at construction): every left-coupled chain of Clebsch-Gordan products
((A_{l1} x A_{l2})_{l12} x A_{l3})_{l123} ... -> L over ordered multisets l1 <= l2 <= ... and every
allowed intermediate degree is an equivariant nu-linear map; their symmetrisations span the symmetric
equivariant maps, and a rank-revealing pass (float64, over the dense symmetrised tensors) keeps a
linearly independent subset of eta(nu, L) chains. Evaluating a kept chain on A x A x ... x A equals
evaluating its symmetrisation, so the forward pass runs the chains themselves: nested channel-wise
Clebsch-Gordan products, sharing every intermediate (prefix) among the chains that use it. No dense
U tensor of D^nu entries per output component is ever formed (mace-torch contracts such tensors, with
the weights folded in, for every atom); the function class is the same.

Couplings use e3nn's real Wigner 3j symbols times sqrt(2 l_out + 1) (unit component variance for
independent unit-variance inputs; powers of one A are not independent, so only roughly so here).
"""

from __future__ import annotations

import itertools

import torch
from e3nn import o3
from torch import nn

Chain = tuple[tuple[int, int], ...]  # ((input irrep index, coupled degree l), ...) from left to right


def _coupled_chains(irreps: list[o3.Irrep], nu: int, out: o3.Irrep) -> list[Chain]:
    """Left-coupled chains of ``nu`` inputs (indices non-decreasing) ending in ``out``."""
    chains = []
    for picks in itertools.combinations_with_replacement(range(len(irreps)), nu):
        partial = [(((picks[0], irreps[picks[0]].l),), irreps[picks[0]])]
        for index in picks[1:]:
            grown = []
            for chain, ir in partial:
                for ir_next in ir * irreps[index]:
                    grown.append(((*chain, (index, ir_next.l)), ir_next))
            partial = grown
        chains.extend(chain for chain, ir in partial if ir == out)
    return chains


def _cg(l1: int, l2: int, l3: int) -> torch.Tensor:
    """Coupling [2 l1 + 1, 2 l2 + 1, 2 l3 + 1] (float64), "component" normalised."""
    return o3.wigner_3j(l1, l2, l3, dtype=torch.float64) * (2 * l3 + 1) ** 0.5


def _chain_tensor(chain: Chain, irreps: list[o3.Irrep], dim: int, offsets: list[int]) -> torch.Tensor:
    """The dense map of a chain: [2L + 1, D, ..., D] (nu input indices), float64."""
    index, degree = chain[0]
    d = 2 * degree + 1
    tensor = torch.zeros(d, dim, dtype=torch.float64)  # [m, i1]
    tensor[:, offsets[index] : offsets[index] + d] = torch.eye(d, dtype=torch.float64)
    for index, l_out in chain[1:]:
        l_in, l_next = (tensor.shape[0] - 1) // 2, irreps[index].l
        cg = _cg(l_in, l_next, l_out)  # [m, m', M]
        block = torch.zeros(2 * l_next + 1, dim, dtype=torch.float64)
        block[:, offsets[index] : offsets[index] + 2 * l_next + 1] = torch.eye(
            2 * l_next + 1, dtype=torch.float64
        )
        # [m, ...] x [m', i] -> [M, ..., i]
        tensor = torch.einsum("abM,a...,bi->M...i", cg, tensor, block)
    return tensor


def _symmetrised(tensor: torch.Tensor) -> torch.Tensor:
    nu = tensor.dim() - 1
    perms = list(itertools.permutations(range(1, nu + 1)))
    return sum(tensor.permute(0, *p) for p in perms) / len(perms)


def independent_chains(irreps: list[o3.Irrep], nu: int, out: o3.Irrep, tol: float = 1e-8) -> list[Chain]:
    """A basis of the symmetric equivariant maps (A^nu)_sym -> ``out``, as coupled chains."""
    dim = sum(ir.dim for ir in irreps)
    offsets = [sum(ir.dim for ir in irreps[:k]) for k in range(len(irreps))]
    kept, basis = [], []
    for chain in _coupled_chains(irreps, nu, out):
        vector = _symmetrised(_chain_tensor(chain, irreps, dim, offsets)).reshape(-1)
        residual = vector.clone()
        for b in basis:  # Gram-Schmidt against the kept (orthonormal) vectors, twice for stability
            residual -= (b @ residual) * b
        for b in basis:
            residual -= (b @ residual) * b
        norm = residual.norm()
        if norm > tol * max(vector.norm(), 1.0):
            basis.append(residual / norm)
            kept.append(chain)
    return kept


class SymmetricContraction(nn.Module):
    """``A [N, channels, D] -> [N, irreps_out.dim]`` (e3nn layout of ``channels x`` each output irrep).

    Args:
        irreps_in: the per-channel irreps of A, multiplicity 1 each (e.g. "0e + 1o + 2e + 3o").
        irreps_out: the output irreps per channel, multiplicity 1 each (e.g. "0e + 1o").
        correlation: the largest power nu (MACE's correlation order; body order = correlation + 1).
        channels: k.
        num_elements: rows of the element-dependent weights (``species`` indexes them).
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_out: o3.Irreps,
        correlation: int,
        channels: int,
        num_elements: int,
    ):
        super().__init__()
        if correlation < 1:
            raise ValueError(f"correlation must be at least 1, got {correlation}")
        irreps_in, irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        if any(mul != 1 for mul, _ in irreps_in) or any(mul != 1 for mul, _ in irreps_out):
            raise ValueError(f"per-channel irreps need multiplicity 1: {irreps_in} -> {irreps_out}")
        self.irreps_in, self.irreps_out, self.channels = irreps_in, irreps_out, channels
        inputs = [ir for _, ir in irreps_in]
        self.in_slices = [(s.start, s.stop) for s in irreps_in.slices()]
        self.inputs: list[Chain] = [((index, ir.l),) for index, ir in enumerate(inputs)]  # length-1 chains
        # per output irrep: its chains (all powers), and the element-dependent weights of each
        self.outputs: list[list[Chain]] = []
        for n, (_, ir) in enumerate(irreps_out):
            chains = [c for nu in range(1, correlation + 1) for c in independent_chains(inputs, nu, ir)]
            if not chains:
                raise ValueError(f"no product of {irreps_in} up to power {correlation} reaches {ir}")
            self.outputs.append(chains)
            weight = torch.randn(num_elements, len(chains), channels) / len(chains) ** 0.5
            self.register_parameter(f"weight_{n}", nn.Parameter(weight))
        # every prefix any chain needs, in an order where parents come first; children of the same
        # (parent, next input) are computed by one outer product and one stacked coupling matrix
        prefixes = sorted(
            {c[:k] for chains in self.outputs for c in chains for k in range(2, len(c) + 1)},
            key=lambda p: (len(p), p),
        )
        groups: dict[tuple[Chain, int], list[Chain]] = {}
        for prefix in prefixes:
            groups.setdefault((prefix[:-1], prefix[-1][0]), []).append(prefix)
        self.steps: list[tuple[Chain, int, list[Chain]]] = []
        for n, ((parent, index), children) in enumerate(groups.items()):
            l_parent, l_next = parent[-1][1], inputs[index].l
            couplings = [_cg(l_parent, l_next, child[-1][1]) for child in children]
            stacked = torch.cat(couplings, dim=2).reshape((2 * l_parent + 1) * (2 * l_next + 1), -1)
            self.register_buffer(f"coupling_{n}", stacked.to(torch.get_default_dtype()), persistent=False)
            self.steps.append((parent, index, children))

    def forward(self, features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """features [N, channels, D] (A per channel); species [N] row indices into the weights."""
        n, k, _ = features.shape
        flat = features.reshape(n * k, -1)
        values: dict[Chain, torch.Tensor] = {}
        for index, (start, stop) in enumerate(self.in_slices):
            values[self.inputs[index]] = flat[:, start:stop]
        for step, (parent, index, children) in enumerate(self.steps):
            x, y = values[parent], values[self.inputs[index]]
            outer = (x.unsqueeze(2) * y.unsqueeze(1)).reshape(n * k, -1)
            coupled = outer @ getattr(self, f"coupling_{step}")
            start = 0
            for child in children:
                width = 2 * child[-1][1] + 1
                values[child] = coupled[:, start : start + width]
                start += width
        blocks = []
        for m, chains in enumerate(self.outputs):
            stacked = torch.stack([values[c] for c in chains], dim=1).view(n, k, len(chains), -1)
            weight = getattr(self, f"weight_{m}").index_select(0, species)  # [N, P, k]
            out = torch.einsum("nkpm,npk->nkm", stacked, weight)
            blocks.append(out.reshape(n, -1))
        return torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0]
