"""The corrected latent-quality gap γ̂ against ground truth.

Class-conditional Gaussian latents: the logistic model is well specified, so the
population-optimal head is the Bayes posterior and its cross-entropy is computable
(10⁵ fresh rows).  Linear-Gaussian regression: the closed form η*.  In both, the
paper's procedure (fit the head, report its test risk) is wrong for a block that
adds head parameters but little or no information; the estimator mmgain prints
(:func:`latent_gap_probe`, cross-fitted and width-matched) is not.
"""
import numpy as np
import pytest
import torch

from mmgain.data.synthetic import make_overlap_dataset
from mmgain.probes.latent import Latent, fit_probe, latent_gap_probe, least_squares_probe, logistic_probe, probe_folds
from mmgain.tasks import get_task
from mmgain.theory import eta_star
from mmgain.training.protocol import PROTOCOLS

PROTOCOL = PROTOCOLS.get("huang2021")   # the tool's defaults: folds and stopping rule of the cross-fitted probe

C, D = 6, 128          # IEMOCAP-sized: 6 classes, 128-d blocks
N_ROWS = 5810


def _means(scale, seed):
    return np.random.default_rng(seed).normal(size=(C, D)) * scale / np.sqrt(D)


MU_A, MU_W = _means(1.5, 1), _means(0.35, 2)     # a useful block, and a weakly useful one


def _draw(rng, n):
    y = rng.integers(0, C, n)
    return y, [MU_A[y] + rng.normal(size=(n, D)), MU_W[y] + rng.normal(size=(n, D)), rng.normal(size=(n, D))]


def _population_ce(blocks_used):
    """Cross-entropy of the Bayes posterior given the blocks (identity covariance), 10⁵ fresh rows."""
    y, xs = _draw(np.random.default_rng(99), 100_000)
    mus = [MU_A, MU_W]
    lg = sum(xs[i] @ mus[i].T - 0.5 * (mus[i] ** 2).sum(1) for i in blocks_used)
    lg = lg - lg.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(lg).sum(1)) - lg[np.arange(len(y)), y]))


def _latent(a, w, z):
    """Three models on the same rows: 0 = a, 1 = a + w (weak), 2 = a + z (noise)."""
    t = lambda v: torch.tensor(v, dtype=torch.float32)[:, None]  # noqa: E731
    return Latent({"a": t(a).expand(-1, 3, -1), "w": t(w), "z": t(z)}, {"a": [0, 1, 2], "w": [1], "z": [2]},
                  ["a", "w", "z"], 3)


def _gaussian_gaps(reps=2):
    """(corrected γ̂ weak, corrected γ̂ noise, paper γ weak, paper γ noise), averaged over draws."""
    task = get_task("classification")
    probe = lambda Z, y, Zt, yt: fit_probe(task, Z, y, Zt, yt, C, PROTOCOL, heldout=True)  # noqa: E731
    out = []
    for rep in range(reps):
        rng = np.random.default_rng(100 + rep)
        y, (a, w, z) = _draw(rng, N_ROWS)
        yt, (at, wt, zt) = _draw(rng, 1623)
        Z, yy = _latent(a, w, z), torch.tensor(y)
        gap = latent_gap_probe(probe, Z, yy, probe_folds(y, PROTOCOL.probe_folds), [(1, 0, "w"), (2, 0, "z")],
                               [rep, rep + 50])
        per_row = {w_: 0.5 * (gap[w_]["fit"]["loss"] + gap[w_]["eval"]["loss"]).mean(1) for w_ in gap}
        m, c = per_row["models"], per_row["controls"]
        paper = logistic_probe(Z, yy, _latent(at, wt, zt), torch.tensor(yt), C)["test"]["loss"].mean(1)
        out.append([float(m[1] - c[0]), float(m[2] - c[1]), float(paper[1] - paper[0]), float(paper[2] - paper[0])])
    return np.mean(out, axis=0)


@pytest.fixture(scope="module")
def gaussian_gaps():
    return _gaussian_gaps()


def test_a_pure_noise_block_has_no_latent_gap(gaussian_gaps):
    corrected, paper = gaussian_gaps[1], gaussian_gaps[3]
    assert abs(corrected) <= 0.01                       # the bar: n = 5810, 6 classes, 128-d
    assert paper > 0.05                                  # the paper's procedure: noise "worsens" the latent


def test_a_weakly_useful_block_gets_the_right_sign(gaussian_gaps):
    truth = _population_ce([0, 1]) - _population_ce([0])
    assert -0.05 < truth < -0.02                         # weak, and known
    corrected, paper = gaussian_gaps[0], gaussian_gaps[2]
    assert corrected < 0 and abs(corrected - truth) < 0.6 * abs(truth)
    assert paper > 0                                     # the paper's procedure gets the sign wrong


def test_regression_gap_and_eta_match_the_closed_form():
    """Linear-Gaussian overlap data (ρ = 0.5, 100-d blocks): γ(m1+m2, m1) = η*(2) − η*(1) = −25 and
    η*(m1) = 75, with the raw features as latent.  The paper's procedure on n = 600 rows reports
    η_n = η*·(1 + p/(n−p−1)), far from η*; the cross-fitted half-sum recovers η*."""
    ds = make_overlap_dataset(0.5, seed=3, n_train=600, n_test=3000)
    tr, te = ds.train_test_indices()
    x = {k: torch.tensor(v, dtype=torch.float64) for k, v in ds.modalities.items()}
    lat = lambda rows: Latent({"m1": x["m1"][rows][:, None].expand(-1, 2, -1), "m2": x["m2"][rows][:, None]},  # noqa: E731
                              {"m1": [0, 1], "m2": [1]}, ["m1", "m2"], 2)
    y = torch.tensor(ds.y, dtype=torch.float64)
    probe = lambda Z, yy, Zt, yt: least_squares_probe(Z, yy, Zt, yt)  # noqa: E731
    gap = latent_gap_probe(probe, lat(te), y[te], probe_folds(ds.y[te], PROTOCOL.probe_folds, stratify=False),
                           [(1, 0, "m2")], [0])
    half = {w: 0.5 * (gap[w]["fit"]["loss"] + gap[w]["eval"]["loss"]).mean(1) for w in gap}
    gamma = float(half["models"][1] - half["controls"][0])
    assert gamma == pytest.approx(eta_star(0.5, 2) - eta_star(0.5, 1), rel=0.1)
    assert float(half["models"][0]) == pytest.approx(eta_star(0.5, 1), rel=0.05)
    paper = least_squares_probe(lat(tr), y[tr], lat(te), y[te])["test"]["loss"].mean(1)
    assert float(paper[0]) > 1.15 * eta_star(0.5, 1)    # η_n = 75·(1 + 101/498) ≈ 90: the paper's number


def test_width_matched_controls_hold_n_and_a_permuted_copy_of_the_k_block():
    from mmgain.probes.latent import with_matched_controls
    a = torch.arange(12.0).reshape(4, 1, 3).expand(-1, 2, -1)
    b = 100 + torch.arange(12.0).reshape(4, 1, 3)
    Z = Latent({"a": a, "b": b}, {"a": [0, 1], "b": [1]}, ["a", "b"], 2)
    perm = torch.tensor([2, 0, 3, 1])
    Zm = with_matched_controls(Z, [(0, 1, "b")], [perm])
    assert Zm.n_models == 3 and Zm.members == {"a": [0, 1, 2], "b": [1, 2]}
    assert torch.equal(Zm.blocks["a"][:, 2], a[:, 0]) and torch.equal(Zm.blocks["b"][:, 1], b[perm, 0])


def test_cross_fitting_scores_every_row_out_of_fold_once():
    from mmgain.probes.latent import cross_fitted_probe
    y = np.array([0, 1] * 10)
    folds = probe_folds(y, 4)
    assert sorted(np.bincount(folds)) == [5, 5, 5, 5] and all(len(set(y[folds == f])) == 2 for f in range(4))
    seen = []

    def probe(Z, yy, Zt, yt):
        seen.append(len(yt))
        n_fit = len(yy)
        return {"train": {"loss": torch.full((1, n_fit), 1.0)}, "test": {"loss": torch.full((1, len(yt)), 2.0)}}

    Z = Latent({"m": torch.zeros(20, 1, 2)}, {"m": [0]}, ["m"], 1)
    out = cross_fitted_probe(probe, Z, torch.tensor(y), folds)
    assert sum(seen) == 20 and torch.all(out["eval"]["loss"] == 2.0) and torch.allclose(out["fit"]["loss"],
                                                                                          torch.ones(1, 20).double())
