"""The pair statistics against scipy/statsmodels, and the CI's coverage by simulation."""
import math

import numpy as np
import pytest
from scipy import stats

from mmgain.analysis.stats import benjamini_yekutieli, sign_flip_p, two_level


def paired_stats(a, b):
    """The seed-only paired t-test (rows drawn anew per seed): one value per seed."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return two_level([(1.0, d[:, None])], shared_rows=False)


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


def test_degenerate_t_falls_back_to_the_exact_sign_flip_p_never_zero():
    one = paired_stats([1.0], [0.0])
    assert math.isnan(one["p_value"]) and all(math.isnan(c) for c in one["ci"])
    const = paired_stats([2, 3, 4], [1, 2, 3])           # three identical differences
    assert const["ci"] == (1.0, 1.0) and const["p_value"] == 0.25      # 2 of 2^3 sign patterns
    assert paired_stats([1, 2], [1, 2])["p_value"] == 1.0
    four = two_level([(1.0, np.full((4, 10), 0.5))])      # every seed and row the same: variance 0
    assert four["p_value"] == 0.125                       # the example: 4 seeds → 2/16, not 0


@pytest.mark.parametrize("seed", range(4))
def test_sign_flip_p_matches_scipy_permutation_test(seed):
    d = np.random.default_rng(seed).normal(0.5, 1, 7)
    ref = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                 alternative="two-sided")
    assert sign_flip_p(d) == pytest.approx(ref.pvalue, rel=1e-12)


def test_two_level_with_one_seed_component_is_a_paired_t_over_seeds_when_rows_differ():
    r = np.random.default_rng(3)
    D = r.normal(1.0, 2.0, (6, 40))
    got = two_level([(1.0, D)], shared_rows=False)
    ref = stats.ttest_1samp(D.mean(1), 0.0)
    assert got["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert got["ci"] == pytest.approx(tuple(ref.confidence_interval(0.95)), rel=1e-10)


def test_two_level_adds_seed_and_row_variance_with_satterthwaite_df():
    r = np.random.default_rng(4)
    D = r.normal(0.3, 1.0, (5, 30)) + r.normal(0, 0.5, (1, 30))
    got = two_level([(1.0, D)])
    v_seed, v_row = D.mean(1).var(ddof=1) / 5, D.mean(0).var(ddof=1) / 30
    df = (v_seed + v_row) ** 2 / (v_seed ** 2 / 4 + v_row ** 2 / 29)
    assert got["se"] == pytest.approx(math.sqrt(v_seed + v_row)) and got["df"] == pytest.approx(df)
    t = D.mean() / math.sqrt(v_seed + v_row)
    assert got["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), df))


def _simulate(reps, seeds, rows, sd_seed, sd_row, sd_noise, rng):
    """Paired differences d[s, i] = μ + a_s + b_i + e_si: seed effects, row effects (the test set is a
    sample of rows), interaction noise.  Returns (mean, total-variance CI, seeds-only CI) per repetition."""
    out = []
    for _ in range(reps):
        D = (0.0 + rng.normal(0, sd_seed, (seeds, 1)) + rng.normal(0, sd_row, (1, rows))
             + rng.normal(0, sd_noise, (seeds, rows)))
        both = two_level([(1.0, D)])["ci"]
        seeds_only = paired_stats(D.mean(1), np.zeros(seeds))["ci"]
        out.append((both, seeds_only))
    return out


def test_total_variance_ci_covers_the_truth_where_the_seed_only_ci_does_not():
    """On a simulated null with test-row sampling, the 95 % interval over seeds and rows covers
    the true 0 in ≥ 93 % of repetitions; the seed-only interval of today's t-test does not."""
    rng = np.random.default_rng(0)
    sims = _simulate(1000, 5, 400, sd_seed=0.3, sd_row=8.0, sd_noise=3.0, rng=rng)
    cover = np.mean([lo <= 0 <= hi for (lo, hi), _ in sims])
    naive = np.mean([lo <= 0 <= hi for _, (lo, hi) in sims])
    assert cover >= 0.93
    assert naive < 0.80                                  # the naive estimator is wrong here


def test_total_variance_ci_covers_when_seeds_dominate():
    rng = np.random.default_rng(1)
    sims = _simulate(1000, 5, 200, sd_seed=1.0, sd_row=0.5, sd_noise=0.5, rng=rng)
    assert np.mean([lo <= 0 <= hi for (lo, hi), _ in sims]) >= 0.93


@pytest.mark.parametrize("seed", range(3))
def test_by_matches_statsmodels(seed):
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    p = np.random.default_rng(seed).uniform(0, 0.2, 40) ** 2
    np.testing.assert_allclose(benjamini_yekutieli(p), multipletests(p, method="fdr_by")[1], rtol=1e-12)


def test_adjustments_skip_nan_and_keep_order():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    q = benjamini_yekutieli(p)
    c = 1 + 1 / 2 + 1 / 3
    assert np.isnan(q[1]) and q[0] == pytest.approx(3 * c * 0.01) and q[2] == q[3] == pytest.approx(c * 0.04)
