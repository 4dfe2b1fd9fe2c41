"""The permutation null control: a copy of each modality with its rows shuffled.

``perm(k)`` keeps k's marginal distribution (and its width, so it costs the
model exactly as many parameters) but destroys its link to the label and to
the other modalities.  Adding it to N can therefore only change the model
through finite-sample complexity, never through information: γ̂(N+perm(k), N)
is what the estimator reports for "no information", and
γ̂(N+k, N) − γ̂(N+perm(k), N) is the latent gain of k net of that.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from .dataset import MultimodalDataset
from .subsets import Subset, proper_pairs


def control_name(modality: str) -> str:
    return f"perm({modality})"


def with_permuted_copies(ds: MultimodalDataset, seed: int = 0) -> MultimodalDataset:
    """``ds`` plus ``perm(k)`` for every modality k, rows permuted within the training and
    within the test part (so each part keeps its marginal), with a generator keyed by
    (seed, modality)."""
    mods = dict(ds.modalities)
    parts = [np.flatnonzero(ds.split == p) for p in ("train", "test")] if ds.split is not None else [np.arange(ds.n)]
    for i, k in enumerate(ds.names):
        rng = np.random.default_rng([int(seed), i, 23])
        order = np.arange(ds.n)
        for idx in parts:
            order[idx] = idx[rng.permutation(len(idx))]
        mods[control_name(k)] = ds.modalities[k][order]
    return replace(ds, modalities=mods,
                   notes={**ds.notes, "null_control": "perm(k): rows of k permuted within train and within test"})


def control_subsets(subsets: Sequence[Subset]) -> list[Subset]:
    """For every pair (N+k, N) among ``subsets``: the control subset N + perm(k)."""
    out: list[Subset] = []
    for m, n in proper_pairs(subsets):
        (k,) = set(m) - set(n)
        c = tuple(n) + (control_name(k),)
        if c not in out:
            out.append(c)
    return out


def control_of(m: Subset, n: Subset) -> Subset:
    (k,) = set(m) - set(n)
    return tuple(n) + (control_name(k),)
