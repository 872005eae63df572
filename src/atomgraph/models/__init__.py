"""Models: one file per architecture, each registered by name for configs.

Every model maps a graph batch to [B, T] predictions (normalised units of the task) and carries a
:class:`~atomgraph.models.card.ModelCard` (graph kind, inputs, depth argument, potential capability).
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
from atomgraph.models.card import ModelCard
from atomgraph.models.registry import available_models, build_model, model_card, model_class, register_model

__all__ = ["ModelCard", "available_models", "build_model", "model_card", "model_class", "register_model"]
