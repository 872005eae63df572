"""Interpretation: attention -> bond weights, attention and gradient drawings, explain() on models, runs."""

from __future__ import annotations

import inspect

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from rdkit import Chem
from torch import nn

from atomgraph.apps.complexes.synthetic import example_graph
from atomgraph.evaluation.attention import (
    attention_matrix,
    bond_weights,
    head_diversity,
    select_attention,
    stack_attention,
)
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.evaluation.explain import (
    MAX_BOND_WIDTH,
    attribute_atoms,
    draw_atom_importance,
    draw_attention,
    explain,
    gradient_atom_importance,
    molecule_and_graph,
)
from atomgraph.graphs import bond_graph, edge_lengths, edge_vectors
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models import available_models, build_model, model_class
from atomgraph.structures import from_smiles
from atomgraph.training.config import load_config

SMILES = "CC(=O)Oc1ccccc1C(=O)O"
HEAVY = GraphSpec(kind="bond", explicit_hydrogens=False)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_gat(name: str = "gat", **extra) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, atom_dim=47, edge_dim=11, hidden=8, layers=2, heads=2, **extra).eval()


def expected_bond_weights(mol: Chem.Mol, attention, layer="mean", head="mean") -> np.ndarray:
    """Bond weights computed directly from the per-layer attention, edge by edge."""
    out = []
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        per_layer = []
        for edge_index, alpha in attention:
            s, t = edge_index
            both = ((s == i) & (t == j)) | ((s == j) & (t == i))
            assert int(both.sum()) == 2
            values = alpha[both]  # [2, heads]
            per_layer.append(values.mean(1) if head == "mean" else values[:, head])
        stacked = torch.stack(per_layer)  # [layers, 2]
        out.append(float((stacked.mean(0) if layer == "mean" else stacked[layer]).mean()))
    return np.array(out)


def assert_png(path):
    """A PNG with a drawing: not one flat colour, and coloured (highlights, colour bar), not only grey."""
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)
    rgb = mpimg.imread(path)[..., :3]
    assert rgb.std() > 0.01, f"{path.name} is blank"
    saturation = rgb.max(axis=-1) - rgb.min(axis=-1)
    assert (saturation > 0.3).mean() > 0.001, f"{path.name} has no coloured highlights"


# ------------------------------------------------------------------------------------ bond weights


def test_bond_weights_average_both_directions_and_skip_loops_and_non_bonds():
    mol = Chem.MolFromSmiles("CCO")  # bonds: 0 = C0-C1, 1 = C1-O2
    edge_index = torch.tensor([[0, 1, 1, 2, 0, 1, 2, 0, 3], [1, 0, 2, 1, 0, 1, 2, 2, 0]])
    weight = torch.tensor(
        [0.2, 0.4, 0.6, 1.0, 9.0, 9.0, 9.0, 5.0, 7.0]
    )  # loops, a virtual edge, a master node
    np.testing.assert_allclose(bond_weights(mol, edge_index, weight), [0.3, 0.8])
    assert np.isnan(bond_weights(mol, edge_index[:, :2], weight[:2])[1])


def test_select_and_stack_attention():
    alpha = torch.arange(24.0).view(2, 4, 3)  # [layers, E, heads]
    torch.testing.assert_close(select_attention(alpha, 1, 2), alpha[1, :, 2].double())
    torch.testing.assert_close(select_attention(alpha), alpha.mean((0, 2)).double())
    torch.testing.assert_close(select_attention(alpha[0], head=-1), alpha[0, :, 2].double())
    with pytest.raises(ValueError, match="layer 2 out of range"):
        select_attention(alpha, layer=2)
    with pytest.raises(ValueError, match="head"):
        select_attention(alpha, head="max")
    index = torch.zeros(2, 4, dtype=torch.long)
    edge_index, stacked = stack_attention([(index, alpha[0]), (index, alpha[1])])
    assert torch.equal(stacked, alpha) and edge_index is index
    with pytest.raises(ValueError, match="different edges"):
        stack_attention([(index, alpha[0]), (index + 1, alpha[1])])


# ------------------------------------------------------------------------------------------ drawing


@pytest.mark.parametrize("name", ["gat", "gatv2"])
@pytest.mark.parametrize("layer, head", [("mean", "mean"), (0, 1), (-1, "mean")])
def test_draw_attention_highlights_the_largest_weights(name, layer, head, tmp_path):
    mol = Chem.MolFromSmiles(SMILES)
    attention = small_gat(name).attention_weights(bond_graph(mol))
    edge_index, alpha = stack_attention(attention)
    for suffix in ("png", "svg"):
        path = tmp_path / f"attention.{suffix}"
        drawn = draw_attention(mol, edge_index, alpha, path, layer, head, title=SMILES)
        assert drawn["path"] == path
    assert_png(tmp_path / "attention.png")
    assert "<svg" in (tmp_path / "attention.svg").read_text()

    expected = expected_bond_weights(mol, attention, layer, head)
    np.testing.assert_allclose(drawn["bond_weights"], expected, rtol=1e-6)
    assert drawn["top_bonds"][0] == int(np.argmax(expected))
    assert drawn["top_bonds"] == sorted(range(len(expected)), key=lambda k: (-expected[k], k))
    widths = np.array([drawn["bond_widths"][k] for k in range(mol.GetNumBonds())])
    assert widths[np.argmax(expected)] == MAX_BOND_WIDTH and widths[np.argmin(expected)] == 1
    assert (np.diff(widths[np.argsort(expected)]) >= 0).all(), "wider bonds have larger weights"


def test_draw_atom_importance(tmp_path):
    mol = Chem.MolFromSmiles("c1ccncc1O")
    importance = torch.tensor([0.1, 0.0, 0.3, 0.9, 0.2, 0.1, 0.5])
    drawn = draw_atom_importance(mol, importance, tmp_path / "atoms.png")
    assert_png(drawn["path"])
    assert drawn["top_atoms"][:3] == [3, 6, 2]
    assert max(drawn["atom_radii"], key=drawn["atom_radii"].get) == 3
    with pytest.raises(ValueError, match="6 importances"):
        draw_atom_importance(mol, importance[:6], tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        draw_atom_importance(mol, importance, tmp_path / "atoms.jpg")


# -------------------------------------------------------------------------------------- attribution


def test_gradient_times_input_on_atom_features():
    torch.manual_seed(0)
    model = build_model("gcn", atom_dim=47, reductions=("mean", "sum"), hidden=8, layers=2)
    graph = bond_graph(SMILES)
    x = graph.x.clone().requires_grad_(True)
    probe = graph.clone()
    probe.x = x
    (grad,) = torch.autograd.grad(model(probe)[0, 1], x)
    importance, method = attribute_atoms(model, graph, target=1)
    assert method == "x"
    torch.testing.assert_close(importance, (grad * x).sum(1).abs())
    assert graph.x.grad is None and not graph.x.requires_grad, "the input graph is left alone"


def graph_for(name: str):
    cls = model_class(name)
    if cls.card.graph_kind in ("complex", "sequence"):
        return example_graph(cls.card.graph_kind)
    atoms = from_smiles("CC(=O)O", embed_3d=True)
    return GraphSpec(kind=cls.card.graph_kind).build(atoms)


def test_gradient_importance_works_for_every_registered_model():
    methods = {}
    for name in available_models():
        graph = graph_for(name)
        required = [
            p.name
            for p in inspect.signature(model_class(name)).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind is p.POSITIONAL_OR_KEYWORD
            and p.name != "graph"  # build_model passes the card's preset
        ]
        inputs = {
            "atom_dim": graph.x.shape[1] if "x" in graph else 0,
            "edge_dim": graph.edge_attr.shape[1] if "edge_attr" in graph else 0,
        }
        torch.manual_seed(0)
        model = build_model(name, reductions=("sum",), **{k: inputs[k] for k in required})
        model.train()
        importance, methods[name] = attribute_atoms(model, graph)
        assert model.training, f"{name}: mode not restored"
        assert importance.shape == (graph.num_nodes,), name
        assert torch.isfinite(importance).all() and (importance >= 0).all() and (importance > 0).any(), name
    assert methods["schnet"] == "embedding" and methods["gat"] == "x" and methods["mpnn"] == "x"


class PositionsOnly(nn.Module):
    """A model reading nothing but interatomic distances."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, graph):
        return (self.scale * edge_lengths(edge_vectors(graph)) ** 2).sum().view(1, 1)


def test_gradient_falls_back_to_positions():
    graph = GraphSpec(kind="radius").build(from_smiles("CCO", embed_3d=True))
    importance, method = attribute_atoms(PositionsOnly(), graph)
    assert method == "pos" and importance.shape == (9,) and bool((importance > 0).all())
    torch.testing.assert_close(gradient_atom_importance(PositionsOnly(), graph), importance)


# ------------------------------------------------------------------------------------------ explain


def test_explain_attention_with_a_model_and_settings(tmp_path):
    model = small_gat()
    result = explain(model, SMILES, tmp_path / "gat.png", HEAVY)
    assert result["method"] == "attention" and result["smiles"] == SMILES
    assert_png(tmp_path / "gat.png")
    mol, graph = molecule_and_graph(SMILES, HEAVY)
    assert result["mol"].GetNumAtoms() == mol.GetNumAtoms() == 13 == graph.num_nodes
    expected = expected_bond_weights(mol, model.attention_weights(graph))
    np.testing.assert_allclose(result["bond_weights"], expected, rtol=1e-6)
    assert result["top_bonds"][0] == int(np.argmax(expected))
    torch.testing.assert_close(torch.as_tensor(result["prediction"]), model(graph)[0].double())

    with_h = explain(model, SMILES, tmp_path / "gat_h.svg", GraphSpec(kind="bond"), layer=1, head=0)
    assert with_h["mol"].GetNumAtoms() == 21 and len(with_h["bond_weights"]) == 21
    assert "<svg" in (tmp_path / "gat_h.svg").read_text()


def test_attention_matrix_rows_sum_to_one_and_head_diversity_spans_zero_to_one():
    mol, graph = molecule_and_graph(SMILES, HEAVY)
    layers = small_gat().attention_weights(graph)
    index, alpha = layers[0]
    matrix = attention_matrix(index, alpha[:, 1], mol.GetNumAtoms())
    np.testing.assert_allclose(matrix.sum(1), 1.0, rtol=1e-6)  # every atom attends (with itself)
    s, t = index
    edge = int(((s == 3) & (t == 4)).nonzero()[0, 0])
    assert matrix[4, 3] == pytest.approx(float(alpha[edge, 1]))  # row = the attending atom
    assert matrix[0, 12] == 0  # not neighbours
    same = torch.stack([alpha[:, 0], alpha[:, 0]], dim=1)
    assert head_diversity(index, same) == pytest.approx(0.0)
    # two heads on disjoint neighbours of every node: the distance is 1
    ring = torch.tensor([[1, 2, 0, 2, 0, 1], [0, 0, 1, 1, 2, 2]])
    disjoint = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert head_diversity(ring, disjoint) == pytest.approx(1.0)
    assert 0.0 < head_diversity(index, alpha) < 1.0
    assert np.isnan(head_diversity(index, alpha[:, :1]))


@pytest.mark.parametrize("name", ["gat", "gat_practical"])
def test_explain_draws_attention_matrices_and_highlights_bonds_above_a_threshold(name, tmp_path):
    torch.manual_seed(0)
    extra = {} if name == "gat_practical" else {"edge_dim": 11}
    model = build_model(name, atom_dim=47, hidden=8, layers=2, heads=2, **extra).eval()
    result = explain(model, SMILES, tmp_path / "mol.png", HEAVY, threshold=0.4)
    assert_png(tmp_path / "mol.png")
    assert (
        result["matrices_path"] == tmp_path / "mol_matrices.png"
        and assert_png(result["matrices_path"]) is None
    )
    weights = result["bond_weights"]
    assert result["highlighted_bonds"] == sorted(int(k) for k in np.flatnonzero(weights >= 0.4))
    assert len(result["head_diversity"]) == 2 and all(0 <= d <= 1 for d in result["head_diversity"])


def test_explain_gradient_for_models_without_attention(tmp_path):
    torch.manual_seed(0)
    gcn = build_model("gcn", atom_dim=47, hidden=8, layers=2)
    result = explain(gcn, "c1ccncc1O", tmp_path / "gcn.png", HEAVY)
    assert result["method"] == "x" and result["mol"].GetNumAtoms() == 7
    assert result["top_atoms"][0] == int(np.argmax(result["atom_weights"]))
    assert_png(tmp_path / "gcn.png")

    schnet = build_model(
        "schnet", hidden=8, filters=8, interactions=1, num_rbf=8, graph=GraphSpec(cutoff=4.0)
    )
    result = explain(schnet, "CCO", tmp_path / "schnet.svg", GraphSpec(kind="radius", cutoff=4.0))
    assert result["method"] == "embedding" and result["mol"].GetNumAtoms() == 9  # with hydrogens
    assert len(result["atom_weights"]) == 9


@pytest.mark.slow
def test_explain_a_trained_gat_run(tmp_path, scaffold_csv):
    config = load_config(
        None,
        [
            "model.name=gat",
            "model.hidden=8",
            "model.layers=2",
            "model.heads=2",
            "data.dataset=csv",
            f"data.path={scaffold_csv}",
            "data.targets=[value]",
            "data.graph.explicit_hydrogens=false",
            "data.split.sizes=[0.6,0.2,0.2]",
            f"data.cache={tmp_path / 'cache'}",
            f"run_dir={tmp_path / 'run'}",
            "training.epochs=2",
            "training.batch_size=16",
            "training.progress=false",
            "training.accelerator=cpu",
            "training.scheduler=none",
            "training.early_stopping_patience=0",
        ],
    )
    run_dir = train_and_evaluate(config, progress=False)
    result = explain(run_dir, "CCO", tmp_path / "out.png")
    assert result["method"] == "attention"
    assert_png(tmp_path / "out.png")
    assert result["mol"].GetNumAtoms() == 3 and result["bond_weights"].shape == (2,)
    assert np.isfinite(result["bond_weights"]).all() and np.isfinite(result["prediction"]).all()
    assert result["prediction"].shape == (1,)
