"""Write tests/data/legacy_readouts.pt: tiny checkpoints in the readout words used before readouts
followed the TargetSpec (model arguments ``extensive``; CGCNN/MEGNet ``readout`` "mean" = pooled and
"per_atom" = mean of contributions; a node pool named ``readout`` in GCN/MPNN; SchNet ``readout:
set2set``), with their outputs on fixed graphs. Written once by the code of commit 1634f55::

    git archive 1634f55 src | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/src python tests/data/make_legacy_readouts.py

Re-run only on purpose. tests/test_target_readout.py loads every case through the legacy shim and
checks that the outputs have not changed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from ase.build import bulk
from torch_geometric.data import Batch

from atomgraph.graphs import bond_graph
from atomgraph.graphs.spec import GraphSpec
from atomgraph.training.module import AtomgraphModule

HERE = Path(__file__).parent
RADIUS = GraphSpec(kind="radius", cutoff=5.0, max_neighbors=12)
BOND = GraphSpec(kind="bond", cutoff=5.0)

#: case -> (graph kind, model arguments in the old words, target reductions)
CASES = {
    "cgcnn_per_target": (
        "radius",
        {"name": "cgcnn", "hidden": 8, "layers": 2, "fc_hidden": 8, "extensive": [True, False, False],
         "readout": ["auto", "per_atom", "mean"]},
        ["sum", "per_atom", "mean"],
    ),
    "cgcnn_per_atom": (
        "radius",
        {"name": "cgcnn", "hidden": 8, "layers": 1, "fc_hidden": 8, "extensive": [False],
         "readout": "per_atom"},
        ["per_atom"],
    ),
    "megnet_mean": (
        "radius",
        {"name": "megnet", "dim": 8, "hidden": [8, 8], "blocks": 1, "embedding_dim": 4, "num_rbf": 8,
         "set2set_steps": 2, "extensive": [False, False], "readout": "mean"},
        ["mean", "mean"],
    ),
    "schnet_auto": (
        "radius",
        {"name": "schnet", "hidden": 8, "filters": 8, "interactions": 2, "num_rbf": 8,
         "extensive": [True, False]},
        ["sum", "mean"],
    ),
    "schnet_set2set": (
        "radius",
        {"name": "schnet", "hidden": 8, "filters": 8, "interactions": 1, "num_rbf": 8, "extensive": [False],
         "readout": "set2set"},
        ["mean"],
    ),
    "painn_mean": (
        "radius",
        {"name": "painn", "hidden": 8, "interactions": 1, "num_rbf": 6, "extensive": [True, False],
         "readout": "mean"},
        ["sum", "mean"],
    ),
    "dimenet_auto": (
        "radius",
        {"name": "dimenet++", "hidden": 8, "out_emb": 8, "int_emb": 4, "basis_emb": 4, "blocks": 1,
         "num_spherical": 3, "num_radial": 4, "num_output_layers": 1, "extensive": [True, False]},
        ["sum", "mean"],
    ),
    "gcn_attention": (
        "bond",
        {"name": "gcn", "hidden": 8, "layers": 2, "extensive": [False, True], "readout": "attention"},
        ["mean", "sum"],
    ),
    "mpnn_sum": (
        "bond",
        {"name": "mpnn", "hidden": 8, "steps": 2, "set2set_steps": 2, "edge_hidden": 8, "extensive": [True],
         "readout": "sum"},
        ["sum"],
    ),
}  # fmt: skip


def graphs(kind: str) -> list:
    if kind == "bond":
        return [bond_graph(smiles) for smiles in ("CCO", "c1ccccc1O", "CC(=O)N")]
    cells = [bulk("Si", "diamond", a=5.43), bulk("NaCl", "rocksalt", a=5.64), bulk("Cu", "fcc", a=3.6)]
    for k, cell in enumerate(cells):
        cell.rattle(0.05, seed=k)
    return [RADIUS.build(cell) for cell in cells]


def main() -> None:
    torch.manual_seed(0)
    cases = {}
    for case, (kind, model, reductions) in CASES.items():
        data = graphs(kind)
        model = dict(model)
        if kind == "bond":
            model.update(atom_dim=int(data[0].x.shape[1]), edge_dim=int(data[0].edge_attr.shape[1]))
        targets = [{"name": f"t{k}", "unit": "eV", "reduction": r} for k, r in enumerate(reductions)]
        spec = RADIUS if kind == "radius" else BOND
        module = AtomgraphModule(model, targets, {"kind": "property"}, {}, graph=spec.to_dict())
        module.model.train()
        with torch.no_grad():  # batch-norm running statistics that are not the identity
            module.model(Batch.from_data_list(data))
        module.eval()
        with torch.no_grad():
            outputs = module.model(Batch.from_data_list(data))
        cases[case] = {
            "hyper_parameters": dict(module.hparams),
            "state_dict": module.state_dict(),
            "graphs": [{key: g[key] for key in g.keys()} for g in data],
            "outputs": outputs,
        }
    torch.save(cases, HERE / "legacy_readouts.pt")


if __name__ == "__main__":
    main()
