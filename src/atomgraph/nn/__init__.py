"""Small reusable layers: MLPs, activations, readouts."""

from atomgraph.nn.activations import ShiftedSoftplus, activation
from atomgraph.nn.mlp import MLP
from atomgraph.nn.readout import READOUTS, GraphReadout, per_graph_count
from atomgraph.nn.scatter import scatter_mean, scatter_sum

__all__ = [
    "MLP",
    "READOUTS",
    "GraphReadout",
    "ShiftedSoftplus",
    "activation",
    "per_graph_count",
    "scatter_mean",
    "scatter_sum",
]
