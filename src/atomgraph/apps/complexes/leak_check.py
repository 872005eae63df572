"""Leak check: how close is each test ligand to the training ligands, and does the error depend on it?

An affinity model can score well on a split whose test ligands are near-copies of training ligands
(the same congeneric series, or the very same ligand bound to another target) without learning
anything about binding. For every test ligand this finds its nearest training ligand by Tanimoto
similarity of ECFP4 bits (Morgan radius 2, 2,048 bits, as the fingerprint baseline uses), flags test
ligands whose canonical SMILES equals a training ligand's, and reports the metrics of the test rows in
similarity bins (:data:`SIMILARITY_BINS`). A metric that falls from the high-similarity bin to the low
one measures memorisation of series, not generalisation.

Every run on ``data.dataset: complexes`` reports it (``metrics.json``: ``leak_check``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from atomgraph.evaluation.fingerprint_baseline import morgan_fingerprints

SIMILARITY_BINS = (0.0, 0.3, 0.5, 0.7, 0.9, 1.0)
"""Bin edges of the nearest-training Tanimoto similarity; each bin is [lo, hi), the last [0.9, 1]."""
CHUNK = 512
"""Test ligands compared with every training ligand at once (memory: CHUNK x training ligands)."""


def tanimoto_nearest(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``test`` [M, B] (0/1 bits), the largest Tanimoto similarity to a row of ``train``
    [N, B] and that row's index; two empty fingerprints have similarity 0. ``[M]`` float, ``[M]`` int."""
    if len(train) == 0:
        return np.zeros(len(test)), np.full(len(test), -1)
    train_bits = train.astype(np.float32)
    train_counts = train_bits.sum(axis=1)
    similarity, nearest = np.zeros(len(test)), np.zeros(len(test), dtype=np.int64)
    for start in range(0, len(test), CHUNK):
        block = test[start : start + CHUNK].astype(np.float32)
        shared = block @ train_bits.T
        union = block.sum(axis=1, keepdims=True) + train_counts[None, :] - shared
        scores = np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
        nearest[start : start + len(block)] = scores.argmax(axis=1)
        similarity[start : start + len(block)] = scores.max(axis=1)
    return similarity, nearest


def _canonical(smiles: Sequence[str]) -> list[str | None]:
    from rdkit import Chem

    out: list[str | None] = []
    for text in smiles:
        mol = Chem.MolFromSmiles(text) if text else None
        out.append(Chem.MolToSmiles(mol) if mol is not None else None)
    return out


def nearest_training(
    train_smiles: Sequence[str], test_smiles: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each test ligand: the Tanimoto similarity (ECFP4) of its nearest training ligand [M], that
    ligand's index [M] (-1 without training ligands) and whether a training ligand has the same
    canonical SMILES [M] bool. A test SMILES RDKit cannot parse has similarity NaN and index -1 (it
    falls in no bin); an unparsable training SMILES matches nothing."""
    train_bits, _ = morgan_fingerprints(list(train_smiles))
    test_bits, _ = morgan_fingerprints(list(test_smiles))
    similarity, nearest = tanimoto_nearest(train_bits, test_bits)
    known = {s for s in _canonical(train_smiles) if s is not None}
    canonical = _canonical(test_smiles)
    identical = np.array([s is not None and s in known for s in canonical], dtype=bool)
    unparsed = np.array([s is None for s in canonical], dtype=bool)
    similarity[unparsed], nearest[unparsed] = np.nan, -1
    return similarity, nearest, identical


def metrics_by_similarity(
    similarity: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, bins: Sequence[float] = SIMILARITY_BINS
) -> list[dict[str, Any]]:
    """Per similarity bin ([lo, hi), the last [lo, hi]): its range, rows and, with at least two rows,
    RMSE, MAE, Pearson and Spearman of ``y_pred`` against ``y_true`` (pK)."""
    from atomgraph.apps.complexes.metrics import affinity_metrics

    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    rows = []
    for lo, hi in pairwise(bins):
        inside = (similarity >= lo) & ((similarity <= hi) if hi == bins[-1] else (similarity < hi))
        entry: dict[str, Any] = {"range": [lo, hi], "rows": int(inside.sum())}
        if inside.sum() >= 2:
            scores = affinity_metrics(y_true[inside], y_pred[inside])
            entry.update({k: scores[k] for k in ("rmse", "mae", "pearson", "spearman")})
        rows.append(entry)
    return rows


def leak_check(
    train_ids: Sequence[str],
    train_smiles: Sequence[str],
    test_ids: Sequence[str],
    test_smiles: Sequence[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    bins: Sequence[float] = SIMILARITY_BINS,
) -> dict[str, Any]:
    """The leak check of one split (see the module docstring).

    ``y_true`` / ``y_pred`` [M] are the test labels and predictions (pK), in the order of ``test_ids``.
    Returns ``ligands`` (per test row: id, nearest training id, similarity, identical SMILES),
    ``identical`` (how many test rows have a training ligand with the same canonical SMILES),
    ``median_similarity`` and ``bins`` (:func:`metrics_by_similarity`).
    """
    similarity, nearest, identical = nearest_training(train_smiles, test_smiles)
    return {
        "fingerprint": "ECFP4 (Morgan radius 2, 2,048 bits), Tanimoto",
        "test_ligands": len(test_ids),
        "unparsed_test_smiles": int(np.isnan(similarity).sum()),
        "identical": int(identical.sum()),
        "median_similarity": float(np.nanmedian(similarity)) if (~np.isnan(similarity)).any() else None,
        "bins": metrics_by_similarity(similarity, y_true, y_pred, bins),
        "ligands": [
            {
                "id": str(test_ids[k]),
                "nearest_train_id": str(train_ids[nearest[k]]) if nearest[k] >= 0 else None,
                "similarity": None if np.isnan(similarity[k]) else float(similarity[k]),
                "identical_smiles": bool(identical[k]),
            }
            for k in range(len(test_ids))
        ],
    }


def format_leak_check(check: dict[str, Any]) -> str:
    """Plain-text lines of a :func:`leak_check` result."""
    lines = [
        f"  leak check ({check['fingerprint']}): {check['test_ligands']} test ligands, median nearest-"
        f"training similarity {check['median_similarity'] or float('nan'):.2f}, {check['identical']} "
        "identical to a training ligand"
    ]
    for entry in check["bins"]:
        lo, hi = entry["range"]
        scores = f"  RMSE {entry['rmse']:.3f}  Spearman {entry['spearman']:.3f}" if "rmse" in entry else ""
        lines.append(f"    similarity {lo:.1f}-{hi:.1f}: {entry['rows']:>5} rows{scores}")
    return "\n".join(lines)
