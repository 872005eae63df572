"""Models: output shapes, invariances (permutation, rotation, translation), batching, extensivity."""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest
import torch
from ase.build import bulk
from conftest import random_molecule
from rdkit import Chem
from rdkit.Geometry import Point3D
from scipy.spatial.transform import Rotation
from torch_geometric.data import Batch

from atomgraph.apps.complexes.synthetic import example_graph
from atomgraph.graphs import radius_graph
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models import available_models, build_model, model_class, register_model
from atomgraph.structures import from_smiles, mol_to_atoms

CUTOFF = 4.0
RADIUS_MODELS = {
    "schnet": {
        "hidden": 16,
        "filters": 16,
        "interactions": 2,
        "num_rbf": 12,
        "graph": GraphSpec(cutoff=CUTOFF),
    },
    "simple_gnn": {"dim": 16, "num_rbf": 12, "layers": 2, "graph": GraphSpec(cutoff=CUTOFF)},
}
MPNN_SMALL = {"hidden": 16, "steps": 2, "set2set_steps": 2, "edge_hidden": 16}
SMILES = ["CCO", "c1ccncc1", "CC(=O)O", "OC1CCCC1"]
BOND_VARIANTS = {
    "plain": GraphSpec(kind="bond"),
    "virtual": GraphSpec(kind="bond", virtual_edges=True, atom_features="hbond"),
    "heavy_atoms": GraphSpec(kind="bond", explicit_hydrogens=False),
}
REDUCTIONS = ("sum", "mean")  # two targets: one summed, one averaged over atoms


def molecules(n: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [random_molecule(rng, 4, 9) for _ in range(n)]


def radius_model(name: str, **extra) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, reductions=REDUCTIONS, **{**RADIUS_MODELS[name], **extra}).eval()


def mpnn_model(graph, distance: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(
        "mpnn",
        atom_dim=graph.x.shape[1],
        edge_dim=graph.edge_attr.shape[1],
        reductions=REDUCTIONS,
        distance=distance,
        **MPNN_SMALL,
    ).eval()


def random_rigid_motion(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rotation = Rotation.random(random_state=seed).as_matrix()
    return rotation, np.random.default_rng(seed).normal(0.0, 3.0, size=3)


def transformed_mol(mol: Chem.Mol, rotation=None, translation=None, order=None) -> Chem.Mol:
    """A copy of ``mol``, its conformer moved rigidly and/or its atoms renumbered (new i = old order[i])."""
    out = Chem.Mol(mol)
    if rotation is not None:
        conf = out.GetConformer()
        moved = conf.GetPositions() @ rotation.T + translation
        for i, (x, y, z) in enumerate(moved):
            conf.SetAtomPosition(i, Point3D(float(x), float(y), float(z)))
    if order is not None:
        out = Chem.RenumberAtoms(out, [int(i) for i in order])
    return out


@functools.cache
def bond_atoms(smiles: str):
    """A 3D molecule (ETKDG + MMFF, seed 0) with its RDKit molecule; cached, never modified by the tests."""
    return from_smiles(smiles, embed_3d=True)


# ------------------------------------------------------------------------------------- radius models


@pytest.mark.parametrize("name", sorted(RADIUS_MODELS))
def test_radius_models_output_shape(name):
    graphs = [radius_graph(a, CUTOFF) for a in molecules(3)]
    out = radius_model(name)(Batch.from_data_list(graphs))
    assert out.shape == (3, len(REDUCTIONS))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(RADIUS_MODELS))
def test_radius_models_permutation_invariant(name, float64):
    model = radius_model(name)
    rng = np.random.default_rng(5)
    for atoms in molecules(3, seed=1):
        perm = rng.permutation(len(atoms))
        ref = model(radius_graph(atoms, CUTOFF))
        permuted = model(radius_graph(atoms[perm], CUTOFF))
        torch.testing.assert_close(permuted, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(RADIUS_MODELS))
def test_radius_models_rotation_translation_invariant(name, float64):
    model = radius_model(name)
    for k, atoms in enumerate(molecules(3, seed=2)):
        rotation, shift = random_rigid_motion(k)
        moved = atoms.copy()
        moved.positions = atoms.positions @ rotation.T + shift
        ref = model(radius_graph(atoms, CUTOFF))
        torch.testing.assert_close(model(radius_graph(moved, CUTOFF)), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(RADIUS_MODELS))
def test_radius_models_batch_equals_single_graphs(name, float64):
    model = radius_model(name)
    crystal = bulk("Si", "diamond", a=5.43)
    crystal.rattle(0.05, seed=3)
    structures = [*molecules(3, seed=3), crystal]  # a periodic cell in the batch as well
    graphs = [radius_graph(a, CUTOFF) for a in structures]
    batched = model(Batch.from_data_list(graphs))
    single = torch.cat([model(g) for g in graphs])
    torch.testing.assert_close(batched, single, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(RADIUS_MODELS))
@pytest.mark.parametrize(("readout", "factor"), [("sum", 8.0), ("atom_mean", 1.0)])
def test_periodic_supercell_energy(name, readout, factor, float64):
    """A 2x2x2 supercell is 8 copies of the cell: sum readout x8 (extensive), mean readout unchanged."""
    cell = bulk("Si", "diamond", a=5.43)  # lattice vectors (3.84 Å) shorter than the cutoff
    cell.rattle(0.05, seed=4)
    torch.manual_seed(0)
    model = build_model(name, reductions=("sum",), readout=readout, **RADIUS_MODELS[name]).eval()
    with torch.no_grad():
        e_cell = model(radius_graph(cell, CUTOFF))
        e_super = model(radius_graph(cell.repeat(2), CUTOFF))
    torch.testing.assert_close(e_super, factor * e_cell, rtol=1e-9, atol=1e-9)
    assert abs(e_cell.item()) > 1e-6  # not trivially zero


def test_schnet_auto_readout_is_extensive_per_target(float64):
    cell = bulk("Cu", "fcc", a=3.6, cubic=True)
    cell.rattle(0.05, seed=5)
    model = radius_model("schnet")  # reductions=("sum", "mean"), readout "auto"
    e_cell = model(radius_graph(cell, CUTOFF))
    e_super = model(radius_graph(cell.repeat(2), CUTOFF))
    torch.testing.assert_close(e_super[:, 0], 8 * e_cell[:, 0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(e_super[:, 1], e_cell[:, 1], rtol=1e-9, atol=1e-9)


# -------------------------------------------------------------------------------------------- MPNN


@pytest.mark.parametrize("variant", sorted(BOND_VARIANTS))
@pytest.mark.parametrize("distance", ["rbf", "none"])
def test_mpnn_shape_and_batching(variant, distance, float64):
    settings = BOND_VARIANTS[variant]
    graphs = [settings.build(bond_atoms(s)) for s in SMILES]
    model = mpnn_model(graphs[0], distance)
    batched = model(Batch.from_data_list(graphs))
    assert batched.shape == (len(SMILES), len(REDUCTIONS))
    single = torch.cat([model(g) for g in graphs])
    torch.testing.assert_close(batched, single, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("variant", sorted(BOND_VARIANTS))
@pytest.mark.parametrize("distance", ["rbf", "none"])
def test_mpnn_permutation_invariant(variant, distance, float64):
    settings = BOND_VARIANTS[variant]
    rng = np.random.default_rng(7)
    model = None
    for smiles in SMILES:
        atoms = bond_atoms(smiles)
        mol = atoms.info["rdkit_mol"]
        graph = settings.build(atoms)
        model = model or mpnn_model(graph, distance)
        order = rng.permutation(mol.GetNumAtoms())
        permuted_atoms = mol_to_atoms(transformed_mol(mol, order=order), "permuted")
        np.testing.assert_allclose(permuted_atoms.positions, atoms.positions[order])
        permuted = settings.build(permuted_atoms)
        torch.testing.assert_close(model(permuted), model(graph), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("variant", sorted(BOND_VARIANTS))
def test_mpnn_rotation_translation_invariant(variant, float64):
    settings = BOND_VARIANTS[variant]
    model = None
    for k, smiles in enumerate(SMILES):
        atoms = bond_atoms(smiles)
        graph = settings.build(atoms)
        model = model or mpnn_model(graph, "rbf")
        rotation, shift = random_rigid_motion(10 + k)
        moved_mol = transformed_mol(atoms.info["rdkit_mol"], rotation, shift)
        moved = settings.build(mol_to_atoms(moved_mol, "moved"))
        assert not torch.allclose(moved.pos, graph.pos)
        torch.testing.assert_close(model(moved), model(graph), rtol=1e-10, atol=1e-10)


def test_mpnn_distance_features_matter_and_need_3d():
    atoms = bond_atoms("CCO")
    graph = GraphSpec(kind="bond").build(atoms)
    model = mpnn_model(graph, "rbf")
    stretched = graph.clone()
    stretched.pos = graph.pos * 1.3
    assert not torch.allclose(model(stretched), model(graph))
    flat = GraphSpec(kind="bond").build(from_smiles("CCO"))  # 2D depiction only
    with pytest.raises(ValueError, match="3D"):
        model(flat)
    assert mpnn_model(flat, "none")(flat).shape == (1, 2)
    with pytest.raises(ValueError, match="distance"):
        build_model("mpnn", atom_dim=4, edge_dim=4, distance="angles")


# ---------------------------------------------------------------------------------------- registry


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown model") as error:
        build_model("no_such_model")
    for name in available_models():
        assert name in str(error.value)
    with pytest.raises(ValueError, match="unknown model"):
        model_class("no_such_model")


def test_registry_names_are_case_insensitive_and_bad_arguments_are_reported():
    assert model_class("SchNet") is model_class("schnet")
    with pytest.raises(ValueError, match="bad arguments"):
        build_model("schnet", no_such_argument=1)


def test_registering_a_taken_name_is_an_error():
    with pytest.raises(ValueError, match="already registered"):

        @register_model("schnet", card=model_class("schnet").card)
        class Impostor(torch.nn.Module):
            pass

    assert model_class("schnet").__name__ != "Impostor"


def test_every_registered_model_builds_and_runs():
    assert {"schnet", "simple_gnn", "mpnn"} <= set(available_models())
    bond = GraphSpec(kind="bond").build(bond_atoms("CCO"))
    radius = radius_graph(molecules(1)[0], 5.0)
    inputs = {"atom_dim": bond.x.shape[1], "edge_dim": bond.edge_attr.shape[1]}
    for name in available_models():
        cls = model_class(name)
        required = [
            p.name
            for p in inspect.signature(cls).parameters.values()
            if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        required = [p for p in required if p != "graph"]  # build_model passes the card's preset
        assert set(required) <= set(inputs), f"{name}: do not know how to fill {required}"
        model = build_model(name, reductions=("sum",), **{k: inputs[k] for k in required}).eval()
        assert cls.card.graph_kind in ("radius", "bond", "complex", "sequence"), name
        if cls.card.graph_kind in ("complex", "sequence"):
            graph = example_graph(cls.card.graph_kind)
        else:
            graph = bond if cls.card.graph_kind == "bond" else radius
        with torch.no_grad():
            out = model(Batch.from_data_list([graph, graph]))
        assert out.shape == (2, 1), name
        assert torch.isfinite(out).all(), name
