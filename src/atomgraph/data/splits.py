"""Train/validation/test splits: seeded random, Bemis-Murcko scaffold, or read from a file.

A split is a dict ``{"train": int array, "val": ..., "test": ...}`` of row indices; it is saved
with every run as JSON so the exact rows can be reused.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SPLIT_NAMES = ("train", "val", "test")


def split_sizes(n: int, sizes: Sequence[float | int]) -> list[int]:
    """Turn fractions (summing to <= 1) or counts into three counts that fit in n rows."""
    if len(sizes) != 3:
        raise ValueError(f"give three split sizes (train, val, test), got {list(sizes)}")
    fractions = any(isinstance(s, float) for s in sizes)  # [0.8, 0.2, 0] is fractions, not counts
    if fractions and all(isinstance(s, int | float) and s <= 1.0 for s in sizes):
        if sum(sizes) > 1.0 + 1e-9:
            raise ValueError(f"split fractions sum to more than 1: {list(sizes)}")
        counts = [round(s * n) for s in sizes]
        if abs(sum(sizes) - 1.0) < 1e-9:  # the train split takes the rounding remainder
            counts[0] = n - counts[1] - counts[2]
    else:
        counts = [int(s) for s in sizes]
    if any(c < 0 for c in counts) or sum(counts) > n:
        raise ValueError(f"split sizes {counts} do not fit in {n} rows")
    return counts


def seeded_subset(count: int, subset: int | None, seed: int = 0) -> np.ndarray:
    """Row indices of a seeded random sample of ``subset`` of ``count`` rows, sorted (all rows when
    ``subset`` is None or not smaller)."""
    if subset is None or subset >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, subset, replace=False))


def random_split(n: int, sizes: Sequence[float | int], seed: int = 0) -> dict[str, np.ndarray]:
    """Disjoint random subsets of range(n), reproducible for a given seed."""
    counts = split_sizes(n, sizes)
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0, *counts])
    return {name: np.sort(order[bounds[k] : bounds[k + 1]]) for k, name in enumerate(SPLIT_NAMES)}


def murcko_scaffold(smiles: str) -> str:
    """Bemis-Murcko scaffold SMILES ("" for acyclic molecules or unparsable SMILES)."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return ""
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def scaffold_split(
    smiles: Sequence[str], sizes: Sequence[float | int] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, np.ndarray]:
    """Scaffold split (chemprop's balanced variant): molecules sharing a scaffold stay together.

    Scaffold sets larger than half the test size go to training first (so the big classes do not
    land in test by chance); the rest are shuffled with ``seed`` and filled into train, val, test.
    """
    n = len(smiles)
    train_n, val_n, test_n = split_sizes(n, sizes)
    test_takes_rest = train_n + val_n + test_n == n  # else sets that fit nowhere are left out
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles):
        groups[murcko_scaffold(s)].append(i)
    sets = list(groups.values())
    big = [s for s in sets if len(s) > test_n / 2]
    small = [s for s in sets if len(s) <= test_n / 2]
    rng = np.random.default_rng(seed)
    rng.shuffle(big)
    rng.shuffle(small)
    out: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    for group in big + small:
        if len(out["train"]) + len(group) <= train_n:
            out["train"] += group
        elif len(out["val"]) + len(group) <= val_n:
            out["val"] += group
        elif test_takes_rest or len(out["test"]) + len(group) <= test_n:
            out["test"] += group
    return {name: np.sort(np.asarray(rows, dtype=np.int64)) for name, rows in out.items()}


def save_split(split: dict[str, np.ndarray], path: str | Path) -> None:
    Path(path).write_text(json.dumps({k: np.asarray(v).tolist() for k, v in split.items()}))


def load_split(path: str | Path, n: int | None = None) -> dict[str, np.ndarray]:
    """Read a split JSON (``{"train": [...], "val": [...], "test": [...]}``) and check it."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"split file {path}: cannot read it ({error})") from error
    missing = [k for k in SPLIT_NAMES if k not in raw]
    if missing:
        raise ValueError(f"split file {path}: missing {missing}")
    split = {k: np.asarray(raw[k], dtype=np.int64) for k in SPLIT_NAMES}
    check_split(split, n, str(path))
    return split


def check_split(split: dict[str, np.ndarray], n: int | None, source: str = "split") -> None:
    """Raise if the subsets overlap or index past ``n`` rows."""
    seen = np.concatenate([split[k] for k in SPLIT_NAMES])
    if len(np.unique(seen)) != len(seen):
        raise ValueError(f"{source}: train/val/test overlap")
    if n is not None and len(seen) and (seen.min() < 0 or seen.max() >= n):
        raise ValueError(f"{source}: indices outside 0..{n - 1}")
