"""The model contract: every registered model, built small in float64, keeps the promises of its card.

In the spirit of NequIP's reusable model tests, one class runs the same checks on every model of the
registry (aliases are tested once, under the first of their names):

* permutation invariance (atoms renumbered, graph rebuilt), batching equals one graph at a time, finite
  outputs for an isolated atom, and a depth argument that really adds depth;
* positions: a model that reads them (card ``reads_positions`` or ``"pos"`` in ``inputs``) is invariant
  to rotations and translations (the structure moved, the graph rebuilt) and not to a non-rigid change;
  a model that does not read them gives the same outputs whatever the positions are;
* potentials (``card.potential``): forces -dE/dpos and stress by autograd equal central finite
  differences on a molecule and a periodic cell;
* radius-graph models: the outputs are continuous when a pair crosses the cutoff if the card says
  ``smooth``, and visibly jump if it does not (the card is honest);
* the card itself: its graph kind is that of its preset, a model that does not read positions is no
  potential, a potential's default graph has no neighbour cap.

A newly registered model fails :func:`test_every_registered_model_joins_the_contract` until it has an
entry in :data:`SMALL`. :func:`test_the_contract_catches_broken_models` runs each check on a model built
to break it, so every check can fail.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list
from conftest import random_molecule
from rdkit import Chem
from rdkit.Geometry import Point3D
from scipy.spatial.transform import Rotation
from torch import nn
from torch_geometric.data import Batch, Data

from atomgraph.data.normalization import TargetNormalizer
from atomgraph.graphs import bond_graph
from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.geometry import apply_strain, edge_lengths, edge_vectors
from atomgraph.graphs.spec import GraphSpec, preset
from atomgraph.models import available_models, build_model, model_card, model_class
from atomgraph.outputs.potential import cast_graph, energy_forces_stress
from atomgraph.structures import from_smiles, mol_to_atoms

CUTOFF = 3.0
RADIUS = GraphSpec("radius", CUTOFF)  # no neighbour cap: what a potential needs
BOND = preset("bond")  # the graph the bond models are built for (their card's preset)
REDUCTIONS = ("sum", "mean")  # two outputs: an energy-like sum and an intensive mean
DTYPE = torch.float64
_PROBE = bond_graph("CO")
ATOM_DIM, EDGE_DIM = _PROBE.x.shape[1], _PROBE.edge_attr.shape[1]
BOND_DIMS = {"atom_dim": ATOM_DIM, "edge_dim": EDGE_DIM}

#: Small constructor arguments of every registered model (one entry per class, under the first of its
#: names), with depth 2. A model registered without an entry here fails the contract.
SMALL: dict[str, dict] = {
    "affinity_cross_attention": {"hidden": 8, "layers": 2, "attention_layers": 1, "heads": 2, "num_rbf": 4},
    "affinity_joint": {"hidden": 8, "layers": 2, "type_dim": 4, "num_rbf": 4},
    "affinity_late_fusion": {"hidden": 8, "layers": 2, "num_rbf": 4},
    "affinity_ligand_only": {"hidden": 8, "layers": 2, "num_rbf": 4},
    "affinity_sequence": {
        "hidden": 8, "layers": 2, "embed_dim": 8, "filters": 4, "kernel_size": 3, "conv_layers": 1,
    },
    "cgcnn": {"hidden": 8, "layers": 2, "fc_hidden": 8},
    "dimenet++": {
        "hidden": 8, "out_emb": 8, "int_emb": 4, "basis_emb": 4, "blocks": 2, "num_spherical": 3,
        "num_radial": 4, "num_output_layers": 1,
    },
    "dimenet": {
        "hidden": 8, "num_bilinear": 2, "blocks": 2, "num_spherical": 3, "num_radial": 4,
        "num_output_layers": 1,
    },
    "equivariant": {
        "hidden_irreps": "4x0e + 2x1o", "layers": 2, "num_basis": 4, "radial_hidden": 8,
        "avg_num_neighbors": 4.0,
    },
    "mace": {
        "channels": 4, "layers": 2, "sh_lmax": 2, "correlation": 3, "num_basis": 4, "radial_hidden": [8],
        "readout_hidden": 4, "avg_num_neighbors": 4.0,
    },
    "gat": {**BOND_DIMS, "hidden": 8, "layers": 2, "heads": 2},
    "gatv2": {**BOND_DIMS, "hidden": 8, "layers": 2, "heads": 2},
    "gat_practical": {"atom_dim": BOND_DIMS["atom_dim"], "hidden": 8, "layers": 2, "heads": 2},
    "gcn": {**BOND_DIMS, "hidden": 8, "layers": 2},
    "graphsage": {**BOND_DIMS, "hidden": 8, "layers": 2},
    "megnet": {"dim": 8, "hidden": (8, 8), "blocks": 2, "embedding_dim": 4, "num_rbf": 8, "set2set_steps": 2},
    "mpnn": {
        **BOND_DIMS, "hidden": 8, "steps": 2, "set2set_steps": 2, "edge_hidden": 8, "distance": "rbf",
        "num_rbf": 4,
    },
    "painn": {"hidden": 8, "interactions": 2, "num_rbf": 6},
    "schnet": {"hidden": 8, "filters": 8, "interactions": 2, "num_rbf": 8},
    "simple_gnn": {"dim": 8, "num_rbf": 8, "layers": 2},
}  # fmt: skip

#: Models whose depth repeats shared weights (Gilmer's MPNN ties its edge network and GRU over all
#: steps): depth changes their outputs, not their number of parameters.
WEIGHT_TIED = {"mpnn"}

CHECKS = ("permutation", "positions", "batching", "isolated_atom", "depth", "forces", "smoothness", "card")
#: (check, model) -> why a registered model breaks the contract (run as strict xfail).
VIOLATIONS: dict[tuple[str, str], str] = {}


def contract_names() -> list[str]:
    """Every registered model, one name per class (the first in sorted order)."""
    first: dict[type, str] = {}
    for name in available_models():
        first.setdefault(model_class(name), name)
    return sorted(first.values())


NAMES = contract_names()


def cases(check: str, names=None) -> list:
    """``names`` as pytest params, the known violations of ``check`` marked strict xfail."""
    out = []
    for name in NAMES if names is None else names:
        reason = VIOLATIONS.get((check, name))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def reads_positions(name: str) -> bool:
    card = model_card(name)
    return card.reads_positions or "pos" in card.inputs


POTENTIALS = [n for n in NAMES if model_card(n).potential]
RADIUS_MODELS = [n for n in NAMES if model_card(n).graph_kind == "radius"]


@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(DTYPE)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build(name: str, depth: int | None = None) -> nn.Module:
    """The small float64 model ``name`` in eval mode (default depth: SMALL's), built once."""
    kwargs = SMALL[name]
    return _build(name, kwargs[model_card(name).depth_arg] if depth is None else depth)


@functools.cache
def _build(name: str, depth: int) -> nn.Module:
    card = model_card(name)
    kwargs = {**SMALL[name], card.depth_arg: depth}
    previous = torch.get_default_dtype()
    torch.set_default_dtype(DTYPE)
    try:
        torch.manual_seed(0)
        graph = RADIUS if card.graph_kind == "radius" else None
        return build_model(name, graph=graph, reductions=REDUCTIONS, **kwargs).eval()
    finally:
        torch.set_default_dtype(previous)


# ------------------------------------------------------------------------------ structures per kind


def rigid_motion(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return Rotation.random(random_state=seed).as_matrix(), np.random.default_rng(seed).normal(0.0, 4.0, 3)


def a_permutation(n: int, rng: np.random.Generator) -> np.ndarray:
    while True:
        perm = rng.permutation(n)
        if n < 2 or (perm != np.arange(n)).any():
            return perm


def molecule(seed: int) -> Atoms:
    return random_molecule(np.random.default_rng(seed), 4, 6)


def crystal(seed: int, n_atoms: int = 3) -> Atoms:
    """A random triclinic cell (lattice vectors ~3.3 Å, about the cutoff), atoms >= 1.3 Å apart."""
    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(3.1, 3.5, 3)) + rng.uniform(-0.3, 0.3, (3, 3)) * (1 - np.eye(3))
    while True:
        atoms = Atoms(
            numbers=rng.choice([1, 6, 8], n_atoms),
            scaled_positions=rng.random((n_atoms, 3)),
            cell=cell,
            pbc=True,
        )
        if len(neighbor_list("d", atoms, 1.3)) == 0:
            return atoms


def moved_mol(mol: Chem.Mol, rotation: np.ndarray, shift: np.ndarray) -> Chem.Mol:
    out = Chem.Mol(mol)
    conf = out.GetConformer()
    for i, p in enumerate(conf.GetPositions() @ rotation.T + shift):
        conf.SetAtomPosition(i, Point3D(*map(float, p)))
    return out


def renumbered(mol: Chem.Mol, rng: np.random.Generator) -> Chem.Mol:
    return Chem.RenumberAtoms(mol, [int(i) for i in a_permutation(mol.GetNumAtoms(), rng)])


class RadiusKind:
    """ase.Atoms, molecules and a periodic cell, on a radius graph without neighbour cap."""

    def structures(self) -> list:
        return [molecule(1), crystal(2), molecule(3)]

    def graph(self, atoms: Atoms) -> Data:
        return RADIUS.build(atoms)

    def permuted(self, atoms: Atoms, rng: np.random.Generator) -> Atoms:
        return atoms[a_permutation(len(atoms), rng)]

    def moved(self, atoms: Atoms, seed: int) -> Atoms:
        rotation, shift = rigid_motion(seed)
        out = atoms.copy()
        out.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
        out.positions = atoms.positions @ rotation.T + shift
        return out

    def isolated(self) -> list[Atoms]:
        """A molecule and one atom 30 Å away from it (no neighbour within the cutoff), a lone atom."""
        return [
            molecule(4) + Atoms("O", positions=[[30.0, 30.0, 30.0]]),
            Atoms("C", positions=[[1.0, 2.0, 3.0]]),
        ]


@functools.cache
def embedded(smiles: str) -> Atoms:
    return from_smiles(smiles, embed_3d=True)


class BondKind:
    """Embedded molecules from SMILES (RDKit molecule in ``info``), on the chemical graph."""

    def structures(self) -> list:
        return [embedded(s) for s in ("CCO", "CC(=O)N", "c1ccoc1")]

    def graph(self, atoms: Atoms) -> Data:
        return BOND.build(atoms)

    def permuted(self, atoms: Atoms, rng: np.random.Generator) -> Atoms:
        return mol_to_atoms(renumbered(atoms.info["rdkit_mol"], rng), "permuted")

    def moved(self, atoms: Atoms, seed: int) -> Atoms:
        return mol_to_atoms(moved_mol(atoms.info["rdkit_mol"], *rigid_motion(seed)), "moved")

    def isolated(self) -> list[Atoms]:
        """Ethanol and a sodium ion (a node without bonds), a lone sodium ion."""
        return [embedded("CCO.[Na+]"), embedded("[Na+]")]


@functools.cache
def peptide_and_ring(sequence: str, seed: int):
    from atomgraph.apps.complexes.synthetic import peptide

    return peptide(sequence, seed=seed)


@functools.cache
def ligand(sequence: str, seed: int, smiles: str) -> Chem.Mol:
    from atomgraph.apps.complexes.synthetic import ligand_over_ring, molecule, set_positions

    protein = peptide_and_ring(sequence, seed)
    if smiles == "[Cl-]":  # one atom where the benzoate's first ring atom sits
        ring = ligand_over_ring(protein, "c1ccccc1C(=O)[O-]").GetConformer().GetPositions()
        return set_positions(molecule(smiles), ring[:1])
    return ligand_over_ring(protein, smiles)


class ComplexKind:
    """(protein, ligand) pairs: synthetic peptides with a ligand stacked on their Phe ring."""

    def structures(self) -> list:
        pairs = [("KFA", 0, "c1ccccc1C(=O)[O-]"), ("GFA", 2, "Cc1ccccc1"), ("KFA", 0, "Oc1ccccc1")]
        return [(peptide_and_ring(s, seed), ligand(s, seed, smi)) for s, seed, smi in pairs]

    def graph(self, pair) -> Data:
        from atomgraph.apps.complexes.complex import make_complex
        from atomgraph.apps.complexes.graph import complex_graph

        protein, mol = pair
        return complex_graph(make_complex(protein, mol, name="contract"), y=[math.nan])

    def permuted(self, pair, rng: np.random.Generator):
        protein, mol = pair
        return protein.subset(a_permutation(len(protein), rng)), renumbered(mol, rng)

    def moved(self, pair, seed: int):
        from atomgraph.apps.complexes.synthetic import set_positions

        protein, mol = pair
        rotation, shift = rigid_motion(seed)
        return (
            protein.with_positions(protein.positions @ rotation.T + shift),
            set_positions(mol, mol.GetConformer().GetPositions() @ rotation.T + shift),
        )

    def isolated(self) -> list:
        """A one-atom ligand (a chloride over the ring): a ligand graph without bonds."""
        return [(peptide_and_ring("KFA", 0), ligand("KFA", 0, "[Cl-]"))]


class SequenceKind:
    """(SMILES, protein sequence) pairs: the ligand's chemical graph (no geometry) and the sequence."""

    def structures(self) -> list:
        return [("CC(=O)Nc1ccc(O)cc1", "MKTAYIAKQR"), ("c1ccccc1C(=O)[O-]", "KFA"), ("CCO", "GGSGG")]

    def graph(self, pair) -> Data:
        from atomgraph.apps.complexes.sequence import sequence_graph

        return sequence_graph(pair[0], pair[1], [math.nan], max_length=32)

    def permuted(self, pair, rng: np.random.Generator):
        mol = renumbered(Chem.MolFromSmiles(pair[0]), rng)
        return Chem.MolToSmiles(mol, canonical=False), pair[1]

    def moved(self, pair, seed: int):
        raise AssertionError("sequence samples have no geometry to move")

    def isolated(self) -> list:
        """A one-atom ligand, and ethanol with a sodium ion (a node without bonds)."""
        return [("[Cl-]", "KFA"), ("CCO.[Na+]", "GGSGG")]


KINDS = {"radius": RadiusKind(), "bond": BondKind(), "complex": ComplexKind(), "sequence": SequenceKind()}


def kind_of(name: str):
    return KINDS[model_card(name).graph_kind]


# ------------------------------------------------------------------------------------------ checks


def graph_of(kind, structure) -> Data:
    return cast_graph(kind.graph(structure), DTYPE)


def run(model: nn.Module, graphs: list[Data]) -> torch.Tensor:
    with torch.no_grad():
        return model(Batch.from_data_list(graphs))


def assert_same(actual: torch.Tensor, expected: torch.Tensor, what: str, rel: float = 1e-9) -> None:
    """Equal up to ``rel`` times the largest entry of ``expected`` (at least 1)."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale = max(float(expected.abs().max()), 1.0)
    torch.testing.assert_close(actual, expected, rtol=0.0, atol=rel * scale, msg=lambda m: f"{what}: {m}")


def check_permutation(model: nn.Module, kind, structures: list) -> None:
    rng = np.random.default_rng(0)
    for structure in structures:
        expected = run(model, [graph_of(kind, structure)])
        permuted = run(model, [graph_of(kind, kind.permuted(structure, rng))])
        assert_same(permuted, expected, "atoms renumbered")


def check_rigid_motion(model: nn.Module, kind, structures: list) -> None:
    for seed, structure in enumerate(structures):
        expected = run(model, [graph_of(kind, structure)])
        moved = run(model, [graph_of(kind, kind.moved(structure, seed))])
        assert_same(moved, expected, "rotated and translated")


def position_fields(graph: Data) -> list[str]:
    return [key for key in ("pos", "res_pos") if key in graph]


def check_positions_matter(model: nn.Module, kind, structures: list) -> None:
    """A non-rigid change of the positions (the graph kept) changes the outputs."""
    for structure in structures:
        graph = graph_of(kind, structure)
        stretched = copy.copy(graph)
        for key in position_fields(graph):
            stretched[key] = graph[key] * torch.tensor([1.15, 0.9, 1.0])
        before, after = run(model, [graph]), run(model, [stretched])
        change = float((after - before).abs().max()) / max(float(before.abs().max()), 1.0)
        assert change > 1e-8, f"the outputs ignore a stretch of the positions (relative change {change:.3g})"


def check_ignores_positions(model: nn.Module, kind, structures: list) -> None:
    """Random positions (the graph kept) give the same outputs."""
    generator = torch.Generator().manual_seed(0)
    for structure in structures:
        graph = graph_of(kind, structure)
        scrambled = copy.copy(graph)
        for key in position_fields(graph):
            scrambled[key] = 5.0 * torch.randn(graph[key].shape, generator=generator, dtype=graph[key].dtype)
        assert_same(run(model, [scrambled]), run(model, [graph]), "positions scrambled", rel=1e-12)


def check_batching(model: nn.Module, kind, structures: list) -> None:
    graphs = [graph_of(kind, s) for s in structures]
    batched = run(model, graphs)
    assert batched.shape == (len(graphs), len(REDUCTIONS)), f"outputs {tuple(batched.shape)}, expected [B, T]"
    single = torch.cat([run(model, [g]) for g in graphs])
    assert not torch.allclose(single[0], single[1]), "the structures should give different outputs"
    assert_same(batched, single, "batch vs one by one")


def check_isolated_atom(model: nn.Module, kind, potential: bool) -> None:
    """Finite outputs for each of ``kind.isolated()`` alone and batched; a potential's forces are finite
    and zero on the isolated atom (the last of the first structure, a radius graph)."""
    graphs = [graph_of(kind, s) for s in kind.isolated()]
    for graph in graphs:
        out = run(model, [graph])
        assert out.shape == (1, len(REDUCTIONS)) and bool(torch.isfinite(out).all()), f"isolated atom: {out}"
    assert bool(torch.isfinite(run(model, graphs)).all()), "isolated atoms in a batch: outputs not finite"
    if potential:
        graph = graphs[0]  # the far atom (the last) has no neighbour: zero force, and every force is finite
        _, forces = energy_and_forces(model, graph)
        assert bool(torch.isfinite(forces).all()), "isolated atom: forces not finite"
        assert float(forces[-1].abs().max()) == 0.0, f"isolated atom feels a force {forces[-1]}"


def energy_and_forces(model: nn.Module, graph: Data) -> tuple[torch.Tensor, torch.Tensor]:
    graph = copy.copy(graph)
    graph.pos = graph.pos.detach().clone().requires_grad_(True)
    energy = model(graph)[:, 0]
    (grad,) = torch.autograd.grad(energy.sum(), graph.pos)
    return energy.detach(), -grad


def energy(model: nn.Module, graph: Data, pos=None, cell=None) -> float:
    graph = copy.copy(graph)
    if pos is not None:
        graph.pos = pos
    if cell is not None:
        graph.cell = cell
    with torch.no_grad():
        return float(model(graph)[:, 0].sum())


def check_forces(model: nn.Module, atoms: Atoms, h: float = 1e-5) -> None:
    """Forces (and for a cell the stress) by autograd equal central finite differences."""
    graph = graph_of(KINDS["radius"], atoms)
    normalizer = TargetNormalizer([r == "sum" for r in REDUCTIONS])
    periodic = bool(atoms.pbc.all())
    batch = Batch.from_data_list([graph])
    out = energy_forces_stress(model, normalizer, batch, stress=periodic, training=False)
    forces = out["forces"].detach()
    assert float(forces.abs().max()) > 1e-6, "forces are all zero"
    for atom in range(len(atoms)):
        for axis in range(3):
            step = torch.zeros_like(graph.pos)
            step[atom, axis] = h
            plus, minus = energy(model, graph, graph.pos + step), energy(model, graph, graph.pos - step)
            numeric = (plus - minus) / (2 * h)
            assert -float(forces[atom, axis]) == pytest.approx(numeric, rel=1e-6, abs=1e-9), (atom, axis)
    if periodic:
        assert float(out["stress"].abs().max()) > 1e-8, "stress is zero"
        volume = abs(float(np.linalg.det(atoms.cell.array)))
        for row, col in ((0, 0), (1, 2), (2, 1)):
            strain = torch.zeros(1, 3, 3)
            strain[0, row, col] = h
            plus, minus = apply_strain(graph, strain), apply_strain(graph, -strain)
            numeric = (energy(model, graph, *plus) - energy(model, graph, *minus)) / (2 * h * volume)
            assert float(out["stress"][0, row, col]) == pytest.approx(numeric, rel=1e-6, abs=1e-9), (row, col)


def across_the_cutoff(distance: float) -> Atoms:
    """Two pairs, C-H and O-H, 1.1 Å each; the C and the O ``distance`` apart, every other pair > cutoff.

    Moving the O along x changes the C-O distance to first order and its H's distance to second order.
    """
    positions = [[0.0, 0.0, 0.0], [-1.1, 0.0, 0.0], [distance, 0.0, 0.0], [distance, 1.1, 0.0]]
    return Atoms("CHOH", positions=positions)


def cutoff_jump(model: nn.Module, delta: float = 1e-4) -> float:
    """The largest change of the outputs when the C-O pair crosses the cutoff (from cutoff - delta to
    cutoff + delta), relative to the largest output (at least 1)."""
    inside, outside = (graph_of(KINDS["radius"], across_the_cutoff(CUTOFF + s)) for s in (-delta, delta))
    assert inside.num_edges == outside.num_edges + 2, "the C-O pair should cross the graph's cutoff"
    before, after = run(model, [inside]), run(model, [outside])
    return float((after - before).abs().max()) / max(float(before.abs().max()), 1.0)


#: Relative jump allowed at the cutoff: a C^1 envelope (cosine cutoff) moved 1e-4 Å from the cutoff
#: keeps ~(pi * 1e-4 / cutoff)^2 / 4 ~ 3e-9 of an edge's term; a hard cutoff drops the whole term.
SMOOTH_TOL = 1e-7


# -------------------------------------------------------------------------------------- the contract


def test_every_registered_model_joins_the_contract():
    """Each registered class has exactly one SMALL entry, under one of its registered names."""
    classes: dict[type, list[str]] = {}
    for name in available_models():
        classes.setdefault(model_class(name), []).append(name)
    for cls, names in classes.items():
        entries = [n for n in names if n in SMALL]
        assert len(entries) == 1, f"{cls.__name__} ({names}): add one entry to SMALL in {__file__}"
    unknown = sorted(set(SMALL) - set(available_models()))
    assert not unknown, f"SMALL names unregistered models {unknown}"
    assert set(NAMES) == set(SMALL), "the contract runs under the first name of each class"
    assert WEIGHT_TIED <= set(SMALL)
    assert all(check in CHECKS and name in SMALL for check, name in VIOLATIONS), sorted(VIOLATIONS)


class TestModelContract:
    """The same checks for every registered model (see the module docstring)."""

    @pytest.mark.parametrize("name", cases("permutation"))
    def test_permutation_invariance(self, name):
        kind = kind_of(name)
        check_permutation(build(name), kind, kind.structures()[:2])

    @pytest.mark.parametrize("name", cases("positions"))
    def test_positions(self, name):
        model, kind = build(name), kind_of(name)
        structures = kind.structures()[:2]
        if reads_positions(name):
            check_rigid_motion(model, kind, structures)
            check_positions_matter(model, kind, structures)
        else:
            check_ignores_positions(model, kind, structures)

    @pytest.mark.parametrize("name", cases("batching"))
    def test_batch_equals_one_by_one(self, name):
        kind = kind_of(name)
        check_batching(build(name), kind, kind.structures())

    @pytest.mark.parametrize("name", cases("isolated_atom"))
    def test_isolated_atom(self, name):
        check_isolated_atom(build(name), kind_of(name), model_card(name).potential)

    @pytest.mark.parametrize("name", cases("depth"))
    def test_depth_argument(self, name):
        card = model_card(name)
        assert card.depth_arg in inspect.signature(model_class(name)).parameters
        shallow, deep = build(name, depth=1), build(name, depth=2)
        count = [sum(p.numel() for p in m.parameters()) for m in (shallow, deep)]
        if name in WEIGHT_TIED:  # the same weights, used once more: the same parameters, other outputs
            assert count[0] == count[1], count
            graph = graph_of(kind_of(name), kind_of(name).structures()[0])
            assert not torch.allclose(run(shallow, [graph]), run(deep, [graph]))
        else:
            assert count[0] < count[1], f"{card.depth_arg}=1 and 2 give {count} parameters"

    @pytest.mark.parametrize("structure", ["molecule", "crystal"])
    @pytest.mark.parametrize("name", cases("forces", POTENTIALS))
    def test_forces_match_finite_differences(self, name, structure):
        check_forces(build(name), molecule(5) if structure == "molecule" else crystal(6))

    @pytest.mark.parametrize("name", cases("smoothness", RADIUS_MODELS))
    def test_smooth_at_the_cutoff(self, name):
        jump = cutoff_jump(build(name))
        if model_card(name).smooth:
            assert jump < SMOOTH_TOL, f"the outputs jump by {jump:.3g} (relative) at the cutoff"
        else:  # the card is honest: a model said not to be smooth shows the jump
            assert jump > SMOOTH_TOL, f"continuous at the cutoff ({jump:.3g}), but its card says smooth=False"

    @pytest.mark.parametrize("name", cases("card"))
    def test_card_is_consistent(self, name):
        card = model_card(name)
        assert preset(card.default_graph).kind == card.graph_kind
        if not card.reads_positions:
            assert not card.potential
        else:
            assert "pos" in card.inputs
        default = preset(card.default_graph)
        if card.potential:
            card.check_potential(default, name)  # its default graph can serve a potential
        else:
            with pytest.raises(ValueError, match=r"cannot be a potential|neighbour cap"):
                card.check_potential(default, name)
        other = GraphSpec("bond") if card.graph_kind != "bond" else GraphSpec("radius")
        with pytest.raises(ValueError, match=f"reads {card.graph_kind} graphs"):
            build_model(name, graph=other, reductions=REDUCTIONS, **SMALL[name])


# ------------------------------------------------------------------ the contract can fail: mutants


def per_graph_sum(values: torch.Tensor, graph: Data) -> torch.Tensor:
    batch, num_graphs = batch_vector(graph)
    return values.new_zeros(num_graphs).index_add_(0, batch, values)


class Mutant(nn.Module):
    """An unregistered radius model [B, 2]: z plus (with ``geometry``) a smooth invariant pair term,
    and one ``flaw``."""

    def __init__(self, geometry: bool = True, flaw: str | None = None):
        super().__init__()
        self.geometry, self.flaw = geometry, flaw
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, graph: Data) -> torch.Tensor:
        lengths = edge_lengths(edge_vectors(graph))
        target = graph.edge_index[1]

        def per_atom(values: torch.Tensor) -> torch.Tensor:  # summed over each atom's edges
            return graph.pos.new_zeros(graph.num_nodes).index_add_(0, target, values)

        atomic = graph.z.to(graph.pos.dtype)
        if self.geometry:
            atomic = atomic + per_atom(torch.exp(-lengths) * (1 - lengths / CUTOFF) ** 2)
        if self.flaw == "raw_coordinates":
            atomic = atomic + graph.pos.sum(-1)
        elif self.flaw == "atom_index":
            atomic = atomic * torch.arange(1, graph.num_nodes + 1, dtype=atomic.dtype)
        elif self.flaw == "whole_batch_mean":
            atomic = atomic + atomic.mean()
        elif self.flaw == "divides_by_degree":
            atomic = atomic + per_atom(lengths) / torch.bincount(target, minlength=graph.num_nodes)
        elif self.flaw == "detached_forces":
            atomic = atomic + per_atom(lengths.detach() ** 2)
        elif self.flaw == "hard_cutoff":
            atomic = atomic + per_atom(torch.exp(-lengths))
        energy = self.scale * per_graph_sum(atomic, graph)
        return torch.stack([energy, energy / graph.natoms.to(energy.dtype)], dim=-1)


def check_smooth(model: nn.Module) -> None:
    jump = cutoff_jump(model)
    assert jump < SMOOTH_TOL, f"the outputs jump by {jump:.3g} (relative) at the cutoff"


RADIUS_KIND = KINDS["radius"]
#: check -> (the check, a sound model that passes it, a model with one flaw that it must catch)
MUTANTS = {
    "rigid_motion": (
        lambda m: check_rigid_motion(m, RADIUS_KIND, RADIUS_KIND.structures()[:2]),
        {},
        {"flaw": "raw_coordinates"},
    ),
    "positions_matter": (
        lambda m: check_positions_matter(m, RADIUS_KIND, [molecule(1)]),
        {},
        {"geometry": False},
    ),
    "ignores_positions": (
        lambda m: check_ignores_positions(m, RADIUS_KIND, [molecule(1)]),
        {"geometry": False},
        {"geometry": False, "flaw": "raw_coordinates"},
    ),
    "permutation": (lambda m: check_permutation(m, RADIUS_KIND, [molecule(1)]), {}, {"flaw": "atom_index"}),
    "batching": (
        lambda m: check_batching(m, RADIUS_KIND, RADIUS_KIND.structures()),
        {},
        {"flaw": "whole_batch_mean"},
    ),
    "isolated_atom": (
        lambda m: check_isolated_atom(m, RADIUS_KIND, potential=True),
        {},
        {"flaw": "divides_by_degree"},
    ),
    "forces": (lambda m: check_forces(m, molecule(5)), {}, {"flaw": "detached_forces"}),
    "smoothness": (check_smooth, {}, {"flaw": "hard_cutoff"}),
}


@pytest.mark.parametrize("check", sorted(MUTANTS))
def test_the_contract_catches_broken_models(check):
    """Each check passes a sound model and fails the same model with one flaw."""
    run_check, sound, flawed = MUTANTS[check]
    run_check(Mutant(**sound))
    with pytest.raises(AssertionError):
        run_check(Mutant(**flawed))


def test_the_contract_catches_a_model_reading_raw_coordinates():
    """The sum of the coordinates is neither rotation nor translation invariant."""

    class SumOfPositions(nn.Module):
        def forward(self, graph: Data) -> torch.Tensor:
            total = per_graph_sum(graph.pos.sum(-1), graph)
            return torch.stack([total, total], dim=-1)

    with pytest.raises(AssertionError, match="rotated and translated"):
        check_rigid_motion(SumOfPositions(), RADIUS_KIND, [molecule(1)])
