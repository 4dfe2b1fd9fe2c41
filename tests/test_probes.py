import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import logsumexp

from mmgain.probes import least_squares_probe, logistic_probe
from mmgain.probes.latent import Latent
from conftest import DEVICES


def mean_of(out, part="test", what="loss"):
    """A probe's mean per-row outcome (loss, or accuracy in % for what='correct')."""
    v = out[part][what].mean(1)
    return v * 100 if what == "correct" else v


def dense(Z):
    """(n, A, P) as a Latent with one 'modality' holding every column, used by all A models."""
    Z = torch.as_tensor(Z)
    return Latent({"m": Z}, {"m": list(range(Z.shape[1]))}, ["m"], Z.shape[1])



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
    got = mean_of(least_squares_probe(dense(Z2), t(y), dense(Zt2), t(yt))).numpy()
    np.testing.assert_allclose(got, [expect, expect], rtol=1e-6)


def test_least_squares_probe_handles_collinear_latents():
    r = np.random.default_rng(1)
    x = r.standard_normal((200, 1))
    Z = torch.from_numpy(np.c_[x, x, 2 * x])[:, None, :]
    y = torch.from_numpy(4 * x[:, 0])
    assert mean_of(least_squares_probe(dense(Z), y, dense(Z), y)).item() < 1e-8


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
    out = logistic_probe(dense(Z2.astype(np.float64)), t(y), dense(Zt2.astype(np.float64)), t(yt), C, l2=l2, tol=1e-7)
    assert out["converged"].tolist() == [1.0, 1.0]
    assert mean_of(out)[0].item() == pytest.approx(ce, rel=1e-3)
    assert mean_of(out, what="correct")[0].item() == pytest.approx(acc)
    L = ((Z - mu) / sd) @ W + b       # the in-sample risk of the same head: the corrected γ̂ needs it
    assert mean_of(out, "train")[0].item() == pytest.approx(np.mean(logsumexp(L, axis=1) - L[np.arange(n), y]),
                                                            rel=1e-3)
    W1, b1 = _scipy_logistic(((Z - mu) / sd)[:, :2], y, C, l2)
    L1 = ((Zt[:, :2] - mu[:2]) / sd[:2]) @ W1 + b1
    assert mean_of(out)[1].item() == pytest.approx(np.mean(logsumexp(L1, axis=1) - L1[np.arange(80), yt]), rel=1e-3)


def test_logistic_probe_on_blocks_equals_probe_of_the_smaller_model():
    """A model lacking modality 'b' gets the same probe as a one-modality latent of 'a' alone."""
    r = np.random.default_rng(5)
    n, H, C = 120, 3, 2
    a, b = r.standard_normal((n, 2, H)).astype(np.float32), r.standard_normal((n, 1, H)).astype(np.float32)
    y = torch.from_numpy((a[:, 0, 0] + a[:, 1, 1] > 0).astype(np.int64))
    t = torch.from_numpy
    a, b = a.astype(np.float64), b.astype(np.float64)
    both = Latent({"a": t(a), "b": t(b)}, {"a": [0, 1], "b": [1]}, ["a", "b"], 2)
    only_a = Latent({"a": t(a[:, :1])}, {"a": [0]}, ["a"], 1)
    out = logistic_probe(both, y, both, y, C, tol=1e-7)
    ref = logistic_probe(only_a, y, only_a, y, C, tol=1e-7)
    assert mean_of(out)[0].item() == pytest.approx(mean_of(ref)[0].item(), rel=1e-4)
    assert mean_of(out)[1].item() < mean_of(out)[0].item()   # model 1 also sees 'b' and a different 'a' block


def test_logistic_probe_with_blocks_of_different_widths_reaches_each_models_optimum():
    """Per-model parameter vectors of each model's own width, the closed-form gradient and the
    float32 → float64 tail: every model against scipy on its own concatenated latent."""
    r = np.random.default_rng(8)
    n, C, l2 = 150, 3, 1e-2
    widths = {"a": 2, "b": 4, "c": 1}
    members = {"a": [0, 2], "b": [1, 2], "c": [0, 1, 2]}               # models: a+c, b+c, a+b+c
    blocks = {k: r.standard_normal((n, len(members[k]), w)) for k, w in widths.items()}
    blocks["a"][:, 1] += 0.5 * blocks["a"][:, 0]                       # models see different a-blocks
    signal = blocks["a"][:, 0, 0] + blocks["b"][:, 0, 1] - blocks["c"][:, 0, 0]
    y = np.digitize(signal + 0.7 * r.standard_normal(n), [-0.7, 0.7])
    Z = Latent({k: torch.tensor(v, dtype=torch.float32) for k, v in blocks.items()}, members, list(widths), 3)
    out = logistic_probe(Z, torch.from_numpy(y), Z, torch.from_numpy(y), C, l2=l2, tol=1e-6)
    assert out["converged"].tolist() == [1.0, 1.0, 1.0]
    # the counted work: logits and gradient per evaluation (4·n·width·C), and the two outcome passes
    width = torch.tensor([3.0, 5.0, 7.0], dtype=torch.float64)
    assert torch.equal(out["flops"], (4 * n * out["evaluations"] + 2 * (n + n)) * width * C)
    assert bool((out["evaluations"] > out["iterations"]).all())     # the start, and any line-search trials
    _assert_each_model_at_scipys_optimum(out, blocks, members, y, C, l2)


def _assert_each_model_at_scipys_optimum(out, blocks, members, y, C, l2):
    """Each model's in-sample probe risk against scipy on its own concatenated, standardized
    latent (its blocks in the order of ``members``)."""
    for a in range(len(out["train"]["loss"])):
        X = np.hstack([blocks[k][:, members[k].index(a)] for k in members if a in members[k]])
        X = (X - X.mean(0)) / X.std(0)
        W, b = _scipy_logistic(X, y, C, l2)
        L = X @ W + b
        assert mean_of(out, "train")[a].item() == pytest.approx(np.mean(logsumexp(L, axis=1) - L[np.arange(len(y)), y]),
                                                                rel=1e-4)


def test_batched_lbfgs_solves_independent_quadratics():
    from mmgain.probes.lbfgs import batched_lbfgs
    r = np.random.default_rng(6)
    A, D = 4, 6
    M = torch.from_numpy(r.standard_normal((A, D, D)))
    Q = M @ M.transpose(1, 2) + torch.eye(D) * torch.tensor([0.01, 0.1, 1.0, 10.0])[:, None, None]
    c = torch.from_numpy(r.standard_normal((A, D)))
    f = lambda x, i: 0.5 * torch.einsum("ad,ade,ae->a", x, Q[i], x) - (c[i] * x).sum(1)  # noqa: E731
    x, info = batched_lbfgs(f, torch.zeros(A, D, dtype=torch.float64), max_iter=500, tol=1e-6)
    np.testing.assert_allclose(x.numpy(), torch.linalg.solve(Q, c).numpy(), rtol=1e-5, atol=1e-6)
    assert bool(info["converged"].all())
    assert info["iterations"][3] < info["iterations"][0]   # each problem stops on its own


def test_batched_lbfgs_counts_each_problems_evaluations():
    """``evaluations``: every call of f that included the problem (start, steps, backtracking)."""
    from mmgain.probes.lbfgs import batched_lbfgs
    r = np.random.default_rng(7)
    A, D = 5, 4
    scale = torch.tensor([1e-2, 1.0, 1e2, 1e4, 1.0], dtype=torch.float64)
    c = torch.from_numpy(r.standard_normal((A, D)))
    calls = torch.zeros(A, dtype=torch.long)

    def f(x, i):
        calls[i] += 1
        return scale[i] * ((x - c[i]) ** 4).sum(1) + ((x - c[i]) ** 2).sum(1)

    x, info = batched_lbfgs(f, torch.zeros(A, D, dtype=torch.float64), max_iter=300, tol=1e-6)
    assert torch.equal(info["evaluations"], calls)
    assert len(set(calls.tolist())) > 1                     # the problems need different work


def test_batched_lbfgs_decrease_test_stops_where_the_objective_no_longer_moves():
    """Pure quartics: the gradient test crawls (no curvature at the optimum); the decrease test
    stops each problem once its objective fell by at most ``ftol`` over ``window`` iterations,
    flags it ``stalled`` (counted as converged, not short), and never before ``window``
    iterations; its gate keeps it to gradients within ``near``·``tol``.  Without it (the
    default, 0) nothing is stalled."""
    from mmgain.probes.lbfgs import batched_lbfgs
    r = np.random.default_rng(9)
    A, D = 4, 3
    c = torch.from_numpy(r.standard_normal((A, D)))
    scale = torch.tensor([0.1, 1.0, 10.0, 100.0], dtype=torch.float64)
    f = lambda x, i: scale[i] * ((x - c[i]) ** 4).sum(1)          # noqa: E731
    x0 = torch.zeros(A, D, dtype=torch.float64)
    plain_x, plain = batched_lbfgs(f, x0, max_iter=2000, tol=1e-12)
    assert not bool(plain["stalled"].any())
    every = float("inf")                                                  # no gate
    x, info = batched_lbfgs(f, x0, max_iter=2000, tol=1e-12, ftol=1e-8, window=10, near=every)
    assert bool(info["stalled"].all()) and bool(info["converged"].all())
    assert bool((info["iterations"] >= 10).all()) and bool((info["iterations"] < plain["iterations"]).all())
    assert float(f(x, torch.arange(A)).max()) < 1e-6                     # stopped near the optimum (0)
    _, looser = batched_lbfgs(f, x0, max_iter=2000, tol=1e-12, ftol=1e-6, window=10, near=every)
    assert bool((looser["iterations"] <= info["iterations"]).all()) and looser["rounds"] < info["rounds"]
    # the gate: a flat objective stops a problem only once its gradient is within near·tol
    _, gated = batched_lbfgs(f, x0, max_iter=2000, tol=1e-30, ftol=1e-8, window=10)
    assert not bool(gated["stalled"].any())


@pytest.mark.parametrize("device", DEVICES)
def test_batched_lbfgs_without_synchronizations_gives_the_same_numbers_and_counts_its_rounds(device):
    """``lazy`` (a GPU's default) does with masks what the CPU path skips after a check: the same
    iterates bit for bit.  ``rounds`` are the iterations the call ran (its slowest problem's, a
    failed line search included) and ``calls`` the calls of f, both one after the other."""
    from mmgain.probes.lbfgs import batched_lbfgs
    r = np.random.default_rng(8)
    A, D = 6, 5
    scale = torch.tensor([1e-2, 1.0, 1e2, 1e4, 1.0, 1e6], dtype=torch.float64, device=device)
    c = torch.from_numpy(r.standard_normal((A, D))).to(device)
    n_calls = [0]

    def f(x, i):
        n_calls[0] += 1
        return scale[i] * ((x - c[i]) ** 4).sum(1) + ((x - c[i]) ** 2).sum(1)

    x0 = torch.zeros(A, D, dtype=torch.float64, device=device)
    for ftol in (0.0, 1e-9):                                      # with and without the decrease test
        n_calls[0] = 0
        eager_x, eager = batched_lbfgs(f, x0, max_iter=300, tol=1e-7, lazy=False, ftol=ftol)
        assert eager["calls"] == n_calls[0]
        assert eager["rounds"] >= int(eager["iterations"].max()) and eager["rounds"] <= 300
        x, info = batched_lbfgs(f, x0, max_iter=300, tol=1e-7, lazy=True, ftol=ftol)
        assert torch.equal(x, eager_x)
        for k in ("iterations", "evaluations", "converged", "stalled"):
            assert torch.equal(info[k], eager[k])
        assert (info["rounds"], info["calls"]) == (eager["rounds"], eager["calls"])
        assert len(set(eager["iterations"].tolist())) > 1


def test_a_solve_synchronizes_with_the_host_a_bounded_number_of_times_per_round(monkeypatch):
    """On a GPU every read of a device value on the host (``bool``, ``int``, ``nonzero``,
    ``tolist``) drains the queue of launches.  In the solver's lazy mode (a GPU's) a one-solve
    probe reads at most one value at the start of a round and three per objective call (the
    line-search check, the working set's reuse test, and its rebuild), however many latent
    blocks it holds.  Counted on the CPU, where the same ops run: the per-block reads that this
    replaced made this case 11.7 a round against 5.4."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from mmgain.probes import latent
    from mmgain.probes.latent import cross_fitted_probe, logistic_probe, probe_folds
    reads = [0]

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ in ("_local_scalar_dense", "nonzero", "is_nonzero", "equal"):
                reads[0] += 1
            return func(*args, **(kwargs or {}))

    solver, work = latent.batched_lbfgs, {}

    def lazy(*args, **kw):
        x, info = solver(*args, **{**kw, "lazy": True})
        work.update(info)
        return x, info
    monkeypatch.setattr(latent, "batched_lbfgs", lazy)
    tolist = torch.Tensor.tolist

    def counted_tolist(self):
        reads[0] += 1
        return tolist(self)
    monkeypatch.setattr(torch.Tensor, "tolist", counted_tolist)
    Z, y = _three_block_latent(12, 151)
    t = torch.from_numpy(y)
    probe = lambda Z_, y_, Zt_, yt_, **kw: logistic_probe(Z_, y_, Zt_, yt_, 3, l2=1e-2, tol=1e-8,  # noqa: E731
                                                          by_width=False, **kw)
    folds = probe_folds(y, 3)
    with Count():
        cross_fitted_probe(probe, Z, t, folds, stacked=True)      # one solver call: 3 folds × 4 models
    assert work["calls"] > work["rounds"] > 20                     # line searches with trials, many rounds
    assert work["rounds"] <= reads[0] <= work["rounds"] + 3 * work["calls"]


def test_lbfgs_preconditioner_changes_the_path_not_the_optimum():
    """Quadratics whose curvature spans three decades, coupled so no coordinate is free: with
    P⁻¹ the inverse of the diagonal (which P approximates), L-BFGS needs a fraction of the
    plain start's iterations, and both stop within the gradient tolerance's reach of the
    closed-form minimiser (|x − x*| ≤ ‖Q⁻¹‖·‖∇f‖₂ ≤ ‖Q⁻¹‖·√D·tol)."""
    from mmgain.probes.lbfgs import batched_lbfgs
    r = np.random.default_rng(11)
    A, D, tol = 3, 12, 1e-6
    diag = torch.logspace(-1.5, 1.5, D, dtype=torch.float64)
    M = torch.from_numpy(r.standard_normal((A, D, D))) * 0.05
    Q = torch.diag(diag) + diag.sqrt()[:, None] * (M @ M.transpose(1, 2)) * diag.sqrt()[None, :]
    c = torch.from_numpy(r.standard_normal((A, D)))
    f = lambda x, i: 0.5 * torch.einsum("ad,ade,ae->a", x, Q[i], x) - (c[i] * x).sum(1)  # noqa: E731
    x0 = torch.zeros(A, D, dtype=torch.float64)
    plain_x, plain = batched_lbfgs(f, x0, max_iter=3000, tol=tol)
    x, info = batched_lbfgs(f, x0, max_iter=3000, tol=tol, precondition=lambda v, i: v / diag)
    truth = torch.linalg.solve(Q, c)
    reach = D ** 0.5 * tol / torch.linalg.eigvalsh(Q)[:, 0]          # per problem
    for got, run in ((plain_x, plain), (x, info)):
        assert bool(run["converged"].all())
        assert bool(((got - truth).norm(dim=1) <= reach).all())
    assert int(info["iterations"].max()) * 10 < int(plain["iterations"].min())


def test_lbfgs_converges_where_armijo_alone_cannot_see_the_decrease():
    """f carries an error of 1e-7 (float32 rounding of a sum, modelled here as a fast wobble) on
    top of a quadratic: near the optimum every true decrease is smaller than that error, so
    Armijo-only backtracking fails and stops far from the tolerance; the approximate Wolfe test
    (slope-based, error allowance 1e-6·|f|) converges to the closed-form minimiser."""
    from mmgain.probes.lbfgs import batched_lbfgs
    r = np.random.default_rng(9)
    A, D = 3, 8
    M = torch.from_numpy(r.standard_normal((A, D, D)))
    Q = M @ M.transpose(1, 2) / D + torch.eye(D, dtype=torch.float64)
    c = torch.from_numpy(r.standard_normal((A, D)))

    def vg(x, i):
        Qx = torch.einsum("ade,ae->ad", Q[i], x)
        wobble = 1e-7 * torch.cos(1e7 * x.sum(1))
        return 1.0 + 0.5 * (x * Qx).sum(1) - (c[i] * x).sum(1) + wobble, Qx - c[i]

    x0 = torch.zeros(A, D, dtype=torch.float64)
    _, naive = batched_lbfgs(None, x0, tol=1e-6, value_and_grad=vg, approx_eps=0.0)
    x, info = batched_lbfgs(None, x0, tol=1e-6, value_and_grad=vg)
    assert not bool(naive["converged"].any())
    assert bool(info["converged"].all())
    np.testing.assert_allclose(x.numpy(), torch.linalg.solve(Q, c).numpy(), atol=1e-5)


def test_the_held_out_stopping_rule_keeps_gamma_within_a_tenth_of_its_half_width():
    """The cross-fitted probe's default stopping rule (protocol.heldout_tol / heldout_max_iter /
    heldout_ftol): against a far tighter fit of the same latents, no γ̂ moves by 10 % of its per-row
    95 % half-width, and no fit stops short of the rule; a gradient tolerance 100× looser moves
    some γ̂ by more (the criterion can fail here), and so does a decrease test that always fires
    beside a gradient tolerance 10× looser that alone passes (its gate, 10× the tolerance, is then
    100× the default's); the decrease test saves solver evaluations.  scripts/probe_tolerance.py
    measures the same on mfeat (docs/benchmarks.md)."""
    from mmgain.data.subsets import enumerate_subsets
    from mmgain.probes.latent import fit_probe, latent_gap_probe, probe_folds
    from mmgain.tasks import get_task
    from mmgain.training.protocol import TrainingProtocol

    g = torch.Generator().manual_seed(1)
    n, H, C, names = 240, 48, 4, ["m0", "m1", "m2"]
    subsets = enumerate_subsets(names)
    y = torch.randint(0, C, (n,), generator=g)
    blocks, members = {}, {}
    for k in names:
        members[k] = [a for a, s in enumerate(subsets) if k in s]
        mu = torch.randn(len(members[k]), C, H, generator=g) * 0.15
        blocks[k] = torch.relu(torch.randn(n, len(members[k]), H, generator=g) + mu[:, y].transpose(0, 1))
    Z = Latent(blocks, members, names, len(subsets))
    pairs = [(a, subsets.index(tuple(x for x in M if x != k)), k) for a, M in enumerate(subsets) if len(M) > 1
             for k in M]
    folds, task = probe_folds(y.numpy(), 3), get_task("classification")

    def gamma(protocol):
        fit = lambda Z_, y_, Zt_, yt_: fit_probe(task, Z_, y_, Zt_, yt_, C, protocol, heldout=True)   # noqa: E731
        held = latent_gap_probe(fit, Z, y, folds, pairs, list(range(len(pairs))))
        risk = lambda d: 0.5 * (d["fit"]["loss"] + d["eval"]["loss"]).numpy()                     # noqa: E731
        m, c = risk(held["models"]), risk(held["controls"])
        works = (held["models"]["work"], held["controls"]["work"])
        short, evals = (sum(float(w[k].sum()) for w in works) for k in ("unconverged", "evaluations"))
        return np.stack([m[a] - c[i] for i, (a, _, _) in enumerate(pairs)]), short, evals

    default = TrainingProtocol()
    ref, _, _ = gamma(default.with_(heldout_tol=1e-6, heldout_max_iter=3000, heldout_ftol=0.0))
    half_width = 1.96 * ref.std(1, ddof=1) / np.sqrt(n)
    moved = lambda g_: float((np.abs(g_.mean(1) - ref.mean(1)) / half_width).max())   # noqa: E731
    got, short, evals = gamma(default)
    assert moved(got) < 0.1 and short == 0
    assert moved(gamma(default.with_(heldout_tol=100 * default.heldout_tol))[0]) > 0.1
    looser = default.with_(heldout_tol=10 * default.heldout_tol)          # alone, still inside the criterion
    assert moved(gamma(looser)[0]) < 0.1
    assert moved(gamma(looser.with_(heldout_ftol=1e9))[0]) > 0.1        # a decrease test that always fires
    assert evals < gamma(default.with_(heldout_ftol=0.0))[2]          # the decrease test saves work here


def test_the_intercepts_larger_first_step_reaches_the_same_optimum_where_the_plain_start_hits_the_cap():
    """mfeat's six morphological features under 128 random ReLU units (an encoder of the
    default run's deficit probe): the units move together, L-BFGS scales its steps to that
    common direction, and the intercepts, which must grow to about 2.5, crawl.  With the
    intercepts' inverse curvature started at the weights' (``intercept_step=1``) the fit is still
    short of the tolerance at the cap of 500; with the default it converges, to scipy's optimum,
    which the plain start also reaches given enough iterations."""
    from mmgain.data.loaders import load_mfeat
    ds = load_mfeat()
    g = torch.Generator().manual_seed(0)
    x = torch.as_tensor(ds.modalities["mor"], dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    rows = torch.randperm(len(x), generator=g)[:400]
    Z = torch.relu(x[rows] @ (torch.randn(6, 128, generator=g) / 6 ** 0.5) + 0.1 * torch.randn(128, generator=g))
    y = torch.as_tensor(ds.y[rows.numpy()]).long()
    X = Z.double().numpy()
    sd = X.std(0)
    X = (X - X.mean(0)) / np.where(sd > 1e-8, sd, 1)
    W, b = _scipy_logistic(X, y.numpy(), 10, 1e-3)
    L = X @ W + b
    truth = np.mean(logsumexp(L, axis=1) - L[np.arange(len(y)), y.numpy()])
    lat = dense(Z[:, None])
    plain = logistic_probe(lat, y, lat, y, 10, intercept_step=1.0)
    default = logistic_probe(lat, y, lat, y, 10)
    long_plain = logistic_probe(lat, y, lat, y, 10, intercept_step=1.0, max_iter=3000)
    assert plain["converged"].item() == 0 and plain["iterations"].item() == 500
    assert default["converged"].item() == 1 and default["iterations"].item() < 400
    assert long_plain["converged"].item() == 1
    for out in (default, long_plain):
        assert mean_of(out, "train").item() == pytest.approx(truth, rel=2e-4)


def _three_block_latent(seed: int, n: int):
    """Models a+c, b+c, a+b+c and c alone over blocks of widths 2, 4, 1, float64, with a signal."""
    r = np.random.default_rng(seed)
    widths = {"a": 2, "b": 4, "c": 1}
    members = {"a": [0, 2], "b": [1, 2], "c": [0, 1, 2, 3]}
    blocks = {k: r.standard_normal((n, len(members[k]), w)) for k, w in widths.items()}
    signal = blocks["a"][:, 0, 0] + blocks["b"][:, 0, 1] - blocks["c"][:, 0, 0]
    y = np.digitize(signal + 0.7 * r.standard_normal(n), [-0.7, 0.7])
    return Latent({k: torch.tensor(v) for k, v in blocks.items()}, members, list(widths), 4), y


def test_row_weights_fit_only_the_weighted_rows():
    """A model's rows of weight 0 take no part (not in the standardization either): the probe
    with a weight of 1/n on n chosen rows is the probe on those rows alone."""
    from mmgain.probes.latent import logistic_probe
    Z, y = _three_block_latent(11, 160)
    keep = torch.from_numpy(np.random.default_rng(0).permutation(160)[:110]).sort().values
    t = torch.from_numpy(y)
    weight = torch.zeros(160, 4, dtype=torch.float64)
    weight[keep] = 1.0 / len(keep)
    junk = Latent({k: v.clone() for k, v in Z.blocks.items()}, Z.members, Z.names, 4)
    drop = torch.ones(160, dtype=torch.bool)
    drop[keep] = False
    for v in junk.blocks.values():
        v[drop] = 1e3                                   # rows of weight 0 may hold anything
    got = logistic_probe(junk, t, Z, t, 3, l2=1e-2, tol=1e-8, row_weight=weight)
    ref = logistic_probe(Z.take(keep), t[keep], Z, t, 3, l2=1e-2, tol=1e-8)
    assert got["converged"].tolist() == ref["converged"].tolist() == [1.0] * 4
    np.testing.assert_allclose(got["test"]["loss"].numpy(), ref["test"]["loss"].numpy(), atol=1e-7)
    np.testing.assert_allclose(got["train"]["loss"][:, keep].numpy(), ref["train"]["loss"].numpy(), atol=1e-7)
    assert torch.equal(got["flops"], (4 * 110 * got["evaluations"] + 2 * (110 + 160))
                       * torch.tensor([3.0, 5.0, 7.0, 1.0], dtype=torch.float64) * 3)


def test_the_folds_stacked_in_one_solve_equal_the_folds_one_by_one():
    """cross_fitted_probe(stacked=True): each fold a group of models of one call, folds of
    unequal length padded; the same fits as fold by fold, and each fold's work counted on its
    own rows."""
    from mmgain.probes.latent import _stacked_folds, cross_fitted_probe, logistic_probe, probe_folds
    Z, y = _three_block_latent(12, 151)                 # 151 rows: folds of unequal length
    t = torch.from_numpy(y)
    folds = probe_folds(y, 3)
    probe = lambda Z_, y_, Zt_, yt_, **kw: logistic_probe(Z_, y_, Zt_, yt_, 3, l2=1e-2, tol=1e-8, **kw)  # noqa: E731
    one_by_one = cross_fitted_probe(probe, Z, t, folds)
    stacked = cross_fitted_probe(probe, Z, t, folds, stacked=True)
    for part in ("fit", "eval"):
        np.testing.assert_allclose(stacked[part]["loss"].numpy(), one_by_one[part]["loss"].numpy(), atol=1e-7)
        assert torch.equal(stacked[part]["correct"], one_by_one[part]["correct"])
    assert stacked["work"]["fits"].tolist() == [3.0] * 4 and stacked["work"]["unconverged"].sum() == 0
    f = torch.as_tensor(folds)
    split = [((f != j).nonzero().squeeze(1), (f == j).nonzero().squeeze(1)) for j in range(3)]
    assert len({len(tr) for tr, _ in split}) > 1
    width = torch.tensor([3.0, 5.0, 7.0, 1.0], dtype=torch.float64)
    for (tr, ev), res in zip(split, _stacked_folds(probe, Z, t, split)):
        assert res["test"]["loss"].shape == (4, len(ev))
        assert torch.equal(res["flops"], (4 * len(tr) * res["evaluations"] + 2 * (len(tr) + len(ev))) * width * 3)


@pytest.mark.parametrize("H", [7, 10])
def test_a_lone_models_probe_equals_its_probe_in_a_batch(H):
    """A model probed alone (a batch of one in every GEMM) equals the same model probed beside
    others, bit for bit.  Real, not given: torch's bmm on a batch of one takes MKL's
    single-matrix path, which on a Zen 4 EPYC rounds differently from the batched one at some
    shapes with 10 classes (here, with the two blocks as one of width 2H: H = 6 … 11 of 2 … 40);
    ``latent._bmm`` runs it batched."""
    g = torch.Generator().manual_seed(5)
    n, C, A = 41, 10, 5
    y = torch.randint(0, C, (n,), generator=g)
    blocks = {k: torch.relu(torch.randn(n, A, H, generator=g)) for k in ("a", "b")}
    Z = Latent(blocks, {"a": list(range(A)), "b": list(range(A))}, ["a", "b"], A)
    full = logistic_probe(Z, y, Z, y, C, max_iter=25)
    for a in range(A):
        Z1 = Latent({k: v[:, a:a + 1].contiguous() for k, v in blocks.items()}, {"a": [0], "b": [0]}, ["a", "b"], 1)
        alone = logistic_probe(Z1, y, Z1, y, C, max_iter=25)
        assert torch.equal(alone["test"]["loss"], full["test"]["loss"][a:a + 1]), a


def test_models_of_one_width_probed_as_one_block_reach_each_models_optimum():
    """Models of one latent width are probed as one block, each model's modalities in the order
    of its weights (``latent._one_block``): here modality b comes first in b+c and second in
    a+b.  Every model against scipy on its own concatenated latent."""
    r = np.random.default_rng(11)
    n, C, l2, H = 140, 3, 1e-2, 2
    members = {"a": [0, 1], "b": [0, 2], "c": [1, 2]}                  # models: a+b, a+c, b+c
    blocks = {k: r.standard_normal((n, 2, H)) for k in members}
    signal = blocks["a"][:, 0, 0] - blocks["b"][:, 1, 1] + blocks["c"][:, 0, 0]
    y = np.digitize(signal + 0.5 * r.standard_normal(n), [-0.5, 0.5])
    Z = Latent({k: torch.tensor(v, dtype=torch.float32) for k, v in blocks.items()}, members, list(members), 3)
    out = logistic_probe(Z, torch.from_numpy(y), Z, torch.from_numpy(y), C, l2=l2, tol=1e-6)
    assert out["converged"].tolist() == [1.0, 1.0, 1.0]
    _assert_each_model_at_scipys_optimum(out, blocks, members, y, C, l2)


def test_a_models_probe_does_not_depend_on_the_models_beside_it():
    """A model's probe alone equals its probe in a batch of ten streams, bit for bit — what
    makes ``--memory-gb`` leave the probes alone.  Real, not given: on a Zen 4 EPYC MKL's default
    kernels round by where a batch item sits in memory (here: each item's 3 × 27 gradient block,
    324 bytes), and this case then moved (benchmarks/2026-12-07-decrease-test.md); ``import
    mmgain`` sets MKL_CBWR strict."""
    import os
    assert "MKL_CBWR" in os.environ                          # set by mmgain, or the user's own
    g = torch.Generator().manual_seed(3)
    n, H, C, S = 27, 16, 3, 10
    y = torch.randint(0, C, (n,), generator=g)
    blocks = {k: torch.relu(torch.randn(n, 2 * S, H, generator=g)) for k in ("a", "b")}
    members = {"a": [3 * s + m for s in range(S) for m in (0, 2)], "b": [3 * s + m for s in range(S) for m in (1, 2)]}
    Z = Latent(blocks, members, ["a", "b"], 3 * S)
    full = logistic_probe(Z, y, Z, y, C, max_iter=60)
    assert 60 in full["iterations"].tolist()                # flat problems at the cap: where rounding shows
    for s in range(S):
        one = {k: v[:, 2 * s:2 * s + 2].contiguous() for k, v in blocks.items()}
        Z1 = Latent(one, {"a": [0, 2], "b": [1, 2]}, ["a", "b"], 3)
        alone = logistic_probe(Z1, y, Z1, y, C, max_iter=60)
        assert torch.equal(alone["test"]["loss"], full["test"]["loss"][3 * s:3 * s + 3]), s
