"""The on-disk graph store: records, equality with the in-memory dataset, parallel and resumed builds,
corruption, training from it (one process and DDP on two gloo processes)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SCAFFOLD_SMILES, write_config, write_csv, write_xyz
from test_crystals import MP_LABELS, crystals, write_archive
from test_training import checkpoint_step, csv_config, load, structures_config
from torch_geometric.data import Data

from atomgraph.apps.crystals.dataset import crystals_store, load_crystals
from atomgraph.data.csv_dataset import csv_store, load_csv
from atomgraph.data.graph_store import GraphStore, decode_graph, encode_graph, load_or_build_store
from atomgraph.data.structures_dataset import load_structures, structures_store
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.graphs.spec import GraphSpec, preset
from atomgraph.training.config import ConfigError, load_config
from atomgraph.training.datasets import load_dataset, resolve_run

BOND = GraphSpec(kind="bond", explicit_hydrogens=False)
RADIUS = GraphSpec(cutoff=4.0)


def assert_same_graph(a: Data, b: Data) -> None:
    assert sorted(a.keys()) == sorted(b.keys())
    for key in b.keys():
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        same = a[key] == b[key]
        if a[key].is_floating_point():
            same |= a[key].isnan() & b[key].isnan()  # missing labels
        assert bool(same.all()), key


def assert_same_rows(store, memory) -> None:
    assert len(store) == len(memory)
    for i in range(len(memory)):
        assert_same_graph(store[i], memory[i])
    assert store.meta.ids == memory.meta.ids
    assert np.array_equal(store.num_atoms(), memory.num_atoms())
    assert np.array_equal(store.targets_array(), memory.targets_array(), equal_nan=True)
    assert store.targets_array().dtype == memory.targets_array().dtype
    assert all(
        np.array_equal(a, b) for a, b in zip(store.atomic_numbers(), memory.atomic_numbers(), strict=True)
    )
    assert store.shortest_distance() == pytest.approx(memory.shortest_distance())


def csv_with_a_bad_row(tmp_path: Path) -> Path:
    smiles = [*SCAFFOLD_SMILES[:20], "C1CC(", *SCAFFOLD_SMILES[20:30]]  # row 20 does not parse
    return write_csv(tmp_path / "mols.csv", smiles, value=[0.1 * k for k in range(len(smiles))])


def test_a_record_holds_every_dtype_and_shape():
    graph = Data(
        pos=torch.randn(5, 3),
        z=torch.tensor([1, 6, 8, 1, 1]),
        edge_index=torch.zeros(2, 0, dtype=torch.long),
        pbc=torch.tensor([[True, False, True]]),
        y=torch.randn(1, 3, dtype=torch.float64),
        flags=torch.tensor([3, 250], dtype=torch.uint8),
    )
    back = decode_graph(encode_graph(graph))
    assert_same_graph(Data(**back), graph)
    back["pos"] += 1.0  # decoded tensors own writable memory
    with pytest.raises(ValueError, match="not a graph record"):
        decode_graph(b"\x80\x04junk")
    with pytest.raises(ValueError, match=r"smiles.*not a tensor"):
        encode_graph(Data(z=torch.ones(2), smiles="CC"))


def test_csv_store_equals_the_in_memory_dataset_with_the_bad_row_reported(tmp_path):
    path = csv_with_a_bad_row(tmp_path)
    memory = load_csv(path, "smiles", ["value"], BOND, cache=tmp_path / "cache", progress=False)
    store = csv_store(path, "smiles", ["value"], BOND, cache=tmp_path / "cache", progress=False, shard_size=7)
    assert len(store._shards) == 5  # 31 input rows in shards of 7
    assert_same_rows(store, memory)
    assert (
        [bad["index"] for bad in store.meta.skipped] == [20] == [bad["index"] for bad in memory.meta.skipped]
    )
    assert store.meta.smiles == [s for k, s in enumerate(pd.read_csv(path)["smiles"]) if k != 20]
    view = store[torch.tensor([9, 2, 2])]  # an indexed view, as PyG's
    assert_same_graph(view[0], memory[9])
    assert view.num_atoms().tolist() == memory[torch.tensor([9, 2, 2])].num_atoms().tolist()
    # opened again: no rebuild (the files are untouched), same rows
    stamps = {p.name: p.stat().st_mtime_ns for p in store.directory.iterdir()}
    again = csv_store(path, "smiles", ["value"], BOND, cache=tmp_path / "cache", progress=False, shard_size=7)
    assert {p.name: p.stat().st_mtime_ns for p in again.directory.iterdir()} == stamps
    assert_same_rows(again, memory)


@pytest.mark.slow
def test_a_store_built_by_two_worker_processes_equals_one_built_in_process(tmp_path):
    path = csv_with_a_bad_row(tmp_path)
    serial = csv_store(path, "smiles", ["value"], BOND, cache=tmp_path / "a", progress=False, shard_size=4)
    parallel = csv_store(
        path, "smiles", ["value"], BOND, cache=tmp_path / "b", progress=False, shard_size=4, workers=2
    )
    assert_same_rows(parallel, serial)
    assert parallel.meta.to_dict() == serial.meta.to_dict()


def test_crystal_store_holds_the_in_memory_crystals_and_reports_the_broken_and_missing(tmp_path):
    archive = write_archive(tmp_path, crystals(12))
    spec = preset("cgcnn_crystal")
    memory = load_crystals(archive.parent, spec, workers=1, cache=tmp_path / "cache", progress=False)
    store = crystals_store(archive.parent, spec, cache=tmp_path / "cache", progress=False, shard_size=5)
    by_id = {row_id: i for i, row_id in enumerate(memory.meta.ids)}
    assert sorted(store.meta.ids) == sorted(memory.meta.ids)
    for i, row_id in enumerate(store.meta.ids):
        assert_same_graph(store[i], memory[by_id[row_id]])
    errors = {bad["id"]: bad["error"] for bad in store.meta.skipped}
    expected = {bad["id"]: bad["error"] for bad in memory.meta.skipped}
    assert set(errors) == set(expected) == {"2", "12"}
    assert errors["2"] == expected["2"] and "no structure file" in errors["12"]
    assert (archive.parent / MP_LABELS).exists()


KILLED_BUILD = """
import importlib, sys, time
# the module, not the function of that name that atomgraph.data exports
source = importlib.import_module("atomgraph.data.structures_dataset")
from atomgraph.graphs.spec import GraphSpec
slow, built = source._store_graph, []
def _store_graph(payload, settings):
    time.sleep(0.05)
    built.append(1)
    return slow(payload, settings)
source._store_graph = _store_graph
source.structures_store(sys.argv[1], GraphSpec(cutoff=4.0), cache=sys.argv[2], progress=False, shard_size=6)
print("built", len(built))
"""


def test_a_killed_build_resumes_keeps_finished_shards_and_equals_an_uninterrupted_build(tmp_path):
    xyz = tmp_path / "mols.xyz"
    write_xyz(xyz, n=40, seed=1)
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    process = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(xyz), str(cache)], env=env)
    deadline = time.time() + 120
    while not list(cache.glob("*.store/shard-00001.json")):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.05)
    time.sleep(0.1)  # inside shard 2
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    directory = next(cache.glob("*.store"))
    assert not (directory / "manifest.json").exists()
    with pytest.raises(ValueError, match="not a finished graph store"):
        GraphStore(directory)
    kept = {name: (directory / name).stat().st_mtime_ns for name in ("shard-00000.lmdb", "shard-00001.lmdb")}
    resumed = structures_store(xyz, RADIUS, cache=cache, progress=False, shard_size=6)
    assert {name: (directory / name).stat().st_mtime_ns for name in kept} == kept  # not rebuilt
    fresh = structures_store(xyz, RADIUS, cache=tmp_path / "fresh", progress=False, shard_size=6)
    assert_same_rows(resumed, fresh)
    assert_same_rows(resumed, load_structures(xyz, RADIUS, cache=cache, progress=False))


def test_a_corrupt_shard_is_named_and_only_that_shard_is_rebuilt(tmp_path, caplog):
    xyz = tmp_path / "mols.xyz"
    write_xyz(xyz, n=20, seed=2)
    store = structures_store(xyz, RADIUS, cache=tmp_path, progress=False, shard_size=8)
    directory = store.directory
    shard = directory / "shard-00001.lmdb"
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"shard-00001\.lmdb: corrupt"):
        GraphStore(directory)
    first = (directory / "shard-00000.lmdb").stat().st_mtime_ns
    with caplog.at_level(logging.WARNING):
        rebuilt = structures_store(xyz, RADIUS, cache=tmp_path, progress=False, shard_size=8)
    assert "shard-00001.lmdb" in caplog.text and "rebuilding" in caplog.text
    assert (directory / "shard-00000.lmdb").stat().st_mtime_ns == first
    GraphStore(directory)  # verifies
    assert_same_rows(rebuilt, load_structures(xyz, RADIUS, cache=tmp_path, progress=False))


def test_an_unfinished_store_is_finished_by_load_or_build(tmp_path):
    xyz = tmp_path / "mols.xyz"
    write_xyz(xyz, n=10, seed=3)
    store = structures_store(xyz, RADIUS, cache=tmp_path, progress=False, shard_size=4)
    (store.directory / "manifest.json").unlink()
    (store.directory / "shard-00002.json").unlink()  # as if killed while writing the last shard
    calls = []

    def make_input():
        calls.append(1)
        raise AssertionError("not needed")

    with pytest.raises(AssertionError):
        load_or_build_store(store.directory, make_input)
    assert calls == [1]
    assert len(structures_store(xyz, RADIUS, cache=tmp_path, progress=False, shard_size=4)) == 10


def test_storage_is_one_config_key_and_refused_where_a_dataset_has_no_store(tmp_path):
    config = load_config(None, ["data.dataset=lennard_jones", "data.storage=lmdb", "task.kind=potential"])
    with pytest.raises(ConfigError, match=r"no on-disk store.*'csv'.*data\.storage: memory"):
        resolve_run(config)
    with pytest.raises(ConfigError, match=r"unknown data\.storage 'disk'"):
        resolve_run(load_config(None, ["data.storage=disk"]))


def test_training_from_the_store_equals_training_in_memory(tmp_path):
    path = csv_with_a_bad_row(tmp_path)
    losses = {}
    for storage in ("memory", "lmdb"):
        config = load(tmp_path, csv_config(tmp_path, path, "value", run=storage, epochs=3))
        config["data"]["storage"] = storage
        config["data"]["store"]["shard_size"] = 8
        dataset = load_dataset(config, progress=False)
        assert type(dataset).__name__ == {"memory": "GraphDataset", "lmdb": "GraphStore"}[storage]
        run_dir = train_and_evaluate(config, progress=False)
        logged = pd.read_csv(run_dir / "logs" / "metrics.csv")
        losses[storage] = logged["train_loss"].dropna().to_numpy(), logged["val_loss"].dropna().to_numpy()
        metrics = json.loads((run_dir / "metrics.json").read_text())
        losses[storage] += (metrics["test"]["value"]["model"]["mae"],)
    (train_m, val_m, mae_m), (train_s, val_s, mae_s) = losses["memory"], losses["lmdb"]
    assert len(train_m) == 3
    np.testing.assert_allclose(train_s, train_m, rtol=1e-5)
    np.testing.assert_allclose(val_s, val_m, rtol=1e-5)
    assert mae_s == pytest.approx(mae_m, rel=1e-5)


@pytest.mark.slow
def test_ddp_on_two_gloo_processes_over_the_store_gives_the_one_process_epoch_loss(tmp_path):
    """Two ranks each read half of the store's training rows (the distributed sampler shards it): with
    the weights held still (lr 0) the epoch's mean training loss is exactly the one-process mean."""
    xyz = tmp_path / "mols.xyz"
    write_xyz(xyz, n=40, seed=0)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("MASTER_PORT", None)
    losses = {}
    for run, devices in (("one", 1), ("ddp", 2)):
        config = structures_config(tmp_path, xyz, run=run, epochs=1, lr=0.0)
        config["data"].update(storage="lmdb", store={"shard_size": 16, "workers": 1})
        path = write_config(tmp_path / f"{run}.yaml", config)
        overrides = ["training.accelerator=cpu", f"training.devices={devices}"]
        overrides += ["training.strategy=ddp"] if devices == 2 else []
        result = subprocess.run(
            [sys.executable, "-m", "atomgraph.cli.main", "train", str(path), *overrides],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=env,
        )
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        logged = pd.read_csv(tmp_path / run / "logs" / "metrics.csv")
        losses[run] = float(logged["train_loss"].dropna().iloc[0]), float(logged["val_loss"].dropna().iloc[0])
    assert checkpoint_step(tmp_path / "ddp") == 2  # 32 training rows, 2 ranks, batches of 8
    assert checkpoint_step(tmp_path / "one") == 4
    assert losses["ddp"] == pytest.approx(losses["one"], rel=1e-5)


def test_two_processes_asking_for_the_same_store_at_once_build_it_once(tmp_path):
    """As ranks started together by torchrun or srun: one builds, the other waits and opens it."""
    xyz = tmp_path / "mols.xyz"
    write_xyz(xyz, n=24, seed=4)
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    args = [sys.executable, "-c", KILLED_BUILD, str(xyz), str(cache)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    processes = [subprocess.Popen(args, env=env, **pipes) for _ in range(2)]
    built = []
    for process in processes:
        output, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors
        built.append(int(output.split()[-1]))
    assert sorted(built) == [0, 24]  # every graph built once, by one of them
    store = GraphStore(next(cache.glob("*.store")))  # checksums verified
    assert_same_rows(store, load_structures(xyz, RADIUS, cache=tmp_path / "memory", progress=False))


def test_loader_workers_read_a_store_the_parent_has_open(tmp_path):
    """Forked DataLoader workers open their own LMDB handles (an inherited one is refused by py-lmdb)."""
    from torch_geometric.loader import DataLoader

    xyz = tmp_path / "mols.xyz"
    write_xyz(xyz, n=12, seed=5)
    store = structures_store(xyz, RADIUS, cache=tmp_path, progress=False, shard_size=5)
    store[0]  # the parent reads first: its handles are open when the workers fork
    serial = list(DataLoader(store, batch_size=4))
    forked = list(DataLoader(store, batch_size=4, num_workers=2))
    for a, b in zip(serial, forked, strict=True):
        assert torch.equal(a.pos, b.pos) and torch.equal(a.edge_index, b.edge_index)
    assert store[11].num_nodes == serial[-1].natoms[-1]


def test_virtual_edges_and_hbond_features_stored_as_in_memory(tmp_path):
    path = csv_with_a_bad_row(tmp_path)
    spec = GraphSpec(kind="bond", explicit_hydrogens=False, atom_features="hbond", virtual_edges=True)
    memory = load_csv(path, "smiles", ["value"], spec, cache=tmp_path, progress=False)
    store = csv_store(path, "smiles", ["value"], spec, cache=tmp_path, progress=False, shard_size=16)
    assert_same_rows(store, memory)


@pytest.mark.parametrize("manifest", ['{"version": 0}', "[]", '{"version": 1, "shards": "x"}'])
def test_a_manifest_of_another_version_or_layout_is_rebuilt_not_fatal(tmp_path, manifest):
    xyz = tmp_path / "mols.xyz"
    write_xyz(xyz, n=10, seed=6)
    store = structures_store(xyz, RADIUS, cache=tmp_path, progress=False, shard_size=4)
    (store.directory / "manifest.json").write_text(manifest)
    with pytest.raises(ValueError, match="manifest"):
        GraphStore(store.directory)
    again = structures_store(xyz, RADIUS, cache=tmp_path, progress=False, shard_size=4)
    assert_same_rows(again, store)


def test_a_store_rebuilt_in_this_process_is_read_from_its_new_files(tmp_path):
    """A handle opened before a shard was rebuilt must not keep reading the replaced (deleted) file."""
    xyz = tmp_path / "mols.xyz"
    write_xyz(xyz, n=12, seed=7)
    store = structures_store(xyz, RADIUS, cache=tmp_path, progress=False, shard_size=6)
    before = store[8]  # opens shard 1
    shard = store.directory / "shard-00001.lmdb"
    shard.write_bytes(b"\0" * shard.stat().st_size)  # wiped: rebuilt on the next open
    rebuilt = structures_store(xyz, RADIUS, cache=tmp_path, progress=False, shard_size=6)
    assert_same_graph(rebuilt[8], before)


def test_fairchem_aselmdb_files_are_a_structure_source_in_memory_and_on_disk(tmp_path):
    """fairchem's ASE-LMDB format, written by ASE's own backend, read frame by frame."""
    import ase.db
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = write_xyz(tmp_path / "mols.xyz", n=9, seed=8)
    path = tmp_path / "mols.aselmdb"
    rng = np.random.default_rng(0)
    with ase.db.connect(str(path), type="aselmdb") as db:
        for atoms in frames:
            atoms = atoms.copy()
            forces = rng.normal(size=(len(atoms), 3))
            atoms.calc = SinglePointCalculator(atoms, energy=atoms.info.pop("energy"), forces=forces)
            db.write(atoms)
    memory = load_structures(path, RADIUS, cache=tmp_path, progress=False)
    assert len(memory) == len(frames) == 9
    np.testing.assert_allclose(memory.targets_array()[:, 0], [a.info["energy"] for a in frames], rtol=1e-6)
    store = structures_store(path, RADIUS, cache=tmp_path, progress=False, shard_size=4)
    assert_same_rows(store, memory)
    assert store[3].forces.shape == (len(frames[3]), 3)
    assert torch.equal(store[3].forces, memory[3].forces)
