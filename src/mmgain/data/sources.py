"""Data sources by name: what an experiment spec's ``data`` field refers to.

A source builds a :class:`MultimodalDataset` for one data variant and seed.
``per_seed`` sources (generators) draw new data for every seed; fixed sources
(files) return the same rows whatever the seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..registry import Registry
from .dataset import MultimodalDataset
from .synthetic import make_overlap_dataset


@dataclass(frozen=True)
class DataSource:
    build: Callable[..., MultimodalDataset]   # build(seed=..., **variant, **data_args)
    per_seed: bool
    description: str


SOURCES: Registry[DataSource] = Registry("data source")
SOURCES.register("synthetic-overlap", DataSource(
    lambda seed, **kw: make_overlap_dataset(seed=seed, **kw), per_seed=True,
    description="Huang et al. 2021 synthetic study: 4 Gaussian modalities with overlap ρ"))


def load_source(data: str, seed: int, variant: dict[str, Any], data_args: dict[str, Any]) -> MultimodalDataset:
    return SOURCES.get(data).build(seed=seed, **variant, **data_args)


def is_per_seed(data: str) -> bool:
    return SOURCES.get(data).per_seed if data in SOURCES else False
