"""Models: one file per architecture, each registered by name for configs.

Application-specific models register from their application (the protein-ligand affinity models in
:mod:`atomgraph.apps.complexes.models`); the registry loads the applications on its first look-up.

Every model maps a graph batch to [B, T] predictions (normalised units of the task) and carries a
:class:`~atomgraph.models.card.ModelCard` (graph kind, inputs, depth argument, potential capability).
"""

from atomgraph.models import (  # noqa: F401  (registers the models)
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
