"""A ligand encoder initialised from a model trained on molecules (``ligand_inputs: molecule`` and
``init.into``): the encoder reads what molecule graphs hold, the source's weights land in it, and an
unfit source is refused with a message."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import write_csv
from rdkit import Chem

from atomgraph.apps.complexes import load_complex
from atomgraph.apps.complexes.models.affinity_encoders import ligand_view
from atomgraph.apps.complexes.synthetic import example_graph
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.features import DEFAULT_ATOM_FEATURIZER
from atomgraph.graphs.bond_graph import bond_graph
from atomgraph.models import build_model
from atomgraph.runs import TrainedRun
from atomgraph.training.config import ConfigError, load_config

FEATURES = DEFAULT_ATOM_FEATURIZER.layout
SMILES = ["CCO", "c1ccccc1O", "CC(=O)N", "CCCC(=O)[O-]", "c1ccccc1CCN", "OCCOCC", "CCN(C)C", "c1ccncc1"] * 3


@pytest.mark.parametrize("code", ["aaa1", "bbb2", "ccc3", "ddd4"])
def test_molecule_inputs_are_the_columns_of_the_ligands_molecule_graph(flexible_complexes, code):
    from atomgraph.apps.complexes.graph import ComplexGraphSettings, complex_graph

    folder = flexible_complexes / code
    complex_ = load_complex(folder / f"{code}_protein.pdb", folder / f"{code}_ligand.sdf")
    assert any(a.GetAtomicNum() == 1 for a in complex_.ligand.GetAtoms())  # read with its hydrogens
    view = ligand_view(complex_graph(complex_, ComplexGraphSettings(), np.array([5.0])), "molecule")
    # the ligand as a molecule graph holds it: heavy atoms (in the file's order), hydrogens implicit,
    # stereochemistry from the pose
    posed = Chem.Mol(complex_.ligand)
    Chem.AssignStereochemistryFrom3D(posed)
    molecule = bond_graph(Chem.RemoveAllHs(posed))
    assert view.x.shape == molecule.x.shape and view.edge_attr.shape == molecule.edge_attr.shape
    torch.testing.assert_close(view.x.float(), molecule.x.float())

    def edges(index, attr):
        return sorted(
            (j, i, tuple(a)) for (j, i), a in zip(index.T.tolist(), attr.float().tolist(), strict=True)
        )

    assert edges(view.edge_index, view.edge_attr) == edges(molecule.edge_index, molecule.edge_attr)
    # and as a SMILES gives it (atoms reordered; chiral tags CW/CCW are relative to the atom order)
    smiles = bond_graph(Chem.MolToSmiles(Chem.RemoveAllHs(complex_.ligand)))
    chirality = FEATURES.slices["chirality"]
    merged = [c for c in range(view.x.shape[1]) if c not in range(chirality.start + 1, chirality.stop)]

    def rows(x):
        return sorted(tuple(round(v, 5) for v in row) for row in x[:, merged].tolist())

    assert rows(view.x.float()) == rows(smiles.x.float())
    with pytest.raises(ValueError, match="ligand_inputs"):
        ligand_view(example_graph(), "protein")


def test_molecule_inputs_need_heavy_atom_ligands():
    from atomgraph.graphs.spec import GraphSpec

    graph = GraphSpec("complex", 5.0, options={"hydrogens": "polar"}, preset="complex")
    with pytest.raises(ValueError, match="hydrogens 'polar' as nodes"):
        build_model("affinity_ligand_only", encoder="zoo:gcn", ligand_inputs="molecule", graph=graph)


@pytest.fixture(scope="module")
def molecule_run(tmp_path_factory):
    """A 2-layer GCN (hidden 16) trained on a few molecules' made-up property, heavy-atom bond graphs."""
    root = tmp_path_factory.mktemp("molecule_source")
    csv = write_csv(root / "mols.csv", SMILES, prop=[len(s) * 0.1 for s in SMILES])
    return train_and_evaluate(_molecule_config(root, csv, "gcn", explicit_hydrogens=False), progress=False)


def _molecule_config(root, csv, model: str, explicit_hydrogens: bool) -> dict:
    settings = {
        "name": f"mol_{model}",
        "run_dir": str(root / f"mol_{model}_{explicit_hydrogens}"),
        "data": {
            "dataset": "csv",
            "path": str(csv),
            "targets": ["prop"],
            "cache": str(root / "cache"),
            "graph": {"kind": "bond", "explicit_hydrogens": explicit_hydrogens},
            "split": {"kind": "random", "sizes": [0.6, 0.2, 0.2], "seed": 0},
        },
        "model": {"name": model, "hidden": 16, "layers": 2},
        "training": {"epochs": 1, "batch_size": 8, "progress": False},
    }
    return load_config(settings=settings)


def _affinity_config(root, complexes, source, encoder: str = "zoo:gcn", inputs: str = "molecule", **init):
    settings = {
        "name": "affinity",
        "run_dir": str(root / "affinity"),
        "data": {
            "dataset": "complexes",
            "path": str(complexes),
            "targets": ["pK"],
            "cache": str(root / "cache"),
            "split": {"kind": "random", "sizes": [0.5, 0.25, 0.25], "seed": 0},
            "complex": {"augment_noise": 0.0},
        },
        "model": {"name": "affinity_ligand_only", "encoder": encoder, "ligand_inputs": inputs},
        "init": {"from": str(source), "load": "encoder", "into": "encoder.model", **init},
        "training": {"epochs": 2, "batch_size": 1, "progress": False},
    }
    settings["model"].update(hidden=16, layers=2)
    return load_config(settings=settings)


def test_the_molecule_models_encoder_lands_in_the_ligand_encoder(molecule_run, flexible_complexes, tmp_path):
    source = TrainedRun.load(molecule_run).module.model.state_dict()
    config = _affinity_config(tmp_path, flexible_complexes, molecule_run, freeze=["encoder.model"])
    tuned = TrainedRun.load(train_and_evaluate(config, progress=False), "last").module.model
    loaded = {
        k.removeprefix("encoder.model."): v
        for k, v in tuned.state_dict().items()
        if k.startswith("encoder.model.")
    }
    body = [k for k in source if not k.startswith("head.")]
    assert body and set(body) <= set(loaded)
    for k in body:  # copied, then frozen: exactly the source's
        torch.testing.assert_close(loaded[k], source[k], rtol=0, atol=0)
    # the affinity head is new and trained
    fresh = build_model(
        "affinity_ligand_only", encoder="zoo:gcn", ligand_inputs="molecule", hidden=16, layers=2
    )
    assert fresh.init_parts and "encoder.model" in fresh.init_parts


def test_an_unfit_source_or_part_is_refused(molecule_run, flexible_complexes, tmp_path):
    cases = [
        ({"inputs": "complex"}, "has no part 'encoder.model'"),  # complex inputs: nothing to initialise
        ({"encoder": "zoo:gat"}, "a 'gcn' model cannot initialise encoder.model"),
    ]
    for options, message in cases:
        config = _affinity_config(tmp_path, flexible_complexes, molecule_run, **options)
        with pytest.raises(ConfigError, match=message):
            train_and_evaluate(config, progress=False)
        # refused before the run's record is written
        assert not any((tmp_path / "affinity" / name).exists() for name in ("config.yaml", "split.json"))
    csv = write_csv(tmp_path / "mols.csv", SMILES, prop=[len(s) * 0.1 for s in SMILES])
    # trained on graphs with hydrogens as nodes: not what the ligand encoder reads
    with_h = train_and_evaluate(
        _molecule_config(tmp_path, csv, "gcn", explicit_hydrogens=True), progress=False
    )
    with pytest.raises(ConfigError, match=r"but encoder\.model reads bond graph, heavy atoms"):
        train_and_evaluate(_affinity_config(tmp_path, flexible_complexes, with_h), progress=False)
    # the same shapes, another function: a layer norm's weights are not the plain GCN's
    normed = _molecule_config(tmp_path, csv, "gcn", explicit_hydrogens=False)
    normed["model"]["norm"], normed["run_dir"] = "layer", str(tmp_path / "normed")
    normed = train_and_evaluate(normed, progress=False)
    with pytest.raises(ConfigError, match=r"built otherwise than encoder\.model: norm 'layer' -> 'none'"):
        train_and_evaluate(_affinity_config(tmp_path, flexible_complexes, normed), progress=False)
    config = _affinity_config(tmp_path, flexible_complexes, molecule_run)
    config["init"]["from"] = None
    with pytest.raises(ConfigError, match=r"init\.into 'encoder\.model' needs init\.from"):
        train_and_evaluate(config, progress=False)


def test_the_element_check_reads_the_parts_nodes(flexible_complexes, tmp_path):
    from atomgraph.apps.complexes import load_pdbbind

    dataset = load_pdbbind(flexible_complexes, cache=tmp_path, progress=False)
    ligand, everything = dataset.atomic_numbers(0), dataset.atomic_numbers()
    for row, numbers in enumerate(ligand):
        assert len(numbers) == int(dataset[row].n_ligand) < len(everything[row])
        assert set(numbers) <= {6, 7, 8}
    with pytest.raises(ValueError, match="no node_role"):
        load_csv_dataset(tmp_path).atomic_numbers(0)


def load_csv_dataset(root):
    from atomgraph.training.datasets import load_dataset, resolve_run

    csv = write_csv(root / "few.csv", SMILES[:8], prop=list(range(8)))
    config = _molecule_config(root, csv, "gcn", explicit_hydrogens=False)
    return load_dataset(config, resolve_run(config), progress=False)


def test_a_split_without_test_rows_is_refused_before_training(tmp_path):
    csv = write_csv(tmp_path / "mols.csv", SMILES, prop=[len(s) * 0.1 for s in SMILES])
    config = _molecule_config(tmp_path, csv, "gcn", explicit_hydrogens=False)
    config["data"]["split"]["sizes"] = [0.8, 0.2, 0.0]
    with pytest.raises(ConfigError, match=r"data\.split \(random\): no test rows of 24"):
        train_and_evaluate(config, progress=False)


def test_a_source_differing_only_in_training_time_settings_is_accepted(flexible_complexes, tmp_path):
    csv = write_csv(tmp_path / "mols.csv", SMILES, prop=[len(s) * 0.1 for s in SMILES])
    config = _molecule_config(tmp_path, csv, "gat", explicit_hydrogens=False)
    config["model"]["attention_dropout"] = 0.2  # acts in training only: the encoder need not match it
    source = train_and_evaluate(config, progress=False)
    tuned = _affinity_config(
        tmp_path, flexible_complexes, source, encoder="zoo:gat", freeze=["encoder.model"]
    )
    model = TrainedRun.load(train_and_evaluate(tuned, progress=False), "last").module.model
    loaded = TrainedRun.load(source).module.model.state_dict()
    torch.testing.assert_close(model.encoder.model.embed.weight, loaded["embed.weight"], rtol=0, atol=0)


def test_runs_of_other_complex_feature_versions_are_refused(flexible_complexes, tmp_path):
    from atomgraph.apps.complexes.graph import FEATURES_VERSION, check_features_version
    from atomgraph.graphs.spec import GraphSpec
    from atomgraph.training.datasets import load_dataset, resolve_run

    config = _affinity_config(tmp_path, flexible_complexes, tmp_path, inputs="complex")
    config["init"] = {**config["init"], "from": None, "into": None}
    spec = resolve_run(config)
    assert spec.options["features"] == FEATURES_VERSION
    check_features_version(spec)
    before = GraphSpec(
        "complex", spec.cutoff, options={k: v for k, v in spec.options.items() if k != "features"}
    )
    with pytest.raises(ValueError, match="features version 1, today's are 2"):
        load_dataset(config, before, progress=False)


def test_a_failed_augmentation_leaves_no_run_record(monkeypatch, tmp_path):
    import atomgraph.training.run as run

    def fail(*args, **kwargs):
        raise RuntimeError("no pose")

    monkeypatch.setattr(run, "augment_training", fail)
    csv = write_csv(tmp_path / "mols.csv", SMILES, prop=[len(s) * 0.1 for s in SMILES])
    config = _molecule_config(tmp_path, csv, "gcn", explicit_hydrogens=False)
    with pytest.raises(RuntimeError, match="no pose"):
        train_and_evaluate(config, progress=False)
    run_dir = tmp_path / "mol_gcn_False"
    assert not any((run_dir / name).exists() for name in ("config.yaml", "split.json", "run.json"))
