"""CGCNN's convolution, per edge as written in the paper against atom blocks applied per atom.

The edge pre-activation ``[h_i ‖ h_j ‖ e_ij] W + b`` is computed two ways with the same weights: the
concatenation per edge (:meth:`CGCNNConv.reference_pre_activation`) and ``(h W_i)_i + (h W_j)_j + e_ij W_e
+ b`` (:meth:`CGCNNConv.pre_activation`, what the model uses). Timed: a forward + backward training
step of CGCNN (64 / 3 layers / fc 128) on batches of 64 Materials Project crystals (12 nearest within
8 Å), the two forms and SchNet (64/64/3, the cheapest crystal model of ``mp_crystals.py``) interleaved
over ``--repeats`` rounds on the same batches, one thread.

    python benchmarks/cgcnn_conv.py --threads 1

Writes ``benchmarks/results/cgcnn_conv.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch_geometric.loader import DataLoader

from atomgraph.apps.crystals.dataset import load_crystals
from atomgraph.graphs.spec import preset
from atomgraph.models import build_model
from atomgraph.models.cgcnn import CGCNNConv

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "mp_crystals"
CGCNN = {"hidden": 64, "layers": 3, "fc_hidden": 128}
SCHNET = {"hidden": 64, "filters": 64, "interactions": 3, "num_rbf": 50}


def step_ms(model, batches, steps: int) -> float:
    """Milliseconds per forward + backward on ``steps`` of the batches."""
    start = time.perf_counter()
    for batch in batches[:steps]:
        model.zero_grad()
        model(batch).sum().backward()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--subset", type=int, default=2000, help="crystals sampled (seeded)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "results" / "cgcnn_conv.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = preset("cgcnn_crystal")
    dataset = load_crystals(args.data, spec, subset=args.subset, workers=1, progress=False)
    loader = DataLoader(dataset, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    batches = [batch for _, batch in zip(range(args.steps), loader, strict=False)]
    torch.manual_seed(0)
    cgcnn = build_model("cgcnn", spec, **CGCNN, reductions=["mean"])
    schnet = build_model("schnet", spec, **SCHNET, reductions=["mean"])
    with torch.no_grad():  # the two forms agree
        conv, batch = cgcnn.convs[0], batches[0]
        h = torch.randn(batch.num_nodes, CGCNN["hidden"])
        e = torch.randn(batch.edge_index.shape[1], conv.linear.in_features - 2 * CGCNN["hidden"])
        difference = (
            (
                conv.pre_activation(h, e, batch.edge_index)
                - conv.reference_pre_activation(h, e, batch.edge_index)
            )
            .abs()
            .max()
        )
    per_atom = CGCNNConv.pre_activation
    forms = {"per_edge": CGCNNConv.reference_pre_activation, "per_atom": per_atom}
    times: dict[str, list[float]] = {"cgcnn_per_edge": [], "cgcnn_per_atom": [], "schnet": []}
    for _ in range(args.repeats):
        for name, form in forms.items():
            CGCNNConv.pre_activation = form
            times[f"cgcnn_{name}"].append(step_ms(cgcnn, batches, args.steps))
        CGCNNConv.pre_activation = per_atom
        times["schnet"].append(step_ms(schnet, batches, args.steps))
    median = {name: statistics.median(values) for name, values in times.items()}
    results = {
        "benchmark": "cgcnn_conv",
        "settings": vars(args)
        | {"batch_size": 64, "cgcnn": CGCNN, "schnet": SCHNET, "graph": spec.to_dict()},
        "hardware": {"cpu": platform.processor() or platform.machine(), "torch_threads": args.threads},
        "parameters": {
            "cgcnn": sum(p.numel() for p in cgcnn.parameters()),
            "schnet": sum(p.numel() for p in schnet.parameters()),
        },
        "atoms_per_batch": statistics.mean(b.num_nodes for b in batches),
        "edges_per_batch": statistics.mean(b.edge_index.shape[1] for b in batches),
        "max_abs_difference_of_the_forms": float(difference),
        "step_ms": times,
        "step_ms_median": median,
        "speedup_per_atom_vs_per_edge": median["cgcnn_per_edge"] / median["cgcnn_per_atom"],
        "cgcnn_per_atom_vs_schnet_time": median["cgcnn_per_atom"] / median["schnet"],
        "cgcnn_per_edge_vs_schnet_time": median["cgcnn_per_edge"] / median["schnet"],
    }
    print(json.dumps({k: v for k, v in results.items() if k not in ("step_ms", "settings")}, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
