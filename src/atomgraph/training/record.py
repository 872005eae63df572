"""The run record (``run.json``): what a run was built from, so it can be rebuilt and compared.

Holds the resolved graph spec (with the model's radial grid), the neighbour-list backend, the targets,
the seed and split sizes, the versions of the libraries that shape the numbers, the git commit of the
code and the machine.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from atomgraph.graphs.spec import GraphSpec

LIBRARIES = ("atomgraph", "torch", "torch_geometric", "vesin", "rdkit", "ase", "e3nn", "lightning", "numpy")


def library_versions() -> dict[str, str | None]:
    """Installed versions of :data:`LIBRARIES` (None when one is missing)."""
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the atomgraph source tree (with ``+dirty`` when it has changes), else None."""
    where = path or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def radial_grid(model: torch.nn.Module, spec: GraphSpec) -> dict:
    """The radial range a model derives from the spec (its interaction cutoff and basis size)."""
    out: dict = {"cutoff": getattr(model, "cutoff", spec.cutoff)}
    rbf = getattr(model, "rbf", None)
    if rbf is not None:
        out["basis"] = type(rbf).__name__
        for name in ("num", "num_rbf", "count"):
            if hasattr(rbf, name) and isinstance(getattr(rbf, name), int):
                out["size"] = getattr(rbf, name)
    stops = getattr(model, "radial_stops", None)  # models with one grid per sub-graph (complexes)
    if stops is not None:
        out["stops"] = dict(stops)
    return out


def write_run_record(
    run_dir: Path, config: dict, spec: GraphSpec, model: torch.nn.Module, targets: list[dict], split: dict
) -> Path:
    """Write ``run_dir/run.json``; returns its path."""
    record = {
        "name": config["name"],
        "seed": config["seed"],
        "dataset": config["data"]["dataset"],
        "graph": spec.to_dict(),
        "radial_grid": radial_grid(model, spec),
        "neighbour_backend": "vesin" if spec.kind == "radius" else None,
        "model": config["model"]["name"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "targets": targets,
        "split_sizes": {name: len(rows) for name, rows in split.items()},
        "versions": library_versions(),
        "git_commit": git_commit(),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
    }
    path = Path(run_dir) / "run.json"
    path.write_text(json.dumps(record, indent=2))
    return path
