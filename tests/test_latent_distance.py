"""Latent-distance uncertainty: the latent vector is what the head reads, distances are the k nearest
training graphs' mean in standardised units, and the distance scores as a sigma after recalibration."""

from __future__ import annotations

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
    with pytest.raises(ValueError, match="k must be"):
        LatentReference(train, k=200)
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
    from atomgraph.evaluation.latent_distance import _head_module
    from atomgraph.models.registry import build_model

    model = build_model("mace", reductions=["sum"])
    with pytest.raises(ValueError, match="head is one module"):
        _head_module(model)


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


def test_predict_writes_the_recalibrated_latent_distance_and_its_bounds(gcn_run_dir, tmp_path):
    import json
    import os

    from atomgraph.evaluation.calibration import Calibration
    from atomgraph.evaluation.predict import predict_file, read_predictions
    from atomgraph.training.run import LATENT_REFERENCE_FILE

    run_dir, csv = gcn_run_dir
    out = predict_file(run_dir, csv, tmp_path / "p.csv", latent_distance=True).output
    table = read_predictions(out)
    file = run_dir / LATENT_REFERENCE_FILE
    reference, calibration = LatentReference.load(file)
    assert isinstance(calibration, Calibration) and reference.k == 5
    # the reference: the run's training graphs, its scale fitted on the validation split
    run, graphs = _run_and_graphs(run_dir)
    split = json.loads((run_dir / "split.json").read_text())
    train = [graphs[i] for i in split["train"]]
    latents = graph_latents(run.module, graphs)
    distance = reference.distances(latents)
    rebuilt = LatentReference(graph_latents(run.module, train), k=5)  # the stored one keeps float32
    np.testing.assert_allclose(rebuilt.distances(latents), distance, rtol=1e-5)
    np.testing.assert_allclose(table["value_sigma"], distance * calibration.scale[0], rtol=1e-4)
    if np.isfinite(calibration.conformal[0]):
        np.testing.assert_allclose(table["value_high"] - table["value"], distance * calibration.conformal[0],
                                   rtol=1e-4)  # fmt: skip
    assert {"value_low", "value_high"} <= set(table.columns)
    # made once: a second job reads it; worker processes give the same output
    made = file.stat().st_mtime_ns
    predict_file(run_dir, csv, tmp_path / "w.csv", latent_distance=True, workers=2, chunk_rows=9)
    assert file.stat().st_mtime_ns == made
    pd = pytest.importorskip("pandas")
    pd.testing.assert_frame_equal(read_predictions(tmp_path / "w.csv"), table, rtol=1e-5)
    # new weights (a resumed training rewrites the checkpoint): measured again
    checkpoint = run.source
    os.utime(checkpoint, ns=(made + 10**9, made + 10**9))
    predict_file(run_dir, csv, tmp_path / "again.csv", latent_distance=True)
    assert file.stat().st_mtime_ns != made


def test_latent_distance_is_refused_where_it_does_not_apply(gcn_run_dir, tmp_path):
    from atomgraph.evaluation.predict import predict_file

    run_dir, csv = gcn_run_dir
    with pytest.raises(ValueError, match="choose one sigma"):
        predict_file(run_dir, csv, tmp_path / "a.csv", latent_distance=True, mc_samples=3)
    exported = TrainedRun.load(run_dir).export(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="finished run directory"):
        predict_file(exported, csv, tmp_path / "b.csv", latent_distance=True)
