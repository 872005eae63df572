"""Why did the model say that? Attention maps and gradient atom importance drawn on the 2D molecule.

* :func:`draw_attention` colours and thickens every bond by its attention weight (GAT, GATv2);
* :func:`gradient_atom_importance` scores every atom by gradient x input for any model, and
  :func:`draw_atom_importance` highlights the atoms by that score;
* :func:`explain` does both for a trained run (or a model and its graph settings) and a SMILES.

Pictures are RDKit depictions (``rdMolDraw2D``): PNG through Cairo, SVG by extension, with a colour bar
and a text legend giving the range of the values drawn. Atom indices are those of the molecule the
graph was built from (heavy atoms only when the run's graphs have no explicit hydrogens).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import rdDepictor
from rdkit.Chem.Draw import rdMolDraw2D
from rdkit.Geometry import Point2D
from torch import nn
from torch_geometric.data import Data

from atomgraph.evaluation.attention import (
    Selection,
    attention_matrix,
    bond_weights,
    head_diversity,
    select_attention,
    stack_attention,
)

COLORMAP = "YlOrRd"
#: Widest highlight of a bond, as a multiple of the normal line width (the narrowest is 1).
MAX_BOND_WIDTH = 8
#: Largest atom highlight radius (molecule units, ~ bond length 1.5); the smallest is a third of it.
MAX_ATOM_RADIUS = 0.6
_COLORBAR_HEIGHT = 70


# ------------------------------------------------------------------------------------------- drawing


def _scaled(values: np.ndarray) -> np.ndarray:
    """Values mapped to [0, 1] by their finite range (all 1 when they are equal; NaN stays NaN)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return values.copy()
    low, high = finite.min(), finite.max()
    if high == low:
        return np.where(np.isfinite(values), 1.0, np.nan)
    return (values - low) / (high - low)


def _colour(t: float) -> tuple[float, float, float]:
    rgba = matplotlib.colormaps[COLORMAP](0.1 + 0.9 * float(t))
    return (float(rgba[0]), float(rgba[1]), float(rgba[2]))


def _drawer(path: Path, size: tuple[int, int]) -> rdMolDraw2D.MolDraw2D:
    width, height = size
    panel = (width, height - _COLORBAR_HEIGHT)
    if path.suffix.lower() == ".svg":
        return rdMolDraw2D.MolDraw2DSVG(width, height, *panel)
    if path.suffix.lower() == ".png":
        return rdMolDraw2D.MolDraw2DCairo(width, height, *panel)
    raise ValueError(f"{path}: write .png or .svg")


def _colour_bar(drawer: rdMolDraw2D.MolDraw2D, size: tuple[int, int], low: float, high: float, label: str):
    """A horizontal colour bar under the molecule, labelled with the value range."""
    width, height = size
    x0, x1 = 60.0, width - 60.0
    y0 = height - _COLORBAR_HEIGHT + 15.0
    y1 = y0 + 20.0
    steps = 64
    drawer.SetFillPolys(True)
    for k in range(steps):
        drawer.SetColour(_colour(k / (steps - 1)))
        left = x0 + (x1 - x0) * k / steps
        drawer.DrawRect(Point2D(left, y0), Point2D(left + (x1 - x0) / steps + 0.5, y1), rawCoords=True)
    drawer.SetColour((0.0, 0.0, 0.0))
    drawer.SetFontSize(14)
    drawer.DrawString(f"{low:.3g}", Point2D(x0, y1 + 14), 1, rawCoords=True)
    drawer.DrawString(f"{high:.3g}", Point2D(x1, y1 + 14), 2, rawCoords=True)
    drawer.DrawString(label, Point2D(width / 2, y1 + 14), 0, rawCoords=True)


def _render(
    mol: Chem.Mol,
    path: str | Path,
    legend: str,
    label: str,
    values: np.ndarray,
    atoms: dict | None = None,
    radii: dict | None = None,
    bonds: dict | None = None,
    widths: dict | None = None,
    size: tuple[int, int] = (600, 500),
) -> Path:
    """Draw ``mol`` (fresh 2D coordinates, same atom order) with the given highlights and a colour bar."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    drawing = Chem.Mol(mol)
    drawing.RemoveAllConformers()
    rdDepictor.Compute2DCoords(drawing)
    drawing = rdMolDraw2D.PrepareMolForDrawing(drawing, addChiralHs=False)
    drawer = _drawer(path, size)
    drawer.drawOptions().prepareMolsBeforeDrawing = False
    drawer.DrawMoleculeWithHighlights(drawing, legend, atoms or {}, bonds or {}, radii or {}, widths or {})
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    _colour_bar(drawer, size, low, high, label)
    drawer.FinishDrawing()
    text = drawer.GetDrawingText()
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def _ranked(values: np.ndarray) -> list[int]:
    """Indices of the finite values, largest first (ties by index)."""
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")
    return [int(k) for k in order if np.isfinite(values[k])]


def draw_attention(
    mol: Chem.Mol,
    edge_index: torch.Tensor,
    weights: torch.Tensor,
    path: str | Path,
    layer: Selection = "mean",
    head: Selection = "mean",
    title: str | None = None,
    size: tuple[int, int] = (600, 500),
    threshold: float | None = None,
) -> dict:
    """Draw ``mol`` with bonds coloured and thickened by attention; with ``threshold``, only the bonds
    whose weight reaches it are highlighted (the others drawn plain).

    edge_index: [2, E'] (self-loops allowed, ignored); weights: [E'], [E', heads] or [layers, E', heads]
    (see :func:`~atomgraph.evaluation.attention.stack_attention`), reduced by ``layer`` and ``head``
    (an index or "mean"). A bond's weight is the mean of its two directed edges'. Writes PNG or SVG
    by the extension of ``path``.

    Returns ``{"path", "bond_weights" [n_bonds], "bond_widths" {bond: multiplier}, "top_bonds"
    (bond indices, largest weight first), "layer", "head"}``.
    """
    values = bond_weights(mol, edge_index, select_attention(weights, layer, head))
    scaled = _scaled(values)
    bonds, widths = {}, {}
    for k in _ranked(values):
        if threshold is not None and values[k] < threshold:
            continue
        bonds[k] = [_colour(scaled[k])]
        widths[k] = 1 + int((MAX_BOND_WIDTH - 1) * float(scaled[k]) + 0.5)
    legend = f"{title + ': ' if title else ''}attention, layer {layer}, head {head}"
    if threshold is not None:
        legend += f", bonds >= {threshold:g}"
    written = _render(mol, path, legend, "bond attention", values, bonds=bonds, widths=widths, size=size)
    return {
        "path": written,
        "bond_weights": values,
        "bond_widths": widths,
        "top_bonds": _ranked(values),
        "highlighted_bonds": sorted(bonds),
        "layer": layer,
        "head": head,
    }


def draw_attention_heatmaps(
    mol: Chem.Mol, layers: Sequence[tuple[torch.Tensor, torch.Tensor]], path: str | Path, head_layer: int = -1
) -> dict:
    """The atoms x atoms attention matrices of ``mol`` (drawn by
    :func:`~atomgraph.evaluation.plots.attention_heatmaps`): every layer with its heads averaged, and
    every head of layer ``head_layer``. ``layers``: a model's ``attention_weights(graph)``. Returns
    ``{"path", "head_diversity" (one per layer), "matrices" [L, n, n]}``."""
    from atomgraph.evaluation.plots import attention_heatmaps

    n = mol.GetNumAtoms()
    labels = [f"{atom.GetSymbol()}{atom.GetIdx()}" for atom in mol.GetAtoms()]
    per_layer = [
        attention_matrix(index, alpha.reshape(alpha.shape[0], -1).mean(1), n) for index, alpha in layers
    ]
    index, alpha = layers[head_layer]
    alpha = alpha.reshape(alpha.shape[0], -1)
    per_head = [attention_matrix(index, alpha[:, h], n) for h in range(alpha.shape[1])]
    diversity = [head_diversity(i, a) for i, a in layers]
    chosen = head_layer % len(layers)
    written = attention_heatmaps(per_layer, per_head, labels, path, f"layer {chosen}", diversity[chosen])
    return {"path": written, "head_diversity": diversity, "matrices": np.stack(per_layer)}


def draw_atom_importance(
    mol: Chem.Mol,
    importance: torch.Tensor | np.ndarray | Sequence[float],
    path: str | Path,
    title: str | None = None,
    label: str = "atom importance",
    size: tuple[int, int] = (600, 500),
) -> dict:
    """Draw ``mol`` with atoms highlighted (colour and radius) by ``importance`` [n_atoms].

    Returns ``{"path", "atom_weights" [n_atoms], "atom_radii" {atom: radius}, "top_atoms"}``.
    """
    values = np.asarray(torch.as_tensor(importance).detach().cpu().double(), dtype=float).reshape(-1)
    if values.shape[0] != mol.GetNumAtoms():
        raise ValueError(f"{values.shape[0]} importances for a molecule of {mol.GetNumAtoms()} atoms")
    scaled = _scaled(values)
    atoms, radii = {}, {}
    for k in _ranked(values):
        atoms[k] = [_colour(scaled[k])]
        radii[k] = MAX_ATOM_RADIUS * (1 + 2 * scaled[k]) / 3
    legend = f"{title + ': ' if title else ''}{label}"
    written = _render(mol, path, legend, label, values, atoms=atoms, radii=radii, size=size)
    return {"path": written, "atom_weights": values, "atom_radii": radii, "top_atoms": _ranked(values)}


# ------------------------------------------------------------------------------------- attribution


def _per_atom(values: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """|sum over features of gradient x input| per row: [N, ...] -> [N]."""
    return (values * inputs).reshape(inputs.shape[0], -1).sum(dim=1).abs().detach()


def _output(model: nn.Module, graph: Data, target: int) -> torch.Tensor:
    return model(graph)[:, target].sum()


def attribute_atoms(model: nn.Module, graph: Data, target: int = 0) -> tuple[torch.Tensor, str]:
    """Gradient x input per node [N] and the input it was taken on ("x", "embedding" or "pos").

    1. ``x`` (atom features) when the model reads it: |sum_f x_if d y / d x_if|;
    2. else the output of the first module called on ``z`` (an atom embedding, as in SchNet; ``z`` with
       rows appended counts, its first N output rows are taken): |sum_f e_if d y / d e_if|;
    3. else positions: |d y / d pos_i| (Euclidean norm; the sensitivity of y to moving atom i).
    y is output column ``target`` of the model, summed over the graphs of a batch (each graph's
    nodes only affect their own graph). Runs in evaluation mode; the model's mode is restored.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            return _attribute(model, graph.clone(), target)
    finally:
        model.train(was_training)


def _attribute(model: nn.Module, graph: Data, target: int) -> tuple[torch.Tensor, str]:
    x = getattr(graph, "x", None)
    if x is not None and x.is_floating_point():
        graph.x = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_output(model, graph, target), graph.x, allow_unused=True)
        if grad is not None:
            return _per_atom(grad, graph.x), "x"

    captured: list[torch.Tensor] = []

    atoms = graph.z.shape[0]

    def keep_embedding(module: nn.Module, inputs: tuple, output) -> None:
        if captured or not isinstance(output, torch.Tensor) or not output.is_floating_point():
            return
        if any(is_atomic_numbers(t) and output.shape[:1] == t.shape[:1] for t in inputs):
            captured.append(output)  # (rows beyond the atoms: padding, see is_atomic_numbers)

    def is_atomic_numbers(t: object) -> bool:  # z, or a copy with rows appended (SchNet pads its atoms)
        if not torch.is_tensor(t):
            return False
        if t is graph.z:
            return True
        integer = t.dim() == 1 and not t.is_floating_point() and len(t) >= atoms
        return integer and torch.equal(t[:atoms], graph.z)

    handles = [module.register_forward_hook(keep_embedding) for module in model.modules()]
    try:
        y = _output(model, graph, target)
    finally:
        for handle in handles:
            handle.remove()
    if captured and captured[0].requires_grad:
        (grad,) = torch.autograd.grad(y, captured[0], allow_unused=True)
        if grad is not None:
            return _per_atom(grad[:atoms], captured[0][:atoms]), "embedding"

    graph.pos = graph.pos.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_output(model, graph, target), graph.pos, allow_unused=True)
    if grad is None:
        raise ValueError("the model output depends on none of x, an embedding of z, or pos")
    return grad.norm(dim=-1).detach(), "pos"


def gradient_atom_importance(model: nn.Module, graph: Data, target: int = 0) -> torch.Tensor:
    """Importance of every node [N] for output ``target``: gradient x input (see :func:`attribute_atoms`)."""
    return attribute_atoms(model, graph, target)[0]


# --------------------------------------------------------------------------------------- explain


def _load(run, settings):
    """(network, graph settings, module giving real-unit predictions or None) from a run dir or model."""
    from atomgraph.graphs.spec import preset

    if isinstance(run, str | Path):
        from atomgraph.runs import TrainedRun

        trained = TrainedRun.load(run)
        if trained.is_ensemble:
            raise ValueError(f"{run} is an ensemble: explain one of its members ({run}/members/<k>)")
        return trained.module.model, settings or trained.graph, trained.module
    module = run if isinstance(getattr(run, "model", None), nn.Module) else None
    model = module.model if module is not None else run
    if settings is None:  # the spec the module was trained on, else the model card's preset
        settings = getattr(module, "graph_spec", None) or preset(model.card.default_graph)
    return model, settings, module


def molecule_and_graph(smiles: str, settings) -> tuple[Chem.Mol, Data]:
    """The RDKit molecule a graph is built from (same atom order) and the graph, for ``settings``.

    Radius graphs get a 3D conformer (ETKDG + MMFF, seed 0), as in training on SMILES; bond graphs
    without explicit hydrogens hold the heavy atoms only, and so does the molecule returned.
    """
    from atomgraph.structures import from_smiles

    atoms = from_smiles(smiles, embed_3d=settings.kind == "radius")
    mol = atoms.info["rdkit_mol"]
    if settings.kind == "bond" and not settings.explicit_hydrogens:
        mol = Chem.RemoveHs(mol)
    graph = settings.build(atoms)
    z = graph.z[: mol.GetNumAtoms()].tolist()
    if z != [a.GetAtomicNum() for a in mol.GetAtoms()]:
        raise RuntimeError(f"{smiles!r}: graph atoms do not follow the molecule's atom order")
    return mol, graph


def explain(
    run: str | Path | nn.Module,
    smiles: str,
    output_path: str | Path,
    settings=None,
    layer: Selection = "mean",
    head: Selection = "mean",
    target: int = 0,
    size: tuple[int, int] = (600, 500),
    threshold: float | None = None,
) -> dict:
    """Draw why a model predicts what it does for one molecule; returns what was drawn.

    run: a run directory (its best checkpoint and config), a loaded run's ``PredictionModule`` or a bare
    network; ``settings``: the :class:`~atomgraph.data.GraphSpec` to build the graph with
    (default: the run's spec; for a bare model its card's preset).
    Models with ``attention_weights`` (GAT, GATv2, the practical's GAT) get the attention map
    (:func:`draw_attention`, ``layer``/``head``, bonds from ``threshold`` highlighted) and the attention
    matrices per layer and per head beside it (``<output>_matrices.png``,
    :func:`draw_attention_heatmaps`, with the head diversity of every layer), the others gradient x
    input atom importance for output ``target`` (:func:`draw_atom_importance`). PNG or SVG by the
    extension of ``output_path``.

    Returns the drawing's dict plus ``"method"`` ("attention", or the gradient input: "x",
    "embedding", "pos"), ``"smiles"``, ``"mol"`` (the molecule drawn) and ``"prediction"`` [T] (real
    units when a module or run is given, else the network's raw output).
    """
    model, settings, module = _load(run, settings)
    if module is not None and module.info.node_level:
        raise ValueError(
            f"{run if isinstance(run, str | Path) else 'the model'}: explain draws why a model predicts a "
            f"molecule's value; this one predicts a value per atom ({module.info.names}): predict writes them"
        )
    mol, graph = molecule_and_graph(smiles, settings)
    if hasattr(model, "attention_weights"):
        layers = model.attention_weights(graph)
        edge_index, alpha = stack_attention(layers)
        result = draw_attention(mol, edge_index, alpha, output_path, layer, head, smiles, size, threshold)
        result["method"] = "attention"
        matrices_path = Path(output_path).with_name(f"{Path(output_path).stem}_matrices.png")
        head_layer = layer if isinstance(layer, int) else -1
        heatmaps = draw_attention_heatmaps(mol, layers, matrices_path, head_layer)
        result.update(matrices_path=heatmaps["path"], head_diversity=heatmaps["head_diversity"])
    else:
        importance, method = attribute_atoms(model, graph, target)
        n_atoms = mol.GetNumAtoms()
        label = f"|gradient x {method}| for output {target}"
        result = draw_atom_importance(mol, importance[:n_atoms], output_path, smiles, label, size)
        result["method"] = method
    predictor = module if module is not None else model
    was_training = predictor.training
    predictor.eval()
    with torch.no_grad():
        result["prediction"] = predictor(graph)[0].double().cpu().numpy()
    predictor.train(was_training)
    result.update(smiles=smiles, mol=mol)
    return result
