"""Node-level targets (one label per atom): specs, readouts, normalisation, data, a run end to end."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import random_molecule, write_config
from test_model_contract import CUTOFF, SMALL, contract_names, crystal, molecule
from torch_geometric.data import Batch

from atomgraph.apps.crystals.screening import screen_structures
from atomgraph.data.graph_dataset import apply_reductions
from atomgraph.data.normalization import TargetNormalizer
from atomgraph.data.structures_dataset import load_structures, structures_store
from atomgraph.evaluation.checks import symmetry_checks
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.evaluation.explain import explain
from atomgraph.evaluation.predict import predict_file, read_predictions
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models import build_model, model_card
from atomgraph.nn.target_readout import SumOrMean, resolve_readouts
from atomgraph.outputs.potential import cast_graph
from atomgraph.runs import TrainedRun
from atomgraph.structures import read_all
from atomgraph.targets import TargetSet, TargetSpec, known_target, targets_from_columns
from atomgraph.training.config import ConfigError, load_config
from atomgraph.training.datasets import select_targets

RADIUS = GraphSpec(kind="radius", cutoff=4.0)
BASE = {1: 0.2, 6: -0.1, 8: -0.4}  # e: each element's average "charge"


def charges(atoms) -> np.ndarray:
    """A per-atom label that depends on the atom's surroundings: the element's base value plus a
    smooth sum over the other atoms, weighted by their elements."""
    d = atoms.get_all_distances()
    np.fill_diagonal(d, np.inf)
    pull = np.array([BASE[int(z)] for z in atoms.numbers])
    return np.array([BASE[int(z)] for z in atoms.numbers]) + 0.5 * (np.exp(-d) * pull[None, :]).sum(1)


def molecules(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = random_molecule(rng)
        atoms.arrays["charges"] = charges(atoms)
        atoms.info["energy"] = float(len(atoms))
        out.append(atoms)
    return out


@pytest.fixture
def xyz(tmp_path):
    path = tmp_path / "charged.xyz"
    ase.io.write(path, molecules(30), format="extxyz")
    return path


def test_a_target_set_is_all_node_level_or_all_graph_level():
    charge = TargetSpec("q", "e", "node")
    assert TargetSet([charge]).node_level and charge.node_level
    assert not TargetSet([TargetSpec("gap")]).node_level
    with pytest.raises(ValueError, match="mix node-level"):
        TargetSet([charge, TargetSpec("gap")])
    assert known_target("mulliken").reduction == "node"


def test_node_targets_are_read_out_per_atom_and_nothing_else_is():
    assert resolve_readouts("auto", ["node"], "atom_mean") == ["atom"]
    with pytest.raises(ValueError, match="node-level targets only"):
        resolve_readouts("atom", ["mean"], "atom_mean")
    with pytest.raises(ValueError, match="node-level targets only"):
        resolve_readouts("atom_mean", ["node"], "atom_mean")
    with pytest.raises(ValueError, match="atom-wise outputs"):  # a model that only pools
        model_card("gcn").target_readouts("auto", ["node"])
    per_atom = torch.randn(5, 2)
    batch = torch.tensor([0, 0, 1, 1, 1])
    assert torch.equal(SumOrMean(["atom", "atom"])(per_atom, batch, 2), per_atom)


def test_the_normaliser_subtracts_each_elements_mean(xyz, tmp_path):
    dataset = select_targets(
        load_structures(xyz, RADIUS, ["charges"], tmp_path / "cache", False), ["charges"]
    )
    y, numbers = dataset.targets_array(), dataset.atomic_numbers()
    normalizer = TargetNormalizer([False], node_level=True).double()
    normalizer.fit(y, numbers)
    z = np.concatenate(numbers)
    for element in np.unique(z):
        assert normalizer.atomref[element, 0].item() == pytest.approx(y[z == element, 0].mean())
    batch = Batch.from_data_list([dataset[i] for i in range(4)])
    normalized = normalizer.normalize(batch.y.double(), batch)
    assert normalized.shape == batch.y.shape == (batch.num_nodes, 1)
    assert torch.allclose(normalizer.denormalize(normalized, batch), batch.y.double())
    expected = batch.y.double()[:, 0] - normalizer.atomref[batch.z, 0] - normalizer.mean[0]
    assert torch.allclose(normalized[:, 0], expected / normalizer.std[0])


def test_per_atom_arrays_of_structures_become_node_level_labels(xyz, tmp_path):
    frames = read_all(xyz)  # ASE reads the column as calculator charges; the reader copies them
    dataset = load_structures(xyz, RADIUS, ["charges"], tmp_path / "cache", False)
    assert dataset.meta.node_targets.names == ["charges"] and dataset.targets.names == []
    select_targets(dataset, ["charges"])
    assert dataset.targets.node_level
    assert np.allclose(dataset.targets_array()[:, 0], np.concatenate([f.arrays["charges"] for f in frames]))
    assert dataset[3].y.shape == (len(frames[3]), 1)
    rows = dataset[torch.tensor([4, 1])]  # a view keeps each graph's atoms together, in the view's order
    expected = np.concatenate([frames[4].arrays["charges"], frames[1].arrays["charges"]])
    assert np.allclose(rows.targets_array()[:, 0], expected)

    both = load_structures(xyz, RADIUS, ["energy", "charges"], tmp_path / "cache", False)
    with pytest.raises(ValueError, match="cannot be trained together"):
        select_targets(both, ["energy", "charges"])
    with pytest.raises(ValueError, match="node-level: \\['charges'\\]"):
        select_targets(both, ["gap"])
    with pytest.raises(ValueError, match="read from memory only"):
        structures_store(xyz, RADIUS, ["charges"], tmp_path / "store", progress=False)


def test_a_node_level_run_trains_reports_checks_and_predicts(tmp_path):
    path = tmp_path / "charged.xyz"
    ase.io.write(path, molecules(80, seed=1), format="extxyz")
    config = {
        "name": "charges",
        "seed": 0,
        "run_dir": str(tmp_path / "run"),
        "data": {
            "dataset": "structures",
            "path": str(path),
            "targets": ["charges"],
            "graph": {"cutoff": 4.0},
            "cache": str(tmp_path / "cache"),
        },
        "model": {"name": "schnet", "hidden": 32, "filters": 32, "interactions": 2, "num_rbf": 16},
        "training": {"epochs": 40, "batch_size": 8, "lr": 5e-3, "progress": False, "num_workers": 0},
    }
    loaded = load_config(write_config(tmp_path / "charges.yaml", config))
    run_dir = train_and_evaluate(loaded, progress=False)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    scores = metrics["test"]["charges"]
    n_atoms = metrics["n_test_atoms"]
    assert scores["model"]["n"] == n_atoms > metrics["n_test"]
    # the environment term is learned: better than what the element alone tells
    assert scores["model"]["mae"] < 0.7 * scores["element_mean_baseline"]["mae"]
    assert scores["element_mean_baseline"]["mae"] < scores["mean_baseline"]["mae"]
    assert scores["sum_per_graph"]["n"] == metrics["n_test"]
    table = pd.read_csv(run_dir / "predictions_test.csv")
    assert len(table) == n_atoms and {"id", "atom", "z", "charges_true", "charges_pred"} <= set(table.columns)
    assert (run_dir / "plots" / "error_vs_element_charges.png").exists()

    run = TrainedRun.load(run_dir)
    module = run.module.double()
    graphs = [cast_graph(run.graph.build(atoms), torch.float64) for atoms in molecules(3, seed=7)]
    checks = {c.name: c for c in symmetry_checks(module, graphs)}
    assert checks["permutation"].passed and checks["rotation"].passed  # per-atom outputs follow their atoms

    with pytest.raises(ValueError, match="a value per atom"):  # explain draws one value per molecule
        explain(run_dir, "CCO", tmp_path / "why.png")
    with pytest.raises(ValueError, match="one per atom"):  # screen-crystals ranks one value per structure
        screen_structures(run_dir, tmp_path, tmp_path / "ranked.csv")

    frames = molecules(3, seed=9)
    ase.io.write(tmp_path / "new.xyz", frames, format="extxyz")
    summary = predict_file(run_dir, tmp_path / "new.xyz", tmp_path / "out.csv")
    out = read_predictions(tmp_path / "out.csv")
    assert summary.predicted == 3
    for frame, (_, row) in zip(frames, out.iterrows(), strict=True):
        assert row["atoms"].split() == frame.get_chemical_symbols()
        values = np.array(row["charges"].split(), dtype=float)
        module.float()
        graph = Batch.from_data_list([run.graph.build(frame)])
        with torch.no_grad():
            direct = module(graph)[:, 0].numpy()
        assert np.allclose(values, direct, rtol=1e-5, atol=1e-6)


def test_a_mean_variance_output_refuses_node_targets(xyz, tmp_path):
    config = {
        "name": "gcn_charges",
        "run_dir": str(tmp_path / "run"),
        "data": {
            "dataset": "structures",
            "path": str(xyz),
            "targets": ["charges"],
            "cache": str(tmp_path / "cache"),
        },
        "model": {"name": "schnet"},
        "task": {"uncertainty": "mean_variance"},
        "training": {"epochs": 1, "progress": False},
    }
    loaded = load_config(write_config(tmp_path / "c.yaml", config))
    with pytest.raises((ConfigError, ValueError), match="graph-level targets, not node-level"):
        train_and_evaluate(loaded, progress=False)


def test_a_target_no_structure_has_is_named_with_what_there_is(xyz, tmp_path):
    with pytest.raises(ValueError, match=r"no structure has the target 'charge'.*per-atom arrays.*charges"):
        load_structures(xyz, RADIUS, ["charge"], tmp_path / "cache", False)


ATOM_WISE = [name for name in contract_names() if model_card(name).intensive_readout is not None]


@pytest.mark.parametrize("name", ATOM_WISE)
def test_atom_wise_models_predict_one_value_per_atom(name):
    spec = GraphSpec("radius", CUTOFF)
    torch.manual_seed(0)
    model = build_model(name, graph=spec, reductions=["node"], **SMALL[name]).eval()
    graphs = [spec.build(molecule(1)), spec.build(crystal(2)), spec.build(molecule(3))]
    with torch.no_grad():
        together = model(Batch.from_data_list(graphs))
        alone = torch.cat([model(Batch.from_data_list([g])) for g in graphs])
    assert together.shape == (sum(g.num_nodes for g in graphs), 1)
    assert torch.allclose(together, alone, atol=1e-5)  # each atom's value, whatever else is in the batch


def test_node_level_is_set_by_where_the_labels_live(xyz, tmp_path):
    # a column (one value per row) named like a node-level table entry stays graph-level
    assert targets_from_columns(["mulliken"]).node_level is False
    dataset = select_targets(
        load_structures(xyz, RADIUS, ["charges"], tmp_path / "cache", False), ["charges"]
    )
    with pytest.raises(ValueError, match="set by its labels"):
        apply_reductions(dataset, {"charges": "mean"})
    graph_level = select_targets(
        load_structures(xyz, RADIUS, ["energy"], tmp_path / "cache", False), ["energy"]
    )
    with pytest.raises(ValueError, match="set by its labels"):
        apply_reductions(graph_level, {"energy": "node"})


def test_a_per_atom_vector_is_refused_and_a_structure_without_the_array_is_skipped(tmp_path):
    frames = molecules(6)
    frames[0].arrays.pop("charges")  # the first structure lacks it: still a node-level target
    path = tmp_path / "partial.xyz"
    ase.io.write(path, frames, format="extxyz")
    dataset = load_structures(path, RADIUS, ["charges"], tmp_path / "cache", False)
    assert dataset.meta.node_targets.names == ["charges"] and len(dataset) == 5
    assert "missing" in dataset.meta.skipped[0]["error"]
    for atoms in frames[1:]:
        atoms.arrays["dipoles"] = np.ones((len(atoms), 3))
    ase.io.write(tmp_path / "vectors.xyz", frames[1:], format="extxyz")
    with pytest.raises(ValueError, match=r"'dipoles' has shape \(\d+, 3\): a node-level target is one value"):
        load_structures(tmp_path / "vectors.xyz", RADIUS, ["dipoles"], tmp_path / "cache", False)
