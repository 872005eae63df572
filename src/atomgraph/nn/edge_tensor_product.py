"""The tensor product of node features with edge spherical harmonics, fused per input irrep.

NequIP-style convolutions multiply the features x_j of each edge's source atom with the spherical
harmonics Y(r_ij) of the edge, path by path ("uvu": every channel u of an input irrep l1 times the
harmonic of degree l2, into degree l3, scaled by a per-edge, per-channel weight w_ij):

    m_ij[u, l3-path] = alpha_path * w_ij[path, u] * sum_{m1, m2} C(l1 m1, l2 m2 | l3 m3) x_j[u, m1] Y_m2(r_ij)

e3nn's ``TensorProduct`` computes every path with its own einsum over the outer product x ⊗ Y, which
on CPUs is dominated by many small elementwise kernels. Here the Clebsch-Gordan coefficients of all
paths that start from one input irrep are folded with the harmonics first (one small matrix product
per edge, ``A[e, m1, K] = Y[e] @ B``), so that each input irrep needs a single batched product
``x[e, u, m1] @ A[e, m1, K]`` and a single multiplication by its weights. Same numbers as e3nn's
``TensorProduct`` with the same instructions, weight layout and normalisation (its path weights are
read from an e3nn instance built at construction; tested to float64 precision).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from e3nn import o3
from torch import nn

from atomgraph.nn.edge_chunks import edge_chunk


def uvu_paths(
    irreps_in: o3.Irreps, irreps_edge: o3.Irreps, irreps_keep: o3.Irreps
) -> tuple[o3.Irreps, list[tuple[int, int, int]]]:
    """Every ``uvu`` path from ``irreps_in x irreps_edge`` to an irrep of ``irreps_keep``, one output
    entry per path (multiplicity of its input), sorted: ``(irreps_out, [(i_in, i_edge, i_out), ...])``
    for :class:`EdgeTensorProduct` (followed by a linear map that mixes the paths)."""
    keep = {ir for _, ir in irreps_keep}
    mid, instructions = [], []
    for i, (mul, ir_in) in enumerate(irreps_in):
        for j, (_, ir_edge) in enumerate(irreps_edge):
            for ir_out in ir_in * ir_edge:
                if ir_out in keep:
                    instructions.append((i, j, len(mid)))
                    mid.append((mul, ir_out))
    irreps_out, permutation, _ = o3.Irreps(mid).sort()
    return irreps_out, [(i, j, permutation[k]) for i, j, k in instructions]


class EdgeTensorProduct(nn.Module):
    """``uvu`` tensor product of each edge's source features ``x_j [irreps_in.dim]`` with its
    attributes ``Y [irreps_edge.dim]``, summed over each node's incoming edges: ``[N, irreps_out.dim]``
    with per-edge weights ``[E, weight_numel]``.

    Args:
        irreps_in: node feature irreps.
        irreps_edge: edge attribute irreps, multiplicity 1 each (spherical harmonics).
        irreps_out: one entry per instruction's output (as e3nn's ``irreps_out``), multiplicity equal to
            that of the instruction's input irrep.
        instructions: ``(i_in, i_edge, i_out)`` triples; every path is ``uvu`` with per-edge weights,
            laid out in the order given (e3nn's layout).
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_edge: o3.Irreps,
        irreps_out: o3.Irreps,
        instructions: Sequence[tuple[int, int, int]],
    ):
        super().__init__()
        self.irreps_in, self.irreps_edge, self.irreps_out = irreps_in, irreps_edge, irreps_out
        if any(mul != 1 for mul, _ in irreps_edge):
            raise ValueError(f"edge irreps need multiplicity 1 each, got {irreps_edge}")
        reference = o3.TensorProduct(
            irreps_in,
            irreps_edge,
            irreps_out,
            [(i, j, k, "uvu", True) for i, j, k in instructions],
            shared_weights=False,
            internal_weights=False,
        )
        self.weight_numel = reference.weight_numel
        offsets, offset = [], 0
        for ins in reference.instructions:
            offsets.append(offset)
            offset += ins.path_shape[0] * ins.path_shape[1]
        dtype = torch.get_default_dtype()
        edge_slices = irreps_edge.slices()
        self.groups: list[tuple[int, int, int, int]] = []  # input irrep index, mul, 2 l1 + 1, K
        self.input_sizes = [mul * ir.dim for mul, ir in irreps_in]  # features.split(...) per input irrep
        column_of_output: dict[int, tuple[int, int, int]] = {}
        for i, (mul, ir_in) in enumerate(irreps_in):
            paths = [(n, ins) for n, ins in enumerate(reference.instructions) if ins.i_in1 == i]
            if not paths:
                continue
            group = len(self.groups)
            dim1 = ir_in.dim
            widths = [irreps_out[ins.i_out].ir.dim for _, ins in paths]
            total = sum(widths)
            fold = torch.zeros(irreps_edge.dim, dim1, total, dtype=torch.float64)
            weight_index = torch.zeros(mul, total, dtype=torch.long)
            start = 0
            for (n, ins), width in zip(paths, widths, strict=True):
                if irreps_out[ins.i_out].mul != mul:
                    raise ValueError(f"uvu path {n}: output multiplicity differs from the input's ({mul})")
                l2, l3 = irreps_edge[ins.i_in2].ir.l, irreps_out[ins.i_out].ir.l
                w3j = o3.wigner_3j(ir_in.l, l2, l3, dtype=torch.float64)  # [m1, m2, m3]
                rows = edge_slices[ins.i_in2]
                fold[rows, :, start : start + width] = ins.path_weight * w3j.permute(1, 0, 2)
                weight_index[:, start : start + width] = (offsets[n] + torch.arange(mul)).unsqueeze(1)
                if ins.i_out in column_of_output:  # e3nn would sum such paths; this layout cannot
                    raise ValueError(f"output irrep {ins.i_out} has several instructions: one per output")
                column_of_output[ins.i_out] = (group, start, start + width)
                start += width
            fold = fold.reshape(irreps_edge.dim, dim1 * total).to(dtype)
            self.register_buffer(f"fold_{group}", fold, persistent=False)  # constants: not in checkpoints
            self.register_buffer(f"weight_index_{group}", weight_index.reshape(-1), persistent=False)
            self.groups.append((i, mul, dim1, total))
        if sorted(column_of_output) != list(range(len(irreps_out))):
            raise ValueError("every output irrep needs exactly one instruction")
        # the sums come per group as [u, K] (channel-major); irreps layout: per output irrep [u, m3]
        sizes = [mul * width for _, mul, _, width in self.groups]
        starts = [sum(sizes[:g]) for g in range(len(self.groups))]
        order = []
        for group, a, b in (column_of_output[k] for k in range(len(irreps_out))):
            _, mul, _, total = self.groups[group]
            columns = torch.arange(mul).unsqueeze(1) * total + torch.arange(a, b).unsqueeze(0)
            order.append(starts[group] + columns.reshape(-1))
        self.register_buffer("irreps_order", torch.cat(order), persistent=False)

    def forward(
        self,
        features: torch.Tensor,
        source: torch.Tensor,
        edge_attr: torch.Tensor,
        weights: torch.Tensor,
        target: torch.Tensor,
    ) -> torch.Tensor:
        """Sum over each node's incoming edges of the tensor product: [N, irreps_out.dim].

        features [N, irreps_in.dim] (node features; edge e reads those of ``source[e]``), edge_attr
        [E, irreps_edge.dim], target [E] (the receiving node of each edge), weights [E, weight_numel]
        -- or [E / 2, weight_numel] when the edges are pairs followed by their reverses in the same
        order (both directions of a pair share their radial weights; they are then never copied).

        On CPUs the edges are taken :data:`~atomgraph.nn.edge_chunks.EDGE_CHUNK` at a time (pairs: that
        many pairs, both directions) and each chunk is added to the sums before the next is built, so
        the [chunk, u * K] products stay in cache instead of streaming [E, u * K] arrays through memory.
        """
        edges, num_nodes = source.shape[0], features.shape[0]
        shared = weights.shape[0] != edges
        if shared and 2 * weights.shape[0] != edges:
            raise ValueError(f"weights for {weights.shape[0]} edges or pairs, but {edges} edges")
        chunk = edge_chunk(features.device, edges)
        if shared:  # chunk k: pairs [k C, (k + 1) C) in both directions, with their weights once
            halves = [t.split(edges // 2) for t in (source, target, edge_attr)]  # (forward, reverse) each
            pieces = [[half.split(chunk) for half in both] for both in halves]  # [tensor][direction][k]
            spans = [
                ([tuple(pieces[t][d][k] for t in range(3)) for d in range(2)], w)
                for k, w in enumerate(weights.split(chunk))
            ]
        else:
            pieces = zip(*(t.split(chunk) for t in (source, target, edge_attr)), strict=True)
            spans = [([piece], w) for piece, w in zip(pieces, weights.split(chunk), strict=True)]
        inputs = features.split(self.input_sizes, dim=1)
        sums = [features.new_zeros(num_nodes, mul * width) for _, mul, _, width in self.groups]
        for directions, w in spans:
            path_weights = [
                w.index_select(1, getattr(self, f"weight_index_{g}")) for g in range(len(self.groups))
            ]
            for src, tgt, attr in directions:
                for group, (index, mul, dim1, width) in enumerate(self.groups):
                    folded = (attr @ getattr(self, f"fold_{group}")).view(-1, dim1, width)  # [c, m1, K]
                    x = inputs[index].index_select(0, src).view(-1, mul, dim1)
                    product = x * folded if dim1 == 1 else torch.bmm(x, folded)  # [c, u, K]
                    sums[group].index_add_(0, tgt, product.view(-1, mul * width) * path_weights[group])
        grouped = torch.cat(sums, dim=1) if len(sums) > 1 else sums[0]
        return grouped.index_select(1, self.irreps_order)  # [N, u*K per group] -> irreps layout
