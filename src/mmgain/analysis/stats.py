"""Statistics for paired comparisons: seeds × test rows, multiplicity, equivalence.

Seeds pair the models of two subsets (same sample, minibatch order and initial
encoders), and so do the test rows (the same rows score both).  A difference
therefore varies with the seed *and* with which rows happen to be in the test
set; :func:`two_level` counts both, and :func:`cross_fitted` does the same when every row is a
test row of one of K folds.  The other functions are the standard pieces: an exact sign-flip test
for when the t statistic degenerates, the Benjamini–Yekutieli adjustment of the exploratory
family, intervals at a simultaneous level, and the rows a design needs to decide.
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


def cross_fitted(D: np.ndarray, confidence: float = 0.95) -> dict:
    """A paired difference estimated by K-fold cross-fitting, with a CI that stays honest.

    ``D`` is (S, K, m): seed s's per-row differences on the m test rows of fold k, each row
    scored by the models that did not train on it.  The estimate is the mean over all.

    Two sources of chance, as in :func:`two_level`: the rows (pooled within-fold variance of
    the seed-averaged row differences, over the K·m rows), and the models (the spread of the
    S·K fold-model means beyond what their rows explain, τ̂²).  The folds' models are trained on
    overlapping rows, so their means are correlated and τ̂²/J under-states the model part;
    following Nadeau & Bengio (2003) it is inflated to (1/J + 1/(K−1))·τ̂², the corrected
    resampled-t factor with n_test/n_train = 1/(K−1).  Treating every row as independent
    (the naive CV interval, :func:`naive_cross_fitted`) ignores the model part and
    under-covers when models vary (measured in ``tests/test_cv_coverage.py``; Bates, Hastie &
    Tibshirani 2023).  Degrees of freedom: Welch–Satterthwaite."""
    D = np.asarray(D, np.float64)
    S, K, m = D.shape
    mean = float(D.mean())
    rows = D.mean(0)                                                 # (K, m): seed-averaged
    n = K * m
    within = float(((rows - rows.mean(1, keepdims=True)) ** 2).sum() / max(K * (m - 1), 1))
    units = D.mean(2).reshape(-1)                                    # the S·K fold-model means
    J = S * K
    tau2 = max(0.0, float(units.var(ddof=1)) - within / m) if J > 1 else 0.0
    parts = [(within / n, K * (m - 1)), ((1.0 / J + 1.0 / (K - 1)) * tau2, J - 1)]
    return _t_result(mean, [(v, d) for v, d in parts if v > 0 and d > 0], confidence,
                     {"n_seeds": S, "n_folds": K, "row_var": within, "model_part": parts[1][0], "n_rows": n})


def naive_cross_fitted(D: np.ndarray, confidence: float = 0.95) -> dict:
    """The naive CV interval: every scored row an independent draw (seed-averaged).  Kept to be
    measured against :func:`cross_fitted`, never used for a verdict."""
    D = np.asarray(D, np.float64)
    rows = D.mean(0).reshape(-1)
    return _t_result(float(rows.mean()), [(float(rows.var(ddof=1)) / len(rows), len(rows) - 1)], confidence, {})


def _t_result(mean: float, parts: list[tuple[float, float]], confidence: float, extra: dict) -> dict:
    var = sum(v for v, _ in parts)
    out = {**extra, "mean": mean, "var": var}
    if var <= 0.0:
        return {**out, "se": 0.0, "df": math.nan, "ci": (mean, mean), "p_value": 1.0 if mean == 0 else TINY_P}
    df = var ** 2 / sum(v * v / d for v, d in parts)
    se = math.sqrt(var)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return {**out, "se": se, "df": df, "ci": (mean - half, mean + half),
            "p_value": max(float(2 * stats.t.sf(abs(mean) / se, df)), TINY_P)}


def paired(D: np.ndarray, shared_rows: bool = True, confidence: float = 0.95) -> dict:
    """The interval of a paired difference D (S, K, m) for the run's design: one split (K = 1,
    :func:`two_level`) or K-fold cross-fitting (:func:`cross_fitted`)."""
    D = np.asarray(D, np.float64)
    if D.shape[1] > 1:
        return cross_fitted(D, confidence)
    r = two_level([(1.0, D[:, 0])], shared_rows, confidence)
    S, m = D.shape[0], D.shape[2]
    rows = D[:, 0]
    within = float(rows.var(1, ddof=1).mean()) if m > 1 else 0.0
    tau2 = max(0.0, float(rows.mean(1).var(ddof=1)) - within / m) if S > 1 else 0.0
    # var ≈ model_part + row_var / m, as two_level counts it: τ̂²/S + (within/S + var of seed-averaged rows)/m
    return {**r, "n_folds": 1, "n_rows": m, "model_part": tau2 / S,
            "row_var": within / S + float(rows.mean(0).var(ddof=1)) if shared_rows and m > 1 else math.nan}


def interval(r: dict, confidence: float) -> tuple[float, float]:
    """The two-sided ``confidence`` interval of a result of :func:`paired` (another level than the
    one it was made with: a simultaneous interval over a family of m takes 1 − α/m)."""
    se, df, mean = r["se"], r["df"], r["mean"]
    if not se > 0 or not math.isfinite(se):
        return (mean, mean) if se == 0 else (math.nan, math.nan)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return mean - half, mean + half


def rows_needed(r: dict, margin: float, alpha: float, power: float = 0.8) -> int | None:
    """Scored rows at which a true difference of ±``margin`` would be declared (the level-α
    interval excludes 0) with probability ``power``, the model part of the variance held as
    measured (``model_part``: the variance more rows do not reduce, the seeds' (and folds') spread
    beyond their rows): n = σ²_row / ((margin / (t_{1−α/2} + t_power))² − model_part), with t at the
    measured interval's degrees of freedom.  None when the model
    part alone is too large (more seeds or folds are needed, not rows) or unknown."""
    df = r.get("df", math.inf)
    df = df if isinstance(df, (int, float)) and df == df and df > 0 else math.inf   # the pilot's degrees of freedom
    z = float(stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df))
    row_var = r.get("row_var", math.nan)
    room = (margin / z) ** 2 - r.get("model_part", math.nan)
    if not (math.isfinite(row_var) and math.isfinite(room)) or room <= 0 or row_var <= 0:
        return None
    return int(math.ceil(row_var / room))
