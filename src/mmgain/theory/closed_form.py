"""Closed-form risks of the synthetic overlap study, to check training against.

Given the modalities in M, the best predictor of y is linear; each missing
modality k leaves ``(1−ρ)²·d`` of unexplained variance (its own noise ε_k), so
the Bayes excess risk is ``η*(M) = d·(1−ρ)²·(K − |M|)``.  Ordinary least
squares with p = d·|M| + 1 parameters on n Gaussian samples has expected test
MSE ``η*·(1 + p/(n − p − 1))`` — the finite-sample value ``η_n``.
"""
from __future__ import annotations

import numpy as np


def eta_star(overlap: float, n_used: int, n_modalities: int = 4, dim: int = 100) -> float:
    return dim * (1.0 - overlap) ** 2 * (n_modalities - n_used)


def eta_finite(overlap: float, n_used: int, n_train: int, n_modalities: int = 4, dim: int = 100) -> float:
    p = dim * n_used + 1
    if n_train <= p + 1:
        return float("inf")
    return eta_star(overlap, n_used, n_modalities, dim) * (1.0 + p / (n_train - p - 1))


# ------------------------------------------------- linear-Gaussian data with a known population


def bayes_excess(pop, subset) -> float:
    """η*(M): the risk of the best predictor from the modalities in M, minus the noise."""
    i = pop.index(subset)
    cb = pop.cov @ pop.beta
    return float(pop.beta @ cb - cb[i] @ np.linalg.pinv(pop.cov[np.ix_(i, i)], hermitian=True) @ cb[i])


def linear_eta(pop, subset, W: np.ndarray) -> float:
    """η(g) of the linear encoder g(x) = Wᵀx_M + b, exactly: the best linear head on the latent
    leaves Var y − cᵀ(WᵀΣ_MM W)⁺c of y's variance, c = Cov(z, y) = WᵀΣ_M·β; minus the Bayes risk
    (the noise).  No probe is fitted, so there is no probe error."""
    i = pop.index(subset)
    c = W.T @ (pop.cov[i] @ pop.beta)
    gram = W.T @ pop.cov[np.ix_(i, i)] @ W
    return float(pop.beta @ pop.cov @ pop.beta - c @ np.linalg.pinv(gram, hermitian=True) @ c)


def linear_risk(pop, subset, w: np.ndarray, bias: float) -> float:
    """r(f) = E(y − wᵀx_M − b)² of a linear predictor on M's modalities, exactly."""
    e = pop.beta.copy()
    e[pop.index(subset)] -= w
    return float(e @ pop.cov @ e + bias ** 2 + pop.noise)


def ols_risk(pop, subset, m: float) -> float:
    """Expected test MSE of least squares with an intercept on m Gaussian rows:
    s²·(1 + p/(m − p − 1)), s² the Bayes residual of M, p = dim(M) + 1 (∞ for m ≤ p + 1)."""
    p = len(pop.index(subset)) + 1
    s2 = pop.noise + bayes_excess(pop, subset)
    return float("inf") if m <= p + 1 else s2 * (1 + p / (m - p - 1))


def ols_crossover(pop, big, small) -> float:
    """m*: the sample size from which least squares on ``big`` ⊃ ``small`` has the lower expected
    test MSE (closed form, solved numerically); NaN if ``big`` is never better."""
    from scipy.optimize import brentq
    p = len(pop.index(big)) + 1
    f = lambda m: ols_risk(pop, small, m) - ols_risk(pop, big, m)   # noqa: E731  > 0: big better
    lo, hi = p + 1 + 1e-6, 1e9
    if not f(hi) > 0:
        return float("nan")
    return float(brentq(f, lo + 1e-3, hi))
