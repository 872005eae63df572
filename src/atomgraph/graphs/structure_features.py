"""Inputs computed once per structure when its graph is built: per-site columns and a state vector.

A :class:`~atomgraph.graphs.spec.GraphSpec` names them (``site_features``, ``state_features``); its
``build`` concatenates the named per-site columns into ``graph.site_attr`` [N, F] and the named state
columns into ``graph.state`` [1, S], in the order named, so every consumer (training, predict, screening)
gets the same inputs from the same spec. Models that read them say so on their card (inputs
``site_attr`` / ``state``). They are numbers computed from the structure, not functions of the positions
a model can differentiate, so a potential refuses them.

Built in: ``coordination`` (a site's effective coordination number). Applications register theirs
(the crystals application: ``oxidation_state``, ``space_group``) with :func:`register_site_feature` and
:func:`register_state_feature`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms
from torch_geometric.data import Data

from atomgraph.graphs.geometry import edge_lengths, edge_vectors
from atomgraph.plugins import load_applications


@dataclass(frozen=True)
class StructureFeature:
    """One named input: ``width`` columns computed by ``compute(atoms, graph)`` -> ``[N, width]`` (a
    site feature) or ``[width]`` (a state feature), float; ``columns`` names each column.

    per_element: the columns describe the site's element, not its place in the structure (they move
        with the element when the shortcut diagnostic scrambles elements over sites).
    requires: modules ``compute`` imports; a spec naming the feature is refused when one is missing.
    version: part of the cache key of graphs built with it; raise it when the computed values change.
    """

    name: str
    columns: tuple[str, ...]
    compute: Callable[[Atoms, Data], np.ndarray]
    description: str
    per_element: bool = False
    requires: tuple[str, ...] = ()
    version: int = 1

    @property
    def width(self) -> int:
        return len(self.columns)

    def check_available(self) -> None:
        """A ValueError naming the missing package when a module in ``requires`` cannot be imported."""
        import importlib.util

        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                raise ValueError(
                    f"graph feature {self.name!r} needs the package {module!r}: pip install {module}"
                )


SITE_FEATURES: dict[str, StructureFeature] = {}
STATE_FEATURES: dict[str, StructureFeature] = {}


def register_site_feature(feature: StructureFeature) -> StructureFeature:
    """Add a per-site input (applications register theirs on import)."""
    SITE_FEATURES[feature.name] = feature
    return feature


def register_state_feature(feature: StructureFeature) -> StructureFeature:
    """Add a per-structure (state) input."""
    STATE_FEATURES[feature.name] = feature
    return feature


def _look_up(table: dict[str, StructureFeature], name: str, key: str) -> StructureFeature:
    if name not in table:
        load_applications()
    if name not in table:
        raise ValueError(f"data.graph.{key}: unknown feature {name!r}; known: {sorted(table)}")
    return table[name]


def site_feature(name: str) -> StructureFeature:
    """The registered per-site feature ``name`` (an error listing the known ones)."""
    return _look_up(SITE_FEATURES, name, "site_features")


def state_feature(name: str) -> StructureFeature:
    """The registered state feature ``name`` (an error listing the known ones)."""
    return _look_up(STATE_FEATURES, name, "state_features")


def add_structure_features(
    graph: Data, atoms: Atoms, site_names: tuple[str, ...], state_names: tuple[str, ...]
) -> Data:
    """``graph`` with ``site_attr`` [N, F] and ``state`` [1, S] set from the named features (the
    default dtype); each feature's output is checked for shape and finiteness."""
    dtype = torch.get_default_dtype()
    if site_names:
        columns = _computed(site_names, site_feature, atoms, graph, "site", (len(atoms),))
        graph.site_attr = torch.from_numpy(np.concatenate(columns, axis=1)).to(dtype)
    if state_names:
        columns = _computed(state_names, state_feature, atoms, graph, "state", ())
        graph.state = torch.from_numpy(np.concatenate(columns)).to(dtype).view(1, -1)
    return graph


def _computed(
    names: tuple[str, ...],
    look_up: Callable[[str], StructureFeature],
    atoms: Atoms,
    graph: Data,
    kind: str,
    leading: tuple[int, ...],
) -> list[np.ndarray]:
    """Each named feature's values (float64), checked to be finite and of shape ``leading + (width,)``."""
    where = f"{atoms.info['source']}: " if atoms.info.get("source") else ""
    out = []
    for name in names:
        feature = look_up(name)
        values = np.asarray(feature.compute(atoms, graph), dtype=np.float64)
        _check(values, (*leading, feature.width), f"{where}{kind} feature {name!r}")
        out.append(values)
    return out


def read_site_attr(graph: Data, width: int) -> torch.Tensor:
    """``graph.site_attr`` [N, width] in the positions' dtype, or a ValueError saying how to fix it."""
    site_attr = getattr(graph, "site_attr", None)
    if site_attr is None or site_attr.shape != (graph.num_nodes, width):
        found = None if site_attr is None else tuple(site_attr.shape)
        raise ValueError(
            f"the model reads graph.site_attr [{graph.num_nodes}, {width}] (data.graph.site_features), "
            f"the graphs have {found}: rebuild them with the model's graph spec"
        )
    return site_attr.to(graph.pos.dtype)


def read_state(graph: Data, width: int, num_graphs: int) -> torch.Tensor:
    """``graph.state`` [B, width] in the positions' dtype, or a ValueError saying how to fix it."""
    state = getattr(graph, "state", None)
    if state is None or state.numel() != num_graphs * width:
        found = None if state is None else tuple(state.shape)
        raise ValueError(
            f"the model reads graph.state [{num_graphs}, {width}] (data.graph.state_features), "
            f"the graphs have {found}: rebuild them with the model's graph spec"
        )
    return state.view(num_graphs, width).to(graph.pos.dtype)


def _check(values: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    if values.shape != shape:
        raise ValueError(f"{what} has shape {values.shape}, expected {shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{what} is not finite")


# ----------------------------------------------------------------------------------- coordination

ECON_MAX_ITERATIONS = 50
ECON_TOLERANCE = 1e-6


def effective_coordination(graph: Data) -> torch.Tensor:
    """Hoppe's effective coordination number of every atom from the graph's edges [N] (float64).

    With d_ij the edge lengths around centre i, weights w_ij = exp(1 - (d_ij / d̄_i)^6) and the
    weighted mean bond length d̄_i = sum_j d_ij w_ij / sum_j w_ij iterated from d̄_i = min_j d_ij to
    self-consistency, ECoN_i = sum_j w_ij: about 6 for rock salt, 4 for diamond, 12 for fcc. Only the
    graph's neighbours count, so a neighbour cap (CGCNN's 12 nearest) bounds it; an atom without
    edges gets 0. Hoppe, Z. Kristallogr. 150, 23 (1979).
    """
    lengths = edge_lengths(edge_vectors(graph).to(torch.float64))
    centre = graph.edge_index[1]
    num_atoms = graph.num_nodes
    if lengths.numel() == 0:
        return torch.zeros(num_atoms, dtype=torch.float64)
    has_edges = torch.zeros(num_atoms, dtype=torch.bool)
    has_edges[centre] = True
    mean = torch.ones(num_atoms, dtype=torch.float64).scatter_reduce(
        0, centre, lengths, reduce="amin", include_self=False
    )  # atoms without edges keep 1 (never read)

    def weights_and_sums(mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.exp(1.0 - (lengths / mean[centre]) ** 6)
        total = torch.zeros(num_atoms, dtype=torch.float64).index_add_(0, centre, weights)
        return weights, total

    for _ in range(ECON_MAX_ITERATIONS):
        weights, total = weights_and_sums(mean)
        weighted = torch.zeros(num_atoms, dtype=torch.float64).index_add_(0, centre, weights * lengths)
        updated = torch.where(has_edges, weighted / total.clamp(min=1e-300), mean)
        converged = bool(((updated - mean).abs() <= ECON_TOLERANCE * mean).all())
        mean = updated
        if converged:
            break
    return weights_and_sums(mean)[1]


COORDINATION_SCALE = 12.0
"""ECoN is divided by this (the largest common coordination) so the input is of order one."""

register_site_feature(
    StructureFeature(
        "coordination",
        ("effective_coordination_number / 12",),
        lambda atoms, graph: (effective_coordination(graph) / COORDINATION_SCALE).numpy().reshape(-1, 1),
        "Hoppe's effective coordination number over the graph's neighbours, divided by 12",
    )
)
