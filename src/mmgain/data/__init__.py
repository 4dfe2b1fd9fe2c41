"""Data: the dataset model, validation, subsets, splits, sources and loaders."""
from .dataset import DataError, MultimodalDataset
from .subsets import enumerate_subsets, parse_subset, proper_pairs, select_subsets, subset_name
from .synthetic import make_overlap_dataset

__all__ = ["DataError", "MultimodalDataset", "enumerate_subsets", "parse_subset", "proper_pairs",
           "select_subsets", "subset_name", "make_overlap_dataset"]
