"""The ASE calculator, committee, relaxation and molecular dynamics with trained potentials."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.io import read as ase_read
from ase.io import write as ase_write
from test_potentials import molecule, potential_module
from typer.testing import CliRunner

from atomgraph.cli.main import app
from atomgraph.data.lennard_jones import lennard_jones_clusters
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.md import Calculator, CommitteeCalculator, relax, run_md
from atomgraph.training.config import load_config

#: NVE energy conservation bound: |E_total(1000 steps) - E_total(0)| / N_atoms, 1 fs steps, 7 atoms.
NVE_DRIFT_BOUND_EV_PER_ATOM = 1e-4  # 0.1 meV/atom (measured ~0.01 meV/atom)


@pytest.fixture(scope="module")
def lj_run(tmp_path_factory):
    """SchNet trained briefly (float64) on Lennard-Jones clusters (eps = 1 eV, sigma = 1 Å)."""
    root = tmp_path_factory.mktemp("lj")
    config = load_config(
        None,
        [
            f"run_dir={root / 'run'}",
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
            "training.accelerator=cpu",
            "training.progress=false",
            "training.precision=64-true",
        ],
    )
    return train_and_evaluate(config, progress=False)


def cluster(n: int = 7, seed: int = 3) -> Atoms:
    atoms = lennard_jones_clusters(1, n, n, min_distance=1.0, seed=seed)[0]
    del atoms.arrays["forces"]
    atoms.info.clear()
    return atoms


def copper(repeat=(2, 2, 2)) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=2)
    return atoms


def test_calculator_passes_ase_numerical_force_and_stress_checks():
    atoms = copper((1, 1, 2))
    atoms.calc = Calculator(potential_module(), skin=0.3)
    forces, stress = atoms.get_forces(), atoms.get_stress()
    assert np.abs(forces).max() > 1e-3 and np.abs(stress).max() > 1e-5
    np.testing.assert_allclose(forces, calculate_numerical_forces(atoms, 1e-5), atol=1e-8)
    np.testing.assert_allclose(stress, calculate_numerical_stress(atoms, 1e-5), atol=1e-9)
    assert atoms.get_potential_energy() == atoms.get_potential_energy(force_consistent=True)
    assert set(Calculator.implemented_properties) == {"energy", "free_energy", "forces", "stress"}


def test_neighbour_list_reuse_equals_rebuild_and_rebuilds_when_needed():
    module = potential_module()
    atoms = copper()
    reuse, rebuild = Calculator(module, skin=0.5), Calculator(module, skin=0.0)
    rng = np.random.default_rng(0)
    for step in range(12):
        atoms.positions += rng.normal(0.0, 0.03, size=atoms.positions.shape)
        if step == 6:
            atoms.wrap()  # atoms jump by a lattice vector: must rebuild, same physics
        for calc in (reuse, rebuild):
            calc.calculate(atoms, ["energy", "forces", "stress"])
        assert reuse.results["energy"] == pytest.approx(rebuild.results["energy"], abs=1e-10)
        np.testing.assert_allclose(reuse.results["forces"], rebuild.results["forces"], atol=1e-10)
        np.testing.assert_allclose(reuse.results["stress"], rebuild.results["stress"], atol=1e-12)
    assert rebuild.builds == 12
    assert 1 < reuse.builds < 12
    builds = reuse.builds
    atoms.set_cell(atoms.cell.array * 1.01, scale_atoms=True)  # a cell change always rebuilds
    reuse.calculate(atoms, ["energy"])
    assert reuse.builds == builds + 1


def test_energy_is_recomputed_after_moving_atoms():
    module = potential_module()
    atoms = molecule()
    atoms.calc = Calculator(module, skin=0.5)
    first = atoms.get_potential_energy()
    atoms.positions[0] += [0.05, 0.0, 0.0]
    moved = atoms.get_potential_energy()
    fresh = Calculator(module, skin=0.0).get_potential_energy(atoms.copy())
    assert moved != first and moved == pytest.approx(fresh, abs=1e-10)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_committee_spread_is_zero_for_identical_members_and_positive_otherwise():
    atoms = copper((1, 1, 2))
    same = CommitteeCalculator([potential_module(0), potential_module(0)])
    same.calculate(atoms, ["energy", "forces"])
    assert same.results["energy_std"] == 0.0 and np.abs(same.results["forces_std"]).max() == 0.0
    committee = CommitteeCalculator([potential_module(0), potential_module(1), potential_module(2)])
    atoms.calc = committee
    assert atoms.get_potential_energy() == pytest.approx(committee.results["energies"].mean())
    assert committee.get_property("energy_std", atoms) > 0.0
    assert (
        committee.results["forces_std"].shape == (len(atoms), 3) and committee.results["forces_std"].max() > 0
    )
    committee.calculate(atoms, ["stress"])
    assert committee.results["stress_std"].shape == (6,) and "energy_std" in committee.results


def test_relaxation_lowers_the_energy_below_fmax(lj_run):
    atoms = cluster()
    atoms.rattle(0.1, seed=1)
    result = relax(atoms, Calculator(lj_run), fmax=0.02, steps=400)
    assert result.converged and result.fmax_end < 0.02
    assert result.energy_end < result.energy_start
    assert np.sqrt((atoms.get_forces() ** 2).sum(1).max()) < 0.02


def test_cell_relaxation_changes_the_cell_and_lowers_the_energy():
    atoms = copper((1, 1, 2))
    cell = atoms.cell.array.copy()
    result = relax(atoms, Calculator(potential_module()), fmax=1e-3, steps=4, cell=True)
    assert result.energy_end < result.energy_start
    assert not np.allclose(atoms.cell.array, cell)


def test_nve_conserves_total_energy(lj_run):
    atoms = cluster()
    calc = Calculator(lj_run)
    relax(atoms, calc, fmax=0.05, steps=200)  # start near a minimum of the model
    result = run_md(atoms, calc, "nve", temperature_K=100.0, timestep_fs=1.0, steps=1000, seed=0)
    assert len(result.energies) == 1001 and result.energies[-1, 2] > 0.0
    assert result.drift_per_atom < NVE_DRIFT_BOUND_EV_PER_ATOM
    fluctuation = np.abs(result.energies[:, 3] - result.energies[0, 3]).max() / len(atoms)
    assert fluctuation < NVE_DRIFT_BOUND_EV_PER_ATOM


def test_langevin_md_writes_trajectory_and_log(tmp_path):
    atoms = copper((1, 1, 2))
    traj, log = tmp_path / "md.traj", tmp_path / "md.log"
    result = run_md(
        atoms,
        Calculator(potential_module()),
        "nvt",
        temperature_K=300.0,
        steps=20,
        trajectory=traj,
        logfile=log,
        loginterval=5,
    )
    assert result.steps_per_s > 0
    assert len(ase_read(traj, ":")) == 5 and len(log.read_text().splitlines()) == 6


def test_cli_relax_and_md(lj_run, tmp_path):
    start = cluster()
    start.rattle(0.05, seed=4)
    ase_write(tmp_path / "start.xyz", start)
    runner = CliRunner()
    out = tmp_path / "relaxed.xyz"
    result = runner.invoke(
        app, ["relax", str(lj_run), str(tmp_path / "start.xyz"), "-o", str(out), "--fmax", "0.05"]
    )
    assert result.exit_code == 0, result.output
    assert "converged" in result.output and out.exists()
    relaxed = ase_read(out)
    assert np.sqrt((relaxed.get_forces() ** 2).sum(1).max()) < 0.05
    args = ["md", str(lj_run), str(out), "--steps", "20", "--ensemble", "nvt", "--interval", "10"]
    args += ["--trajectory", str(tmp_path / "md.traj"), "--logfile", str(tmp_path / "md.log")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "steps/s" in result.output and len(ase_read(tmp_path / "md.traj", ":")) == 3


def test_calculator_uses_float64_runs_and_moves_to_a_dtype():
    calc = Calculator(potential_module(dtype=torch.float32), dtype=torch.float64, skin=0.2)
    assert calc.dtype == torch.float64
    energy = calc.get_potential_energy(molecule())
    assert isinstance(energy, float)
