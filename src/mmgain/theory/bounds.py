"""The right-hand sides of Huang et al.'s Theorems 1 and 2, term by term, and the paper's
condition for M to beat N.

The theorems need a loss bounded by C and L-Lipschitz in the model's outputs; mmgain uses
the task's bounded loss (:meth:`mmgain.tasks.Task.bounded_loss`): C = 1 and L from
:meth:`~mmgain.tasks.Task.bounded_lipschitz`.  With O > 1 outputs the loss is Lipschitz in
the output *vector*, and the vector contraction inequality (Maurer 2016) gives
R̂(ℓ∘F) ≤ √2·L·Σ_c R̂(F_c); ``LR`` below is that product, the theorems' "L·R(H∘G)".

Theorem 1:  r(ĥ_M∘ĝ_M) − r(ĥ_N∘ĝ_N) ≤ γ_S(M,N) + 8·LR_M + 4C/√m + 2C·√(2 ln(2/δ)/m)
Theorem 2:  η(ĝ_M) ≤ 4·LR_M + 4·LR_[K] + 6C·√(2 ln(2/δ)/m) + L̂(ĥ_M∘ĝ_M, S) − L̂(h*∘g*, S)

A right-hand side ≥ C says nothing (both left-hand sides are at most C): it is *vacuous*.
"""
from __future__ import annotations

import math

import numpy as np

C_LOSS = 1.0      # the bounded losses take values in [0, 1]
DELTA = 0.05


def lr_term(lipschitz: float, rad: np.ndarray, n_outputs: int) -> np.ndarray:
    """L·R(H∘G) for the theorems: √2·L·Σ_c R̂(F_c) with O > 1 outputs (vector contraction),
    L·R̂(F) for one output.  ``rad`` is Σ_c R̂(F_c)."""
    return (math.sqrt(2.0) if n_outputs > 1 else 1.0) * lipschitz * np.asarray(rad)


def confidence(m, extra_log=0.0, delta: float = DELTA) -> np.ndarray:
    """√(2 ln(2/δ')/m) with ln(1/δ') = ln(1/δ) + ``extra_log`` (the union bound's cost)."""
    return np.sqrt(2.0 * (math.log(2.0 / delta) + np.asarray(extra_log)) / np.asarray(m, dtype=np.float64))


def theorem1(gamma, lr_m, m, extra_log=0.0, delta: float = DELTA) -> dict[str, np.ndarray]:
    terms = {"gamma": np.asarray(gamma, dtype=np.float64), "complexity": 8.0 * np.asarray(lr_m),
             "sample": 4.0 * C_LOSS / np.sqrt(np.asarray(m, dtype=np.float64)),
             "confidence": 2.0 * C_LOSS * confidence(m, extra_log, delta)}
    terms["bound"] = sum(terms.values())
    return terms


def theorem2(lr_m, lr_full, centred_train, m, extra_log=0.0, delta: float = DELTA) -> dict[str, np.ndarray]:
    terms = {"complexity_M": 4.0 * np.asarray(lr_m), "complexity_full": 4.0 * np.asarray(lr_full),
             "confidence": 6.0 * C_LOSS * confidence(m, extra_log, delta),
             "train": np.asarray(centred_train, dtype=np.float64)}
    terms["bound"] = sum(terms.values())
    return terms


def condition(train_m, train_n, rad_m, rad_n) -> np.ndarray:
    """The paper's condition for M to beat N: L̂_N − L̂_M ≥ √(C_M/m) − √(C_N/m), with the
    intrinsic complexity C(F) ≈ m·R̂(F)², i.e. √(C/m) = R̂."""
    return (np.asarray(train_n) - np.asarray(train_m)) >= (np.asarray(rad_m) - np.asarray(rad_n))


def crossover_prediction(train_m, train_n, rad_m, rad_n, m) -> np.ndarray:
    """m*_pred = ((√Ĉ_M − √Ĉ_N)/(L̂_N − L̂_M))² with Ĉ = m·R̂²: the sample size from which the
    condition holds if the train-risk gap stays as measured at m.  0 when M is the simpler
    class and fits better (it holds at any m); inf when M fits no better and is more complex."""
    gap = np.asarray(train_n, dtype=np.float64) - np.asarray(train_m, dtype=np.float64)
    num = np.sqrt(np.asarray(m, dtype=np.float64)) * (np.asarray(rad_m) - np.asarray(rad_n))   # √Ĉ_M − √Ĉ_N
    with np.errstate(divide="ignore", invalid="ignore"):
        pred = np.where(gap > 0, (num / np.where(gap > 0, gap, 1.0)) ** 2, np.inf)
    return np.where(num <= 0, np.where(gap >= 0, 0.0, np.inf), pred)
