"""DeePMD-kit's npy data layout (e.g. ``../shared/data/water_pbc``: liquid water, 192 atoms).

A system folder holds ``type.raw`` (one type index per atom), ``type_map.raw`` (element of each
type) and ``set.*/`` with ``coord.npy`` [F, 3N] Å, ``box.npy`` [F, 9] Å (lattice vectors as rows),
``energy.npy`` [F] eV, ``force.npy`` [F, 3N] eV/Å and optionally ``virial.npy`` [F, 9] eV, with
stress = -virial / volume (eV/Å^3, ASE sign). A ``nopbc`` file marks a non-periodic system.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from atomgraph.apps.potentials.common import files_digest, potential_dataset
from atomgraph.data.build import cache_dir, load_or_build
from atomgraph.data.graph_dataset import GraphDataset
from atomgraph.graphs.spec import GraphSpec


def find_systems(path: str | Path) -> list[Path]:
    """System folders (with ``type.raw``) at or below ``path``, sorted."""
    path = Path(path)
    if (path / "type.raw").exists():
        return [path]
    systems = sorted(p.parent for p in path.rglob("type.raw"))
    if not systems:
        raise FileNotFoundError(f"{path}: no DeePMD system (a folder with type.raw) found")
    return systems


def read_system(system: str | Path, type_map: list[str] | None = None) -> list[Atoms]:
    """Every frame of one system as ``ase.Atoms`` with energy (eV), forces (eV/Å), stress if given,
    and ``info["source"] = "<system>/<set>/<frame>"``."""
    system = Path(system)
    types = np.loadtxt(system / "type.raw", dtype=np.int64).reshape(-1)
    if type_map is None:
        if not (system / "type_map.raw").exists():
            raise FileNotFoundError(f"{system}: no type_map.raw; give the element of each type")
        type_map = (system / "type_map.raw").read_text().split()
    numbers = np.array([atomic_numbers[type_map[t]] for t in types])
    periodic = not (system / "nopbc").exists()
    frames = []
    for set_dir in sorted(system.glob("set.*")):
        coords = np.load(set_dir / "coord.npy").astype(np.float64).reshape(-1, len(types), 3)
        energy = np.load(set_dir / "energy.npy").astype(np.float64).reshape(-1)
        forces = np.load(set_dir / "force.npy").astype(np.float64).reshape(-1, len(types), 3)
        boxes = np.load(set_dir / "box.npy").astype(np.float64).reshape(-1, 3, 3) if periodic else None
        virial_file = set_dir / "virial.npy"
        virials = np.load(virial_file).astype(np.float64).reshape(-1, 3, 3) if virial_file.exists() else None
        for k in range(len(coords)):
            cell = boxes[k] if boxes is not None else None
            atoms = Atoms(numbers=numbers, positions=coords[k], cell=cell, pbc=periodic)
            atoms.info["energy"] = float(energy[k])
            atoms.arrays["forces"] = forces[k]
            if virials is not None and periodic:
                atoms.info["stress"] = -virials[k] / abs(np.linalg.det(cell))
            atoms.info["source"] = f"{system.name}/{set_dir.name}/{k}"
            frames.append(atoms)
    return frames


def load_deepmd(
    path: str | Path, settings: GraphSpec, cache: str | Path | None = None, progress: bool = True
) -> GraphDataset:
    """All frames of every system at or below ``path`` (float64 graphs; eV, eV/Å, eV/Å^3)."""
    systems = find_systems(path)
    files = [f for s in systems for f in (s / "type.raw", *sorted(s.glob("set.*/*.npy")))]
    file = cache_dir(cache) / f"deepmd-{Path(path).name}-{files_digest(files)}-{settings.key()}.pt"

    def build() -> GraphDataset:
        frames = [a for system in systems for a in read_system(system)]
        return potential_dataset(frames, settings, f"deepmd-{Path(path).name}", progress)

    return load_or_build(file, build)
