"""The theorems' terms against closed forms and brute force (run.theory_terms, analysis.theory, theory.*)."""
import json
import math

import numpy as np
import pytest
import torch

from conftest import toy_modalities
from mmgain.cli import main
from mmgain.data import enumerate_subsets
from mmgain.run import theory_terms as th
from mmgain.tasks import get_task
from mmgain.theory import bounds
from mmgain.theory.rademacher import (GRID_STEP, enumerate_signs, finite_class, from_fit, grid_up, linear_class,
                                      path_norm_upper, signs)
from mmgain.training import BatchedTrainer, DeviceData, Streams, TrainingProtocol

DIMS = {"m1": 3, "m2": 4}


def _exact_sup_linear(Z, sigma_row, B):
    """sup_{‖w‖≤B} (1/m) σ·Zw by brute force over a fine grid of directions (p = 2)."""
    angles = np.linspace(0, 2 * np.pi, 20001)
    W = B * np.stack([np.cos(angles), np.sin(angles)], 1)
    return float((sigma_row @ Z @ W.T).max() / len(Z))


def test_linear_class_closed_form_sup_and_monte_carlo_equal_brute_force():
    rng = np.random.default_rng(0)
    m, B = 8, 1.7
    Z = rng.standard_normal((m, 2)) * np.array([3.0, 0.3])               # anisotropic
    every = enumerate_signs(m)
    assert every.shape == (256, 8) and len({tuple(r) for r in every}) == 256
    # the closed-form supremum equals a brute-force supremum over directions, σ by σ
    brute = np.mean([_exact_sup_linear(Z, s, B) for s in every])
    exact = float(linear_class(torch.tensor(Z), B, torch.tensor(every)))
    assert exact == pytest.approx(brute, rel=1e-6)
    # Monte Carlo over σ converges to the enumeration
    mc = float(linear_class(torch.tensor(Z), B, torch.tensor(signs(m, 20000, 1))))
    assert mc == pytest.approx(exact, rel=0.01)
    # the naive closed form (Jensen: √Σ‖z‖²) is not the value: it overstates it on these data
    jensen = B * np.sqrt((Z ** 2).sum()) / m
    assert jensen > 1.05 * exact


def test_finite_class_equals_enumeration():
    rng = np.random.default_rng(1)
    m, J = 10, 5
    F = rng.standard_normal((m, J))
    every = enumerate_signs(m)
    brute = np.mean([max(abs(s @ F[:, j]) / m for j in range(J)) for s in every])
    assert float(finite_class(torch.tensor(F), torch.tensor(every))) == pytest.approx(brute, rel=1e-9)
    one_sided = np.mean([max(s @ F[:, j] / m for j in range(J)) for s in every])
    assert float(finite_class(torch.tensor(F), torch.tensor(every), symmetric=False)) == pytest.approx(one_sided)


@pytest.mark.parametrize("relu", [False, True])
def test_path_norm_upper_bounds_the_class(relu):
    """Upper ≥ the exact complexity of the class (linear units: closed form; ReLU: a large finite
    subset of unit-norm units), and for linear units within the Jensen gap of it."""
    rng = np.random.default_rng(2)
    m, d, P = 12, 3, 2.5
    X = np.hstack([rng.standard_normal((m, d)), np.ones((m, 1))])          # x̃ = [x, 1]
    every = torch.tensor(enumerate_signs(m))
    upper = path_norm_upper(P, (X ** 2).sum(), m, relu)
    if not relu:
        exact = P * float(linear_class(torch.tensor(X), 1.0, every))
        assert exact <= upper <= exact * 1.3
    else:
        U = rng.standard_normal((d + 1, 4000))
        U /= np.linalg.norm(U, axis=0)
        lower = P * float(finite_class(torch.tensor(np.maximum(X @ U, 0)), every))
        assert 0 < lower <= upper


def test_grid_up_rounds_up_within_a_step_and_union_weights_sum_to_one():
    x = np.array([1e-3, 0.37, 1.0, 5.5, 1234.0])
    g, cost = grid_up(x)
    assert (g >= x * (1 - 1e-12)).all() and (g < x * GRID_STEP * (1 + 1e-12)).all()
    js = np.arange(-1000, 1001)
    gj, costs = grid_up(GRID_STEP ** js.astype(float))
    assert np.allclose(np.log(gj) / np.log(GRID_STEP), js)
    tail = 2 / 1001.5 / (math.pi ** 2 / 3 - 1)              # the weights of |j| > 1000
    assert np.exp(-costs).sum() == pytest.approx(1.0 - tail, abs=1e-5)


def test_bounded_losses_dominate_zero_one_and_respect_their_lipschitz_constants():
    rng = torch.Generator().manual_seed(0)
    clf = get_task("classification")
    logits = torch.randn(5000, 4, generator=rng) * 3
    y = torch.randint(0, 4, (5000,), generator=rng)
    b = clf.bounded_loss(clf.loss(logits, y))
    assert ((b >= 0) & (b <= 1)).all()
    assert (b >= (logits.argmax(1) != y).float()).all()
    other = logits + 0.01 * torch.randn(5000, 4, generator=rng)
    diff = (clf.bounded_loss(clf.loss(other, y)) - b).abs()
    assert (diff <= clf.bounded_lipschitz() * (other - logits).norm(dim=1) + 1e-6).all()
    assert float((diff / (other - logits).norm(dim=1)).max()) > 0.5 * clf.bounded_lipschitz() / math.sqrt(2)
    reg = get_task("regression")
    yr = torch.randn(5000, generator=rng) * 2
    tau = reg.loss_scale(yr)
    f = yr + torch.randn(5000, generator=rng) * 1.5
    g = f + 0.01 * torch.randn(5000, generator=rng)
    lf, lg = (reg.bounded_loss(reg.loss(v[:, None], yr), tau) for v in (f, g))
    assert ((lf >= 0) & (lf <= 1)).all()
    assert ((lf - lg).abs() <= reg.bounded_lipschitz(tau) * (f - g).abs() + 1e-6).all()


def test_theorem_constants_at_the_papers_size():
    """At m = 5810 the constant terms of Theorem 1 are ≈ 0.12 (issue text, computed by hand)."""
    t = bounds.theorem1(0.0, 0.0, 5810)
    assert t["sample"] + t["confidence"] == pytest.approx(4 / math.sqrt(5810) + 2 * math.sqrt(2 * math.log(40) / 5810))
    assert t["sample"] + t["confidence"] == pytest.approx(0.124, abs=0.001)
    assert bounds.theorem2(0, 0, 0, 5810)["confidence"] == pytest.approx(3 * t["confidence"])
    assert bounds.lr_term(1.0, 0.5, 6) == pytest.approx(math.sqrt(2) * 0.5)
    assert bounds.lr_term(1.0, 0.5, 1) == pytest.approx(0.5)


def test_condition_and_crossover_prediction_agree():
    """At m*_pred the paper's condition holds with equality if L̂ and Ĉ stay as measured."""
    m, tr_m, tr_n, r_m, r_n = 1000, 0.30, 0.32, 0.05, 0.02
    pred = float(bounds.crossover_prediction(tr_m, tr_n, r_m, r_n, m))
    c_m, c_n = m * r_m ** 2, m * r_n ** 2
    assert pred == pytest.approx(((math.sqrt(c_m) - math.sqrt(c_n)) / (tr_n - tr_m)) ** 2)
    for size, holds in ((pred * 0.9, False), (pred * 1.1, True)):
        rm, rn = math.sqrt(c_m / size), math.sqrt(c_n / size)
        assert bool(bounds.condition(tr_m, tr_n, rm, rn)) is holds
    assert float(bounds.crossover_prediction(0.3, 0.32, 0.02, 0.05, m)) == 0.0     # simpler and better
    assert float(bounds.crossover_prediction(0.3, 0.29, 0.05, 0.02, m)) == math.inf


def _regression_fit(x, y, epochs, hidden=8, lr=0.05, activation="none"):
    protocol = TrainingProtocol(hidden=hidden, activation=activation, lr=lr, batch_size=len(y), epochs=epochs)
    data = DeviceData.stack([({"m1": x}, y)], "cpu")
    streams = Streams(np.array([0]), np.array([0]), [np.arange(len(y))])
    return BatchedTrainer(protocol, {"m1": x.shape[1]}, [("m1",)], 1, "regression").fit(data, streams), data, streams


def test_training_based_estimate_within_ten_percent_below_the_closed_form():
    """BBL's training-based estimate on a linear class: fit the labels σ, read (1/m)·σ·f̂; the
    closed form for the norm ball of the fitted weights bounds it above (Cauchy–Schwarz) and, on
    isotropic data, the fit comes within 10 %."""
    rng = np.random.default_rng(3)
    m, d = 400, 10
    x = rng.standard_normal((m, d)).astype(np.float32)
    ratios = []
    for draw in range(3):
        sigma = signs(m, 1, draw)[0]
        trainer, data, streams = _regression_fit(x, sigma.astype(np.float32), epochs=300)
        mod = trainer.model_.to_module(0, 0).requires_grad_(False)
        w = (mod.head.weight @ mod.encoders["m1"][0].weight).numpy()[0]
        bias = float(mod.head.weight @ mod.encoders["m1"][0].bias + mod.head.bias)
        f = x @ w + bias
        est = float(from_fit(torch.tensor(sigma), torch.tensor(f)))
        Z = torch.tensor(np.hstack([x, np.ones((m, 1))]))
        closed = float(linear_class(Z, np.linalg.norm(np.append(w, bias)), torch.tensor(sigma[None])))
        ratios.append(est / closed)
    assert all(0.9 <= r <= 1.0 + 1e-6 for r in ratios), ratios


def test_complexity_terms_match_an_independent_computation():
    """The batched per-model bracket against per-model modules and enumeration of σ (m = 10):
    the head class (closed-form sup) and the unit supremum, each within Monte-Carlo error."""
    xs = toy_modalities(n=10, dims=tuple(DIMS.values()), seed=4)
    y = xs["m1"][:, 0] - xs["m2"][:, 1]
    subsets = enumerate_subsets(list(DIMS))
    protocol = TrainingProtocol(hidden=5, activation="relu", lr=0.05, batch_size=10, epochs=20)
    data = DeviceData.stack([(xs, y.astype(np.float32))], "cpu")
    streams = Streams(np.array([0]), np.array([3]), [np.arange(10)])
    trainer = BatchedTrainer(protocol, DIMS, subsets, 1, "regression").fit(data, streams)
    got = th.complexity_terms(trainer.model_, data, streams)
    every = torch.tensor(enumerate_signs(10), dtype=torch.float64)
    torch.set_grad_enabled(False)
    for a, sub in enumerate(subsets):
        mod = trainer.model_.to_module(0, a).double()
        x = {k: torch.tensor(xs[k], dtype=torch.float64) for k in sub}
        Z = mod.encode(x)
        norms = torch.cat([torch.cat([e[0].weight, e[0].bias[:, None]], 1).norm(dim=1) for e in mod.encoders.values()])
        head = torch.cat([mod.head.weight[0], mod.head.bias]).norm().item()
        path = float((mod.head.weight[0].abs() * norms).sum())
        B, _ = grid_up(head)
        P, _ = grid_up(path)
        c, _ = grid_up(abs(mod.head.bias.item()))
        head_exact = float(linear_class(torch.cat([Z, torch.ones(10, 1, dtype=torch.float64)], 1), float(B), every))
        unit_exact = float(P) * float(finite_class(Z / norms, every)) \
            + float(c) * float(every.sum(1).abs().mean()) / 10
        assert got["theory_path_norm"][0, a] == pytest.approx(path, rel=1e-5)
        assert got["theory_rad_head"][0, a] == pytest.approx(head_exact, rel=0.1)
        assert got["theory_rad_lower"][0, a] == pytest.approx(unit_exact, rel=0.1)
        sum_sq = sum(float((x[k] ** 2).sum()) + 10 for k in sub)
        assert got["theory_rad_upper"][0, a] == pytest.approx(float(path_norm_upper(P, sum_sq, 10, True) + c / math.sqrt(10)))
        assert got["theory_rad_lower"][0, a] <= got["theory_rad_upper"][0, a]
    torch.set_grad_enabled(True)


def test_flipped_labels_flip_about_half_and_only_there():
    rng = np.random.default_rng(5)
    n = 400
    xs = {"m1": rng.standard_normal((n, 2)).astype(np.float32)}
    y = rng.integers(0, 4, n)
    data = DeviceData.stack([(xs, y)], "cpu")
    rows = np.arange(0, n, 2)
    streams = Streams(np.array([0]), np.array([7]), [rows])
    flipped, sigmas = th.flipped_labels(data, streams, get_task("classification"), 4)
    new = flipped.y[0].numpy()
    changed = new != y
    assert not changed[1::2].any()                                   # rows outside the sample untouched
    assert (changed[rows] == (sigmas[0] > 0)).all()                   # flipped exactly where σ = +1
    assert 0.4 < changed[rows].mean() < 0.6
    gathered, _ = flipped.gather(torch.tensor([0]), torch.tensor(rows[None]))
    assert torch.equal(gathered["m1"][0], torch.tensor(xs["m1"][rows]))   # same features, no copy needed


@pytest.mark.parametrize("rows,hidden,memorises", [(16, 64, True), (3000, 2, False)])
def test_kappa_flags_memorisation(rows, hidden, memorises):
    """κ near 1 where the class shatters the sample (16 rows, 64 ReLU units on 20-d inputs),
    near 0 where it cannot (3000 rows, 2 units on 2-d inputs)."""
    rng = np.random.default_rng(6)
    d = 20 if memorises else 2
    xs = {"m1": rng.standard_normal((rows, d)).astype(np.float32)}
    y = (xs["m1"][:, 0] > 0).astype(np.int64)
    protocol = TrainingProtocol(hidden=hidden, activation="relu", lr=0.05, batch_size=min(rows, 512),
                                epochs=300 if memorises else 20)
    data = DeviceData.stack([(xs, y)], "cpu")
    streams = Streams(np.array([0]), np.array([0]), [np.arange(rows)])
    trainer = BatchedTrainer(protocol, {"m1": d}, [("m1",)], 2, "classification").fit(data, streams)
    kappa = th.theory_chunk(trainer, data, streams, get_task("classification"), 2)["theory_kappa"][0, 0]
    assert (kappa > 0.9) if memorises else (abs(kappa) < 0.15), kappa


def test_reproduce_synthetic_theory_writes_every_term(tmp_path):
    out = tmp_path / "run"
    code = main(["reproduce", "synthetic", "--theory", "--n-train", "400", "--n-test", "600", "--seeds", "2",
                 "--overlaps", "0.5", "--epochs", "3", "--out", str(out), "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    recs = summary["theory"]
    assert [(r["M"], r["N"]) for r in recs] == [("m1+m2", "m1"), ("m1+m2+m3", "m1+m2"), ("m1+m2+m3+m4", "m1+m2+m3")]
    for r in recs:
        for t in ("theorem1", "theorem2"):
            for k in ("bound", "bound_lower", "observed", "ratio", "holds", "vacuous"):
                assert k in r[t]
            assert r[t]["bound_lower"] <= r[t]["bound"]
            assert r[t]["bound"] == pytest.approx(sum(v for k, v in r[t].items()
                                                      if k not in ("bound", "bound_lower", "observed", "ratio",
                                                                   "holds", "vacuous", "complexity_lower", "complexity_alg",
                                                                   "bound_alg")))
        for k in ("condition_holds", "M_beat_N", "m_star_pred", "kappa_M"):
            assert k in r
    text = (out / "theory.csv").read_text().splitlines()
    assert len(text) == 1 + len(recs) and "theorem1_bound" in text[0]
    assert 'id="theory"' in (out / "report.html").read_text()


def test_run_without_theory_has_no_theory_outputs(tmp_path):
    out = tmp_path / "run"
    assert main(["reproduce", "synthetic", "--n-train", "300", "--n-test", "300", "--seeds", "1",
                 "--overlaps", "0.5", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    assert "theory" not in json.loads((out / "summary.json").read_text())
    assert not (out / "theory.csv").exists()


# ------------------------------------------------------------ known populations (linear-Gaussian data)

from mmgain.data.synthetic import make_linear_dataset                                       # noqa: E402
from mmgain.analysis.stats import clopper_pearson                                         # noqa: E402
from mmgain.theory.closed_form import (bayes_excess, linear_eta, linear_risk, ols_crossover,  # noqa: E402
                                       ols_risk)


def test_population_moments_match_a_large_sample():
    ds = make_linear_dataset(0, n_train=200_000, n_test=10, n_modalities=3, dim=4, overlap=0.6, noise=2.0,
                             weights=(1.0, -0.5, 0.3))
    pop = ds.population
    X = np.hstack([ds.modalities[k] for k in pop.names])
    np.testing.assert_allclose(np.cov(X.T), pop.cov, atol=0.02)
    resid = ds.y - X @ pop.beta
    assert resid.var() == pytest.approx(pop.noise, rel=0.02)


def test_exact_eta_and_risk_against_a_large_sample_and_a_fitted_head():
    """η of a fixed linear encoder from the population equals the residual of the best head fitted
    on 200 000 fresh rows; the risk of a fixed linear predictor equals its MSE there."""
    ds = make_linear_dataset(1, n_train=200_000, n_test=10, n_modalities=3, dim=4, overlap=0.5, noise=1.0,
                             weights=(1.0, 1.0, 0.4))
    pop, rng = ds.population, np.random.default_rng(0)
    sub = ("m1", "m3")
    X = np.hstack([ds.modalities[k] for k in sub])
    W = rng.standard_normal((8, 2))                                   # a 2-unit bottleneck encoder
    Z = np.hstack([X @ W, np.ones((len(X), 1))])
    head, *_ = np.linalg.lstsq(Z, ds.y, rcond=None)
    assert linear_eta(pop, sub, W) == pytest.approx(np.mean((ds.y - Z @ head) ** 2) - pop.noise, rel=0.02)
    w, b = rng.standard_normal(8), 0.3
    assert linear_risk(pop, sub, w, b) == pytest.approx(np.mean((ds.y - X @ w - b) ** 2), rel=0.01)
    assert linear_eta(pop, sub, np.eye(8)) == pytest.approx(bayes_excess(pop, sub))
    assert bayes_excess(pop, ("m1", "m2", "m3")) == pytest.approx(0.0, abs=1e-9)


def test_ols_crossover_closed_form_matches_the_issue():
    for rho, s2, expected in ((0.9, 50.0, 5202), (0.5, 100.0, 602), (0.8, 60.0, 1702)):
        pop = make_linear_dataset(0, 10, 10, 2, 100, rho, s2).population
        m = ols_crossover(pop, ("m1", "m2"), ("m1",))
        assert m == pytest.approx(expected, abs=1)
        assert ols_risk(pop, ("m1",), m) == pytest.approx(ols_risk(pop, ("m1", "m2"), m))
    same = make_linear_dataset(0, 10, 10, 2, 100, 1.0, 50.0).population     # m2 = m1: never better
    assert math.isnan(ols_crossover(same, ("m1", "m2"), ("m1",)))


def test_least_squares_solver_is_exact_erm():
    ds = make_linear_dataset(2, n_train=300, n_test=50, n_modalities=2, dim=5, overlap=0.3, noise=1.0)
    tr = np.flatnonzero(ds.split == "train")
    data = DeviceData.stack([(ds.rows(tr), ds.y[tr].astype(np.float32))], "cpu")
    rows = np.arange(0, 120)
    streams = Streams(np.array([0]), np.array([0]), [rows])
    protocol = TrainingProtocol(hidden=6, activation="none", solver="lstsq", standardize=False)
    subsets = [("m1",), ("m1", "m2")]
    trainer = BatchedTrainer(protocol, ds.dims, subsets, 1, "regression").fit(data, streams)
    for a, sub in enumerate(subsets):
        X = np.hstack([np.ones((len(rows), 1))] + [ds.modalities[k][tr][rows] for k in sub])
        coef, *_ = np.linalg.lstsq(X, ds.y[tr][rows], rcond=None)
        mod = trainer.model_.to_module(0, a).requires_grad_(False)
        x = {k: torch.tensor(ds.modalities[k][tr][rows], dtype=torch.float32) for k in sub}
        np.testing.assert_allclose(mod(x)[:, 0].numpy(), X @ coef, atol=1e-3)
    with pytest.raises(Exception, match="at least as wide as its modality"):
        BatchedTrainer(TrainingProtocol(hidden=2, activation="none", solver="lstsq"), ds.dims, subsets, 1,
                       "regression").fit(data, streams)
    with pytest.raises(Exception, match="activation"):
        TrainingProtocol(solver="lstsq", activation="relu")


def test_clopper_pearson_against_scipy_binomtest():
    from scipy.stats import binomtest
    for k, n in ((0, 10), (3, 10), (10, 10), (97, 100)):
        ci = binomtest(k, n).proportion_ci(0.95, method="exact")
        assert clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_population_metrics_equal_the_closed_forms_on_a_trained_model():
    ds = make_linear_dataset(3, n_train=200, n_test=20, n_modalities=2, dim=3, overlap=0.5, noise=1.0)
    tr = np.flatnonzero(ds.split == "train")
    data = DeviceData.stack([(ds.rows(tr), ds.y[tr].astype(np.float32))], "cpu")
    streams = Streams(np.array([0]), np.array([1]), [np.arange(200)])
    subsets = [("m1",), ("m1", "m2")]
    protocol = TrainingProtocol(hidden=2, activation="none", lr=0.05, batch_size=64, epochs=5, standardize=False)
    trainer = BatchedTrainer(protocol, ds.dims, subsets, 1, "regression").fit(data, streams)
    got = th.population_metrics(trainer.model_, [ds.population], streams.groups)
    for a, sub in enumerate(subsets):
        mod = trainer.model_.to_module(0, a).double().requires_grad_(False)
        W = torch.block_diag(*[mod.encoders[k][0].weight.T for k in sub]).numpy()
        assert got["eta_exact"][0, a] == pytest.approx(linear_eta(ds.population, sub, W), rel=1e-6)
        bias = float(mod({k: torch.zeros(1, ds.dims[k], dtype=torch.float64) for k in sub})[0, 0])
        w = np.concatenate([(mod({kk: (torch.eye(ds.dims[kk], dtype=torch.float64) if kk == k else
                                       torch.zeros(ds.dims[k], ds.dims[kk], dtype=torch.float64)) for kk in sub})[:, 0]
                             - bias).numpy() for k in sub])
        assert got["risk_exact"][0, a] == pytest.approx(linear_risk(ds.population, sub, w, bias), rel=1e-6)


def test_reproduce_linear_case_reports_the_gamma_fraction(tmp_path):
    out = tmp_path / "lc"
    assert main(["reproduce", "linear-case", "--seeds", "12", "--theory", "--out", str(out), "--quiet"]) == 0
    recs = json.loads((out / "summary.json").read_text())["exact_gamma"]
    assert [r["n_train"] for r in recs] == [50, 150, 500, 1500, 4000]
    for r in recs:
        assert r["n_seeds"] == 12 and r["fraction"] == r["n_gamma_le_0"] / 12
        assert r["fraction_ci"][0] <= r["fraction"] <= r["fraction_ci"][1]
    assert recs[-1]["fraction"] == 1.0                           # γ([K], [K−1]) ≤ 0 at the largest m
    assert recs[0]["fraction"] < recs[-1]["fraction"]            # and not at the smallest: not trivial
    html = (out / "report.html").read_text()                     # --theory: bound against observed, 5 sizes
    assert html.count('<svg class="theory"') == 2 and html.count('class="observed"') >= 2 * 5


def test_reproduce_oracle_puts_the_closed_form_beside_the_estimate(tmp_path):
    """A reduced oracle (2 seeds, 5 sizes): every cell carries the expected least-squares MSE, which
    the measured test MSE follows, and every crossover the closed-form m* (5202 and 1702 rows)."""
    out = tmp_path / "oracle"
    assert main(["reproduce", "oracle", "--seeds", "2", "--ratios", "0.04", "0.1", "0.2", "0.5", "1",
                 "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for c in summary["cells"]:
        assert c["test_mse_mean"] == pytest.approx(c["ols_expected"], rel=0.05)
    closed = sorted(round(c["m_star_closed_form"]) for c in summary["crossovers"])
    assert closed == [1702, 5202]
    assert all(isinstance(c["closed_form_in_ci"], (bool, type(None))) for c in summary["crossovers"])


def test_a_theorem_without_a_bound_is_null_not_false(tmp_path):
    """Theorem 2 needs the full set's complexity: in a run without the full set (of the modalities it trains) its bound was not
    computed, and 'holds' says null (not false) in summary.json; the report still draws."""
    r = np.random.default_rng(0)
    y = r.integers(0, 2, 200)
    np.savez(tmp_path / "d.npz", a=r.normal(size=(200, 3)) + y[:, None], b=r.normal(size=(200, 2)),
             c=r.normal(size=(200, 2)), y=y)
    out = tmp_path / "run"
    assert main(["run", "--data", str(tmp_path / "d.npz"), "--subsets", "a,b,c,a+b", "--theory", "--cv", "0",
                 "--seeds", "1", "--ratios", "1", "--epochs", "2", "--quiet", "--out", str(out)]) == 0
    recs = json.loads((out / "summary.json").read_text())["theory"]
    assert recs and all(r["theorem2"]["holds"] is None and r["theorem2"]["bound"] is None for r in recs)
    assert all(isinstance(r["theorem1"]["holds"], bool) for r in recs)
    assert (out / "report.html").is_file()
