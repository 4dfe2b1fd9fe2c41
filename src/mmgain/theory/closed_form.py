"""Closed-form risks of the synthetic overlap study, to check training against.

Given the modalities in M, the best predictor of y is linear; each missing
modality k leaves ``(1−ρ)²·d`` of unexplained variance (its own noise ε_k), so
the Bayes excess risk is ``η*(M) = d·(1−ρ)²·(K − |M|)``.  Ordinary least
squares with p = d·|M| + 1 parameters on n Gaussian samples has expected test
MSE ``η*·(1 + p/(n − p − 1))`` — the finite-sample value ``η_n``.
"""
from __future__ import annotations


def eta_star(overlap: float, n_used: int, n_modalities: int = 4, dim: int = 100) -> float:
    return dim * (1.0 - overlap) ** 2 * (n_modalities - n_used)


def eta_finite(overlap: float, n_used: int, n_train: int, n_modalities: int = 4, dim: int = 100) -> float:
    p = dim * n_used + 1
    if n_train <= p + 1:
        return float("inf")
    return eta_star(overlap, n_used, n_modalities, dim) * (1.0 + p / (n_train - p - 1))
