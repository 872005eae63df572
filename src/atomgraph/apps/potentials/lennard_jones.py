"""The built-in potential dataset: random Lennard-Jones clusters with exact energies and forces.

E = sum_{i<j} 4 eps ((sigma/r)^12 - (sigma/r)^6), no cutoff (clusters, not periodic). Units: the
reduced units eps = 1, sigma = 1 are read as eV and Å (so energies in eV, forces in eV/Å); pass
``epsilon``/``sigma`` for a real element (argon: 0.0104 eV, 3.40 Å). Atoms are argon (Z = 18) by
default, which only matters for masses in molecular dynamics.

Clusters follow the lecture's generator: Gaussian positions (spread 0.8 sigma for 4 atoms, scaled by
(n/4)^(1/3) for more), no pair closer than ``min_distance`` (the lecture used 0.8 sigma, where forces
reach ~760 eps/sigma; 0.9 sigma keeps them below ~200).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from atomgraph.apps.potentials.common import potential_dataset
from atomgraph.data.graph_dataset import GraphDataset
from atomgraph.graphs.spec import GraphSpec


def lj_energy_forces(
    positions: np.ndarray, epsilon: float = 1.0, sigma: float = 1.0
) -> tuple[float, np.ndarray]:
    """Energy (eps units) and forces -dE/dr [N, 3] (eps/sigma units) of a Lennard-Jones cluster."""
    positions = np.asarray(positions, dtype=np.float64)
    i, j = np.triu_indices(len(positions), 1)
    vectors = positions[j] - positions[i]
    r2 = (vectors**2).sum(1)
    s6 = (sigma**2 / r2) ** 3
    energy = float((4.0 * epsilon * (s6**2 - s6)).sum())
    # dE/dr / r for each pair; the force on j is -dE/dr * r_hat = -(dE/dr / r) * vector
    de_dr_over_r = 4.0 * epsilon * (-12.0 * s6**2 + 6.0 * s6) / r2
    pair_force = -de_dr_over_r[:, None] * vectors  # on atom j
    forces = np.zeros_like(positions)
    np.add.at(forces, j, pair_force)
    np.add.at(forces, i, -pair_force)
    return energy, forces


def random_cluster(
    rng: np.random.Generator, n_atoms: int, min_distance: float = 0.9, spread: float | None = None
) -> np.ndarray:
    """Positions [n, 3] (sigma units): Gaussian around the origin, each atom inserted at least
    ``min_distance`` from the others (the spread grows if an atom does not fit in 1,000 tries)."""
    spread = 0.8 * (n_atoms / 4) ** (1 / 3) if spread is None else spread
    positions: list[np.ndarray] = []
    tries = 0
    while len(positions) < n_atoms:
        candidate = rng.normal(0.0, spread, size=3)
        if all(np.linalg.norm(candidate - p) >= min_distance for p in positions):
            positions.append(candidate)
            tries = 0
            continue
        tries += 1
        if tries >= 1000:
            spread *= 1.1
            tries = 0
    return np.array(positions)


def lennard_jones_clusters(
    count: int = 500,
    min_atoms: int = 4,
    max_atoms: int = 8,
    min_distance: float = 0.9,
    seed: int = 0,
    epsilon: float = 1.0,
    sigma: float = 1.0,
    element: str = "Ar",
) -> list[Atoms]:
    """``count`` clusters of ``min_atoms``..``max_atoms`` atoms with ``info["energy"]`` (eV) and
    ``arrays["forces"]`` (eV/Å); positions in Å (sigma = 1 Å by default)."""
    if not 2 <= min_atoms <= max_atoms:
        raise ValueError(f"need 2 <= min_atoms <= max_atoms, got {min_atoms}, {max_atoms}")
    rng = np.random.default_rng(seed)
    clusters = []
    for k in range(count):
        n = int(rng.integers(min_atoms, max_atoms + 1))
        positions = sigma * random_cluster(rng, n, min_distance)
        energy, forces = lj_energy_forces(positions, epsilon, sigma)
        atoms = Atoms(f"{element}{n}", positions=positions)
        atoms.info["energy"] = energy
        atoms.info["source"] = f"cluster {k}"
        atoms.arrays["forces"] = forces
        clusters.append(atoms)
    return clusters


def load_lennard_jones(
    settings: GraphSpec,
    count: int = 500,
    min_atoms: int = 4,
    max_atoms: int = 8,
    min_distance: float = 0.9,
    seed: int = 0,
    progress: bool = False,
) -> GraphDataset:
    """Random LJ clusters as a dataset (eps = 1 eV, sigma = 1 Å; generated, nothing cached)."""
    clusters = lennard_jones_clusters(count, min_atoms, max_atoms, min_distance, seed)
    dataset = potential_dataset(clusters, settings, "lennard_jones", progress)
    dataset.meta.settings["units"]["note"] = "Lennard-Jones eps = 1 eV, sigma = 1 Å"
    return dataset
