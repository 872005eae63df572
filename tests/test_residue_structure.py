"""Residue secondary structure and solvent accessibility (Biotite) as residue-node features."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("biotite")

from atomgraph.apps.complexes.graph import ComplexGraphSettings
from atomgraph.apps.complexes.protein import Protein
from atomgraph.apps.complexes.residue_structure import residue_structure


def ca_chain(positions: np.ndarray, name: str = "ALA") -> Protein:
    """A protein of Cα atoms only, one residue each (P-SEA reads Cα geometry only)."""
    n = len(positions)
    return Protein(
        positions=np.asarray(positions, dtype=float),
        numbers=np.full(n, 6),
        elements=np.array(["C"] * n),
        atom_names=np.array(["CA"] * n),
        residue_names=np.array([name] * n),
        residue_numbers=np.arange(1, n + 1),
        insertion_codes=np.array([""] * n),
        chain_ids=np.array(["A"] * n),
        hetero=np.zeros(n, dtype=bool),
        residue_index=np.arange(n),
        atom_ids=np.arange(n),
    )


def helix(n: int) -> np.ndarray:
    """Cα trace of an ideal α-helix: radius 2.3 Å, 100° and 1.5 Å per residue."""
    k = np.arange(n)
    angle = np.deg2rad(100.0) * k
    return np.stack([2.3 * np.cos(angle), 2.3 * np.sin(angle), 1.5 * k], axis=1)


def strand(n: int) -> np.ndarray:
    """Cα trace of an extended strand: 3.3 Å rise per residue, ±0.9 Å zig-zag."""
    k = np.arange(n)
    return np.stack([3.3 * k, 0.9 * (-1.0) ** k, np.zeros(n)], axis=1)


def test_secondary_structure_of_ideal_traces():
    """The interior of an ideal helix is helix and of an extended chain strand; every row is one-hot."""
    for trace, column in ((helix(14), 0), (strand(10), 1)):
        rows = np.stack(list(residue_structure(ca_chain(trace)).values()))
        np.testing.assert_array_equal(rows[:, :3].sum(axis=1), 1.0)
        interior = rows[3:-3]
        assert (interior[:, column] == 1.0).all(), rows[:, :3]


def test_relative_accessibility_buried_and_exposed():
    """A residue at the centre of a dense block of atoms is buried (relative SASA ~0); an isolated one is
    fully exposed (clipped to 1); values lie in [0, 1]."""
    grid = np.stack(np.meshgrid(*[np.arange(-2, 3) * 2.0] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    block = np.concatenate([grid, [[40.0, 0.0, 0.0]]])  # the centre (0, 0, 0) is in the grid
    values = residue_structure(ca_chain(block))
    centre = int(np.flatnonzero((grid == 0).all(axis=1))[0])
    assert values[centre][3] < 0.05
    assert values[len(block) - 1][3] == 1.0
    assert all(0.0 <= row[3] <= 1.0 for row in values.values())


def test_settings_key_and_residue_width():
    """The setting widens res_x by 4 and enters the cache key only when on; the key is pinned (a change
    to it, or to the features' version, must be deliberate: every cached complex set is rebuilt)."""
    plain, structured = ComplexGraphSettings(), ComplexGraphSettings(residue_structure=True)
    assert structured.residue_dim == plain.residue_dim + 4
    assert plain.key() == "25639ff31d6a" and structured.key() != plain.key()


def test_complex_graph_spec_records_the_setting_only_when_on():
    """Runs recorded before the setting existed have specs without it: a default run's spec must equal
    theirs (fine-tuning and ensembles compare specs), and a run with it on records it."""
    from atomgraph.training.config import load_config
    from atomgraph.training.datasets import graph_spec

    base = ["data.dataset=complexes", "model.name=affinity_joint"]
    assert "residue_structure" not in graph_spec(load_config(None, base)).options
    on = graph_spec(load_config(None, [*base, "data.complex.residue_structure=true"]))
    assert on.options["residue_structure"] is True
