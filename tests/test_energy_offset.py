"""The constant energy offset of potentials is fitted from the training labels, not left to training
(issue 17, bug 8): before training the untrained model predicts the reference energies, and every
epoch refits the offset from its training residuals, so a force-dominated run keeps no shift."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_potentials import lennard_jones_run_config
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from atomgraph.apps.potentials.lennard_jones import load_lennard_jones
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.evaluation.predict import predict_potential
from atomgraph.graphs.spec import GraphSpec
from atomgraph.outputs.energy_offset import EnergyOffsetFit
from atomgraph.runs import TrainedRun
from atomgraph.training.module import AtomgraphModule

SCHNET = {"name": "schnet", "hidden": 16, "filters": 16, "interactions": 2, "num_rbf": 12}
ENERGY = [{"name": "energy", "unit": "eV", "reduction": "sum"}]
OPTIM = {"optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0, "scheduler": "none", "warmup_steps": 0}


def _graphs(rng: np.random.Generator, count: int, elements: list[int]) -> Batch:
    graphs = [Data(z=torch.as_tensor(rng.choice(elements, size=rng.integers(2, 7)))) for _ in range(count)]
    for g in graphs:
        g.num_nodes = len(g.z)
    return Batch.from_data_list(graphs)


def test_per_element_offsets_are_recovered_exactly():
    rng = np.random.default_rng(0)
    batch = _graphs(rng, 40, [1, 6, 8])
    true = torch.zeros(101, dtype=torch.float64)
    true[[1, 6, 8]] = torch.tensor([-0.5, 1.25, 3.0], dtype=torch.float64)
    counts = torch.zeros(batch.num_graphs, 101, dtype=torch.float64)
    counts.index_put_((batch.batch, batch.z), torch.ones(len(batch.z), dtype=torch.float64), accumulate=True)
    residual = counts @ true
    residual[3] = float("nan")  # an unlabelled graph is skipped
    fit = EnergyOffsetFit(100)
    fit.add(batch, residual[:20] if False else residual)
    torch.testing.assert_close(fit.solve(), true, rtol=0, atol=1e-10)


def test_one_composition_gets_its_mean_residual():
    batch = Batch.from_data_list([Data(z=torch.tensor([6, 1, 1, 1, 1]), num_nodes=5) for _ in range(8)])
    residual = torch.linspace(-1.0, 3.0, 8, dtype=torch.float64)
    fit = EnergyOffsetFit(100)
    for part in (slice(0, 3), slice(3, 8)):  # accumulated over batches
        fit.add(Batch.from_data_list(batch.to_data_list()[part]), residual[part])
    delta = fit.solve()
    assert float(delta[6] + 4 * delta[1]) == pytest.approx(float(residual.mean()), abs=1e-12)
    assert float(delta.abs().sum() - delta[[1, 6]].abs().sum()) == 0.0


def _offset(module: AtomgraphModule, dataset) -> tuple[float, float]:
    """(atom-weighted mean signed energy error, MAE) in eV: with one element the least-squares offset
    makes sum_g n_g (Ê_g - E_g) zero."""
    pred = predict_potential(module, dataset)
    errors = pred["energy"] - pred["energy_true"]
    return float(np.sum(pred["natoms"] * errors) / np.sum(pred["natoms"])), float(np.abs(errors).mean())


def test_an_untrained_potential_starts_at_the_reference_energies():
    torch.manual_seed(0)
    dataset = load_lennard_jones(GraphSpec(cutoff=4.0), count=40, min_atoms=4, max_atoms=6, min_distance=1.0)
    module = AtomgraphModule(
        SCHNET, ENERGY, {"kind": "potential"}, OPTIM, graph=GraphSpec(cutoff=4.0).to_dict()
    )
    module.normalizer.fit(dataset.targets_array(), dataset.atomic_numbers())
    spread = float(np.std(dataset.targets_array()))
    before, mae_before = _offset(module, dataset)
    assert abs(before) > 0.5 * mae_before  # a random readout is off by a constant
    module.fit_energy_offset(DataLoader(dataset, batch_size=16))
    after, mae_after = _offset(module, dataset)
    assert abs(after) < 1e-6 * spread and mae_after < mae_before


def test_a_force_only_run_keeps_no_energy_offset(tmp_path):
    """Energy weight 0: nothing but the fitted offset sets the energy's constant."""
    config = lennard_jones_run_config(
        tmp_path / "lj", "task.energy_weight=0.0", "training.epochs=3", "training.batch_size=8"
    )
    run = train_and_evaluate(config, progress=False)
    metrics = json.loads((run / "metrics.json").read_text())["test"]["energy"]
    assert set(metrics) >= {"model", "offset", "model_offset_removed"}
    split = json.loads((run / "split.json").read_text())
    train = load_lennard_jones(GraphSpec(cutoff=4.0), count=60)[torch.as_tensor(split["train"])]
    for which in ("best", "last"):  # what is evaluated and what a resume continues from
        offset, mae = _offset(TrainedRun.load(run, which).module, train)
        assert abs(offset) < 1e-6 * mae  # float32 model outputs
