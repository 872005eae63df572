"""Ligand conformer augmentation: RDKit conformers of each ligand, aligned onto its crystal pose, as
alternative training poses of the complex (``data.complex.conformers: K``).

For every complex, :func:`aligned_conformers` embeds 3K conformers of the ligand (ETKDGv3, fixed seed,
the ligand's own atoms and stereochemistry), aligns each rigidly onto the crystal pose by its heavy
atoms (Kabsch, the same atom on the same atom) and keeps the K closest by heavy-atom RMSD that do not
clash with the pocket (no ligand-protein heavy-atom pair closer than :data:`CLASH_DISTANCE` Å). Each kept
pose becomes a complete complex graph (pocket, interaction edges and their types recomputed for that
pose), stored beside the dataset in its own cache (:func:`build_pose_variants`).

During training, :class:`PoseVariants` makes every visit of a training complex pick uniformly among its
crystal pose and its conformer poses; validation and test rows always use the crystal pose. The
augmentation asks a model to score a complex the same when the ligand sits in a nearby, physically
plausible pose, as it would have to with docked poses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolAlign
from scipy.spatial import cKDTree
from torch_geometric.data import Data
from tqdm.auto import tqdm

from atomgraph.apps.complexes.complex import Complex, make_complex
from atomgraph.apps.complexes.errors import ComplexError
from atomgraph.apps.complexes.graph import ComplexGraphSettings, complex_graph

log = logging.getLogger(__name__)

CLASH_DISTANCE = 2.2
"""Å: a conformer pose with a ligand-protein heavy-atom pair closer than this is dropped (crystal poses
keep heavy atoms >= ~2.5 Å from the protein; hydrogen-bonded pairs sit at 2.6-3.2 Å)."""

EMBED_FACTOR = 3
"""Conformers embedded per conformer kept."""


def aligned_conformers(
    ligand: Chem.Mol, count: int, seed: int = 0, pocket_positions: np.ndarray | None = None
) -> list[tuple[Chem.Mol, float]]:
    """Up to ``count`` poses of ``ligand``: RDKit conformers aligned onto its own pose (module docstring).

    Args:
        ligand: the sanitised ligand with its crystal pose (one conformer; hydrogens as read).
        count: poses to keep.
        seed: ETKDG's random seed (the same seed gives the same poses).
        pocket_positions: [P, 3] Å heavy-atom positions of the protein; poses closer than
            :data:`CLASH_DISTANCE` to any of them are dropped (None: no clash check).

    Returns:
        (pose, rmsd) pairs, closest first: ``pose`` is a copy of ``ligand`` (same atoms, same order)
        with the aligned coordinates as its only conformer; ``rmsd`` the heavy-atom RMSD (Å) to the
        crystal pose after alignment. Empty when RDKit cannot embed the molecule.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    heavy = [atom.GetIdx() for atom in ligand.GetAtoms() if atom.GetAtomicNum() > 1]
    if len(heavy) < 3:
        return []
    probe = Chem.Mol(ligand)
    probe.RemoveAllConformers()
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed) + 1  # RDKit embeds every conformer alike from seed 0
    ids = list(AllChem.EmbedMultipleConfs(probe, numConfs=EMBED_FACTOR * count, params=params))
    if not ids:
        return []
    atom_map = [(i, i) for i in heavy]
    tree = cKDTree(pocket_positions) if pocket_positions is not None and len(pocket_positions) else None
    found = []
    for conformer_id in ids:
        rmsd = rdMolAlign.AlignMol(probe, ligand, prbCid=conformer_id, atomMap=atom_map)
        positions = probe.GetConformer(conformer_id).GetPositions()
        if not np.isfinite(positions).all():
            continue
        if tree is not None and tree.query(positions[heavy])[0].min() < CLASH_DISTANCE:
            continue
        found.append((float(rmsd), conformer_id))
    poses = []
    for rmsd, conformer_id in sorted(found)[:count]:
        pose = Chem.Mol(ligand)
        pose.RemoveAllConformers()
        conformer = Chem.Conformer(probe.GetConformer(conformer_id))
        pose.AddConformer(conformer, assignId=True)
        poses.append((pose, rmsd))
    return poses


def pose_graphs(
    complex_: Complex, settings: ComplexGraphSettings, y: np.ndarray, count: int, seed: int = 0
) -> list[tuple[Data, float]]:
    """Complex graphs of ``complex_`` with its ligand in up to ``count`` aligned conformer poses, each with
    the pose's heavy-atom RMSD (Å). Poses whose complex cannot be built are left out."""
    protein = complex_.protein
    positions = protein.positions[protein.heavy]
    graphs = []
    for pose, rmsd in aligned_conformers(complex_.ligand, count, seed, positions):
        try:
            moved = make_complex(protein, pose, complex_.pocket_radius, complex_.name)
            graphs.append((complex_graph(moved, settings, y), rmsd))
        except (ComplexError, ValueError, RuntimeError) as error:
            log.debug("%s: a conformer pose was left out: %s", complex_.name, error)
    return graphs


def build_pose_variants(
    rows: Iterable, ids: list[str], settings: ComplexGraphSettings, count: int, progress: bool = True
):
    """The conformer poses of every row of a built dataset whose ``meta.ids`` are ``ids``.

    ``rows`` are the dataset's :class:`~atomgraph.apps.complexes.dataset.ComplexRow` (rows not in ``ids``,
    the ones the dataset skipped, are passed over). Returns a ``ComplexDataset`` of the pose graphs whose
    ``meta.ids`` name each pose's complex and ``meta.settings`` hold the pose RMSDs (Å), or None when no
    complex gave a pose.
    """
    from atomgraph.apps.complexes.dataset import AFFINITY_TARGET, ComplexDataset
    from atomgraph.data.graph_dataset import DatasetMeta

    wanted = set(ids)
    graphs, parents, rmsds = [], [], []
    rows = [row for row in rows if row.id in wanted]
    for row in tqdm(rows, desc=f"conformer poses (x{count})", disable=not progress):
        try:
            complex_ = row.make()
        except (ComplexError, ValueError, RuntimeError, KeyError):
            continue
        for graph, rmsd in pose_graphs(complex_, settings, row.y, count):
            graphs.append(graph)
            parents.append(row.id)
            rmsds.append(rmsd)
    if not graphs:
        return None
    meta = DatasetMeta("conformer_poses", AFFINITY_TARGET, settings={"rmsd": rmsds, "conformers": count})
    meta.ids = parents
    return ComplexDataset(graphs, meta)


class PoseVariants:
    """The conformer poses of a dataset's rows, picked at random for training samples.

    Args:
        poses: the pose graphs (:func:`build_pose_variants`), ``meta.ids`` naming each pose's complex.
        ids: ``meta.ids`` of the dataset the poses belong to (row i of the dataset is ``ids[i]``).
    """

    def __init__(self, poses, ids: list[str]):
        self.poses = poses
        row_of = {name: row for row, name in enumerate(ids)}
        self.by_row: dict[int, list[int]] = {}
        for index, name in enumerate(poses.meta.ids):
            if name in row_of:
                self.by_row.setdefault(row_of[name], []).append(index)

    def pick(self, row: int, crystal: Data) -> Data:
        """Row ``row``'s crystal graph or one of its conformer graphs, uniformly (torch's generator)."""
        choices = self.by_row.get(int(row))
        if not choices:
            return crystal
        choice = int(torch.randint(len(choices) + 1, (1,)))
        return crystal if choice == 0 else self.poses.get(choices[choice - 1])

    def coverage(self, rows: Iterable[int]) -> tuple[int, int]:
        """(rows with at least one pose, poses) among ``rows``."""
        counts = [len(self.by_row.get(int(r), [])) for r in rows]
        return sum(c > 0 for c in counts), sum(counts)
