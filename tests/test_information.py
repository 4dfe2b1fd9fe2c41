"""The information game v(S) in nats and the PID quantities it identifies, against ground truth:
bitwise cases whose PID is known, and a Gaussian family whose mutual informations are computed
from the exact posterior."""
import math

import numpy as np
import pytest

import mmgain
from mmgain.analysis.information import pid_bounds

LN2 = math.log(2)


def _bits_h(p):
    return -sum(x * math.log(x) for x in p if x > 0)


def test_pid_ranges_of_and_are_the_known_ones():
    """y = x1 AND x2: I1 = I2 = 0.311 bit, I12 = H(Y) = 0.811 bit, so S − R = 0.189 bit and R ∈ [0, 0.311]."""
    H = _bits_h([0.75, 0.25]) / LN2
    I1 = H - 0.5 * _bits_h([1 / 2, 1 / 2]) / LN2                 # given x1 = 1, y = x2; given x1 = 0, y = 0
    assert (H, I1) == (pytest.approx(0.8113, abs=1e-4), pytest.approx(0.3113, abs=1e-4))
    b = pid_bounds(I1, I1, H)
    assert b["R"] == pytest.approx([0.0, I1]) and b["S"] == pytest.approx([H - 2 * I1, H - I1])
    assert b["U_i"] == pytest.approx([0.0, I1])
    assert pid_bounds(1.0, 1.0, 1.0)["R"] == pytest.approx([1.0, 1.0])          # copies: all redundant


def _study(x1, x2, y, **kw):
    kw.setdefault("hidden", 8)     # two-valued inputs: 128 units would be 128 collinear copies of ≤ 2 directions
    st = mmgain.analyze({"a": x1, "b": x2}, y=y, progress=False, ratios=(1.0,), **kw)
    (info,) = st.summary["information"]
    (pair,) = info["pairs"]
    return st, info, pair


def _bits(case, n, seed=0):
    rng = np.random.default_rng(seed)
    b1, b2 = rng.integers(0, 2, n), rng.integers(0, 2, n)
    x1, x2, y = {"xor": (b1, b2, b1 ^ b2), "and": (b1, b2, b1 & b2), "redundant": (b1, b1, b1),
                 "copy": (b1, b2, 2 * b1 + b2)}[case]
    return np.eye(2)[x1], np.eye(2)[x2], y


@pytest.mark.parametrize("case, n, truth", [
    ("and", 2000, (0.8113 - 2 * 0.3113) * LN2),      # S − R = 0.189 bit
    ("redundant", 1000, -LN2),                       # x1 = x2 = y: R = 1 bit, S = 0
    ("copy", 1500, 0.0),                             # y = (x1, x2): U1 = U2 = 1 bit, R = S = 0
])
def test_bitwise_cases_recover_their_synergy_minus_redundancy(case, n, truth):
    _, info, p = _study(*_bits(case, n))
    lo, hi = p["synergy_minus_redundancy_ci"]
    assert lo - 0.005 <= truth <= hi + 0.005, (case, lo, truth, hi)
    assert info["H_Y"] == pytest.approx({"and": _bits_h([0.75, 0.25]), "redundant": LN2, "copy": 2 * LN2}[case],
                                        abs=0.03)


def test_xor_is_invisible_to_the_additive_fusion_class_and_the_report_says_so():
    """y = x1 XOR x2: each bit alone says nothing, both together say 1 bit (S − R = +1 bit).  A late
    fusion with a linear head is a sum of per-modality functions and cannot represent XOR: it sees
    no information at all, and every output names that limit."""
    st, info, p = _study(*_bits("xor", 1500))
    assert abs(p["I_ij"]) < 0.02 and abs(p["synergy_minus_redundancy"]) < 0.02          # not ln 2 = 0.693
    assert st.summary["model_class"]["additive"] and "cannot show synergy" in st.summary["model_class"]["text"]
    assert "cannot show synergy" in st.to_html() and "synergy it cannot represent" in st.to_html()


def _gaussian_truth(rho, K=3, n=200_000):
    """I(X1; Y), I(X1, X2; Y) in nats for x1 = e_y + u, x2 = e_y + ρu + √(1−ρ²)v (u, v ~ N(0, I)),
    from the exact posterior on a large sample."""
    from scipy.special import logsumexp
    rng = np.random.default_rng(1)
    y = rng.integers(0, K, n)
    u, v = rng.normal(size=(n, K)), rng.normal(size=(n, K))
    E = np.eye(K)

    def info(X, means, cov):
        P = np.linalg.inv(cov)
        ll = np.stack([-0.5 * np.einsum("ni,ij,nj->n", X - m, P, X - m) for m in means], 1)
        return math.log(K) + (ll - logsumexp(ll, 1, keepdims=True))[np.arange(n), y].mean()

    x1, x2 = E[y] + u, E[y] + rho * u + math.sqrt(1 - rho ** 2) * v
    I1 = info(x1, E, np.eye(K))
    if rho == 1:
        return I1, I1
    cov = np.block([[np.eye(K), rho * np.eye(K)], [rho * np.eye(K), np.eye(K)]])
    return I1, info(np.hstack([x1, x2]), [np.concatenate([m, m]) for m in E], cov)


def test_the_gaussian_family_orders_synergy_minus_redundancy_by_overlap():
    """x2 shares a fraction ρ of x1's noise: the more it shares, the less it adds, so S − R
    decreases in ρ, and at ρ = 1 (x2 = x1) S − R = −I1.  The Bayes posterior is linear in (x1, x2),
    so the additive fusion class can reach the truth; each interval holds it."""
    rng = np.random.default_rng(0)
    n, K = 4000, 3
    y = rng.integers(0, K, n)
    u, v = rng.normal(size=(n, K)), rng.normal(size=(n, K))
    found = []
    for rho in (0.0, 0.5, 1.0):
        x1, x2 = np.eye(K)[y] + u, np.eye(K)[y] + rho * u + math.sqrt(1 - rho ** 2) * v
        _, _, p = _study(x1, x2, y)
        I1, I12 = _gaussian_truth(rho)
        lo, hi = p["synergy_minus_redundancy_ci"]
        assert lo <= I12 - 2 * I1 <= hi, (rho, lo, I12 - 2 * I1, hi)
        found.append(p["synergy_minus_redundancy"])
    assert found[0] > found[1] > found[2]


def test_with_the_mlp_head_xor_shows_its_synergy(tmp_path):
    """Two bits useless alone that determine the label together: with `--head mlp` adding either
    one to the other helps, the accuracy interaction index has an interval above 0, and S − R is
    the true +1 bit (ln 2 nats); the model class says it can represent interactions."""
    st = mmgain.analyze(dict(zip("ab", _bits("xor", 1000)[:2])), y=_bits("xor", 1000)[2], progress=False,
                        ratios=(1.0,), head="mlp")
    v = st.verdicts.set_index("N")
    assert v.loc["a", "verdict"] == v.loc["b", "verdict"] == "helps"
    (inter,) = st.summary["interactions"][0]["pairs"]
    assert inter["ci"][0] > 0
    (p,) = st.summary["information"][0]["pairs"]
    lo, hi = p["synergy_minus_redundancy_ci"]
    assert lo <= LN2 <= hi + 0.01 and lo > 0.5
    assert not st.summary["model_class"]["additive"] and "mlp head" in st.summary["model_class"]["text"]


def test_what_assumes_a_linear_head_refuses_the_mlp_head():
    from mmgain.catalog import EXPERIMENTS
    from mmgain.errors import SpecError
    from mmgain.training import TrainingProtocol

    with pytest.raises(SpecError, match="linear head"):
        EXPERIMENTS.get("run").with_(theory=True, protocol_overrides={"head": "mlp"})
    with pytest.raises(SpecError, match="head 'linear'"):
        TrainingProtocol(activation="none", solver="lstsq", head="mlp")
    with pytest.raises(SpecError, match="head_width"):
        TrainingProtocol(head="mlp", head_width=0)
