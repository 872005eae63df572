"""Write tests/data/frozen_schnet.pt (an export of a tiny SchNet with fixed weights) and the pinned
predictions beside it. Run once; re-run only on purpose, when a change of numbers is intended."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from atomgraph.graphs.spec import GraphSpec
from atomgraph.runs import TrainedRun
from atomgraph.structures import from_smiles
from atomgraph.training.module import AtomgraphModule

HERE = Path(__file__).parent

torch.manual_seed(0)
module = AtomgraphModule(
    model={
        "name": "schnet",
        "hidden": 8,
        "filters": 8,
        "interactions": 2,
        "num_rbf": 8,
        "extensive": [False],
    },
    targets=[{"name": "homo", "unit": "eV"}],
    task={"kind": "property"},
    training={},
    graph=GraphSpec(cutoff=4.0).to_dict(),
)
module.normalizer.fit(np.array([[-6.0], [-5.5], [-7.2]]), [np.array([6, 1]), np.array([8]), np.array([7, 7])])
module.eval()
run = TrainedRun(module, module.graph_spec, module.info, None, HERE / "frozen_schnet.pt")
run.export(HERE / "frozen_schnet.pt")
rows = []
for smiles in ("CCO", "c1ccccc1O", "CC(=O)N"):
    atoms = from_smiles(smiles, embed_3d=True)
    with torch.no_grad():
        value = module(run.build_graph(atoms)).double().numpy()[0]
    rows.append({"smiles": smiles, "numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
                 "prediction": value.tolist()})  # fmt: skip
(HERE / "frozen_schnet.json").write_text(json.dumps({"structures": rows}, indent=1))
