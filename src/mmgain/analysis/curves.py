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


def expansion(units: int) -> float:
    """Widening of a percentile-bootstrap interval over few units (seeds): t_{U−1}/z · √(U/(U−1)),
    the small-sample expansion of the percentile interval (Hesterberg 2015): plain percentile
    intervals over few seeds undercover (measured in docs/methods/curves.md and forecast.md)."""
    from scipy import stats
    return float(stats.t.ppf(0.975, units - 1) / stats.norm.ppf(0.975) * np.sqrt(units / (units - 1))) \
        if units > 1 else 1.0


def expand_rows_ci(point: float | None, ci: list, units: int, lo_edge: float, hi_edge: float) -> list:
    """A sample-size interval widened by :func:`expansion` about its point on log n, and kept within
    the measured range [lo_edge, hi_edge] (the ends mean "at or beyond the edge")."""
    lo, hi = ci
    if point is None or lo is None or hi is None or not (lo > 0 and hi > 0 and point > 0):
        return ci
    f, lp = expansion(units), np.log(point)
    return [float(max(lo_edge, np.exp(lp - f * (lp - np.log(lo))))),
            float(min(hi_edge, np.exp(lp + f * (np.log(hi) - lp))))]


def _boot_index(S: int, seed: int) -> np.ndarray:
    """Bootstrap draws of whole seeds (samples are nested within a seed, so a seed is the unit)."""
    return np.random.default_rng(seed).integers(0, S, (BOOTSTRAP, S))


def row_weights(R: int, B: int, seed: int) -> np.ndarray:
    """(R, B) multinomial bootstrap weights of R scored rows (each column sums to 1)."""
    return np.random.default_rng([seed, 1]).multinomial(R, np.full(R, 1.0 / R), size=B).T / R


def replicates(err: np.ndarray, idx: np.ndarray, rows: np.ndarray | None = None,
               weights: np.ndarray | None = None) -> np.ndarray:
    """(B, G) bootstrap curves of one subset: the seeds of each replicate drawn by ``idx`` (B, U),
    and with ``rows`` (U, G, R: the error per scored row) and row ``weights`` (R, B) the rows
    re-weighted too.  The same ``idx`` and ``weights`` for every subset keep the pairing."""
    if rows is None or weights is None:
        return err[idx].mean(1)
    U, G, R = rows.shape
    per = (rows.reshape(U * G, R) @ weights).reshape(U, G, -1).transpose(2, 0, 1)   # (B, U, G): one matmul
    return per[np.arange(len(idx))[:, None], idx].mean(1)


Curve = tuple[np.ndarray, np.ndarray]       # (err (U, G) per replicate unit, its bootstrap curves (B, G))


def fits_follow(m: np.ndarray, curves: list[Curve], coefs: list[float], alpha: float = 0.05) -> bool:
    """Goodness of fit on the observed grid: does the combination Σ cᵢ·errᵢ of power-law fits
    (one curve, or a pair's difference with coefficients +1/−1) follow the observed one?  Per
    bootstrap replicate, the residual observed − fitted at every size; the fit passes when 0 lies
    in every size's residual interval at level 1 − α/G (Bonferroni over the G sizes).  The
    bootstrap carries the seeds' correlation across nested sizes that a χ² over sizes would
    ignore; a systematic misfit (double descent near n ≈ p, a second sign change) fails it."""
    obs, fit = 0.0, 0.0
    for (e, reps), c in zip(curves, coefs):
        obs, fit = obs + c * reps, fit + c * predict(fit_power_law(m, reps, _weights(e)), m)
    r = obs - fit                                                       # (B, G)
    a = 100 * alpha / len(m)
    lo, hi = np.percentile(r, a / 2, axis=0), np.percentile(r, 100 - a / 2, axis=0)
    return bool(((lo <= 1e-12) & (hi >= -1e-12)).all())


def tail_start(m: np.ndarray, curves: list[Curve], coefs: list[float]) -> int | None:
    """The first size index from which the power law follows the observed curve(s) on every
    larger size (:func:`fits_follow` on ``m[j:]``), keeping ≥ :data:`MIN_SIZES` + 1 sizes; None
    when no tail is followed.  What a forecast beyond the grid extrapolates is the tail."""
    for j in range(0, len(m) - MIN_SIZES):
        if fits_follow(m[j:], [(e[:, j:], r[:, j:]) for e, r in curves], coefs):
            return j
    return None


def _last_crossings(d: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of the observed paired difference Δ (R, G) (> 0: M better), on ascending sizes
    ``m``: the last sign change into M better, interpolated linearly on log n (NaN if none), a
    code (1: M better from there on; 2: M better at every size; 3: M not better at the largest
    size) and the number of sign changes."""
    pos = d > 0
    R = len(d)
    out, code = np.full(R, np.nan), np.zeros(R, dtype=int)
    changes = (pos[:, 1:] != pos[:, :-1]).sum(1)
    for r in range(R):
        if not pos[r, -1]:
            code[r] = 3
        elif pos[r].all():
            code[r] = 2
        else:
            i = int(np.flatnonzero(~pos[r])[-1])                         # the last size where M was not better
            d0, d1 = d[r, i], d[r, i + 1]
            t = d0 / (d0 - d1) if d0 != d1 else 0.5
            out[r] = float(np.exp(np.log(m[i]) + t * (np.log(m[i + 1]) - np.log(m[i]))))
            code[r] = 1
    return out, code, changes


def empirical_crossing(m: np.ndarray, delta: np.ndarray, boot: np.ndarray) -> dict:
    """The last crossing read off the grid, model-free: where the paired difference Δ = err_N −
    err_M (U, G) last turns positive, interpolated on log n, with a bootstrap interval from
    ``boot`` (B, G), the replicates of Δ (over seeds, and rows when the run kept them).  A replicate
    without a crossing counts at the edge it lies beyond, so the interval can read "≤ the smallest
    size" or "≥ the largest"; the percentile interval is widened for few seeds (:func:`expansion`)."""
    point, code, changes = _last_crossings(delta.mean(0, keepdims=True), m)
    b_star, b_code, _ = _last_crossings(boot, m)
    censored = np.where(b_code == 2, m.min(), np.where(b_code == 3, m.max(), b_star))
    ci = [float(np.percentile(censored, 2.5)), float(np.percentile(censored, 97.5))] if len(delta) > 1 \
        else [None, None]
    ci = expand_rows_ci(None if np.isnan(point[0]) else float(point[0]), ci, len(delta), m.min(), m.max())
    if code[0] == 3:
        status = STATUS[3] if (delta.mean(0) <= 0).all() else STATUS[0]
    else:
        status = STATUS[int(code[0])]
    return {"m_last": None if np.isnan(point[0]) else float(point[0]), "m_last_ci": ci,
            "m_last_ci_edges": [bool(ci[0] is not None and ci[0] <= m.min()),
                                bool(ci[1] is not None and ci[1] >= m.max())],
            "sign_changes": int(changes[0]), "status": status}


def crossover(m: np.ndarray, err_M: np.ndarray, err_N: np.ndarray, seed: int = 0,
              reps: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """m*(M, N), its bootstrap CI, m₊, the asymptotic gain a_N − a_M and the data multiplier
    k(m) at each grid size; ``err_*`` are (S, G) per seed (the same seeds) at sizes ``m``
    (ascending); ``reps`` are their bootstrap curves (B, G) (:func:`replicates`, over seeds and
    rows); default: over seeds.

    m* comes from the power-law fits when they follow the observed difference on the whole grid
    (:func:`fits_follow`); otherwise (double descent near n ≈ p, a difference that changes sign
    more than once) from the grid itself, :func:`empirical_crossing`, and ``m_star_source`` says
    which; the fits' m* stays in ``m_star_fit``."""
    m = np.asarray(m, dtype=np.float64)
    eM, eN = np.asarray(err_M, dtype=np.float64), np.asarray(err_N, dtype=np.float64)
    S = len(eM)
    grid = np.geomspace(m.min(), m.max(), 400)
    wM, wN = _weights(eM), _weights(eN)
    fM, fN = fit_power_law(m, eM.mean(0), wM), fit_power_law(m, eN.mean(0), wN)
    m_star, code = _crossing(predict(fN, grid) - predict(fM, grid), grid)
    idx = _boot_index(S, seed)
    rM, rN = reps if reps is not None else (eM[idx].mean(1), eN[idx].mean(1))
    bM, bN = fit_power_law(m, rM, wM), fit_power_law(m, rN, wN)
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
    ci = expand_rows_ci(None if np.isnan(m_star[0]) else float(m_star[0]), ci, S, m.min(), m.max())
    # m₊: from which grid size on the observed mean Δ's lower bootstrap bound stays > 0
    d_obs = rN - rM                                                     # (B, G)
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
    out = {"m_star": None if np.isnan(m_star[0]) else float(m_star[0]), "m_star_ci": ci,
           "m_star_ci_edges": [bool(ci[0] is not None and ci[0] <= m.min()),
                               bool(ci[1] is not None and ci[1] >= m.max())],
           "m_plus": m_plus, "asymptotic_gain": float(gain),
           "asymptotic_gain_ci": [float(np.percentile(gains, 2.5)), float(np.percentile(gains, 97.5))]
           if S > 1 else [None, None],
           "multiplier": [None if not np.isfinite(k) else float(k / mm) for k, mm in zip(need, m)],
           "status": status, "m_range": [float(m.min()), float(m.max())],
           "delta_band": {"m": grid[::40].tolist(), "lo": lo_band[::40].tolist(), "hi": hi_band[::40].tolist()}}
    follows = S > 1 and fits_follow(m, [(eN, rN), (eM, rM)], [1.0, -1.0])
    empirical = empirical_crossing(m, eN - eM, d_obs)
    out.update(fit_follows=bool(follows), m_star_source="power law", empirical=empirical)
    if S > 1 and not follows:           # the power law cannot follow Δ: the grid's own crossing is the answer
        out.update(m_star_fit=out["m_star"], m_star_fit_ci=out["m_star_ci"], status_fit=out["status"],
                   m_star=empirical["m_last"], m_star_ci=empirical["m_last_ci"],
                   m_star_ci_edges=empirical["m_last_ci_edges"], status=empirical["status"],
                   m_star_source="empirical (the power law does not follow the observed difference)")
    return out


def degenerate_size(n_train: int, n_classes: int) -> bool:
    """Too few rows to say anything: fewer than 3 per class (classification) or than 5."""
    return n_train < (3 * n_classes if n_classes else 5)


def dense_ratios(n_train: int, n_classes: int, points: int = 12) -> tuple[float, ...]:
    """``--grid dense``: about ``points`` geometric sizes from 5 rows per class (or 20) to the full
    training set, as ratios that :func:`mmgain.data.splits.sample_size` maps back to those sizes."""
    low = min(n_train, max(5 * n_classes, 20))
    sizes = np.unique(np.round(np.geomspace(low, n_train, points)).astype(int))
    return tuple(float(s / n_train) if s < n_train else 1.0 for s in sizes)


class CurveData:
    """One data variant's learning curves as the analysis reads them: the non-degenerate sample
    sizes (ascending), and per subset the error of every replicate (a seed, and a cross-fitting
    fold: each fold's model is one more curve) at every size, (U, G) — the units common to every
    size.  ``err`` is 100 − accuracy (%) or the MSE: lower is better.  :meth:`curve` adds the
    bootstrap curves (over seeds, and scored rows when the run kept them)."""

    def __init__(self, result, variant: dict):
        self.result, self.variant = result, variant
        task, n_classes = result.task, result.data.n_classes
        m = task.metric
        self.err_label = "100 − test accuracy %" if m == "acc" else "test MSE"
        test, diverged = result.metrics[f"test_{m}"], result.metrics["diverged"] > 0
        by_size: dict[int, np.ndarray] = {}
        for r in result.ratios:
            js = result.streams.where(result.group_ids(variant), r)
            if len(js) and not degenerate_size(int(result.streams.n_train[js[0]]), n_classes):
                by_size.setdefault(int(result.streams.n_train[js[0]]), js)
        self.sizes = sorted(by_size)
        self.m = np.array(self.sizes, dtype=np.float64)
        unit = lambda j: (int(result.streams.seed[j]), int(result.streams.group[j]))   # noqa: E731
        keyed = [{unit(j): j for j in by_size[n]} for n in self.sizes]
        common = sorted(set.intersection(*(set(k) for k in keyed))) if keyed else []
        self.cols = np.array([[keyed[i][u] for i in range(len(self.sizes))] for u in common], dtype=np.int64)
        self.err: dict[int, np.ndarray] = {}
        self._rows = None
        self._idx, self._weights, self._reps = _boot_index(max(len(common), 1), 0), None, {}
        if len(self.sizes) < MIN_SIZES or len(common) < 2:
            return
        to_err = (lambda v: 100.0 - v) if m == "acc" else (lambda v: v)
        for a in range(len(result.subsets)):
            if not result.controls[a] and not diverged[self.cols, a].any():
                self.err[a] = to_err(test[self.cols, a].astype(np.float64))         # (U, G)

    @property
    def usable(self) -> bool:
        return bool(self.err)

    def err_rows(self, a: int) -> np.ndarray | None:
        """Subset a's error per scored row (U, G, R), or None when the run kept no rows."""
        if self._rows is None:
            test = self.result.rows.get("test") if self.result.rows else None
            mr = self.result.task.metric_rows(test) if test else None       # (S, A, R)
            self._rows = mr if mr is not None and mr.ndim == 3 else False
        if self._rows is False:
            return None
        r = self._rows[self.cols, a]                                        # (U, G, R)
        return 100.0 - r if self.result.task.metric == "acc" else r

    def curve(self, a: int) -> tuple[np.ndarray, np.ndarray]:
        """(err (U, G), its bootstrap curves (B, G)): one bootstrap design (seeds and rows) for every
        subset of the variant, so differences stay paired."""
        if a not in self._reps:
            rows = self.err_rows(a)
            if self._weights is None and rows is not None:
                self._weights = row_weights(rows.shape[-1], BOOTSTRAP, 0)
            self._reps[a] = replicates(self.err[a], self._idx, rows, self._weights)
        return self.err[a], self._reps[a]

    @property
    def bootstrap(self) -> str:
        return "seeds and rows" if self.err_rows(next(iter(self.err))) is not None else "seeds"


def curve_data(result, variant: dict) -> CurveData:
    """The variant's :class:`CurveData`, made once per result (its bootstrap curves are shared by
    the crossovers, the forecast and the budget choice)."""
    cache = vars(result).setdefault("_curve_data", {})
    key = tuple(sorted(variant.items()))
    if key not in cache:
        cache[key] = CurveData(result, variant)
    return cache[key]


def curve_summary(result, pairs: list[dict]) -> dict:
    """``summary.json``'s ``"curves"`` (per subset) and ``"crossovers"`` (per pair (M, N)),
    from the per-seed test errors at the non-degenerate sample sizes."""
    from ..data.subsets import subset_name

    out: dict = {"curves": [], "crossovers": []}
    ratios = result.ratios
    for variant in [dict(v) for v in result.spec.variants]:
        data = curve_data(result, variant)
        if len(data.sizes) < MIN_SIZES:
            out.setdefault("note", f"learning curves need ≥ {MIN_SIZES} non-degenerate sample sizes "
                                   f"(this run has {len(data.sizes)}); use --grid dense")
            continue
        if not data.usable:
            continue
        for a, err in data.err.items():
            out["curves"].append({**variant, "subset": subset_name(result.subsets[a]), **curve_fit_ci(data.m, err),
                                  "points": {"n_train": data.sizes, "err": err.mean(0).tolist()},
                                  "err": data.err_label})
        for p in pairs:
            if any(p.get(k) != v for k, v in variant.items()) or p["ratio"] != max(ratios):
                continue
            a, b = result.subsets.index(tuple(p["M"].split("+"))), result.subsets.index(tuple(p["N"].split("+")))
            if a in data.err and b in data.err:
                out["crossovers"].append({**variant, "M": p["M"], "N": p["N"], "modality": p["modality"],
                                          **crossover(data.m, data.err[a], data.err[b],
                                                      reps=(data.curve(a)[1], data.curve(b)[1])),
                                          "bootstrap": data.bootstrap})
    return out
