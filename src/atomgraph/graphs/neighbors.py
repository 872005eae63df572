"""Neighbour lists over periodic images, the one place that talks to the backend (vesin).

vesin handles cells smaller than the cutoff (several images of the same pair), mixed periodicity
and non-periodic molecules, in O(N) with a cell list.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import vesin

#: Two atoms (or an atom and a periodic image) closer than this (Å) coincide: no graph is defined.
COINCIDENT = 1e-8
#: Smallest volume (Å^3), area (Å^2) or length (Å) the periodic lattice vectors may span.
MIN_CELL_MEASURE = 1e-6


@dataclass(frozen=True)
class NeighborList:
    """Directed pairs within a cutoff: centre ``i``, neighbour ``j`` at image ``shift``.

    Arrays have length P (the number of directed pairs); ``shift`` is [P, 3] int64 and the pair vector is
    ``positions[j] - positions[i] + shift @ cell`` with length ``distance`` (Å).
    """

    i: np.ndarray
    j: np.ndarray
    shift: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return len(self.i)

    def select(self, keep: np.ndarray) -> NeighborList:
        return NeighborList(self.i[keep], self.j[keep], self.shift[keep], self.distance[keep])


def neighbor_list(
    positions: np.ndarray,
    cell: np.ndarray | None,
    pbc: np.ndarray | bool,
    cutoff: float,
    max_neighbors: int | None = None,
    half: bool = False,
) -> NeighborList:
    """Every directed pair (i, j, shift) with distance < ``cutoff`` Å over all periodic images.

    positions: [N, 3] Å; cell: [3, 3] lattice vectors as rows (ignored along non-periodic axes);
    pbc: periodicity per lattice vector. Self pairs (i, i, 0) are excluded; an atom's own periodic
    images are included. Pairs come sorted by (i, distance, j) (half lists: in vesin's order).

    ``max_neighbors`` keeps only the k nearest neighbours of each centre (the CGCNN "12 within 8 Å"
    setting); it is never applied unless asked for. ``half`` returns each unordered pair once (as
    (i, j, S) or (j, i, -S)); it cannot be combined with ``max_neighbors`` (a k-nearest graph is not
    symmetric).

    Raises ``ValueError`` for coincident atoms (any pair, periodic images included, closer than
    ``COINCIDENT`` Å; the message names the atoms) and for periodic lattice vectors that span no volume
    (area, length), which the backend cannot handle.
    """
    if half and max_neighbors is not None:
        raise ValueError("half=True lists each pair once; it cannot be combined with max_neighbors")
    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    if max_neighbors is not None and max_neighbors < 1:
        raise ValueError(f"max_neighbors must be at least 1 or None, got {max_neighbors}")
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    periodic = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    if cell is None or not periodic.any():
        box = np.zeros((3, 3))
    else:
        box = np.array(cell, dtype=np.float64).reshape(3, 3)
        _check_periodic_cell(box, periodic)
    if len(positions) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return NeighborList(empty, empty, np.zeros((0, 3), dtype=np.int64), np.zeros(0))
    i, j, shift, distance = _calculator(float(cutoff), not half).compute(
        positions, box, periodic.tolist(), "ijSd"
    )
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    _check_coincident(i, j, shift, distance)
    if half:  # vesin's own (deterministic) order: the graph builder mirrors it
        return NeighborList(i, j, shift.astype(np.int64), distance)
    order = np.lexsort((j, distance, i))
    pairs = NeighborList(i[order], j[order], shift[order].astype(np.int64), distance[order])
    if max_neighbors is not None:
        pairs = pairs.select(_rank_within_centre(pairs.i) < max_neighbors)
    return pairs


def _check_periodic_cell(box: np.ndarray, periodic: np.ndarray) -> None:
    """Raise unless the lattice vectors along the periodic axes are finite and span a non-zero measure
    (vesin dies with a floating-point exception on a zero or linearly dependent periodic vector)."""
    vectors = box[periodic]
    measure = np.sqrt(max(np.linalg.det(vectors @ vectors.T), 0.0)) if np.isfinite(vectors).all() else 0.0
    if measure < MIN_CELL_MEASURE:
        raise ValueError(
            f"degenerate periodic cell: the lattice vectors along the periodic axes "
            f"{np.flatnonzero(periodic).tolist()} span {measure:.3g} (a zero-length or linearly dependent "
            f"vector; cell={box.tolist()} Å)"
        )


def _check_coincident(i: np.ndarray, j: np.ndarray, shift: np.ndarray, distance: np.ndarray) -> None:
    """Raise for the closest pair when two atoms (or an atom and a periodic image) coincide."""
    if len(distance) == 0:
        return
    k = int(np.argmin(distance))
    if distance[k] >= COINCIDENT:
        return
    a, b, image = int(i[k]), int(j[k]), np.asarray(shift[k]).tolist()
    if a == b:
        raise ValueError(
            f"atom {a} coincides with its own periodic image (shift {image}, distance {distance[k]:.3g} Å): "
            f"the cell is degenerate"
        )
    where = f" via periodic image shift {image}" if any(image) else ""
    raise ValueError(
        f"atoms {min(a, b)} and {max(a, b)} coincide{where} (distance {distance[k]:.3g} Å < {COINCIDENT} Å)"
    )


@functools.lru_cache(maxsize=16)
def _calculator(cutoff: float, full_list: bool) -> vesin.NeighborList:
    """A reusable vesin calculator per (cutoff, full/half); results are copied out of it."""
    return vesin.NeighborList(cutoff=cutoff, full_list=full_list)


def _rank_within_centre(centres: np.ndarray) -> np.ndarray:
    """Position of each pair within its (sorted, contiguous) centre group: 0, 1, 2, ..."""
    if len(centres) == 0:
        return centres
    starts = np.flatnonzero(np.r_[True, centres[1:] != centres[:-1]])
    group_sizes = np.diff(np.r_[starts, len(centres)])
    return np.arange(len(centres)) - np.repeat(starts, group_sizes)
