"""The paper's synthetic overlap study (Huang et al. 2021, Sec. 5 / Table 4).

The paper only says that modality 1 is Gaussian and that a fraction of it is
kept when the other modalities are sampled.  This generator is the one that
reproduces its Table 4 (least squares lands within 1–3 % of every cell):
``x1 ~ N(0, I)``, ``x_k = ρ·x1 + (1−ρ)·ε_k`` for k ≥ 2, ``y = Σ_k Σ_j x_kj``.
"""
from __future__ import annotations

import numpy as np

from ..errors import SpecError
from .dataset import MultimodalDataset


def make_overlap_dataset(overlap: float, seed: int, n_train: int = 7000, n_test: int = 3000,
                         n_modalities: int = 4, dim: int = 100) -> MultimodalDataset:
    """One draw of the overlap study; the noise depends on ``seed`` only, so
    datasets with different ``overlap`` but the same seed are paired."""
    if not 0.0 <= overlap <= 1.0:
        raise SpecError(f"overlap must lie in [0, 1], got {overlap}")
    rng = np.random.default_rng([int(seed), 20210609])
    n = n_train + n_test
    x1 = rng.standard_normal((n, dim))
    mods = {"m1": x1}
    for k in range(2, n_modalities + 1):
        mods[f"m{k}"] = overlap * x1 + (1.0 - overlap) * rng.standard_normal((n, dim))
    y = sum(m.sum(axis=1) for m in mods.values())
    split = np.where(np.arange(n) < n_train, "train", "test")
    return MultimodalDataset(mods, y, task="regression", split=split,
                             name=f"synthetic(overlap={overlap})")
