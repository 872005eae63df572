"""Models: one file per architecture, each registered by name for configs.

Every model maps a graph batch to [B, T] predictions (normalised units of the task) and declares the
graph it needs in ``graph_kind`` ("radius", "bond", or for protein-ligand models "complex"/"sequence").
"""

from atomgraph.models import (  # noqa: F401  (registers the models)
    affinity_cross_attention,
    affinity_joint,
    affinity_late_fusion,
    affinity_ligand_only,
    affinity_sequence,
    cgcnn,
    dimenet,
    equivariant,
    gat,
    gcn,
    graphsage,
    megnet,
    mpnn,
    painn,
    schnet,
    simple_gnn,
)
from atomgraph.models.registry import available_models, build_model, model_class, register_model

__all__ = ["available_models", "build_model", "model_class", "register_model"]
