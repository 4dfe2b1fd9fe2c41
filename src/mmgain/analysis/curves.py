"""Learning curves and the crossover sample size m*: from how much data on does M beat N?

Each subset's error curve is fitted as err(m) = a + b·m^(−c) (a ≥ 0, b ≥ 0, c in [0.05, 3]):
for each c on a grid, a and b are a weighted least-squares fit (weights 1/var of the seed
mean at each size), and the c with the smallest weighted residual wins — a profile fit that
is exact for fixed c, vectorised over bootstrap replicates, and cannot fail to converge.

For a pair (M, N), Δ(m) = err_N(m) − err_M(m) > 0 where M is better.  m* is where Δ turns
positive; its 95 % CI comes from a bootstrap over whole seeds (samples are nested within a
seed, so a seed is the unit), refitting both curves each time; replicates without a crossover
in [m_min, m_max] count at the edge they lie beyond, so the CI can read "< m_min" or
"> m_max".  m₊ is model-free: the smallest grid size from which the lower bootstrap bound of
the observed mean Δ stays above 0.
"""
from __future__ import annotations

import numpy as np

C_GRID = np.linspace(0.05, 3.0, 60)
BOOTSTRAP = 400
MIN_SIZES = 4          # fewer distinct sample sizes cannot identify three parameters


def fit_power_law(m: np.ndarray, err: np.ndarray, w: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """a, b, c of err ≈ a + b·m^(−c) for each row of ``err`` (R, G) at sizes ``m`` (G,)."""
    m = np.asarray(m, dtype=np.float64)
    err = np.atleast_2d(np.asarray(err, dtype=np.float64))
    w = np.ones(err.shape[-1]) if w is None else np.asarray(w, dtype=np.float64)
    w = np.broadcast_to(w / w.sum(), err.shape)
    best = {"sse": np.full(len(err), np.inf), "a": np.zeros(len(err)), "b": np.zeros(len(err)),
            "c": np.zeros(len(err))}
    ew = (w * err).sum(1)
    for c in C_GRID:
        x = m ** -c                                                     # (G,)
        xw = (w * x).sum(1)
        var = (w * x * x).sum(1) - xw ** 2
        cov = (w * x * err).sum(1) - xw * ew
        b = np.where(var > 0, cov / np.where(var > 0, var, 1), 0.0)
        a = ew - b * xw
        neg_b = b < 0                                                   # a flat curve: the mean
        a, b = np.where(neg_b, ew, a), np.where(neg_b, 0.0, b)
        neg_a = a < 0                                                   # through the origin
        b_origin = (w * x * err).sum(1) / (w * x * x).sum(1)
        a, b = np.where(neg_a, 0.0, a), np.where(neg_a, np.maximum(b_origin, 0), b)
        sse = (w * (err - a[:, None] - b[:, None] * x) ** 2).sum(1)
        better = sse < best["sse"]
        for k, v in (("sse", sse), ("a", a), ("b", b), ("c", np.full(len(err), c))):
            best[k] = np.where(better, v, best[k])
    return best


def predict(fit: dict, m: np.ndarray) -> np.ndarray:
    """(R, len(m)) predictions of each fitted curve."""
    m = np.asarray(m, dtype=np.float64)
    return fit["a"][:, None] + fit["b"][:, None] * m[None] ** -fit["c"][:, None]


def _crossing(delta: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of Δ (R, L) on ``grid``: m* (NaN if none) and a code: 1 = crossover (Δ turns
    positive once and stays), 2 = M always better, 3 = N always better, 0 = undetermined."""
    pos = delta > 0
    R = len(delta)
    m_star, code = np.full(R, np.nan), np.zeros(R, dtype=int)
    for r in range(R):
        p = pos[r]
        if p.all():
            code[r] = 2
        elif not p.any():
            code[r] = 3
        else:
            changes = np.flatnonzero(p[1:] != p[:-1])
            if len(changes) == 1 and not p[0]:
                i = changes[0]
                d0, d1 = delta[r, i], delta[r, i + 1]
                t = d0 / (d0 - d1) if d0 != d1 else 0.5
                m_star[r] = float(np.exp(np.log(grid[i]) + t * (np.log(grid[i + 1]) - np.log(grid[i]))))
                code[r] = 1
    return m_star, code


STATUS = {1: "crossover", 2: "M always better", 3: "N always better", 0: "undetermined"}


def _weights(err: np.ndarray) -> np.ndarray:
    S = err.shape[0]
    var = err.var(0, ddof=1) / S if S > 1 else np.ones(err.shape[1])
    return 1.0 / (var + 1e-6 * (err.mean() ** 2 + 1e-12))


def curve_fit_ci(m: np.ndarray, err: np.ndarray, seed: int = 0) -> dict:
    """A subset's curve: a, b, c on the seed means with bootstrap CIs over seeds; err (S, G)."""
    err = np.asarray(err, dtype=np.float64)
    w = _weights(err)
    point = fit_power_law(m, err.mean(0), w)
    idx = np.random.default_rng(seed).integers(0, len(err), (BOOTSTRAP, len(err)))
    boot = fit_power_law(m, err[idx].mean(1), w)
    out = {}
    for k in "abc":
        out[k] = float(point[k][0])
        out[f"{k}_ci"] = [float(np.percentile(boot[k], 2.5)), float(np.percentile(boot[k], 97.5))] \
            if len(err) > 1 else [None, None]
    return out


def crossover(m: np.ndarray, err_M: np.ndarray, err_N: np.ndarray, seed: int = 0) -> dict:
    """m*(M, N), its bootstrap CI, m₊, the asymptotic gain a_N − a_M and the data multiplier
    k(m) at each grid size; ``err_*`` are (S, G) per seed (the same seeds) at sizes ``m``."""
    m = np.asarray(m, dtype=np.float64)
    eM, eN = np.asarray(err_M, dtype=np.float64), np.asarray(err_N, dtype=np.float64)
    S = len(eM)
    grid = np.geomspace(m.min(), m.max(), 400)
    wM, wN = _weights(eM), _weights(eN)
    fM, fN = fit_power_law(m, eM.mean(0), wM), fit_power_law(m, eN.mean(0), wN)
    m_star, code = _crossing(predict(fN, grid) - predict(fM, grid), grid)
    idx = np.random.default_rng(seed).integers(0, S, (BOOTSTRAP, S))
    bM, bN = fit_power_law(m, eM[idx].mean(1), wM), fit_power_law(m, eN[idx].mean(1), wN)
    band = predict(bN, grid) - predict(bM, grid)
    b_star, b_code = _crossing(band, grid)
    censored = np.where(b_code == 2, m.min(), np.where(b_code == 3, m.max(), b_star))   # beyond an edge
    lo_band, hi_band = np.percentile(band, 2.5, axis=0), np.percentile(band, 97.5, axis=0)
    if S > 1 and (lo_band > 0).all():
        status = "M always better"
    elif S > 1 and (hi_band < 0).all():
        status = "N always better"
    else:
        status = STATUS[int(code[0])]
    ok = ~np.isnan(censored)
    ci = [float(np.percentile(censored[ok], 2.5)), float(np.percentile(censored[ok], 97.5))] \
        if S > 1 and ok.mean() >= 0.5 else [None, None]
    # m₊: from which grid size on the observed mean Δ's lower bootstrap bound stays > 0
    d_obs = eN[idx].mean(1) - eM[idx].mean(1)                           # (B, G)
    lower = np.percentile(d_obs, 2.5, axis=0) if S > 1 else np.full(len(m), -np.inf)
    order = np.argsort(m)
    m_plus = None
    for j in range(len(order)):
        if (lower[order[j:]] > 0).all():
            m_plus = float(m[order[j]])
            break
    gain = fN["a"][0] - fM["a"][0]
    gains = bN["a"] - bM["a"]
    errM_at = predict(fM, m)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where((errM_at > fN["a"][0]) & (fN["b"][0] > 0),
                        ((errM_at - fN["a"][0]) / fN["b"][0]) ** (-1.0 / fN["c"][0]), np.inf)
    return {"m_star": None if np.isnan(m_star[0]) else float(m_star[0]), "m_star_ci": ci,
            "m_star_ci_edges": [bool(ci[0] is not None and ci[0] <= m.min()),
                                bool(ci[1] is not None and ci[1] >= m.max())],
            "m_plus": m_plus, "asymptotic_gain": float(gain),
            "asymptotic_gain_ci": [float(np.percentile(gains, 2.5)), float(np.percentile(gains, 97.5))]
            if S > 1 else [None, None],
            "multiplier": [None if not np.isfinite(k) else float(k / mm) for k, mm in zip(need, m)],
            "status": status, "m_range": [float(m.min()), float(m.max())],
            "delta_band": {"m": grid[::40].tolist(), "lo": lo_band[::40].tolist(), "hi": hi_band[::40].tolist()}}


def degenerate_size(n_train: int, n_classes: int) -> bool:
    """Too few rows to say anything: fewer than 3 per class (classification) or than 5."""
    return n_train < (3 * n_classes if n_classes else 5)


def dense_ratios(n_train: int, n_classes: int, points: int = 12) -> tuple[float, ...]:
    """``--grid dense``: about ``points`` geometric sizes from 5 rows per class (or 20) to the full
    training set, as ratios that :func:`mmgain.data.splits.sample_size` maps back to those sizes."""
    low = min(n_train, max(5 * n_classes, 20))
    sizes = np.unique(np.round(np.geomspace(low, n_train, points)).astype(int))
    return tuple(float(s / n_train) if s < n_train else 1.0 for s in sizes)


def curve_summary(result, pairs: list[dict]) -> dict:
    """``summary.json``'s ``"curves"`` (per subset) and ``"crossovers"`` (per pair (M, N)),
    from the per-seed test errors at the non-degenerate sample sizes."""
    from ..data.subsets import subset_name

    task = result.task
    m = task.metric
    err_of = (lambda v: 100.0 - v) if m == "acc" else (lambda v: v)
    n_classes = result.data.n_classes
    test, diverged = result.metrics[f"test_{m}"], result.metrics["diverged"] > 0
    out: dict = {"curves": [], "crossovers": []}
    ratios = result.ratios
    for variant in [dict(v) for v in result.spec.variants]:
        gids = result.group_ids(variant)
        by_size: dict[int, np.ndarray] = {}
        for r in ratios:
            js = result.streams.where(gids, r)
            if len(js) and not degenerate_size(int(result.streams.n_train[js[0]]), n_classes):
                by_size.setdefault(int(result.streams.n_train[js[0]]), js)
        sizes = sorted(by_size)
        if len(sizes) < MIN_SIZES:
            out.setdefault("note", f"learning curves need ≥ {MIN_SIZES} non-degenerate sample sizes "
                                   f"(this run has {len(sizes)}); use --grid dense")
            continue
        # a replicate is a seed (and a cross-fitting fold: each fold's model is one more curve)
        unit = lambda j: (int(result.streams.seed[j]), int(result.streams.group[j]))   # noqa: E731
        keyed = [{unit(j): j for j in by_size[n]} for n in sizes]
        common = sorted(set.intersection(*(set(k) for k in keyed)))
        if len(common) < 2:
            continue
        cols = np.array([[keyed[i][u] for i in range(len(sizes))] for u in common])
        m_arr = np.array(sizes, dtype=np.float64)
        fits = {}
        for a, sub in enumerate(result.subsets):
            if result.controls[a] or diverged[cols, a].any():
                continue
            err = err_of(test[cols, a])                                 # (S, G)
            fit = curve_fit_ci(m_arr, err)
            fits[a] = err
            out["curves"].append({**variant, "subset": subset_name(sub), **fit,
                                  "points": {"n_train": sizes, "err": err.mean(0).tolist()},
                                  "err": "100 − test accuracy %" if m == "acc" else "test MSE"})
        for p in pairs:
            if any(p.get(k) != v for k, v in variant.items()) or p["ratio"] != max(ratios):
                continue
            a, b = result.subsets.index(tuple(p["M"].split("+"))), result.subsets.index(tuple(p["N"].split("+")))
            if a in fits and b in fits:
                out["crossovers"].append({**variant, "M": p["M"], "N": p["N"], "modality": p["modality"],
                                          **crossover(m_arr, fits[a], fits[b])})
    return out
