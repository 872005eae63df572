"""The ASE calculator, committee, relaxation and molecular dynamics with trained potentials."""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.io import read as ase_read
from ase.io import write as ase_write
from test_potentials import molecule, potential_module
from torch_geometric.data import Batch
from typer.testing import CliRunner

from atomgraph.apps.potentials.lennard_jones import lennard_jones_clusters
from atomgraph.cli.main import app
from atomgraph.graphs import radius_graph
from atomgraph.md import Calculator, CommitteeCalculator, relax, run_md
from atomgraph.outputs.potential import energy_forces_stress
from atomgraph.runs import TrainedRun

#: NVE energy conservation bound: |E_total(1000 steps) - E_total(0)| / N_atoms, 1 fs steps, 7 atoms.
NVE_DRIFT_BOUND_EV_PER_ATOM = 1e-4  # 0.1 meV/atom (measured ~0.01 meV/atom)


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
    assert result.steps == 20 and result.natoms == len(atoms)
    np.testing.assert_array_equal(result.energies[:, 0], np.arange(21))
    np.testing.assert_allclose(result.energies[:, 3], result.energies[:, 1] + result.energies[:, 2])
    frames = ase_read(traj, ":")
    assert len(frames) == 5 and np.allclose(frames[-1].positions, atoms.positions)
    lines = log.read_text().splitlines()
    assert len(lines) == 6 and lines[0].split() == ["Time[ps]", "Etot[eV]", "Epot[eV]", "Ekin[eV]", "T[K]"]
    logged = np.array([line.split() for line in lines[1:]], dtype=float)  # steps 0, 5, 10, 15, 20
    np.testing.assert_allclose(logged[:, 0], np.arange(5) * 5 * 0.5e-3, atol=1e-4)  # 0.5 fs steps, in ps
    np.testing.assert_allclose(logged[:, 1:4], result.energies[::5, [3, 1, 2]], atol=1e-4)
    kinetic_temperature = 2 * result.energies[::5, 2] / (3 * len(atoms) * units.kB)
    np.testing.assert_allclose(logged[:, 4], kinetic_temperature, atol=0.06)


class _Einstein(AseCalculator):
    """Every atom tied to its own site by a spring: E = k/2 sum |r - r0|^2 (independent oscillators)."""

    implemented_properties: ClassVar[list[str]] = ["energy", "forces"]

    def __init__(self, sites: np.ndarray, k: float):
        super().__init__()
        self.sites, self.k = sites.copy(), k

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions - self.sites
        self.results = {"energy": 0.5 * self.k * float((d**2).sum()), "forces": -self.k * d}


def test_langevin_brings_a_harmonic_solid_to_the_target_temperature():
    """216 H atoms on springs (k = 1 eV/Å², period 64 fs), started at rest at their sites (0 K).

    Equipartition: in equilibrium <E_kin> = <E_pot> = 3N/2 kB T. The instantaneous temperature of 3N
    quadratic terms fluctuates by sqrt(2 / 3N) = 5.6 %; Langevin friction decorrelates the energies
    within 1/gamma = 20 fs, so the average over 800 fs after 200 fs (10/gamma) of equilibration has a
    standard error of at most 5.6 % * sqrt(2 * 20 / 800) = 1.2 %. Allowed: 4 standard errors, 5 %
    (observed over 12 seeds: -0.3 % +- 0.7 %). 1000 steps, about a second.
    """
    grid = np.stack(np.meshgrid(*[np.arange(6.0)] * 3, indexing="ij"), -1).reshape(-1, 3) * 3.0
    atoms = Atoms(f"H{len(grid)}", positions=grid)
    target = 500.0  # not run_md's default
    result = run_md(
        atoms,
        _Einstein(grid, k=1.0),
        "nvt",
        temperature_K=target,
        timestep_fs=1.0,
        steps=1000,
        friction_per_fs=0.05,
        seed=0,
        init_velocities=False,
    )
    to_kelvin = 2.0 / (3 * len(atoms) * units.kB)
    kinetic, potential = result.energies[:, 2] * to_kelvin, result.energies[:, 1] * to_kelvin
    assert kinetic[0] == 0.0 and potential[0] == 0.0
    assert kinetic[:5].mean() < 0.25 * target  # it starts cold: the thermostat does the heating
    equilibrium = slice(200, None)
    assert kinetic[equilibrium].mean() == pytest.approx(target, rel=0.05)
    assert potential[equilibrium].mean() == pytest.approx(target, rel=0.05)
    # the fluctuations are canonical too: the 5.6 % above (within 25 %), not NVE's or a frozen system's
    assert np.std(kinetic[equilibrium]) / target == pytest.approx(np.sqrt(2 / (3 * len(atoms))), rel=0.25)


# the rattled start has a pair closer than the training data: the calculator says so, as it should
@pytest.mark.filterwarnings("ignore:.*closer than any pair in the training data")
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


def test_calculator_in_float64_agrees_with_float32_the_model_and_finite_differences():
    atoms = molecule()
    # the same float32 weights (same seed), one calculator moving them to float64
    calc64 = Calculator(potential_module(dtype=torch.float32), dtype=torch.float64, skin=0.2)
    calc32 = Calculator(potential_module(dtype=torch.float32), skin=0.2)
    assert calc64.dtype == torch.float64 and calc32.dtype == torch.float32
    assert all(p.dtype == torch.float64 for p in calc64.module.model.parameters())
    energy64, forces64 = calc64.get_potential_energy(atoms), calc64.get_forces(atoms)
    energy32, forces32 = calc32.get_potential_energy(atoms), calc32.get_forces(atoms)
    assert np.abs(forces64).max() > 1e-3 and forces64.dtype == np.float64

    # both precisions compute the same function, to float32 rounding
    assert energy32 == pytest.approx(energy64, rel=1e-6)
    np.testing.assert_allclose(forces32, forces64, atol=1e-6)

    # the calculator adds nothing: a direct float64 evaluation of the model on a fresh graph
    module = potential_module(dtype=torch.float64)  # the same weights cast to float64
    graph = Batch.from_data_list([radius_graph(atoms, 4.0, dtype=torch.float64)])
    direct = energy_forces_stress(module.model, module.normalizer, graph, forces=True, training=False)
    assert energy64 == pytest.approx(float(direct["energy"].detach().sum()), abs=1e-10)
    np.testing.assert_allclose(forces64, direct["forces"].detach().numpy(), atol=1e-10)

    # central differences (h = 1e-4 Å): float64 forces are the energy's gradient to 1e-8 eV/Å (measured
    # 1e-10), while float32 rounding of the energy makes differences ~1e-3 eV/Å off
    atoms.calc = calc64
    error64 = np.abs(forces64 - calculate_numerical_forces(atoms, 1e-4)).max()
    atoms.calc = calc32
    error32 = np.abs(forces32 - calculate_numerical_forces(atoms, 1e-4)).max()
    assert error64 < 1e-8
    assert error32 > 1e-5


def test_atoms_closer_than_any_training_pair_are_warned_about_once(lj_run):
    """The run records the closest pair of its training clusters; the calculator warns below it."""
    run = TrainedRun.load(lj_run)
    shortest = run.module.hparams["shortest_distance"]
    assert 1.0 <= shortest < 1.3  # clusters drawn with min_distance = 1.0 Å
    calc = Calculator(run)
    atoms = cluster()
    atoms.calc = calc
    atoms.get_potential_energy()
    assert calc.close_contacts == 0
    atoms.positions[1] = atoms.positions[0] + [0.6, 0.0, 0.0]
    with pytest.warns(UserWarning, match=r"atoms 0 and 1 are 0\.600 Å apart, closer than any pair in"):
        atoms.get_potential_energy()
    atoms.positions[1] += [0.01, 0.0, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        atoms.get_potential_energy()  # counted, not warned again
    assert calc.close_contacts == 2


def test_importing_the_calculator_loads_neither_the_training_stack_nor_every_model():
    """``from atomgraph.md import Calculator`` costs torch, PyG and ASE, not Lightning or e3nn: the models
    are imported when a run is loaded, the one it needs (the registry imports them on first look-up)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from atomgraph.md import Calculator\n"
        "heavy = ['lightning', 'e3nn', 'atomgraph.runs', 'atomgraph.models.equivariant', 'gemmi']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_relax_is_the_function_even_after_its_submodule_was_imported():
    import subprocess
    import sys

    code = (
        "import atomgraph.md.relax\n"
        "from atomgraph.md import relax, Calculator\n"
        "print(callable(relax), Calculator.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "Calculator"]


def test_a_bare_model_is_a_calculator_with_its_output_as_the_energy(float64):
    """No run needed: a model from the registry (or one's own) drives ASE; energy, forces and stress are
    the model's output and its autograd derivatives, as energy_forces_stress gives them."""
    from atomgraph.graphs.spec import GraphSpec
    from atomgraph.models import build_model
    from atomgraph.outputs.potential import energy_forces_stress

    torch.manual_seed(0)
    spec = GraphSpec("radius", 4.0)
    model = build_model("schnet", graph=spec, hidden=8, filters=8, interactions=1, num_rbf=6).double()
    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=3)
    atoms.calc = Calculator(model, allow_unseen_elements=True)
    graph = Batch.from_data_list([radius_graph(atoms, 4.0)])

    class Identity(torch.nn.Module):
        def denormalize(self, pred, graph):
            return pred

    expected = energy_forces_stress(model, Identity(), graph, forces=True, stress=True, training=False)
    assert atoms.get_potential_energy() == pytest.approx(float(expected["energy"][0].detach()), rel=1e-12)
    np.testing.assert_allclose(
        atoms.get_forces(), expected["forces"].detach().numpy(), rtol=1e-10, atol=1e-12
    )
    stress = expected["stress"][0].detach().numpy()
    np.testing.assert_allclose(atoms.get_stress(voigt=False), stress, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="graph= is for bare models"):
        Calculator(potential_module(), graph=GraphSpec("radius", 3.0))
