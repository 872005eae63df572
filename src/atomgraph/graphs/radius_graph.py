"""Radius graphs over periodic images: every pair within a cutoff, or the k nearest within it."""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from torch_geometric.data import Data

from atomgraph.graphs.fields import cell_tensor, pbc_tensor
from atomgraph.graphs.neighbors import neighbor_list


def radius_graph(
    atoms: Atoms,
    cutoff: float,
    max_neighbors: int | None = None,
    dtype: torch.dtype | None = None,
) -> Data:
    """Graph of all directed pairs closer than ``cutoff`` Å, over every periodic image.

    Correct for cells smaller than the cutoff (an atom then sees several images of the same
    neighbour, and its own images), for mixed periodicity (slabs, wires) and for molecules (no
    cell). ``max_neighbors`` keeps only the k nearest of each atom (ties broken by neighbour index);
    nothing is capped unless asked. Returns ``Data(z, pos, cell, pbc, edge_index, edge_shift,
    natoms)`` with the fields of :mod:`atomgraph.graphs.fields`; without ``max_neighbors`` the graph
    is symmetric and laid out as pairs then their reverses (``edge_forward`` marks the first half).

    The atoms need not be validated, but a ``ValueError`` (naming ``atoms.info["source"]`` when set)
    refuses what has no graph: an atomic number outside 1-118 (master nodes, z = 0, belong to bond
    graphs only), coincident atoms and a degenerate periodic cell (see :func:`neighbor_list`).
    """
    dtype = dtype or torch.get_default_dtype()
    where = f"{atoms.info['source']}: " if atoms.info.get("source") else ""
    numbers = np.asarray(atoms.numbers)
    bad = np.flatnonzero((numbers < 1) | (numbers > 118))
    if bad.size:
        raise ValueError(
            f"{where}atom {int(bad[0])} has atomic number {int(numbers[bad[0]])}, not an element (1-118); "
            f"{bad.size} such atom(s) in total"
        )
    try:
        if max_neighbors is None:
            # each pair once, then reversed in the same order: models may compute pair terms once
            pairs = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff, half=True)
            source, target = np.concatenate([pairs.j, pairs.i]), np.concatenate([pairs.i, pairs.j])
            shift = np.concatenate([pairs.shift, -pairs.shift])
            forward = torch.arange(len(source)) < len(pairs)
        else:
            pairs = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff, max_neighbors)
            source, target, shift, forward = pairs.j, pairs.i, pairs.shift, None
    except ValueError as error:
        if not where:
            raise
        raise ValueError(f"{where}{error}") from error
    # message flows from neighbour j (row 0) to centre i (row 1)
    edge_index = torch.from_numpy(np.stack([source, target]))
    graph = Data(
        z=torch.from_numpy(atoms.numbers.astype(np.int64)),
        pos=torch.tensor(atoms.positions, dtype=dtype),
        cell=cell_tensor(atoms.cell.array, dtype),
        pbc=pbc_tensor(atoms.pbc),
        edge_index=edge_index,
        edge_shift=torch.from_numpy(shift),
        natoms=torch.tensor([len(atoms)]),
    )
    if forward is not None:
        graph.edge_forward = forward
    return graph
