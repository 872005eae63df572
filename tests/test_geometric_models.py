"""Geometric models (SchNet, PaiNN, DimeNet++, the equivariant potential): symmetries, extensivity,
forces by autograd against finite differences, PaiNN's dipole output and DimeNet++'s periodic triplets.

Everything runs in float64 with tiny widths; the models are built once per module.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list
from conftest import random_molecule
from scipy.spatial.transform import Rotation
from scipy.special import spherical_jn as scipy_jn
from torch_geometric.data import Batch

from atomgraph.graphs import radius_graph
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models import build_model, model_class
from atomgraph.nn.spherical import spherical_bessel_zeros, spherical_jn, spherical_y_l0

CUTOFF = 4.0
SPEC = GraphSpec(cutoff=CUTOFF)
SMALL = {
    "schnet": {"hidden": 16, "filters": 16, "interactions": 2, "num_rbf": 12},
    "painn": {"hidden": 16, "interactions": 2, "num_rbf": 8},
    "dimenet++": {
        "hidden": 16, "out_emb": 16, "int_emb": 8, "basis_emb": 4, "blocks": 2, "num_spherical": 4,
        "num_radial": 4, "num_output_layers": 1,
    },
    "dimenet": {
        "hidden": 16, "num_bilinear": 4, "blocks": 2, "num_spherical": 4, "num_radial": 4,
        "num_output_layers": 1,
    },
    "equivariant": {
        "hidden_irreps": "8x0e + 4x1o + 2x2e", "layers": 2, "num_basis": 6, "radial_hidden": 16,
        "avg_num_neighbors": 6.0,
    },
}  # fmt: skip
NAMES = sorted(SMALL)
STRUCTURES = ("molecule", "crystal")


def build(name: str, **extra) -> torch.nn.Module:
    """A tiny float64 model (the default dtype is restored afterwards)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        return build_model(name, reductions=("sum",), graph=SPEC, **{**SMALL[name], **extra}).eval()
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    return {name: build(name) for name in NAMES}


@pytest.fixture(scope="module")
def dipole_model() -> torch.nn.Module:
    return build("painn", output="dipole")


# ------------------------------------------------------------------------------------------ helpers


def molecule(seed: int = 0) -> Atoms:
    return random_molecule(np.random.default_rng(seed), 5, 8)


def crystal(seed: int = 0, n_atoms: int = 3) -> Atoms:
    """A random triclinic cell with lattice vectors (~3.3 Å) shorter than the cutoff, atoms >= 1.3 Å apart."""
    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(3.1, 3.5, 3)) + rng.uniform(-0.3, 0.3, (3, 3)) * (1 - np.eye(3))
    while True:
        atoms = Atoms(
            numbers=rng.choice([1, 6, 8], n_atoms),
            scaled_positions=rng.random((n_atoms, 3)),
            cell=cell,
            pbc=True,
        )
        if len(ase_neighbor_list("d", atoms, 1.3)) == 0:
            return atoms


def structure(kind: str, seed: int = 0) -> Atoms:
    return molecule(seed) if kind == "molecule" else crystal(seed)


def energy_and_forces(model, graph, pos=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy [B] and forces -dE/dpos [N, 3]; positions set on a shallow copy, as the potentials task does."""
    graph = copy.copy(graph)
    graph.pos = (graph.pos if pos is None else pos).detach().clone().requires_grad_(True)
    energy = model(graph)[:, 0]
    (grad,) = torch.autograd.grad(energy.sum(), graph.pos)
    return energy.detach(), -grad


def energy(model, graph, pos=None, cell=None) -> float:
    graph = copy.copy(graph)
    if pos is not None:
        graph.pos = pos
    if cell is not None:
        graph.cell = cell
    with torch.no_grad():
        return float(model(graph).sum())


def rotation(seed: int) -> np.ndarray:
    return Rotation.random(random_state=seed).as_matrix()


def moved(atoms: Atoms, rot: np.ndarray | None = None, shift: np.ndarray | None = None) -> Atoms:
    """A rigidly rotated (cell included) and/or translated copy."""
    out = atoms.copy()
    if rot is not None:
        out.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
        out.positions = atoms.positions @ rot.T
    if shift is not None:
        out.positions = out.positions + shift
    return out


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    """Relative to the largest entry of ``expected``."""
    scale = float(expected.detach().abs().max())
    torch.testing.assert_close(actual, expected, rtol=0.0, atol=rtol * max(scale, 1e-12))


# ------------------------------------------------------------------------------------- symmetries


@pytest.mark.parametrize("kind", STRUCTURES)
@pytest.mark.parametrize("name", NAMES)
def test_energy_invariant_forces_equivariant_under_rotation(models, name, kind, float64):
    model, atoms = models[name], structure(kind, seed=1)
    e, f = energy_and_forces(model, radius_graph(atoms, CUTOFF))
    assert abs(float(e)) > 1e-8 and float(f.abs().max()) > 1e-8  # not trivially zero
    for seed in range(2):
        rot = rotation(seed)
        e_rot, f_rot = energy_and_forces(model, radius_graph(moved(atoms, rot), CUTOFF))
        assert_close(e_rot, e, 1e-6)
        assert_close(f_rot, f @ torch.from_numpy(rot).T, 1e-6)


@pytest.mark.parametrize("kind", STRUCTURES)
@pytest.mark.parametrize("name", NAMES)
def test_translation_invariance(models, name, kind, float64):
    model, atoms = models[name], structure(kind, seed=2)
    e, f = energy_and_forces(model, radius_graph(atoms, CUTOFF))
    e_t, f_t = energy_and_forces(model, radius_graph(moved(atoms, shift=np.array([1.7, -3.1, 0.4])), CUTOFF))
    assert_close(e_t, e, 1e-6)
    assert_close(f_t, f, 1e-6)


@pytest.mark.parametrize("kind", STRUCTURES)
@pytest.mark.parametrize("name", NAMES)
def test_permutation_invariance(models, name, kind, float64):
    model, atoms = models[name], structure(kind, seed=3)
    perm = np.random.default_rng(0).permutation(len(atoms))
    e, f = energy_and_forces(model, radius_graph(atoms, CUTOFF))
    e_p, f_p = energy_and_forces(model, radius_graph(atoms[perm], CUTOFF))
    assert_close(e_p, e, 1e-10)
    assert_close(f_p, f[torch.from_numpy(perm)], 1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_supercell_is_extensive(models, name, float64):
    """A 2x2x2 supercell of a cell smaller than the cutoff: 8x the energy, the same forces."""
    model, cell = models[name], crystal(seed=4)
    e, f = energy_and_forces(model, radius_graph(cell, CUTOFF))
    e_super, f_super = energy_and_forces(model, radius_graph(cell.repeat(2), CUTOFF))
    assert_close(e_super, 8 * e, 1e-8)
    assert_close(f_super[: len(cell)], f, 1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_single_graphs(models, name, float64):
    graphs = [radius_graph(a, CUTOFF) for a in (molecule(5), crystal(5), molecule(6))]
    batched = energy_and_forces(models[name], Batch.from_data_list(graphs))
    single = [energy_and_forces(models[name], g) for g in graphs]
    assert_close(batched[0], torch.cat([e for e, _ in single]), 1e-10)
    assert_close(batched[1], torch.cat([f for _, f in single]), 1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_pair_terms_computed_once_equal_every_edge(models, name, float64):
    """Models that compute distance terms once per pair of a symmetric graph (``edge_forward``) give
    the energies and forces of the same graph without that layout (edges shuffled, no pair marks)."""
    graphs = [radius_graph(a, CUTOFF) for a in (molecule(8), crystal(8))]
    paired = Batch.from_data_list(graphs)
    assert "edge_forward" in paired
    plain = copy.copy(paired)
    del plain.edge_forward
    order = torch.randperm(paired.edge_index.shape[1], generator=torch.Generator().manual_seed(0))
    plain.edge_index, plain.edge_shift = paired.edge_index[:, order], paired.edge_shift[order]
    expected, actual = energy_and_forces(models[name], plain), energy_and_forces(models[name], paired)
    assert_close(actual[0], expected[0], 1e-10)
    assert_close(actual[1], expected[1], 1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_edges_beyond_the_model_cutoff_do_not_count(models, name, float64):
    """A graph built with a larger radius (the data's) gives the same energy as one at the model's cutoff."""
    atoms = crystal(seed=6)
    e = energy(models[name], radius_graph(atoms, CUTOFF))
    assert energy(models[name], radius_graph(atoms, CUTOFF + 1.0)) == pytest.approx(e, rel=1e-10, abs=1e-12)


# ----------------------------------------------------------------------------------- derivatives


@pytest.mark.parametrize("kind", STRUCTURES)
@pytest.mark.parametrize("name", NAMES)
def test_forces_match_finite_differences(models, name, kind, float64):
    model, graph = models[name], radius_graph(structure(kind, seed=7), CUTOFF)
    _, forces = energy_and_forces(model, graph)
    h = 1e-4
    for atom, axis in [(0, 0), (1, 2), (2, 1)]:
        step = torch.zeros_like(graph.pos)
        step[atom, axis] = h
        numeric = (energy(model, graph, graph.pos + step) - energy(model, graph, graph.pos - step)) / (2 * h)
        assert -float(forces[atom, axis]) == pytest.approx(numeric, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_cell_gradient_matches_finite_differences(models, name, float64):
    """dE/dcell (the route of stress) by autograd, with the same graph, equals central differences."""
    model, graph = models[name], radius_graph(crystal(seed=8), CUTOFF)
    strained = copy.copy(graph)
    strained.cell = graph.cell.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(strained).sum(), strained.cell)
    h = 1e-4
    for row, col in [(0, 0), (1, 2)]:
        step = torch.zeros_like(graph.cell)
        step[0, row, col] = h
        numeric = (
            energy(model, graph, cell=graph.cell + step) - energy(model, graph, cell=graph.cell - step)
        ) / (2 * h)
        assert float(grad[0, row, col]) == pytest.approx(numeric, rel=1e-6, abs=1e-8)


# ---------------------------------------------------------------------------------- PaiNN dipoles


def test_painn_dipole_rotates_and_is_translation_invariant(dipole_model, float64):
    atoms = molecule(9)
    graph = radius_graph(atoms, CUTOFF)
    with torch.no_grad():
        mu = dipole_model.dipole_vector(graph)
        atomic = dipole_model.atomic_vectors(graph)
        magnitude = dipole_model(graph)
        assert mu.shape == (1, 3) and atomic.shape == (len(atoms), 3) and magnitude.shape == (1, 1)
        assert float(magnitude) > 1e-6
        torch.testing.assert_close(
            magnitude[:, 0], torch.linalg.vector_norm(mu, dim=-1), rtol=1e-9, atol=1e-9
        )
        for seed in range(2):
            rot = torch.from_numpy(rotation(seed))
            rotated = radius_graph(moved(atoms, rot.numpy()), CUTOFF)
            assert_close(dipole_model.dipole_vector(rotated), mu @ rot.T, 1e-8)
            assert_close(dipole_model.atomic_vectors(rotated), atomic @ rot.T, 1e-8)
        shifted = radius_graph(moved(atoms, shift=np.array([10.0, -4.0, 7.5])), CUTOFF)
        assert_close(dipole_model(shifted), magnitude, 1e-9)
        assert_close(dipole_model.dipole_vector(shifted), mu, 1e-9)


def test_painn_dipole_charges_are_neutral_and_batching_works(dipole_model, float64):
    graphs = [radius_graph(molecule(s), CUTOFF) for s in (10, 11)]
    batch = Batch.from_data_list(graphs)
    with torch.no_grad():
        raw, _ = dipole_model._scalars_and_vectors(batch)
        charges = dipole_model.atomic_charges(batch)
        batched = dipole_model.dipole_vector(batch)
        single = torch.cat([dipole_model.dipole_vector(g) for g in graphs])
    assert_close(batched, single, 1e-10)
    totals = torch.zeros(2).index_add_(0, batch.batch, charges)
    assert float(totals.abs().max()) < 1e-12 < float(raw[batch.batch == 0].sum().abs())
    # translating only one molecule of the batch changes no moment
    moved_graphs = [copy.copy(g) for g in graphs]
    moved_graphs[1].pos = moved_graphs[1].pos + torch.tensor([3.0, 1.0, -2.0])
    with torch.no_grad():
        assert_close(dipole_model.dipole_vector(Batch.from_data_list(moved_graphs)), batched, 1e-9)


def test_painn_output_modes(float64):
    assert build("painn", output="dipole").physical_output is True
    energy_model = build("painn")
    assert energy_model.physical_output is False
    assert build("painn", output="polarizability").physical_output is True
    with pytest.raises(RuntimeError, match="dipole"):
        energy_model.atomic_vectors(radius_graph(molecule(0), CUTOFF))
    with pytest.raises(ValueError, match="one target"):
        build_model("painn", reductions=("sum", "mean"), output="dipole")
    with pytest.raises(ValueError, match="output"):
        build_model("painn", output="quadrupole")


# --------------------------------------------------------------------------- PaiNN polarisability


def test_painn_polarizability_rotates_as_a_rank_2_tensor_and_is_translation_invariant(float64):
    model = build("painn", output="polarizability", vector_hidden=6)
    atoms = molecule(12)
    graph = radius_graph(atoms, CUTOFF)
    with torch.no_grad():
        alpha = model.polarizability_tensor(graph)
        isotropic = model(graph)
        assert alpha.shape == (1, 3, 3) and isotropic.shape == (1, 1)
        assert_close(alpha, alpha.transpose(-1, -2), 1e-12)  # symmetric
        assert_close(isotropic[:, 0], torch.diagonal(alpha, dim1=-2, dim2=-1).mean(-1), 1e-12)
        anisotropic = alpha - isotropic[..., None] * torch.eye(3)
        assert float(anisotropic.abs().max()) > 1e-6  # not only the isotropic part
        for seed in range(2):
            rot = torch.from_numpy(rotation(seed + 3))
            rotated = radius_graph(moved(atoms, rot.numpy()), CUTOFF)
            assert_close(model.polarizability_tensor(rotated), rot @ alpha @ rot.T, 1e-8)
            assert_close(model(rotated), isotropic, 1e-8)
        shifted = radius_graph(moved(atoms, shift=np.array([-6.0, 2.0, 9.0])), CUTOFF)
        assert_close(model.polarizability_tensor(shifted), alpha, 1e-9)
        graphs = [radius_graph(molecule(s), CUTOFF) for s in (13, 14)]
        single = torch.cat([model.polarizability_tensor(g) for g in graphs])
        assert_close(model.polarizability_tensor(Batch.from_data_list(graphs)), single, 1e-10)


def test_painn_vector_width_is_its_own_and_keeps_the_symmetries(float64):
    narrow = build("painn", vector_hidden=3)
    s, v = narrow.atom_features(radius_graph(molecule(15), CUTOFF))
    assert s.shape[1] == SMALL["painn"]["hidden"] and v.shape[1:] == (3, 3)
    assert narrow.updates[0].to_scalars is not None and build("painn").updates[0].to_scalars is None
    atoms = molecule(15)
    with torch.no_grad():
        energy = narrow(radius_graph(atoms, CUTOFF))
        rotated = narrow(radius_graph(moved(atoms, rotation(7)), CUTOFF))
        dipole = build("painn", output="dipole", vector_hidden=3)
        mu = dipole.dipole_vector(radius_graph(atoms, CUTOFF))
        rot = torch.from_numpy(rotation(8))
        assert_close(dipole.dipole_vector(radius_graph(moved(atoms, rot.numpy()), CUTOFF)), mu @ rot.T, 1e-8)
    assert_close(rotated, energy, 1e-9)
    with pytest.raises(ValueError, match="vector_hidden"):
        build_model("painn", vector_hidden=0)


# -------------------------------------------------------------------------------- DimeNet++ triplets


def test_dimenet_triplets_in_a_cell_smaller_than_the_cutoff(models, float64):
    """One atom in a 2.3 Å cubic cell: every neighbour is an image of the atom itself, so every triplet
    goes through images of the same atom; only the walk straight back to the same image is excluded."""
    model = models["dimenet++"]
    atoms = Atoms("C", positions=[[0.1, 0.2, 0.3]], cell=np.eye(3) * 2.3, pbc=True)
    graph = radius_graph(atoms, CUTOFF)
    edge_index, _, (idx_kj, _), cos = model.geometry(graph)
    degree = edge_index.shape[1]
    assert degree > 20 and idx_kj.numel() == degree * (degree - 1)
    assert bool((cos.abs() <= 1 + 1e-12).all())
    e, f = energy_and_forces(model, graph)
    assert abs(float(e)) > 1e-8 and bool(torch.isfinite(e).all())
    assert float(f.abs().max()) < 1e-10  # inversion symmetry of a Bravais lattice
    e_super, _ = energy_and_forces(model, radius_graph(atoms.repeat(2), CUTOFF))
    assert_close(e_super, 8 * e, 1e-8)


# ---------------------------------------------------------------------------- bases and registry


def test_spherical_bessel_functions_and_zeros(float64):
    x = torch.linspace(0.0, 30.0, 3001, requires_grad=True)
    for order in range(7):
        values = spherical_jn(order, x)
        np.testing.assert_allclose(values.detach().numpy(), scipy_jn(order, x.detach().numpy()), atol=1e-13)
        (grad,) = torch.autograd.grad(values.sum(), x)
        expected = scipy_jn(order, x.detach().numpy(), derivative=True)
        np.testing.assert_allclose(grad.numpy(), expected, atol=1e-12)
    zeros = spherical_bessel_zeros(7, 6)
    assert np.all(np.diff(zeros, axis=1) > 0) and np.all(zeros > 0)
    np.testing.assert_allclose([scipy_jn(n, zeros[n]) for n in range(7)], 0.0, atol=1e-12)
    np.testing.assert_allclose(zeros[0], np.pi * np.arange(1, 7))
    # Y_l0 are orthonormal on the sphere: 2 pi int_{-1}^{1} Y_l Y_m dcos = delta_lm
    c = torch.linspace(-1.0, 1.0, 20001)
    y = spherical_y_l0(6, c)
    gram = 2 * np.pi * torch.trapezoid(y.unsqueeze(-1) * y.unsqueeze(-2), c, dim=0)
    torch.testing.assert_close(gram, torch.eye(7), atol=1e-6, rtol=0)


def test_registry_names_and_graph_kind():
    assert model_class("dimenet++") is model_class("DimeNetPP")
    assert model_class("nequip") is model_class("equivariant")
    for name in ("painn", "dimenet++", "equivariant"):
        assert model_class(name).card.graph_kind == "radius"


def test_float32_models_run():
    graphs = Batch.from_data_list([radius_graph(molecule(12), CUTOFF), radius_graph(crystal(12), CUTOFF)])
    for name in NAMES:
        torch.manual_seed(0)
        model = build_model(name, reductions=("sum", "mean"), graph=SPEC, **SMALL[name]).eval()
        with torch.no_grad():
            out = model(graphs)
        assert out.shape == (2, 2) and out.dtype == torch.float32 and bool(torch.isfinite(out).all())


# ------------------------------------------------------------------------------- PaiNN direct forces


def test_painn_direct_forces_rotate_with_the_molecule_and_come_from_one_pass(float64):
    from atomgraph.data.normalization import TargetNormalizer
    from atomgraph.outputs.potential import energy_forces_stress

    model = build("painn", direct_forces=True, vector_hidden=5)
    assert model.direct_forces and not build("painn").direct_forces
    atoms = molecule(16)
    graph = radius_graph(atoms, CUTOFF)
    with torch.no_grad():
        outputs, forces = model.energy_and_forces(graph)
        assert forces.shape == (len(atoms), 3) and float(forces.abs().max()) > 1e-8
        assert_close(outputs, model(graph), 1e-12)
        rot = torch.from_numpy(rotation(9))
        _, turned = model.energy_and_forces(
            radius_graph(moved(atoms, rot.numpy(), np.array([1.0, 2, 3])), CUTOFF)
        )
        assert_close(turned, forces @ rot.T, 1e-8)
    normalizer = TargetNormalizer([True]).double()
    normalizer.std.fill_(2.5)
    out = energy_forces_stress(model, normalizer, graph, forces=True, training=False)
    assert_close(out["forces"], 2.5 * forces, 1e-12)
    assert_close(out["energy"], normalizer.denormalize(outputs, graph)[:, 0], 1e-12)
    with pytest.raises(ValueError, match="no stress to train"):
        energy_forces_stress(model, normalizer, graph, forces=True, stress=True, training=True)
    evaluated = energy_forces_stress(model, normalizer, graph, forces=True, stress=True, training=False)
    assert evaluated["stress"].shape == (1, 3, 3) and bool(evaluated["stress"].isnan().all())
    with pytest.raises(ValueError, match="direct_forces"):
        build_model("painn", output="dipole", direct_forces=True)


def test_a_direct_force_potential_trains_and_fits_forces_without_the_energy_gradient(tmp_path):
    from atomgraph.evaluation.experiment import train_and_evaluate
    from atomgraph.training.config import load_config

    settings = [
        "data.dataset=lennard_jones", "data.targets=[energy]", "data.lennard_jones.count=120",
        "data.lennard_jones.min_distance=1.0", "data.graph.cutoff=4.0", "task.kind=potential",
        "model.name=painn", "model.hidden=16", "model.vector_hidden=8", "model.interactions=2",
        "model.num_rbf=8", "model.direct_forces=true", "training.epochs=6", "training.batch_size=16",
        "training.lr=0.005", "training.scheduler=none", "training.early_stopping_patience=0",
        "training.progress=false",
    ]  # fmt: skip
    run = train_and_evaluate(load_config(None, [f"run_dir={tmp_path / 'run'}", *settings]), progress=False)
    forces = json.loads((run / "metrics.json").read_text())["test"]["forces"]
    assert forces["model"]["mae"] < forces["mean_baseline"]["mae"]
    from atomgraph.runs import TrainedRun

    model = TrainedRun.load(run).module.model
    assert model.direct_forces  # the forces scored were the head's, not -dE/dx
    settings_property = [s for s in settings if s != "task.kind=potential"]
    with pytest.raises(ValueError, match=r"model\.direct_forces predicts forces"):
        train_and_evaluate(
            load_config(None, [f"run_dir={tmp_path / 'p'}", *settings_property]), progress=False
        )


# ----------------------------------------------------------------------------------- original DimeNet


def test_dimenet_bilinear_interaction_is_the_explicit_sum_and_has_pyg_size(float64):
    from atomgraph.models.dimenet import InteractionBlock

    torch.manual_seed(3)
    block = InteractionBlock(hidden=5, num_bilinear=3, num_spherical=2, num_radial=2, num_before_skip=0,
                             num_after_skip=0, act="silu")  # fmt: skip
    m, rbf, sbf = torch.randn(4, 5), torch.randn(4, 2), torch.randn(6, 4)
    idx_kj, idx_ji = torch.tensor([0, 1, 2, 3, 0, 2]), torch.tensor([1, 0, 3, 2, 2, 0])
    m_kj = torch.nn.functional.silu(block.lin_kj(m)) * block.lin_rbf(rbf)
    projected = block.lin_sbf(sbf)
    expected = torch.zeros(4, 5)
    for t in range(6):
        for i in range(5):
            expected[idx_ji[t], i] += sum(
                block.bilinear[i, b, k] * projected[t, b] * m_kj[idx_kj[t], k]
                for b in range(3)
                for k in range(5)
            )
    h = torch.nn.functional.silu(block.lin_ji(m)) + expected
    assert_close(block(m, rbf, sbf, idx_kj, idx_ji), torch.nn.functional.silu(block.lin(h)) + m, 1e-10)
    paper = build_model("dimenet", graph=SPEC, reductions=("sum",))  # 128 wide, 6 blocks, 8 bilinear
    # PyTorch Geometric's DimeNet at these settings has 2,100,070 parameters with 95 element embeddings;
    # atomgraph embeds 101 (max_z 100): 6 x 128 more
    assert sum(p.numel() for p in paper.parameters()) == 2_100_070 + 6 * 128
