"""Every shipped config loads, names a registered model and gives valid graph settings."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch
from ase.build import bulk
from torch_geometric.data import Batch

from atomgraph.apps.complexes.synthetic import example_graph
from atomgraph.data.qm9_source import QM9_NUM_CHARACTERIZED, QM9_TARGET_NAMES
from atomgraph.data.registry import available_datasets, dataset_entry
from atomgraph.data.splits import split_sizes
from atomgraph.models import available_models, build_model, model_card, model_class
from atomgraph.structures import from_smiles
from atomgraph.targets import QM9_ATOMS
from atomgraph.training.config import DEFAULTS, load_config
from atomgraph.training.datasets import graph_spec, resolve_run
from atomgraph.training.optim import SCHEDULERS

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
SPLIT_KINDS = {"random", "scaffold", "file", "predefined", "group"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_names_a_registered_model_with_sane_data_and_training_keys(path):
    config = load_config(path)
    data, model, training, task = config["data"], config["model"], config["training"], config["task"]
    assert model["name"] in available_models()
    # every model argument the file sets is one the model's constructor takes
    params = inspect.signature(model_class(model["name"])).parameters
    unknown = set(model) - {"name"} - set(params)
    assert not unknown, f"model arguments {sorted(unknown)} are not taken by {model['name']}"

    assert data["dataset"] in available_datasets()
    targets = data["targets"]
    assert isinstance(targets, list) and targets, "data.targets must be a non-empty list"
    assert all(isinstance(t, str) and t for t in targets) and len(set(targets)) == len(targets)
    if data["dataset"] == "qm9":
        graph_level, node_level = set(QM9_TARGET_NAMES), {t.name for t in QM9_ATOMS}
        assert set(targets) <= graph_level or set(targets) <= node_level  # never both (labels per atom)
    if task["kind"] == "potential":
        assert dataset_entry(data["dataset"]).app == "potentials" and targets == ["energy"]
        assert model_card(model["name"]).potential
    else:
        assert task["kind"] == "property"
    assert "cutoff" not in model  # the cutoff is the graph spec's
    spec = resolve_run(config)  # raises for a graph the model card does not accept
    assert spec.kind == model_card(model["name"]).graph_kind

    split = data["split"]
    assert split["kind"] in SPLIT_KINDS
    if split["kind"] in ("random", "scaffold"):
        # the sizes fit the data: counts within the (sub)set, fractions summing to at most one
        rows = (data["subset"] or QM9_NUM_CHARACTERIZED) if data["dataset"] == "qm9" else 1000
        train, val, test = split_sizes(rows, split["sizes"])
        assert train > val > 0 and test > 0

    assert set(training) == set(DEFAULTS["training"])  # no key lost or invented
    assert training["scheduler"] in SCHEDULERS and training["optimizer"] in ("adam", "adamw")
    assert 0 < training["min_lr"] < training["lr"] < 0.1
    assert training["epochs"] > 0 and training["batch_size"] > 0
    if training["max_time"] is not None:
        assert re.fullmatch(r"\d\d:\d\d:\d\d:\d\d", training["max_time"])


def _sample_graph(config: dict):
    """One small structure as the graph the config's model would see."""
    kind = model_card(config["model"]["name"]).graph_kind
    if kind in ("complex", "sequence"):
        return example_graph(kind)
    settings = graph_spec(config)
    if config["data"]["dataset"] == "crystals":
        return settings.build(bulk("NaCl", "rocksalt", a=5.6))
    return settings.build(from_smiles("CC(=O)O", embed_3d=True))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_model_builds_and_predicts_every_target(path):
    config = load_config(path)
    model_settings = dict(config["model"])
    name = model_settings.pop("name")
    graph = _sample_graph(config)
    params = inspect.signature(model_class(name)).parameters
    if "atom_dim" in params and "atom_dim" not in model_settings and graph.x is not None:
        model_settings["atom_dim"] = int(graph.x.shape[1])
    if "edge_dim" in params and "edge_dim" not in model_settings and graph.edge_attr is not None:
        model_settings["edge_dim"] = int(graph.edge_attr.shape[1])
    targets = config["data"]["targets"]
    torch.manual_seed(0)
    spec = graph_spec(config)
    model = build_model(name, graph=spec, reductions=["mean"] * len(targets), **model_settings).eval()
    with torch.no_grad():
        out = model(Batch.from_data_list([graph, graph]))
    assert out.shape == (2, len(targets))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads(path):
    config = load_config(path)
    assert config["run_dir"] == f"runs/{config['name']}"
    assert graph_spec(config).kind == model_card(config["model"]["name"]).graph_kind


def test_settings_from_code_merge_like_a_config_file():
    from atomgraph.training.config import ConfigError, wall_clock_budget

    config = load_config(
        settings={"name": "x", "model": {"name": "gat", "heads": 2}, "training": {"lr": 0.01}}
    )
    assert config["model"] == {"name": "gat", "heads": 2}
    assert config["training"]["lr"] == 0.01 and config["run_dir"] == "runs/x"
    with pytest.raises(ConfigError, match=r"training\.lrr"):
        load_config(settings={"training": {"lrr": 0.01}})
    assert wall_clock_budget(90.5) == "00:01:30:30"
    assert wall_clock_budget(0) == "00:00:00:01"


def test_a_datasets_own_section_comes_from_its_application():
    """data.crystals / data.lennard_jones / data.complex are registered by their applications: filled
    with their defaults for that dataset only, checked key by key, refused for another dataset."""
    from atomgraph.apps.crystals import CRYSTAL_SETTINGS
    from atomgraph.evaluation.ablation import sweep_configs
    from atomgraph.training.config import DEFAULTS, ConfigError

    assert not {"crystals", "lennard_jones", "complex"} & set(DEFAULTS["data"])
    crystals = load_config(None, ["data.dataset=crystals", "data.crystals.top_k=5", "model.name=cgcnn"])
    assert crystals["data"]["crystals"] == {**CRYSTAL_SETTINGS, "top_k": 5}
    assert "lennard_jones" not in crystals["data"] and "complex" not in crystals["data"]
    lj = load_config(None, ["data.dataset=lennard_jones", "data.lennard_jones.count=7"])
    assert lj["data"]["lennard_jones"]["count"] == 7 and lj["data"]["lennard_jones"]["max_atoms"] == 8
    assert (
        load_config(None, ["data.dataset=complexes", "model.name=affinity_joint"])["data"]["complex"][
            "pocket_radius"
        ]
        > 0
    )
    with pytest.raises(ConfigError, match=r"data\.crystals\.top_kk.*known here"):
        load_config(None, ["data.dataset=crystals", "data.crystals.top_kk=5"])
    with pytest.raises(ConfigError, match=r"data\.crystals holds settings of data\.dataset crystals.*'qm9'"):
        load_config(None, ["data.crystals.top_k=5"])
    with pytest.raises(ConfigError, match=r"unknown data\.dataset 'qm10'"):
        load_config(None, ["data.dataset=qm10"])
    # a sweep turns off the crystal report's run-independent part only where that dataset is used
    (_, _, swept), *_ = sweep_configs(lj, [4.0], [2], Path("/tmp/unused"))
    assert "crystals" not in swept["data"]
    (_, _, swept), *_ = sweep_configs(crystals, [4.0], [2], Path("/tmp/unused"))
    assert swept["data"]["crystals"]["descriptor_baseline"] is False


def test_exponent_floats_without_a_dot_are_numbers_in_files_and_overrides(tmp_path):
    """PyYAML's YAML 1.1 reads ``1e-3`` as a string; the optimiser would then fail deep inside torch."""
    from atomgraph.training.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text("training:\n  lr: 1e-3\n  weight_decay: 5E-05\n")
    config = load_config(path, ["training.gradient_clip=1e1"])
    assert (config["training"]["lr"], config["training"]["weight_decay"]) == (1e-3, 5e-5)
    assert config["training"]["gradient_clip"] == 10.0
    assert load_config(None, ["name=1e3_run"])["name"] == "1e3_run"  # not a number: stays text


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed", "bf16-true"])
def test_mixed_precision_is_refused_with_the_reason(precision):
    from atomgraph.training.config import ConfigError, load_config

    message = rf"training\.precision '{precision}': atomgraph trains in '32-true' or '64-true' \(mixed"
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["model.name=schnet", f"training.precision={precision}"])
    for accepted in ("32-true", "64-true", "64"):
        load_config(None, ["model.name=schnet", f"training.precision={accepted}"])
    with pytest.raises(ConfigError, match=r"'64-ture': .* \(unknown value\)"):
        load_config(None, ["model.name=schnet", "training.precision=64-ture"])
