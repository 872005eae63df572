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

import json
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from atomgraph.evaluation.calibration import Calibration, fit_calibration
from atomgraph.graphs.batching import graph_batches
from atomgraph.nn.scatter import scatter_mean

if TYPE_CHECKING:
    from atomgraph.runs import TrainedRun

#: a distance is never smaller than this fraction of the training graphs' median distance to each other
#: (a graph equal to k training graphs would get sigma 0, and an infinite likelihood)
FLOOR = 1e-3
#: training neighbours a distance averages
K = 5
#: graphs of a training split a run's latent reference keeps at most (a seeded sample of larger splits)
MAX_REFERENCE = 20_000
#: a latent dimension whose spread over the training graphs is below this fraction of the largest
#: dimension's is constant up to rounding: it is left out of the distance
CONSTANT = 1e-6


@torch.no_grad()
def graph_outputs_and_latents(
    module: torch.nn.Module, graphs, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """The predictions [M, T] (real units, as :func:`~atomgraph.evaluation.predict.predict_graphs`) and
    latent vectors [M, D] of a dataset or list of graphs, from one pass: the latent vector is the input
    of the model's head, the atoms' mean for a head that reads atom states."""
    head = head_module(module.model)
    module.eval()
    device = next(module.parameters()).device
    outputs, latents = [], []
    for batch in graph_batches(graphs, batch_size):
        out, latent = outputs_and_latents(module, head, batch.to(device))
        outputs.append(out.detach().cpu().double().numpy())
        latents.append(latent.cpu().double().numpy())
    if not outputs:
        return np.zeros((0, len(module.info.names))), np.zeros((0, 0))
    return np.concatenate(outputs), np.concatenate(latents)


def graph_latents(module: torch.nn.Module, graphs, batch_size: int = 256) -> np.ndarray:
    """The latent vectors [M, D] of :func:`graph_outputs_and_latents`."""
    return graph_outputs_and_latents(module, graphs, batch_size)[1]


def outputs_and_latents(
    module: torch.nn.Module, head: torch.nn.Module, batch
) -> tuple[torch.Tensor, torch.Tensor]:
    """``module(batch)`` [B, T] and the batch's latent vectors [B, D], read as ``head``'s input."""
    found: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda _, args: found.append(args[0].detach()))
    try:
        out = module(batch)
    finally:
        hook.remove()
    name = type(module.model).__name__
    if len(found) != 1:
        raise ValueError(f"the head of {name} ran {len(found)} times in one pass")
    latent = found[0]
    if latent.shape[0] == batch.num_nodes and latent.shape[0] != batch.num_graphs:
        latent = scatter_mean(latent, batch.batch, batch.num_graphs)
    elif latent.shape[0] != batch.num_graphs:
        raise ValueError(
            f"the head of {name} reads {latent.shape[0]} rows, neither the batch's {batch.num_graphs} "
            f"graphs nor its {batch.num_nodes} atoms"
        )
    return out, latent.reshape(latent.shape[0], -1)


def head_module(model: torch.nn.Module) -> torch.nn.Module:
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
        latents: [M, D] latent vectors of the training graphs (:func:`graph_latents`), M >= 2.
        k: neighbours averaged (all M when M is smaller; M - 1 for a training graph's own distance).
        checkpoint: which weights the latents were measured with (:func:`checkpoint_fingerprint`; "" when
            not from a run's checkpoint).
    """

    def __init__(self, latents: np.ndarray, k: int = K, checkpoint: str = ""):
        latents = np.asarray(latents, dtype=float)
        if latents.ndim != 2 or len(latents) < 2:
            raise ValueError(f"latent distance needs [M >= 2, D] training latents, got shape {latents.shape}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k, self.checkpoint = k, checkpoint
        self.mean = latents.mean(axis=0)
        spread = latents.std(axis=0)
        self.scale = np.where(spread > CONSTANT * spread.max(initial=0.0), spread, np.inf)  # inf: left out
        self.standardised = torch.from_numpy((latents - self.mean) / self.scale)
        # the training graphs' distances to each other, each leaving itself out: the floor's yardstick
        apart = self._distances(self.standardised, leave_self_out=True)
        self.floor = FLOOR * float(np.median(apart[apart > 0])) if (apart > 0).any() else FLOOR

    def save(self, path: str | Path, calibration: Calibration) -> None:
        """Write the reference and the calibration of its distances to ``path`` (``.npz``, no pickles;
        the standardised latents in float32)."""
        record = {
            "k": self.k,
            "floor": self.floor,
            "checkpoint": self.checkpoint,
            "calibration": asdict(calibration),
        }
        with open(path, "wb") as handle:  # a file object: numpy adds no second suffix
            np.savez(handle, standardised=self.standardised.numpy().astype(np.float32), mean=self.mean,
                     scale=self.scale, record=np.array(json.dumps(record)))  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> tuple[LatentReference, Calibration]:
        """The reference and calibration :meth:`save` wrote; a ValueError naming the file if it cannot be
        read."""
        try:
            with np.load(path, allow_pickle=False) as stored:
                record = json.loads(str(stored["record"]))
                reference = cls.__new__(cls)
                reference.k, reference.floor = int(record["k"]), float(record["floor"])
                reference.checkpoint = record["checkpoint"]
                reference.mean, reference.scale = stored["mean"], stored["scale"]
                reference.standardised = torch.from_numpy(stored["standardised"].astype(np.float64))
                calibration = Calibration.from_record(record["calibration"])
        except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path}: not a readable latent reference ({error})") from error
        return reference, calibration

    def distances(self, latents: np.ndarray) -> np.ndarray:
        """Mean distance [M] of each latent vector to its ``k`` nearest training graphs (standardised
        units), at least the floor."""
        points = torch.from_numpy((np.asarray(latents, dtype=float) - self.mean) / self.scale)
        return np.maximum(self._distances(points), self.floor)

    def _distances(self, points: torch.Tensor, leave_self_out: bool = False, block: int = 1024) -> np.ndarray:
        """Mean distance to the k nearest reference rows (all of them when there are fewer), ``block``
        rows at a time ([block, M] float64)."""
        k = min(self.k, len(self.standardised) - int(leave_self_out))
        out = []
        for start in range(0, len(points), block):
            pairwise = torch.cdist(points[start : start + block], self.standardised)  # [b, M]
            nearest = pairwise.topk(k + leave_self_out, dim=1, largest=False).values
            out.append(nearest[:, int(leave_self_out) :].mean(dim=1))
        return torch.cat(out).numpy() if out else np.zeros(0)


def as_sigma(distance: np.ndarray, targets: int) -> np.ndarray:
    """Distances [M] as the raw sigma of every target [M, T]."""
    return np.repeat(np.asarray(distance)[:, None], targets, axis=1)


def latent_distance_sigma(
    module: torch.nn.Module, train, graphs_sets: Sequence, k: int = K, batch_size: int = 256
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Predictions and latent distances of each dataset in ``graphs_sets`` (e.g. validation and test),
    measured from ``train``: [(means [M, T], distances as raw sigma [M, T])]."""
    reference = LatentReference(graph_latents(module, train, batch_size), k)
    out = []
    for graphs in graphs_sets:
        mean, latents = graph_outputs_and_latents(module, graphs, batch_size)
        out.append((mean, as_sigma(reference.distances(latents), mean.shape[1])))
    return out


def run_latent_reference(
    run_dir: str | Path, run: TrainedRun, k: int = K, batch_size: int = 256
) -> tuple[Path, LatentReference, Calibration]:
    """The latent reference of ``run``, loaded from the finished run directory ``run_dir``: built once
    and kept there (:data:`~atomgraph.training.run_files.LATENT_REFERENCE_FILE`), built again when the file
    was made with other weights (a resumed training rewrote the checkpoint) or another ``k``, or cannot
    be read. It holds the latent vectors of the run's training graphs (at most :data:`MAX_REFERENCE`, a
    sample seeded by the run's seed) and the recalibration of their distances fitted on its validation
    split. Returns the file and what it holds, as read from it (the latents in the float32 they are kept
    in). It reads the run's data again, so an exported file (which has no split) cannot have one. Jobs
    running at once each write a whole file (the last one stays)."""
    from atomgraph.data import load_split
    from atomgraph.training.datasets import load_dataset
    from atomgraph.training.run_files import LATENT_REFERENCE_FILE

    run_dir = Path(run_dir)
    check_latent_distance(run_dir, run)
    file = run_dir / LATENT_REFERENCE_FILE
    checkpoint = checkpoint_fingerprint(run.source)
    if file.exists():
        try:
            stored, calibration = LatentReference.load(file)
            if (stored.checkpoint, stored.k) == (checkpoint, k):
                return file, stored, calibration
        except ValueError:
            pass  # a damaged file: made again
    dataset = load_dataset(run.config, run.graph, progress=False)
    split = load_split(run_dir / "split.json", len(dataset))
    if len(split["val"]) == 0:
        raise ValueError(
            f"{run_dir}: latent distance fits its scale on the validation split, and it has no rows"
        )
    train = np.asarray(split["train"])
    if len(train) > MAX_REFERENCE:
        rng = np.random.default_rng(run.config.get("seed", 0))
        train = np.sort(rng.choice(train, MAX_REFERENCE, replace=False))
    val = dataset[torch.as_tensor(split["val"])]
    reference = LatentReference(
        graph_latents(run.module, dataset[torch.as_tensor(train)], batch_size), k, checkpoint
    )
    mean, latents = graph_outputs_and_latents(run.module, val, batch_size)
    calibration = fit_calibration(
        val.targets_array(), mean, as_sigma(reference.distances(latents), mean.shape[1])
    )
    with tempfile.NamedTemporaryFile(dir=run_dir, prefix=f".{file.name}.", delete=False) as handle:
        partial = Path(handle.name)  # one per job: jobs running at once do not write into each other's
    try:
        reference.save(partial, calibration)
        partial.replace(file)  # whole or absent
    finally:
        partial.unlink(missing_ok=True)
    return (file, *LatentReference.load(file))


def with_latent_distance(run_dir: str | Path, run: TrainedRun) -> tuple[Path, Calibration]:
    """A command's ``--latent-distance``: the run's latent reference (:func:`run_latent_reference`,
    measured on first use), ``run.module`` replaced by a :class:`LatentDistanceModule` around it (its
    sigma the latent distance), and the recalibration of that sigma."""
    file, reference, calibration = run_latent_reference(run_dir, run)
    run.module = LatentDistanceModule(run.module, reference)
    return file, calibration


def check_latent_distance(run_dir: Path, run: TrainedRun) -> None:
    """A ValueError naming ``run_dir`` when ``run`` cannot have a latent distance: not a finished run
    directory with a split, an ensemble or a model with a sigma of its own, or targets that are not
    graph-level regression."""
    if not (Path(run_dir) / "split.json").is_file() or run.config is None:
        raise ValueError(
            f"{run_dir}: latent distance needs a finished run directory (it measures from the run's training "
            "split and fits its scale on the validation split); an exported file or checkpoint has neither"
        )
    own = getattr(run.module, "uncertainty", None)
    if own is not None:
        raise ValueError(
            f"{run_dir}: this model has a sigma of its own ({own}); the latent distance is for models "
            "without one"
        )
    if run.targets.kind != "regression" or run.targets.node_level:
        raise ValueError(f"{run_dir}: latent distance is for graph-level regression targets")
    head_module(run.module.model)


def checkpoint_fingerprint(path: Path) -> str:
    """Which weights a reference was measured with: the checkpoint's name, size and modification time."""
    stat = Path(path).stat()
    return f"{Path(path).name}:{stat.st_size}:{stat.st_mtime_ns}"


class LatentDistanceModule(torch.nn.Module):
    """A trained module whose sigma is its latent distance: ``forward`` is the module's; ``distribution``
    gives (means [B, T], distances [B, T] -- the same for every target), the raw sigma the reference's
    calibration scales, as an ensemble's or a mean-variance or evidential model's ``distribution`` does."""

    uncertainty = "latent_distance"

    def __init__(self, module: torch.nn.Module, reference: LatentReference):
        super().__init__()
        self.inner = module
        self.reference = reference
        self.head = head_module(module.model)

    def __getattr__(self, name: str):
        """Everything else (``info``, ``model``, ``normalizer``, ``hparams``, ...) is the module's."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("inner"), name)

    def forward(self, batch) -> torch.Tensor:
        return self.inner(batch)

    def distribution(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        mean, latent = outputs_and_latents(self.inner, self.head, batch)
        distance = torch.from_numpy(self.reference.distances(latent.cpu().double().numpy()))
        return mean, distance.to(mean)[:, None].expand_as(mean)
