"""Latent-distance uncertainty: the latent vector is what the head reads, distances are the k nearest
training graphs' mean in standardised units, and the distance scores as a sigma after recalibration."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from conftest import SCAFFOLD_SMILES, write_csv, write_xyz
from test_training import csv_config, load, structures_config
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.evaluation.latent_distance import (
    FLOOR,
    LatentReference,
    graph_latents,
    latent_distance_sigma,
)
from atomgraph.evaluation.predict import predict_graphs
from atomgraph.evaluation.uncertainty_report import score_uncertainty
from atomgraph.runs import TrainedRun
from atomgraph.training.datasets import load_dataset


def _run_and_graphs(run_dir):
    run = TrainedRun.load(run_dir)
    dataset = load_dataset(run.config, run.graph, progress=False)
    return run, [dataset[i] for i in range(len(dataset))]


@pytest.fixture(scope="module")
def gcn_run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent_gcn")
    csv = write_csv(root / "mols.csv", SCAFFOLD_SMILES, value=[len(s) * 0.1 for s in SCAFFOLD_SMILES])
    config = csv_config(root, csv, "value", epochs=2)
    config["model"] = {"name": "gcn", "hidden": 16, "layers": 2}
    return train_and_evaluate(load(root, config), progress=False), csv


@pytest.fixture(scope="module")
def gcn_run(gcn_run_dir):
    return _run_and_graphs(gcn_run_dir[0])


@pytest.fixture(scope="module")
def schnet_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent_schnet")
    xyz = root / "mols.xyz"
    write_xyz(xyz, n=20, seed=3)
    return _run_and_graphs(
        train_and_evaluate(load(root, structures_config(root, xyz, epochs=1)), progress=False)
    )


def test_distances_are_the_k_nearest_training_points_in_standardised_units():
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, (200, 3)) * np.array([1.0, 10.0, 0.1])  # very different widths
    new = rng.normal(0, 1, (30, 3)) * np.array([1.0, 10.0, 0.1])
    reference = LatentReference(train, k=4)
    mean, std = train.mean(0), train.std(0)
    pairwise = np.linalg.norm(((new - mean) / std)[:, None] - ((train - mean) / std)[None], axis=-1)
    expected = np.sort(pairwise, axis=1)[:, :4].mean(1)
    np.testing.assert_allclose(reference.distances(new), expected, rtol=1e-10)
    # a training point's distance to itself is 0: with k = 1 it gets the floor, not 0
    one = LatentReference(train, k=1)
    own = np.sort(np.linalg.norm(((train - mean) / std)[:, None] - ((train - mean) / std)[None], axis=-1), 1)
    assert one.floor == pytest.approx(FLOOR * np.median(own[:, 1]))
    np.testing.assert_allclose(one.distances(train[:5]), one.floor)
    far = np.array([[0.0, 500.0, 0.0]])
    assert reference.distances(far)[0] > 10 * expected.max()
    # more neighbours than training graphs: the mean over all of them
    everything = np.linalg.norm(((new - mean) / std)[:, None] - ((train - mean) / std)[None], axis=-1).mean(1)
    np.testing.assert_allclose(LatentReference(train, k=500).distances(new), everything, rtol=1e-10)
    with pytest.raises(ValueError, match="k must be"):
        LatentReference(train, k=0)
    with pytest.raises(ValueError, match="training latents"):
        LatentReference(train[:1], k=1)


def test_the_latent_of_a_pooled_model_is_its_pooled_state(gcn_run):
    run, graphs = gcn_run
    model = run.module.model
    latents = graph_latents(run.module, graphs, batch_size=7)  # several batches
    batch = Batch.from_data_list(graphs)
    run.module.eval()
    with torch.no_grad():
        pooled = model.readout(model.jump(model.node_states(batch)), batch.batch, batch.num_graphs)
    np.testing.assert_allclose(latents, pooled.double().numpy(), rtol=1e-5, atol=1e-6)
    assert latents.shape == (len(graphs), model.readout.out_dim)


def test_the_latent_of_an_atomwise_model_is_its_mean_atom_state(schnet_run):
    run, graphs = schnet_run
    latents = graph_latents(run.module, graphs, batch_size=6)
    batch = Batch.from_data_list(graphs)
    run.module.eval()
    with torch.no_grad():
        atoms = run.module.model.atom_states(batch)
    expected = scatter(atoms, batch.batch, dim=0, dim_size=batch.num_graphs, reduce="mean")
    np.testing.assert_allclose(latents, expected.double().numpy(), rtol=1e-5, atol=1e-6)


def test_a_head_of_several_modules_is_refused():
    from atomgraph.evaluation.latent_distance import head_module
    from atomgraph.models.registry import build_model

    model = build_model("mace", reductions=["sum"])
    with pytest.raises(ValueError, match="head is one module"):
        head_module(model)


def test_latent_distance_scores_as_a_recalibrated_sigma(gcn_run, tmp_path):
    run, graphs = gcn_run
    train, val, test = graphs[:30], graphs[30:45], graphs[45:]
    (mu_val, d_val), (mu_test, d_test) = latent_distance_sigma(run.module, train, [val, test], k=3)
    np.testing.assert_allclose(mu_test, predict_graphs(run.module, test))
    assert d_test.shape == mu_test.shape and (d_test > 0).all()
    y_val = np.array([[float(g.y[0, 0])] for g in val])
    y_test = np.array([[float(g.y[0, 0])] for g in test])
    entries, scaled, _ = score_uncertainty(
        run.module.info, y_val, mu_val, d_val, y_test, mu_test, d_test, tmp_path, "latent distance"
    )
    entry = entries[run.module.info.names[0]]
    scale = entry["uncertainty_recalibrated"]["scale"]
    np.testing.assert_allclose(scaled, d_test * scale)
    assert scale == pytest.approx(np.sqrt(np.mean(((y_val - mu_val) / d_val) ** 2)))
    assert (tmp_path / "calibration.json").exists()


def test_predict_writes_the_recalibrated_latent_distance_and_its_bounds(gcn_run_dir, tmp_path, monkeypatch):
    import json
    import os

    from atomgraph.evaluation.calibration import Calibration
    from atomgraph.evaluation.predict import predict_file, read_predictions
    from atomgraph.training.run_files import LATENT_REFERENCE_FILE

    run_dir, csv = gcn_run_dir
    table = read_predictions(predict_file(run_dir, csv, tmp_path / "p.csv", latent_distance=True).output)
    file = run_dir / LATENT_REFERENCE_FILE
    reference, calibration = LatentReference.load(file)
    assert reference.k == 5
    # the reference: the run's training graphs; the scale fitted on its validation split
    run, graphs = _run_and_graphs(run_dir)
    split = json.loads((run_dir / "split.json").read_text())
    latents = graph_latents(run.module, graphs)
    distance = reference.distances(latents)
    rebuilt = LatentReference(graph_latents(run.module, [graphs[i] for i in split["train"]]), k=5)
    np.testing.assert_allclose(rebuilt.distances(latents), distance, rtol=1e-5)  # stored in float32
    val = split["val"]
    y_val = np.array([float(graphs[i].y[0, 0]) for i in val])
    error = y_val - predict_graphs(run.module, [graphs[i] for i in val])[:, 0]
    assert calibration.scale[0] == pytest.approx(np.sqrt(np.mean((error / distance[val]) ** 2)), rel=1e-4)
    np.testing.assert_allclose(table["value_sigma"], distance * calibration.scale[0], rtol=1e-4)
    # 12 validation rows are too few for a 95 % conformal interval: the bounds are infinite
    assert np.isinf(calibration.conformal[0]) and np.isinf(table["value_high"]).all()
    # with a finite one (a larger validation split), mean -+ q * distance
    known = Calibration(scale=[2.0], conformal=[3.0], coverage=0.95, n=[100])
    reference.save(file, known)
    bounded = read_predictions(predict_file(run_dir, csv, tmp_path / "q.csv", latent_distance=True).output)
    np.testing.assert_allclose(bounded["value_sigma"], 2.0 * distance, rtol=1e-4)
    np.testing.assert_allclose(bounded["value_high"] - bounded["value"], 3.0 * distance, rtol=1e-4)
    np.testing.assert_allclose(bounded["value"] - bounded["value_low"], 3.0 * distance, rtol=1e-4)
    # kept: worker processes read the same file and give the same output
    made = file.stat().st_mtime_ns
    import pandas as pd

    import atomgraph.evaluation.predict as predict_module

    for fork in (True, False) if sys.platform.startswith("linux") else (False,):
        monkeypatch.setattr(predict_module, "FORK_WORKERS", fork)  # spawned workers load the file
        predict_file(run_dir, csv, tmp_path / "w.csv", latent_distance=True, workers=2, chunk_rows=9)
        pd.testing.assert_frame_equal(read_predictions(tmp_path / "w.csv"), bounded, rtol=1e-5)
    assert file.stat().st_mtime_ns == made
    # measured again for new weights (a resumed training rewrites the checkpoint) ...
    os.utime(run.source, ns=(made + 10**9, made + 10**9))
    predict_file(run_dir, csv, tmp_path / "again.csv", latent_distance=True)
    assert LatentReference.load(file)[1].scale == calibration.scale
    # ... and for a damaged file
    file.write_bytes(b"not a zip")
    predict_file(run_dir, csv, tmp_path / "again.csv", latent_distance=True)
    assert LatentReference.load(file)[1].scale == calibration.scale
    # ... and for another k
    from atomgraph.evaluation.latent_distance import run_latent_reference

    file_again, reference_again, _ = run_latent_reference(run_dir, run, k=3)
    assert reference_again.k == 3 and LatentReference.load(file_again)[0].k == 3


def test_latent_distance_is_refused_where_it_does_not_apply(gcn_run_dir, tmp_path):
    from atomgraph.evaluation.predict import predict_file

    run_dir, csv = gcn_run_dir
    with pytest.raises(ValueError, match="choose one sigma"):
        predict_file(run_dir, csv, tmp_path / "a.csv", latent_distance=True, mc_samples=3)
    exported = TrainedRun.load(run_dir).export(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="finished run directory"):
        predict_file(exported, csv, tmp_path / "b.csv", latent_distance=True)
