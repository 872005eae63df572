"""Protein-ligand complexes: OpenFF/PDBbind complex graphs and ligand + sequence samples as datasets,
the leave-targets-out ``group`` split and the training augmentation (random rotation and noise).
Settings come from the ``data.complex`` section (:mod:`atomgraph.complexes.config`)."""

from __future__ import annotations

from atomgraph.data.registry import register_dataset, register_split
from atomgraph.data.sources import existing_path
from atomgraph.graphs.spec import GraphSpec


def _complex_dataset(data: dict, spec: GraphSpec, progress: bool):
    from atomgraph.complexes.config import load_complex_dataset

    existing_path(data)
    return load_complex_dataset({"data": data}, progress)


def _augmentation(data: dict):
    from atomgraph.complexes.config import complex_config

    return complex_config({"data": data}).augmentation()


def _group_split(data: dict, dataset):
    from atomgraph.complexes.config import group_split_from_config

    return group_split_from_config({"data": data}, dataset)


def _complex_graph(data: dict) -> GraphSpec:
    """The spec of complex graphs: the inter-molecular cutoff and the other ``data.complex`` graph
    settings (pocket radius, hydrogens, protein edges, residue cutoff, waters) in ``options``."""
    from dataclasses import asdict

    from atomgraph.complexes.config import complex_config

    settings = asdict(complex_config({"data": data}).settings)
    cutoff = settings.pop("cutoff")
    return GraphSpec("complex", cutoff, options=settings, preset="complex")


def _sequence_graph(data: dict) -> GraphSpec:
    from atomgraph.complexes.config import complex_config

    options = complex_config({"data": data})
    return GraphSpec("sequence", options=({"max_length": options.max_length}), preset="sequence")


register_dataset("complexes", _complex_dataset, "complex", _augmentation, "complexes", _complex_graph)
register_dataset("protein_sequence", _complex_dataset, "sequence", None, "complexes", _sequence_graph)
register_split("group", _group_split)
