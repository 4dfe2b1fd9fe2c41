"""η̂, γ̂ and the pair statistics: the numbers that answer "does k help, and why?".

**Corrected latent risk.**  η(g) = inf_h r(h∘g) − r(h*∘g*) asks for the risk of the
*population-optimal* head on a frozen encoder.  The paper's procedure (fit the head on
the training rows, report its test risk) is biased against larger subsets twice over:

1. a head fitted on n rows pays an estimation error of about p/(2n) on fresh rows
   (p = number of head parameters, which grows with |M|), and its in-sample risk is
   optimistic by about as much;
2. the encoder was trained on those same training rows, so its latent *memorises*
   them: a pure-noise modality's units predict the training labels (not fresh ones),
   the head leans on them, and its test risk suffers.

We therefore fit the probe only on rows that no encoder has seen — the test rows,
cross-fitted in ``protocol.probe_folds`` folds — and average each row's in-fold
(in-sample) and out-of-fold risk,

    R̂(M) = ½ (in-fold risk + out-of-fold risk),

which cancels the first-order estimation term: a noise block's γ̂, clearly positive by the
paper's procedure (and by the half-sum on the training rows, through memorisation), moves
to about 0 (measured in docs/methods/latent-quality.md; tested against a known population
in tests/).  η̂(M) = R̂(M) − reference, with one reference
per run and data variant: the known Bayes risk, or the smallest seed-averaged R̂
over all subsets and sample sizes ("excess over the best observed subset").

**Width-matched γ̂.**  γ̂(M, N) = R̂(ĝ_M) − R̂([ĝ_N, π(ĝ_M's block of k)]): N's latent joined
by M's block of the added modality with its rows permuted.  An independent block does
not change the best head's risk in the population, so this is γ(M, N); on finite data
both heads have the same size and pay the same estimation cost.  γ̂ is therefore not
η̂_M − η̂_N (η̂ is not width-matched) and does not depend on the reference.  The paper's
uncorrected numbers stay available as ``eta_raw``, ``gamma_<risk>_raw`` and
``gamma_acc_raw`` ("paper procedure").

**Signs.**  Metric differences are M − N: accuracy + = M better, MSE − = M
better.  γ̂ is the paper's γ_S(M, N) = η̂_M − η̂_N: − = M's latent better.
``gamma_acc`` (probe accuracy, corrected the same way) is + = M better.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..data.controls import control_of
from ..data.subsets import proper_pairs, subset_name
from ..registry import Registry
from ..results import PairResult
from .stats import benjamini_yekutieli, interval, paired, rows_needed

SIGNS = {
    "acc_diff": "test accuracy of M − N, in points: + = M better",
    "mse_diff": "test MSE of M − N: − = M better",
    "gamma": "corrected γ̂_S(M,N) = η̂_M − η̂_N in the probe's risk (cross-entropy nats, or MSE): − = M's latent better",
    "gamma_acc": "probe accuracy of M − N, corrected like γ̂ (cross-fitted, ½ in-fold + ½ out-of-fold), in points: "
                 "+ = M's latent better",
    "gamma_ce_raw": "paper procedure: probe test cross-entropy of M − N: − = M's latent better (biased against larger M)",
    "gamma_mse_raw": "paper procedure: probe test MSE of M − N: − = M's latent better (biased against larger M)",
    "gamma_acc_raw": "paper procedure (its Table 3 sign): probe test accuracy of M − N: + = M's latent better",
    "gain": "what adding the modality buys: accuracy M − N in points, or the MSE reduction N − M: + = helps",
    "eta": "corrected latent risk minus the reference (eta_reference): 0 = the best observed subset",
}


# ------------------------------------------------------------------ η̂ per model


def add_latent_estimates(result) -> None:
    """Adds ``latent_risk`` (corrected), ``eta`` and ``eta_raw`` to ``result.metrics`` and
    records the reference in ``result.eta_reference``."""
    task, m = result.task, result.metrics
    risk = f"probe_{task.risk}"
    m["latent_risk"] = 0.5 * (m[f"heldout_fit_{task.risk}"] + m[f"heldout_{task.risk}"])
    ok = m["diverged"] == 0
    spec, real = result.spec, [a for a, c in enumerate(result.controls) if not c]
    result.eta_reference = []
    m["eta"], m["eta_raw"] = np.zeros_like(m[risk]), np.zeros_like(m[risk])
    for variant in spec.variants:
        gids = result.group_ids(variant)
        streams = np.flatnonzero(np.isin(result.streams.group, gids))
        refs = {}
        for name, source in (("eta", "latent_risk"), ("eta_raw", risk)):
            if spec.bayes_risk is not None:
                refs[name], how = float(spec.bayes_risk), "the known Bayes risk"
            else:
                cells = []
                for r in result.ratios:
                    js = result.streams.where(gids, r)
                    cells += [m[source][js, a][ok[js, a]].mean() for a in real if ok[js, a].any()]
                refs[name] = float(min(cells)) if cells else float("nan")
                how = "excess over the best observed subset (seed mean, any sample size)"
            m[name][streams] = m[source][streams] - refs[name]
        result.eta_reference.append({**variant, "reference": refs["eta"], "reference_raw": refs["eta_raw"],
                                     "risk": task.risk, "definition": how})


# --------------------------------------------------------------- pair statistics


def _fmt_ci(ci, digits: int) -> str:
    return f"[{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"


def sig3(x: float) -> float:
    """A margin or bound as a person reads it: 3 significant figures."""
    return float(f"{x:.3g}") if x and math.isfinite(x) else x


VERDICTS = ("helps", "hurts", "no effect", "does not help", "inconclusive")


def decide(lo: float, hi: float, margin: float) -> str:
    """The verdict that the interval [lo, hi] of a gain (+ = the modality helps) supports, in this
    precedence: ``helps`` (lo > 0), ``hurts`` (hi < 0), ``no effect`` (inside ±margin),
    ``does not help`` (hi < +margin: it cannot add a margin's worth, though a loss beyond the
    margin is not excluded), else ``inconclusive``.  One interval decides every word, so the word
    and the printed interval cannot disagree."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if lo > 0:
        return "helps"
    if hi < 0:
        return "hurts"
    if -margin < lo and hi < margin:
        return "no effect"
    if hi < margin:
        return "does not help"
    return "inconclusive"


@dataclass(frozen=True)
class PairStatistic:
    """A registered statistic of every pair (M, N): ``compute(analysis, js, a, b) -> {column: value}``
    with ``js`` the (seeds, folds) streams and a, b the subsets' indices (the per-row values are
    ``analysis.metric_rows`` (streams, subsets, rows); ``analysis.shared_rows`` says whether the
    seeds share their test rows).  Its ``columns`` appear in every pair and verdict of
    summary.json, in ``Study.pairs`` and ``Study.verdicts``."""

    compute: Callable[["PairAnalysis", np.ndarray, int, int], dict[str, Any]]
    columns: tuple[str, ...]
    description: str


# Statistics beyond the built-in ones (difference, γ̂, p-values, intervals): one function and one
# registration each, e.g. PAIR_STATISTICS.register("median", PairStatistic(median_diff, ("median_diff",), "…")).
PAIR_STATISTICS: Registry[PairStatistic] = Registry("pair statistic")


class PairAnalysis:
    """Every pair (M, N), N ⊂ M, |M| = |N| + 1, at every variant and sample size.

    Per pair: the paired difference of the test metric and the corrected γ̂, each with an
    interval over seeds (and folds) and rows (:func:`.stats.paired`); then, per family, the
    level of the interval that decides the verdict.  The *primary* family holds the questions
    asked (default: each modality added to all the others, at the largest sample size; or
    ``primary`` pairs 'M:N'): its intervals are simultaneous (Bonferroni, 1 − α/m).  Every other
    pair is *exploratory*: unadjusted 95 % intervals, labelled so, with Benjamini–Yekutieli
    q-values beside them.
    """

    def __init__(self, result, margin: float | None = None, alpha: float = 0.05,
                 primary: tuple[str, ...] | None = None):
        self.result, self.task, self.alpha = result, result.task, alpha
        groups = result.groups
        self.shared_rows = all(g.seed is None for g in groups)
        if margin is None:
            margin = sig3(result.data.default_margin)
        self.margin = float(margin)
        self.primary = primary
        rows = result.rows
        self.metric_rows = self.task.metric_rows(rows["test"])          # (S, A, n_test)
        self.sign = 1.0 if self.task.higher_is_better else -1.0        # gain = sign · (M − N)
        half = lambda k: 0.5 * (np.asarray(rows["heldout_fit"][k], np.float64)   # noqa: E731
                                + np.asarray(rows["heldout_eval"][k], np.float64))
        matched = lambda k: 0.5 * (np.asarray(rows["matched_fit"][k], np.float64)   # noqa: E731
                                   + np.asarray(rows["matched_eval"][k], np.float64))
        self.pair_of = {pair: q for q, pair in enumerate(result.pairs)}
        self.ok = result.metrics["diverged"] == 0
        self.latent_rows = half("loss")                  # (S, A, n_test): corrected risk per row
        self.matched_rows = matched("loss") if result.pairs else None   # (S, Q, n_test): width-matched controls
        self.probe_test = np.asarray(rows["probe_test"]["loss"], np.float64)
        self.correct = None
        if "correct" in rows["probe_test"]:
            self.correct = {"corrected": 100.0 * half("correct"),
                            "matched": 100.0 * matched("correct") if result.pairs else None,
                            "paper": 100.0 * np.asarray(rows["probe_test"]["correct"], np.float64)}

    def _stats(self, js: np.ndarray, a: int, b: int) -> dict[str, Any]:
        """``js`` (S, K): the streams of each seed (row) and fold (column)."""
        task, metric, sh = self.task, self.task.metric, self.shared_rows
        d = paired(self.metric_rows[js, a] - self.metric_rows[js, b], sh)
        q = self.pair_of[(a, b)]
        g = paired(self.latent_rows[js, a] - self.matched_rows[js, q], sh)
        out = {"_d": d, "_g": g, f"{metric}_diff_mean": d["mean"], f"{metric}_diff_se": d["se"],
               "gain": self.sign * d["mean"], "p_value": d["p_value"], "gamma": g["mean"], "gamma_p": g["p_value"],
               "n_rows": d["n_rows"],
               f"gamma_{task.risk}_raw": float((self.probe_test[js, a] - self.probe_test[js, b]).mean())}
        if self.correct is not None:
            co, te = self.correct["corrected"], self.correct["paper"]
            ga = paired(co[js, a] - self.correct["matched"][js, q], sh)
            out.update(_ga=ga, gamma_acc=ga["mean"], gamma_acc_raw=float((te[js, a] - te[js, b]).mean()))
        for name in PAIR_STATISTICS.names():
            stat = PAIR_STATISTICS.get(name)
            values = stat.compute(self, js, a, b)
            out.update({c: values.get(c) for c in stat.columns})
        return out

    def pairs(self) -> tuple[list[dict], list[dict]]:
        """``(pairs, controls)``: the real pairs (primary and exploratory), and for a run with the
        null control the pairs (N + perm(k), N) with γ̂(N+k, N) − γ̂(N+perm(k), N)."""
        res = self.result
        index = {s: a for a, s in enumerate(res.subsets)}
        real = [s for s, c in zip(res.subsets, res.controls) if not c]
        pairs, controls = [], []
        for variant, gids, ratio, _ in res.cells():
            streams = res.replicates(gids, ratio)                  # (S, K)
            if streams.size == 0:
                continue
            for m, n in proper_pairs(real):
                (k,) = set(m) - set(n)
                a, b = index[m], index[n]
                c = index.get(control_of(m, n))
                ok = self.ok[streams, a] & self.ok[streams, b] & (self.ok[streams, c] if c is not None else True)
                js = streams[ok.all(1)]   # seeds where no model of the comparison diverged, in any fold
                if len(js) == 0:
                    continue
                head = {**variant, "ratio": float(ratio), "n_train": int(res.streams.n_train[js[0, 0]]),
                        "n_seeds": len(js), "n_folds": js.shape[1]}
                pair = {"modality": k, "M": subset_name(m), "N": subset_name(n), **head, **self._stats(js, a, b)}
                pairs.append(pair)
                if c is not None:
                    ctrl = {"modality": k, "M": subset_name(control_of(m, n)), "N": subset_name(n), **head,
                            **self._stats(js, c, b)}
                    qa, qc = self.pair_of[(a, b)], self.pair_of[(c, b)]
                    net = paired((self.latent_rows[js, a] - self.matched_rows[js, qa])
                                 - (self.latent_rows[js, c] - self.matched_rows[js, qc]), self.shared_rows)
                    ctrl.update(gamma_vs_null=net["mean"], gamma_vs_null_ci=list(net["ci"]),
                                gamma_vs_null_p=net["p_value"])
                    controls.append(ctrl)
        chosen = self.primary_pairs(pairs)
        for p in pairs:
            p["family"] = "primary" if (p["M"], p["N"], p["ratio"], *(p.get(k) for k in res.spec.variant_keys)) \
                in chosen else "exploratory"
        primary = [p for p in pairs if p["family"] == "primary"]
        self.adjust(primary, simultaneous=True)
        self.adjust([p for p in pairs if p["family"] == "exploratory"], simultaneous=False)
        for p in controls:
            p["family"] = "control"
        self.adjust(controls, simultaneous=True)
        return pairs, controls

    def primary_pairs(self, pairs: list[dict]) -> set[tuple]:
        """The confirmatory questions, at the largest sample size of each variant: the pairs named
        by ``primary`` ('M:N'), or for each modality k the pair that adds k to the largest partner
        set (with every subset trained: k added to all the others)."""
        keys = self.result.spec.variant_keys
        top = {}
        for p in pairs:
            v = tuple(p.get(k) for k in keys)
            top[v] = max(top.get(v, p["ratio"]), p["ratio"])
        at_top = [p for p in pairs if p["ratio"] == top[tuple(p.get(k) for k in keys)]]
        key = lambda p: (p["M"], p["N"], p["ratio"], *(p.get(k) for k in keys))   # noqa: E731
        if self.primary:
            wanted = {(frozenset(m.split("+")), frozenset(n.split("+"))) for m, n in
                      (x.split(":") for x in self.primary)}
            return {key(p) for p in at_top if (frozenset(p["M"].split("+")), frozenset(p["N"].split("+"))) in wanted}
        best: dict[tuple, dict] = {}
        for p in at_top:
            slot = (p["modality"], *(p.get(k) for k in keys))
            if slot not in best or len(p["N"].split("+")) > len(best[slot]["N"].split("+")):
                best[slot] = p
        return {key(p) for p in best.values()}

    def adjust(self, family: list[dict], simultaneous: bool) -> list[dict]:
        """The deciding interval of each pair of a family (simultaneous: level 1 − α/m, Bonferroni;
        else 1 − α), then the verdict, the latent word, the "why" and, for an undecided primary
        pair, the rows that would decide it."""
        if not family:
            return family
        m_fam = len(family) if simultaneous else 1
        level = 1 - self.alpha / m_fam
        how = (f"simultaneous {100 * level:.4g} % interval (Bonferroni over the {m_fam} {family[0]['family']} "
               f"comparison{'s' if m_fam > 1 else ''})" if simultaneous else "unadjusted 95 % interval (exploratory)")
        metric = self.task.metric
        if not simultaneous:
            for p, q in zip(family, benjamini_yekutieli([p["p_value"] for p in family])):
                p["q_by"] = float(q)
        for p in family:
            d, g = p.pop("_d"), p.pop("_g")
            ga = p.pop("_ga", None)
            lo, hi = interval(d, level)
            p[f"{metric}_diff_ci"] = [lo, hi]
            p["gain_ci"] = [lo, hi] if self.sign > 0 else [-hi, -lo]
            p["ci_level"], p["ci"] = level, how
            p["p_family"] = min(1.0, p["p_value"] * m_fam)
            p["gamma_ci"] = list(interval(g, level))
            p["gamma_p_family"] = min(1.0, p["gamma_p"] * m_fam) if math.isfinite(p["gamma_p"]) else p["gamma_p"]
            if ga is not None:
                p["gamma_acc_ci"] = list(interval(ga, level))
            p["verdict"] = decide(*p["gain_ci"], self.margin)
            p["latent"] = self.latent(p)
            p["bound"] = p["gain_ci"][1]
            if p["family"] == "primary" and p["verdict"] == "inconclusive":
                n = rows_needed(d, self.margin, self.alpha / m_fam)
                p["rows_needed"] = n
            p["why"] = self.why(p)
        return family

    def latent(self, p: dict) -> str:
        lo, hi = p["gamma_ci"]
        if lo > 0:
            return "worse"
        if hi < 0:
            return "better"
        return "not resolved"

    def why(self, p: dict) -> str:
        """What the latent (γ̂) adds to the verdict.  A cause is named only where γ̂'s interval
        excludes 0; otherwise it says "not resolved" and gives the interval."""
        k, v, lat = p["modality"], p["verdict"], p["latent"]
        g = f"γ̂ {p['gamma']:+.4f} {_fmt_ci(p['gamma_ci'], 4)}"
        if v == "helps":
            return {"better": f"the latent with {k} is better ({g}): a better representation goes with the gain",
                    "not resolved": f"whether the latent with {k} is better is not resolved ({g})",
                    "worse": f"the model gains although the latent with {k} is worse ({g}): training, not the "
                             "representation, goes with the gain"}[lat]
        if v == "hurts":
            return {"better": f"the latent with {k} is better ({g}) but the model is worse: at this sample size the "
                              "complexity cost of the extra inputs (the Rademacher term of Theorem 1) outweighs "
                              "the better latent; more data should close the gap",
                    "not resolved": f"costs {self.unit_word()} through extra inputs at this n (complexity), "
                                    f"not harmful information: its latent is not shown to be worse ({g})",
                    "worse": f"the latent with {k} is worse ({g}): a worse representation goes with the loss"}[lat]
        latent = {"better": f"latent better ({g})", "worse": f"latent worse ({g})",
                  "not resolved": f"latent difference not resolved ({g})"}[lat]
        unit = self.unit()
        if v == "no effect":
            return f"within ±{self.margin:g} {unit}; {latent}"
        if v == "does not help":
            return f"adds at most {p['bound']:+.3g} {unit} (upper end of the interval), less than the margin " \
                   f"+{self.margin:g}; {latent}"
        need, have = p.get("rows_needed"), p.get("n_rows")
        if p["family"] != "primary":
            more = ""
        elif need and have and need <= have:     # powered for ±margin already: the gain sits between 0 and it
            more = (f"; the gain lies between 0 and +{self.margin:g} {unit}, where an interval of this width "
                    "cannot tell 'helps' from 'no effect'; a narrower one (more seeds, folds or rows) would")
        elif need:
            more = f"; about {need} scored rows (this run: {have or '?'}) would resolve ±{self.margin:g} {unit} "                    "at 80 % power"
        else:
            more = "; more seeds or folds, not only rows, are needed to resolve it"
        return f"not resolved: the interval contains 0 and reaches beyond +{self.margin:g} {unit}{more}; {latent}"

    def unit(self) -> str:
        return "points" if self.task.metric == "acc" else "MSE"

    def unit_word(self) -> str:
        return "accuracy" if self.task.metric == "acc" else "error"


def verdict_records(pairs: list[dict], metric: str, variant_keys) -> list[dict]:
    """summary.json's ``verdicts``: each pair through the one pair schema (:class:`~mmgain.results.PairResult`),
    with the registered pair statistics' columns."""
    extra = [c for n in PAIR_STATISTICS.names() for c in PAIR_STATISTICS.get(n).columns]
    return [PairResult.from_record(p, metric, variant_keys).record(metric, extra) for p in pairs]


def gain_text(p: dict, unit: str) -> str:
    lo, hi = p["gain_ci"]
    return f"{p['gain']:+.2f} {unit} [{lo:+.2f}, {hi:+.2f}]"


def modality_lines(pairs: list[dict], task, variant_keys=(), crossovers=(), limit: int = 3,
                   order: Sequence[str] = ()) -> list[str]:
    """One plain-language paragraph per modality (and data variant), in the data's modality
    ``order`` (then the pairs' order): first the primary question
    (k added to its largest partner set at the largest sample size) with the interval that decides
    it, then the exploratory verdicts against the other partner sets, from which size on it helps
    (and, with learning curves, from about m* rows on), and why."""
    curves = {(c["M"], c["N"]) + tuple(c.get(v) for v in variant_keys): c for c in crossovers}
    unit = "points" if task.metric == "acc" else "MSE"
    lines = []
    by_mod: dict[tuple, list[dict]] = {}
    for p in pairs:
        by_mod.setdefault((p["modality"],) + tuple(p.get(v) for v in variant_keys), []).append(p)
    rank = {k: i for i, k in enumerate(order)}
    for key, ps in sorted(by_mod.items(), key=lambda kv: rank.get(kv[0][0], len(rank))):
        top = max(p["ratio"] for p in ps)
        at_top = [p for p in ps if p["ratio"] == top]
        label = key[0] + "".join(f" ({k}={v})" for k, v in zip(variant_keys, key[1:]))
        prim = [p for p in ps if p["family"] == "primary"]
        head = []
        for p in prim:
            head.append(f"{label} added to {p['N']} at n={p['n_train']} (primary): {p['verdict']} "
                        f"{gain_text(p, unit)}, {p['ci']}; {p['why']}")
            since = _helps_from(ps, p["N"])
            phrase = _curve_phrase(curves.get((p["M"], p["N"]) + tuple(p.get(v) for v in variant_keys)))
            said = ([f"helps from n={since} on"] if since else []) + ([phrase[2:]] if phrase else [])
            if said:
                head.append("    " + "; ".join(said))
        if not prim:
            head.append(f"{label}: no primary question (see the exploratory verdicts)")
        rest = [p for p in at_top if p["family"] == "exploratory"]
        counts = {v: sum(p["verdict"] == v for p in rest) for v in VERDICTS}
        details = []
        if rest:
            details.append(f"    exploratory, against the other {len(rest)} partner set(s) at n={rest[0]['n_train']} "
                           "(unadjusted 95 % intervals): " + ", ".join(f"{v} {c}" for v, c in counts.items() if c))
            shown = sorted(rest, key=lambda p: -p["gain"])
            if len(shown) > limit:
                shown = shown[:limit - 1] + shown[-1:]
            for p in shown:
                since = _helps_from(ps, p["N"])
                details.append(f"    with {p['N']}: {p['verdict']} {gain_text(p, unit)}"
                               + (f", helps from n={since} on" if since else "")
                               + _curve_phrase(curves.get((p["M"], p["N"]) + tuple(p.get(v) for v in variant_keys))))
        lines.append("\n".join(head + details))
    return lines


def _curve_phrase(c: dict | None) -> str:
    """What the fitted learning curves say about where M starts to beat N."""
    if c is None:
        return ""
    if c["status"] == "crossover" and c["m_star"] is not None:
        lo, hi = c["m_star_ci"]
        ci = f" [{lo:.0f}, {hi:.0f}]" if lo is not None else ""
        return f"; curves: better from about m*≈{c['m_star']:.0f} rows on{ci}"
    return {"M always better": "; curves: better at every size fitted",
            "N always better": "; curves: worse at every size fitted"}.get(c["status"], "")


def _helps_from(ps: list[dict], partner: str) -> int | None:
    """The smallest training size from which adding the modality to ``partner`` is judged
    ``helps`` at every larger size, or None."""
    mine = sorted((p for p in ps if p["N"] == partner), key=lambda p: p["ratio"])
    since = None
    for p in mine:
        if p["verdict"] == "helps":
            since = p["n_train"] if since is None else since
        else:
            since = None
    return since
