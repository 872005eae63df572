"""Triplets k -> j -> i of a directed graph and their angles (DimeNet/DimeNet++), without torch_sparse."""

from __future__ import annotations

import torch


def triplets(
    edge_index: torch.Tensor, num_nodes: int, edge_shift: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs of edges (k -> j, j -> i) that meet at atom j, excluding the walk straight back (k = i).

    edge_index: [2, E], row 0 = source, row 1 = target. Returns ``(idx_kj, idx_ji)``, each [T] int64
    indices into the edges. With periodic ``edge_shift`` [E, 3] the walk back excluded is the one to
    the same image of i, so a triplet through another image of i (small cells) is kept.
    """
    source, target = edge_index
    # edges grouped by their target: the edges k -> j arriving at each atom j
    order = torch.argsort(target, stable=True)
    counts = torch.bincount(target, minlength=num_nodes)
    starts = torch.cumsum(counts, 0) - counts
    # for each edge j -> i, all edges arriving at its source j
    per_edge = counts[source]
    idx_ji = torch.repeat_interleave(torch.arange(edge_index.shape[1], device=source.device), per_edge)
    offsets = torch.arange(int(per_edge.sum()), device=source.device) - torch.repeat_interleave(
        torch.cumsum(per_edge, 0) - per_edge, per_edge
    )
    idx_kj = order[starts[source[idx_ji]] + offsets]
    back = source[idx_kj] == target[idx_ji]
    if edge_shift is not None:
        # k -> j -> i returns to the same atom only when the two image offsets cancel
        back &= (edge_shift[idx_kj] + edge_shift[idx_ji] == 0).all(dim=-1)
    keep = ~back
    return idx_kj[keep], idx_ji[keep]


def triplet_angles(vectors: torch.Tensor, idx_kj: torch.Tensor, idx_ji: torch.Tensor) -> torch.Tensor:
    """Angle (radians, [T]) at atom j between the bonds j->i and j->k.

    vectors: [E, 3] edge vectors (centre -> neighbour, as :func:`edge_vectors` returns). For edge
    j -> i the vector is i->j, so j->i is its negative; for k -> j the vector j->k is as stored.
    atan2 of the cross and dot products keeps the gradient finite at 0 and pi.
    """
    to_i = -vectors[idx_ji]
    to_k = vectors[idx_kj]
    cross = torch.linalg.vector_norm(torch.cross(to_i, to_k, dim=-1), dim=-1)
    dot = (to_i * to_k).sum(-1)
    return torch.atan2(cross, dot)
