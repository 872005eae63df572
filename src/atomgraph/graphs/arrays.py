"""Graphs as numpy arrays, for the trip between processes (worker processes build graphs; pickled
tensors would each hold a shared-memory file handle), and the set-up of such a worker."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from atomgraph.graphs.batching import graph_of


def graph_to_arrays(graph: Data) -> dict[str, np.ndarray]:
    """The tensors of a graph as numpy arrays (cheap to pickle between processes)."""
    return {key: value.numpy() for key, value in graph.to_dict().items() if torch.is_tensor(value)}


def arrays_to_graph(arrays: Mapping[str, np.ndarray]) -> Data:
    """Inverse of :func:`graph_to_arrays`."""
    return graph_of({key: torch.from_numpy(np.asarray(value)) for key, value in arrays.items()})


def graphs_to_arrays(graphs: Sequence[Data]) -> dict:
    """Several graphs as one set of numpy arrays (a worker's graphs pickle as a dozen arrays, not a
    dozen per graph): per field, the graphs' tensors concatenated along the dimension PyG collates it
    on and each graph's size along it. Graphs whose fields differ travel one by one
    (:func:`graph_to_arrays`). Inverse: :func:`arrays_to_graphs`."""
    first = graphs[0].to_dict() if graphs else {}
    keys = [key for key, value in first.items() if torch.is_tensor(value) and value.dim() > 0]
    same = all(
        sorted(key for key, value in graph.to_dict().items() if torch.is_tensor(value)) == sorted(keys)
        for graph in graphs
    )
    if not same:
        return _one_by_one(graphs)
    fields = {}
    for key in keys:
        dim = graphs[0].__cat_dim__(key, first[key])
        tensors = [graph[key] for graph in graphs]
        try:
            fields[key] = (torch.cat(tensors, dim=dim).numpy(), [t.shape[dim] for t in tensors], dim)
        except RuntimeError:  # shapes that do not stack (a field's width differs between graphs)
            return _one_by_one(graphs)
    return {"count": len(graphs), "fields": fields}


def _one_by_one(graphs: Sequence[Data]) -> dict:
    return {"count": len(graphs), "graphs": [graph_to_arrays(graph) for graph in graphs]}


def arrays_to_graphs(arrays: Mapping) -> list[Data]:
    """Inverse of :func:`graphs_to_arrays`; the graphs' tensors are views into one tensor per field."""
    if "graphs" in arrays:
        return [arrays_to_graph(graph) for graph in arrays["graphs"]]
    parts = {
        key: torch.split(torch.from_numpy(array), sizes, dim=dim)
        for key, (array, sizes, dim) in arrays["fields"].items()
    }
    return [graph_of({key: pieces[k] for key, pieces in parts.items()}) for k in range(arrays["count"])]


def default_workers(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """Cores this process may use (the default number of worker processes): those it may run on, at most
    its container's CPU quota (``cgroup``: the cgroup file system, v2 or v1; a quota of 1.5 cores counts
    as 2)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota(cgroup)
    return max(1, min(cores, quota)) if quota is not None else cores


def cpu_quota(cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The CPU quota of this process's container in cores, rounded up (``docker --cpus``, Kubernetes
    limits), or None when it has none or it cannot be read: cgroup v2's ``cpu.max`` ("QUOTA PERIOD" or
    "max PERIOD"), else v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1: none)."""
    try:
        text = (cgroup / "cpu.max").read_text().split()
        quota, period = (None if text[0] == "max" else int(text[0])), int(text[1])
    except (OSError, ValueError, IndexError):
        try:
            quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
            period = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            return None
        quota = None if quota < 0 else quota
    if quota is None or period <= 0:
        return None
    return max(1, -(-quota // period))


def default_dtype_name() -> str:
    """torch's default dtype as :func:`init_graph_worker` takes it (``"float32"``, ``"float64"``)."""
    return str(torch.get_default_dtype()).removeprefix("torch.")


def init_graph_worker(dtype: str) -> None:
    """A worker process that builds graphs: one torch thread (the workers share the cores), the
    parent's default dtype (``"float32"`` or ``"float64"``), so its graphs equal the parent's, and (on
    Linux) killed when its parent dies."""
    torch.set_num_threads(1)
    torch.set_default_dtype(getattr(torch, dtype))
    die_with_parent()


def die_with_parent() -> None:
    """On Linux, have the kernel kill this process when the process that started it dies
    (``PR_SET_PDEATHSIG``): a worker of a job killed with ``kill -9`` would otherwise wait forever on its
    task queue, holding its memory. Elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
        return  # not permitted here: the worker lives on as before
    if os.getppid() != parent:  # the parent died before the request: nobody will send the signal
        os._exit(1)
