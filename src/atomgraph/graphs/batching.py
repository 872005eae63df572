"""Graphs made from their fields and batched, without PyG's per-field, per-graph bookkeeping.

``Data(**fields)`` routes every field through PyG's attribute machinery (~2 µs a field), and
``Batch.from_data_list`` asks every graph for every field's increment and its node count twice. For a
screening library that is ~50 µs a molecule, a tenth of the whole job. :func:`graph_of` and
:func:`collate` give the same graphs and batches (field by field, with the batch's ``batch``,
``ptr``, slices and increments) in a few operations per field; graphs that need PyG's general
machinery (subclasses, non-tensor fields, sparse or 0-d tensors, fields that differ between graphs)
go through PyG itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch_geometric.data import Batch, Data, Dataset

__all__ = ["collate", "graph_batches", "graph_of"]


def graph_of(fields: Mapping[str, torch.Tensor]) -> Data:
    """``Data(**fields)`` for a new graph, given tensors under public names (no ``None``, no leading
    underscore): the fields are placed in its store at once (a graph nobody has read yet has no cached
    attributes for PyG's setter to clear)."""
    graph = Data()
    graph._store._mapping.update(fields)
    return graph


def collate(graphs: Sequence[Data]) -> Batch:
    """``Batch.from_data_list(graphs)``, equal to it field by field (``batch``, ``ptr``, the slices and
    increments that ``to_data_list`` reads, ``num_graphs``), for graphs of PyG's ``Data`` type that carry
    the same plain CPU tensor fields (index fields integer); anything else is handed to PyG."""
    graphs = list(graphs)
    fields = [graph.to_dict() for graph in graphs] if graphs else []
    if not _plain(graphs, fields):
        return Batch.from_data_list(graphs)
    try:
        return _collated(graphs, fields)
    except (RuntimeError, TypeError):  # a later graph's field is not like the first's
        return Batch.from_data_list(graphs)


def _collated(graphs: list[Data], fields: list[dict]) -> Batch:
    """:func:`collate`'s fast path."""
    first = graphs[0]
    num_nodes = [graph.num_nodes or 0 for graph in graphs]  # PyG's count (from x, pos, ...)
    nodes = torch.tensor(num_nodes)
    node_offsets = _cumsum(nodes)
    out = Batch(_base_cls=Data)
    slice_dict: dict[str, torch.Tensor] = {}
    inc_dict: dict[str, torch.Tensor] = {}
    for key, elem in fields[0].items():
        values = [field[key] for field in fields]
        dim = first.__cat_dim__(key, elem)
        value = torch.cat(values, dim=dim)  # first: it refuses what is not like the first graph's field
        sizes = torch.tensor([part.size(dim) for part in values])
        if _incremented(key):  # PyG's Data.__inc__: shifted by the nodes before
            shape = [1] * value.dim()
            shape[dim] = -1
            value = value + node_offsets[:-1].repeat_interleave(sizes).view(shape).to(value.dtype)
            inc_dict[key] = node_offsets[:-1].clone()
        else:
            inc_dict[key] = torch.zeros(len(graphs), dtype=torch.long)
        out[key] = value
        slice_dict[key] = _cumsum(sizes)
    out.batch = torch.arange(len(graphs)).repeat_interleave(nodes)
    out.ptr = node_offsets
    out._num_graphs = len(graphs)
    out._slice_dict = slice_dict
    out._inc_dict = inc_dict
    return out


def _plain(graphs: list[Data], fields: list[dict]) -> bool:
    """Whether :func:`collate`'s fast path batches these graphs as PyG would."""
    if not graphs or any(type(graph) is not Data for graph in graphs):
        return False
    if not graphs[0].stores[0].can_infer_num_nodes:
        return False  # PyG adds no batch vector
    keys = fields[0].keys()
    if any(key in ("num_nodes", "ptr") or "batch" in key for key in keys):
        return False  # PyG sums, skips or increments by value
    # the first graph's fields are checked; torch.cat refuses the others' that differ (see collate)
    return all(map(_plain_tensor, fields[0].items())) and all(field.keys() == keys for field in fields)


def _plain_tensor(item: tuple[str, object]) -> bool:
    """A field :func:`collate` concatenates as PyG does: a dense CPU tensor with at least one dimension,
    and for a field PyG increments an integer one (PyG promotes a bool index to int64)."""
    key, value = item
    if type(value) is not torch.Tensor or value.layout != torch.strided or value.is_nested:
        return False
    if value.dim() == 0 or value.device.type != "cpu":
        return False
    return not _incremented(key) or not (value.is_floating_point() or value.dtype == torch.bool)


def _incremented(key: str) -> bool:
    """Whether PyG's ``Data.__inc__`` shifts this field by the nodes of the graphs before it."""
    return "index" in key or key == "face"


def _cumsum(sizes: torch.Tensor) -> torch.Tensor:
    """``[0, s0, s0 + s1, ...]`` (int64), as PyG's slices and offsets are."""
    out = torch.zeros(len(sizes) + 1, dtype=torch.long)
    torch.cumsum(sizes, 0, out=out[1:])
    return out


def graph_batches(graphs: Sequence[Data] | Dataset, batch_size: int) -> Iterator[Batch]:
    """Batches of ``batch_size`` consecutive graphs of a list or dataset (the last may be smaller), in
    order: what ``DataLoader(graphs, batch_size, shuffle=False)`` yields, made by :func:`collate`."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(graphs), batch_size):
        yield collate([graphs[k] for k in range(start, min(start + batch_size, len(graphs)))])
