"""Splits of complex datasets by group (protein target): hold out targets, or leave one target out.

Random splits and splits read from a file are :func:`atomgraph.data.random_split` and
:func:`atomgraph.data.load_split`; every function here returns the same ``{"train", "val", "test"}``
dict of sorted int64 row indices.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from atomgraph.data.splits import check_split


def group_split(
    groups: Sequence[str],
    test_groups: Sequence[str],
    val_groups: Sequence[str] = (),
    val_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Rows of ``test_groups`` are the test set; validation is ``val_groups`` if given, else a seeded
    random ``val_fraction`` of the remaining rows; the rest is training.

    Raises ValueError for unknown group names or an empty test set.
    """
    groups = np.asarray([str(g) for g in groups])
    known = set(groups.tolist())
    unknown = sorted((set(test_groups) | set(val_groups)) - known)
    if unknown:
        raise ValueError(f"unknown groups {unknown}; the dataset has {sorted(known)}")
    if set(test_groups) & set(val_groups):
        raise ValueError(f"groups in both test and validation: {sorted(set(test_groups) & set(val_groups))}")
    test = np.flatnonzero(np.isin(groups, list(test_groups)))
    if len(test) == 0:
        raise ValueError("the test groups select no rows")
    rest = np.setdiff1d(np.arange(len(groups)), test)
    if val_groups:
        val = np.flatnonzero(np.isin(groups, list(val_groups)))
    else:
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        shuffled = np.random.default_rng(seed).permutation(rest)
        val = shuffled[: round(val_fraction * len(rest))]
    train = np.setdiff1d(rest, val)
    split = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    check_split(split, len(groups))
    return split


def leave_one_group_out(
    groups: Sequence[str], val_fraction: float = 0.1, seed: int = 0
) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """For every group (sorted): (group, split with that group as the test set)."""
    for group in sorted({str(g) for g in groups}):
        yield group, group_split(groups, [group], val_fraction=val_fraction, seed=seed)
