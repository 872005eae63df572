"""Data: datasets as graphs, a processed cache, splits and target normalisation."""

from atomgraph.data.build import build_dataset, cache_dir
from atomgraph.data.csv_dataset import load_csv
from atomgraph.data.graph_dataset import DatasetMeta, GraphDataset
from atomgraph.data.normalization import TargetNormalizer
from atomgraph.data.splits import load_split, random_split, save_split, scaffold_split
from atomgraph.data.structures_dataset import load_structures, structures_dataset

__all__ = [
    "DatasetMeta",
    "GraphDataset",
    "TargetNormalizer",
    "build_dataset",
    "cache_dir",
    "load_csv",
    "load_split",
    "load_structures",
    "random_split",
    "save_split",
    "scaffold_split",
    "structures_dataset",
]
