"""Potentials: autograd forces and stress equal finite differences; the loss trains; runs end to end."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pandas as pd
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from conftest import random_molecule
from test_evaluation import _assert_png, keep_saved_figures
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from atomgraph.apps.potentials.lennard_jones import lennard_jones_clusters, load_lennard_jones
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.evaluation.predict import predict_file, predict_potential, read_predictions
from atomgraph.evaluation.report import evaluate_run
from atomgraph.graphs import radius_graph
from atomgraph.graphs.spec import GraphSpec
from atomgraph.outputs.potential import PotentialTask, cast_graph, energy_forces_stress
from atomgraph.runs import TrainedRun
from atomgraph.training.config import ConfigError, load_config
from atomgraph.training.datasets import is_potential
from atomgraph.training.module import AtomgraphModule
from atomgraph.training.run import model_arguments

SCHNET = {"name": "schnet", "hidden": 16, "filters": 16, "interactions": 2, "num_rbf": 12}
GRAPH = GraphSpec(cutoff=4.0).to_dict()
ENERGY = [{"name": "energy", "unit": "eV", "reduction": "sum"}]
OPTIM = {"optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0, "scheduler": "none", "warmup_steps": 0}


def potential_module(seed: int = 0, dtype: torch.dtype = torch.float64, std: float = 3.0) -> AtomgraphModule:
    """A SchNet potential with a non-trivial normaliser (std, per-element references)."""
    torch.manual_seed(seed)
    module = AtomgraphModule(SCHNET, ENERGY, {"kind": "potential"}, OPTIM, graph=GRAPH)
    module.model.to(dtype)
    module.normalizer.std.fill_(std)
    module.normalizer.mean.fill_(-0.3)
    module.normalizer.atomref[:, 0] = -torch.arange(101, dtype=torch.float64) * 0.1
    return module


def periodic_cell() -> Atoms:
    """A rattled triclinic two-atom Cu cell, smaller than the 4 Å cutoff (many images)."""
    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))
    atoms.rattle(0.08, seed=1)
    return atoms


def molecule() -> Atoms:
    return random_molecule(np.random.default_rng(3), 6, 6)


def _energy(module: AtomgraphModule, graph, pos: torch.Tensor, cell: torch.Tensor) -> float:
    """Energy (eV) of ``graph`` with its edges kept and positions/cell replaced."""
    moved = graph.clone()
    moved.pos, moved.cell = pos, cell
    energy = energy_forces_stress(module.model, module.normalizer, moved, forces=False)["energy"]
    return float(energy.detach()[0])


@pytest.mark.parametrize("make", [periodic_cell, molecule], ids=["periodic", "molecule"])
def test_forces_and_stress_equal_finite_differences(make):
    module = potential_module()
    atoms = make()
    graph = Batch.from_data_list([radius_graph(atoms, 4.0, dtype=torch.float64)])
    out = energy_forces_stress(
        module.model, module.normalizer, graph, forces=True, stress=True, training=False
    )
    h = 1e-5
    numeric = np.zeros((len(atoms), 3))
    for a in range(len(atoms)):
        for k in range(3):
            plus, minus = graph.pos.clone(), graph.pos.clone()
            plus[a, k] += h
            minus[a, k] -= h
            numeric[a, k] = -(
                _energy(module, graph, plus, graph.cell) - _energy(module, graph, minus, graph.cell)
            )
    numeric /= 2 * h
    forces = out["forces"].numpy()
    assert np.abs(forces).max() > 1e-3  # a non-trivial check
    np.testing.assert_allclose(forces, numeric, atol=1e-7 * max(1.0, np.abs(forces).max()))
    if not atoms.pbc.all():
        assert torch.isnan(out["stress"]).all()
        return
    volume = abs(np.linalg.det(atoms.cell.array))
    numeric_stress = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            values = []
            for sign in (1, -1):
                strain = torch.eye(3, dtype=torch.float64)
                strain[i, j] += sign * h / 2
                strain[j, i] += sign * h / 2
                values.append(_energy(module, graph, graph.pos @ strain, graph.cell @ strain))
            numeric_stress[i, j] = (values[0] - values[1]) / (2 * h * volume)
    stress = out["stress"][0].numpy()
    assert np.abs(stress).max() > 1e-4
    np.testing.assert_allclose(stress, numeric_stress, atol=1e-8)
    np.testing.assert_allclose(stress, stress.T, atol=1e-12)


def test_forces_are_translation_invariant_and_sum_to_zero():
    module = potential_module()
    graph = radius_graph(molecule(), 4.0, dtype=torch.float64)  # a plain Data works as a batch of one
    out = energy_forces_stress(module.model, module.normalizer, graph, training=False)
    np.testing.assert_allclose(out["forces"].sum(0).numpy(), 0.0, atol=1e-10)
    shifted = graph.clone()
    shifted.pos = shifted.pos + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    moved = energy_forces_stress(module.model, module.normalizer, shifted, training=False)
    assert float(moved["energy"].detach()[0]) == pytest.approx(float(out["energy"].detach()[0]), abs=1e-10)


def test_energy_forces_stress_leaves_the_batch_alone_and_keeps_labels_float64():
    module = potential_module(dtype=torch.float32)
    graph = Batch.from_data_list([radius_graph(periodic_cell(), 4.0, dtype=torch.float64)])
    graph.y = torch.tensor([[-17617.123456]], dtype=torch.float64)
    pos, cell = graph.pos, graph.cell
    cast = cast_graph(graph, torch.float32)
    assert cast.pos.dtype == torch.float32 and cast.y.dtype == torch.float64
    assert graph.pos.dtype == torch.float64  # the original is untouched
    out = energy_forces_stress(module.model, module.normalizer, cast, forces=True, stress=True, training=True)
    assert graph.pos is pos and graph.cell is cell and not graph.pos.requires_grad
    assert out["energy"].dtype == torch.float64  # the float64 normaliser keeps meV resolution
    assert out["forces"].requires_grad  # create_graph for a force loss
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        energy_forces_stress(module.model, module.normalizer, cast)


def test_loss_terms_and_masks():
    task = PotentialTask(energy_weight=2.0, force_weight=10.0, stress_weight=5.0)
    graph = radius_graph(periodic_cell(), 4.0, dtype=torch.float64)
    graph.y = torch.tensor([[1.0]], dtype=torch.float64)
    graph.forces = torch.ones(2, 3, dtype=torch.float64)
    graph.stress = torch.zeros(1, 3, 3, dtype=torch.float64)
    batch = Batch.from_data_list([graph, graph.clone()])
    batch.y[1, 0] = float("nan")  # a missing energy is masked out
    out = {
        "energy": torch.tensor([3.0, 5.0], dtype=torch.float64),
        "forces": torch.zeros(4, 3, dtype=torch.float64),
        "stress": torch.full((2, 3, 3), 0.1, dtype=torch.float64),
    }
    terms = task.loss(out, batch)
    assert float(terms["energy"]) == pytest.approx(1.0)  # ((3 - 1) / 2 atoms)^2
    assert float(terms["forces"]) == pytest.approx(1.0)
    assert float(terms["stress"]) == pytest.approx(0.01)
    assert float(terms["loss"]) == pytest.approx(2.0 + 10.0 + 0.05)
    errors = task.errors(out, batch)
    assert errors["energy_per_atom"].tolist() == [1.0] and len(errors["forces"]) == 12
    assert task.wants(batch) == (True, True)
    assert PotentialTask(stress_weight=0.0).wants(batch) == (True, False)


def test_potential_loss_decreases_on_lennard_jones_clusters():
    torch.manual_seed(0)
    settings = GraphSpec(cutoff=4.0)
    dataset = load_lennard_jones(settings, count=64, min_atoms=4, max_atoms=6, min_distance=1.0)
    module = AtomgraphModule(SCHNET, ENERGY, {"kind": "potential"}, OPTIM, graph=GRAPH)
    module.normalizer.fit(dataset.targets_array(), dataset.atomic_numbers())
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        total = 0.0
        for batch in DataLoader(dataset, batch_size=16, shuffle=False):
            forces, stress = module.task.wants(batch)
            terms = module.task.loss(module.compute(batch, forces, stress, training=True), batch)
            optimizer.zero_grad()
            terms["loss"].backward()
            optimizer.step()
            total += float(terms["loss"].detach())
        losses.append(total)
    assert losses[-1] < 0.5 * losses[0]


def lennard_jones_run_config(run_dir, *overrides: str) -> dict:
    """A small SchNet potential on 60 generated Lennard-Jones clusters (2 epochs, no schedule)."""
    return load_config(
        None,
        [
            f"run_dir={run_dir}",
            "data.dataset=lennard_jones",
            "data.targets=[energy]",
            "data.lennard_jones.count=60",
            "data.graph.cutoff=4.0",
            "task.kind=potential",
            *(f"model.{k}={v}" for k, v in SCHNET.items()),
            "training.epochs=2",
            "training.batch_size=16",
            "training.lr=0.003",
            "training.scheduler=none",
            "training.early_stopping_patience=0",
            "training.accelerator=cpu",
            "training.progress=false",
            *overrides,
        ],
    )


def test_potential_run_end_to_end_in_float64(tmp_path, monkeypatch):
    config = lennard_jones_run_config(tmp_path / "lj", "training.precision=64-true")
    figures = keep_saved_figures(monkeypatch)
    run = train_and_evaluate(config, progress=False)
    drawn = {fig.axes[0].get_title(): fig.axes[0] for fig in figures}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "potential"
    assert metrics["test"]["energy_per_atom"]["unit"] == "meV/atom"
    assert metrics["test"]["forces"]["unit"] == "meV/Å"
    for plot in ("parity_energy.png", "parity_forces.png"):
        _assert_png(run / "plots" / plot)
    # the parity plots show the test predictions: energies per atom, and every force component
    table = pd.read_csv(run / "predictions_test.csv")
    energy = drawn["schnet (test): energy"]
    assert energy.get_xlabel() == "true [eV/atom]"
    expected = np.column_stack([table["energy_true"], table["energy_pred"]]) / table[["natoms"]].to_numpy()
    np.testing.assert_allclose(energy.collections[0].get_offsets(), expected)
    forces = drawn["schnet (test): force components"]
    assert (forces.get_xlabel(), forces.get_ylabel()) == ("true [eV/Å]", "predicted [eV/Å]")
    assert len(forces.collections[0].get_offsets()) == 3 * table["natoms"].sum()
    force_mae = metrics["test"]["forces"]["model"]["mae"] / 1000  # meV/Å -> eV/Å
    assert forces.texts[0].get_text().startswith(f"MAE = {force_mae:.4g} eV/Å\n")
    logged = (run / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "val_force_mae_mev_per_a" in logged and "val_energy_mae_mev_per_atom" in logged
    module = TrainedRun.load(run).module
    assert module.kind == "potential"
    assert next(module.model.parameters()).dtype == torch.float64
    assert module.normalizer.atomref.dtype == torch.float64 and float(module.normalizer.atomref[18, 0]) != 0.0
    dataset = load_lennard_jones(GraphSpec(cutoff=4.0), count=5)
    pred = predict_potential(module, dataset)
    assert pred["energy"].shape == (5,) and pred["forces"].shape == pred["forces_true"].shape
    again = evaluate_run(run, verbose=False)  # `atomgraph evaluate` rebuilds data, split and module
    assert again["test"]["forces"]["model"]["mae"] == pytest.approx(metrics["test"]["forces"]["model"]["mae"])
    ase.io.write(tmp_path / "clusters.xyz", lennard_jones_clusters(3, seed=9))
    table = read_predictions(
        predict_file(run, tmp_path / "clusters.xyz", tmp_path / "pred.csv").output
    )  # energies, eV
    assert table["energy"].notna().all()


def test_task_kind_is_checked():
    assert is_potential({"kind": "potential"}) and not is_potential({})
    with pytest.raises(ValueError, match=r"task\.kind"):
        is_potential({"kind": "forces"})
    with pytest.raises(ValueError, match="energy"):
        AtomgraphModule(SCHNET, [{"name": "gap", "unit": "eV"}], {"kind": "potential"}, OPTIM, graph=GRAPH)


def test_avg_num_neighbors_comes_from_the_training_rows_unless_the_config_sets_it():
    dataset = load_lennard_jones(GraphSpec(cutoff=4.0), count=20)
    train_rows = dataset[torch.arange(12)]
    edges = sum(int(train_rows[i].edge_index.shape[1]) for i in range(12))
    atoms = sum(int(train_rows[i].num_nodes) for i in range(12))
    derived = model_arguments({"model": {"name": "equivariant"}}, dataset, train_rows)
    assert derived["avg_num_neighbors"] == pytest.approx(edges / atoms) and edges / atoms > 2
    given = model_arguments({"model": {"name": "equivariant", "avg_num_neighbors": 7.5}}, dataset, train_rows)
    assert given["avg_num_neighbors"] == 7.5
    assert "avg_num_neighbors" not in model_arguments({"model": {"name": "schnet"}}, dataset, train_rows)
    null = {"model": {"name": "equivariant", "avg_num_neighbors": None}}  # null in YAML: derive it
    assert model_arguments(null, dataset, train_rows)["avg_num_neighbors"] == pytest.approx(edges / atoms)
    # a resumed or fine-tuned run keeps the constant its weights were trained with
    kept = model_arguments(null, dataset, train_rows, inherited={"avg_num_neighbors": 3.25})
    assert kept["avg_num_neighbors"] == 3.25


def test_element_tables_come_from_the_data_and_cannot_grow_when_inherited():
    dataset = load_lennard_jones(GraphSpec(cutoff=4.0), count=6)  # argon only
    assert model_arguments({"model": {"name": "mace"}}, dataset)["elements"] == [18]
    assert "elements" not in model_arguments({"model": {"name": "schnet"}}, dataset)
    kept = model_arguments({"model": {"name": "mace"}}, dataset, inherited={"elements": [10, 18]})
    assert kept["elements"] == [10, 18]  # a resumed or fine-tuned run keeps its weights' table
    with pytest.raises(ConfigError, match=r"Z=\[10\] only .* also holds Z=\[18\]"):
        model_arguments({"model": {"name": "mace"}}, dataset, inherited={"elements": [10]})
