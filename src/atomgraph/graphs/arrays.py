"""Graphs as numpy arrays, for the trip between processes (worker processes build graphs; pickled
tensors would each hold a shared-memory file handle), and the set-up of such a worker."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch
from torch_geometric.data import Data


def graph_to_arrays(graph: Data) -> dict[str, np.ndarray]:
    """The tensors of a graph as numpy arrays (cheap to pickle between processes)."""
    return {key: value.numpy() for key, value in graph.to_dict().items() if torch.is_tensor(value)}


def arrays_to_graph(arrays: Mapping[str, np.ndarray]) -> Data:
    """Inverse of :func:`graph_to_arrays`."""
    return Data(**{key: torch.from_numpy(np.asarray(value)) for key, value in arrays.items()})


def default_workers() -> int:
    """Cores this process may use (the default number of graph-building processes)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def init_graph_worker(dtype: str) -> None:
    """A worker process that builds graphs: one torch thread (the workers share the cores) and the
    parent's default dtype (``"float32"`` or ``"float64"``), so its graphs equal the parent's."""
    torch.set_num_threads(1)
    torch.set_default_dtype(getattr(torch, dtype))
