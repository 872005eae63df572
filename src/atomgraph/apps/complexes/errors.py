"""The exception of :mod:`atomgraph.apps.complexes`."""

from __future__ import annotations

from atomgraph.structures.errors import StructureError


class ComplexError(StructureError):
    """A protein-ligand complex could not be read or does not make sense (a :class:`StructureError`).

    The message names the file(s) or complex. Raised for unreadable or empty files, a ligand RDKit cannot
    sanitise, a ligand without 3D coordinates, a protein with no atom near the ligand, and files that do
    not share a coordinate frame (ligand far from the protein, or lying on top of it).
    """
