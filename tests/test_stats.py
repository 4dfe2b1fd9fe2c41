import math

import numpy as np
import pytest
from scipy import stats

from mmgain.experiments.stats import paired_stats


@pytest.mark.parametrize("seed", range(5))
def test_paired_stats_match_scipy(seed):
    r = np.random.default_rng(seed)
    a = r.normal(50, 2, 5)
    b = a - r.normal(1, 1, 5)
    got = paired_stats(a, b)
    ref = stats.ttest_rel(a, b)
    assert got["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
    lo, hi = ref.confidence_interval(0.95)
    assert got["ci"] == pytest.approx((lo, hi), rel=1e-10)
    assert got["mean"] == pytest.approx(np.mean(a - b))


def test_paired_stats_known_numbers():
    # differences 1, 2, 3, 4, 5: mean 3, sd √2.5, t = 3/(√2.5/√5) = 4.2426, df 4 → p = 0.01324
    got = paired_stats([2, 4, 6, 8, 10], [1, 2, 3, 4, 5])
    assert got["mean"] == 3.0
    assert got["p_value"] == pytest.approx(0.013236, abs=1e-6)
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert got["ci"] == pytest.approx((3 - half, 3 + half), rel=1e-6)


def test_paired_stats_degenerate_cases():
    one = paired_stats([1.0], [0.0])
    assert math.isnan(one["p_value"]) and all(math.isnan(c) for c in one["ci"])
    const = paired_stats([2, 3, 4], [1, 2, 3])
    assert const["ci"] == (1.0, 1.0) and const["p_value"] == 0.0
    assert paired_stats([1, 2], [1, 2])["p_value"] == 1.0
