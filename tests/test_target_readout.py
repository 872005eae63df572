"""One readout family driven by the TargetSpec: "auto" per reduction and per model, old readout words
in checkpoints (through the legacy shim, to the same outputs) and in configs (a clear error)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import write_config
from torch_geometric.data import Batch, Data

from atomgraph.models import available_models, build_model, model_card
from atomgraph.nn.scatter import segment_counts
from atomgraph.nn.target_readout import READOUTS, SumOrMean, check_readout, resolve_readouts
from atomgraph.runs import TrainedRun, legacy_model_arguments
from atomgraph.targets import REDUCTIONS
from atomgraph.training.config import ConfigError, load_config
from atomgraph.training.datasets import check_readout_settings

LEGACY = Path(__file__).parent / "data" / "legacy_readouts.pt"

#: the readout "auto" gives targets that are not sums, per model (None: every target "pooled")
INTENSIVE = {
    "cgcnn": "pooled", "megnet": "pooled",
    "schnet": "atom_mean", "painn": "atom_mean", "simple_gnn": "atom_mean", "dimenet++": "atom_mean",
    "dimenetpp": "atom_mean", "dimenet": "atom_mean", "equivariant": "atom_mean", "nequip": "atom_mean",
    "mace": "atom_mean",
}  # fmt: skip


GRAPH_REDUCTIONS = [r for r in REDUCTIONS if r != "node"]  # one value per graph
GRAPH_READOUTS = [r for r in READOUTS if r != "atom"]


@pytest.mark.parametrize("intensive", ["atom_mean", "pooled"])
@pytest.mark.parametrize("reduction", GRAPH_REDUCTIONS)
def test_auto_follows_the_reduction(reduction, intensive):
    expected = "sum" if reduction == "sum" else intensive
    assert resolve_readouts("auto", [reduction], intensive) == [expected]
    for readout in GRAPH_READOUTS:  # an explicit readout is kept, whatever the reduction
        assert resolve_readouts(readout, [reduction], intensive) == [readout]
    mixed = resolve_readouts(["auto", "sum"], [reduction, "mean"], intensive)
    assert mixed == [expected, "sum"]
    with pytest.raises(ValueError, match="node-level targets only"):  # per-atom outputs: [N, T], not [B, T]
        resolve_readouts("atom", [reduction], intensive)


def test_every_model_card_says_what_auto_means():
    for name in available_models():
        assert model_card(name).intensive_readout == INTENSIVE.get(name), name
        readouts = model_card(name).target_readouts("auto", GRAPH_REDUCTIONS)
        intensive = INTENSIVE.get(name)
        assert readouts == (["sum", intensive, intensive] if intensive else ["pooled"] * 3), name
        if intensive:  # atom-wise outputs: node-level targets are read out per atom
            assert model_card(name).target_readouts("auto", ["node"]) == ["atom"], name
        else:
            with pytest.raises(ValueError, match="atom-wise outputs"):
                model_card(name).target_readouts("auto", ["node"])


@pytest.mark.parametrize(
    ("name", "settings", "head"),
    [
        ("cgcnn", {"hidden": 8, "layers": 1, "fc_hidden": 8}, lambda m: m.head.readouts),
        ("megnet", {"dim": 8, "hidden": (8, 8), "blocks": 1, "embedding_dim": 4, "num_rbf": 8},
         lambda m: m.head.readouts),
        ("schnet", {"hidden": 8, "filters": 8, "interactions": 1, "num_rbf": 8}, lambda m: m.head.readouts),
        ("painn", {"hidden": 8, "interactions": 1, "num_rbf": 6}, lambda m: m.head.readouts),
        ("simple_gnn", {"dim": 8, "num_rbf": 8, "layers": 1}, lambda m: m.head.readouts),
        ("dimenet++", {"hidden": 8, "out_emb": 8, "int_emb": 4, "basis_emb": 4, "blocks": 1,
                       "num_spherical": 3, "num_radial": 4, "num_output_layers": 1},
         lambda m: m.reduce.readouts),
        ("equivariant", {"hidden_irreps": "4x0e + 2x1o", "layers": 1, "num_basis": 4, "radial_hidden": 8},
         lambda m: m.reduce.readouts),
    ],
)  # fmt: skip
def test_models_read_out_what_their_card_resolves(name, settings, head):
    reductions = GRAPH_REDUCTIONS
    model = build_model(name, reductions=reductions, **settings)
    assert head(model) == model_card(name).target_readouts("auto", reductions)
    node_level = build_model(name, reductions=["node"], **settings)  # one value per atom
    assert head(node_level) == model_card(name).target_readouts("auto", ["node"]) == ["atom"]


def test_atomwise_models_take_pooled_with_their_node_pool_but_not_mixed():
    settings = {"hidden": 8, "filters": 8, "interactions": 1, "num_rbf": 8}
    model = build_model("schnet", reductions=["mean"], readout="pooled", pool="set2set", **settings)
    assert model.head.pool.kind == "set2set"
    with pytest.raises(ValueError, match="'pooled' or none"):
        build_model("schnet", reductions=["sum", "mean"], readout=["sum", "pooled"], **settings)
    with pytest.raises(ValueError, match="not 'pooled'"):
        build_model("dimenet++", reductions=["mean"], readout="pooled")


def test_old_readout_words_are_named_with_their_new_ones():
    with pytest.raises(ValueError, match="now called 'atom_mean'"):
        check_readout(["auto", "per_atom"])
    with pytest.raises(ValueError, match=r"write 'atom_mean' .* or 'pooled'"):  # "mean" meant two things
        check_readout("mean")
    with pytest.raises(ValueError, match="readout 'pooled' and pool 'set2set'"):
        check_readout("set2set")
    with pytest.raises(ValueError, match="one of"):
        check_readout("median")


# ---------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ({"name": "cgcnn", "readout": "per_atom"}, r"model\.readout: .*now called 'atom_mean'"),
        ({"name": "megnet", "readout": ["sum", "per_atom"]}, r"model\.readout: .*now called 'atom_mean'"),
        ({"name": "cgcnn", "readout": "mean"}, r"model\.readout: .*'atom_mean' .* or 'pooled'"),
        ({"name": "schnet", "readout": "mean"}, r"model\.readout: .*'atom_mean' .* or 'pooled'"),
        ({"name": "schnet", "readout": "set2set"}, r"model\.readout: .*readout 'pooled' and pool 'set2set'"),
        ({"name": "gcn", "readout": "mean"}, r"model\.readout: .*now model\.pool \(e\.g\. pool: mean\)"),
        ({"name": "mpnn", "readout": "set2set"}, r"model\.pool"),
        ({"name": "schnet", "extensive": [True]}, r"model\.extensive: .*data\.reductions"),
    ],
)
def test_a_config_with_an_old_readout_word_gets_a_clear_error(tmp_path, model, match):
    path = write_config(tmp_path / "config.yaml", {"model": model})
    config = load_config(path)
    with pytest.raises(ConfigError, match=match):
        check_readout_settings(config["model"])


def test_shipped_words_pass_the_config_check():
    for model in (
        {"name": "cgcnn", "readout": ["sum", "atom_mean", "pooled"]},
        {"name": "megnet", "readout": "auto", "pool": "mean"},
        {"name": "schnet", "readout": "pooled", "pool": "attention"},
        {"name": "gat", "pool": "set2set"},
        {"name": "affinity_joint", "pool": "attention"},
    ):
        check_readout_settings(model)


# ------------------------------------------------------------------------------------ checkpoints


def legacy_cases() -> dict:
    return torch.load(LEGACY, weights_only=True)


@pytest.mark.parametrize("case", sorted(legacy_cases()))
def test_an_old_vocabulary_checkpoint_loads_to_the_same_outputs(tmp_path, case):
    """tests/data/legacy_readouts.pt: checkpoints written by the code before this vocabulary
    (tests/data/make_legacy_readouts.py) load through the legacy shim into modules with today's
    arguments and give the outputs they gave then."""
    stored = legacy_cases()[case]
    assert "extensive" in stored["hyper_parameters"]["model"]  # the old words
    path = tmp_path / "old.ckpt"
    torch.save({"hyper_parameters": stored["hyper_parameters"], "state_dict": stored["state_dict"]}, path)
    run = TrainedRun.load(path)
    model = run.module.hparams["model"]
    assert "extensive" not in model and len(model["reductions"]) == stored["outputs"].shape[1]
    batch = Batch.from_data_list([Data(**graph) for graph in stored["graphs"]])
    with torch.no_grad():
        outputs = run.module.model(batch)
    torch.testing.assert_close(outputs, stored["outputs"], rtol=1e-6, atol=1e-7)


def test_the_legacy_shim_translates_each_old_word():
    translate = legacy_model_arguments
    assert translate({"name": "cgcnn", "extensive": [True, False], "readout": ["auto", "per_atom"]}) == {
        "name": "cgcnn", "reductions": ["sum", "mean"], "readout": ["auto", "atom_mean"],
    }  # fmt: skip
    assert translate({"name": "megnet", "readout": "mean"})["readout"] == "pooled"
    assert translate({"name": "gat", "readout": "max"}) == {"name": "gat", "pool": "max"}
    assert translate({"name": "schnet", "readout": "attention"}) == {
        "name": "schnet", "readout": "pooled", "pool": "attention",
    }  # fmt: skip
    assert translate({"name": "schnet", "readout": "mean"})["readout"] == "atom_mean"  # the same meaning
    assert translate({"name": "affinity_joint", "readout": "set2set"}) == {
        "name": "affinity_joint",
        "pool": "set2set",
    }


def test_an_old_run_directory_with_old_words_in_its_config_loads(tmp_path):
    """The run's config.yaml says the old words too; it is read in the words of its checkpoint, so
    the check that config and checkpoint agree still passes."""
    stored = legacy_cases()["cgcnn_per_target"]
    hparams = stored["hyper_parameters"]
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    torch.save({"hyper_parameters": hparams, "state_dict": stored["state_dict"]},
               run_dir / "checkpoints" / "best.ckpt")  # fmt: skip
    model = {k: v for k, v in hparams["model"].items() if k != "extensive"}
    targets = [t["name"] for t in hparams["targets"]]
    config = {"name": "old", "run_dir": str(run_dir), "model": model,
              "data": {"dataset": "crystals", "targets": targets, "graph": hparams["graph"]}}  # fmt: skip
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    run = TrainedRun.load(run_dir)
    assert run.config["model"]["readout"] == ["auto", "atom_mean", "pooled"]
    assert run.module.hparams["model"]["readout"] == ["auto", "atom_mean", "pooled"]


def test_mean_readout_counts_atoms_without_splitting_a_compiled_graph():
    """The atom counts of a mean come from a sum of ones (``torch.bincount``'s output size depends on the
    data: it split every compiled forward in two); empty graphs count as one."""
    batch = torch.tensor([0, 0, 2, 2, 2, 3])
    expected = torch.bincount(batch, minlength=5).double()
    assert torch.equal(segment_counts(batch, 5, torch.float64), expected)
    reduce = SumOrMean(["atom_mean", "sum"])
    per_atom = torch.arange(12.0).view(6, 2)
    out = reduce(per_atom, batch, 5)
    assert torch.equal(out[:, 0], torch.tensor([1.0, 0.0, 6.0, 10.0, 0.0]))
    assert torch.equal(out[:, 1], torch.tensor([4.0, 0.0, 21.0, 11.0, 0.0]))
    explained = torch._dynamo.explain(reduce.forward)(per_atom, batch, 5)
    assert explained.graph_break_count == 0
