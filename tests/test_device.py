"""Device-agnostic by construction: every registered model, the potentials' forces and stress, a training
run, the ASE calculator and batched prediction give on each device the numbers they give on the CPU.

Each test takes the ``device`` fixture (conftest's :data:`DEVICES`): the CPU case always runs (a model or
graph moved with ``.to(device)`` computes what it did before the move, and a run repeats itself); the
CUDA case is marked ``cuda`` and runs where a CUDA device is present (``pytest -m cuda``), else it is
skipped. Everything is float64, so the CPU and CUDA numbers agree to rounding (CUDA's scatter sums in
another order): the models in float64 by default (conftest's ``float64``), the runs in their own
``training.precision=64-true``.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
from ase import units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from conftest import lj_config
from test_md import copper
from test_model_contract import (
    KINDS,
    NAMES,
    POTENTIALS,
    REDUCTIONS,
    assert_same,
    build,
    crystal,
    graph_of,
    kind_of,
    molecule,
)
from test_potentials import potential_module
from torch_geometric.data import Batch

from atomgraph.data.normalization import TargetNormalizer
from atomgraph.md import Calculator, CommitteeCalculator
from atomgraph.outputs.potential import energy_forces_stress

#: Relative agreement of float64 results between devices (summation order differs on CUDA).
REL = 1e-9


def moved(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """A copy of ``model`` on ``device``; every parameter and buffer went with it."""
    out = copy.deepcopy(model).to(device)
    stayed = [n for n, t in [*out.named_parameters(), *out.named_buffers()] if t.device.type != device.type]
    assert not stayed, f"left on another device by .to({device}): {stayed}"
    return out


def on_cpu(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    assert tensor.device.type == device.type, f"a result on {tensor.device}, expected {device}"
    return tensor.detach().cpu()


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("name", NAMES)
def test_every_model_gives_its_cpu_outputs_on_the_device(name, device):
    model, kind = build(name), kind_of(name)
    batch = Batch.from_data_list([graph_of(kind, s) for s in kind.structures()])
    with torch.no_grad():
        expected = model(batch)
        actual = moved(model, device)(batch.to(device))
    assert expected.shape == (len(kind.structures()), len(REDUCTIONS))
    assert_same(on_cpu(actual, device), expected, f"{name} on {device}", rel=REL)


def energy_forces_stress_and_gradients(model: torch.nn.Module, batch: Batch) -> tuple[dict, list]:
    """Energy, forces and stress with the graph kept, and the parameter gradients of a loss on all three
    (the double backward a force-trained potential takes every step)."""
    normalizer = TargetNormalizer([r == "sum" for r in REDUCTIONS]).to(batch.pos.device)
    out = energy_forces_stress(model, normalizer, batch, stress=True, training=True)
    periodic = out["stress"][~out["stress"].isnan().any(dim=(1, 2))]
    loss = out["energy"].pow(2).sum() + out["forces"].pow(2).sum() + periodic.pow(2).sum()
    model.zero_grad(set_to_none=True)
    loss.backward()
    return out, [p.grad for p in model.parameters()]


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("name", POTENTIALS)
def test_potential_forces_stress_and_their_training_gradients_on_the_device(name, device):
    """A molecule and a periodic cell in one batch: energies, forces, stress and the gradients of a loss
    on them (double backward) equal the CPU's."""
    model = build(name)
    batch = Batch.from_data_list([graph_of(KINDS["radius"], s) for s in (molecule(1), crystal(2))])
    expected, expected_grads = energy_forces_stress_and_gradients(copy.deepcopy(model).train(), batch)
    actual, grads = energy_forces_stress_and_gradients(moved(model, device).train(), batch.to(device))
    for key in ("energy", "forces", "stress"):
        got, want = on_cpu(actual[key], device), expected[key].detach()
        assert torch.equal(got.isnan(), want.isnan()), key  # a molecule's stress is NaN on every device
        assert_same(got.nan_to_num(), want.nan_to_num(), f"{name} {key} on {device}", rel=REL)
    assert float(expected["forces"].detach().abs().max()) > 1e-6
    for (param, _), got, want in zip(model.named_parameters(), grads, expected_grads, strict=True):
        if want is None:
            assert got is None, param
        else:
            assert_same(on_cpu(got, device), want, f"{name} d loss / d {param} on {device}", rel=1e-8)


def test_a_training_run_on_the_device_repeats_the_cpu_run(lj_run, device, tmp_path, monkeypatch):
    """`atomgraph train` with ``training.accelerator`` = the device: the same losses and test metrics as
    the CPU run of the same config, and the checkpoint loads (on the CPU) to the same predictions. The
    work after ``fit`` (the energy-offset refit of the checkpoints, the report's predictions) runs on the
    device too, though Lightning hands the module back on the CPU."""
    import atomgraph.evaluation.predict as predict
    from atomgraph.evaluation.experiment import train_and_evaluate
    from atomgraph.runs import TrainedRun
    from atomgraph.training.module import AtomgraphModule

    used: dict[str, set[str]] = {"refit": set(), "report": set()}
    fit_offset, predict_potential = AtomgraphModule.fit_energy_offset, predict.predict_potential

    def spy_fit_offset(module, *args, **kwargs):
        used["refit"].add(next(module.parameters()).device.type)
        return fit_offset(module, *args, **kwargs)

    def spy_predict_potential(module, *args, **kwargs):
        used["report"].add(next(module.parameters()).device.type)
        return predict_potential(module, *args, **kwargs)

    monkeypatch.setattr(AtomgraphModule, "fit_energy_offset", spy_fit_offset)
    monkeypatch.setattr(predict, "predict_potential", spy_predict_potential)
    run = train_and_evaluate(lj_config(tmp_path / "run", accelerator=device.type), progress=False)
    assert used == {"refit": {device.type}, "report": {device.type}}
    logs = {r: pd.read_csv(r / "logs" / "metrics.csv") for r in (lj_run, run)}
    for column in ("train_loss", "val_loss", "val_force_mae_mev_per_a"):
        want, got = (logs[r][column].dropna().to_numpy() for r in (lj_run, run))
        assert len(want) >= 4 and len(got) == len(want), column
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=column)
    expected, actual = (json.loads((r / "metrics.json").read_text())["test"] for r in (lj_run, run))
    for target in ("energy_per_atom", "energy", "forces"):
        want = expected[target]["model"]["mae"]
        assert actual[target]["model"]["mae"] == pytest.approx(want, rel=1e-6), target
    ours, theirs = (TrainedRun.load(r).module.state_dict() for r in (run, lj_run))
    for key, value in theirs.items():
        assert ours[key].device.type == "cpu", key
        torch.testing.assert_close(ours[key], value, rtol=1e-6, atol=1e-9, msg=key)


def test_the_calculator_and_md_on_the_device_follow_the_cpu(device):
    """Energy, forces and stress of a periodic cell, then 10 NVE steps (the neighbour list reused within
    its skin): the trajectory on the device is the CPU's."""
    module = potential_module()
    trajectories = {}
    for where in ("cpu", device):
        atoms = copper()
        atoms.calc = Calculator(copy.deepcopy(module), skin=0.5, device=where)
        first = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        MaxwellBoltzmannDistribution(atoms, temperature_K=600, rng=np.random.default_rng(0))
        VelocityVerlet(atoms, timestep=1.0 * units.fs).run(10)
        trajectories[str(where)] = (*first, atoms.positions.copy(), atoms.get_potential_energy())
    for got, want in zip(trajectories[str(device)], trajectories["cpu"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)
    assert np.abs(trajectories["cpu"][1]).max() > 1e-3  # the forces are not all zero


def test_the_calculator_runs_where_the_model_is_and_refuses_elements_beyond_its_tables(device):
    module = potential_module().to(device)
    atoms = copper((1, 1, 2))
    atoms.calc = Calculator(module, allow_unseen_elements=True)
    assert atoms.calc.device.type == device.type and next(module.parameters()).device.type == device.type
    energy = atoms.get_potential_energy()
    atoms.numbers[0] = 105  # dubnium: no row in the element tables (Z <= 100)
    with pytest.raises(ValueError, match=r"Z=105 is beyond the potential's element tables \(Z <= 100\)"):
        atoms.get_potential_energy()
    atoms.numbers[0] = 29  # the device still works
    assert atoms.get_potential_energy() == pytest.approx(energy, rel=1e-12)


def test_a_compiled_calculator_gives_the_eager_numbers_across_neighbour_list_rebuilds(device):
    """``Calculator(compile=True)``: energy, forces and stress equal the eager calculator's, before and
    after the atoms move past the skin (a rebuilt list with another number of edges, the same code)."""
    from atomgraph.training.compile import CompiledForward

    module = potential_module()
    results = {}
    for compiled in (False, True):
        atoms = copper((1, 1, 2))
        atoms.calc = Calculator(copy.deepcopy(module), skin=0.2, device=device, compile=compiled)
        found = [atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()]
        atoms.rattle(0.3, seed=4)
        found += [atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()]
        assert atoms.calc.builds == 2
        results[compiled] = found
        forward = atoms.calc.module.model.__dict__.get("forward")
        assert isinstance(forward, CompiledForward) == compiled and not (compiled and forward.failed)
    for got, want in zip(results[True], results[False], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


def test_a_committee_on_the_device_gives_the_cpu_mean_and_spread(device):
    members = [potential_module(seed) for seed in range(3)]
    results = {}
    for where in ("cpu", device):
        atoms = copper((1, 1, 2))
        atoms.calc = CommitteeCalculator([copy.deepcopy(m) for m in members], skin=0.3, device=where)
        atoms.get_forces()
        results[str(where)] = {k: np.asarray(v) for k, v in atoms.calc.results.items()}
    assert set(results[str(device)]) == set(results["cpu"])
    for key, want in results["cpu"].items():
        np.testing.assert_allclose(results[str(device)][key], want, rtol=1e-9, atol=1e-10, err_msg=key)
    assert float(np.max(results["cpu"]["forces_std"])) > 0.0


def test_batched_prediction_on_the_device_equals_the_cpu(lj_run, device, tmp_path):
    """`atomgraph predict --device`: many structures in batches on the device, the CPU's numbers."""
    import ase.io

    from atomgraph.apps.potentials.lennard_jones import lennard_jones_clusters
    from atomgraph.evaluation.predict import predict_file, read_predictions

    structures = tmp_path / "clusters.xyz"
    ase.io.write(structures, lennard_jones_clusters(150, seed=5))  # two prediction batches (128 each)
    tables = {}
    for where in ("cpu", device.type):
        summary = predict_file(lj_run, structures, tmp_path / f"{where}.csv", device=where)
        tables[where] = read_predictions(summary.output)
    assert len(tables["cpu"]) == 150 and tables["cpu"]["energy"].notna().all()
    np.testing.assert_allclose(tables[device.type]["energy"], tables["cpu"]["energy"], rtol=1e-9)


def test_a_structure_beyond_the_element_tables_fails_alone_on_the_device(lj_run, device, tmp_path):
    """An element without a row in the model's tables gets an error on its row; the rows after it are
    still predicted (on CUDA an out-of-range embedding row would be a device-side assert that stops
    every later call)."""
    import ase.io

    from atomgraph.apps.potentials.lennard_jones import lennard_jones_clusters
    from atomgraph.evaluation.predict import predict_file, read_predictions

    clusters = lennard_jones_clusters(4, seed=6)
    clusters[1].numbers[0] = 105
    ase.io.write(tmp_path / "clusters.xyz", clusters)
    table = read_predictions(
        predict_file(lj_run, tmp_path / "clusters.xyz", tmp_path / "out.csv", device=device).output
    )
    assert table["error"].tolist()[::2] == ["", ""] and table["error"][3] == ""
    assert "element Z=105 is beyond the model's element tables (Z <= 100)" in table["error"][1]
    assert table["energy"].isna().tolist() == [False, True, False, False]
