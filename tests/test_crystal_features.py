"""Seed 004's crystal inputs: effective coordination numbers against a brute-force neighbour sum,
guessed oxidation states and space groups on known prototypes, the GraphSpec fields that add them to
graphs (round trip, cache key, refusals), the models that read them, and the derived ``is_metal``
classification label."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list
from torch_geometric.data import Batch

from atomgraph.apps.crystals.crystal_features import (
    crystal_system,
    guessed_oxidation_states,
    oxidation_state_columns,
    space_group_columns,
    space_group_number,
)
from atomgraph.apps.crystals.dataset import read_labels
from atomgraph.graphs.spec import GraphSpec, preset
from atomgraph.graphs.structure_features import effective_coordination
from atomgraph.models import build_model
from atomgraph.targets import TargetSet, known_target

needs_pymatgen = pytest.mark.skipif(
    importlib.util.find_spec("pymatgen") is None or importlib.util.find_spec("spglib") is None,
    reason="oxidation states and space groups need pymatgen and spglib (pip install atomgraph[bench])",
)

FEATURED_FIELDS = {
    "max_neighbors": 12,
    "site_features": ("oxidation_state", "coordination"),
    "state_features": ("space_group",),
}


@pytest.fixture(scope="module")
def featured() -> GraphSpec:
    if importlib.util.find_spec("pymatgen") is None or importlib.util.find_spec("spglib") is None:
        pytest.skip("oxidation states and space groups need pymatgen and spglib")
    return GraphSpec("radius", 8.0, **FEATURED_FIELDS)


def wurtzite() -> Atoms:
    return bulk("ZnO", "wurtzite", a=3.25, c=5.2)


def brute_force_econ(atoms: Atoms, cutoff: float) -> np.ndarray:
    """Hoppe's ECoN by plain loops over ASE's neighbour list (every neighbour within ``cutoff``)."""
    centres, distances = neighbor_list("id", atoms, cutoff)
    out = np.zeros(len(atoms))
    for i in range(len(atoms)):
        d = distances[centres == i]
        mean = d.min()
        for _ in range(200):
            w = np.exp(1.0 - (d / mean) ** 6)
            mean = (w * d).sum() / w.sum()
        out[i] = np.exp(1.0 - (d / mean) ** 6).sum()
    return out


@pytest.mark.parametrize(
    "atoms, expected",
    [
        (bulk("NaCl", "rocksalt", a=5.64), 6.0),
        (bulk("Si", "diamond", a=5.43), 4.0),
        (bulk("Cu", "fcc", a=3.6), 12.0),
    ],
)
def test_effective_coordination_of_prototypes_and_against_brute_force(atoms, expected):
    """ECoN is ~6 for rock salt, 4 for diamond, 12 for fcc, equals a loop over ASE's neighbour list
    (no cap, 8 Å), and does not change with the cell choice (a rattled 2x2x2 supercell repeats it)."""
    atoms = atoms.copy()
    atoms.rattle(0.05, seed=1)
    graph = GraphSpec("radius", 8.0).build(atoms)
    econ = effective_coordination(graph).numpy()
    np.testing.assert_allclose(econ, brute_force_econ(atoms, 8.0), rtol=1e-6)
    assert np.all(np.abs(econ - expected) < 0.35)
    supercell = GraphSpec("radius", 8.0).build(atoms.repeat(2))
    np.testing.assert_allclose(effective_coordination(supercell).numpy(), np.tile(econ, 8), rtol=1e-6)


@needs_pymatgen
def test_oxidation_states_are_guessed_or_flagged():
    """NaCl: +1/-1 with the flag set; Fe3O4's mixed valence averages to 8/3; elemental Cu is 0 and
    guessed; the intermetallic CuZn has no charge-balanced guess: zeros, flag 0."""
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    np.testing.assert_allclose(oxidation_state_columns(nacl), [[0.25, 1.0], [-0.25, 1.0]])
    magnetite = Atoms("Fe3O4", positions=np.eye(7, 3) * 2, cell=[9, 9, 9], pbc=True)
    assert guessed_oxidation_states(magnetite)["Fe"] == pytest.approx(8 / 3)
    np.testing.assert_allclose(oxidation_state_columns(bulk("Cu", "fcc", a=3.6)), [[0.0, 1.0]])
    cuzn = Atoms("CuZn", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[3, 3, 3], pbc=True)
    np.testing.assert_array_equal(oxidation_state_columns(cuzn), np.zeros((2, 2)))


@needs_pymatgen
def test_space_groups_of_prototypes():
    """Rock salt 225 (cubic), wurtzite 186 (hexagonal), a random cell P1 (triclinic); a molecule has
    none (all zeros); crystal systems switch at the International Tables' boundaries."""
    assert space_group_number(bulk("NaCl", "rocksalt", a=5.64)) == 225
    assert space_group_number(wurtzite()) == 186
    rng = np.random.default_rng(0)
    random_cell = Atoms("SiO2", scaled_positions=rng.random((3, 3)), cell=[[4, 0.3, 0.1], [0.5, 5, 0.2],
                        [0.3, 0.7, 6]], pbc=True)  # fmt: skip
    assert space_group_number(random_cell) == 1
    columns = space_group_columns(wurtzite())
    np.testing.assert_allclose(columns, [0, 0, 0, 0, 0, 1, 0, 186 / 230])
    molecule = Atoms("H2O", positions=[[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(space_group_columns(molecule), np.zeros(8))
    bounds = {1: "triclinic", 2: "triclinic", 3: "monoclinic", 16: "orthorhombic", 75: "tetragonal",
              143: "trigonal", 168: "hexagonal", 195: "cubic", 230: "cubic"}  # fmt: skip
    assert {n: crystal_system(n) for n in bounds} == bounds
    with pytest.raises(ValueError, match="1 to 230"):
        crystal_system(231)


def test_graph_spec_adds_the_named_features_and_keeps_old_cache_keys(featured):
    """``build`` fills ``site_attr`` [N, 3] and ``state`` [1, 8] in the order named; the spec round-trips
    through its dict (lists, YAML-safe); a spec without features keeps the key it always had; features
    change the key."""
    graph = featured.build(bulk("NaCl", "rocksalt", a=5.64))
    assert graph.site_attr.shape == (2, 3) and graph.state.shape == (1, 8)
    np.testing.assert_allclose(graph.site_attr[:, :2].numpy(), [[0.25, 1.0], [-0.25, 1.0]])
    assert graph.site_attr[:, 2].numpy() == pytest.approx([6.02 / 12] * 2, abs=0.01)
    assert graph.state[0, 6] == 1.0  # cubic
    record = featured.to_dict()
    assert record["site_features"] == ["oxidation_state", "coordination"]
    assert GraphSpec.from_dict(record) == featured
    assert preset("cgcnn_crystal").key() == "1ea0e1fef860"  # the key caches already carry
    assert featured.key() != preset("cgcnn_crystal").key()
    assert "site features oxidation_state+coordination" in featured.describe()
    batch = Batch.from_data_list([graph, featured.build(wurtzite())])
    assert batch.site_attr.shape == (6, 3) and batch.state.shape == (2, 8)


def test_graph_spec_refuses_bad_feature_settings():
    with pytest.raises(ValueError, match=r"unknown feature 'charge'.*coordination"):
        GraphSpec("radius", 5.0, site_features=("charge",))
    with pytest.raises(ValueError, match="radius graphs only"):
        GraphSpec("bond", 6.0, site_features=("coordination",))
    with pytest.raises(ValueError, match="twice"):
        GraphSpec("radius", 5.0, state_features=("space_group", "space_group"))
    with pytest.raises(ValueError, match="list of feature names"):
        GraphSpec("radius", 5.0, site_features="coordination")


def test_models_read_the_features_and_others_refuse_them(featured):
    """CGCNN and MEGNet read site and state features (their output changes with them; a graph built
    without them is refused with the reason); SchNet refuses a spec with them, and so does a potential."""
    torch.manual_seed(0)
    graphs = [featured.build(a) for a in (bulk("NaCl", "rocksalt", a=5.64), wurtzite())]
    batch = Batch.from_data_list(graphs)
    for name in ("cgcnn", "megnet"):
        model = build_model(name, featured, reductions=["mean"], lattice=True).eval()
        before = model(batch)
        changed = batch.clone()
        changed.site_attr = changed.site_attr + 0.5
        assert not torch.allclose(model(changed), before)
        changed = batch.clone()
        changed.state = changed.state.flip(-1)
        assert not torch.allclose(model(changed), before)
        plain = Batch.from_data_list([preset("cgcnn_crystal").build(wurtzite())])
        with pytest.raises(ValueError, match=r"graph\.site_attr|graph\.state"):
            model(plain)
    with pytest.raises(ValueError, match="leave state_dim out"):
        build_model("megnet", featured, reductions=["mean"], state_dim=2)
    with pytest.raises(ValueError, match=r"does not read data\.graph\.site_features"):
        build_model("schnet", featured, reductions=["mean"])
    from atomgraph.models.registry import model_class

    spec = GraphSpec("radius", 5.0, site_features=("coordination",))
    with pytest.raises(ValueError, match=r"cannot read data\.graph\.site_features"):
        model_class("schnet").card.check_potential(spec, "schnet")


def test_is_metal_is_derived_when_asked_and_mixed_kinds_cannot_train(tmp_path):
    """``is_metal`` (band gap 0) is appended only when asked, a missing gap stays missing; a target set
    may hold both kinds but has no ``kind`` then (training it is refused)."""
    labels = tmp_path / "id_prop_multi_eform_gap_efermi_volume_mag.csv"  # the known MP file
    labels.write_text("0,-1.0,0.0,1,10,0\n1,-2.0,1.5,1,10,0\n2,-0.5,,1,10,0\n")
    _, values, targets = read_labels(labels)
    assert "is_metal" not in [t.name for t in targets]
    _, values, targets = read_labels(labels, classes=["is_metal"])
    assert targets[-1] == known_target("is_metal") and targets[-1].kind == "classification"
    np.testing.assert_array_equal(values[:, -1], [1.0, 0.0, np.nan])
    mixed = TargetSet(targets)
    with pytest.raises(ValueError, match="mix regression and classification"):
        _ = mixed.kind
    chosen, _ = mixed.select(["is_metal"])
    assert chosen.kind == "classification"
    no_gap = tmp_path / "id_prop.csv"
    no_gap.write_text("id,energy\n0,1.0\n")
    with pytest.raises(ValueError, match="derived from a 'band_gap' column"):
        read_labels(no_gap, classes=["is_metal"])


def test_shortcut_scramble_moves_element_columns_with_the_elements(featured):
    """Scrambling elements carries the oxidation-state columns (they describe the element) along with
    ``z``; the coordination column (it describes the site) stays where it was."""
    from atomgraph.apps.crystals.shortcut import scramble_elements

    assert featured.element_site_columns == [0, 1]
    graphs = [featured.build(a) for a in (bulk("NaCl", "rocksalt", a=5.64).repeat(2), wurtzite())]
    for graph in graphs:  # coordination columns that tell the sites apart
        graph.site_attr[:, 2] = torch.arange(graph.num_nodes, dtype=graph.site_attr.dtype)
    for mode in ("global", "within"):
        for seed in range(3):
            scrambled = scramble_elements(graphs, mode, seed, featured.element_site_columns)
            pairs = {
                (int(z), tuple(row[:2].tolist()))
                for g in graphs
                for z, row in zip(g.z, g.site_attr, strict=True)
            }
            for before, after in zip(graphs, scrambled, strict=True):
                assert {
                    (int(z), tuple(row[:2].tolist())) for z, row in zip(after.z, after.site_attr, strict=True)
                } <= pairs
                torch.testing.assert_close(after.site_attr[:, 2], before.site_attr[:, 2])
            assert any(not torch.equal(a.z, b.z) for a, b in zip(graphs, scrambled, strict=True))


def test_feature_availability_and_version_are_checked(monkeypatch):
    """A feature whose package is missing is refused when a spec names it; a new version of a feature
    changes the cache key of specs that use it and of no other."""
    from dataclasses import replace

    from atomgraph.graphs import structure_features as features

    plain = GraphSpec("radius", 5.0, site_features=("coordination",))
    key = plain.key()
    coordination = features.SITE_FEATURES["coordination"]
    monkeypatch.setitem(features.SITE_FEATURES, "coordination", replace(coordination, version=2))
    assert plain.key() != key and preset("cgcnn_crystal").key() == "1ea0e1fef860"
    missing = replace(coordination, name="needs_nothing_real", requires=("no_such_package_xyz",))
    monkeypatch.setitem(features.SITE_FEATURES, "needs_nothing_real", missing)
    with pytest.raises(ValueError, match="needs the package 'no_such_package_xyz'"):
        GraphSpec("radius", 5.0, site_features=("needs_nothing_real",))


def test_a_run_asking_for_both_kinds_is_refused_before_reading_data(tmp_path):
    from atomgraph.training.config import ConfigError, load_config
    from atomgraph.training.datasets import resolve_run

    config = load_config(
        None,
        [
            "data.dataset=crystals",
            f"data.path={tmp_path}",  # never read
            "data.targets=[band_gap, is_metal]",
            "model.name=cgcnn",
        ],
    )
    with pytest.raises(ConfigError, match="mix regression and classification"):
        resolve_run(config)
