"""The interatomic-potentials application: rMD17, mlearn, DeePMD and generated Lennard-Jones clusters
(energies in eV, forces eV/Å, stress eV/Å^3, float64), registered as datasets; rMD17 and mlearn bring
their own train/test split (``data.split.kind: predefined``). One module per dataset; the shared
helpers (digest of the source files, the float64 potential dataset, Voigt stress) in
:mod:`~atomgraph.apps.potentials.common`. Relaxation and MD with a trained potential are generic
(:mod:`atomgraph.md`)."""

from __future__ import annotations

from atomgraph.data.registry import register_dataset
from atomgraph.data.sources import existing_path
from atomgraph.graphs.spec import GraphSpec


def _lennard_jones(data: dict, spec: GraphSpec, progress: bool):
    from atomgraph.apps.potentials.lennard_jones import load_lennard_jones

    return load_lennard_jones(spec, **data["lennard_jones"], progress=progress)


def _rmd17(data: dict, spec: GraphSpec, progress: bool):
    from atomgraph.apps.potentials.rmd17 import load_rmd17

    return load_rmd17(existing_path(data), data["molecule"], spec, cache=data["cache"], progress=progress)


def _mlearn(data: dict, spec: GraphSpec, progress: bool):
    from atomgraph.apps.potentials.mlearn import load_mlearn

    return load_mlearn(existing_path(data), spec, data["cache"], progress)


def _deepmd(data: dict, spec: GraphSpec, progress: bool):
    from atomgraph.apps.potentials.deepmd import load_deepmd

    return load_deepmd(existing_path(data), spec, data["cache"], progress)


#: ``data.lennard_jones``: random clusters (eps = 1 eV, sigma = 1 Å, minimum distance Å), no files needed
LENNARD_JONES_SETTINGS = {"count": 500, "min_atoms": 4, "max_atoms": 8, "min_distance": 0.9, "seed": 0}

register_dataset("lennard_jones", _lennard_jones, app="potentials", settings=LENNARD_JONES_SETTINGS)
register_dataset("rmd17", _rmd17, app="potentials")
register_dataset("mlearn", _mlearn, app="potentials")
register_dataset("deepmd", _deepmd, app="potentials")
