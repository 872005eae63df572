"""Latent-distance uncertainty: how far a graph's learned representation lies from the training graphs'.

A trained model's *latent vector* of a graph is what its head reads (the modules its
:class:`~atomgraph.models.card.ModelCard` names ``head``): the pooled graph state [B, D] of the pooled
models (GCN, GAT, CGCNN, ...), or the mean of the atom states [N, D] -> [B, D] of the atom-wise ones
(SchNet, PaiNN). The distance of a graph is the mean Euclidean distance from its latent vector to its
``k`` nearest training graphs', each dimension first standardised on the training graphs (Janet, Kulik
et al., Chem. Sci. 10, 7913, 2019). It costs one forward pass over the training set and no training.

A distance is not in the target's unit: read as a raw sigma (the same for every target), the
recalibration of :mod:`atomgraph.evaluation.calibration` fits the factor that turns it into one on the
validation split (``sigma = s * d``) and its conformal intervals, exactly as for the other sigmas.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.loader import DataLoader

#: a distance is never smaller than this fraction of the training graphs' median (a graph equal to
#: k training graphs would get sigma 0, and an infinite likelihood)
FLOOR = 1e-3


@torch.no_grad()
def graph_latents(module: torch.nn.Module, graphs, batch_size: int = 256) -> np.ndarray:
    """The latent vectors [M, D] of a dataset or list of graphs: the input of the model's head, the
    atoms' mean for a head that reads atom states."""
    from torch_geometric.utils import scatter

    head = _head_module(module.model)
    module.eval()
    device = next(module.parameters()).device
    found: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda _, args: found.append(args[0].detach()))
    rows = []
    try:
        for batch in DataLoader(graphs, batch_size=batch_size, shuffle=False):
            batch = batch.to(device)
            found.clear()
            module(batch)
            if len(found) != 1:
                name = type(module.model).__name__
                raise ValueError(f"the head of {name} ran {len(found)} times in one pass")
            latent = found[0]
            if latent.shape[0] == batch.num_nodes and latent.shape[0] != batch.num_graphs:
                latent = scatter(latent, batch.batch, dim=0, dim_size=batch.num_graphs, reduce="mean")
            elif latent.shape[0] != batch.num_graphs:
                raise ValueError(
                    f"the head of {type(module.model).__name__} reads {latent.shape[0]} rows, neither the "
                    f"batch's {batch.num_graphs} graphs nor its {batch.num_nodes} atoms"
                )
            rows.append(latent.reshape(latent.shape[0], -1).cpu().double().numpy())
    finally:
        hook.remove()
    return np.concatenate(rows) if rows else np.zeros((0, 0))


def _head_module(model: torch.nn.Module) -> torch.nn.Module:
    """The one module the model card names as the head; an error for heads that are several modules."""
    names: Sequence[str] = type(model).card.head
    modules = dict(model.named_modules())
    called = [modules[name] for name in names if name in modules]
    if len(called) != 1 or isinstance(called[0], torch.nn.ModuleList | torch.nn.ModuleDict):
        raise ValueError(
            f"latent distance needs a model whose head is one module; "
            f"{type(model).__name__}'s is {list(names)}"
        )
    return called[0]


class LatentReference:
    """The training graphs' latent vectors, standardised, and the distance of new graphs to them.

    Args:
        latents: [M, D] latent vectors of the training graphs (:func:`graph_latents`).
        k: neighbours averaged (5).
    """

    def __init__(self, latents: np.ndarray, k: int = 5):
        latents = np.asarray(latents, dtype=float)
        if latents.ndim != 2 or len(latents) < 2:
            raise ValueError(f"latent distance needs [M >= 2, D] training latents, got shape {latents.shape}")
        if not 1 <= k < len(latents):
            raise ValueError(f"k must be in [1, {len(latents) - 1}] for {len(latents)} training graphs: {k}")
        self.k = k
        self.mean = latents.mean(axis=0)
        self.scale = np.where(latents.std(axis=0) > 0, latents.std(axis=0), 1.0)
        self.reference = torch.from_numpy((latents - self.mean) / self.scale)
        # the training graphs' own distances, each leaving itself out: the floor's yardstick
        self.floor = FLOOR * float(np.median(self._distances(self.reference, leave_self_out=True)))

    def distances(self, latents: np.ndarray) -> np.ndarray:
        """Mean distance [M] of each latent vector to its ``k`` nearest training graphs (standardised
        units), at least the floor."""
        points = torch.from_numpy((np.asarray(latents, dtype=float) - self.mean) / self.scale)
        return np.maximum(self._distances(points), self.floor)

    def _distances(self, points: torch.Tensor, leave_self_out: bool = False, block: int = 1024) -> np.ndarray:
        out = []
        for start in range(0, len(points), block):
            pairwise = torch.cdist(points[start : start + block], self.reference)  # [b, M]
            nearest = pairwise.topk(self.k + leave_self_out, dim=1, largest=False).values
            out.append(nearest[:, int(leave_self_out) :].mean(dim=1))
        return torch.cat(out).numpy() if out else np.zeros(0)


def latent_distance_sigma(
    module: torch.nn.Module, train, graphs_sets: Sequence, k: int = 5, batch_size: int = 256
) -> list[np.ndarray]:
    """Predictions and latent distances of each dataset in ``graphs_sets`` (e.g. validation and test),
    measured from ``train``: [(means [M, T], distances as raw sigma [M, T])], the distance repeated for
    every target."""
    from atomgraph.evaluation.predict import predict_graphs

    reference = LatentReference(graph_latents(module, train, batch_size), k)
    out = []
    for graphs in graphs_sets:
        mean = predict_graphs(module, graphs, batch_size)
        distance = reference.distances(graph_latents(module, graphs, batch_size))
        out.append((mean, np.repeat(distance[:, None], mean.shape[1], axis=1)))
    return out
