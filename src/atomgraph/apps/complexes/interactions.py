"""Non-covalent protein-ligand interactions from geometry and atom typing.

Thresholds (:class:`InteractionThresholds`, all distances between heavy atoms unless said otherwise):

============== ===========================================================================================
type           rule
============== ===========================================================================================
hbond          donor-acceptor distance < 3.5 Å; when the donor carries explicit hydrogens, at least one
               D-H...A angle >= 120° (angle reported); without hydrogens on the donor, distance only
hydrophobic    hydrophobic atom (C/S/halogen without N/O neighbour) pairs < 4.5 Å
pi_stacking    aromatic ring centroids < 5.5 Å, centroid offset (projection on either ring plane, the
               smaller) < 2.0 Å, and ring-normal angle < 30° ("parallel") or > 60° ("t-shaped")
salt_bridge    oppositely charged group atoms < 4.0 Å (Lys NZ, Arg NE/NH1/NH2, protonated His ND1/NE2,
               Asp OD1/OD2, Glu OE1/OE2, termini, metal ions vs ligand formal-charge groups)
electrostatic  two charged group atoms < 5.0 Å that are not a salt bridge (attractive 4-5 Å or
               repulsive, same sign)
============== ===========================================================================================

An atom pair can have several types (an H-bond between a carboxylate and Lys NZ is also a salt bridge);
:data:`PRIORITY` picks the one that types a graph edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from atomgraph.apps.complexes.complex import Complex
from atomgraph.apps.complexes.typing import AtomTyping

INTERACTION_TYPES: tuple[str, ...] = ("hbond", "hydrophobic", "pi_stacking", "salt_bridge", "electrostatic")
PRIORITY: tuple[str, ...] = ("salt_bridge", "hbond", "pi_stacking", "electrostatic", "hydrophobic")
"""Order in which a pair's types are tried when one type must be chosen (the first present wins)."""


@dataclass(frozen=True)
class InteractionThresholds:
    """Geometric criteria (Å and degrees); see the module docstring."""

    cutoff: float = 5.0
    hbond_distance: float = 3.5
    hbond_angle: float = 120.0
    hydrophobic_distance: float = 4.5
    pi_distance: float = 5.5
    pi_parallel_angle: float = 30.0
    pi_tshaped_angle: float = 60.0
    pi_offset: float = 2.0
    salt_bridge_distance: float = 4.0
    electrostatic_distance: float = 5.0


@dataclass(frozen=True)
class Interaction:
    """One interaction: ``kind`` (one of :data:`INTERACTION_TYPES`), the ligand and pocket atom indices
    (one each, or the two rings for pi_stacking), ``distance`` (Å; ring centroids for pi_stacking),
    ``angle`` (degrees: best D-H...A for H-bonds, NaN without hydrogens; ring-normal angle for
    pi_stacking; NaN otherwise) and ``detail`` ("ligand donor", "parallel", "attractive", ...)."""

    kind: str
    ligand_atoms: tuple[int, ...]
    protein_atoms: tuple[int, ...]
    distance: float
    angle: float = math.nan
    detail: str = ""


def _angle(a: np.ndarray, vertex: np.ndarray, b: np.ndarray) -> float:
    """Angle a-vertex-b in degrees."""
    u, v = a - vertex, b - vertex
    cos = float(np.dot(u, v) / max(np.linalg.norm(u) * np.linalg.norm(v), 1e-12))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def _hbond_angle(
    donor: int, acceptor_pos: np.ndarray, positions: np.ndarray, typing: AtomTyping
) -> float | None:
    """Best D-H...A angle over the donor's explicit hydrogens; None when it has none."""
    hydrogens = typing.hydrogens(donor)
    if len(hydrogens) == 0:
        return None
    return max(_angle(positions[donor], positions[h], acceptor_pos) for h in hydrogens)


def _ring_geometry(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid [3] and unit normal [3] of a ring's atoms [k, 3]."""
    centroid = positions.mean(axis=0)
    _, _, vt = np.linalg.svd(positions - centroid)
    return centroid, vt[-1] / np.linalg.norm(vt[-1])


def _offset(v: np.ndarray, normal: np.ndarray) -> float:
    """Length of ``v`` projected onto the plane with ``normal``."""
    return float(np.linalg.norm(v - np.dot(v, normal) * normal))


def pi_stacking(
    ligand_positions: np.ndarray,
    ligand_typing: AtomTyping,
    protein_positions: np.ndarray,
    protein_typing: AtomTyping,
    thresholds: InteractionThresholds | None = None,
) -> list[Interaction]:
    """Stacked aromatic ring pairs (parallel or T-shaped) between ligand and protein."""
    t = thresholds or InteractionThresholds()
    found = []
    protein_rings = [(ring, *_ring_geometry(protein_positions[ring])) for ring in protein_typing.rings]
    for lring in ligand_typing.rings:
        lc, ln = _ring_geometry(ligand_positions[lring])
        for pring, pc, pn in protein_rings:
            v = pc - lc
            distance = float(np.linalg.norm(v))
            if distance >= t.pi_distance:
                continue
            angle = math.degrees(math.acos(min(1.0, abs(float(np.dot(ln, pn))))))
            offset = min(_offset(v, ln), _offset(-v, pn))
            if offset >= t.pi_offset:
                continue
            if angle < t.pi_parallel_angle:
                mode = "parallel"
            elif angle > t.pi_tshaped_angle:
                mode = "t-shaped"
            else:
                continue
            found.append(
                Interaction(
                    "pi_stacking", tuple(map(int, lring)), tuple(map(int, pring)), distance, angle, mode
                )
            )
    return found


def detect(
    ligand_positions: np.ndarray,
    ligand_numbers: np.ndarray,
    ligand_typing: AtomTyping,
    protein_positions: np.ndarray,
    protein_numbers: np.ndarray,
    protein_typing: AtomTyping,
    thresholds: InteractionThresholds | None = None,
) -> list[Interaction]:
    """Every interaction between a ligand [L atoms] and a protein/pocket [P atoms] (positions in Å).

    Atom indices in the result refer to the inputs. Hydrogens take part only through the H-bond angle.
    """
    t = thresholds or InteractionThresholds()
    found: list[Interaction] = []
    lig_heavy = np.flatnonzero(np.asarray(ligand_numbers) > 1)
    pro_heavy = np.flatnonzero(np.asarray(protein_numbers) > 1)
    reach = max(
        t.cutoff, t.hbond_distance, t.hydrophobic_distance, t.salt_bridge_distance, t.electrostatic_distance
    )
    if len(lig_heavy) and len(pro_heavy):
        tree = cKDTree(protein_positions[pro_heavy])
        hits = tree.query_ball_point(ligand_positions[lig_heavy], r=reach)
        for l_local, near in enumerate(hits):
            lig = int(lig_heavy[l_local])
            for p_local in sorted(near):
                pro = int(pro_heavy[p_local])
                distance = float(np.linalg.norm(ligand_positions[lig] - protein_positions[pro]))
                found.extend(
                    _pair_interactions(
                        lig,
                        pro,
                        distance,
                        ligand_positions,
                        ligand_typing,
                        protein_positions,
                        protein_typing,
                        t,
                    )
                )
    found.extend(pi_stacking(ligand_positions, ligand_typing, protein_positions, protein_typing, t))
    return found


def _pair_interactions(
    lig, pro, distance, lpos, ltyp, ppos, ptyp, t: InteractionThresholds
) -> list[Interaction]:
    out = []
    if distance < t.hbond_distance:
        for donor_side, donor, acceptor in (("ligand donor", lig, pro), ("protein donor", pro, lig)):
            ligand_donates = donor_side == "ligand donor"
            d_typing, a_typing = (ltyp, ptyp) if ligand_donates else (ptyp, ltyp)
            d_pos, a_pos = (lpos, ppos) if ligand_donates else (ppos, lpos)
            if not (d_typing.donor[donor] and a_typing.acceptor[acceptor]):
                continue
            angle = _hbond_angle(donor, a_pos[acceptor], d_pos, d_typing)
            if angle is None:
                out.append(Interaction("hbond", (lig,), (pro,), distance, math.nan, donor_side))
            elif angle >= t.hbond_angle:
                out.append(Interaction("hbond", (lig,), (pro,), distance, angle, donor_side))
    if distance < t.hydrophobic_distance and ltyp.hydrophobic[lig] and ptyp.hydrophobic[pro]:
        out.append(Interaction("hydrophobic", (lig,), (pro,), distance))
    product = int(ltyp.charge[lig]) * int(ptyp.charge[pro])
    if product < 0 and distance < t.salt_bridge_distance:
        out.append(Interaction("salt_bridge", (lig,), (pro,), distance))
    elif product != 0 and distance < t.electrostatic_distance:
        out.append(
            Interaction(
                "electrostatic", (lig,), (pro,), distance, detail="attractive" if product < 0 else "repulsive"
            )
        )
    return out


def detect_interactions(
    complex_: Complex, thresholds: InteractionThresholds | None = None
) -> list[Interaction]:
    """:func:`detect` on a :class:`Complex`: ligand atoms index ``complex_.ligand``, protein atoms index
    ``complex_.pocket``."""
    return detect(
        complex_.ligand_positions,
        complex_.ligand_numbers,
        complex_.ligand_typing,
        complex_.pocket.positions,
        complex_.pocket.numbers,
        complex_.pocket_typing,
        thresholds,
    )


def interaction_table(complex_: Complex, interactions: list[Interaction]) -> pd.DataFrame:
    """The interactions as a table: kind, detail, ligand atoms (``C12``), residue, protein atoms, distance
    (Å) and angle (degrees)."""
    rows = []
    mol, pocket = complex_.ligand, complex_.pocket
    for item in interactions:
        rows.append(
            {
                "kind": item.kind,
                "detail": item.detail,
                "ligand_atoms": " ".join(
                    f"{mol.GetAtomWithIdx(i).GetSymbol()}{i}" for i in item.ligand_atoms
                ),
                "residue": pocket.residue_label(item.protein_atoms[0]),
                "protein_atoms": " ".join(str(pocket.atom_names[i]) for i in item.protein_atoms),
                "distance": round(item.distance, 3),
                "angle": round(item.angle, 1) if not math.isnan(item.angle) else math.nan,
            }
        )
    columns = ["kind", "detail", "ligand_atoms", "residue", "protein_atoms", "distance", "angle"]
    return pd.DataFrame(rows, columns=columns)
