"""Empirical Rademacher complexities of the classes in Huang et al.'s theorems, as brackets.

R̂_S(F) = E_σ sup_{f∈F} (1/m) Σ_i σ_i f(x_i), σ_i = ±1 uniformly (no absolute value).  The
supremum over a class of trained networks has no closed form, so mmgain brackets it:

* **norm-bounded linear heads** on a frozen latent z, {z ↦ w·z̃ : ‖w‖₂ ≤ B} (z̃ = [z, 1]): the
  supremum is closed form, (B/m)·‖Σ σ_i z̃_i‖, so only the expectation over σ is Monte Carlo
  (:func:`linear_class`); :func:`enumerate_signs` gives it exactly for tiny m (the test);
* **the late-fusion class** (encoders + head), with the path norm P = Σ_j |v_j|·‖ũ_j‖ of the
  trained model (ũ_j = unit j's weights and bias): an *upper* bound
  ``factor·P·√(Σ_i ‖x̃_i‖²)/m`` (:func:`path_norm_upper`; factor 2 for ReLU by contraction,
  1 for linear units), and a *lower* bound from the supremum over single trained units rescaled
  to path norm P, each of which lies in the class (:func:`finite_class`);
* **the algorithm-effective complexity** (Bartlett, Boucheron & Lugosi 2002): train on the
  labels flipped where σ_i = +1 and read (1/m)·Σ σ_i ℓ(f̂_σ(x_i), y_i) — a lower bound of the
  loss class's complexity over whatever the training can reach (:func:`from_fit`).

Data-dependent norms enter through a union bound over a geometric grid (:func:`grid_up`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

GRID_STEP = 2 ** 0.25            # norms are rounded up to powers of 2^(1/4)
_ZETA = math.pi ** 2 / 3 - 1     # Σ_{j ∈ Z} 1/(|j| + 1)² = 1 + 2·(π²/6 − 1)


def signs(m: int, n_draws: int, seed) -> np.ndarray:
    """(n_draws, m) Rademacher signs ±1, reproducible from ``seed``."""
    return np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), size=(n_draws, m))


def enumerate_signs(m: int) -> np.ndarray:
    """All 2^m sign vectors (2^m, m): the exact expectation over σ for tiny m."""
    if m > 20:
        raise ValueError(f"enumerating 2^{m} sign vectors is not feasible; use Monte Carlo")
    bits = (np.arange(2 ** m)[:, None] >> np.arange(m)[None]) & 1
    return 2.0 * bits - 1.0


def linear_class(Z: Tensor, bound, sigma: Tensor) -> Tensor:
    """E_σ sup_{‖w‖≤B} (1/m) Σ σ_i w·z_i = (B/m)·E_σ‖Σ σ_i z_i‖ for Z (..., m, p), σ (D, m):
    the closed-form supremum averaged over the D sign draws; (...,)."""
    m = Z.shape[-2]
    proj = torch.einsum("dm,...mp->...dp", sigma.to(Z.dtype), Z)          # Σ σ_i z_i per draw
    return torch.as_tensor(bound, dtype=Z.dtype) * proj.norm(dim=-1).mean(-1) / m


def finite_class(values: Tensor, sigma: Tensor, symmetric: bool = True) -> Tensor:
    """E_σ max_j (1/m) Σ σ_i f_j(x_i) over a finite set of functions, ``values`` (..., m, J)
    (their values on the sample); with ``symmetric`` each −f_j is in the set too."""
    m = values.shape[-2]
    corr = torch.einsum("dm,...mj->...dj", sigma.to(values.dtype), values) / m
    best = corr.abs() if symmetric else corr
    return best.amax(-1).mean(-1)


def path_norm_upper(path_norm, sum_sq_inputs, m: int, relu: bool) -> float | np.ndarray:
    """Upper bound on R̂ of {x ↦ Σ_j v_j·act(ũ_j·x̃) : Σ_j |v_j|·‖ũ_j‖ ≤ P} (x̃ = [x, 1] per
    modality): the class is P times the symmetric convex hull of single units with ‖ũ‖ ≤ 1,
    whose complexity is at most 2× (ReLU: contraction with the absolute value) or 1× (identity)
    that of the unit-norm linear class, ≤ √(Σ_i ‖x̃_i‖²)/m by Jensen."""
    factor = 2.0 if relu else 1.0
    return factor * np.asarray(path_norm) * np.sqrt(np.asarray(sum_sq_inputs)) / m


def from_fit(sigma: Tensor, losses: Tensor) -> Tensor:
    """(1/m) Σ σ_i ℓ_i for one sign draw σ (..., m) and the losses ℓ (..., m) of the model
    trained on the σ-flipped labels: a lower bound of E sup over the class it was fit in."""
    return (sigma.to(losses.dtype) * losses).mean(-1)


def grid_up(x) -> tuple[np.ndarray, np.ndarray]:
    """Round x ≥ 0 up to the grid {GRID_STEP^j : j ∈ Z}; returns (the grid value, ln(1/w_j)) where
    w_j = 1/(ζ·(|j|+1)²) sums to 1 over the grid: a bound that holds with probability 1 − δ·w_j
    for each grid value holds for all of them at once with probability 1 − δ (the union bound),
    so a data-dependent norm costs ln(1/w_j) inside the confidence term's ln(2/δ)."""
    x = np.maximum(np.asarray(x, dtype=np.float64), 1e-300)
    j = np.ceil(np.log(x) / np.log(GRID_STEP) - 1e-9)
    return GRID_STEP ** j, np.log(_ZETA) + 2.0 * np.log1p(np.abs(j))
