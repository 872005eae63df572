"""The sequence track (GraphDTA-style): protein sequence tokens + ligand bonded graph from a CSV.

A sample is the ligand's bonded graph (:func:`~atomgraph.graphs.bond_graph`, implicit hydrogens, 47
atom / 11 bond features) with two more fields:

========== ================ ======= ==================================================================
field      shape            dtype   meaning
========== ================ ======= ==================================================================
seq        [1, max_length]  int64   protein sequence tokens: 1..26 for A..Z, 0 = padding; longer
                                    sequences are truncated
seq_length [1]              int64   number of tokens before padding
========== ================ ======= ==================================================================

Plain ``Data`` objects batch these correctly (``seq`` stacks to [B, max_length]), so the datasets are
ordinary :class:`~atomgraph.data.GraphDataset` s.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data
from tqdm.auto import tqdm

from atomgraph.apps.complexes.protein import Protein
from atomgraph.apps.complexes.residues import one_letter_sequence, residue_type
from atomgraph.data.build import cache_dir, load_or_build
from atomgraph.data.graph_dataset import DatasetMeta, GraphDataset
from atomgraph.graphs import bond_graph
from atomgraph.structures import StructureError
from atomgraph.targets import targets_from_columns

log = logging.getLogger(__name__)

SEQUENCE_VOCAB = 27
"""Token ids: 0 padding, 1..26 the letters A..Z (unknown residues are X)."""
DEFAULT_MAX_LENGTH = 1000


def encode_sequence(sequence: str, max_length: int = DEFAULT_MAX_LENGTH) -> torch.Tensor:
    """Tokens [1, max_length] (int64) of a one-letter protein sequence; raises for non-letters."""
    cleaned = "".join(sequence.split()).upper()
    if not cleaned:
        raise ValueError("empty protein sequence")
    bad = sorted({c for c in cleaned if not ("A" <= c <= "Z")})
    if bad:
        raise ValueError(f"protein sequence has characters that are not amino-acid letters: {bad}")
    tokens = torch.zeros((1, max_length), dtype=torch.long)
    codes = [ord(c) - 64 for c in cleaned[:max_length]]
    tokens[0, : len(codes)] = torch.tensor(codes, dtype=torch.long)
    return tokens


def protein_sequence(protein: Protein, chain: str | None = None) -> str:
    """One-letter sequence of the amino-acid residues of ``protein`` (one chain, or all chains joined)."""
    residues = protein.residues()
    first = np.array([np.flatnonzero(protein.residue_index == r)[0] for r in residues], dtype=np.int64)
    names = [str(protein.residue_names[a]) for a in first if chain is None or protein.chain_ids[a] == chain]
    return one_letter_sequence([n for n in names if residue_type(n) != "other"])


def sequence_graph(
    smiles: str, sequence: str, y: Sequence[float] | None = None, max_length: int = 1000
) -> Data:
    """The sample of one (SMILES, sequence) pair (fields in the module docstring)."""
    graph = bond_graph(smiles)
    graph.seq = encode_sequence(sequence, max_length)
    graph.seq_length = torch.tensor([min(len("".join(sequence.split())), max_length)])
    values = np.full((1, 0), np.nan) if y is None else np.asarray(y, dtype=float).reshape(1, -1)
    graph.y = torch.tensor(values, dtype=torch.get_default_dtype())
    return graph


def load_sequence_csv(
    path: str | Path,
    smiles_column: str = "smiles",
    sequence_column: str = "sequence",
    target_columns: Sequence[str] = ("affinity",),
    max_length: int = DEFAULT_MAX_LENGTH,
    cache: str | Path | None = None,
    progress: bool = True,
) -> GraphDataset:
    """A dataset of (ligand graph, protein sequence, label) rows from a CSV; bad rows are skipped and
    listed in ``meta.skipped`` (an invalid SMILES or sequence)."""
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read CSV ({error})") from error
    missing = [c for c in [smiles_column, sequence_column, *target_columns] if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; it has {list(table.columns)}")
    info = targets_from_columns(list(target_columns))
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    columns = "|".join([smiles_column, sequence_column, *target_columns, str(max_length)])
    key = hashlib.sha256(columns.encode()).hexdigest()[:8]
    file = cache_dir(cache) / f"sequence-{Path(path).stem}-{digest}-{key}.pt"

    def build() -> GraphDataset:
        meta = DatasetMeta(Path(path).stem, info, settings={"source": str(path), "max_length": max_length})
        values = table[list(target_columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        graphs, ids, smiles_kept = [], [], []
        rows = zip(table[smiles_column].astype(str), table[sequence_column].astype(str), strict=True)
        for index, (smiles, sequence) in enumerate(tqdm(rows, total=len(table), disable=not progress)):
            row_id = f"{Path(path).name}:{index + 2}"
            try:
                graphs.append(sequence_graph(smiles, sequence, values[index], max_length))
            except (StructureError, ValueError, RuntimeError) as error:
                meta.skipped.append({"index": index, "id": row_id, "error": str(error)})
                continue
            ids.append(row_id)
            smiles_kept.append(smiles)
        if meta.skipped:
            log.warning("%s: skipped %d bad rows (first: %s)", path, len(meta.skipped), meta.skipped[0])
        meta.ids, meta.smiles = ids, smiles_kept
        return GraphDataset(graphs, meta)

    dataset = load_or_build(file, build)
    dataset.meta.targets = info
    return dataset
