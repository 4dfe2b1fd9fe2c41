import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import logsumexp

from mmgain.probes import least_squares_probe, logistic_probe


def test_least_squares_probe_is_ols_with_intercept():
    r = np.random.default_rng(0)
    n, P = 300, 5
    Z = r.standard_normal((n, P))
    y = Z @ r.standard_normal(P) + 3.0 + 0.1 * r.standard_normal(n)
    Zt = r.standard_normal((100, P))
    yt = Zt @ r.standard_normal(P) + 1.0
    X = np.c_[np.ones(n), Z]
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    expect = np.mean((np.c_[np.ones(100), Zt] @ coef - yt) ** 2)
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    # Two models side by side: the second sees extra all-zero columns (an absent modality's block).
    Z2 = np.stack([np.c_[Z, np.zeros((n, 3))], np.c_[Z, np.zeros((n, 3))]], axis=1)
    Zt2 = np.stack([np.c_[Zt, np.zeros((100, 3))], np.c_[Zt, r.standard_normal((100, 3))]], axis=1)
    got = least_squares_probe(t(Z2), t(y), t(Zt2), t(yt))["mse"].numpy()
    np.testing.assert_allclose(got, [expect, expect], rtol=1e-6)


def test_least_squares_probe_handles_collinear_latents():
    r = np.random.default_rng(1)
    x = r.standard_normal((200, 1))
    Z = torch.from_numpy(np.c_[x, x, 2 * x])[:, None, :]
    y = torch.from_numpy(4 * x[:, 0])
    assert least_squares_probe(Z, y, Z, y)["mse"].item() < 1e-8


def _scipy_logistic(X, y, C, l2):
    n, P = X.shape

    def f(w):
        W, b = w[:P * C].reshape(P, C), w[P * C:]
        L = X @ W + b
        lse = logsumexp(L, axis=1)
        obj = np.mean(lse - L[np.arange(n), y]) + 0.5 * l2 * np.sum(W ** 2)
        p = np.exp(L - lse[:, None])
        p[np.arange(n), y] -= 1
        return obj, np.r_[(X.T @ p / n + l2 * W).ravel(), p.mean(0)]

    res = minimize(f, np.zeros(P * C + C), jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "maxiter": 5000})
    return res.x[:P * C].reshape(P, C), res.x[P * C:]


def test_logistic_probe_reaches_the_optimum():
    r = np.random.default_rng(2)
    n, P, C = 200, 4, 3
    Z = r.standard_normal((n, P)).astype(np.float32)
    y = np.argmax(Z[:, :C] + 0.8 * r.standard_normal((n, C)), axis=1)
    Zt = r.standard_normal((80, P)).astype(np.float32)
    yt = np.argmax(Zt[:, :C], axis=1)
    l2 = 1e-3
    mu, sd = Z.mean(0), Z.std(0)
    W, b = _scipy_logistic((Z - mu) / sd, y, C, l2)
    Lt = ((Zt - mu) / sd) @ W + b
    ce = np.mean(logsumexp(Lt, axis=1) - Lt[np.arange(80), yt])
    acc = np.mean(Lt.argmax(1) == yt) * 100
    Z2 = np.stack([Z, np.c_[Z[:, :2], np.zeros((n, 2), np.float32)]], axis=1)  # 2 models, 2nd lacks 2 cols
    Zt2 = np.stack([Zt, np.c_[Zt[:, :2], np.zeros((80, 2), np.float32)]], axis=1)
    t = torch.from_numpy
    out = logistic_probe(t(Z2), t(y), t(Zt2), t(yt), C, l2=l2)
    assert out["ce"][0].item() == pytest.approx(ce, rel=1e-3)
    assert out["acc"][0].item() == pytest.approx(acc)
    W1, b1 = _scipy_logistic(((Z - mu) / sd)[:, :2], y, C, l2)
    L1 = ((Zt[:, :2] - mu[:2]) / sd[:2]) @ W1 + b1
    assert out["ce"][1].item() == pytest.approx(np.mean(logsumexp(L1, axis=1) - L1[np.arange(80), yt]), rel=1e-3)
