"""Affinity models: invariance to rotation and atom order, batching, explanations and screening."""

from __future__ import annotations

import gemmi
import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem
from torch_geometric.data import Batch

from atomgraph.apps.complexes import (
    ComplexGraphSettings,
    complex_graph,
    explain_complex,
    interaction_decomposition,
    make_complex,
    screen,
)
from atomgraph.apps.complexes.augment import random_rotation
from atomgraph.apps.complexes.models.affinity_cross_attention import CrossAttentionAffinity
from atomgraph.apps.complexes.models.affinity_joint import JointGraphAffinity
from atomgraph.apps.complexes.models.affinity_late_fusion import LateFusionAffinity
from atomgraph.apps.complexes.models.affinity_ligand_only import LigandOnlyAffinity
from atomgraph.apps.complexes.models.affinity_sequence import SequenceAffinity
from atomgraph.apps.complexes.sequence import protein_sequence, sequence_graph
from atomgraph.apps.complexes.synthetic import (
    ligand_over_ring,
    molecule,
    peptide_mol,
    protein_from_mol,
    set_positions,
)

SMALL = {"hidden": 16, "layers": 2}
MODELS = {
    "late_fusion_residue": lambda: LateFusionAffinity(**SMALL),
    "late_fusion_atom": lambda: LateFusionAffinity(protein_level="atom", **SMALL),
    "late_fusion_zoo_gat": lambda: LateFusionAffinity(encoder="zoo:gat", protein_encoder="mpnn", **SMALL),
    "joint": lambda: JointGraphAffinity(**SMALL),
    "ligand_only": lambda: LigandOnlyAffinity(**SMALL),
    "joint_attention_readout": lambda: JointGraphAffinity(pool="attention", encoder="gine", **SMALL),
    "cross_attention_atom": lambda: CrossAttentionAffinity(heads=2, **SMALL),
    "cross_attention_residue_rbf": lambda: CrossAttentionAffinity(
        heads=2, protein_level="residue", distance_bias="rbf", **SMALL
    ),
}


def _benzoate_over_phe(protein):
    ligand = ligand_over_ring(protein, "c1ccccc1C(=O)[O-]")
    ligand.SetProp("_Name", "benzoate")
    return ligand


@pytest.fixture(scope="module")
def system():
    mol = peptide_mol("KDFYW", seed=1)
    protein = protein_from_mol(mol)
    return mol, protein, _benzoate_over_phe(protein)


def _graph(protein, ligand, settings=None):
    return complex_graph(make_complex(protein, ligand, name="test"), settings)


@torch.no_grad()
def _predict(model, graph):
    model.eval()
    return model(Batch.from_data_list([graph]))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_prediction_invariant_to_rotation_and_atom_order(system, name):
    torch.manual_seed(0)
    model = MODELS[name]()
    _, protein, ligand = system
    reference = _predict(model, _graph(protein, ligand))
    assert reference.shape == (1, 1) and torch.isfinite(reference).all()

    rotation = random_rotation(torch.Generator().manual_seed(5), torch.float64).numpy()
    shift = np.array([12.0, -3.0, 7.5])
    moved_protein = protein.with_positions(protein.positions @ rotation.T + shift)
    moved_ligand = set_positions(ligand, ligand.GetConformer().GetPositions() @ rotation.T + shift)
    rotated = _predict(model, _graph(moved_protein, moved_ligand))
    torch.testing.assert_close(rotated, reference, atol=1e-4, rtol=1e-4)

    rng = np.random.default_rng(0)
    shuffled_ligand = Chem.RenumberAtoms(ligand, rng.permutation(ligand.GetNumAtoms()).tolist())
    shuffled_protein = protein.subset(rng.permutation(len(protein)))
    permuted = _predict(model, _graph(shuffled_protein, shuffled_ligand))
    torch.testing.assert_close(permuted, reference, atol=1e-4, rtol=1e-4)


def test_batched_predictions_match_single_ones(system):
    _, protein, ligand = system
    other = _benzoate_over_phe(protein_from_mol(peptide_mol("GFA", seed=2)))
    graphs = [_graph(protein, ligand), _graph(protein_from_mol(peptide_mol("GFA", seed=2)), other)]
    batch = Batch.from_data_list(graphs)
    assert int(batch.res_edge_index.max()) < batch.res_x.shape[0]
    for name in ("late_fusion_residue", "joint", "cross_attention_atom"):
        torch.manual_seed(0)
        model = MODELS[name]().eval()
        with torch.no_grad():
            together = model(batch)
            alone = torch.cat([model(Batch.from_data_list([g])) for g in graphs])
        torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_sequence_model_invariant_to_smiles_atom_order():
    torch.manual_seed(0)
    model = SequenceAffinity(hidden=16, layers=2, embed_dim=16, filters=4, kernel_size=3).eval()
    sequence = "MKTAYIAKQRQISFVKSHFSRQ"
    smiles = "CC(=O)Nc1ccc(O)cc1"
    reference = _predict(model, sequence_graph(smiles, sequence, max_length=64))
    randomised = Chem.MolToSmiles(Chem.MolFromSmiles(smiles), doRandom=True, canonical=False)
    torch.testing.assert_close(
        _predict(model, sequence_graph(randomised, sequence, max_length=64)), reference
    )
    other = _predict(model, sequence_graph(smiles, "GGGGGGGGGGGG", max_length=64))
    assert not torch.allclose(other, reference)


def test_interaction_decomposition(system):
    _, protein, ligand = system
    graph = _graph(protein, ligand)
    torch.manual_seed(0)
    joint = interaction_decomposition(JointGraphAffinity(**SMALL), graph)
    assert "pi_stacking" in set(joint["type"]) and "all_inter" in set(joint["type"])
    assert np.isfinite(joint["delta"]).all() and (joint["delta"].abs() > 0).any()
    late = interaction_decomposition(LateFusionAffinity(**SMALL), graph)
    assert np.allclose(late["delta"], 0.0)  # late fusion never sees ligand-protein edges
    cross = interaction_decomposition(CrossAttentionAffinity(heads=2, **SMALL), graph)
    assert (cross.loc[cross["type"] == "all_inter", "delta"].abs() > 0).all()


def test_explain_writes_importance_as_bfactors(system, tmp_path):
    mol, _, ligand = system
    path = tmp_path / "protein.pdb"
    Chem.MolToPDBFile(mol, str(path))
    from atomgraph.apps.complexes import read_protein

    complex_ = make_complex(read_protein(path), ligand, pocket_radius=6.0, name="benzoate")
    torch.manual_seed(0)
    paths = explain_complex(
        JointGraphAffinity(**SMALL), complex_, tmp_path / "out", ComplexGraphSettings(6.0)
    )
    structure = gemmi.read_structure(str(paths["protein"]))
    bfactors = np.array([a.b_iso for r in structure[0][0] for a in r])
    assert len(bfactors) == mol.GetNumAtoms()
    pocket_heavy = complex_.pocket.atom_ids[complex_.pocket.heavy]
    outside = np.setdiff1d(np.arange(len(bfactors)), complex_.pocket.atom_ids)
    assert np.abs(bfactors[pocket_heavy]).max() > 0 and np.allclose(bfactors[outside], 0.0)
    assert np.abs(bfactors).max() <= 99.0 + 1e-6  # scaled by the largest |importance| of the complex
    written = Chem.SDMolSupplier(str(paths["ligand_sdf"]), removeHs=False)[0]
    values = [float(v) for v in written.GetProp("bfactor").split()]
    assert len(values) == ligand.GetNumAtoms() and any(v != 0 for v in values)
    assert written.GetAtomWithIdx(0).HasProp("importance")
    ligand_pdb = Chem.MolFromPDBFile(str(paths["ligand_pdb"]), removeHs=False, sanitize=False)
    assert ligand_pdb.GetNumAtoms() == ligand.GetNumAtoms()
    decomposition = paths["decomposition"].read_text()
    assert "pi_stacking" in decomposition


@pytest.mark.parametrize("level", ["atom", "residue"])
def test_explain_exports_and_draws_cross_attention(system, tmp_path, level):
    """A cross-attention model's last-block weights come out per ligand atom and protein node (pocket
    atom or residue), each ligand atom's weights summing to 1, labelled by residue, at the pair's
    distance; explain_complex writes them and the heat map; a model without attention gets none."""
    mol, _, ligand = system
    path = tmp_path / "protein.pdb"
    Chem.MolToPDBFile(mol, str(path))
    from atomgraph.apps.complexes import read_protein
    from atomgraph.apps.complexes.explain import attention_table

    complex_ = make_complex(read_protein(path), ligand, pocket_radius=6.0, name="benzoate")
    settings = ComplexGraphSettings(6.0)
    graph = complex_graph(complex_, settings)
    torch.manual_seed(0)
    model = CrossAttentionAffinity(heads=2, protein_level=level, **SMALL)
    table = attention_table(model, complex_, graph)
    ligand_nodes = int((graph.node_role == 0).sum())
    assert table["ligand_atom"].nunique() == ligand_nodes
    np.testing.assert_allclose(table.groupby("ligand_atom")["weight"].sum(), 1.0, atol=1e-5)
    residues = {f"{c}:{n}{k}" for c, n, k in zip(complex_.pocket.chain_ids, complex_.pocket.residue_names,
                                                  complex_.pocket.residue_numbers, strict=True)}  # fmt: skip
    assert set(table["residue"]) <= residues
    if level == "atom":  # each pair's distance is the ligand atom's to that pocket atom
        row = table.iloc[0]
        atom = next(k for k in range(len(complex_.pocket))
                    if row["protein"].endswith(f":{complex_.pocket.atom_names[k]}")
                    and row["protein"].startswith(row["residue"]))  # fmt: skip
        position = ligand.GetConformer().GetAtomPosition(int(row["ligand_atom"]))
        assert row["distance"] == pytest.approx(
            np.linalg.norm(np.array(position) - complex_.pocket.positions[atom]), abs=1e-3
        )
    paths = explain_complex(model, complex_, tmp_path / level, settings)
    assert paths["attention_plot"].stat().st_size > 0 and len(paths["attention"].read_text().splitlines()) > 1

    class Wrapped(torch.nn.Module):  # a trained run's module: the network is its .model
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, batch):
            return self.model(batch)

    wrapped = attention_table(Wrapped(model), complex_, graph)
    pd.testing.assert_frame_equal(wrapped, table)
    assert attention_table(JointGraphAffinity(**SMALL), complex_, graph) is None


def test_screen_ranks_ligands_and_keeps_failures(system, tmp_path):
    mol, _, ligand = system
    pdb = tmp_path / "protein.pdb"
    Chem.MolToPDBFile(mol, str(pdb))
    far = set_positions(
        molecule("CCO", name="far_away"), molecule("CCO").GetConformer().GetPositions() + 60.0
    )
    other = set_positions(ligand, ligand.GetConformer().GetPositions() + np.array([0.5, 0.0, 0.0]))
    other.SetProp("_Name", "shifted")
    broken = Chem.RWMol(molecule("C", name="broken_mol"))
    extra = broken.AddAtom(Chem.Atom(1))
    broken.AddBond(0, extra, Chem.BondType.SINGLE)
    broken.GetConformer().SetAtomPosition(extra, (0.0, 0.0, 1.1))
    blocks = [Chem.MolToMolBlock(m, kekulize=False) for m in (ligand, far, broken, other)]
    sdf = tmp_path / "library.sdf"
    sdf.write_text("".join(b + "$$$$\n" for b in blocks))
    torch.manual_seed(0)
    out = tmp_path / "ranked.csv"
    summary = screen(JointGraphAffinity(**SMALL), pdb, sdf, out, batch_size=2, progress=False)
    assert (summary.output, summary.rows, summary.scored, summary.failed) == (out, 4, 2, 2)
    table = summary.table()
    assert list(table.columns) == ["rank", "record", "name", "smiles", "affinity", "error"]
    ok = table[table["error"] == ""]
    assert list(ok["name"]) and set(ok["name"]) == {"benzoate", "shifted"}
    assert list(ok["rank"]) == [1, 2] and ok["affinity"].is_monotonic_decreasing
    failed = table[table["error"] != ""].set_index("name")
    assert set(failed.index) == {"far_away", "broken_mol"}
    assert "broken_mol" in failed.loc["broken_mol", "error"]
    assert "share a coordinate frame" in failed.loc["far_away", "error"]
    assert failed["affinity"].isna().all() and failed["rank"].isna().all()


def test_screen_with_a_sequence_model(system, tmp_path):
    mol, _, ligand = system
    pdb = tmp_path / "protein.pdb"
    Chem.MolToPDBFile(mol, str(pdb))
    sdf = tmp_path / "one.sdf"
    sdf.write_text(Chem.MolToMolBlock(ligand) + "$$$$\n")
    assert protein_sequence(protein_from_mol(mol)) == "KDFYW"
    model = SequenceAffinity(hidden=16, layers=2, embed_dim=16, filters=4, kernel_size=3)
    table = screen(model, pdb, sdf, tmp_path / "sequence.csv", progress=False).table()
    assert table["error"].tolist() == [""] and np.isfinite(table["affinity"]).all()


def _rbf_ends(module: torch.nn.Module) -> set[float]:
    """The last centres (Å) of every Gaussian distance basis inside ``module``."""
    from atomgraph.features import GaussianRBF

    return {round(float(m.centers[-1]), 6) for m in module.modules() if isinstance(m, GaussianRBF)}


def test_the_distance_grids_come_from_the_complex_graph_spec():
    """Defaults keep the grids the models were measured with; a spec that allows longer edges (residue
    pairs to 15 Å, inter-molecular edges to 9 Å) stretches the grid over them instead of saturating."""
    from atomgraph.graphs.spec import GraphSpec
    from atomgraph.models import build_model

    default = GraphSpec("complex", 5.0)
    wide = GraphSpec("complex", 9.0, options={"residue_cutoff": 15.0, "protein_edge_cutoff": 4.0})
    late = build_model("affinity_late_fusion", graph=default, protein_level="residue")
    assert _rbf_ends(late.protein_encoder) == {12.0} and _rbf_ends(late.ligand_encoder) == {8.0}
    late = build_model("affinity_late_fusion", graph=wide, protein_level="residue")
    assert _rbf_ends(late.protein_encoder) == {15.0} and late.radial_stops["residue"] == 15.0
    assert _rbf_ends(build_model("affinity_joint", graph=default)) == {8.0}
    assert _rbf_ends(build_model("affinity_joint", graph=wide)) == {9.0}
    cross = build_model("affinity_cross_attention", graph=default, distance_bias="rbf")
    assert _rbf_ends(cross.blocks) == {12.0}


class _TwoMemberCommittee(torch.nn.Module):
    """Two affinity models used as one, like an ensemble's run: mean prediction and member spread."""

    uncertainty = "ensemble"

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.members = torch.nn.ModuleList([JointGraphAffinity(**SMALL), JointGraphAffinity(**SMALL)])
        self.model = self.members[0]  # what the screen reads the graph kind from

    def distribution(self, batch):
        from atomgraph.outputs.uncertainty import combine_members

        return combine_members(torch.stack([m(batch) for m in self.members]), None)

    def forward(self, batch):
        return self.distribution(batch)[0]


def test_screen_with_a_committee_writes_sigma_and_ranks_by_the_upper_bound(system, tmp_path):
    mol, _, ligand = system
    pdb = tmp_path / "protein.pdb"
    Chem.MolToPDBFile(mol, str(pdb))
    poses = []
    for k, shift in enumerate((0.0, 0.4, 0.8, 1.2)):
        pose = set_positions(ligand, ligand.GetConformer().GetPositions() + np.array([shift, 0.0, 0.0]))
        pose.SetProp("_Name", f"pose{k}")
        poses.append(Chem.MolToMolBlock(pose, kekulize=False) + "$$$$\n")
    sdf = tmp_path / "poses.sdf"
    sdf.write_text("".join(poses))
    committee = _TwoMemberCommittee()
    table = screen(
        committee, pdb, sdf, tmp_path / "ucb.csv", progress=False, acquisition="ucb", kappa=2.0
    ).table()
    assert list(table.columns) == ["rank", "record", "name", "smiles", "affinity", "affinity_sigma",
                                   "acquisition", "error"]  # fmt: skip
    assert (table["affinity_sigma"] > 0).all()
    np.testing.assert_allclose(table["acquisition"], table["affinity"] + 2.0 * table["affinity_sigma"])
    assert table["acquisition"].is_monotonic_decreasing and list(table["rank"]) == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="needs a sigma"):
        screen(
            JointGraphAffinity(**SMALL), pdb, sdf, tmp_path / "none.csv", progress=False, acquisition="ucb"
        )
    assert not (tmp_path / "none.csv").exists()


def test_a_complex_ensemble_trains_loads_and_screens_by_the_upper_bound(flexible_complexes, tmp_path):
    """``ensemble.members: 2`` with bootstrap on the PDBbind-style complexes: one run directory that
    :class:`~atomgraph.runs.TrainedRun` loads as an ensemble, and ``screen`` from it writes the
    members' spread as ``pK_sigma`` and ranks by mean + kappa sigma."""
    from atomgraph.evaluation.calibration import Calibration
    from atomgraph.evaluation.experiment import train_and_evaluate
    from atomgraph.runs import TrainedRun
    from atomgraph.training.config import load_config
    from atomgraph.training.ensemble_module import EnsembleModule, is_ensemble

    settings = {
        "name": "affinity_ensemble",
        "run_dir": str(tmp_path / "run"),
        "data": {
            "dataset": "complexes",
            "path": str(flexible_complexes),
            "targets": ["pK"],
            "cache": str(tmp_path / "cache"),
            "split": {"kind": "random", "sizes": [0.5, 0.25, 0.25], "seed": 0},
            "complex": {"augment_noise": 0.0},
        },
        "model": {"name": "affinity_joint", **SMALL},
        "ensemble": {"members": 2, "bootstrap": True},
        "training": {"epochs": 1, "batch_size": 1, "progress": False, "accelerator": "cpu"},
    }
    run_dir = train_and_evaluate(load_config(settings=settings), progress=False)
    assert is_ensemble(run_dir) and sorted(p.name for p in (run_dir / "members").iterdir()) == ["0", "1"]
    run = TrainedRun.load(run_dir)
    assert isinstance(run.module, EnsembleModule) and len(run.module.members) == 2
    folder = flexible_complexes / "aaa1"
    ligand = Chem.MolFromMolFile(str(folder / "aaa1_ligand.sdf"), removeHs=False)
    poses = []
    for k, shift in enumerate((0.0, 0.3, 0.6)):
        pose = set_positions(ligand, ligand.GetConformer().GetPositions() + np.array([shift, 0.0, 0.0]))
        pose.SetProp("_Name", f"pose{k}")
        poses.append(Chem.MolToMolBlock(pose, kekulize=False) + "$$$$\n")
    sdf = tmp_path / "poses.sdf"
    sdf.write_text("".join(poses))
    summary = screen(
        run_dir, folder / "aaa1_protein.pdb", sdf, tmp_path / "ucb.csv", progress=False, acquisition="ucb",
        kappa=1.5,
    )  # fmt: skip
    table = summary.table()
    assert (summary.scored, summary.failed) == (3, 0)
    assert np.isfinite(table["pK"]).all() and np.isfinite(table["pK_sigma"]).all()
    assert (table["pK_sigma"] > 0).all()  # two seeds, two resamples: the members disagree
    np.testing.assert_allclose(table["acquisition"], table["pK"] + 1.5 * table["pK_sigma"])
    assert table["acquisition"].is_monotonic_decreasing and list(table["rank"]) == [1, 2, 3]
    # with the run's calibration (one validation row fits no finite 95 % q: a known one instead), the
    # recalibrated sigma and the conformal bounds mean -+ q * raw sigma, as predict writes them
    known = Calibration([2.0], [1.5], 0.95, [1])
    known.save(run_dir / "calibration.json")
    calibrated = screen(run_dir, folder / "aaa1_protein.pdb", sdf, tmp_path / "cal.csv", progress=False)
    (run_dir / "calibration.json").unlink()  # without one: the raw sigma and no bounds
    raw = screen(run_dir, folder / "aaa1_protein.pdb", sdf, tmp_path / "raw.csv", progress=False).table()
    assert not {"pK_low", "pK_high"} & set(raw)
    calibrated = calibrated.table().set_index("record").loc[raw["record"]]
    np.testing.assert_allclose(calibrated["pK_sigma"], 2.0 * raw["pK_sigma"], rtol=1e-6)
    low, high = known.interval(raw[["pK"]].to_numpy(), raw[["pK_sigma"]].to_numpy())
    np.testing.assert_allclose(calibrated["pK_low"], low[:, 0], rtol=1e-6)
    np.testing.assert_allclose(calibrated["pK_high"], high[:, 0], rtol=1e-6)
    assert (calibrated["pK_low"] < calibrated["pK"]).all() and (
        calibrated["pK"] < calibrated["pK_high"]
    ).all()
    # one model of the same data: the latent distance as its sigma, ranked by mean + kappa sigma
    from atomgraph.evaluation.latent_distance import LatentReference
    from atomgraph.training.run_files import LATENT_REFERENCE_FILE

    del settings["ensemble"]
    settings.update(name="affinity_single", run_dir=str(tmp_path / "single"))
    single = train_and_evaluate(load_config(settings=settings), progress=False)
    latent = screen(single, folder / "aaa1_protein.pdb", sdf, tmp_path / "latent.csv", progress=False,
                    acquisition="ucb", kappa=1.5, latent_distance=True).table()  # fmt: skip
    _, fitted = LatentReference.load(single / LATENT_REFERENCE_FILE)
    assert np.isfinite(latent["pK_sigma"]).all() and (latent["pK_sigma"] > 0).all()
    assert {"pK_low", "pK_high"} <= set(latent) and fitted.scale[0] > 0
    np.testing.assert_allclose(latent["acquisition"], latent["pK"] + 1.5 * latent["pK_sigma"])
    with pytest.raises(ValueError, match="own"):  # the ensemble has a sigma of its own
        screen(
            run_dir,
            folder / "aaa1_protein.pdb",
            sdf,
            tmp_path / "x.csv",
            progress=False,
            latent_distance=True,
        )


def test_residue_structure_widens_residue_nodes_and_the_run_fills_the_width(system, tmp_path):
    """``residue_structure`` appends helix/strand/coil and relative SASA to every residue node; a run
    gives the residue-level model the wider input from the data (``residue_dim``)."""
    pytest.importorskip("biotite")
    from atomgraph.apps.complexes import read_protein
    from atomgraph.apps.complexes.dataset import ComplexDataset
    from atomgraph.data.graph_dataset import DatasetMeta
    from atomgraph.targets import AFFINITY, TargetSet
    from atomgraph.training.run import model_arguments

    mol, _, ligand = system
    path = tmp_path / "protein.pdb"
    Chem.MolToPDBFile(mol, str(path))
    complex_ = make_complex(read_protein(path), ligand, pocket_radius=6.0, name="benzoate")
    plain = complex_graph(complex_, ComplexGraphSettings(6.0))
    settings = ComplexGraphSettings(6.0, residue_structure=True)
    graph = complex_graph(complex_, settings, y=np.array([5.0]))
    assert graph.res_x.shape == (plain.res_x.shape[0], settings.residue_dim)
    torch.testing.assert_close(graph.res_x[:, : plain.res_x.shape[1]], plain.res_x)
    extra = graph.res_x[:, plain.res_x.shape[1] :]
    torch.testing.assert_close(extra[:, :3].sum(1), torch.ones(len(extra), dtype=extra.dtype))
    assert ((extra[:, 3] >= 0) & (extra[:, 3] <= 1)).all() and (extra[:, 3] > 0).any()
    dataset = ComplexDataset([graph, graph.clone()], DatasetMeta("c", TargetSet(AFFINITY)))
    arguments = model_arguments({"model": {"name": "affinity_late_fusion", **SMALL}}, dataset)
    assert arguments["residue_dim"] == settings.residue_dim
    model = LateFusionAffinity(**{k: v for k, v in arguments.items() if k != "name"})
    assert model(Batch.from_data_list([graph, graph])).shape == (2, 1)
