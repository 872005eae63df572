"""Potential datasets: units and signs of rMD17, mlearn, DeePMD, extended XYZ stress and Lennard-Jones."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from atomgraph.apps.potentials.deepmd import load_deepmd
from atomgraph.apps.potentials.lennard_jones import (
    lennard_jones_clusters,
    lj_energy_forces,
    load_lennard_jones,
)
from atomgraph.apps.potentials.mlearn import KBAR_IN_EV_PER_A3, load_mlearn, mlearn_stress
from atomgraph.apps.potentials.rmd17 import KCAL_PER_MOL_IN_EV, load_rmd17
from atomgraph.data import load_structures
from atomgraph.graphs.spec import GraphSpec
from atomgraph.training.config import load_config
from atomgraph.training.datasets import load_dataset, make_split

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETTINGS = GraphSpec(cutoff=4.0)


def needs(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not available")


# ------------------------------------------------------------------------------------------ rMD17
def write_rmd17(root: Path, frames: int = 3) -> dict[str, dict]:
    """Tiny rMD17-style split files (water, kcal/mol) in ``root``; returns the arrays written."""
    rng = np.random.default_rng(0)
    written = {}
    for part in ("train", "test"):
        arrays = {
            "nuclear_charges": np.array([8, 1, 1], dtype=np.uint8),
            "coords": np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
            + rng.normal(0, 0.02, (frames, 3, 3)),
            "energies": -47_900.0 + rng.normal(0, 1, frames),
            "forces": rng.normal(0, 10, (frames, 3, 3)),
        }
        np.savez(root / f"rmd17_water_{part}_01.npz", **arrays, old_energies=arrays["energies"] + 5)
        written[part] = arrays
    return written


def test_rmd17_converts_kcal_per_mol_to_ev_and_keeps_its_split(tmp_path):
    written = write_rmd17(tmp_path)
    dataset = load_rmd17(tmp_path, "water", SETTINGS, cache=tmp_path / "cache", progress=False)
    assert len(dataset) == 6
    assert dataset.meta.settings["split"] == {"train": [0, 1, 2], "val": [], "test": [3, 4, 5]}
    assert dataset.meta.settings["units"]["energy"] == "eV"
    expected = np.r_[written["train"]["energies"], written["test"]["energies"]] * 0.0433641
    np.testing.assert_allclose(dataset.targets_array()[:, 0], expected, rtol=0, atol=1e-9)
    assert dataset._data.y.dtype == torch.float64  # ~10^4 eV totals need float64
    np.testing.assert_allclose(dataset[4].forces.numpy(), written["test"]["forces"][1] * KCAL_PER_MOL_IN_EV)
    np.testing.assert_allclose(dataset[4].pos.numpy(), written["test"]["coords"][1])


def test_rmd17_reads_the_original_layout_with_index_files(tmp_path):
    (tmp_path / "split").mkdir()
    written = write_rmd17(tmp_path / "split")
    full = tmp_path / "orig"
    (full / "npz_data").mkdir(parents=True)
    (full / "splits").mkdir()
    arrays = {
        k: np.concatenate([written["test"][k], written["train"][k]]) for k in ("coords", "energies", "forces")
    }
    np.savez(
        full / "npz_data" / "rmd17_water.npz", nuclear_charges=written["train"]["nuclear_charges"], **arrays
    )
    np.savetxt(full / "splits" / "index_train_01.csv", [3, 4, 5], fmt="%d")
    np.savetxt(full / "splits" / "index_test_01.csv", [0, 1, 2], fmt="%d")
    a = load_rmd17(tmp_path / "split", "water", SETTINGS, cache=tmp_path / "c1", progress=False)
    b = load_rmd17(full, "water", SETTINGS, cache=tmp_path / "c2", progress=False)
    np.testing.assert_allclose(a.targets_array(), b.targets_array())
    with pytest.raises(FileNotFoundError, match="aspirin"):
        load_rmd17(full, "aspirin", SETTINGS, cache=tmp_path / "c3", progress=False)


def test_predefined_split_draws_validation_from_training(tmp_path):
    write_rmd17(tmp_path, frames=10)
    config = load_config(
        None,
        [
            "data.dataset=rmd17",
            f"data.path={tmp_path}",
            "data.molecule=water",
            f"data.cache={tmp_path / 'cache'}",
            "data.targets=[energy]",
            "data.split.kind=predefined",
            "data.split.sizes=[0.8, 3, 0.1]",
        ],
    )
    split = make_split(config, load_dataset(config, progress=False))
    assert len(split["val"]) == 3 and len(split["train"]) == 7
    assert set(split["train"]) | set(split["val"]) == set(range(10))
    assert split["test"].tolist() == list(range(10, 20))


@pytest.mark.realdata
@needs(SHARED / "rmd17")
def test_rmd17_real_files_in_ev(tmp_path):
    dataset = load_rmd17(SHARED / "rmd17", "ethanol", SETTINGS, cache=tmp_path, progress=False)
    raw = np.load(SHARED / "rmd17" / "rmd17_ethanol_train_01.npz")
    assert len(dataset) == 2000 and len(dataset.meta.settings["split"]["test"]) == 1000
    assert dataset.targets_array()[0, 0] == pytest.approx(raw["energies"][0] * 0.0433641, abs=1e-9)
    assert dataset.targets_array()[0, 0] == pytest.approx(-4209.7, abs=0.1)  # -97079.92 kcal/mol
    np.testing.assert_allclose(dataset[0].forces.numpy(), raw["forces"][0] * 0.0433641)
    assert dataset[0].z.tolist() == raw["nuclear_charges"].tolist()


# ----------------------------------------------------------------------------------------- mlearn
def mlearn_record(atoms: Atoms, energy: float, forces: np.ndarray, virial: list[float]) -> dict:
    sites = [
        {"species": [{"element": s, "occu": 1}], "xyz": list(map(float, p)), "label": s}
        for s, p in zip(atoms.get_chemical_symbols(), atoms.positions, strict=True)
    ]
    structure = {"@class": "Structure", "lattice": {"matrix": atoms.cell.array.tolist()}, "sites": sites}
    outputs = {"energy": energy, "forces": forces.tolist(), "virial_stress": virial}
    return {"structure": structure, "outputs": outputs, "group": "Elastic", "num_atoms": len(atoms)}


def test_mlearn_stress_is_converted_from_kbar_with_vasp_sign_and_order(tmp_path):
    assert KBAR_IN_EV_PER_A3 == pytest.approx(1 / 1602.1766, rel=1e-6)
    stress = mlearn_stress([10.0, 20.0, 30.0, 1.0, 2.0, 3.0])  # xx yy zz xy yz xz, kbar, + = compressive
    expected = -np.array([[10.0, 1.0, 3.0], [1.0, 20.0, 2.0], [3.0, 2.0, 30.0]]) * 0.1 * units.GPa
    np.testing.assert_allclose(stress, expected)
    si = bulk("Si", "diamond", a=5.43)
    forces = np.array([[0.1, 0.2, 0.3], [-0.1, -0.2, -0.3]])
    for name in ("training.json", "test.json"):
        (tmp_path / name).write_text(
            json.dumps([mlearn_record(si, -10.8, forces, [10, 20, 30, 1, 2, 3])] * 2)
        )
    dataset = load_mlearn(tmp_path, SETTINGS, cache=tmp_path / "cache", progress=False)
    assert len(dataset) == 4 and dataset.meta.settings["split"]["test"] == [2, 3]
    graph = dataset[0]
    np.testing.assert_allclose(graph.stress[0].numpy(), expected)
    np.testing.assert_allclose(graph.cell[0].numpy(), si.cell.array)
    np.testing.assert_allclose(graph.forces.numpy(), forces)
    assert graph.pbc.all() and float(graph.y[0, 0]) == -10.8


@pytest.mark.realdata
@needs(SHARED / "mlearn" / "Si")
def test_mlearn_real_stress_agrees_with_the_energy_derivative(tmp_path):
    """A uniaxially strained Si cell: sigma_xx = (1/V) dE/d(eps_xx) (ASE sign), from the energies."""
    records = json.loads((SHARED / "mlearn" / "Si" / "training.json").read_text())
    records += json.loads((SHARED / "mlearn" / "Si" / "test.json").read_text())
    mode0 = {
        r["description"].split("strain ")[-1]: r for r in records if "mode 0, strain" in r["description"]
    }
    low, high = mode0["-0.04"], mode0["-0.02"]
    lengths = [r["structure"]["lattice"]["matrix"][0][0] for r in (low, high)]
    d_strain = (lengths[1] - lengths[0]) / np.mean(lengths)
    volume = np.mean([abs(np.linalg.det(r["structure"]["lattice"]["matrix"])) for r in (low, high)])
    from_energy = (high["outputs"]["energy"] - low["outputs"]["energy"]) / d_strain / volume
    from_stress = np.mean([mlearn_stress(r["outputs"]["virial_stress"])[0, 0] for r in (low, high)])
    assert from_stress < 0  # compressed along x: the cell pushes outwards
    assert from_stress == pytest.approx(from_energy, rel=0.05)
    dataset = load_mlearn(SHARED / "mlearn" / "Si", SETTINGS, cache=tmp_path, progress=False)
    assert len(dataset) == 239 and len(dataset.meta.settings["split"]["test"]) == 25


# ----------------------------------------------------------------------------------------- DeePMD
def test_deepmd_layout_with_virial(tmp_path):
    system = tmp_path / "sys"
    (system / "set.000").mkdir(parents=True)
    (system / "type.raw").write_text("0\n1\n1\n")
    (system / "type_map.raw").write_text("O\nH\n")
    rng = np.random.default_rng(0)
    box = np.tile(np.diag([5.0, 6.0, 7.0]).reshape(1, 9), (2, 1))
    coord = (np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]) + 1.0).reshape(1, 9) + rng.normal(
        0, 0.01, (2, 9)
    )
    virial = rng.normal(0, 1, (2, 9))
    for name, value in {
        "box": box,
        "coord": coord,
        "energy": np.array([-1.0, -2.0]),
        "force": rng.normal(0, 1, (2, 9)),
    }.items():
        np.save(system / "set.000" / f"{name}.npy", value.astype(np.float32))
    np.save(system / "set.000" / "virial.npy", virial)
    dataset = load_deepmd(tmp_path, SETTINGS, cache=tmp_path / "cache", progress=False)
    assert len(dataset) == 2 and dataset[1].z.tolist() == [8, 1, 1]
    np.testing.assert_allclose(dataset[1].stress[0].numpy(), -virial[1].reshape(3, 3) / 210.0)
    assert float(dataset[1].y[0, 0]) == -2.0


@pytest.mark.realdata
@needs(SHARED / "water_pbc")
def test_deepmd_real_water_box(tmp_path):
    dataset = load_deepmd(SHARED / "water_pbc", SETTINGS, cache=tmp_path, progress=False)
    assert len(dataset) == 400 and int(dataset[0].natoms) == 192
    assert dataset[0].cell[0, 0, 0] == pytest.approx(12.444661, abs=1e-5)
    assert (dataset[0].z == 8).sum() == 64


# ------------------------------------------------------------------------------------ extended XYZ
def test_extxyz_stress_reaches_the_graphs(tmp_path):
    frames = []
    for k in range(3):
        atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))
        atoms.rattle(0.05, seed=k)
        voigt = np.array([0.01, 0.02, 0.03, 0.004, 0.005, 0.006]) * (k + 1)  # xx yy zz yz xz xy
        atoms.calc = SinglePointCalculator(
            atoms, energy=-7.0 - k, forces=np.full((2, 3), 0.1 * k), stress=voigt
        )
        frames.append(atoms)
    ase.io.write(tmp_path / "cu.xyz", frames)
    dataset = load_structures(tmp_path / "cu.xyz", SETTINGS, cache=tmp_path / "cache", progress=False)
    xx, yy, zz, yz, xz, xy = frames[2].get_stress()
    expected = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    np.testing.assert_allclose(dataset[2].stress[0].numpy(), expected, rtol=1e-6)
    assert dataset[2].stress.shape == (1, 3, 3) and float(dataset[2].y[0, 0]) == -9.0


# ---------------------------------------------------------------------------------- Lennard-Jones
def test_lennard_jones_forces_are_the_analytic_gradient():
    atoms = lennard_jones_clusters(1, 6, 6, seed=5)[0]
    energy, forces = lj_energy_forces(atoms.positions)
    assert energy == atoms.info["energy"]
    h, numeric = 1e-6, np.zeros_like(forces)
    for a in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.positions.copy(), atoms.positions.copy()
            plus[a, k] += h
            minus[a, k] -= h
            numeric[a, k] = -(lj_energy_forces(plus)[0] - lj_energy_forces(minus)[0]) / (2 * h)
    np.testing.assert_allclose(forces, numeric, atol=1e-6)
    two = np.array([[0.0, 0.0, 0.0], [2 ** (1 / 6), 0.0, 0.0]])  # the pair minimum: E = -eps, F = 0
    e_min, f_min = lj_energy_forces(two)
    assert e_min == pytest.approx(-1.0) and np.abs(f_min).max() < 1e-12


def test_lennard_jones_dataset_from_config():
    config = load_config(
        None, ["data.dataset=lennard_jones", "data.targets=[energy]", "data.lennard_jones.count=12"]
    )
    dataset = load_dataset(config, progress=False)
    assert len(dataset) == 12 and dataset.targets.names == ["energy"] and dataset.targets.extensive == [True]
    sizes = dataset.num_atoms()
    assert sizes.min() >= 4 and sizes.max() <= 8
    distances = [np.linalg.norm(a - b) for a in dataset[0].pos.numpy() for b in dataset[0].pos.numpy()]
    assert min(d for d in distances if d > 0) >= 0.9
    again = load_lennard_jones(SETTINGS, count=12)
    np.testing.assert_array_equal(
        again.targets_array(), load_lennard_jones(SETTINGS, count=12).targets_array()
    )
