"""Linear-Gaussian generators with a known population: the paper's synthetic overlap study
(Huang et al. 2021, Sec. 5 / Table 4) and its extensions with label noise and a weak modality.

The paper only says that modality 1 is Gaussian and that a fraction of it is kept when the
other modalities are sampled.  This generator is the one that reproduces its Table 4 (least
squares lands within 1–3 % of every cell): ``x1 ~ N(0, I)``, ``x_k = ρ·x1 + (1−ρ)·ε_k`` for
k ≥ 2, ``y = Σ_k w_k Σ_j x_kj + ε`` with w_k = 1 and no noise in the paper's study.  Because the
distribution is known, every dataset carries its :class:`Population` (covariance, coefficients,
noise), from which risks and η of linear models follow exactly (:mod:`mmgain.theory.closed_form`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import SpecError
from .dataset import MultimodalDataset


@dataclass(frozen=True)
class Population:
    """y = βᵀx + ε, x ~ N(0, Σ) over the modalities concatenated in ``names`` order, Var ε = noise."""

    names: tuple[str, ...]
    dims: tuple[int, ...]
    cov: np.ndarray
    beta: np.ndarray
    noise: float

    def index(self, subset: Sequence[str]) -> np.ndarray:
        """Columns of x (in ``names`` order) that belong to the modalities of ``subset``."""
        starts = np.concatenate([[0], np.cumsum(self.dims)])
        return np.concatenate([np.arange(starts[i], starts[i + 1]) for i, k in enumerate(self.names) if k in subset])


def make_linear_dataset(seed: int, n_train: int = 7000, n_test: int = 3000, n_modalities: int = 4, dim: int = 100,
                        overlap: float = 0.0, noise: float = 0.0, weights: Sequence[float] | None = None,
                        name: str | None = None) -> MultimodalDataset:
    """One draw; the features depend on ``seed`` only, so datasets with different ``overlap``,
    ``noise`` or ``weights`` but the same seed are paired."""
    if not 0.0 <= overlap <= 1.0:
        raise SpecError(f"overlap must lie in [0, 1], got {overlap}")
    if noise < 0:
        raise SpecError(f"noise (the variance of the label noise) must be ≥ 0, got {noise}")
    w = np.ones(n_modalities) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n_modalities,):
        raise SpecError(f"weights needs one value per modality ({n_modalities}), got {list(w)}")
    rng = np.random.default_rng([int(seed), 20210609])
    n = n_train + n_test
    x1 = rng.standard_normal((n, dim))
    mods = {"m1": x1}
    for k in range(2, n_modalities + 1):
        mods[f"m{k}"] = overlap * x1 + (1.0 - overlap) * rng.standard_normal((n, dim))
    y = sum(wk * m.sum(axis=1) for wk, m in zip(w, mods.values()))
    if noise > 0:
        y = y + np.sqrt(noise) * rng.standard_normal(n)
    # Cov(x1, x1) = I, Cov(x1, x_k) = ρI, Cov(x_k, x_k) = (ρ² + (1−ρ)²)I, Cov(x_k, x_l) = ρ²I
    c = np.empty((n_modalities, n_modalities))
    c[0, 0], c[0, 1:], c[1:, 0] = 1.0, overlap, overlap
    c[1:, 1:] = overlap ** 2
    np.fill_diagonal(c[1:, 1:], overlap ** 2 + (1 - overlap) ** 2)
    pop = Population(tuple(mods), (dim,) * n_modalities, np.kron(c, np.eye(dim)), np.repeat(w, dim), float(noise))
    split = np.where(np.arange(n) < n_train, "train", "test")
    return MultimodalDataset(mods, y, task="regression", split=split, population=pop,
                             name=name or f"linear(overlap={overlap}, noise={noise})")


def make_overlap_dataset(overlap: float, seed: int, n_train: int = 7000, n_test: int = 3000,
                         n_modalities: int = 4, dim: int = 100) -> MultimodalDataset:
    """One draw of the paper's overlap study (no noise, equal weights)."""
    return make_linear_dataset(seed, n_train, n_test, n_modalities, dim, overlap,
                               name=f"synthetic(overlap={overlap})")
