"""The theorems of Huang et al. on a run's measured terms (``--theory``): why M beats N, or why
the theory is silent.

The per-model terms are measured inside each chunk (:mod:`mmgain.run.theory_terms`); here the
bounded test risk and the bounded corrected latent risk (the cross-fitted probe's rows) join
them (:func:`add_theory_metrics`), and :func:`theory_summary` computes both theorems per pair
(M, N) and sample size (:mod:`mmgain.theory.bounds`).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..data.subsets import proper_pairs, subset_name
from ..theory import bounds
from ..theory.closed_form import ols_crossover, ols_risk
from .stats import clopper_pearson

VACUOUS = bounds.C_LOSS      # a bound ≥ C says nothing: both sides are at most C
TIE = 1e-6                   # bounded-risk differences this small are ties (M did not beat N)


def add_theory_metrics(result) -> None:
    """The bounded test risk (``theory_test_bloss``) and the bounded corrected latent risk
    (``theory_latent_bloss``, ½ in-fold + ½ out-of-fold of the cross-fitted probe, as for η̂) of
    every model, from the stored per-row outcomes."""
    task, m, rows = result.task, result.metrics, result.rows
    scale = m["theory_scale"][:, :, None]
    m["theory_test_bloss"] = task.bounded_loss(rows["test"]["loss"].astype(np.float64), scale).mean(-1)
    # in-fold rows hold the average over the folds that fit on them: min(1, ·) of an average is
    # ≥ the average of min(1, ·) (concavity), so this errs towards a larger latent risk
    fit = task.bounded_loss(rows["heldout_fit"]["loss"].astype(np.float64), scale).mean(-1)
    held = task.bounded_loss(rows["heldout_eval"]["loss"].astype(np.float64), scale).mean(-1)
    m["theory_latent_bloss"] = 0.5 * (fit + held)


def _mean(v: np.ndarray) -> float:
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")


def theory_summary(result, crossovers=()) -> dict[str, Any]:
    """``{"theory": [one record per variant, pair (M, N) and sample size], "theory_notes": …}``;
    ``crossovers`` (summary["crossovers"]) puts the measured m* beside the predicted one."""
    task, m, spec = result.task, result.metrics, result.spec
    real = [a for a, c in enumerate(result.controls) if not c]
    subsets = [result.subsets[a] for a in real]
    names = sorted({k for s in subsets for k in s})
    index = {frozenset(result.subsets[a]): a for a in real}
    full = index.get(frozenset(names))
    n_out = result.data.n_outputs
    ok = m["diverged"] == 0
    records = []
    crossings = {(c["M"], c["N"], *(c.get(k) for k in spec.variant_keys)): c for c in crossovers}
    for variant in spec.variants:
        gids = result.group_ids(variant)
        real_cells = [_mean(m["theory_latent_bloss"][js, a][ok[js, a]])
                      for r in result.ratios
                      for js in [result.streams.where(gids, r)] for a in real if ok[js, a].any()]
        ref = 0.0 if spec.bayes_risk == 0 else float(np.nanmin(real_cells))
        for ratio in result.ratios:
            js = result.streams.where(gids, ratio)
            if len(js) == 0:
                continue
            n = int(result.streams.n_train[js[0]])
            lip = np.array([task.bounded_lipschitz(float(x)) for x in m["theory_scale"][js, 0]])
            for M, N in proper_pairs(subsets):
                a, b = index[frozenset(M)], index[frozenset(N)]
                use = ok[js, a] & ok[js, b] & (ok[js, full] if full is not None else True)
                if not use.any():
                    continue
                j = js[use]
                get = lambda name, col: m[name][j, col]                                      # noqa: E731
                lr_up = bounds.lr_term(lip[use], get("theory_rad_upper", a), n_out)
                lr_lo = bounds.lr_term(lip[use], get("theory_rad_lower", a), n_out)
                gamma = get("theory_latent_bloss", a) - get("theory_latent_bloss", b)
                lr_alg = np.maximum(get("theory_rad_alg", a), 0.0)   # R̂(ℓ∘F) ≥ this; L·R(F) ≥ R̂(ℓ∘F)
                t1 = bounds.theorem1(gamma, lr_up, n, get("theory_grid_log", a))
                t1_lo = bounds.theorem1(gamma, lr_lo, n, get("theory_grid_log", a))
                t1_alg = bounds.theorem1(gamma, lr_alg, n, get("theory_grid_log", a))
                obs1 = get("theory_test_bloss", a) - get("theory_test_bloss", b)
                if full is not None:
                    t2 = bounds.theorem2(lr_up, bounds.lr_term(lip[use], get("theory_rad_upper", full), n_out),
                                         get("theory_train_bloss", a) - ref, n,
                                         get("theory_grid_log", a) + get("theory_grid_log", full))
                    t2_lo = bounds.theorem2(lr_lo, bounds.lr_term(lip[use], get("theory_rad_lower", full), n_out),
                                            get("theory_train_bloss", a) - ref, n,
                                            get("theory_grid_log", a) + get("theory_grid_log", full))
                    t2_alg = bounds.theorem2(lr_alg, np.maximum(get("theory_rad_alg", full), 0.0),
                                             get("theory_train_bloss", a) - ref, n,
                                             get("theory_grid_log", a) + get("theory_grid_log", full))
                else:
                    t2 = t2_lo = t2_alg = {k: np.full(len(j), np.nan) for k in ("complexity_M", "complexity_full",
                                                                                 "confidence", "train", "bound")}
                obs2 = get("theory_latent_bloss", a) - ref
                tr_m, tr_n = _mean(get("theory_train_bloss", a)), _mean(get("theory_train_bloss", b))
                ra_m, ra_n = _mean(get("theory_rad_alg", a)), _mean(get("theory_rad_alg", b))

                def block(terms, lower, alg, observed):
                    rec = {k: _mean(v) for k, v in terms.items()}
                    rec["bound_lower"] = _mean(lower["bound"])
                    rec["bound_alg"] = _mean(alg["bound"])
                    rec["observed"] = _mean(observed)
                    bounded = math.isfinite(rec["bound"])     # not computed (Theorem 2 without the full set): null
                    rec["ratio"] = rec["observed"] / rec["bound"] if bounded and rec["bound"] else None
                    rec["holds"] = bool(rec["observed"] <= rec["bound"]) if bounded else None
                    rec["vacuous"] = bool(rec["bound"] >= VACUOUS) if bounded else None
                    return rec

                rec = {**variant, "M": subset_name(M), "N": subset_name(N), "ratio": float(ratio), "m": n,
                       "n_seeds": int(use.sum()),
                       "theorem1": {**block(t1, t1_lo, t1_alg, obs1), "complexity_lower": _mean(t1_lo["complexity"]),
                                    "complexity_alg": _mean(t1_alg["complexity"])},
                       "theorem2": block(t2, t2_lo, t2_alg, obs2),
                       "rad_upper_M": _mean(get("theory_rad_upper", a)), "rad_lower_M": _mean(get("theory_rad_lower", a)),
                       "rad_head_M": _mean(get("theory_rad_head", a)),
                       "rad_alg_M": ra_m, "rad_alg_N": ra_n, "train_M": tr_m, "train_N": tr_n,
                       "condition_holds": bool(bounds.condition(tr_m, tr_n, ra_m, ra_n)),
                       "M_beat_N": bool(_mean(obs1) < -TIE),
                       "m_star_pred": float(bounds.crossover_prediction(tr_m, tr_n, ra_m, ra_n, n)),
                       "kappa_M": _mean(get("theory_kappa", a)), "kappa_N": _mean(get("theory_kappa", b))}
                cross = crossings.get((rec["M"], rec["N"], *(variant.get(k) for k in spec.variant_keys)))
                if cross is not None:
                    rec["m_star"] = cross.get("m_star")
                records.append(rec)
    notes = {
        "loss": f"bounded loss: {type(task).bounded_loss.__doc__.strip()} (C = 1)",
        "delta": bounds.DELTA,
        "complexity": "L·R(H∘G_M) with R bracketed: bound uses the path-norm upper bound, bound_lower the "
                      "supremum over the model's own units (the true right-hand side lies between); bound_alg "
                      "replaces L·R by the algorithm-effective complexity of the loss class (label-flip fits), "
                      "which L·R is at least: what the theorem would say if the class were only what training "
                      "reaches (not a proven bound)",
        "reference": "L̂(h*∘g*, S) and r(h*∘g*) taken as " + ("0 (the noise-free Bayes risk)" if spec.bayes_risk == 0
                                                         else "the best observed bounded latent risk"),
        "condition": "L̂_N − L̂_M ≥ R̂_M − R̂_N with R̂ the algorithm-effective (label-flip) complexity",
        "vacuous": f"a bound ≥ {VACUOUS:g} says nothing: both left-hand sides are at most C = 1",
    }
    return {"theory": records, "theory_notes": notes}


def exact_gamma_summary(result) -> list[dict[str, Any]]:
    """With a known population (``eta_exact``): per variant, pair (M, N) and sample size, the exact
    γ(M, N) = η(ĝ_M) − η(ĝ_N) of each seed, and the fraction of seeds with γ ≤ 0 (M's latent at
    least as good) with its Clopper–Pearson 95 % interval."""
    m = result.metrics
    if "eta_exact" not in m:
        return []
    real = [a for a, c in enumerate(result.controls) if not c]
    index = {frozenset(result.subsets[a]): a for a in real}
    ok = m["diverged"] == 0
    out = []
    for variant, _, ratio, js in result.cells():
        for M, N in proper_pairs([result.subsets[a] for a in real]):
            a, b = index[frozenset(M)], index[frozenset(N)]
            j = js[ok[js, a] & ok[js, b]]
            if len(j) == 0:
                continue
            gamma = m["eta_exact"][j, a] - m["eta_exact"][j, b]
            k = int((gamma <= 0).sum())
            out.append({**variant, "M": subset_name(M), "N": subset_name(N), "ratio": float(ratio),
                        "n_train": int(result.streams.n_train[j[0]]), "n_seeds": len(j), "n_gamma_le_0": k,
                        "fraction": k / len(j), "fraction_ci": list(clopper_pearson(k, len(j))),
                        "gamma_mean": float(gamma.mean()), "eta_M_mean": float(m["eta_exact"][j, a].mean()),
                        "eta_N_mean": float(m["eta_exact"][j, b].mean())})
    return out


def closed_form_annotations(res, summary: dict) -> None:
    """For least squares on data with a known population: the expected test MSE of each cell
    (``ols_expected``) and the closed-form m* of each crossover, with whether its CI holds it."""
    pops = {tuple(sorted(g.variant.items())): g.population for g in res.groups}
    if any(p is None for p in pops.values()) or res.spec.resolved_protocol().solver != "lstsq":
        return
    keys = res.spec.variant_keys
    pop_of = lambda row: pops[tuple(sorted((k, row[k]) for k in keys))]   # noqa: E731
    for c in summary["cells"]:
        if not c.get("control"):
            c["ols_expected"] = ols_risk(pop_of(c), c["subset"].split("+"), c["n_train"])
    for c in summary.get("crossovers", []):
        m_star = ols_crossover(pop_of(c), c["M"].split("+"), c["N"].split("+"))
        c["m_star_closed_form"] = None if m_star != m_star else m_star
        lo, hi = c["m_star_ci"]
        c["closed_form_in_ci"] = None if lo is None or m_star != m_star else bool(lo <= m_star <= hi)
