"""Seed 004's E(V) check: fixed chemistry, scaled cell -- does the prediction respond to volume?

Each crystal is scaled isotropically (cell and positions by a linear factor ``s``, so the volume by
``s³``) and predicted again with its graph rebuilt by the run's spec. A DFT formation energy of a
relaxed structure is at a minimum near ``s = 1`` and rises on both sides (by roughly
``9/2 · B · V₀ · (s - 1)²``: tenths of an eV/atom at ±10 % for a bulk modulus of 100 GPa). A model that
learned composition alone predicts the same number at every scale: a flat curve. The summary gives,
over the crystals, the predicted change from ``s = 1`` at the smallest and largest scale, the share of
flat curves (range below ``flat_ev``) and the share whose lowest prediction lies within ±3 % of the
DFT cell (a bowl where physics puts it). The models never saw strained cells: this measures whether
they read geometry at all, and how physically they extrapolate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms
from torch_geometric.data import Data

from atomgraph.evaluation.predict import predict_graphs
from atomgraph.graphs.spec import GraphSpec

SCALES = (0.90, 0.94, 0.97, 1.0, 1.03, 1.06, 1.10)
"""Linear scale factors of the cell (volume x 0.73 ... 1.33)."""


def atoms_of(graph: Data) -> Atoms:
    """The periodic structure a crystal graph was built from (numbers, positions Å, cell Å)."""
    return Atoms(
        numbers=graph.z.numpy(),
        positions=graph.pos.double().numpy(),
        cell=graph.cell.double().numpy().reshape(3, 3),
        pbc=graph.pbc.numpy().reshape(3),
    )


def scaled_graphs(graphs: Sequence[Data], spec: GraphSpec, scales: Sequence[float] = SCALES) -> list[Data]:
    """The graph of every crystal at every scale (crystal-major: ``len(graphs) * len(scales)`` graphs)."""
    out = []
    for graph in graphs:
        atoms = atoms_of(graph)
        for scale in scales:
            copy = atoms.copy()
            copy.set_cell(atoms.cell.array * scale, scale_atoms=True)
            out.append(spec.build(copy))
    return out


def volume_response(
    module: torch.nn.Module,
    graphs: Sequence[Data],
    spec: GraphSpec,
    column: int = 0,
    scales: Sequence[float] = SCALES,
    flat_ev: float = 1e-3,
    batch_size: int = 128,
) -> dict:
    """Predictions of target ``column`` (real units) over ``scales`` for every crystal, and a summary.

    Returns ``{"scales", "curves" [M, S] (prediction minus the prediction at scale 1), "summary"}``.
    """
    scales = list(scales)
    if 1.0 not in scales:
        raise ValueError("the scales must include 1.0 (the DFT cell)")
    predictions = predict_graphs(module, scaled_graphs(graphs, spec, scales), batch_size)[:, column]
    curves = predictions.reshape(len(graphs), len(scales))
    curves = curves - curves[:, [scales.index(1.0)]]
    lowest = np.asarray(scales)[np.argmin(curves, axis=1)]
    spread = curves.max(axis=1) - curves.min(axis=1)
    summary = {
        "crystals": len(graphs),
        "median_change_at_smallest_scale": float(np.median(curves[:, 0])),
        "median_change_at_largest_scale": float(np.median(curves[:, -1])),
        "median_range": float(np.median(spread)),
        "flat_share": float(np.mean(spread < flat_ev)),
        "flat_ev": flat_ev,
        "minimum_within_3_percent_share": float(np.mean(np.abs(lowest - 1.0) <= 0.03 + 1e-9)),
        "rises_on_both_sides_share": float(np.mean((curves[:, 0] > 0) & (curves[:, -1] > 0))),
    }
    return {"scales": scales, "curves": curves, "summary": summary}
