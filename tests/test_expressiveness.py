"""Expressiveness (seed 002): what message passing on a bond graph can and cannot tell apart.

* Decalin and bicyclopentyl (both C10H18) are different molecules that colour refinement (1-WL) cannot
  separate: every atom has the same neighbourhood tree in both. GCN and GraphSAGE on atom features without
  ring sizes (atomgraph's default atom features: ring *membership* only) therefore give them identical
  outputs, whatever their weights; a 3D model (SchNet on a conformer of each) separates them.
* Enantiomers: 2D chirality tags (the ``chirality`` block of the atom features) separate them; an
  E(3)-invariant 3D model cannot, because a mirror image is a reflection of the same geometry.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem
from torch_geometric.data import Batch

from atomgraph.graphs import radius_graph
from atomgraph.graphs.bond_graph import bond_graph
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models import build_model
from atomgraph.structures.smiles import from_smiles

DECALIN = "C1CCC2CCCCC2C1"
BICYCLOPENTYL = "C1CCC(C1)C1CCCC1"


def ring_sizes(smiles: str) -> list[int]:
    mol = Chem.MolFromSmiles(smiles)  # kept alive while its ring info is read
    return sorted(len(ring) for ring in mol.GetRingInfo().AtomRings())


def two_d_outputs(name: str, smiles: list[str], seed: int) -> torch.Tensor:
    graphs = [bond_graph(s, explicit_hydrogens=True) for s in smiles]
    torch.manual_seed(seed)
    model = build_model(name, atom_dim=graphs[0].x.shape[1], reductions=("sum", "mean")).double().eval()
    batch = Batch.from_data_list(graphs)
    batch.x = batch.x.double()
    with torch.no_grad():
        return model(batch)


@pytest.mark.parametrize("name", ["gcn", "graphsage"])
@pytest.mark.parametrize("seed", [0, 1])
def test_decalin_and_bicyclopentyl_look_the_same_to_bond_graph_message_passing(name, seed):
    assert ring_sizes(DECALIN) == [6, 6] and ring_sizes(BICYCLOPENTYL) == [5, 5]  # not the same molecule
    out = two_d_outputs(name, [DECALIN, BICYCLOPENTYL], seed)
    assert out.abs().max() > 1e-3  # a real, non-zero readout
    torch.testing.assert_close(out[0], out[1], rtol=1e-12, atol=1e-12)
    # ... while a molecule that is 1-WL-different (a 6- and a 5-ring fused: hydrindane) is told apart
    other = two_d_outputs(name, [DECALIN, "C1CCC2CCCC2C1"], seed)
    assert not torch.allclose(other[0], other[1])


def test_a_3d_model_separates_decalin_and_bicyclopentyl():
    spec = GraphSpec("radius", 5.0)
    torch.manual_seed(0)
    model = (
        build_model("schnet", graph=spec, hidden=16, filters=16, interactions=2, num_rbf=12).double().eval()
    )
    graphs = [
        radius_graph(from_smiles(s, embed_3d=True, seed=0), 5.0, dtype=torch.float64)
        for s in (DECALIN, BICYCLOPENTYL)
    ]
    with torch.no_grad():
        out = model(Batch.from_data_list(graphs))
    assert abs(float(out[0, 0] - out[1, 0])) > 1e-3 * float(out.abs().max())


def test_enantiomers_differ_by_their_2d_chirality_tags_but_not_to_an_invariant_3d_model():
    r_form, s_form = "F[C@H](Cl)Br", "F[C@@H](Cl)Br"
    graphs = [bond_graph(s, explicit_hydrogens=True) for s in (r_form, s_form)]
    assert not torch.equal(graphs[0].x, graphs[1].x)  # only the chirality block differs
    out = two_d_outputs("gcn", [r_form, s_form], seed=0)
    assert not torch.allclose(out[0], out[1])
    # 3D: the mirror image (x -> -x) of one enantiomer's conformer is the other enantiomer
    atoms = from_smiles(r_form, embed_3d=True, seed=0)
    mirrored = atoms.copy()
    mirrored.positions = atoms.positions * np.array([-1.0, 1.0, 1.0])
    mol = Chem.RWMol(atoms.info["rdkit_mol"])
    conformer = mol.GetConformer()
    for i, p in enumerate(mirrored.positions):
        conformer.SetAtomPosition(i, p.tolist())
    Chem.AssignStereochemistryFrom3D(mol)
    assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.MolToSmiles(Chem.MolFromSmiles(s_form))
    spec = GraphSpec("radius", 5.0)
    torch.manual_seed(0)
    model = (
        build_model("schnet", graph=spec, hidden=16, filters=16, interactions=2, num_rbf=12).double().eval()
    )
    with torch.no_grad():
        energies = [model(radius_graph(a, 5.0, dtype=torch.float64)) for a in (atoms, mirrored)]
    torch.testing.assert_close(energies[0], energies[1], rtol=1e-12, atol=1e-12)


def bent_chain(angle_deg: float, bond: float = 1.4):
    """Three carbons, two bonds of ``bond`` Å meeting at ``angle_deg`` at the middle atom."""
    from ase import Atoms

    half = np.radians(angle_deg) / 2
    return Atoms("C3", positions=[[-bond * np.sin(half), bond * np.cos(half), 0], [0, 0, 0],
                                  [bond * np.sin(half), bond * np.cos(half), 0]])  # fmt: skip


ANGULAR = {
    "painn": {"hidden": 16, "interactions": 2, "num_rbf": 8},
    "equivariant": {"hidden_irreps": "8x0e + 4x1o", "layers": 2, "num_basis": 6, "radial_hidden": 16},
    "dimenet++": {"hidden": 16, "out_emb": 16, "int_emb": 8, "basis_emb": 4, "blocks": 2, "num_spherical": 4,
                  "num_radial": 4, "num_output_layers": 1},
}  # fmt: skip


@pytest.mark.parametrize("name", ["schnet", *ANGULAR])
def test_pair_distances_within_the_cutoff_confuse_a_straight_and_a_bent_chain(name):
    """A straight and a bent (150°) three-atom chain have the same graph and the same edge lengths
    within a 2 Å cutoff (the ends are 2.8 and 2.7 Å apart): any model of pair distances (SchNet, at
    any depth) gives them the same output; the models that read directions (PaiNN, the equivariant
    model, DimeNet++'s angles) separate them."""
    spec = GraphSpec("radius", 2.0)
    arguments = ANGULAR.get(name, {"hidden": 16, "filters": 16, "interactions": 3, "num_rbf": 8})
    torch.manual_seed(0)
    model = build_model(name, graph=spec, **arguments).double().eval()
    graphs = [radius_graph(bent_chain(a), 2.0, dtype=torch.float64) for a in (180.0, 150.0)]
    assert [g.edge_index.shape[1] for g in graphs] == [4, 4]
    with torch.no_grad():
        out = model(Batch.from_data_list(graphs))
    if name == "schnet":
        torch.testing.assert_close(out[0], out[1], rtol=1e-12, atol=1e-12)
    else:
        assert abs(float(out[0, 0] - out[1, 0])) > 1e-6 * max(float(out.abs().max()), 1e-12)
