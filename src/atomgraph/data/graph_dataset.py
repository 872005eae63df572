"""An in-memory dataset of graphs with its targets' metadata, saved to and loaded from a safe cache."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.loader import DataLoader

from atomgraph.data.safe_load import safe_torch_load
from atomgraph.graphs.geometry import edge_lengths, edge_vectors
from atomgraph.targets import TargetSet


@dataclass
class DatasetMeta:
    """Everything recorded about a processed dataset besides the graphs."""

    name: str
    targets: TargetSet
    ids: list[str] = field(default_factory=list)
    smiles: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # rows that failed: {"index", "id", "error"}
    settings: dict = field(default_factory=dict)
    #: the columns of the graphs' ``y_node`` [n, K] (node-level labels; empty: none)
    node_targets: TargetSet = field(default_factory=lambda: TargetSet(()))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["targets"] = self.targets.to_list()
        out["node_targets"] = self.node_targets.to_list()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> DatasetMeta:
        d = dict(d)
        d["targets"] = TargetSet(d["targets"])
        d["node_targets"] = TargetSet(d.get("node_targets", ()))
        return cls(**d)


class GraphDataset(InMemoryDataset):
    """Graphs (each with ``y`` [1, T] and ``natoms``) held in PyG's collated storage; after
    :meth:`select_node_targets`, ``y`` is [n, T]: one row per atom (node-level targets).

    Indexing with an int gives a ``Data``; with a sequence/tensor of indices a view on those rows
    (``dataset[train_idx]``), as in PyG.
    """

    sample_type: type[Data] = Data
    """The class of the samples, rebuilt on :meth:`load_file` (subclasses with their own batching
    rules, e.g. protein-ligand complexes, set it)."""

    def __init__(self, graphs: Sequence[Data] | None, meta: DatasetMeta):
        super().__init__(None)
        self.meta = meta
        if graphs is not None:
            if len(graphs) == 0:
                raise ValueError(
                    f"dataset {meta.name!r} has no graphs (every row failed or the source is empty)"
                )
            self.data, self.slices = self.collate(list(graphs))

    @property
    def targets(self) -> TargetSet:
        return self.meta.targets

    def num_atoms(self) -> np.ndarray:
        """Atoms per graph [M] for the rows of this (possibly indexed) dataset."""
        counts = self._data.natoms.view(-1)
        return counts[torch.as_tensor(self.indices(), dtype=torch.long)].numpy()

    def atomic_numbers(self, role: int | None = None) -> list[np.ndarray]:
        """Atomic numbers of each graph's real atoms (master nodes, z = 0, left out); with ``role``, only
        of the nodes whose ``node_role`` is ``role`` (complex graphs: 0 ligand, 1 protein)."""
        z, offsets = self._data.z, self.slices["z"]
        if role is not None and "node_role" not in self.slices:
            raise ValueError(f"dataset {self.meta.name!r} has no node_role to select atoms by")
        roles = self._data.node_role if role is not None else None
        rows = []
        for i in self.indices():
            zi = z[offsets[i] : offsets[i + 1]].numpy()
            keep = zi > 0
            if roles is not None:
                keep &= roles[offsets[i] : offsets[i + 1]].numpy() == role
            rows.append(zi[keep])
        return rows

    def shortest_distance(self, batch_size: int = 256) -> float | None:
        """The shortest edge (Å) over the graphs of this dataset: the closest pair of atoms the graphs
        show (None without positions or edges). Potentials record it to warn when MD goes closer."""
        shortest = None
        for batch in DataLoader(self, batch_size=batch_size):
            if getattr(batch, "pos", None) is None or batch.edge_index.numel() == 0:
                continue
            length = float(edge_lengths(edge_vectors(batch)).min())
            shortest = length if shortest is None else min(shortest, length)
        return shortest

    def select_target_columns(self, columns: list[int]) -> None:
        """Keep only these columns of ``y`` (in this order)."""
        self._data.y = self._data.y[:, columns]

    def select_node_targets(self, names: list[str]) -> None:
        """Make the named node-level targets (``meta.node_targets``, in this order) the labels: ``y``
        becomes [n, T] per graph, one row per atom, and ``targets`` those node-level specs."""
        info, columns = self.meta.node_targets.select(names)
        if getattr(self._data, "y_node", None) is None:
            raise ValueError(f"node-level targets {names}: the graphs hold no per-atom labels")
        self._data.y = self._data.y_node[:, columns]
        self.slices["y"] = self.slices["y_node"]
        self.meta.targets = info

    def targets_array(self) -> np.ndarray:
        """Targets (NaN where missing) of the rows of this dataset: [M, T], or for node-level targets
        [sum n, T], the atoms of each row in order."""
        rows = torch.as_tensor(self.indices(), dtype=torch.long)
        if not self.targets.node_level:
            return self._data.y[rows].numpy()
        offsets = self.slices["y"]
        return torch.cat([self._data.y[offsets[i] : offsets[i + 1]] for i in rows.tolist()]).numpy()

    def save(self, path: str | Path) -> None:  # type: ignore[override]
        """Write graphs and metadata; :meth:`load` reads them back with ``weights_only=True``."""
        if self._indices is not None:
            raise ValueError("save the whole dataset, not an indexed view of it")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"data": self._data.to_dict(), "slices": self.slices, "meta": self.meta.to_dict()}, path)

    @classmethod
    def load_file(cls, path: str | Path) -> GraphDataset:
        """Read a dataset written by :meth:`save` (plain tensors and dicts only: safe to load).

        Raises:
            ValueError: naming the file, when it is not such a dataset (corrupt, truncated, empty, another
                layout). It is never retried with ``weights_only=False``: that would run whatever the
                file holds.
        """
        stored = safe_torch_load(path, "dataset file")
        try:
            dataset = cls(None, DatasetMeta.from_dict(stored["meta"]))
            dataset.data = cls.sample_type.from_dict(stored["data"])
            dataset.slices = stored["slices"]
        except Exception as error:  # a readable file of another layout
            raise ValueError(
                f"{path}: corrupt or unreadable dataset file ({type(error).__name__}: {error})"
            ) from error
        return dataset


def present_elements(atomic_numbers: Iterable[np.ndarray]) -> list[int]:
    """The atomic numbers found in per-graph arrays (a dataset's or store's ``atomic_numbers()``), sorted."""
    return sorted({int(z) for numbers in atomic_numbers for z in numbers})


def apply_reductions(dataset: GraphDataset, reductions: Mapping[str, str] | None) -> GraphDataset:
    """Set the reduction ("sum", "per_atom" or "mean") of the named targets (config ``data.reductions``);
    the others keep theirs. Returns ``dataset`` (changed in place)."""
    targets = dataset.meta.targets
    unknown = sorted(set(reductions or {}) - set(targets.names))
    if unknown:
        raise ValueError(f"data.reductions names unknown targets {unknown}; the dataset has {targets.names}")
    for name, reduction in (reductions or {}).items():
        if (reduction == "node") != targets.spec(name).node_level:
            raise ValueError(
                f"data.reductions: {name!r} -> {reduction!r}: whether a target is node-level is set by its "
                "labels (one per atom or one per graph); data.reductions takes sum | per_atom | mean"
            )
        targets = targets.with_changes(name, reduction=reduction)
    dataset.meta.targets = targets
    return dataset
