"""The spine end to end: the graph a run was trained on is the graph every consumer builds, the run
record holds it exactly, TrainedRun loads runs, checkpoints and exports safely, old checkpoints still
load, and a resumed or re-trained run never silently changes a finished one."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from ase import Atoms
from ase.build import bulk
from conftest import write_config, write_csv
from test_crystals import crystal_config
from test_training import FAST, csv_config, load

from atomgraph.apps.crystals.cif_archive import iter_archive, parse_structure
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.evaluation.predict import predict_file, predict_graphs, read_predictions
from atomgraph.graphs.spec import GraphSpec, preset
from atomgraph.md import Calculator
from atomgraph.runs import RunLoadError, TrainedRun, legacy_hyper_parameters
from atomgraph.training.config import ConfigError, load_config
from atomgraph.training.datasets import load_dataset

FROZEN = Path(__file__).parent / "data" / "frozen_schnet.pt"


def edge_set(graph) -> set[tuple[int, int, int, int, int]]:
    """(source, target, shift) of every edge: equal sets mean identical graphs, whatever the order."""
    shifts = graph.edge_shift.round().long().tolist()
    pairs = graph.edge_index.t().tolist()
    return {(j, i, *s) for (j, i), s in zip(pairs, shifts, strict=True)}


# ------------------------------------------------------------------------------ crystals at 8 / 12


@pytest.fixture(scope="module")
def cgcnn_run(tmp_path_factory):
    """A tiny CGCNN trained on a config that names only ``data.graph: cgcnn_crystal``."""
    tmp_path = tmp_path_factory.mktemp("cgcnn")
    config = crystal_config(tmp_path)
    config["data"]["graph"] = {"preset": "cgcnn_crystal"}
    return tmp_path, train_and_evaluate(config, progress=False)


def test_crystal_run_records_the_preset_and_every_consumer_builds_the_training_graph(cgcnn_run):
    tmp_path, run_dir = cgcnn_run
    record = json.loads((run_dir / "run.json").read_text())
    assert (record["graph"]["cutoff"], record["graph"]["max_neighbors"]) == (8.0, 12)
    assert record["graph"]["preset"] == "cgcnn_crystal" and record["neighbour_backend"] == "vesin"
    assert record["radial_grid"]["cutoff"] == 8.0 and record["versions"]["torch"]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["graph"]
    assert (saved["cutoff"], saved["max_neighbors"]) == (8.0, 12)  # config.yaml as built, not 5 Å

    run = TrainedRun.load(run_dir)
    assert run.graph == preset("cgcnn_crystal") == GraphSpec.from_dict(record["graph"])
    dataset = load_dataset(run.config, progress=False)
    (archive,) = (tmp_path / "mp").glob("*.tar*")
    texts = {key: (fmt, text) for key, fmt, text in iter_archive(archive)}
    for row in range(3):
        trained = dataset[row]
        key = dataset.meta.ids[row]
        atoms = parse_structure(texts[key][1], texts[key][0], key)  # what screen-crystals reads
        rebuilt = run.build_graph(atoms)
        assert edge_set(rebuilt) == edge_set(trained)
        assert rebuilt.edge_index.shape[1] == 12 * len(atoms)
    # predict with the run on the test split equals what evaluate wrote
    split = json.loads((run_dir / "split.json").read_text())
    test = dataset[torch.as_tensor(split["test"])]
    predictions = pd.read_csv(run_dir / "predictions_test.csv")
    values = predict_graphs(run.module, test)
    np.testing.assert_allclose(
        values[:, 0], predictions["formation_energy_per_atom_pred"], rtol=1e-5, atol=1e-6
    )


def test_exported_file_predicts_like_the_run_and_loads_weights_only(cgcnn_run, tmp_path):
    _, run_dir = cgcnn_run
    run = TrainedRun.load(run_dir)
    exported = run.export(tmp_path / "model.pt")
    torch.load(exported, weights_only=True)  # plain tensors and types only
    again = TrainedRun.load(exported)
    assert again.graph == run.graph and again.targets == run.targets
    graph = run.build_graph(bulk("NaCl", "rocksalt", a=5.64))
    torch.testing.assert_close(again.module(graph), run.module(graph))


def test_a_loaded_run_is_the_plain_prediction_module_with_the_checkpoint_s_arguments(cgcnn_run):
    """A loaded run's module is the Lightning-free PredictionModule; its hparams are the checkpoint's,
    read as keys or attributes, and the training module built from them holds Lightning's own
    AttributeDict with the same arguments (what its checkpoints and hparams.yaml are written from)."""
    from lightning.fabric.utilities.data import AttributeDict

    from atomgraph.training.module import AtomgraphModule
    from atomgraph.training.prediction_module import PredictionModule

    _, run_dir = cgcnn_run
    module = TrainedRun.load(run_dir).module
    assert type(module) is PredictionModule
    stored = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert dict(module.hparams) == stored
    assert module.hparams.model == stored["model"] and module.hparams.elements == stored["elements"]
    with pytest.raises(AttributeError):
        module.hparams.not_an_argument  # noqa: B018
    training = AtomgraphModule(**module.hparams)
    assert type(training.hparams) is AttributeDict and training.hparams.model == stored["model"]
    assert dict(training.hparams) == stored == dict(training.hparams_initial)
    training.load_state_dict(module.state_dict())
    graph = TrainedRun.load(run_dir).build_graph(bulk("NaCl", "rocksalt", a=5.64))
    torch.testing.assert_close(training.eval()(graph), module(graph))


def test_weights_of_an_older_model_layout_are_refused_with_the_reason(cgcnn_run, tmp_path):
    _, run_dir = cgcnn_run
    exported = TrainedRun.load(run_dir).export(tmp_path / "model.pt")
    payload = torch.load(exported, weights_only=True)
    payload["state_dict"]["model.removed_since"] = torch.zeros(3)
    torch.save(payload, exported)
    with pytest.raises(RunLoadError, match=r"do not fit today's 'cgcnn' model.*retrain it"):
        TrainedRun.load(exported)


def test_a_changed_config_after_training_is_refused_by_predict(tmp_path, scaffold_csv):
    config = load(tmp_path, csv_config(tmp_path, scaffold_csv, "value"), ["data.graph=bond_heavy_atoms"])
    run_dir = train_and_evaluate(config, progress=False)
    # the unseen-element check reads the graph's atoms: hydrogens of a heavy-atom model are not "unseen"
    table = read_predictions(predict_file(run_dir, scaffold_csv, tmp_path / "same.csv").output)
    assert (table["error"] == "").all() and not table["warning"].str.contains(r"\bH\b").any()
    assert (table["warning"] == "").sum() >= len(table) - 1  # one test-split molecule has Br
    silane = write_csv(tmp_path / "silane.csv", ["C[Si](C)(C)C", "CCO"])
    table = read_predictions(predict_file(run_dir, silane, tmp_path / "silane_out.csv").output)
    assert "never seen in training: Si" in table.loc[0, "warning"] and table.loc[1, "warning"] == ""
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())
    recorded["model"]["hidden"] = 999
    (run_dir / "config.yaml").write_text(yaml.safe_dump(recorded))
    with pytest.raises(RunLoadError, match="disagree"):
        predict_file(run_dir, scaffold_csv, tmp_path / "out.csv")


# ---------------------------------------------------------------------------- potentials, resume


@pytest.fixture(scope="module")
def crystal_potential(tmp_path_factory):
    """A SchNet potential trained on generated periodic LJ-like cells (energies + forces), float64."""
    from ase.calculators.lj import LennardJones

    root = tmp_path_factory.mktemp("pot")
    frames = []
    rng = np.random.default_rng(0)
    for k in range(24):
        atoms = bulk("Ar", "fcc", a=5.3).repeat((2, 1, 1))
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        atoms.calc = LennardJones(sigma=3.4, epsilon=0.0104, rc=4.5, smooth=True)
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.calc = None
        frames.append(atoms)
        del k
    import ase.io

    xyz = root / "cells.xyz"
    ase.io.write(xyz, frames, format="extxyz")
    config = {
        "name": "pot",
        "run_dir": str(root / "run"),
        "data": {"dataset": "structures", "path": str(xyz), "targets": ["energy"], "cache": str(root / "c"),
                 "graph": {"cutoff": 4.5}},
        "model": {"name": "schnet", "hidden": 8, "filters": 8, "interactions": 1, "num_rbf": 8},
        "task": {"kind": "potential"},
        "training": {**FAST, "epochs": 2, "precision": "64-true"},
    }  # fmt: skip
    return frames, train_and_evaluate(load_config(write_config(root / "pot.yaml", config)), progress=False)


def test_calculator_builds_the_training_graph_of_a_crystal(crystal_potential):
    frames, run_dir = crystal_potential
    run = TrainedRun.load(run_dir)
    assert run.is_potential and run.graph.cutoff == 4.5
    calc = Calculator(run, skin=0.3)
    for atoms in frames[:3]:
        assert edge_set(calc.graph(atoms)) == edge_set(run.build_graph(atoms))
    moved = frames[0].copy()
    moved.positions[0] += 0.05  # within the skin: the cached list, filtered to the cutoff
    assert edge_set(calc.graph(moved)) == edge_set(run.build_graph(moved))
    assert isinstance(Calculator(run_dir), Calculator)


def test_a_bond_graph_model_is_refused_as_a_potential_before_data_is_read(tmp_path):
    config = load_config(settings={"data": {"dataset": "structures", "path": str(tmp_path / "missing.xyz"),
                                            "targets": ["energy"]},
                                   "model": {"name": "gcn"}, "task": {"kind": "potential"}})  # fmt: skip
    with pytest.raises(ConfigError, match="cannot be a potential"):
        train_and_evaluate(config, progress=False)
    config["model"] = {"name": "cgcnn"}
    with pytest.raises(ConfigError, match="not smooth"):
        train_and_evaluate(config, progress=False)
    assert not (Path(config["run_dir"])).exists()  # nothing written


# the pickled checkpoint is the hostile input under test
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_resume_refuses_a_changed_config_and_a_pickled_checkpoint(crystal_potential, tmp_path, monkeypatch):
    _, run_dir = crystal_potential
    config = load_config(run_dir / "config.yaml", ["training.epochs=3", "model.hidden=16"])
    with pytest.raises(ConfigError, match="differs"):
        train_and_evaluate(config, resume=True, progress=False)
    # a checkpoint that would run code when unpickled is refused, whatever the environment says
    marker = tmp_path / "ran"
    copy_dir = tmp_path / "copy"
    (copy_dir / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "split.json"):
        (copy_dir / name).write_text((run_dir / name).read_text())

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"state_dict": {}, "payload": Payload()}, copy_dir / "checkpoints" / "last.ckpt",
               pickle_protocol=pickle.HIGHEST_PROTOCOL)  # fmt: skip
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    resumed = load_config(run_dir / "config.yaml", [f"run_dir={copy_dir}"])
    with pytest.raises(Exception, match=r"(?i)weights"):
        train_and_evaluate(resumed, resume=True, progress=False)
    with pytest.raises(RunLoadError, match=r"last\.ckpt"):
        TrainedRun.load(copy_dir, "last")
    assert not marker.exists()


# ------------------------------------------------------------------------------ old checkpoints


def test_legacy_hyper_parameters_rebuild_the_graph_the_run_was_trained_on():
    old = {
        "model": {"name": "cgcnn", "hidden": 8, "layers": 1, "extensive": [False]},
        "targets": {"names": ["band_gap"], "units": ["eV"], "extensive": [False], "kind": "regression"},
        "task": {"kind": "property"},
        "training": {},
    }
    crystal = {"data": {"dataset": "crystals", "graph": {"kind": None, "cutoff": 5.0, "max_neighbors": None},
                        "crystals": {"default_graph": True}}}  # fmt: skip
    new = legacy_hyper_parameters(old, crystal)
    assert (new["graph"]["cutoff"], new["graph"]["max_neighbors"]) == (8.0, 12)  # the old crystal rule
    assert new["targets"] == [{"name": "band_gap", "unit": "eV", "reduction": "mean", "kind": "regression",
                               "ranks_first": "high", "description": "PBE band gap",
                               "chemical_accuracy": None}]  # fmt: skip
    schnet = {**old, "model": {"name": "schnet", "cutoff": 4.0, "extensive": [False]}}
    molecule = {"data": {"dataset": "qm9", "graph": {"kind": "radius", "cutoff": 5.0}}}
    new = legacy_hyper_parameters(schnet, molecule)
    assert new["graph"]["cutoff"] == 4.0 and "cutoff" not in new["model"]  # the envelope ended at 4 Å


def test_frozen_checkpoint_predictions_do_not_change():
    """A tiny SchNet saved once (tests/data/frozen_schnet.pt, an export): its predictions on fixed
    structures are pinned. A change to the model code, the graph builder or the loader that changes
    numbers fails here."""
    run = TrainedRun.load(FROZEN)
    expected = json.loads(FROZEN.with_suffix(".json").read_text())
    for entry in expected["structures"]:
        atoms = Atoms(numbers=entry["numbers"], positions=entry["positions"])
        value = run.module(run.build_graph(atoms)).detach().double().numpy()[0]
        np.testing.assert_allclose(value, entry["prediction"], rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------ protein-ligand complexes


def test_protein_ligand_model_trains_with_atomgraph_train(tmp_path, monkeypatch):
    """``atomgraph train`` on a PDBbind-layout folder of six complexes in three targets, the middle
    target held out; the run records the complex graph settings in its spec and screens again, and its
    leak check flags the test ligand that is also a training ligand."""
    from rdkit import Chem
    from typer.testing import CliRunner

    from atomgraph.apps.complexes.synthetic import ligand_over_ring, peptide_mol, protein_from_mol
    from atomgraph.cli.main import app

    root = tmp_path / "pdbbind"
    rows = []
    for k, (sequence, smiles) in enumerate(
        [("KFA", "c1ccccc1C(=O)[O-]"), ("DFW", "Cc1ccccc1"), ("AFK", "c1ccccc1C(=O)[O-]"),
         ("GFD", "c1ccccc1N"), ("WFA", "Cc1ccccc1C"), ("KFD", "c1ccccc1Cl")]
    ):  # fmt: skip
        code = f"c{k:03d}"
        (root / code).mkdir(parents=True)
        mol = peptide_mol(sequence, seed=k)
        Chem.MolToPDBFile(mol, str(root / code / f"{code}_protein.pdb"))
        ligand = ligand_over_ring(protein_from_mol(mol), smiles)
        (root / code / f"{code}_ligand.sdf").write_text(Chem.MolToMolBlock(ligand) + "$$$$\n")
        rows.append({"id": code, "pK": 5.0 + 0.3 * k, "group": f"t{k // 2}"})
    labels = tmp_path / "labels.csv"
    pd.DataFrame(rows).to_csv(labels, index=False)
    config = {
        "name": "pl",
        "run_dir": str(tmp_path / "run"),
        "data": {"dataset": "complexes", "path": str(root), "targets": ["pK"], "cache": str(tmp_path / "c"),
                 "split": {"kind": "group"},
                 "complex": {"labels": str(labels), "test_groups": ["t1"], "val_groups": ["t2"],
                             "pocket_radius": 8.0}},
        "model": {"name": "affinity_joint", "hidden": 8, "layers": 1},
        "training": {**FAST, "epochs": 2},
    }  # fmt: skip
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", str(write_config(tmp_path / "pl.yaml", config))])
    assert result.exit_code == 0, result.output + repr(result.exception)
    run_dir = tmp_path / "run"
    split = json.loads((run_dir / "split.json").read_text())
    assert sorted(split["test"]) == [2, 3] and sorted(split["val"]) == [4, 5]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["graph"]["kind"] == "complex" and record["graph"]["options"]["pocket_radius"] == 8.0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["pK"]["model"]["mae"] >= 0 and metrics["n_test"] == 2
    leak = metrics["leak_check"]  # c002 (test) is the ligand of c000 (training), bound to another target
    assert leak["identical"] == 1 and leak["test_ligands"] == 2
    copied = next(row for row in leak["ligands"] if row["id"].endswith("c002"))
    assert copied["identical_smiles"] and copied["similarity"] == 1.0
    assert copied["nearest_train_id"].endswith("c000")
    assert sum(entry["rows"] for entry in leak["bins"]) == 2
    run = TrainedRun.load(run_dir)
    assert run.graph.kind == "complex" and run.targets.names == ["pK"]


def test_cli_reports_input_errors_in_one_line_and_exports(cgcnn_run, tmp_path):
    """A user error is one line on stderr (exit 2), its traceback only with --debug; ``export`` writes
    the file predict accepts in place of the run."""
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "atomgraph.cli.main", *args], capture_output=True,
                              text=True, cwd=tmp_path, timeout=120)  # fmt: skip

    missing = cli("predict", str(tmp_path / "no_run"), "x.csv")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "error:" in missing.stderr and "no_run" in missing.stderr and len(missing.stderr.splitlines()) <= 3
    debug = cli("--debug", "predict", str(tmp_path / "no_run"), "x.csv")
    assert debug.returncode != 0 and "RunLoadError" in debug.stderr
    _, run_dir = cgcnn_run
    exported = cli("export", str(run_dir), "-o", str(tmp_path / "cgcnn.pt"))
    assert exported.returncode == 0, exported.stderr
    assert "radius graph, 8 Å, 12 nearest" in exported.stdout
    assert TrainedRun.load(tmp_path / "cgcnn.pt").graph == preset("cgcnn_crystal")


def test_results_files_are_strict_json(cgcnn_run, tmp_path):
    """NaN (an undefined Spearman, an empty subset) is written as null, never as bare NaN."""
    from atomgraph.evaluation.jsonfile import write_json

    def strict(text: str):
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))

    path = write_json(tmp_path / "x.json", {"a": float("nan"), "b": [np.float32(np.inf), np.int64(3)]})
    assert strict(path.read_text()) == {"a": None, "b": [None, 3]}
    _, run_dir = cgcnn_run
    strict((run_dir / "metrics.json").read_text())


def test_a_run_written_before_the_spine_loads_and_predicts_as_it_did(tmp_path):
    """tests/data/legacy_run: a SchNet run trained by the code before GraphSpec (commit 8252b62), with
    ``model.cutoff: 3.5`` under a 4 Å graph and targets as TargetInfo. It loads, its spec is the 3.5 Å
    the model really used, and its predictions equal the ones that code made (expected.json)."""
    import shutil

    legacy = tmp_path / "legacy_run"
    shutil.copytree(Path(__file__).parent / "data" / "legacy_run", legacy)
    run = TrainedRun.load(legacy)
    assert run.graph.kind == "radius" and run.graph.cutoff == 3.5 and run.targets.names == ["energy"]
    assert run.targets[0].reduction == "sum" and "cutoff" not in run.module.hparams["model"]
    expected = json.loads((legacy / "expected.json").read_text())
    for entry in expected["structures"]:
        atoms = Atoms(numbers=entry["numbers"], positions=entry["positions"])
        value = run.module(run.build_graph(atoms)).detach().double().numpy()[0]
        np.testing.assert_allclose(value, entry["prediction"], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- unseen elements


def test_unseen_elements_are_flagged_per_row_and_out_of_table_ones_cost_only_their_row(
    crystal_potential, tmp_path
):
    """The run knows its training elements (Ar here). predict: a row with Au is predicted but flagged
    (column ``warning``), or refused with ``refuse_unseen_elements``; a row with Z = 118 (beyond the
    model's embedding table) gets an error and every other row its prediction. The calculator refuses
    unseen elements unless told otherwise."""
    import ase.io

    frames, run_dir = crystal_potential
    run = TrainedRun.load(run_dir)
    assert run.elements == [18]
    gold = frames[1].copy()
    gold.numbers[0] = 79
    heavy = frames[2].copy()
    heavy.numbers[0] = 118
    path = tmp_path / "mixed.xyz"
    ase.io.write(path, [frames[0], gold, heavy, frames[3]], format="extxyz")
    table = read_predictions(predict_file(run_dir, path, tmp_path / "out.csv").output)
    assert list(table["error"] == "") == [True, True, False, True]
    assert "Og" in table.loc[2, "warning"] or "Og" in table.loc[2, "error"] or "118" in table.loc[2, "error"]
    assert "Au" in table.loc[1, "warning"] and table.loc[0, "warning"] == ""
    assert np.isfinite(table["energy"][[0, 1, 3]]).all() and np.isnan(table["energy"][2])
    refused = read_predictions(
        predict_file(run_dir, path, tmp_path / "out2.csv", refuse_unseen_elements=True).output
    )
    assert "never seen in training: Au" in refused.loc[1, "error"] and np.isnan(refused["energy"][1])
    gold.calc = Calculator(run)
    with pytest.raises(ValueError, match="never seen in training"):
        gold.get_potential_energy()
    gold.calc = Calculator(run, allow_unseen_elements=True)
    assert np.isfinite(gold.get_potential_energy())
