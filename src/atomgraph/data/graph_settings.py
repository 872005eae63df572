"""How structures become graphs: the settings that are part of every processed-cache key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from ase import Atoms
from rdkit import Chem
from torch_geometric.data import Data

from atomgraph.graphs import add_master_node, add_virtual_edges, bond_graph, radius_graph

GRAPH_KINDS = ("radius", "bond")


@dataclass(frozen=True)
class GraphSettings:
    """Graph construction for a dataset.

    kind: "radius" (all pairs within ``cutoff`` Å over periodic images, optionally the
    ``max_neighbors`` nearest) or "bond" (the chemical graph from the RDKit molecule kept on the
    structure, with atom/bond features, optional Gilmer virtual edges and master node; hydrogens as
    nodes unless ``explicit_hydrogens`` is False, as in chemprop).
    """

    kind: str = "radius"
    cutoff: float = 5.0
    max_neighbors: int | None = None
    explicit_hydrogens: bool = True
    virtual_edges: bool = False
    master_node: bool = False

    def __post_init__(self) -> None:
        if self.kind not in GRAPH_KINDS:
            raise ValueError(f"graph kind must be one of {GRAPH_KINDS}, got {self.kind!r}")
        if self.kind == "radius" and (self.virtual_edges or self.master_node):
            raise ValueError("virtual edges and master node apply to bond graphs only")

    def build(self, atoms: Atoms) -> Data:
        """The graph of one structure (``atoms.info["rdkit_mol"]`` is needed for bond graphs)."""
        if self.kind == "radius":
            return radius_graph(atoms, self.cutoff, self.max_neighbors)
        mol = atoms.info.get("rdkit_mol")
        if mol is not None and not self.explicit_hydrogens:
            mol = Chem.RemoveHs(mol)
        graph = bond_graph(mol if mol is not None else atoms)
        if self.virtual_edges:
            graph = add_virtual_edges(graph)
        if self.master_node:
            graph = add_master_node(graph)
        return graph

    def key(self) -> str:
        """A short stable hash of the settings, for cache file names."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]
