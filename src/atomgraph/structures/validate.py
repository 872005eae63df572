"""Sanity checks that every structure entering atomgraph passes.

All lengths are in Å. The checks are linear in the number of atoms: a cell-list neighbour search
(``vesin``, else :func:`ase.neighborlist.neighbor_list`) for periodic structures and a k-d tree for
molecules, so a 10k-atom protein is checked in milliseconds without an N x N distance matrix.
"""

from __future__ import annotations

import ase
import numpy as np
from scipy.spatial import cKDTree

try:  # vesin is ~100x faster than ASE for big periodic cells; ASE's is the drop-in fallback
    from vesin import ase_neighbor_list as neighbor_list
except ImportError:  # pragma: no cover
    from ase.neighborlist import neighbor_list

from atomgraph.structures.errors import StructureError

#: Smallest accepted volume (Å^3), area (Å^2) or length (Å) spanned by the periodic lattice vectors.
MIN_CELL_MEASURE = 1e-6


def validate_atoms(
    atoms: ase.Atoms, source: str, min_distance: float = 0.5, check_distances: bool = True
) -> ase.Atoms:
    """Check that ``atoms`` is a physically sensible structure and return it unchanged.

    Args:
        atoms: the structure (positions in Å, cell rows in Å).
        source: what to call the structure in error messages, e.g. ``"water.xyz record 2"``.
        min_distance: two atoms closer than this (Å) are an error; periodic images count, so an atom
            closer than ``min_distance`` to its own image (a too-short lattice vector) is one too.
            ``<= 0`` disables the check.
        check_distances: ``False`` skips the distance check (used for 2D depiction coordinates).

    Returns:
        The same ``atoms`` object (not a copy), so the calculator and ``info`` are kept.

    Raises:
        StructureError: for an empty structure, an unknown element (atomic number 0 or > 118), non-finite
            positions or cell, a singular cell along the periodic directions, or two atoms too close.
    """
    n = len(atoms)
    if n == 0:
        raise StructureError(f"{source}: empty structure (0 atoms)", source=source)

    check_elements(atoms.numbers, source)

    positions = np.asarray(atoms.positions, dtype=float)
    bad_rows = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if bad_rows.size:
        i = int(bad_rows[0])
        raise StructureError(
            f"{source}: atom {i} has non-finite coordinates {positions[i].tolist()} "
            f"({bad_rows.size} such atom(s) in total)",
            source=source,
        )

    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.asarray(atoms.cell.array, dtype=float)
    if not np.isfinite(cell).all():
        raise StructureError(f"{source}: cell contains non-finite values {cell.tolist()}", source=source)
    if pbc.any():
        _check_cell(cell, pbc, source)

    if check_distances and min_distance > 0 and (n > 1 or pbc.any()):
        _check_distances(atoms, positions, pbc, source, float(min_distance))
    return atoms


def check_elements(numbers, source: str) -> None:
    """Raise StructureError unless every atomic number is a known element (1-118), naming the first
    atom that is not."""
    numbers = np.asarray(numbers)
    bad = np.flatnonzero((numbers < 1) | (numbers > 118))
    if bad.size:
        i = int(bad[0])
        raise StructureError(
            f"{source}: atom {i} has unknown element (atomic number {int(numbers[i])}; "
            f"{bad.size} such atom(s) in total)",
            source=source,
        )


def _check_cell(cell: np.ndarray, pbc: np.ndarray, source: str) -> None:
    """Raise unless the lattice vectors along periodic directions span a non-degenerate lattice."""
    vectors = cell[pbc]
    lengths = np.linalg.norm(vectors, axis=1)
    for axis, length in zip(np.flatnonzero(pbc), lengths, strict=True):
        if length < MIN_CELL_MEASURE:
            raise StructureError(
                f"{source}: periodic structure (pbc={pbc.tolist()}) has a zero-length lattice vector "
                f"{int(axis)} (cell={cell.tolist()} Å)",
                source=source,
            )
    # Volume (3 periodic directions), area (2) or length (1) spanned: sqrt of the Gram determinant.
    measure = float(np.sqrt(max(np.linalg.det(vectors @ vectors.T), 0.0)))
    if measure < MIN_CELL_MEASURE:
        what = {3: "zero-volume", 2: "zero-area", 1: "zero-length"}[len(vectors)]
        raise StructureError(
            f"{source}: periodic structure (pbc={pbc.tolist()}) has a singular ({what}) cell: periodic "
            f"lattice vectors are linearly dependent (measure {measure:.3g}, cell={cell.tolist()} Å)",
            source=source,
        )


def _check_distances(
    atoms: ase.Atoms, positions: np.ndarray, pbc: np.ndarray, source: str, min_distance: float
) -> None:
    """Raise for the closest pair of atoms (or atom and periodic image) nearer than ``min_distance``."""
    if pbc.any():
        i, j, d, shifts = neighbor_list("ijdS", atoms, min_distance)
        i, j, shifts = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64), np.asarray(shifts)
        if len(d) == 0:
            return
        k = int(np.argmin(d))
        a, b, dist, shift = int(i[k]), int(j[k]), float(d[k]), shifts[k]
        if a == b:
            raise StructureError(
                f"{source}: atom {a} is {dist:.4f} Å from its own periodic image (shift {shift.tolist()}), "
                f"closer than min_distance={min_distance} Å; the cell is too small",
                source=source,
            )
        where = "" if not shift.any() else f" (via periodic image shift {shift.tolist()})"
        a, b = min(a, b), max(a, b)
    else:
        pairs = cKDTree(positions).query_pairs(min_distance, output_type="ndarray")
        if len(pairs) == 0:
            return
        dists = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=1)
        k = int(np.argmin(dists))
        a, b, dist, where = int(pairs[k, 0]), int(pairs[k, 1]), float(dists[k]), ""
        if dist >= min_distance:  # query_pairs uses <=; keep the strict comparison of the docstring
            return
    symbols = atoms.get_chemical_symbols()
    raise StructureError(
        f"{source}: atoms {a} ({symbols[a]}) and {b} ({symbols[b]}) are {dist:.4f} Å apart{where}, "
        f"closer than min_distance={min_distance} Å",
        source=source,
    )


def beyond_tables(numbers, max_z: int | None, owner: str = "model") -> str:
    """Why the atomic ``numbers`` (a tensor, array or list) cannot be evaluated by an ``owner`` whose
    element tables end at ``max_z`` ("" when they can, or when ``max_z`` is None). An embedding row beyond
    the table is an IndexError on a CPU but a device-side assert on CUDA, after which nothing else runs:
    callers ask first, on the CPU."""
    values = numbers.tolist() if hasattr(numbers, "tolist") else list(numbers)
    largest = max(values, default=0)
    if max_z is None or largest <= max_z:
        return ""
    return f"element Z={int(largest)} is beyond the {owner}'s element tables (Z <= {max_z})"


def unseen_elements(numbers, elements) -> list[str]:
    """Symbols of the atomic ``numbers`` outside ``elements`` (a model's training elements), sorted;
    none when ``elements`` is None (a run saved before they were recorded)."""
    from ase.data import chemical_symbols

    if elements is None:
        return []
    known = {*elements, 0}  # z = 0: a master or virtual node, not an element
    values = numbers.tolist() if hasattr(numbers, "tolist") else numbers  # a tensor or array: one call
    unseen = {int(z) for z in values} - known
    return sorted(chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}" for z in unseen)
