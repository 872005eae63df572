"""Graphs: one ``torch_geometric.data.Data`` type for molecules, crystals and complexes.

Fields are documented in :mod:`atomgraph.graphs.fields`. Builders: :func:`bond_graph` (chemical
bonds), :func:`radius_graph` (periodic radius / k-nearest graphs via vesin), plus Gilmer's virtual
edges and DimeNet's triplets. :func:`edge_vectors` turns a graph into differentiable
edge vectors, the basis of forces and stress.
"""

from atomgraph.graphs.bond_graph import bond_graph
from atomgraph.graphs.geometry import apply_strain, cell_volume, edge_lengths, edge_pairs, edge_vectors
from atomgraph.graphs.neighbors import NeighborList, neighbor_list
from atomgraph.graphs.radius_graph import radius_graph
from atomgraph.graphs.spec import PRESETS, GraphSpec, preset, register_preset, resolve_graph_spec
from atomgraph.graphs.triplets import triplet_angles, triplets
from atomgraph.graphs.virtual import VIRTUAL_EDGE_TYPE, add_virtual_edges

__all__ = [
    "PRESETS",
    "VIRTUAL_EDGE_TYPE",
    "GraphSpec",
    "NeighborList",
    "add_virtual_edges",
    "apply_strain",
    "bond_graph",
    "cell_volume",
    "edge_lengths",
    "edge_pairs",
    "edge_vectors",
    "neighbor_list",
    "preset",
    "radius_graph",
    "register_preset",
    "resolve_graph_spec",
    "triplet_angles",
    "triplets",
]
