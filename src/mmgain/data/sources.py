"""Data sources: what an experiment spec's ``data`` field refers to.

A registered name (``mfeat``, ``synthetic-overlap``) or a path (see
:func:`mmgain.data.loaders.load_path`).  ``per_seed`` sources (generators)
draw new data for every seed; files return the same rows whatever the seed.
Data without a train/test split get one here (:func:`make_split`), recorded
in ``dataset.notes``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..registry import Registry
from .dataset import MultimodalDataset
from .loaders import load_mfeat, load_path
from .splits import make_split
from .synthetic import make_linear_dataset, make_overlap_dataset


@dataclass(frozen=True)
class DataSource:
    build: Callable[..., MultimodalDataset]   # build(seed=..., **variant, **data_args)
    per_seed: bool
    description: str


SOURCES: Registry[DataSource] = Registry("data source")
SOURCES.register("synthetic-overlap", DataSource(
    lambda seed, **kw: make_overlap_dataset(seed=seed, **kw), per_seed=True,
    description="Huang et al. 2021 synthetic study: 4 Gaussian modalities with overlap ρ"))
SOURCES.register("linear-gaussian", DataSource(
    lambda seed, **kw: make_linear_dataset(seed=seed, **kw), per_seed=True,
    description="Gaussian modalities with overlap ρ, label noise and per-modality weights; known population"))
SOURCES.register("mfeat", DataSource(
    lambda seed, **kw: load_mfeat(), per_seed=False,
    description="UCI Multiple Features, 6 views of 2000 handwritten digits (embedded)"))

SPLIT_ARGS = ("split_seed", "test_fraction")


def load_source(data: str, seed: int, variant: dict[str, Any], data_args: dict[str, Any],
                split: bool = True) -> MultimodalDataset:
    """The dataset of a source; data without a split get one unless ``split`` is False (cross-fitting
    makes its own folds)."""
    split_args = {k: data_args[k] for k in SPLIT_ARGS if k in data_args}
    rest = {k: v for k, v in data_args.items() if k not in SPLIT_ARGS}
    if data in SOURCES:
        ds = SOURCES.get(data).build(seed=seed, **variant, **rest)
    else:
        ds = load_path(data, **rest)
    if ds.split is None and split:
        ds = make_split(ds, seed=split_args.get("split_seed", 0), test_fraction=split_args.get("test_fraction", 0.2))
    return ds


def is_per_seed(data: str) -> bool:
    return SOURCES.get(data).per_seed if data in SOURCES else False
