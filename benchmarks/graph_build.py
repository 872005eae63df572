"""Graph-building throughput: atomgraph (vesin) vs pymatgen and ASE neighbour lists.

Builds the CGCNN-style 8 Å / 12-neighbour graphs for the Materials Project crystals in
``<data-root>/mp_crystals/cifs.tar.gz`` and 5 Å radius graphs for QM9 molecules (qm9pack), and
reports structures per second for

* atomgraph: ``atomgraph.graphs.radius_graph`` (vesin neighbour list + sorting + the k cap +
  building the ``torch_geometric`` ``Data``),
* pymatgen: ``Structure.get_all_neighbors`` followed by CGCNN's per-atom
  ``sorted(nbrs, key=lambda x: x[1])[:12]`` (crystals); for molecules, ``get_all_neighbors`` on the
  molecule boxed in a non-overlapping cell (see below),
* ASE: ``ase.neighborlist.neighbor_list`` (plus the same per-atom top-12 selection in numpy for
  crystals),

all measured in the same run, single process, with torch and the BLAS/OpenMP pools limited to one
thread. Structures are parsed and converted (ASE -> pymatgen, molecule -> boxed structure) before
any timing starts; each call is timed individually with ``time.perf_counter`` (progress bars and
bookkeeping are outside the timed region), after a short untimed warm-up. Garbage collection stays
on (object churn is part of a library's real cost).

Peers are slow on the crystals (8 Å over periodic images), so they run on a seeded random subset
(``--limit-peers``, default 5,000) of the same parsed crystals; speedups are computed against
atomgraph's time on exactly that subset (``atomgraph_per_s_peer_subset``).

QM9 molecules: pymatgen's neighbour search for ``Molecule`` (``Molecule.get_neighbors`` per site) is
a pure-Python loop over all sites; the compiled cell-list search is ``Structure.get_all_neighbors``.
The main ``pymatgen_per_s`` gives pymatgen its fastest route: the molecule is put in an orthorhombic
box whose sides exceed its extent by twice the cutoff plus 1 Å (so no periodic image is within
reach; the neighbour counts are checked against ASE), the box built before timing.
The per-site ``Molecule.get_neighbors`` rate is recorded too (``pymatgen_molecule_per_s``).

Usage (from the repository root)::

    .venv/bin/python benchmarks/graph_build.py
    .venv/bin/python benchmarks/graph_build.py --limit-crystals 2000 --limit-peers 500  # quick

Writes ``benchmarks/results/graph_build.json``; exits 0 without writing anything when the data
(or pymatgen / qm9pack) is absent.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import platform
import shlex
import sys
import tarfile
import time
import warnings
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results" / "graph_build.json"

CRYSTAL_CUTOFF = 8.0
CRYSTAL_MAX_NEIGHBORS = 12
QM9_CUTOFF = 5.0
QM9_BOX_PADDING = 2 * QM9_CUTOFF + 1.0  # Å added to the molecule's extent along each axis
WARMUP = 3


# --------------------------------------------------------------------------------------------------
# Loading (untimed)
# --------------------------------------------------------------------------------------------------
def read_crystals(archive: Path, limit: int | None) -> tuple[list, list[str], float]:
    """Parse the CIFs straight from the tar archive (first ``limit`` in archive order).

    Returns (atoms list, names of CIFs that failed to parse, seconds spent).
    """
    import ase.io
    from tqdm import tqdm

    structures, failed = [], []
    start = time.perf_counter()
    with tarfile.open(archive, "r:*") as tar, tqdm(desc="parse CIFs", unit="cif", total=limit) as bar:
        for member in tar:
            if limit is not None and len(structures) + len(failed) >= limit:
                break
            if not member.isfile() or not member.name.endswith(".cif"):
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            text = handle.read().decode("utf-8", errors="replace")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    atoms = ase.io.read(io.StringIO(text), format="cif")
                if len(atoms) == 0:
                    raise ValueError("no atoms")
            except Exception:  # any parse failure: count it, skip the CIF
                failed.append(member.name)
            else:
                structures.append(atoms)
            bar.update(1)
    return structures, failed, time.perf_counter() - start


def read_qm9(size: int, seed: int) -> tuple[list, int]:
    """A seeded random ``size`` of the 130,831 qm9pack molecules as ``ase.Atoms`` (no cell, no pbc)."""
    from ase import Atoms

    from atomgraph.data.qm9_source import read_qm9pack

    records = read_qm9pack(limit=None)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(records), size=min(size, len(records)), replace=False))
    molecules = [Atoms(numbers=records.numbers[k], positions=records.positions[k]) for k in picked]
    return molecules, len(records)


# --------------------------------------------------------------------------------------------------
# The builders being timed
# --------------------------------------------------------------------------------------------------
def rank_within_centre(centres: np.ndarray) -> np.ndarray:
    """Position of each pair within its (contiguous) centre group: 0, 1, 2, ..."""
    if len(centres) == 0:
        return centres
    starts = np.flatnonzero(np.r_[True, centres[1:] != centres[:-1]])
    sizes = np.diff(np.r_[starts, len(centres)])
    return np.arange(len(centres)) - np.repeat(starts, sizes)


def ase_top_k(atoms, cutoff: float, k: int):
    """ASE neighbour list, then each atom's k nearest (sorted by distance), in numpy."""
    from ase.neighborlist import neighbor_list

    i, j, shift, distance = neighbor_list("ijSd", atoms, cutoff)
    order = np.lexsort((distance, i))
    i, j, shift, distance = i[order], j[order], shift[order], distance[order]
    keep = rank_within_centre(i) < k
    return i[keep], j[keep], shift[keep], distance[keep]


def pymatgen_cgcnn(structure, cutoff: float, k: int):
    """What CGCNN's data.py does: all neighbours within the cutoff, sorted by distance, first k."""
    all_nbrs = structure.get_all_neighbors(cutoff)
    return [sorted(nbrs, key=lambda x: x[1])[:k] for nbrs in all_nbrs]


def pymatgen_molecule(molecule, cutoff: float):
    """pymatgen's Molecule API: per-site neighbours (pure-Python loop over all sites)."""
    return [molecule.get_neighbors(site, cutoff) for site in molecule]


def boxed(molecule, padding: float = QM9_BOX_PADDING):
    """The molecule in an orthorhombic box large enough that no periodic image is within reach."""
    extent = np.ptp(molecule.cart_coords, axis=0)
    a, b, c = (extent + padding).tolist()
    return molecule.get_boxed_structure(a, b, c, reorder=False)


def time_each(items: Sequence, fn: Callable, desc: str) -> np.ndarray:
    """Seconds per item for ``fn(item)``, each call timed on its own (after WARMUP untimed calls)."""
    from tqdm import tqdm

    for item in items[:WARMUP]:
        fn(item)
    seconds = np.empty(len(items))
    for n, item in enumerate(tqdm(items, desc=desc, unit="struct")):
        start = time.perf_counter()
        fn(item)
        seconds[n] = time.perf_counter() - start
    return seconds


def rate(seconds: np.ndarray) -> float:
    return float(len(seconds) / seconds.sum()) if len(seconds) else float("nan")


# --------------------------------------------------------------------------------------------------
# Correctness on a sample (untimed)
# --------------------------------------------------------------------------------------------------
def per_atom_counts(centres: np.ndarray, n_atoms: int) -> np.ndarray:
    return np.bincount(np.asarray(centres, dtype=np.int64), minlength=n_atoms)


def sorted_distances_per_atom(centres: np.ndarray, distances: np.ndarray, n_atoms: int) -> list[np.ndarray]:
    return [np.sort(distances[centres == a]) for a in range(n_atoms)]


def same_distances(a: list[np.ndarray], b: list[np.ndarray], tol: float = 1e-6) -> bool:
    return all(len(x) == len(y) and np.allclose(x, y, rtol=0.0, atol=tol) for x, y in zip(a, b, strict=True))


def check_crystals(structures: Sequence, adaptor) -> dict:
    """atomgraph vs ASE (and pymatgen): per-atom counts within 8 Å (uncapped) and top-12 distances."""
    import torch
    from ase.neighborlist import neighbor_list
    from tqdm import tqdm

    from atomgraph.graphs import edge_lengths, edge_vectors, radius_graph

    counts_ase = counts_pmg = top_ase = top_pmg = 0
    mismatched: list[int] = []
    for n, atoms in enumerate(tqdm(structures, desc="check crystals", unit="struct")):
        natoms = len(atoms)
        graph = radius_graph(atoms, CRYSTAL_CUTOFF, dtype=torch.float64)
        ag_counts = per_atom_counts(graph.edge_index[1].numpy(), natoms)
        i, _, _ = neighbor_list("ijd", atoms, CRYSTAL_CUTOFF)
        ok_ase = np.array_equal(ag_counts, per_atom_counts(i, natoms))
        counts_ase += ok_ase
        if not ok_ase:
            mismatched.append(n)

        structure = adaptor.get_structure(atoms)
        pmg_all = structure.get_all_neighbors(CRYSTAL_CUTOFF)
        counts_pmg += np.array_equal(ag_counts, np.array([len(x) for x in pmg_all]))

        capped = radius_graph(atoms, CRYSTAL_CUTOFF, max_neighbors=CRYSTAL_MAX_NEIGHBORS, dtype=torch.float64)
        ag_top = sorted_distances_per_atom(
            capped.edge_index[1].numpy(), edge_lengths(edge_vectors(capped)).numpy(), natoms
        )
        ai, _, _, ad = ase_top_k(atoms, CRYSTAL_CUTOFF, CRYSTAL_MAX_NEIGHBORS)
        top_ase += same_distances(ag_top, sorted_distances_per_atom(ai, ad, natoms))
        pmg_top = [
            np.array([x[1] for x in nbrs])
            for nbrs in pymatgen_cgcnn(structure, CRYSTAL_CUTOFF, CRYSTAL_MAX_NEIGHBORS)
        ]
        top_pmg += same_distances(ag_top, pmg_top)
    total = len(structures)
    return {
        "agree": bool(counts_ase == total and top_ase == total),
        "n_checked": total,
        "counts_equal_ase": int(counts_ase),
        "counts_equal_pymatgen": int(counts_pmg),
        "top12_distances_equal_ase": int(top_ase),
        "top12_distances_equal_pymatgen": int(top_pmg),
        "what": (
            "per atom: number of neighbours within 8 Å before the 12 cap (atomgraph radius_graph vs "
            "ase neighbor_list / pymatgen get_all_neighbors), and the sorted distances of the 12 "
            "kept (atol 1e-6 Å; tie-robust)"
        ),
        "mismatched_sample_positions": mismatched[:20],
    }


def check_molecules(molecules: Sequence, boxes: Sequence) -> dict:
    """atomgraph vs ASE vs boxed-pymatgen per-atom neighbour counts within 5 Å."""
    from ase.neighborlist import neighbor_list

    from atomgraph.graphs import radius_graph

    counts_ase = counts_pmg = 0
    for atoms, box in zip(molecules, boxes, strict=True):
        natoms = len(atoms)
        ag_counts = per_atom_counts(radius_graph(atoms, QM9_CUTOFF).edge_index[1].numpy(), natoms)
        i, _, _ = neighbor_list("ijd", atoms, QM9_CUTOFF)
        counts_ase += np.array_equal(ag_counts, per_atom_counts(i, natoms))
        pmg_counts = np.array([len(x) for x in box.get_all_neighbors(QM9_CUTOFF)])
        counts_pmg += np.array_equal(ag_counts, pmg_counts)
    total = len(molecules)
    return {
        "agree": bool(counts_ase == total),
        "n_checked": total,
        "counts_equal_ase": int(counts_ase),
        "counts_equal_pymatgen_boxed": int(counts_pmg),
        "what": "per atom: number of neighbours within 5 Å (atomgraph vs ase vs boxed pymatgen)",
    }


# --------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------
def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def cpu_model() -> str:
    from atomgraph.nn.dense import cpuinfo_field

    return cpuinfo_field("model name") or platform.processor() or "unknown"


def machine_info() -> dict:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_geometric": package_version("torch_geometric"),
        "vesin": package_version("vesin"),
        "pymatgen": package_version("pymatgen") or package_version("pymatgen-core"),
        "ase": package_version("ase"),
        "numpy": np.__version__,
        "process": "single process; torch.set_num_threads(1) and threadpoolctl limits BLAS/OpenMP to 1",
    }


def print_table(results: dict) -> None:
    header = (
        f"{'dataset':<9} {'atomgraph/s':>12} {'(subset)':>10} {'pymatgen/s':>11} {'ase/s':>9} "
        f"{'x pymatgen':>11} {'x ase':>8}   n (ag / pmg / ase)"
    )
    print(header)
    print("-" * len(header))
    for name in ("crystals", "qm9"):
        r = results[name]
        print(
            f"{name:<9} {r['atomgraph_per_s']:>12.1f} {r['atomgraph_per_s_peer_subset']:>10.1f} "
            f"{r['pymatgen_per_s']:>11.1f} {r['ase_per_s']:>9.1f} {r['speedup_vs_pymatgen']:>10.1f}x "
            f"{r['speedup_vs_ase']:>7.1f}x   {r['n_atomgraph']} / {r['n_pymatgen']} / {r['n_ase']}"
        )
    q = results["qm9"]
    print(
        f"(qm9: pymatgen Molecule.get_neighbors per site: {q['pymatgen_molecule_per_s']:.1f}/s; "
        f"speedups use atomgraph's rate on the same structures as the peers)"
    )


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-root", type=Path, default=DEFAULT_DATA_ROOT,
        help="folder holding mp_crystals/ (default: ../shared/data from the repo root)",
    )  # fmt: skip
    parser.add_argument(
        "--limit-crystals", type=int, default=None,
        help="parse only the first N CIFs of the archive (default: all 36,737)",
    )  # fmt: skip
    parser.add_argument(
        "--limit-peers", type=int, default=5000,
        help="run pymatgen and ASE on a seeded random N of the crystals (default 5000)",
    )  # fmt: skip
    parser.add_argument("--qm9-size", type=int, default=10_000, help="QM9 molecules (seeded random)")
    parser.add_argument("--check-size", type=int, default=200, help="structures in the correctness check")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    archive = args.data_root / "mp_crystals" / "cifs.tar.gz"
    missing = []
    if not archive.is_file():
        missing.append(f"{archive} (the MP crystals)")
    if importlib.util.find_spec("qm9pack") is None:
        missing.append('qm9pack (pip install "atomgraph[qm9]")')
    if importlib.util.find_spec("pymatgen") is None:
        missing.append('pymatgen (pip install "atomgraph[bench]")')
    if missing:
        print("graph_build benchmark skipped, missing: " + "; ".join(missing))
        return 0

    import torch
    from ase.neighborlist import neighbor_list as ase_neighbor_list
    from pymatgen.core import Molecule
    from pymatgen.io.ase import AseAtomsAdaptor
    from threadpoolctl import threadpool_limits

    from atomgraph.graphs import radius_graph

    torch.set_num_threads(1)
    threadpool_limits(1)
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(args.seed)
    command = shlex.join(["python", "benchmarks/graph_build.py", *(sys.argv[1:] if argv is None else argv)])

    # ---- crystals -----------------------------------------------------------------------------------
    crystals, failed, parse_s = read_crystals(archive, args.limit_crystals)
    print(f"parsed {len(crystals)} CIFs in {parse_s:.0f} s, {len(failed)} failed to parse")
    n_peer = min(args.limit_peers, len(crystals)) if args.limit_peers is not None else len(crystals)
    peer_idx = np.sort(rng.choice(len(crystals), size=n_peer, replace=False))
    peer_atoms = [crystals[k] for k in peer_idx]
    adaptor = AseAtomsAdaptor()
    peer_structures = [adaptor.get_structure(a) for a in peer_atoms]  # converted before timing

    edges: list[int] = []

    def atomgraph_crystal(atoms) -> None:
        edges.append(radius_graph(atoms, CRYSTAL_CUTOFF, max_neighbors=CRYSTAL_MAX_NEIGHBORS).num_edges)

    ag_s = time_each(crystals, atomgraph_crystal, "atomgraph crystals")
    edges = edges[WARMUP:]
    pmg_s = time_each(
        peer_structures,
        lambda s: pymatgen_cgcnn(s, CRYSTAL_CUTOFF, CRYSTAL_MAX_NEIGHBORS),
        "pymatgen crystals",
    )
    ase_s = time_each(
        peer_atoms, lambda a: ase_top_k(a, CRYSTAL_CUTOFF, CRYSTAL_MAX_NEIGHBORS), "ase crystals"
    )
    check_idx = np.sort(rng.choice(len(crystals), size=min(args.check_size, len(crystals)), replace=False))
    crystal_check = check_crystals([crystals[k] for k in check_idx], adaptor)

    ag_subset = rate(ag_s[peer_idx])
    natoms = np.array([len(a) for a in crystals])
    results: dict = {
        "crystals": {
            "atomgraph_per_s": rate(ag_s),
            "atomgraph_per_s_peer_subset": ag_subset,
            "pymatgen_per_s": rate(pmg_s),
            "ase_per_s": rate(ase_s),
            "n_atomgraph": len(ag_s),
            "n_pymatgen": len(pmg_s),
            "n_ase": len(ase_s),
            "cutoff": CRYSTAL_CUTOFF,
            "max_neighbors": CRYSTAL_MAX_NEIGHBORS,
            "speedup_vs_pymatgen": ag_subset / rate(pmg_s),
            "speedup_vs_ase": ag_subset / rate(ase_s),
            "agree": crystal_check["agree"],
            "agreement": crystal_check,
            "total_s": {
                "atomgraph": float(ag_s.sum()),
                "pymatgen": float(pmg_s.sum()),
                "ase": float(ase_s.sum()),
            },
            "mean_atoms": float(natoms.mean()),
            "mean_atoms_peer_subset": float(natoms[peer_idx].mean()),
            "mean_edges_atomgraph": float(np.mean(edges)),
            "n_cifs_parsed": len(crystals),
            "n_cifs_failed": len(failed),
            "failed_cifs": failed[:50],
            "parse_s_untimed": parse_s,
            "peer_subset": f"seeded random {n_peer} of the {len(crystals)} parsed crystals "
            f"(seed {args.seed})",
            "pymatgen_method": "Structure.get_all_neighbors(8.0), each list sorted by x[1], first 12 (CGCNN "
            "data.py); AseAtomsAdaptor conversion before timing",
            "ase_method": "ase.neighborlist.neighbor_list('ijSd', atoms, 8.0) + per-atom top-12 by distance "
            "(np.lexsort)",
            "atomgraph_method": "radius_graph(atoms, 8.0, max_neighbors=12) -> torch_geometric Data",
        }
    }

    # ---- QM9 ----------------------------------------------------------------------------------------
    molecules, qm9_total = read_qm9(args.qm9_size, args.seed)
    pmg_molecules = [Molecule(a.numbers, a.positions) for a in molecules]
    boxes = [boxed(m) for m in pmg_molecules]  # built before timing
    qm9_ag = time_each(molecules, lambda a: radius_graph(a, QM9_CUTOFF), "atomgraph qm9")
    qm9_pmg = time_each(boxes, lambda s: s.get_all_neighbors(QM9_CUTOFF), "pymatgen qm9 (boxed)")
    qm9_pmg_mol = time_each(
        pmg_molecules, lambda m: pymatgen_molecule(m, QM9_CUTOFF), "pymatgen qm9 (Molecule)"
    )
    qm9_ase = time_each(molecules, lambda a: ase_neighbor_list("ijd", a, QM9_CUTOFF), "ase qm9")
    check = np.sort(rng.choice(len(molecules), size=min(args.check_size, len(molecules)), replace=False))
    qm9_check = check_molecules([molecules[k] for k in check], [boxes[k] for k in check])
    results["qm9"] = {
        "atomgraph_per_s": rate(qm9_ag),
        "atomgraph_per_s_peer_subset": rate(qm9_ag),
        "pymatgen_per_s": rate(qm9_pmg),
        "ase_per_s": rate(qm9_ase),
        "n_atomgraph": len(qm9_ag),
        "n_pymatgen": len(qm9_pmg),
        "n_ase": len(qm9_ase),
        "cutoff": QM9_CUTOFF,
        "max_neighbors": None,
        "speedup_vs_pymatgen": rate(qm9_ag) / rate(qm9_pmg),
        "speedup_vs_ase": rate(qm9_ag) / rate(qm9_ase),
        "pymatgen_molecule_per_s": rate(qm9_pmg_mol),
        "speedup_vs_pymatgen_molecule": rate(qm9_ag) / rate(qm9_pmg_mol),
        "agree": qm9_check["agree"],
        "agreement": qm9_check,
        "total_s": {
            "atomgraph": float(qm9_ag.sum()),
            "pymatgen": float(qm9_pmg.sum()),
            "pymatgen_molecule": float(qm9_pmg_mol.sum()),
            "ase": float(qm9_ase.sum()),
        },
        "mean_atoms": float(np.mean([len(a) for a in molecules])),
        "molecules": f"seeded random {len(molecules)} of the {qm9_total} qm9pack molecules "
        f"(seed {args.seed})",
        "pymatgen_method": "Molecule boxed (get_boxed_structure, sides = extent + 2*cutoff + 1 Å, built "
        "before timing) then Structure.get_all_neighbors(5.0): pymatgen's compiled cell list; "
        "pymatgen_molecule_per_s is Molecule.get_neighbors(site, 5.0) for every site",
        "ase_method": "ase.neighborlist.neighbor_list('ijd', atoms, 5.0)",
        "atomgraph_method": "radius_graph(atoms, 5.0) -> torch_geometric Data",
    }
    results["machine"] = machine_info()
    results["timing"] = (
        "time.perf_counter around each call, summed; 3 untimed warm-up calls per tool; parsing and "
        "conversions untimed; gc enabled"
    )
    results["command"] = command

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print()
    print_table(results)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
