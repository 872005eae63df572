"""The revised MD17 dataset (Christensen & von Lilienfeld 2020): molecular dynamics frames of small
organic molecules with PBE/def2-SVP energies and forces.

Files: ``rmd17_<molecule>_{train,test}_<split>.npz`` (the 1,000 + 1,000 frames of split 01, as in
``../shared/data/rmd17``) or the original layout ``npz_data/rmd17_<molecule>.npz`` with
``splits/index_{train,test}_<split>.csv``. Arrays: ``nuclear_charges`` [N], ``coords`` [F, N, 3] Å,
``energies`` [F] kcal/mol, ``forces`` [F, N, 3] kcal/mol/Å (``old_*`` = the original MD17 values,
not used). Energies and forces are converted to eV and eV/Å with 1 kcal/mol = 0.0433641 eV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

from atomgraph.apps.potentials.common import files_digest, potential_dataset
from atomgraph.data.build import cache_dir, load_or_build
from atomgraph.data.graph_dataset import GraphDataset
from atomgraph.graphs.spec import GraphSpec

#: 1 kcal/mol in eV (4.184 kJ/mol / 96.485 kJ/mol per eV, rounded as in the rMD17 literature).
KCAL_PER_MOL_IN_EV = 0.0433641

MOLECULES = (
    "aspirin",
    "azobenzene",
    "benzene",
    "ethanol",
    "malonaldehyde",
    "naphthalene",
    "paracetamol",
    "salicylic",
    "toluene",
    "uracil",
)
PARTS = ("train", "test")


def rmd17_frames(root: str | Path, molecule: str, part: str, split: str = "01") -> tuple[dict, Path]:
    """The raw arrays of one part ("train" or "test") of a split, and the file they came from."""
    if part not in PARTS:
        raise ValueError(f"rMD17 part must be one of {PARTS}, got {part!r}")
    root = Path(root)
    direct = root / f"rmd17_{molecule}_{part}_{split}.npz"
    if direct.exists():
        with np.load(direct) as data:
            return {k: data[k] for k in ("nuclear_charges", "coords", "energies", "forces")}, direct
    full = root / "npz_data" / f"rmd17_{molecule}.npz"
    index_file = root / "splits" / f"index_{part}_{split}.csv"
    if full.exists() and index_file.exists():
        index = np.loadtxt(index_file, dtype=np.int64).reshape(-1)
        with np.load(full) as data:
            arrays = {k: data[k] for k in ("coords", "energies", "forces")}
            arrays = {k: v[index] for k, v in arrays.items()}
            arrays["nuclear_charges"] = data["nuclear_charges"]
        return arrays, full
    raise FileNotFoundError(
        f"rMD17 {molecule!r} ({part}, split {split}): neither {direct} nor {full} with {index_file}; "
        f"molecules: {', '.join(MOLECULES)}"
    )


def rmd17_atoms(root: str | Path, molecule: str, part: str, split: str = "01") -> list[Atoms]:
    """Frames as ``ase.Atoms`` with ``info["energy"]`` (eV), ``arrays["forces"]`` (eV/Å) and
    ``info["source"] = "<part>/<frame>"``."""
    arrays, _ = rmd17_frames(root, molecule, part, split)
    numbers = arrays["nuclear_charges"].astype(np.int64)
    energies = arrays["energies"].astype(np.float64) * KCAL_PER_MOL_IN_EV
    forces = arrays["forces"].astype(np.float64) * KCAL_PER_MOL_IN_EV
    frames = []
    for k, (coords, energy, force) in enumerate(zip(arrays["coords"], energies, forces, strict=True)):
        atoms = Atoms(numbers=numbers, positions=np.asarray(coords, dtype=np.float64))
        atoms.info["energy"] = float(energy)
        atoms.info["source"] = f"{part}/{k}"
        atoms.arrays["forces"] = force
        frames.append(atoms)
    return frames


def load_rmd17(
    root: str | Path,
    molecule: str,
    settings: GraphSpec,
    split: str = "01",
    cache: str | Path | None = None,
    progress: bool = True,
) -> GraphDataset:
    """The training frames then the test frames of split ``split`` as one dataset (eV, eV/Å; float64),
    with that train/test split in ``meta.settings["split"]`` (``data.split.kind: predefined``)."""
    if molecule is None:
        raise ValueError(f"rMD17 needs a molecule (data.molecule): one of {', '.join(MOLECULES)}")
    sources = [rmd17_frames(root, molecule, part, split)[1] for part in PARTS]
    key = files_digest(set(sources))
    file = cache_dir(cache) / f"rmd17-{molecule}-{split}-{key}-{settings.key()}.pt"

    def build() -> GraphDataset:
        frames = [a for part in PARTS for a in rmd17_atoms(root, molecule, part, split)]
        dataset = potential_dataset(frames, settings, f"rmd17-{molecule}", progress)
        dataset.meta.settings["conversion"] = f"1 kcal/mol = {KCAL_PER_MOL_IN_EV} eV"
        return dataset

    return load_or_build(file, build)
