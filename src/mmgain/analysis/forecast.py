"""Should I collect modality k?  The collection forecast and the best subset under a budget.

* :func:`forecast_records` — for each modality k and its partner set N (by default the best
  subset without k at the largest measured size), the gain of N + k over N at a target number of
  rows (default: twice the largest measured), from the learning curves: the power law is fitted to
  the tail of the grid that it follows (:func:`.curves.tail_start`); the interval carries the
  fits' uncertainty (a bootstrap that refits both curves), few seeds and how much the forecast
  depends on where the tail starts (:func:`tail_difference`).  A target beyond the largest
  measured size is flagged ``extrapolated``.  The break-even n* is the pair's m*.
* :func:`selection_records` — with modality costs and a budget, the best affordable subset at the
  largest measured size (observed, with a paired interval against the runner-up) and at the
  target (forecast).  Without costs every modality costs 1, so a budget B asks for the best B of K.

Gains are signed + = helps, in the task's unit (accuracy points; MSE reduction).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..data.subsets import subset_name
from .curves import MIN_SIZES, Curve, CurveData, curve_data, expansion, fit_power_law, predict, _weights, tail_start
from .stats import paired


def _fit_at(m: np.ndarray, curve: Curve, target: float, boot: bool = True) -> tuple[float, np.ndarray | None]:
    """A curve's fitted error at ``target``: the point fit on the seed means and (``boot``) one
    value per bootstrap replicate."""
    err, reps = curve
    w = _weights(err)
    point = predict(fit_power_law(m, err.mean(0), w), [target])[0, 0]
    return float(point), predict(fit_power_law(m, reps, w), [target])[:, 0] if boot else None


def _tail(curve: Curve, j: int) -> Curve:
    return curve[0][:, j:], curve[1][:, j:]


def tail_difference(m: np.ndarray, a: Curve, b: Curve, target: float) -> dict[str, Any]:
    """err_b − err_a at ``target`` (> 0: a better) from power-law fits of the tail of the grid that
    they follow (``gain`` None when no tail is followed), with a 95 % interval made of three parts:
    the bootstrap percentiles of the refitted difference (the fits' uncertainty), widened for few
    seeds (:func:`.curves.expansion`), plus the largest change of the forecast when the tail starts one or
    two sizes later (``tail_spread``: how much the extrapolation depends on where the power law is
    assumed to hold).  Measured coverage: docs/methods/forecast.md."""
    j = tail_start(m, [b, a], [1.0, -1.0])
    if j is None:
        return {"gain": None, "gain_ci": [None, None], "fit_from": None, "tail_spread": None,
                "why": "no power law follows the observed difference on any tail of the grid: no forecast"}

    def at(k: int) -> tuple[float, np.ndarray]:
        pa, ba = _fit_at(m[k:], _tail(a, k), target)
        pb, bb = _fit_at(m[k:], _tail(b, k), target)
        return pb - pa, bb - ba

    gain, boot = at(j)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    spread = max([abs(at(k)[0] - gain) for k in range(j + 1, min(j + 3, len(m) - MIN_SIZES))], default=0.0)
    f = expansion(len(a[0]))
    return {"gain": float(gain), "gain_ci": [float(gain - f * (gain - lo) - spread), float(gain + f * (hi - gain) + spread)],
            "fit_from": int(m[j]), "tail_spread": float(spread), "why": None,
            "bootstrap_ci": [float(lo), float(hi)], "widening": f}


def target_rows(spec, data: CurveData) -> int:
    """The forecast's target number of training rows: ``--target-n``, else 2× the largest measured."""
    return int(spec.target_n) if getattr(spec, "target_n", None) else int(2 * data.m.max())


def _index(result) -> dict[frozenset, int]:
    return {frozenset(s): a for a, s in enumerate(result.subsets) if not result.controls[a]}


def _top_values(result, variant: dict, index: dict) -> tuple[np.ndarray, dict[frozenset, float]]:
    """The replicates (S, K) of a variant at the largest size and each subset's mean test metric there
    (NaN where every replicate diverged)."""
    task, ok = result.task, result.metrics["diverged"] == 0
    js = result.replicates(result.group_ids(variant), max(result.ratios))
    vals = result.metrics[f"test_{task.metric}"]
    return js, {s: float(vals[js, a][ok[js, a]].mean()) if js.size and ok[js, a].any() else float("nan")
                for s, a in index.items()}


def forecast_records(result, summary: dict) -> list[dict]:
    """``summary.json``'s ``"forecast"``: one entry per data variant × modality.  The question is
    N + k against N, N the best trained subset without k (highest test metric at the largest
    size) whose N + k was trained; today's verdict and gain are that pair's at the largest size."""
    spec, index = result.spec, _index(result)
    crossings = {(c["M"], c["N"]) + tuple(c.get(k) for k in spec.variant_keys): c
                 for c in summary.get("crossovers", [])}
    verdicts = {(p["M"], p["N"], p["ratio"]) + tuple(p.get(k) for k in spec.variant_keys): p
                for p in summary.get("pairs", [])}
    top = max(result.ratios)
    better = 1.0 if result.task.higher_is_better else -1.0
    out = []
    for variant in [dict(v) for v in spec.variants]:
        data = curve_data(result, variant)
        _, values = _top_values(result, variant, index)
        vkey = tuple(variant.get(k) for k in spec.variant_keys)
        for k in result.data.names:
            rec: dict[str, Any] = {**variant, "modality": k, "M": None, "N": None, "target_n": None, "gain": None,
                                   "gain_ci": [None, None], "extrapolated": None, "n_star": None,
                                   "n_star_ci": [None, None], "verdict": None, "gain_now": None}
            partners = [s for s in index if k not in s and (s | {k}) in index and np.isfinite(values[s])
                        and np.isfinite(values[s | {k}])]
            if not partners:
                rec["why"] = f"no trained pair adds {k} to a subset without it"
                out.append(rec)
                continue
            n_set = max(partners, key=lambda s: better * values[s])
            a, b = index[n_set | {k}], index[n_set]
            M, N = subset_name(result.subsets[a]), subset_name(result.subsets[b])
            pair = verdicts.get((M, N, top) + vkey, {})
            rec.update(M=M, N=N, verdict=pair.get("verdict"), gain_now=pair.get("gain"),
                       gain_now_ci=pair.get("gain_ci", [None, None]), n_now=pair.get("n_train"))
            if not (a in data.err and b in data.err):
                rec["why"] = (f"a forecast needs learning curves: ≥ 4 sample sizes (--grid dense); this run has "
                              f"{len(data.sizes)}") if not data.usable else f"{M} or {N} has no learning curve"
                out.append(rec)
                continue
            target = target_rows(spec, data)
            diff = tail_difference(data.m, data.curve(a), data.curve(b), target)
            cross = crossings.get((M, N) + vkey, {})
            rec.update(target_n=target, gain=diff["gain"], gain_ci=diff["gain_ci"],
                       extrapolated=bool(target > data.m.max()), fit_from=diff["fit_from"],
                       tail_spread=diff["tail_spread"],
                       n_star=cross.get("m_star"), n_star_ci=cross.get("m_star_ci", [None, None]),
                       n_star_source=cross.get("m_star_source"), n_star_status=cross.get("status"),
                       bootstrap=data.bootstrap, why=diff["why"] and f"{k}: {diff['why']}")
            out.append(rec)
    return out


def parse_costs(text: str | Mapping[str, float] | None) -> dict[str, float] | None:
    """``--costs text=1,audio=3`` (or a mapping) → {modality: cost}; costs must be ≥ 0."""
    from ..errors import SpecError

    if text is None or isinstance(text, Mapping):
        costs = dict(text) if text is not None else None
    else:
        costs = {}
        for part in (p.strip() for p in str(text).split(",") if p.strip()):
            name, sep, value = part.partition("=")
            try:
                costs[name.strip()] = float(value)
            except ValueError:
                raise SpecError(f"--costs takes modality=cost pairs such as 'text=1,audio=3', got {part!r}") from None
            if not sep or not name.strip():
                raise SpecError(f"--costs takes modality=cost pairs such as 'text=1,audio=3', got {part!r}")
    for name, c in (costs or {}).items():
        if not (isinstance(c, (int, float)) and c >= 0 and np.isfinite(c)):
            raise SpecError(f"--costs: the cost of {name!r} must be a number ≥ 0, got {c!r}")
    return costs


def rank_affordable(values: Mapping[frozenset, float], costs: Mapping[str, float], budget: float | None,
                    higher_is_better: bool) -> list[tuple[frozenset, float, float]]:
    """The subsets whose summed cost is within ``budget``, best value first: (subset, value, cost).
    Ties on value go to the cheaper subset."""
    rows = [(s, v, float(sum(costs.get(k, 1.0) for k in s))) for s, v in values.items() if np.isfinite(v)]
    rows = [r for r in rows if budget is None or r[2] <= budget + 1e-12]
    return sorted(rows, key=lambda r: ((-r[1] if higher_is_better else r[1]), r[2]))


def _lead_text(best: str, runner: str, lead: float, ci, unit: str) -> str:
    if runner is None:
        return f"{{{best}}} is the only affordable subset"
    lo, hi = ci
    if lo is None or hi is None or lo != lo:
        return f"{{{best}}}, ahead of {{{runner}}} by {lead:+.2f} {unit} (no interval: one replicate)"
    told = lo > 0 or hi < 0
    return (f"{{{best}}}, ahead of {{{runner}}} by {lead:+.2f} {unit} [{lo:+.2f}, {hi:+.2f}] → "
            + ("distinguishable" if told else "not distinguishable"))


def selection_records(result, summary: dict) -> list[dict]:
    """``summary.json``'s ``"selection"``: per data variant, the best affordable subset at the
    largest measured size (observed; 95 % paired interval against the runner-up, unadjusted) and
    at the target (forecast from the curves)."""
    spec, task = result.spec, result.task
    costs = {k: v for k, v in (spec.costs or {}).items() if k in result.data.names}   # checked before training
    sign = 1.0 if task.higher_is_better else -1.0
    unit = "points" if task.metric == "acc" else "MSE"
    metric_rows = task.metric_rows(result.rows["test"])
    shared = all(g.seed is None for g in result.groups)
    index = _index(result)
    ok = result.metrics["diverged"] == 0
    out = []
    for variant in [dict(v) for v in spec.variants]:
        js, values = _top_values(result, variant, index)               # js: (S, K)
        if js.size == 0:
            continue
        ranked = rank_affordable(values, costs, spec.budget, task.higher_is_better)
        rec: dict[str, Any] = {**variant, "budget": spec.budget, "costs": {k: costs.get(k, 1.0) for k in result.data.names},
                               "n_train": int(result.streams.n_train[js[0, 0]]), "best": None, "value": None,
                               "cost": None, "runner_up": None, "lead": None, "lead_ci": [None, None],
                               "distinguishable": None, "text": None, "target": None}
        if not ranked:
            rec["text"] = ("every model diverged: nothing to choose from" if spec.budget is None
                           else f"no trained subset with a result costs at most {spec.budget:g}")
            out.append(rec)
            continue
        best, value, cost = ranked[0]
        a = index[best]
        rec.update(best=subset_name(result.subsets[a]), value=value, cost=cost)
        if len(ranked) > 1:
            runner = ranked[1][0]
            b = index[runner]
            keep = (ok[js, a] & ok[js, b]).all(1)
            d = paired(metric_rows[js[keep], a] - metric_rows[js[keep], b], shared) if js[keep].size > 1 else None
            lead = sign * d["mean"] if d else sign * (value - ranked[1][1])
            ci = sorted(sign * x for x in d["ci"]) if d and np.isfinite(d["ci"]).all() else [None, None]
            rec.update(runner_up=subset_name(result.subsets[b]), lead=float(lead),
                       lead_ci=[None if x is None else float(x) for x in ci],
                       distinguishable=None if ci[0] is None else bool(ci[0] > 0 or ci[1] < 0))
        rec["text"] = _lead_text(rec["best"], rec["runner_up"], rec["lead"] or 0.0, rec["lead_ci"], unit)
        rec["target"] = _selection_at_target(result, variant, index, costs, spec.budget, unit)
        out.append(rec)
    return out


def _selection_at_target(result, variant: dict, index: dict, costs: dict, budget, unit: str) -> dict[str, Any]:
    """The best affordable subset at the target number of rows, from each subset's curve (fitted
    on the tail it follows), with the interval of its lead over the runner-up (:func:`tail_difference`)."""
    data = curve_data(result, variant)
    if not data.usable:
        return {"target_n": None, "why": "needs learning curves: ≥ 4 sample sizes (--grid dense)"}
    target = target_rows(result.spec, data)
    fits: dict[frozenset, float] = {}                 # each subset's fitted error at the target (the ranking)
    for s, a in index.items():
        if a not in data.err:
            continue
        j = tail_start(data.m, [data.curve(a)], [1.0])
        if j is not None:
            fits[s] = _fit_at(data.m[j:], _tail(data.curve(a), j), target, boot=False)[0]
    # errors: lower is better, whatever the task
    ranked = rank_affordable(fits, costs, budget, higher_is_better=False)
    rec: dict[str, Any] = {"target_n": target, "extrapolated": bool(target > data.m.max()),
                           "n_forecast": len(fits), "best": None, "runner_up": None, "lead": None,
                           "lead_ci": [None, None], "distinguishable": None, "text": None}
    if not ranked:
        rec["why"] = "no affordable subset's curve is followed by a power law"
        return rec
    best = ranked[0][0]
    rec["best"] = subset_name(result.subsets[index[best]])
    if len(ranked) > 1:
        runner = ranked[1][0]
        d = tail_difference(data.m, data.curve(index[best]), data.curve(index[runner]), target)
        lead, ci = (d["gain"], d["gain_ci"]) if d["gain"] is not None else (fits[runner] - fits[best], [None, None])
        rec.update(runner_up=subset_name(result.subsets[index[runner]]), lead=float(lead), lead_ci=ci,
                   distinguishable=None if ci[0] is None else bool(ci[0] > 0 or ci[1] < 0))
    rec["text"] = _lead_text(rec["best"], rec["runner_up"], rec["lead"] or 0.0, rec["lead_ci"], unit)
    return rec
