"""Batches gathered straight from an in-memory dataset's collated storage.

An in-memory :class:`~atomgraph.data.graph_dataset.GraphDataset` keeps all its graphs as one set of
concatenated tensors (PyG's ``data`` and ``slices``). PyG's ``DataLoader`` cuts every graph of a batch
out of them (one ``Data`` per graph) and then concatenates them again with ``Batch.from_data_list``:
two Python loops over the graphs and over the fields. For small molecules that is ~15 % of a training
step. :class:`RowBatcher` gathers a batch from the storage directly -- per field one index computation
and one ``index_select`` over all the batch's graphs, edge indices shifted by the node offset of their
graph -- and builds the same :class:`~torch_geometric.data.Batch` (``batch``, ``ptr``, and the slice and
increment records ``to_data_list`` reads). :func:`row_loader` is a ``DataLoader`` over row positions
with that collation; it draws the same rows in the same order as PyG's loader with the same generator.

It applies to datasets of plain ``Data`` graphs whose fields are all tensors, without a per-item
``transform`` (augmentation); :func:`row_loader` falls back to PyG's loader for anything else.
"""

from __future__ import annotations

import copy

import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader


class RowBatcher:
    """Collates rows (positions in ``dataset``) into a :class:`Batch` from the collated storage.

    Raises ValueError when the dataset does not qualify (see the module docstring): use
    :func:`row_loader`, which falls back to PyG's loader.
    """

    def __init__(self, dataset):
        storage, slices = getattr(dataset, "_data", None), getattr(dataset, "slices", None)
        plain = getattr(dataset, "sample_type", Data) is Data and type(storage) is Data
        if storage is None or slices is None or not plain:
            raise ValueError("not an in-memory dataset of plain Data graphs")
        if getattr(dataset, "transform", None) is not None:
            raise ValueError("the dataset transforms its items")
        if len(dataset) == 0:
            raise ValueError("an empty dataset")
        self.rows = torch.as_tensor(list(dataset.indices()), dtype=torch.long)
        example = dataset[0]
        self.keys = [key for key in slices if key in storage]
        strided = all(torch.is_tensor(storage[k]) and storage[k].layout == torch.strided for k in self.keys)
        if not strided or set(self.keys) != set(example.keys()):
            raise ValueError("fields that are not dense tensors, or fields outside the collated storage")
        self.storage = storage
        self.cat_dim = {key: example.__cat_dim__(key, example[key]) for key in self.keys}
        if not all(isinstance(dim, int) for dim in self.cat_dim.values()):
            raise ValueError("a field concatenated along more than one dimension")
        # nodes are counted as PyG counts them (x, then pos, then z), and every node field must agree
        node_keys = [key for key in ("x", "pos", "z") if key in self.keys]
        if not node_keys:
            raise ValueError("no node field (x, pos or z) to count the atoms of a graph")
        if any(not torch.equal(slices[key], slices[node_keys[0]]) for key in node_keys):
            raise ValueError(f"node fields {node_keys} differ in length")
        self.node_key = node_keys[0]
        nodes = example.num_nodes
        self.incremented = []
        for key in self.keys:
            inc = example.__inc__(key, example[key])
            if isinstance(inc, int) and inc == 0:
                continue
            if "batch" in key or key == "face" or "index" not in key or int(inc) != nodes:
                raise ValueError(f"field {key!r} is incremented by something other than the node count")
            self.incremented.append(key)
        # fields cut by the same slices (the node fields, the edge fields, one row per graph) share one
        # gather index and one slice record per batch; the bounds of every group in one [G, rows + 1]
        # tensor, so a batch computes all its counts and gather indices in a few operations
        groups: list[tuple[torch.Tensor, list[str]]] = []
        for key in self.keys:
            shared = next((keys for bounds, keys in groups if torch.equal(bounds, slices[key])), None)
            if shared is None:
                groups.append((slices[key], [key]))
            else:
                shared.append(key)
        self.group_keys = [keys for _, keys in groups]
        self.bounds = torch.stack([bounds for bounds, _ in groups])
        self.node_group = next(g for g, keys in enumerate(self.group_keys) if self.node_key in keys)
        self.empty = Batch()  # copied for each batch: PyG's Batch(...) inspects signatures every call

    def __call__(self, positions: list[int] | torch.Tensor) -> Batch:
        rows = self.rows.index_select(0, torch.as_tensor(positions, dtype=torch.long))
        num_graphs = len(rows)
        starts = self.bounds.index_select(1, rows)  # [G, B]: where each row's items start, per group
        counts = self.bounds.index_select(1, rows + 1) - starts
        cumulative = torch.cat([counts.new_zeros(len(counts), 1), counts.cumsum(1)], dim=1)  # [G, B + 1]
        totals = cumulative[:, -1]
        # one gather index for every group: position k of row r's items in group g is
        # starts[g, r] + k, laid out group after group (each group's part begins at sum(totals[:g]))
        first = totals.cumsum(0) - totals
        total = int(totals.sum())
        step = (starts - cumulative[:, :-1] - first.view(-1, 1)).view(-1)
        index = torch.arange(total) + torch.repeat_interleave(step, counts.view(-1), output_size=total)
        indices = index.split(totals.tolist())
        node_counts, ptr = counts[self.node_group], cumulative[self.node_group]
        node_offsets = ptr[:-1]
        values, slice_dict, inc_dict = {}, {}, {}
        not_incremented = torch.zeros(num_graphs, dtype=torch.long)
        for g, keys in enumerate(self.group_keys):
            shifts = None
            for key in keys:
                dim = self.cat_dim[key] % self.storage[key].dim()
                value = self.storage[key].index_select(dim, indices[g])
                slice_dict[key] = cumulative[g]
                inc_dict[key] = not_incremented
                if key in self.incremented:  # local node indices -> positions in the batch
                    if shifts is None:
                        shifts = torch.repeat_interleave(node_offsets, counts[g], output_size=len(indices[g]))
                    shape = [1] * value.dim()
                    shape[dim] = -1
                    value = value + shifts.view(shape).to(value.dtype)
                    inc_dict[key] = node_offsets
                values[key] = value
        values["batch"] = torch.repeat_interleave(
            torch.arange(num_graphs), node_counts, output_size=int(ptr[-1])
        )
        values["ptr"] = ptr
        batch = copy.copy(self.empty)
        batch._store._mapping.update(values)  # what Batch(**values) stores, without its per-key checks
        batch._num_graphs = num_graphs
        batch._slice_dict = slice_dict
        batch._inc_dict = inc_dict
        return batch


def row_loader(
    dataset,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    num_workers: int = 0,
) -> torch.utils.data.DataLoader:
    """A loader of ``dataset`` in batches of ``batch_size`` gathered by :class:`RowBatcher` (PyG's
    ``DataLoader`` when the dataset does not qualify). With ``shuffle`` and the same ``generator`` it
    visits the rows in the order PyG's loader would."""
    common = {"num_workers": num_workers, "persistent_workers": num_workers > 0}
    try:
        collate = RowBatcher(dataset)
    except ValueError:
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, **common)
    # a plain loader over row positions (Lightning can swap in its distributed sampler), collated by
    # gathering; shuffled with the generator as PyG's loader is
    return torch.utils.data.DataLoader(
        range(len(dataset)),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=collate,
        **common,
    )
