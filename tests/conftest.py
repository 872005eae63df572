"""Tiny data shared by the data, model and training tests: random molecules with energies, SMILES CSVs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ase.io
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from ase import Atoms

#: Per-element reference energies (eV) the synthetic energies are built from.
REFS = {1: -0.5, 6: -3.0, 8: -4.0}

#: 60 SMILES in 8 Bemis-Murcko scaffold groups: benzene 15, pyridine 10, cyclohexane 10, acyclic 10,
#: cyclopentane 5, furan 4, thiophene 3, cyclopropane 3.
SCAFFOLD_GROUPS: dict[str, list[str]] = {
    "c1ccccc1": [
        "c1ccccc1", "Cc1ccccc1", "Oc1ccccc1", "Nc1ccccc1", "Fc1ccccc1", "Clc1ccccc1", "CCc1ccccc1",
        "COc1ccccc1", "N#Cc1ccccc1", "OC(=O)c1ccccc1", "Cc1ccc(C)cc1", "Cc1cccc(O)c1", "CC(C)c1ccccc1",
        "Brc1ccccc1", "CCCc1ccccc1",
    ],
    "c1ccncc1": [
        "c1ccncc1", "Cc1ccncc1", "Cc1ccccn1", "Oc1ccncc1", "Nc1ccccn1", "Clc1cccnc1", "CCc1ccncc1",
        "COc1ccncc1", "Fc1ccncc1", "N#Cc1ccncc1",
    ],
    "C1CCCCC1": [
        "C1CCCCC1", "CC1CCCCC1", "OC1CCCCC1", "NC1CCCCC1", "FC1CCCCC1", "ClC1CCCCC1", "CCC1CCCCC1",
        "COC1CCCCC1", "CC1CCC(C)CC1", "OC(=O)C1CCCCC1",
    ],
    "": ["CCO", "CCCC", "CC(C)O", "CCN", "CC(=O)O", "CCOC", "CCCCO", "CC(C)(C)C", "NCCO", "CC=O"],
    "C1CCCC1": ["C1CCCC1", "CC1CCCC1", "OC1CCCC1", "NC1CCCC1", "CCC1CCCC1"],
    "c1ccoc1": ["c1ccoc1", "Cc1ccco1", "OCc1ccco1", "Cc1ccc(C)o1"],
    "c1ccsc1": ["c1ccsc1", "Cc1cccs1", "Clc1cccs1"],
    "C1CC1": ["C1CC1", "CC1CC1", "OC1CC1"],
}  # fmt: skip
SCAFFOLD_SMILES: list[str] = [s for group in SCAFFOLD_GROUPS.values() for s in group]


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread; several threads on a busy machine (another process, or
    pytest-xdist workers) spin-wait and make each training step ~100x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def random_molecule(rng: np.random.Generator, n_min: int = 3, n_max: int = 8) -> Atoms:
    """A loose random cluster of H/C/O atoms, every pair at least 1.0 Å apart."""
    n = int(rng.integers(n_min, n_max + 1))
    numbers = rng.choice(sorted(REFS), size=n)
    box = 1.6 * n ** (1 / 3) + 1.0
    positions: list[np.ndarray] = []
    while len(positions) < n:
        p = rng.uniform(0.0, box, size=3)
        if all(np.linalg.norm(p - q) >= 1.0 for q in positions):
            positions.append(p)
    return Atoms(numbers=numbers, positions=np.array(positions))


def synthetic_energy(atoms: Atoms, rng: np.random.Generator | None = None, noise: float = 0.0) -> float:
    """Sum of element references + a smooth pair term (+ Gaussian noise)."""
    d = atoms.get_all_distances()
    pair = 0.5 * np.exp(-d[np.triu_indices(len(atoms), 1)]).sum()
    e = sum(REFS[int(z)] for z in atoms.numbers) + pair
    if rng is not None and noise:
        e += rng.normal(0.0, noise)
    return float(e)


def random_molecules(n: int, seed: int = 0, noise: float = 0.0) -> list[Atoms]:
    """``n`` random molecules with ``info["energy"]`` (eV) and ``info["gap"]`` (an intensive label)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = random_molecule(rng)
        atoms.info["energy"] = synthetic_energy(atoms, rng, noise)
        atoms.info["gap"] = float(rng.normal(5.0, 1.0))
        out.append(atoms)
    return out


def write_xyz(path: Path, n: int = 40, seed: int = 0, noise: float = 0.2) -> list[Atoms]:
    """An extended XYZ file of random molecules with energies; returns the molecules written."""
    molecules = random_molecules(n, seed, noise)
    ase.io.write(path, molecules, format="extxyz")
    return molecules


def write_csv(path: Path, smiles: Sequence[str], **columns: Sequence[float]) -> Path:
    pd.DataFrame({"smiles": list(smiles), **{k: list(v) for k, v in columns.items()}}).to_csv(
        path, index=False
    )
    return path


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def xyz_file(tmp_path) -> Path:
    path = tmp_path / "mols.xyz"
    write_xyz(path)
    return path


@pytest.fixture
def scaffold_csv(tmp_path) -> Path:
    """The 60 scaffold SMILES with a regression target (heavy-atom-ish length) and a 0/1 label."""
    values = [len(s) * 0.1 + 0.01 * k for k, s in enumerate(SCAFFOLD_SMILES)]
    labels = [float("O" in s or "o" in s) for s in SCAFFOLD_SMILES]
    return write_csv(tmp_path / "scaffolds.csv", SCAFFOLD_SMILES, value=values, active=labels)


#: The devices every device test runs on: the CPU always, CUDA where there is one (``pytest -m cuda``
#: selects the CUDA cases alone).
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
        ],
    ),
]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each of :data:`DEVICES` in turn."""
    return torch.device(request.param)


@pytest.fixture
def float64():
    """Build graphs and models in double precision (invariances hold to ~1e-12); the default dtype is
    restored afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def lj_config(run_dir: Path, accelerator: str = "cpu") -> dict:
    """SchNet on Lennard-Jones clusters (eps = 1 eV, sigma = 1 Å), 4 short epochs in float64."""
    from atomgraph.training.config import load_config

    return load_config(
        None,
        [
            f"run_dir={run_dir}",
            "data.dataset=lennard_jones",
            "data.targets=[energy]",
            "data.lennard_jones.count=120",
            "data.lennard_jones.min_distance=1.0",
            "data.graph.cutoff=4.0",
            "task.kind=potential",
            "model.hidden=16",
            "model.filters=16",
            "model.interactions=2",
            "model.num_rbf=12",
            "training.epochs=4",
            "training.batch_size=16",
            "training.lr=0.005",
            "training.scheduler=none",
            "training.early_stopping_patience=0",
            f"training.accelerator={accelerator}",
            "training.progress=false",
            "training.precision=64-true",
        ],
    )


@pytest.fixture(scope="session")
def lj_run(tmp_path_factory):
    """:func:`lj_config` trained on the CPU; shared by the MD, check and device tests."""
    from atomgraph.evaluation.experiment import train_and_evaluate

    return train_and_evaluate(lj_config(tmp_path_factory.mktemp("lj") / "run"), progress=False)


@pytest.fixture(scope="session")
def flexible_complexes(tmp_path_factory) -> Path:
    """A PDBbind-style folder of four complexes (pK 5.22, 7.00, 6.10, 4.80): flexible ligands stacked on
    the Phe ring of a tripeptide, so each has conformers to sample."""
    from rdkit import Chem

    from atomgraph.apps.complexes.synthetic import ligand_over_ring, peptide_mol, protein_from_mol

    root = tmp_path_factory.mktemp("pdbbind_flexible")
    for code, sequence, smiles, seed in (
        ("aaa1", "KFA", "c1ccccc1CCCC(=O)[O-]", 0),
        ("bbb2", "DFW", "c1ccccc1OCCCN", 1),
        ("ccc3", "GFS", "c1ccccc1CC(O)CO", 2),
        ("ddd4", "AFK", "c1ccccc1CCCO", 3),
    ):
        folder = root / code
        folder.mkdir()
        mol = peptide_mol(sequence, seed=seed)
        Chem.MolToPDBFile(mol, str(folder / f"{code}_protein.pdb"))
        ligand = ligand_over_ring(protein_from_mol(mol), smiles)
        (folder / f"{code}_ligand.sdf").write_text(Chem.MolToMolBlock(ligand) + "$$$$\n")
    (root / "index").mkdir()
    (root / "index" / "INDEX_general_PL_data.2020").write_text(
        "aaa1  2.00  2010   5.22  Kd=6uM    // (LIG)\nbbb2  1.80  2011   7.00  Ki=100nM  // (LIG)\n"
        "ccc3  2.10  2012   6.10  Ki=0.8uM  // (LIG)\nddd4  2.20  2013   4.80  Kd=16uM   // (LIG)\n"
    )
    return root
