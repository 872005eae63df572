"""The classical descriptor baseline of seed 004 (slide 30): hand-made descriptors + a random forest.

Descriptor sets (``features``):

* ``"magpie"`` (56): Magpie-style composition statistics (Ward et al., npj Comput. Mater. 2016) --
  for each of the 10 numeric element properties of :mod:`atomgraph.features.element_properties`
  (electronegativity, covalent radius, group, period, valence electrons, ionisation energy, mass,
  atomic radius, van der Waals radius, electron affinity; in their units) the fraction-weighted mean,
  minimum, maximum, range and standard deviation, plus the number of elements and the L2, L3, L5,
  L7, L10 norms of the element fractions;
* ``"fractions"`` (100): element fractions, Z = 1..100;
* ``"structure"`` (20): volume per atom (Å^3), density (g/cm^3), shortest and mean neighbour distance
  (Å) and a 16-bin histogram of neighbour distances over 0-8 Å per atom (a partial-RDF-like
  fingerprint of the graph's edges: for a 12-nearest-neighbour graph it covers those 12).

Only composition (no geometry) with ``features=("magpie", "fractions")``; with ``"structure"`` the
forest also sees the density and the neighbour shells, the classical counterpart of a geometric GNN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.ensemble import RandomForestRegressor
from torch_geometric.loader import DataLoader

from atomgraph.evaluation._arrays import to_numpy
from atomgraph.evaluation.baselines import composition_matrix
from atomgraph.features.element_properties import ELEMENT_PROPERTIES, element_property_table
from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.geometry import cell_volume, edge_lengths, edge_vectors
from atomgraph.nn.scatter import scatter_sum

DESCRIPTOR_SETS = ("magpie", "fractions", "structure")
STATISTICS = ("mean", "min", "max", "range", "std")
NORMS = (2, 3, 5, 7, 10)
HISTOGRAM_BINS = 16
HISTOGRAM_MAX = 8.0  # Å
_AMU_PER_A3_TO_G_PER_CM3 = 1.66053907


def magpie_names() -> list[str]:
    """Column names of :func:`magpie_features`."""
    stats = [f"{p}_{s}" for p in ELEMENT_PROPERTIES for s in STATISTICS]
    return [*stats, "n_elements", *(f"fraction_l{p}_norm" for p in NORMS)]


def magpie_features(numbers_list: Sequence[Any], chunk: int = 2048) -> np.ndarray:
    """Composition statistics ``[M, 56]`` of structures given as atomic-number arrays."""
    table = element_property_table(standardize=False)[0].numpy()[:, : len(ELEMENT_PROPERTIES)]
    fractions = composition_matrix(numbers_list, fractions=True)  # [M, 100], column j = Z j + 1
    values = table[1 : fractions.shape[1] + 1]  # [100, P]
    present = fractions > 0
    mean = fractions @ values
    std = np.sqrt(np.clip(fractions @ values**2 - mean**2, 0.0, None))
    low, high = np.zeros_like(mean), np.zeros_like(mean)
    for start in range(0, len(fractions), chunk):  # [chunk, 100, P] at a time
        mask = present[start : start + chunk, :, None]
        low[start : start + chunk] = np.where(mask, values[None], np.inf).min(axis=1)
        high[start : start + chunk] = np.where(mask, values[None], -np.inf).max(axis=1)
    stats = np.stack([mean, low, high, high - low, std], axis=-1).reshape(len(fractions), -1)
    norms = [np.sum(fractions**p, axis=1) ** (1.0 / p) for p in NORMS]
    out = np.column_stack([stats, present.sum(axis=1), *norms])
    return np.where(np.isfinite(out), out, 0.0)


def structure_names() -> list[str]:
    """Column names of :func:`structure_features`."""
    width = HISTOGRAM_MAX / HISTOGRAM_BINS
    bins = [f"neighbours_{k * width:.1f}_{(k + 1) * width:.1f}" for k in range(HISTOGRAM_BINS)]
    return ["volume_per_atom", "density", "min_distance", "mean_distance", *bins]


@torch.no_grad()
def structure_features(graphs, batch_size: int = 256) -> np.ndarray:
    """Geometric descriptors ``[M, 20]`` of periodic graphs (a dataset or a list of ``Data``)."""
    masses = element_property_table(standardize=False)[0][:, ELEMENT_PROPERTIES.index("atomic_mass")]
    rows = []
    for batch in DataLoader(graphs, batch_size=batch_size, shuffle=False):
        nodes, num_graphs = batch_vector(batch)
        atoms = torch.bincount(nodes, minlength=num_graphs).clamp(min=1).double()
        volume = cell_volume(batch.cell).double()
        mass = scatter_sum(masses.double()[batch.z], nodes, num_graphs)
        lengths = edge_lengths(edge_vectors(batch)).double()
        graph_of_edge = nodes[batch.edge_index[1]]
        edges = torch.bincount(graph_of_edge, minlength=num_graphs).double()
        shortest = torch.full((num_graphs,), float("nan"), dtype=torch.float64)
        shortest = shortest.scatter_reduce(0, graph_of_edge, lengths, "amin", include_self=False)
        mean = scatter_sum(lengths, graph_of_edge, num_graphs) / edges.clamp(min=1)
        width = HISTOGRAM_MAX / HISTOGRAM_BINS
        bins = (lengths / width).long().clamp(max=HISTOGRAM_BINS)  # the last bin collects the rest
        keep = bins < HISTOGRAM_BINS
        flat = graph_of_edge[keep] * HISTOGRAM_BINS + bins[keep]
        counts = torch.bincount(flat, minlength=num_graphs * HISTOGRAM_BINS).view(num_graphs, -1)
        density = torch.where(volume > 0, mass / volume.clamp(min=1e-12), torch.zeros_like(volume))
        rows.append(
            torch.column_stack(
                [
                    volume / atoms,
                    density * _AMU_PER_A3_TO_G_PER_CM3,
                    torch.nan_to_num(shortest, nan=0.0),
                    mean,
                    counts.double() / atoms.unsqueeze(1),
                ]
            ).numpy()
        )
    return np.concatenate(rows) if rows else np.zeros((0, len(structure_names())))


def atomic_numbers_of(structures) -> list[np.ndarray]:
    """Atomic numbers of each structure of a :class:`GraphDataset`, a list of graphs or of arrays."""
    if hasattr(structures, "atomic_numbers"):
        return structures.atomic_numbers()
    return [to_numpy(getattr(s, "z", s), dtype=np.int64) for s in structures]


def descriptor_matrix(structures, features: Sequence[str] = DESCRIPTOR_SETS) -> np.ndarray:
    """The chosen descriptor sets side by side: ``[M, F]`` (graphs are needed for ``"structure"``)."""
    unknown = sorted(set(features) - set(DESCRIPTOR_SETS))
    if unknown or not features:
        raise ValueError(f"descriptor sets must be some of {DESCRIPTOR_SETS}, got {list(features)}")
    numbers = atomic_numbers_of(structures)
    blocks = []
    if "magpie" in features:
        blocks.append(magpie_features(numbers))
    if "fractions" in features:
        blocks.append(composition_matrix(numbers, fractions=True))
    if "structure" in features:
        if not hasattr(structures, "__getitem__") or not hasattr(structures[0], "edge_index"):
            raise ValueError("the 'structure' descriptors need graphs, not bare atomic numbers")
        blocks.append(structure_features(structures))
    return np.concatenate(blocks, axis=1)


class DescriptorBaseline:
    """Random forest on :func:`descriptor_matrix` features, for one scalar target.

    Args:
        features: descriptor sets (see the module docstring).
        n_estimators, min_samples_leaf, max_features: the forest (sklearn's meanings).
        seed: random state; n_jobs: cores (-1: all).
    """

    def __init__(
        self,
        features: Sequence[str] = DESCRIPTOR_SETS,
        n_estimators: int = 100,
        min_samples_leaf: int = 2,
        max_features: float = 0.33,
        seed: int = 0,
        n_jobs: int = -1,
    ) -> None:
        self.features = tuple(features)
        self.forest = RandomForestRegressor(
            n_estimators=n_estimators,
            min_samples_leaf=min_samples_leaf,
            max_features=max_features,
            random_state=seed,
            n_jobs=n_jobs,
        )
        self.fitted = False

    def fit(self, structures, y: Any, x: np.ndarray | None = None) -> DescriptorBaseline:
        """Fit on structures (dataset or graphs) and targets ``[M]``; rows with NaN targets are dropped.
        ``x`` passes a precomputed :func:`descriptor_matrix` (it is reused for several targets)."""
        target = to_numpy(y).reshape(-1)
        x = descriptor_matrix(structures, self.features) if x is None else x
        if len(x) != len(target):
            raise ValueError(f"DescriptorBaseline.fit: {len(x)} structures but {len(target)} targets")
        keep = ~np.isnan(target)
        if keep.sum() < 2:
            raise ValueError("DescriptorBaseline.fit: fewer than two labelled structures")
        self.forest.fit(x[keep], target[keep])
        self.fitted = True
        return self

    def predict(self, structures, x: np.ndarray | None = None) -> np.ndarray:
        """Predictions ``[M]`` for structures (or a precomputed descriptor matrix ``x``)."""
        if not self.fitted:
            raise RuntimeError("DescriptorBaseline.predict called before fit")
        x = descriptor_matrix(structures, self.features) if x is None else x
        return np.asarray(self.forest.predict(x), dtype=float)
