"""Quick tour: aspirin from SMILES, water from XYZ, NaCl from CIF, and their graphs.

python examples/quick_tour.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from atomgraph.graphs import bond_graph, edge_lengths, edge_vectors, radius_graph
from atomgraph.structures import from_smiles, read


def describe(name: str, graph) -> None:
    lengths = edge_lengths(edge_vectors(graph))
    print(f"{name}: {graph}")
    print(
        f"  {graph.num_nodes} atoms, {graph.edge_index.shape[1]} directed edges, "
        f"lengths {lengths.min():.3f}-{lengths.max():.3f} Å"
        if len(lengths)
        else "  no edges"
    )


def main() -> None:
    aspirin = from_smiles("CC(=O)Oc1ccccc1C(=O)O", embed_3d=True)
    describe("aspirin bond graph", bond_graph(aspirin))
    describe("aspirin radius graph (5 Å)", radius_graph(aspirin, 5.0))

    with tempfile.TemporaryDirectory() as folder:
        water_path = Path(folder) / "water.xyz"
        ase.io.write(water_path, Atoms("OHH", positions=[[0, 0, 0], [0.757, 0.587, 0], [-0.757, 0.587, 0]]))
        describe("water radius graph (2 Å)", radius_graph(read(water_path), 2.0))

        a = 5.64
        nacl = Atoms(
            "NaCl",
            positions=[[0, 0, 0], [a / 2, a / 2, a / 2]],
            cell=0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]),
            pbc=True,
        )
        cif_path = Path(folder) / "NaCl.cif"
        ase.io.write(cif_path, nacl)
        graph = radius_graph(read(cif_path), 4.0)
        describe("NaCl primitive cell, periodic radius graph (4 Å)", graph)
        j, i = graph.edge_index
        print(f"  Na has {int(((i == 0) & (graph.z[j] == 17)).sum())} Cl neighbours within 4 Å")


if __name__ == "__main__":
    main()
