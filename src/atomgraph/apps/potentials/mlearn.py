"""The mlearn benchmark sets (Zuo et al., J. Phys. Chem. A 124, 731 (2020)): periodic PBE (VASP)
cells of one element (Si, Li, Ge, Mo, Cu, Ni) from AIMD, vacancies, elastic strains and surfaces.

Each of ``training.json`` / ``test.json`` is a JSON list of records ``{"structure": <pymatgen
Structure dict>, "outputs": {"energy", "forces", "virial_stress"}, "group", "description", ...}``.
Energies are eV and forces eV/Å. ``virial_stress`` is VASP's stress in **kbar** with VASP's sign
(positive = compressive) and component order ``xx, yy, zz, xy, yz, xz`` (checked on the data: a
uniaxially compressed Si cell has positive xx, and the shear modes fill the named components). It is
converted to ASE's convention, stress = -virial_stress * 0.1 GPa / (160.2177 GPa per eV/Å^3):
1 kbar = 6.2415e-4 eV/Å^3.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.data import atomic_numbers

from atomgraph.apps.potentials.common import files_digest, potential_dataset, voigt_to_matrix
from atomgraph.data.build import cache_dir, load_or_build
from atomgraph.data.graph_dataset import GraphDataset
from atomgraph.graphs.spec import GraphSpec

#: 1 kbar in eV/Å^3.
KBAR_IN_EV_PER_A3 = 0.1 * units.GPa
#: Order of the six ``virial_stress`` components (VASP's OUTCAR order).
VIRIAL_ORDER = ("xx", "yy", "zz", "xy", "yz", "xz")
FILES = {"train": "training.json", "test": "test.json"}


def mlearn_stress(virial_stress) -> np.ndarray:
    """mlearn's 6 ``virial_stress`` values (kbar, VASP sign) -> ASE stress 3x3 in eV/Å^3."""
    return -KBAR_IN_EV_PER_A3 * voigt_to_matrix(virial_stress, VIRIAL_ORDER)


def structure_to_atoms(structure: dict) -> Atoms:
    """A pymatgen ``Structure.as_dict()`` (ordered sites) as a periodic ``ase.Atoms``, without pymatgen."""
    numbers, positions = [], []
    for site in structure["sites"]:
        species = site["species"]
        if len(species) != 1 or float(species[0].get("occu", 1)) != 1.0:
            raise ValueError(f"disordered site {site.get('label')}: only ordered structures are supported")
        numbers.append(atomic_numbers[species[0]["element"]])
        positions.append(site["xyz"])
    cell = np.asarray(structure["lattice"]["matrix"], dtype=np.float64)
    return Atoms(numbers=numbers, positions=np.asarray(positions, dtype=np.float64), cell=cell, pbc=True)


def read_mlearn(path: str | Path, part: str = "train") -> list[Atoms]:
    """Records of one mlearn JSON file as ``ase.Atoms`` with energy (eV), forces (eV/Å), stress
    (eV/Å^3, ASE sign) and ``info["source"] = "<part>/<k>"``, ``info["group"]``."""
    records = json.loads(Path(path).read_text())
    frames = []
    for k, record in enumerate(records):
        atoms = structure_to_atoms(record["structure"])
        outputs = record["outputs"]
        atoms.info["energy"] = float(outputs["energy"])
        atoms.arrays["forces"] = np.asarray(outputs["forces"], dtype=np.float64).reshape(len(atoms), 3)
        if outputs.get("virial_stress") is not None:
            atoms.info["stress"] = mlearn_stress(outputs["virial_stress"])
        atoms.info["source"] = f"{part}/{k}"
        atoms.info["group"] = str(record.get("group", ""))
        frames.append(atoms)
    return frames


def load_mlearn(
    path: str | Path, settings: GraphSpec, cache: str | Path | None = None, progress: bool = True
) -> GraphDataset:
    """An mlearn element folder (``training.json`` + ``test.json``: predefined split) or one JSON file."""
    path = Path(path)
    parts = {part: path / name for part, name in FILES.items()} if path.is_dir() else {"train": path}
    missing = [str(p) for p in parts.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"mlearn: missing {missing}")
    name = path.name if path.is_dir() else path.stem
    file = cache_dir(cache) / f"mlearn-{name}-{files_digest(parts.values())}-{settings.key()}.pt"

    def build() -> GraphDataset:
        frames = [a for part, p in parts.items() for a in read_mlearn(p, part)]
        dataset = potential_dataset(frames, settings, f"mlearn-{name}", progress)
        dataset.meta.settings["conversion"] = "stress = -virial_stress[kbar] * 6.2415e-4 eV/Å^3 per kbar"
        return dataset

    return load_or_build(file, build)
