"""A cross-fitted study whose answer is known, to measure how often an interval covers it.

Two Gaussian classes (means ±μ/2, identity covariance) and the nearest-means rule
w = m̂₁ − m̂₀ (plus ``seed_noise`` on w, which plays the part of a network's random
initialisation).  A fitted rule's population accuracy is Φ in closed form, so the estimand of a
K-fold study — the expected accuracy difference of subsets M and N over training sets of the
folds' size — is exact for every training set and averaged by Monte Carlo.  ``null``: M and N
exchangeable (truth 0 by symmetry); ``effect``: M = N + a weak block (truth > 0).
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
from scipy.special import ndtr


def _fit(X: np.ndarray, y: np.ndarray, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, float]:
    m1, m0 = X[y == 1].mean(0), X[y == 0].mean(0)
    w = m1 - m0 + noise * rng.normal(size=m1.shape)
    return w, float(-w @ (m1 + m0) / 2)


def _population_accuracy(w: np.ndarray, b: float, mu: np.ndarray) -> float:
    nw = np.linalg.norm(w)
    return float(0.5 * ndtr((w @ mu / 2 + b) / nw) + 0.5 * ndtr((w @ mu / 2 - b) / nw))


def _draw(n: int, mu: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    return rng.normal(size=(n, len(mu))) + np.where(y[:, None] == 1, mu / 2, -mu / 2), y


CASES = {"null": (np.full(8, 0.6), np.arange(4), np.arange(4, 8)),
         "effect": (np.r_[np.full(4, 0.6), np.full(4, 0.25)], np.arange(8), np.arange(4))}


def truth(case: str, n_train: int, seed_noise: float, rng: np.random.Generator, draws: int = 4000) -> float:
    """E over training sets of n_train rows of acc(M) − acc(N), in points."""
    if case == "null":
        return 0.0
    mu, M, N = CASES[case]
    diffs = []
    for _ in range(draws):
        X, y = _draw(n_train, mu, rng)
        wM, bM = _fit(X[:, M], y, rng, seed_noise)
        wN, bN = _fit(X[:, N], y, rng, seed_noise)
        diffs.append(_population_accuracy(wM, bM, mu[M]) - _population_accuracy(wN, bN, mu[N]))
    return 100.0 * float(np.mean(diffs))


def coverage(case: str, intervals: Mapping[str, Callable[[np.ndarray], dict]], reps: int = 400, n: int = 600,
             K: int = 5, S: int = 1, seed_noise: float = 0.0, seed: int = 3) -> tuple[dict[str, dict], float]:
    """For each interval function (D (S, K, m) → {"ci": (lo, hi)}): the fraction of ``reps`` studies
    whose interval holds the truth, and its mean half-width.  Returns (results, truth)."""
    rng = np.random.default_rng(seed)
    mu, M, N = CASES[case]
    m = n // K
    target = truth(case, n - m, seed_noise, rng)
    hits = {name: 0 for name in intervals}
    width = {name: 0.0 for name in intervals}
    for _ in range(reps):
        X, y = _draw(n, mu, rng)
        folds = rng.permutation(np.arange(n) % K)
        D = np.zeros((S, K, m))
        for s in range(S):
            for k in range(K):
                te, tr = np.flatnonzero(folds == k)[:m], np.flatnonzero(folds != k)
                for cols, sign in ((M, 1), (N, -1)):
                    w, b = _fit(X[tr][:, cols], y[tr], rng, seed_noise)
                    D[s, k] += sign * 100.0 * ((X[te][:, cols] @ w + b > 0) == y[te])
        for name, f in intervals.items():
            lo, hi = f(D)["ci"]
            hits[name] += lo <= target <= hi
            width[name] += (hi - lo) / 2
    return {name: {"coverage": hits[name] / reps, "half_width": width[name] / reps} for name in intervals}, target


# ------------------------------------------------- learning curves of least squares, known truth


def ols_curves(rho: float, sigma2: float, sizes, seeds: int, d: int = 20,
               rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Per seed and size, the exact expected test MSE of least squares (with an intercept) trained
    on the first n rows of one draw (nested samples, as the runner draws them), on m1 and on m1+m2,
    y = Σx1 + Σx2 + ε, x2 = ρ·x1 + (1−ρ)·z, Var ε = σ²: (β̂ − β*)ᵀΣ(β̂ − β*) + b̂² + the Bayes
    residual of the subset.  No test rows are drawn, so only the training sample varies; the
    expectation over training samples is :func:`mmgain.theory.closed_form.ols_risk`."""
    rng = rng or np.random.default_rng(0)
    sizes = list(sizes)
    n = max(sizes)
    eye = np.eye(d)
    cov12 = np.block([[eye, rho * eye], [rho * eye, (rho ** 2 + (1 - rho) ** 2) * eye]])
    out = {"m1": np.zeros((seeds, len(sizes))), "m1+m2": np.zeros((seeds, len(sizes)))}
    for s in range(seeds):
        x1 = rng.normal(size=(n, d))
        x2 = rho * x1 + (1 - rho) * rng.normal(size=(n, d))
        y = x1.sum(1) + x2.sum(1) + rng.normal(scale=np.sqrt(sigma2), size=n)
        for name, X, beta, cov, base in (("m1", x1, np.full(d, 1 + rho), eye, sigma2 + d * (1 - rho) ** 2),
                                         ("m1+m2", np.hstack([x1, x2]), np.ones(2 * d), cov12, sigma2)):
            A = np.hstack([np.ones((n, 1)), X])
            gram, rhs, start = np.zeros((A.shape[1],) * 2), np.zeros(A.shape[1]), 0
            for g, m in enumerate(sizes):
                gram += A[start:m].T @ A[start:m]
                rhs += A[start:m].T @ y[start:m]
                start = m
                coef = np.linalg.solve(gram, rhs)
                e = coef[1:] - beta
                out[name][s, g] = base + e @ cov @ e + coef[0] ** 2
    return out
