"""Models: one file per architecture, each registered by name for configs.

Every model maps a graph batch to [B, T] predictions (normalised units of the task) and declares the
graph it needs in ``graph_kind`` ("radius" or "bond").
"""

from atomgraph.models import gat, gcn, graphsage, mpnn, schnet, simple_gnn  # noqa: F401  (registers the models)
from atomgraph.models.registry import available_models, build_model, model_class, register_model

__all__ = ["available_models", "build_model", "model_class", "register_model"]
