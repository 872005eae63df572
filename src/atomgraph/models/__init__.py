"""Models: one file per architecture, each registered by name for configs.

The architectures are imported on the registry's first look-up (:func:`build_model`,
:func:`model_class`, :func:`available_models`), not when this package is imported: importing a layer
that merely refers to the registry (``atomgraph.md``'s calculator, say) costs nothing until a model is
built or loaded.
Application-specific models register from their application (the protein-ligand affinity models in
:mod:`atomgraph.apps.complexes.models`); the registry loads the applications on its first look-up too.

Every model maps a graph batch to [B, T] predictions (normalised units of the task) and carries a
:class:`~atomgraph.models.card.ModelCard` (graph kind, inputs, depth argument, potential capability).
"""

from atomgraph.models.card import ModelCard, ModelPart
from atomgraph.models.registry import available_models, build_model, model_card, model_class, register_model

__all__ = [
    "ModelCard",
    "ModelPart",
    "available_models",
    "build_model",
    "model_card",
    "model_class",
    "register_model",
]
