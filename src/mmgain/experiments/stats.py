"""Paired statistics across seeds (seeds pair subsets by construction)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats


def paired_stats(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean of a − b, its t confidence interval, and the two-sided paired t-test p-value.

    With one pair the interval and p-value are undefined (NaN).  With zero spread
    the interval collapses to the mean and p is 0 (a nonzero mean) or 1 (zero).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n, mean = len(d), float(d.mean())
    if n < 2:
        return {"mean": mean, "ci": (math.nan, math.nan), "p_value": math.nan, "n": n}
    se = float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:
        return {"mean": mean, "ci": (mean, mean), "p_value": 0.0 if mean != 0 else 1.0, "n": n}
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean / se), n - 1))
    return {"mean": mean, "ci": (mean - half, mean + half), "p_value": p, "n": n}
