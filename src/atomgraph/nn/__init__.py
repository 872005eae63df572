"""Small reusable layers: MLPs, activations, node pools, per-target readouts."""

from atomgraph.nn.activations import ShiftedSoftplus, activation
from atomgraph.nn.mlp import MLP
from atomgraph.nn.readout import POOLS, GraphReadout, per_graph_count
from atomgraph.nn.scatter import scatter_mean, scatter_sum
from atomgraph.nn.target_readout import READOUTS, resolve_readouts

__all__ = [
    "MLP",
    "POOLS",
    "READOUTS",
    "GraphReadout",
    "ShiftedSoftplus",
    "activation",
    "per_graph_count",
    "resolve_readouts",
    "scatter_mean",
    "scatter_sum",
]
