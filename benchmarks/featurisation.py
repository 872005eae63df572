"""Per-part timings of the prediction path: a bond graph from a SMILES, and one GCN layer.

* ``graph``: milliseconds a molecule to turn a SMILES of the screening library into the heavy-atom bond
  graph a GCN reads (``GraphSpec.graph_from_smiles`` where the code has it, else the older
  ``build(structure_from_smiles(...))``), the best of ``--passes`` passes over ``--molecules`` SMILES.
* ``graph_chunked``: the same, the SMILES handed over 1,024 at a time to ``GraphSpec.graphs_from_smiles``
  (prediction's path since it featurises a chunk together); absent where the code predates it.
* ``gcn_layer``: milliseconds for the forward and backward pass of one 128-wide GCN layer over a batch
  of 128 library molecules, atomgraph's (the adjacency normalised once, one sparse product) beside PyG's
  ``GCNConv`` with the same weights (median of 30 calls after 3 warm-up calls); only PyG's where the code
  predates the sparse layer.

Run it on two checkouts, alternating, to compare code before and after a change (the machine's speed
drifts by ~10 %; alternate and take medians):

    python benchmarks/featurisation.py --label after --out /tmp/after.json
    PYTHONPATH=OLD/src python benchmarks/featurisation.py --label before --out /tmp/before.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "runs" / "bench_screening" / "library_10000.csv"  # benchmarks/screening.py writes it


def graph_builder():
    """SMILES -> heavy-atom bond graph: ``GraphSpec.graph_from_smiles`` where the checkout has it, else
    the older ``build(structure_from_smiles(...))``."""
    from atomgraph.graphs.spec import preset

    spec = preset("bond_heavy_atoms")
    return getattr(spec, "graph_from_smiles", None) or (lambda s: spec.build(spec.structure_from_smiles(s)))


def graph_ms(smiles: list[str], passes: int, chunk: int | None = None) -> float | None:
    """Best milliseconds a molecule over ``passes`` passes: one by one, or ``chunk`` at a time through
    ``GraphSpec.graphs_from_smiles`` (None where the checkout has no such method)."""
    from atomgraph.graphs.spec import preset

    if chunk is None:
        build = graph_builder()
        run = lambda: [build(s) for s in smiles]  # noqa: E731
    else:
        many = getattr(preset("bond_heavy_atoms"), "graphs_from_smiles", None)
        if many is None:
            return None
        run = lambda: [many(smiles[k : k + chunk]) for k in range(0, len(smiles), chunk)]  # noqa: E731
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / len(smiles) * 1e3


def layer_ms(smiles: list[str]) -> dict:
    from torch_geometric.data import Batch
    from torch_geometric.nn import GCNConv

    from atomgraph.models import gcn

    build = graph_builder()
    batch = Batch.from_data_list([build(s) for s in smiles[:128]])
    torch.manual_seed(0)
    conv = GCNConv(128, 128)
    h = torch.randn(batch.num_nodes, 128, requires_grad=True)

    def median_ms(step) -> float:
        for _ in range(3):
            step()
        times = []
        for _ in range(30):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3

    out = {"pyg_gcnconv": median_ms(lambda: conv(h, batch.edge_index).sum().backward())}
    if hasattr(gcn, "normalised_adjacency"):

        def ours() -> None:
            adjacency = gcn.normalised_adjacency(batch.edge_index, batch.num_nodes, h.dtype)
            (torch.sparse.mm(adjacency, conv.lin(h)) + conv.bias).sum().backward()

        out["atomgraph"] = median_ms(ours)
    return out


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help="what this checkout is (before, after, a commit)")
    parser.add_argument("--molecules", type=int, default=2000)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not LIBRARY.exists():
        raise SystemExit(f"{LIBRARY} is missing: run benchmarks/screening.py once to write it")
    smiles = pd.read_csv(LIBRARY)["smiles"].astype(str).tolist()[: args.molecules]
    result = {
        "label": args.label,
        "threads": 1,
        "molecules": len(smiles),
        "graph_ms_per_molecule": round(graph_ms(smiles, args.passes), 4),
        "graph_chunked_ms_per_molecule": _rounded(graph_ms(smiles, args.passes, chunk=1024)),
        "gcn_layer_forward_backward_ms": {k: round(v, 3) for k, v in layer_ms(smiles).items()},
    }
    args.out.write_text(json.dumps(result, indent=2))
    print(result)


if __name__ == "__main__":
    main()
