"""Geometry in torch: edge vectors, distances and strain, differentiable w.r.t. positions and cell.

Computing edge vectors inside the forward pass (instead of storing them) is what lets forces
(-dE/dpos) and stress (dE/dstrain / V) come from autograd for every model and every cell.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch_geometric.data import Data

#: whether a compiled forward adds the periodic image term (:func:`periodic_images` sets it per call)
_COMPILED_IMAGES = True


@contextlib.contextmanager
def periodic_images(present: bool) -> Iterator[None]:
    """Within the block, a compiled forward adds the image term ``edge_shift @ cell`` of
    :func:`edge_vectors` only if ``present`` (whether any graph of the batch is periodic). Eager code
    decides from ``graph.pbc`` itself, but a compiled one cannot branch on data without splitting its
    graph: the caller of the compiled code says it here, and tracing reads it, so molecules and cells each
    get their own compiled code (:class:`atomgraph.training.compile.CompiledForward` does this). The
    setting is the process's, not a thread's: compiled forwards running in two threads at once would
    share it."""
    global _COMPILED_IMAGES
    previous, _COMPILED_IMAGES = _COMPILED_IMAGES, bool(present)
    try:
        yield
    finally:
        _COMPILED_IMAGES = previous


def has_images(graph: Data) -> bool:
    """Whether the edge vectors of ``graph`` need the image term: :func:`any_periodic` (eager), or what
    :func:`periodic_images` says (compiled; True outside it)."""
    if torch.compiler.is_compiling():
        return _COMPILED_IMAGES
    return any_periodic(graph)


def any_periodic(graph: Data, sync: bool = True) -> bool:
    """Whether any graph of a batch is periodic (its ``pbc``; True without one). ``sync=False``: on a
    GPU, True without looking (reading ``pbc`` there would wait for the device)."""
    pbc = getattr(graph, "pbc", None)
    if pbc is None or (not sync and pbc.device.type != "cpu"):
        return True
    return bool(pbc.any())


def edge_graph_index(graph: Data) -> torch.Tensor:
    """For each edge, the index of the graph (in a batch) it belongs to: [E] int64."""
    batch = getattr(graph, "batch", None)
    target = graph.edge_index[1]
    if batch is None:
        return torch.zeros_like(target)
    return batch[target]


def edge_vectors(
    graph: Data,
    pos: torch.Tensor | None = None,
    cell: torch.Tensor | None = None,
    edges: torch.Tensor | None = None,
) -> torch.Tensor:
    """Vectors from each centre atom i to its neighbour j: ``pos[j] - pos[i] + edge_shift @ cell``.

    graph: a graph or batch with ``edge_index`` [2, E] (row 0 = j, row 1 = i), ``pos`` [N, 3] Å and,
    when periodic, ``edge_shift`` [E, 3] and ``cell`` [B, 3, 3]. ``pos``/``cell`` override the graph's
    (e.g. strained copies); ``edges`` [E'] selects a subset of edges. Returns [E, 3] (or [E', 3]) in Å,
    differentiable w.r.t. positions and cell.
    """
    pos = graph.pos if pos is None else pos
    edge_index = graph.edge_index if edges is None else graph.edge_index.index_select(1, edges)
    j, i = edge_index
    vectors = pos.index_select(0, j) - pos.index_select(0, i)
    shift = getattr(graph, "edge_shift", None)
    if shift is not None and shift.numel() > 0 and has_images(graph):  # zero unless periodic
        cell = graph.cell if cell is None else cell
        graph_of_edge = edge_graph_index(graph)
        if edges is not None:
            shift, graph_of_edge = shift.index_select(0, edges), graph_of_edge.index_select(0, edges)
        per_edge_cell = cell.view(-1, 3, 3).index_select(0, graph_of_edge)
        vectors = vectors + torch.einsum("ek,ekl->el", shift.to(vectors.dtype), per_edge_cell)
    return vectors


def edge_pairs(graph: Data) -> tuple[torch.Tensor, torch.Tensor] | None:
    """For symmetric graphs (``edge_forward`` present): the indices [P] of the forward edges and [P] of
    their reverse edges, in matching order, so a pair term (a filter of the distance) is computed once
    and used for both directions. None for graphs without that layout.

    Raises ValueError (on the CPU, outside compiled code) when ``edge_forward`` does not mark half the
    edges; elsewhere such a mask gives wrong indices or an index error."""
    forward = getattr(graph, "edge_forward", None)
    if forward is None:
        return None
    # every pair has one forward and one reverse edge, so P = E / 2 whatever the data: the indices come
    # from a scatter of static size (``nonzero``'s data-dependent size split compiled graphs in two)
    edges = forward.shape[0]
    pairs = edges // 2
    if not torch.compiler.is_compiling() and forward.device.type == "cpu":
        marked = int(forward.sum())
        if 2 * marked != edges:
            raise ValueError(f"edge_forward marks {marked} of {edges} edges, not half of them")
    forward_before = torch.cumsum(forward, 0)  # forward edges up to and including each edge
    position = torch.arange(edges, device=forward.device)
    slot = torch.where(forward, forward_before - 1, pairs + position - forward_before)
    order = torch.empty_like(position).scatter_(0, slot, position)
    return order[:pairs], order[pairs:]


def edge_lengths(vectors: torch.Tensor) -> torch.Tensor:
    """Euclidean lengths [E] (Å) of edge vectors [E, 3]."""
    return torch.linalg.vector_norm(vectors, dim=-1)


def apply_strain(graph: Data, strain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions and cells deformed by a small symmetric strain, for stress by autograd.

    strain: [B, 3, 3] (one per graph; zeros with ``requires_grad`` in practice). Returns
    ``pos @ (1 + strain)`` [N, 3] and ``cell @ (1 + strain)`` [B, 3, 3]. The stress is then
    ``dE/dstrain / volume`` (eV/Å^3).
    """
    symmetric = 0.5 * (strain + strain.transpose(-1, -2))
    batch = getattr(graph, "batch", None)
    per_atom = symmetric[batch] if batch is not None else symmetric.expand(graph.pos.shape[0], 3, 3)
    pos = graph.pos + torch.einsum("nk,nkl->nl", graph.pos, per_atom)
    cell = graph.cell.view(-1, 3, 3)
    cell = cell + cell @ symmetric
    return pos, cell


def cell_volume(cell: torch.Tensor) -> torch.Tensor:
    """Absolute volume |det(cell)| (Å^3) of each cell in [B, 3, 3]: [B]."""
    return torch.linalg.det(cell.view(-1, 3, 3)).abs()


def random_rotation(
    generator: torch.Generator | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """A uniformly distributed rotation matrix [3, 3] (QR of a Gaussian matrix, det = +1)."""
    matrix = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(matrix)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype or torch.get_default_dtype())
