"""Protein-ligand affinity models, registered by name when the complexes application is imported:
``affinity_late_fusion``, ``affinity_joint``, ``affinity_cross_attention``, ``affinity_sequence`` and
the ``affinity_ligand_only`` baseline (shared encoders in :mod:`.affinity_encoders`)."""

from atomgraph.apps.complexes.models import (  # noqa: F401  (registers the models)
    affinity_cross_attention,
    affinity_joint,
    affinity_late_fusion,
    affinity_ligand_only,
    affinity_sequence,
)
