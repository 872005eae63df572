"""Crystals: supercell consistency of graphs and models, archive/folder datasets with missing labels,
descriptor baseline, shortcut diagnostic, readout warnings, and a tiny run predicted and screened."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import ase.io
import numpy as np
import pandas as pd
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from torch import nn
from torch_geometric.data import Batch

from atomgraph.apps.crystals.cif_archive import iter_archive, parse_structure
from atomgraph.apps.crystals.dataset import (
    load_crystals,
    read_labels,
)
from atomgraph.apps.crystals.descriptor_baseline import (
    DescriptorBaseline,
    descriptor_matrix,
    magpie_features,
    magpie_names,
    structure_names,
)
from atomgraph.apps.crystals.parallel_graphs import graphs_from_texts
from atomgraph.apps.crystals.shortcut import scramble_elements, shortcut_diagnostic
from atomgraph.evaluation.ablation import parse_sweep_arguments, sweep_configs
from atomgraph.graphs import radius_graph
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models import build_model
from atomgraph.models.lattice import lattice_features
from atomgraph.nn.target_readout import readout_mismatches, resolve_readouts
from atomgraph.targets import TargetSet, TargetSpec
from atomgraph.training.config import ConfigError, load_config
from atomgraph.training.datasets import graph_spec, load_dataset

MP_LABELS = "id_prop_multi_eform_gap_efermi_volume_mag.csv"
SMALL = {
    "cgcnn": {"hidden": 16, "layers": 2, "fc_hidden": 16},
    "megnet": {"dim": 8, "hidden": (16, 16), "blocks": 2, "embedding_dim": 8, "num_rbf": 20},
}


def crystals(count: int = 24, seed: int = 0) -> list[Atoms]:
    """Rattled, randomly strained copies of a few prototype crystals (1-8 atoms per cell)."""
    rng = np.random.default_rng(seed)
    prototypes = [
        lambda a: bulk("NaCl", "rocksalt", a=5.6 * a),
        lambda a: bulk("MgO", "rocksalt", a=4.2 * a),
        lambda a: bulk("Si", "diamond", a=5.43 * a),
        lambda a: bulk("Cu", "fcc", a=3.6 * a, cubic=True),
        lambda a: bulk("CsCl", "cesiumchloride", a=4.1 * a),
        lambda a: bulk("ZnS", "zincblende", a=5.4 * a),
    ]
    out = []
    for k in range(count):
        atoms = prototypes[k % len(prototypes)](rng.uniform(0.95, 1.05))
        atoms.rattle(0.03, seed=k)
        out.append(atoms)
    return out


def cif_bytes(atoms: Atoms) -> bytes:
    buffer = io.BytesIO()
    ase.io.write(buffer, atoms, format="cif")
    return buffer.getvalue()


def synthetic_labels(atoms: Atoms) -> tuple[float, float]:
    """A per-atom 'formation energy' (composition + density) and an intensive 'gap'."""
    z = atoms.numbers
    volume = atoms.get_volume() / len(atoms)
    return float(-0.05 * z.mean() + 0.02 * volume), float(np.ptp(z) / 10.0)


def write_archive(folder: Path, structures: list[Atoms], broken: bool = True) -> Path:
    """``cifs.tar.gz`` built in memory (no CIF ever on disk) + the MP label file beside it; row 1 has
    a missing gap ("None"), the last label row has no structure and, if ``broken``, one CIF is junk."""
    archive = folder / "cifs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for k, atoms in enumerate(structures):
            data = b"data_junk\n_cell_length_a 1\n" if broken and k == 2 else cif_bytes(atoms)
            info = tarfile.TarInfo(f"data/{k}.cif")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    rows = []
    for k, atoms in enumerate([*structures, structures[0]]):
        energy, gap = synthetic_labels(atoms)
        gap_text = "None" if k == 1 else f"{gap}"
        rows.append(f"{k},{energy},{gap_text},0.5,{atoms.get_volume()},0.0")
    (folder / MP_LABELS).write_text("\n".join(rows) + "\n")
    return archive


def per_atom_distances(graph, atom: int) -> np.ndarray:
    vectors = graph.pos[graph.edge_index[0]] - graph.pos[graph.edge_index[1]]
    vectors = vectors + graph.edge_shift.to(vectors.dtype) @ graph.cell[0]
    centre = graph.edge_index[1] == atom
    return np.sort(torch.linalg.vector_norm(vectors[centre], dim=-1).numpy())


# ------------------------------------------------------------------------------------ supercells


@pytest.mark.parametrize(("cutoff", "max_neighbors"), [(8.0, 12), (5.0, None)])
def test_supercell_has_the_same_neighbour_environments(cutoff, max_neighbors, float64):
    lattice = [[3.1, 0.0, 0.0], [0.7, 3.4, 0.0], [0.5, 0.9, 3.8]]
    fractional = [[0, 0, 0], [0.4, 0.3, 0.6], [0.7, 0.8, 0.2]]
    triclinic = Atoms("LiFeO", scaled_positions=fractional, cell=lattice, pbc=True)
    for cell in [*crystals(4, seed=1), triclinic]:
        n = len(cell)
        small = radius_graph(cell, cutoff, max_neighbors)
        big = radius_graph(cell.repeat(2), cutoff, max_neighbors)
        for atom in range(8 * n):  # ase repeats the whole cell: supercell atom k is cell atom k % n
            expected = per_atom_distances(small, atom % n)
            np.testing.assert_allclose(per_atom_distances(big, atom), expected, atol=1e-9)


def trained_statistics(model: nn.Module, graphs) -> nn.Module:
    """Run a few batches in training mode so batch-norm running statistics are not the identity."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(Batch.from_data_list(graphs))
    return model.eval()


@pytest.mark.parametrize("name", ["cgcnn", "megnet"])
@pytest.mark.parametrize("readout", ["auto", ["atom_mean", "sum", "pooled"]])
def test_intensive_unchanged_and_extensive_scaled_by_replication(name, readout, float64):
    torch.manual_seed(0)
    reductions = ("sum", "per_atom", "mean") if readout == "auto" else ("per_atom", "sum", "mean")
    model = build_model(name, reductions=reductions, readout=readout, **SMALL[name])
    cells = crystals(6, seed=2)
    model = trained_statistics(model, [radius_graph(c, 8.0, 12) for c in cells])
    kinds = resolve_readouts(readout, reductions, "pooled")
    assert kinds == (["sum", "pooled", "pooled"] if readout == "auto" else readout)
    with torch.no_grad():
        for cell in cells[:4]:
            small = model(radius_graph(cell, 8.0, 12))
            big = model(radius_graph(cell.repeat(2), 8.0, 12))
            both = model(
                Batch.from_data_list([radius_graph(cell, 8.0, 12), radius_graph(cell.repeat(2), 8.0, 12)])
            )
            torch.testing.assert_close(both, torch.cat([small, big]), rtol=1e-9, atol=1e-9)
            for t, kind in enumerate(kinds):
                factor = 8.0 if kind == "sum" else 1.0
                torch.testing.assert_close(big[:, t], factor * small[:, t], rtol=1e-8, atol=1e-8)
            assert small.abs().min() > 1e-6


def test_materials_lecture_gaussian_grid_is_a_named_preset_of_the_crystal_models():
    """Seed 004's grid (0-5 Å, step 0.1, σ 0.2) by name: CGCNN and MEGNet read their edges through it;
    an unknown name, or a grid past the model's cutoff, is refused with the key named."""
    from atomgraph.features.radial import GaussianRBF, gaussian_preset

    grid = GaussianRBF.materials_lecture()
    assert grid.num == 51 and float(grid.centers[1]) == pytest.approx(0.1)
    assert float(grid.centers[-1]) == pytest.approx(5.0) and torch.all(grid.widths == 0.2)
    d = torch.tensor([0.0, 1.23])
    torch.testing.assert_close(grid(d)[1, 12], torch.exp(torch.tensor(-0.5 * ((1.23 - 1.2) / 0.2) ** 2)))
    cells = crystals(2, seed=1)
    for name, spec in (
        ("cgcnn", GraphSpec("radius", 6.0, max_neighbors=12)),
        ("megnet", GraphSpec("radius", 5.0)),
    ):
        model = build_model(
            name, graph=spec, reductions=("mean",), rbf="materials_lecture", **SMALL[name]
        ).eval()
        assert model.rbf.num == 51
        with torch.no_grad():
            out = model(
                Batch.from_data_list([radius_graph(c, spec.cutoff, spec.max_neighbors) for c in cells])
            )
        assert out.shape == (2, 1) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=r"model\.rbf: unknown Gaussian grid 'lecture'"):
        build_model("cgcnn", reductions=("mean",), rbf="lecture", **SMALL["cgcnn"])
    with pytest.raises(ValueError, match="beyond the model's interaction cutoff of 4 Å"):
        gaussian_preset("materials_lecture", 4.0)


def test_mean_readout_is_the_mean_of_atom_contributions(float64):
    graph = radius_graph(crystals(1)[0].repeat((2, 1, 1)), 8.0, 12)
    outputs = {}
    for readout in ("sum", "atom_mean"):
        torch.manual_seed(0)  # the same weights: only the pooling of the atom contributions differs
        model = build_model("cgcnn", reductions=("mean", "mean"), readout=readout, **SMALL["cgcnn"]).eval()
        outputs[readout] = model(graph)
    torch.testing.assert_close(outputs["atom_mean"], outputs["sum"] / graph.num_nodes)


def test_lattice_features_and_state(float64):
    cubic = bulk("Cu", "fcc", a=3.6, cubic=True)
    features = lattice_features(radius_graph(cubic, 8.0, 12))
    expected = torch.tensor([[3.6, 3.6, 3.6, 90.0, 90.0, 90.0, 3.6**3 / 4]])
    torch.testing.assert_close(features, expected)
    torch.manual_seed(0)
    model = build_model("megnet", reductions=("mean",), lattice=True, state_dim=1, **SMALL["megnet"]).eval()
    graph = radius_graph(cubic, 8.0, 12)
    cold = model(graph)
    graph.state = torch.tensor([[3.0]])  # e.g. a temperature
    assert not torch.allclose(model(graph), cold)
    graph.state = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="state"):
        model(graph)
    cgcnn = build_model("cgcnn", reductions=("mean", "sum"), lattice=True, **SMALL["cgcnn"]).eval()
    assert cgcnn(graph).shape == (1, 2)


# -------------------------------------------------------------------------------------- datasets


def test_archive_dataset_streams_without_unpacking(tmp_path):
    source = tmp_path / "mp"
    source.mkdir()
    structures = crystals(12)
    archive = write_archive(source, structures)
    assert [key for key, _, _ in iter_archive(archive)] == [str(k) for k in range(12)]
    before = sorted(p.name for p in source.iterdir())
    dataset = load_crystals(archive, cache=tmp_path / "cache", workers=1, progress=False)
    assert sorted(p.name for p in source.iterdir()) == before  # nothing was unpacked
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("mp", "cache")] == []
    assert len(list((tmp_path / "cache").iterdir())) == 1  # just the processed dataset
    assert dataset.targets.names[:2] == ["formation_energy_per_atom", "band_gap"]
    assert dataset.targets.units[0] == "eV/atom" and dataset.targets.extensive[3]  # volume: extensive
    assert dataset.targets[0].reduction == "per_atom" and dataset.targets[1].ranks_first == "high"
    skipped = {entry["id"]: entry["error"] for entry in dataset.meta.skipped}
    assert set(skipped) == {"2", "12"}  # the junk CIF and the label row without a structure
    assert "no structure file" in skipped["12"]
    assert len(dataset) == 11 and dataset.meta.ids[:3] == ["0", "1", "3"]
    y = dataset.targets_array()
    assert np.isnan(y[1, 1]) and not np.isnan(y[1, 0])  # "None" is a missing label
    assert np.isnan(y).sum() == 1
    np.testing.assert_allclose(y[2, 0], synthetic_labels(structures[3])[0], rtol=1e-6)
    graph = dataset[0]
    assert graph.edge_index.shape[1] == 12 * graph.num_nodes  # 12 nearest within 8 Å
    again = load_crystals(source, cache=tmp_path / "cache", progress=False, reductions={"band_gap": "sum"})
    assert len(again) == 11 and again.targets.extensive[1]  # from the cache, with a reduction override


def test_parallel_build_matches_serial():
    texts = [(k, f"s{k}", "cif", cif_bytes(atoms).decode()) for k, atoms in enumerate(crystals(6))]
    texts.append((6, "junk", "cif", "not a cif"))
    settings = GraphSpec(cutoff=6.0, max_neighbors=12)
    serial = graphs_from_texts(texts, settings, workers=1, progress=False)
    parallel = graphs_from_texts(texts, settings, workers=2, chunk_size=2, progress=False)
    assert sorted(parallel) == sorted(serial) == list(range(7))
    assert isinstance(parallel[6], str) and "junk" in parallel[6]
    for k in range(6):
        for key, value in serial[k].items():
            np.testing.assert_array_equal(parallel[k][key], value)


def test_cgcnn_folder_layout_with_poscar_and_header(tmp_path):
    folder = tmp_path / "cgcnn"
    folder.mkdir()
    structures = crystals(4)
    for k, atoms in enumerate(structures[:3]):
        (folder / f"x{k}.cif").write_bytes(cif_bytes(atoms))
    ase.io.write(folder / "x3.vasp", structures[3], format="vasp")
    (folder / "atom_init.json").write_text("{}")  # CGCNN's file: ignored
    (folder / "id_prop.csv").write_text("x0,1.5\nx1,\nx2,2.5\nx3,3.5\n")
    dataset = load_crystals(folder, cache=tmp_path / "cache", workers=1, progress=False)
    assert dataset.targets.names == ["target"] and dataset.meta.ids == ["x0", "x1", "x2", "x3"]
    np.testing.assert_array_equal(dataset.targets_array()[:, 0], [1.5, np.nan, 2.5, 3.5])
    assert dataset[3].z.tolist() == structures[3].numbers.tolist()

    named = tmp_path / "named.csv"
    named.write_text("id,energy_per_atom,gap\nx0,1,2\nx1,None,3\n")
    ids, values, targets = read_labels(named)
    assert ids == ["x0", "x1"] and [t.name for t in targets] == ["energy_per_atom", "gap"]
    assert targets[0].per_atom and np.isnan(values[1, 0])


def test_moduli_get_log10_labels_and_non_positive_ones_are_missing(tmp_path, caplog):
    """The elasticity file's GPa columns gain log10 columns (``ELASTICITY_LOG10``); a modulus <= 0 has
    no logarithm: missing, with a warning; an unrelated file gains nothing."""
    labels = tmp_path / "id_prop_K_G_poisson.csv"  # the name of the known elasticity file
    labels.write_text("0,100.0,10.0,0.3\n1,-5.0,1.0,0.2\n2,,0.0,0.25\n")
    ids, values, targets = read_labels(labels)
    assert ids == ["0", "1", "2"]
    names = [t.name for t in targets]
    assert names[:3] == ["bulk_modulus", "shear_modulus", "poisson_ratio"]
    assert names[3:] == ["log10_bulk_modulus", "log10_shear_modulus"]
    assert targets[3].unit == "log10(GPa)" and targets[3].reduction == "mean"
    np.testing.assert_allclose(values[:, 3], [2.0, np.nan, np.nan])
    np.testing.assert_allclose(values[:, 4], [1.0, 0.0, np.nan])
    assert "1 bulk_modulus value(s) <= 0" in caplog.text and "1 shear_modulus value(s) <= 0" in caplog.text
    other = tmp_path / "id_prop.csv"
    other.write_text("0,1.0\n1,2.0\n")
    assert [t.name for t in read_labels(other)[2]] == ["target"]


def test_bad_structures_are_reported():
    with pytest.raises(ValueError, match=r"too close|closer"):
        parse_structure(
            cif_bytes(Atoms("H2", positions=[[0, 0, 0], [0.1, 0, 0]], cell=[5, 5, 5], pbc=True)).decode(),
            "cif",
            "h2",
        )
    with pytest.raises(ValueError, match="could not read"):
        parse_structure("garbage", "vasp", "x")


def test_reductions_from_the_config_change_only_the_named_targets(tmp_path):
    config = crystal_config(tmp_path)
    config["data"]["reductions"] = {"band_gap": "sum"}
    assert [t.reduction for t in load_dataset(config, progress=False).targets] == ["per_atom", "sum"]
    config["data"]["reductions"] = {"nope": "sum"}
    with pytest.raises(ConfigError, match="unknown targets"):
        load_dataset(config, progress=False)


# ------------------------------------------------------------------------ baselines, diagnostics


def test_descriptor_values_of_caesium_chloride_equal_hand_computed_ones():
    a = 4.1
    cscl = bulk("CsCl", "cesiumchloride", a=a)  # Cs at the corner, Cl at the body centre
    nearest, second = a * np.sqrt(3) / 2, a  # 8 unlike neighbours, then 6 like ones
    magpie = dict(zip(magpie_names(), magpie_features([cscl.numbers])[0], strict=True))
    # Pauling electronegativities Cs 0.79, Cl 3.16: fraction-weighted statistics of a 1:1 compound
    for stat, value in {"mean": 1.975, "min": 0.79, "max": 3.16, "range": 2.37, "std": 1.185}.items():
        assert magpie[f"electronegativity_{stat}"] == pytest.approx(value)
    assert magpie["n_elements"] == 2
    for p in (2, 3, 5, 7, 10):
        assert magpie[f"fraction_l{p}_norm"] == pytest.approx((2 * 0.5**p) ** (1 / p))
    fractions = descriptor_matrix([cscl.numbers], ("fractions",))[0]
    assert fractions[55 - 1] == fractions[17 - 1] == 0.5 and fractions.sum() == 1.0

    density = (132.905 + 35.45) / a**3 * 1.66054  # amu / Å^3 -> g / cm^3
    for graph, shells in ((radius_graph(cscl, 4.5), (8, 6)), (radius_graph(cscl, 8.0, 12), (8, 4))):
        got = dict(zip(structure_names(), descriptor_matrix([graph], ("structure",))[0], strict=True))
        assert got["volume_per_atom"] == pytest.approx(a**3 / 2)
        assert got["density"] == pytest.approx(density, rel=1e-4)
        assert got["min_distance"] == pytest.approx(nearest)
        expected_mean = (shells[0] * nearest + shells[1] * second) / sum(shells)
        assert got["mean_distance"] == pytest.approx(expected_mean)
        histogram = {k: v for k, v in got.items() if k.startswith("neighbours_") and v}
        assert histogram == {"neighbours_3.5_4.0": shells[0], "neighbours_4.0_4.5": shells[1]}  # per atom


def test_descriptor_baseline_learns_composition_and_structure():
    """Held-out crystals: the forest beats the training-mean predictor by far when the target is a
    function of composition and volume, and needs the structure descriptors for a volume-only target."""
    structures = crystals(60, seed=5)
    graphs = [radius_graph(atoms, 8.0, 12) for atoms in structures]
    y = np.array([synthetic_labels(atoms)[0] for atoms in structures])  # -0.05 <Z> + 0.02 V/atom
    assert descriptor_matrix(graphs).shape == (60, 56 + 100 + 20)
    order = np.random.default_rng(0).permutation(60)
    train, test = order[:45], order[45:]
    model = DescriptorBaseline(n_estimators=50, n_jobs=1).fit([graphs[i] for i in train], y[train])
    error = np.abs(model.predict([graphs[i] for i in test]) - y[test]).mean()
    mean_error = np.abs(y[train].mean() - y[test]).mean()
    assert error < 0.1 * mean_error  # measured: 3 %

    # a missing label is dropped, not fitted: the same forest as without that row
    labels = y[train].copy()
    labels[0] = np.nan
    with_nan = DescriptorBaseline(n_estimators=10, n_jobs=1).fit([graphs[i] for i in train], labels)
    without = DescriptorBaseline(n_estimators=10, n_jobs=1).fit([graphs[i] for i in train[1:]], y[train[1:]])
    held_out = [graphs[i] for i in test]
    np.testing.assert_array_equal(with_nan.predict(held_out), without.predict(held_out))

    # copper at 40 lattice constants, target the volume per atom: composition alone is blind to it
    rng = np.random.default_rng(1)
    copper = [bulk("Cu", "fcc", a=float(a), cubic=True) for a in rng.uniform(3.4, 3.9, 40)]
    volume = np.array([atoms.get_volume() / len(atoms) for atoms in copper])
    graphs = [radius_graph(atoms, 8.0, 12) for atoms in copper]
    mean_error = np.abs(volume[:30].mean() - volume[30:]).mean()
    composition_only = DescriptorBaseline(("magpie", "fractions"), n_estimators=20, n_jobs=1)
    composition_only.fit([g.z for g in graphs[:30]], volume[:30])
    predicted = composition_only.predict([g.z for g in graphs[30:]])
    assert np.ptp(predicted) == 0.0  # one composition: one prediction, no better than the mean
    assert np.abs(predicted - volume[30:]).mean() > 0.9 * mean_error
    with_structure = DescriptorBaseline(n_estimators=50, n_jobs=1).fit(graphs[:30], volume[:30])
    error = np.abs(with_structure.predict(graphs[30:]) - volume[30:]).mean()
    assert error < 0.3 * mean_error  # measured: 15 %


class _Probe(nn.Module):
    """Predicts from the graph alone: by mean atomic number (chemistry) or atom count (a shortcut)."""

    def __init__(self, shortcut: bool):
        super().__init__()
        self.shortcut = shortcut
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, batch) -> torch.Tensor:
        counts = torch.bincount(batch.batch, minlength=batch.num_graphs).to(self.scale.dtype)
        if self.shortcut:
            return (self.scale * counts).unsqueeze(1)
        z = torch.zeros(batch.num_graphs).index_add_(0, batch.batch, batch.z.to(self.scale.dtype))
        return (self.scale * z / counts).unsqueeze(1)


def test_shortcut_diagnostic_tells_chemistry_from_shortcuts():
    graphs = [radius_graph(atoms, 6.0, 12) for atoms in crystals(24)]
    mean_z = np.array([[g.z.double().mean().item()] for g in graphs])
    counts = np.array([[g.num_nodes] for g in graphs], dtype=float)
    chemistry = shortcut_diagnostic(_Probe(False), graphs, ["y"], y=mean_z)["y"]
    assert chemistry["r2"] > 0.99 and chemistry["retained_global"] < 0.5
    assert chemistry["retained_within"] > 0.99  # composition kept: a composition model is unaffected
    shortcut = shortcut_diagnostic(_Probe(True), graphs, ["y"], y=counts)["y"]
    assert shortcut["retained_global"] > 0.99  # scrambling elements cannot hurt a size-only model
    scrambled = scramble_elements(graphs, "global", seed=1)
    assert sorted(torch.cat([g.z for g in scrambled]).tolist()) == sorted(
        torch.cat([g.z for g in graphs]).tolist()
    )
    assert all(torch.equal(a.edge_index, b.edge_index) for a, b in zip(scrambled, graphs, strict=True))


def test_readout_mismatch_messages():
    per_atom, volume = TargetSpec("e_per_atom", reduction="per_atom"), TargetSpec("volume", reduction="sum")
    targets = TargetSet([per_atom, volume, TargetSpec("gap")])
    for intensive in ("atom_mean", "pooled"):
        assert readout_mismatches(targets, resolve_readouts("auto", targets.reductions, intensive)) == []
    assert readout_mismatches(targets, ["atom_mean", "sum", "pooled"]) == []
    messages = readout_mismatches(targets, ["sum"] * 3)
    assert len(messages) == 2 and "mismatched-readout pitfall" in messages[0]
    assert len(readout_mismatches(targets, ["pooled"] * 3)) == 1  # volume not summed
    with pytest.raises(ValueError, match="2 targets"):
        resolve_readouts(["atom_mean"], ["mean", "mean"], "pooled")


# ----------------------------------------------------------------------- config, run, predict, screen


def crystal_config(tmp_path: Path, **model) -> dict:
    source = tmp_path / "mp"
    if not source.exists():
        source.mkdir()
        write_archive(source, crystals(24))
    return load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "data.dataset=crystals",
            f"data.path={source}",
            "data.targets=[formation_energy_per_atom, band_gap]",
            f"data.cache={tmp_path / 'cache'}",
            "data.crystals.workers=1",
            "data.crystals.top_k=5",
            "data.split.sizes=[16, 3, 4]",
            "training.epochs=2",
            "training.batch_size=8",
            "training.progress=false",
            "training.accelerator=cpu",
            "model.name=cgcnn",
            *(f"model.{k}={v}" for k, v in {**SMALL["cgcnn"], **model}.items()),
        ],
    )


def test_crystal_graph_is_the_preset_unless_configured_and_readout_warning(tmp_path):
    config = crystal_config(tmp_path)
    spec = graph_spec(config)
    assert (spec.cutoff, spec.max_neighbors, spec.preset) == (8.0, 12, "cgcnn_crystal")
    # an explicit value is never compared with a default: 5 Å keeps the preset's 12-neighbour cap
    config["data"]["graph"] = {"cutoff": 5.0}
    assert (graph_spec(config).cutoff, graph_spec(config).max_neighbors) == (5.0, 12)
    config["data"]["graph"] = {"cutoff": 6.0, "max_neighbors": None}
    assert (graph_spec(config).cutoff, graph_spec(config).max_neighbors) == (6.0, None)
    config["data"]["graph"] = "molecule"
    assert (graph_spec(config).cutoff, graph_spec(config).max_neighbors) == (5.0, None)
    config["model"]["cutoff"] = 6.0
    with pytest.raises(ConfigError, match=r"model\.cutoff"):
        graph_spec(config)
    targets = load_dataset(crystal_config(tmp_path), progress=False).targets
    assert "mismatched-readout pitfall" in readout_mismatches(targets, ["sum", "sum"])[0]
    assert readout_mismatches(targets, resolve_readouts("auto", targets.reductions, "pooled")) == []


@pytest.fixture(scope="module")
def crystal_run(tmp_path_factory):
    """A tiny CGCNN run trained with a mismatched readout for the per-atom target (on purpose)."""
    from atomgraph.evaluation.experiment import train_and_evaluate

    tmp_path = tmp_path_factory.mktemp("crystal_run")
    config = crystal_config(tmp_path, readout="[sum, pooled]")
    with pytest.warns(UserWarning, match="pitfall"):
        run_dir = train_and_evaluate(config, progress=False)
    return tmp_path, Path(run_dir)


def test_run_reports_baselines_shortcut_and_warnings(crystal_run):
    _, run_dir = crystal_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for name in ("formation_energy_per_atom", "band_gap"):
        entry = metrics["test"][name]
        for label in ("model", "mean_baseline", "composition_baseline", "composition_mlp", "descriptor_rf"):
            assert {"mae", "spearman", "top5_recall"} <= set(entry[label]), (name, label)
        assert {"retained_global", "retained_within"} <= set(metrics["shortcut"][name])
    assert metrics["test"]["band_gap"]["top_k"] == {"k": 5, "largest": True}
    worst = metrics["test"]["formation_energy_per_atom"]["worst_five"]
    errors = [w["abs_error"] for w in worst]
    assert len(worst) == 4 and errors == sorted(errors, reverse=True)  # the test split has 4 crystals
    assert {"formula", "rarest_element", "rarest_element_training_share", "composition_mlp_abs_error"} <= set(
        worst[0]
    )
    assert 0.0 <= worst[0]["rarest_element_training_share"] <= 1.0
    from atomgraph.apps.crystals.report import _percentile

    assert _percentile(np.array([5, 5, 5]), 5) == 50.0 and _percentile(np.array([1, 2, 3, 4]), 2) == 37.5
    for name in ("formation_energy_per_atom", "band_gap"):
        assert set(metrics["volume_response"][name]) >= {"flat_share", "median_change_at_largest_scale"}
        assert (run_dir / "plots" / f"volume_response_{name}.png").stat().st_size > 1000
    assert any("formation_energy_per_atom" in w and "pitfall" in w for w in metrics["warnings"])


def test_predict_a_cif_and_screen_a_folder(crystal_run):
    from typer.testing import CliRunner

    from atomgraph.cli.main import app

    tmp_path, run_dir = crystal_run
    folder = tmp_path / "candidates"
    folder.mkdir()
    for k, atoms in enumerate(crystals(5, seed=7)):
        (folder / f"c{k}.cif").write_bytes(cif_bytes(atoms))
    ase.io.write(folder / "POSCAR_extra", crystals(1, seed=8)[0], format="vasp")
    (folder / "broken.cif").write_text("data_x\nnonsense\n")
    runner = CliRunner()
    result = runner.invoke(
        app, ["predict", str(run_dir), str(folder / "c0.cif"), "-o", str(tmp_path / "p.csv")]
    )
    assert result.exit_code == 0, result.output
    assert "formation_energy_per_atom" in (tmp_path / "p.csv").read_text()
    ranked = tmp_path / "ranked.csv"
    result = runner.invoke(
        app,
        [
            "screen-crystals",
            str(run_dir),
            str(folder),
            "-o",
            str(ranked),
            "--target",
            "band_gap",
            "--descending",
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    import pandas as pd

    table = pd.read_csv(ranked, keep_default_na=False)
    ranked_rows = table[table["error"] == ""]
    assert len(ranked_rows) == 6 and ranked_rows["band_gap"].astype(float).is_monotonic_decreasing
    assert ranked_rows["rank"].astype(int).tolist() == list(range(1, 7))
    # the unreadable file keeps its row after the ranked ones, with its error and no rank
    (failed,) = table[table["error"] != ""].itertuples()
    assert "broken" in failed.id and failed.rank == "" and table.index[-1] == failed.Index
    # without --descending the target's own direction ranks: band gaps high first
    runner.invoke(app, ["screen-crystals", str(run_dir), str(folder), "-o", str(ranked), "--target",
                        "band_gap", "--workers", "1"])  # fmt: skip
    again = pd.read_csv(ranked, keep_default_na=False)
    assert again[again["error"] == ""]["band_gap"].astype(float).is_monotonic_decreasing


def test_ablation_arguments_and_configs(tmp_path):
    parsed = parse_sweep_arguments(
        ["training.epochs=1", "--cutoffs", "4", "6", "--depths", "2", "3", "--out", "x"]
    )
    assert parsed == {
        "overrides": ["training.epochs=1"],
        "cutoffs": [4.0, 6.0],
        "depths": [2, 3],
        "key": None,
        "out": "x",
    }
    with pytest.raises(ValueError):
        parse_sweep_arguments(["--widths", "3"])
    runs = sweep_configs(crystal_config(tmp_path), [4.0, 6.0], [2, 3], tmp_path / "ablation")
    assert len(runs) == 4
    cutoff, depth, config = runs[-1]
    assert (cutoff, depth, config["model"]["layers"], "cutoff" not in config["model"]) == (6.0, 3, 3, True)
    settings = graph_spec(config)
    assert (settings.cutoff, settings.max_neighbors) == (6.0, 12)
    assert config["run_dir"].endswith("cutoff6_depth3")


def test_ablation_summary_reports_each_mae_with_its_standard_error(tmp_path):
    """The sweep's summary reads every finished run: test metrics, epochs, parameters and the standard
    error of the MAE from the run's test predictions; the plot is written."""
    from atomgraph.evaluation.ablation import summarise

    runs = []
    for cutoff, depth, errors in ((4.0, 2, [0.1, -0.3, 0.2, 0.0]), (4.0, 3, [0.5, 0.5, -0.5, 0.5])):
        run = tmp_path / f"cutoff{cutoff:g}_depth{depth}"
        run.mkdir()
        mae = float(np.abs(errors).mean())
        entry = {"model": {"mae": mae, "rmse": 1.0, "r2": 0.5, "spearman": 0.9}, "unit": "eV/atom"}
        (run / "metrics.json").write_text(json.dumps({"test": {"e": entry}, "epochs": 7, "parameters": 11}))
        (run / "run.json").write_text(json.dumps({"graph": {"max_neighbors": 32}}))
        pd.DataFrame({"id": list("abcd"), "e_true": [1.0] * 4, "e_pred": 1.0 + np.array(errors)}).to_csv(
            run / "predictions_test.csv", index=False
        )
        runs.append((cutoff, depth, run))
    result = summarise("cgcnn", runs, tmp_path)
    first, second = (row["test"]["e"] for row in result["runs"])
    assert first["mae"] == pytest.approx(0.15) and second["mae"] == pytest.approx(0.5)
    assert first["mae_standard_error"] == pytest.approx(np.std([0.1, 0.3, 0.2, 0.0], ddof=1) / 2)
    assert second["mae_standard_error"] == pytest.approx(0.0)
    assert (result["cutoffs"], result["depths"], result["max_neighbors"]) == ([4.0], [2, 3], 32)
    assert result["runs"][0]["epochs"] == 7 and result["runs"][0]["parameters"] == 11
    assert (tmp_path / "ablation.json").exists() and (tmp_path / "ablation_e.png").stat().st_size > 0


def test_ablation_summary_gives_no_standard_error_where_the_predictions_do_not_give_the_mae(tmp_path):
    """A classification target (no MAE), a missing prediction (MAE undefined) and a potential's energy
    (scored in meV, written in eV) get no standard error, and the plots are still drawn."""
    from atomgraph.evaluation.ablation import summarise

    cases = {
        "active": ({"roc_auc": 0.8, "accuracy": 0.7}, [0, 1, 1, 0], [0.2, 0.9, 0.4, 0.1]),
        "gap": ({"mae": None}, [1.0, 2.0, 3.0, 4.0], [1.1, np.nan, 3.2, 4.1]),
        "energy": ({"mae": 150.0}, [1.0, 2.0, 3.0, 4.0], [1.1, 2.2, 3.1, 4.2]),
    }
    runs = []
    for depth in (2, 3):
        run = tmp_path / f"cutoff5_depth{depth}"
        run.mkdir()
        metrics = {"test": {name: {"model": model} for name, (model, _, _) in cases.items()}}
        (run / "metrics.json").write_text(json.dumps(metrics))
        (run / "run.json").write_text(json.dumps({"graph": {"max_neighbors": None}}))
        columns = {"id": list("abcd")}
        for name, (_, true, pred) in cases.items():
            columns.update({f"{name}_true": true, f"{name}_pred": pred})
        pd.DataFrame(columns).to_csv(run / "predictions_test.csv", index=False)
        runs.append((5.0, depth, run))
    result = summarise("schnet", runs, tmp_path)
    for row in result["runs"]:
        assert all("mae_standard_error" not in entry for entry in row["test"].values())
    assert all((tmp_path / f"ablation_{name}.png").exists() for name in cases)


def test_cgcnn_convolution_per_atom_equals_the_papers_concatenation_in_values_and_gradients(float64):
    """The atom blocks of W applied once per atom give the per-edge [h_i ‖ h_j ‖ e_ij] W + b exactly."""
    from atomgraph.models.cgcnn import CGCNNConv

    torch.manual_seed(0)
    conv = CGCNNConv(8, 5)
    h = torch.randn(6, 8, requires_grad=True)
    e = torch.randn(14, 5)
    edge_index = torch.randint(0, 6, (2, 14))
    fast, slow = conv.pre_activation(h, e, edge_index), conv.reference_pre_activation(h, e, edge_index)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(fast)
    grads = [torch.autograd.grad((z * weights).sum(), [h, conv.linear.weight, conv.linear.bias]) for z in (
        conv.pre_activation(h, e, edge_index), conv.reference_pre_activation(h, e, edge_index))]  # fmt: skip
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_screen_crystals_streams_in_chunks_and_a_killed_screen_resumes_to_the_same_file(
    crystal_run, tmp_path, monkeypatch
):
    import atomgraph.apps.crystals.screening as screening

    _, run_dir = crystal_run
    folder = _cif_library(tmp_path / "library", 9, seed=11)
    (folder / "c4b_broken.cif").write_text("data_x\nnonsense\n")
    whole = tmp_path / "whole.csv"
    summary = screening.screen_structures(run_dir, folder, whole, workers=1, progress=False)
    assert (summary.ranked, summary.skipped) == (9, 1)
    table = pd.read_csv(whole, keep_default_na=False)
    assert table["rank"].tolist() == [str(k) for k in range(1, 10)] + [""]
    assert table["formation_energy_per_atom"].iloc[:9].astype(float).is_monotonic_increasing  # low first
    assert "broken" in table["id"].iloc[-1] and table["error"].iloc[-1]
    chunked = tmp_path / "chunked.csv"
    screening.screen_structures(run_dir, folder, chunked, workers=1, progress=False, chunk_rows=3)
    in_chunks = pd.read_csv(chunked, keep_default_na=False)  # batches of 3, not 9: float32 round-off only
    for column in table.columns:
        if column in ("formation_energy_per_atom", "band_gap"):
            values = [pd.to_numeric(t[column], errors="coerce") for t in (in_chunks, table)]
            np.testing.assert_allclose(*values, rtol=1e-5, atol=1e-6)
        else:
            assert in_chunks[column].tolist() == table[column].tolist(), column

    real, calls = screening.graphs_from_texts, []

    def dies_on_the_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill between two chunks
        return real(*args, **kwargs)

    monkeypatch.setattr(screening, "graphs_from_texts", dies_on_the_third_chunk)
    killed = tmp_path / "killed.csv"
    with pytest.raises(KeyboardInterrupt):
        screening.screen_structures(run_dir, folder, killed, workers=1, progress=False, chunk_rows=3)
    unranked = tmp_path / "killed.csv.unranked.csv"
    assert json.loads((tmp_path / "killed.csv.progress").read_text())["rows"] == 6 and not killed.exists()
    with open(unranked, "a") as handle:
        handle.write("c9,half a row wri")  # a chunk the kill cut mid-write
    monkeypatch.setattr(screening, "graphs_from_texts", real)
    screening.screen_structures(run_dir, folder, killed, workers=1, progress=False, chunk_rows=3, resume=True)
    assert killed.read_text() == chunked.read_text()
    assert not unranked.exists() and not (tmp_path / "killed.csv.progress").exists()


class _MeanEdgeLength(torch.nn.Module):
    """A 'model' that reads geometry only: the mean edge length of each graph (Å)."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, batch):
        from atomgraph.graphs.geometry import edge_lengths, edge_vectors
        from atomgraph.nn.scatter import scatter_mean

        lengths = edge_lengths(edge_vectors(batch))
        return scatter_mean(lengths, batch.batch[batch.edge_index[1]], batch.num_graphs).unsqueeze(-1)


class _CompositionOnly(_MeanEdgeLength):
    def forward(self, batch):
        from atomgraph.nn.scatter import scatter_mean

        return scatter_mean(batch.z.double(), batch.batch, batch.num_graphs).unsqueeze(-1) + self.anchor


def test_volume_response_sees_geometry_and_flags_a_composition_only_model(tmp_path):
    from atomgraph.apps.crystals.volume_response import SCALES, atoms_of, scaled_graphs, volume_response
    from atomgraph.evaluation.plots import volume_response_plot

    spec = GraphSpec(cutoff=6.0, max_neighbors=12)
    graphs = [spec.build(atoms) for atoms in crystals(5, seed=3)]
    assert np.allclose(atoms_of(graphs[0]).get_volume(), crystals(5, seed=3)[0].get_volume(), rtol=1e-6)
    scaled = scaled_graphs(graphs[:1], spec, [0.9, 1.0, 1.1])
    volumes = [atoms_of(g).get_volume() for g in scaled]
    np.testing.assert_allclose(np.array(volumes) / volumes[1], [0.9**3, 1.0, 1.1**3], rtol=1e-6)
    geometric = volume_response(_MeanEdgeLength(), graphs, spec)
    curves = geometric["curves"]
    assert curves.shape == (5, len(SCALES)) and np.all(curves[:, SCALES.index(1.0)] == 0)
    assert np.all(np.diff(curves, axis=1) > 0)  # every edge grows with the cell
    assert geometric["summary"]["flat_share"] == 0.0
    assert geometric["summary"]["minimum_within_3_percent_share"] == 0.0  # a slope, not a bowl
    flat = volume_response(_CompositionOnly(), graphs, spec)["summary"]
    assert flat["flat_share"] == 1.0 and flat["median_range"] == 0.0
    volume_response_plot(SCALES, curves, tmp_path / "ev.png", unit="Å")
    assert (tmp_path / "ev.png").stat().st_size > 1000


def test_a_csv_of_cif_texts_gives_the_graphs_and_labels_of_the_cgcnn_folder(tmp_path):
    structures = crystals(7, seed=12)
    folder = tmp_path / "folder"
    folder.mkdir()
    rows = []
    for k, atoms in enumerate(structures):
        text = cif_bytes(atoms).decode()
        (folder / f"x{k}.cif").write_text(text)
        energy, gap = synthetic_labels(atoms)
        rows.append({"material_id": f"x{k}", "CIF": text, "energy": energy, "gap": gap if k != 3 else None})
    (folder / "id_prop.csv").write_text(
        "id,energy,gap\n"
        + "".join(f"{r['material_id']},{r['energy']},{'' if r['gap'] is None else r['gap']}\n" for r in rows)
    )
    table = tmp_path / "crystals.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    spec = GraphSpec(cutoff=6.0, max_neighbors=12)
    from_folder = load_crystals(folder, spec, workers=1, cache=tmp_path / "a", progress=False)
    from_table = load_crystals(table, spec, workers=1, cache=tmp_path / "b", progress=False)
    assert from_table.targets.names == from_folder.targets.names == ["energy", "gap"]
    assert from_table.meta.ids == from_folder.meta.ids == [f"x{k}" for k in range(7)]
    np.testing.assert_array_equal(from_table.targets_array(), from_folder.targets_array())
    assert np.isnan(from_table.targets_array()[3, 1])
    for a, b in zip(from_table, from_folder, strict=True):
        assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.pos, b.pos) and torch.equal(a.z, b.z)
    with pytest.raises(ValueError, match="CSV with a column 'cif'"):
        load_crystals(tmp_path / "folder" / "id_prop.csv", spec, cache=tmp_path / "c", progress=False)


def test_energies_above_the_hull_equal_pymatgens_on_a_hand_made_system():
    pytest.importorskip("pymatgen")
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    from atomgraph.apps.crystals.stability import energies_above_hull

    # Li-O with a metastable LiO and LiO2; Na-Cl alone; a ternary LiNaO2 judged against both binaries
    formulas = ["Li2O", "LiO", "Li2O2", "LiO2", "NaCl", "Na2Cl", "LiNaO2"]
    energies = [-2.07, -0.5, -1.65, -0.9, -2.1, -0.4, -1.3]
    ours = energies_above_hull(formulas, energies)
    elements = [PDEntry(Composition(el), 0.0) for el in ("Li", "O", "Na", "Cl")]
    entries = [
        PDEntry(Composition(f), e * Composition(f).num_atoms) for f, e in zip(formulas, energies, strict=True)
    ]
    diagram = PhaseDiagram(elements + entries)
    expected = [diagram.get_e_above_hull(e) for e in entries]
    np.testing.assert_allclose(ours, expected, atol=1e-9)
    assert ours[0] == 0.0 and ours[1] > 0.2
    # a candidate against references: below the references' hull is negative
    below = energies_above_hull(
        ["LiO"], [-1.9], reference_formulas=["Li2O", "Li2O2"], reference_energies=[-2.07, -1.65]
    )
    assert below[0] < 0
    assert np.isnan(energies_above_hull(["LiO"], [np.nan])[0])


def test_same_group_substitution_on_rock_salt_enumerates_the_alkali_halides():
    from ase.build import bulk

    from atomgraph.apps.crystals.stability import same_group_substitutions, substituted

    rules = same_group_substitutions(["Na", "Cl"])
    assert rules == {"Na": ["Li", "K", "Rb", "Cs"], "Cl": ["F", "Br", "I"]}
    made = dict(substituted(bulk("NaCl", "rocksalt", a=5.64)))
    expected = {a + x for a in ("Li", "Na", "K", "Rb", "Cs") for x in ("F", "Cl", "Br", "I")} - {"NaCl"}
    assert set(made) == expected and len(made) == 19
    assert made["KBr"].get_chemical_symbols() == ["K", "Br"] and np.allclose(
        made["KBr"].cell, bulk("NaCl", "rocksalt", a=5.64).cell
    )
    # two elements never merge into one (e.g. a substitution table sending Na and Cl to the same element)
    assert "NaNa" not in dict(substituted(bulk("NaCl", "rocksalt", a=5.64), {"Cl": ["Na", "Br"]}))


def test_screen_crystals_with_a_target_window_and_a_stability_cut(crystal_run, tmp_path):
    pytest.importorskip("pymatgen")
    from atomgraph.apps.crystals.screening import screen_structures
    from atomgraph.apps.crystals.stability import energies_above_hull
    from atomgraph.runs import TrainedRun
    from atomgraph.training.datasets import load_dataset

    _, run_dir = crystal_run
    folder = _cif_library(tmp_path / "library", 12, seed=13, width=2)
    everything = tmp_path / "all.csv"
    screen_structures(run_dir, folder, everything, workers=1, progress=False, max_e_hull=1e9)
    table = pd.read_csv(everything, keep_default_na=False)
    gaps = table["band_gap"].astype(float)
    low, high = float(gaps.quantile(0.25)), float(gaps.quantile(0.75))
    hull = table["e_above_hull"].astype(float)
    cut = float(hull.median())
    # the hull column: predicted formation energies against the run's own labelled crystals
    run = TrainedRun.load(run_dir)
    dataset = load_dataset(run.config, progress=False)
    formulas = [Atoms(numbers=n).get_chemical_formula() for n in dataset.atomic_numbers()]
    predicted = table["formation_energy_per_atom"].astype(float)
    expected = energies_above_hull(
        table["formula"].tolist(), predicted, formulas, dataset.targets_array()[:, 0]
    )
    np.testing.assert_allclose(hull, expected, atol=1e-9)
    screened = tmp_path / "screened.csv"
    summary = screen_structures(run_dir, folder, screened, "band_gap", workers=1, progress=False,
                                window=("band_gap", low, high), max_e_hull=cut)  # fmt: skip
    out = pd.read_csv(screened, keep_default_na=False)
    ranked = out[out["rank"] != ""]
    inside = (gaps >= low) & (gaps <= high) & (hull <= cut)
    assert summary.ranked == len(ranked) == int(inside.sum()) > 0 and summary.excluded == 12 - len(ranked)
    assert ranked["band_gap"].astype(float).between(low, high).all()
    assert (ranked["e_above_hull"].astype(float) <= cut).all()
    assert ranked["band_gap"].astype(float).is_monotonic_decreasing  # band gaps: high first
    left_out = out[out["rank"] == ""]
    assert (left_out["excluded"] != "").all() and left_out["excluded"].str.contains(
        "outside|e_above_hull"
    ).all()
    with pytest.raises(ValueError, match="not 'volume'"):
        screen_structures(
            run_dir, folder, tmp_path / "x.csv", workers=1, progress=False, window=("volume", 0, 1)
        )


def test_screen_crystals_with_the_latent_distance_writes_sigma_bounds_and_ranks_by_ucb(crystal_run, tmp_path):
    from atomgraph.apps.crystals.screening import screen_structures
    from atomgraph.evaluation.latent_distance import LatentReference
    from atomgraph.training.run_files import LATENT_REFERENCE_FILE

    _, run_dir = crystal_run
    folder = _cif_library(tmp_path / "library", 6, seed=5)
    out = tmp_path / "ranked.csv"
    screen_structures(run_dir, folder, out, workers=1, progress=False, latent_distance=True,
                      acquisition="ucb", kappa=2.0)  # fmt: skip
    table = pd.read_csv(out)
    _, calibration = LatentReference.load(run_dir / LATENT_REFERENCE_FILE)
    for t, name in enumerate(("formation_energy_per_atom", "band_gap")):
        sigma = table[f"{name}_sigma"].to_numpy(float)
        assert np.isfinite(sigma).all() and (sigma > 0).all()
        # one distance for every target: the two sigmas differ by the ratio of their scales
        np.testing.assert_allclose(sigma / calibration.scale[t], table["formation_energy_per_atom_sigma"]
                                   / calibration.scale[0], rtol=1e-5)  # fmt: skip
        assert {f"{name}_low", f"{name}_high"} <= set(table.columns)
    # formation energy ranks low first: the optimistic bound is mean - kappa sigma
    mean, sigma = table["formation_energy_per_atom"], table["formation_energy_per_atom_sigma"]
    np.testing.assert_allclose(table["acquisition"], mean - 2.0 * sigma, rtol=1e-5, atol=1e-7)
    assert table["acquisition"].is_monotonic_increasing


def _cif_library(folder: Path, count: int, seed: int, width: int = 1) -> Path:
    """A folder of ``count`` random crystals as CIF files ``c<k>.cif`` (``k`` zero-padded to ``width``)."""
    folder.mkdir()
    for k, atoms in enumerate(crystals(count, seed=seed)):
        (folder / f"c{k:0{width}d}.cif").write_bytes(cif_bytes(atoms))
    return folder
