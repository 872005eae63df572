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

import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader


def _gather_index(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """The concatenation of ``arange(start, start + count)`` for each pair, as one tensor."""
    total = int(counts.sum())
    offsets = torch.cumsum(counts, 0) - counts
    return torch.arange(total) + torch.repeat_interleave(starts - offsets, counts, output_size=total)


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
        self.storage, self.slices = storage, slices
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
        # gather index and one slice record per batch
        self.groups: list[tuple[torch.Tensor, list[str]]] = []
        for key in self.keys:
            shared = next((keys for bounds, keys in self.groups if torch.equal(bounds, slices[key])), None)
            if shared is None:
                self.groups.append((slices[key], [key]))
            else:
                shared.append(key)

    def __call__(self, positions: list[int] | torch.Tensor) -> Batch:
        rows = self.rows.index_select(0, torch.as_tensor(positions, dtype=torch.long))
        num_graphs = len(rows)
        following = rows + 1
        node_slices = self.slices[self.node_key]
        node_counts = node_slices.index_select(0, following) - node_slices.index_select(0, rows)
        ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(node_counts, 0)])
        node_offsets = ptr[:-1]
        values, slice_dict, inc_dict = {}, {}, {}
        not_incremented = torch.zeros(num_graphs, dtype=torch.long)
        for bounds, keys in self.groups:
            starts = bounds.index_select(0, rows)
            counts = bounds.index_select(0, following) - starts
            index = _gather_index(starts, counts)
            cumulative = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
            shifts = None
            for key in keys:
                dim = self.cat_dim[key] % self.storage[key].dim()
                value = self.storage[key].index_select(dim, index)
                slice_dict[key] = cumulative
                inc_dict[key] = not_incremented
                if key in self.incremented:  # local node indices -> positions in the batch
                    if shifts is None:
                        shifts = torch.repeat_interleave(node_offsets, counts, output_size=index.numel())
                    shape = [1] * value.dim()
                    shape[dim] = -1
                    value = value + shifts.view(shape).to(value.dtype)
                    inc_dict[key] = node_offsets
                values[key] = value
        batch = Batch(**values)
        batch.batch = torch.repeat_interleave(torch.arange(num_graphs), node_counts, output_size=int(ptr[-1]))
        batch.ptr = ptr
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
