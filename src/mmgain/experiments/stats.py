"""Statistics for paired comparisons: seeds × test rows, multiplicity, equivalence.

Seeds pair the models of two subsets (same sample, minibatch order and initial
encoders), and so do the test rows (the same rows score both).  A difference
therefore varies with the seed *and* with which rows happen to be in the test
set; :func:`two_level` counts both.  The other functions are the standard
pieces: an exact sign-flip test for when the t statistic degenerates, Holm and
Benjamini–Yekutieli adjustments, and a TOST equivalence test.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np
from scipy import stats

TINY_P = float(np.finfo(np.float64).tiny)   # p-values are floored here: never 0


def sign_flip_p(d: Sequence[float]) -> float:
    """Exact two-sided sign-flip (randomisation) p-value of mean(d) = 0 for paired differences.

    Every one of the 2^n sign patterns is enumerated (n ≤ 16), so the smallest
    possible p is 2/2^n — with 4 seeds 0.125, never 0.
    """
    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    if n == 0 or not np.any(d):
        return 1.0
    if n > 16:
        raise ValueError("sign_flip_p enumerates 2^n patterns; use the t-test above 16 pairs")
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    observed = abs(d.mean())
    return float(np.mean(np.abs(signs @ d / n) >= observed - 1e-12 * max(1.0, observed)))


def two_level(components: Sequence[tuple[float, np.ndarray]], shared_rows: bool = True,
              confidence: float = 0.95) -> dict:
    """A paired difference estimated over seeds and rows, with a CI that counts both.

    ``components`` are ``(weight, D)`` with D (S, n_c) the per-row differences of
    seed s on the rows of component c (e.g. test rows; for the corrected γ̂ also
    training rows, each with weight ½); the estimate is Σ_c w_c · mean(D_c).

    Its variance is the seed variance of the per-seed estimates over S plus,
    when the rows are the same for every seed (``shared_rows``), the row
    variance of the seed-averaged per-row differences over n_c.  The two
    overlap in the seed × row interaction, so the sum is slightly
    conservative.  Degrees of freedom: Welch–Satterthwaite.  With rows drawn
    anew per seed (generated data) the seed variance already holds the row
    sampling, so only it is used.  When the variance is 0 the t-test
    degenerates and p is the exact sign-flip p over seeds.
    """
    per_seed = sum(w * np.asarray(D, np.float64).mean(1) for w, D in components)   # (S,)
    S = len(per_seed)
    mean = float(per_seed.mean())
    parts: list[tuple[float, float]] = []                   # (variance of the mean, df)
    if S > 1:
        parts.append((float(per_seed.var(ddof=1)) / S, S - 1))
    if shared_rows or S == 1:
        for w, D in components:
            row = np.asarray(D, np.float64).mean(0)
            if len(row) > 1:
                parts.append((w * w * float(row.var(ddof=1)) / len(row), len(row) - 1))
    var = sum(v for v, _ in parts)
    out = {"mean": mean, "n_seeds": S, "seed_var": parts[0][0] if S > 1 else math.nan, "var": var}
    if not parts:
        return {**out, "se": math.nan, "df": math.nan, "ci": (math.nan, math.nan), "p_value": math.nan}
    if var <= 0.0:
        return {**out, "se": 0.0, "df": math.nan, "ci": (mean, mean),
                "p_value": sign_flip_p(per_seed) if S <= 16 else (1.0 if mean == 0 else TINY_P)}
    df = var ** 2 / sum(v * v / d for v, d in parts if v > 0)
    se = math.sqrt(var)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    p = max(float(2 * stats.t.sf(abs(mean) / se, df)), TINY_P)
    return {**out, "se": se, "df": df, "ci": (mean - half, mean + half), "p_value": p}


def tost_p(mean: float, se: float, df: float, margin: float) -> float:
    """Two one-sided tests of |μ| ≥ margin (H0) against |μ| < margin: p = max of the two.

    p < α claims equivalence within ±margin at level α (the 1−2α interval lies
    inside the margin).  A zero standard error gives 0-or-1 evidence.
    """
    if not math.isfinite(mean) or margin <= 0:
        return 1.0
    if not se > 0 or not math.isfinite(se):
        return TINY_P if abs(mean) < margin else 1.0
    p_low = float(stats.t.sf((mean + margin) / se, df))    # H0: μ ≤ −margin
    p_high = float(stats.t.cdf((mean - margin) / se, df))  # H0: μ ≥ +margin
    return max(p_low, p_high, TINY_P)


def _adjust(p: Sequence[float], adjust_sorted) -> np.ndarray:
    """Apply ``adjust_sorted`` (ascending finite p-values → adjusted) in place of the finite
    entries; NaN stays NaN and does not count towards the family."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if len(ok):
        order = ok[np.argsort(p[ok], kind="stable")]
        out[order] = adjust_sorted(p[order])
    return out


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error; confirmatory)."""
    def step_down(ps: np.ndarray) -> np.ndarray:
        m = len(ps)
        return np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * ps))
    return _adjust(p, step_down)


def benjamini_yekutieli(p: Sequence[float]) -> np.ndarray:
    """Benjamini–Yekutieli q-values (false discovery rate under any dependence; exploratory)."""
    def step_up(ps: np.ndarray) -> np.ndarray:
        m = len(ps)
        q = ps * m * float(np.sum(1.0 / np.arange(1, m + 1))) / np.arange(1, m + 1)
        return np.minimum(1.0, np.minimum.accumulate(q[::-1])[::-1])
    return _adjust(p, step_up)


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper–Pearson) 1 − α interval for a binomial proportion k/n."""
    from scipy.stats import beta
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi
