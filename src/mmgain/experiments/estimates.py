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

which cancels the first-order estimation term.  Measured (README "What γ̂ measures"):
on Gaussian latents with a known population value, a 128-d noise block at n = 5810,
6 classes, goes from +0.077 nats (paper procedure) to −0.004; on mfeat a trained
noise modality from +0.61 to +0.03 [−0.05, +0.10], where the half-sum on the training
rows still gave +0.23 (memorisation).  η̂(M) = R̂(M) − reference, with one reference
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
from typing import Any

import numpy as np

from ..data.controls import control_of
from ..data.subsets import proper_pairs, subset_name
from .stats import benjamini_yekutieli, holm, tost_p, two_level

SIGNS = {
    "acc_diff": "test accuracy of M − N, in points: + = M better",
    "mse_diff": "test MSE of M − N: − = M better",
    "gamma": "corrected γ̂_S(M,N) = η̂_M − η̂_N in the probe's risk (cross-entropy nats, or MSE): − = M's latent better",
    "gamma_acc": "probe accuracy of M − N, corrected like γ̂ (cross-fitted, ½ in-fold + ½ out-of-fold), in points: "
                 "+ = M's latent better",
    "gamma_ce_raw": "paper procedure: probe test cross-entropy of M − N: − = M's latent better (biased against larger M)",
    "gamma_mse_raw": "paper procedure: probe test MSE of M − N: − = M's latent better (biased against larger M)",
    "gamma_acc_raw": "paper procedure (its Table 3 sign): probe test accuracy of M − N: + = M's latent better",
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
                for r in sorted(set(result.streams.ratio.tolist())):
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


class PairAnalysis:
    """Every pair (M, N), N ⊂ M, |M| = |N| + 1, at every variant and sample size.

    Per pair: the paired difference of the test metric with a CI over seeds and
    test rows, the corrected γ̂ with a CI over seeds and test rows, the
    paper's raw γ̂s, and — once :meth:`adjust` has run over the whole family —
    Holm p, BY q, the equivalence test, the verdict and the "why".
    """

    def __init__(self, result, margin: float | None = None, alpha: float = 0.05):
        self.result, self.task, self.alpha = result, result.task, alpha
        groups = result.groups
        self.shared_rows = all(g.seed is None for g in groups)
        if margin is None:
            tr = groups[0].dataset.train_test_indices()[0]
            margin = self.task.default_margin(groups[0].dataset.y[tr])
        self.margin = float(margin)
        rows = result.rows
        self.metric_rows = self.task.metric_rows(rows["test"])          # (S, A, n_test)
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

    def _stats(self, js, a: int, b: int) -> dict[str, Any]:
        task, metric, sh = self.task, self.task.metric, self.shared_rows
        d = two_level([(1.0, self.metric_rows[js, a] - self.metric_rows[js, b])], sh)
        q = self.pair_of[(a, b)]
        g = two_level([(1.0, self.latent_rows[js, a] - self.matched_rows[js, q])], sh)
        out = {f"{metric}_diff_mean": d["mean"], f"{metric}_diff_ci": list(d["ci"]), f"{metric}_diff_se": d["se"],
               "p_value": d["p_value"], "p_tost": tost_p(d["mean"], d["se"], d["df"], self.margin),
               "gamma": g["mean"], "gamma_ci": list(g["ci"]), "gamma_p": g["p_value"],
               f"gamma_{task.risk}_raw": float((self.probe_test[js, a] - self.probe_test[js, b]).mean())}
        if self.correct is not None:
            co, te = self.correct["corrected"], self.correct["paper"]
            ga = two_level([(1.0, co[js, a] - self.correct["matched"][js, q])], sh)
            out.update(gamma_acc=ga["mean"], gamma_acc_ci=list(ga["ci"]),
                       gamma_acc_raw=float((te[js, a] - te[js, b]).mean()))
        return out

    def pairs(self) -> tuple[list[dict], list[dict]]:
        """``(pairs, controls)``: the family of real pairs, and for a run with the null control
        the pairs (N + perm(k), N) with γ̂(N+k, N) − γ̂(N+perm(k), N)."""
        res = self.result
        index = {s: a for a, s in enumerate(res.subsets)}
        real = [s for s, c in zip(res.subsets, res.controls) if not c]
        pairs, controls = [], []
        for variant in res.spec.variants:
            gids = res.group_ids(variant)
            for ratio in sorted(set(res.streams.ratio.tolist())):
                streams = res.streams.where(gids, float(ratio))
                if len(streams) == 0:
                    continue
                for m, n in proper_pairs(real):
                    (k,) = set(m) - set(n)
                    a, b = index[m], index[n]
                    c = index.get(control_of(m, n))
                    ok = self.ok[streams, a] & self.ok[streams, b] & (self.ok[streams, c] if c is not None else True)
                    js = streams[ok]       # seeds where no model of the comparison diverged
                    if len(js) == 0:
                        continue
                    head = {**variant, "ratio": float(ratio), "n_train": int(res.streams.n_train[js[0]]),
                            "n_seeds": len(js)}
                    pair = {"modality": k, "M": subset_name(m), "N": subset_name(n), **head, **self._stats(js, a, b)}
                    pairs.append(pair)
                    if c is not None:
                        ctrl = {"modality": k, "M": subset_name(control_of(m, n)), "N": subset_name(n), **head,
                                **self._stats(js, c, b)}
                        qa, qc = self.pair_of[(a, b)], self.pair_of[(c, b)]
                        net = two_level([(1.0, (self.latent_rows[js, a] - self.matched_rows[js, qa])
                                          - (self.latent_rows[js, c] - self.matched_rows[js, qc]))], self.shared_rows)
                        ctrl.update(gamma_vs_null=net["mean"], gamma_vs_null_ci=list(net["ci"]),
                                    gamma_vs_null_p=net["p_value"])
                        controls.append(ctrl)
        return self.adjust(pairs), self.adjust(controls)

    def adjust(self, family: list[dict]) -> list[dict]:
        """Multiplicity over the whole family, then verdicts."""
        if not family:
            return family
        for key, adjusted in (("p_value", "p_holm"), ("p_tost", "p_tost_holm"), ("gamma_p", "gamma_p_holm")):
            for p, v in zip(family, holm([p[key] for p in family])):
                p[adjusted] = float(v)
        for p, q in zip(family, benjamini_yekutieli([p["p_value"] for p in family])):
            p["q_by"] = float(q)
        for p in family:
            p["verdict"], p["latent"] = self.verdict(p), self.latent(p)
            p["why"] = self.why(p)
        return family

    def verdict(self, p: dict) -> str:
        """``no effect`` when equivalence within ±margin is shown (Holm-adjusted TOST); else
        ``helps``/``hurts`` when the Holm-adjusted test rejects; else ``inconclusive``."""
        if p["p_tost_holm"] < self.alpha:
            return "no effect"
        if p["p_holm"] < self.alpha:
            return "helps" if self.task.better(p[f"{self.task.metric}_diff_mean"]) else "hurts"
        return "inconclusive"

    def latent(self, p: dict) -> str:
        if math.isfinite(p["gamma_p_holm"]) and p["gamma_p_holm"] < self.alpha:
            return "better" if p["gamma"] < 0 else "worse"
        return "indistinguishable"

    def why(self, p: dict) -> str:
        k, v, lat = p["modality"], p["verdict"], p["latent"]
        g = f"γ̂ {p['gamma']:+.4f} {_fmt_ci(p['gamma_ci'], 4)}, Holm p {_fmt_p(p.get('gamma_p_holm'))}"
        unit = "points" if self.task.metric == "acc" else "MSE"
        if v == "helps":
            return {"better": f"the latent with {k} is better ({g}): a better representation explains the gain",
                    "indistinguishable": f"the latent with {k} is not measurably better after adjusting for "
                                         f"multiplicity ({g}): latent quality does not account for the gain "
                                         "(optimisation, or a latent gain too small to resolve)",
                    "worse": f"the model gains although the latent with {k} is worse ({g}): training, not the "
                             "representation, explains it"}[lat]
        if v == "hurts":
            return {"better": f"the latent with {k} is better ({g}) but the model is worse: at this sample size the "
                              "complexity cost of the extra inputs (the Rademacher term of Theorem 1) outweighs "
                              "the better latent; more data should close the gap",
                    "indistinguishable": f"the latent with {k} is no worse ({g}): the loss is the complexity cost of "
                                         "extra inputs at finite m (the Rademacher term of Theorem 1), not a worse "
                                         "latent",
                    "worse": f"the latent with {k} is worse ({g}): a worse representation explains the loss"}[lat]
        if v == "no effect":
            return f"equivalent within ±{self.margin:g} {unit} (TOST, Holm p {_fmt_p(p.get('p_tost_holm'))}); " \
                   f"latent {lat} ({g})"
        return f"not significant after adjusting for multiplicity (Holm p {_fmt_p(p.get('p_holm'))}) and not " \
               f"shown to lie within ±{self.margin:g} {unit}; latent {lat} ({g})"


def _fmt_p(p) -> str:
    if p is None or p != p:
        return "—"
    return "<1e-16" if p < 1e-16 else f"{p:.2g}"


VERDICT_KEYS = ("modality", "M", "N", "ratio", "n_train", "verdict", "{m}_diff_mean", "{m}_diff_ci", "p_holm",
                "gamma", "gamma_ci", "latent", "why")


def verdict_records(pairs: list[dict], metric: str, variant_keys) -> list[dict]:
    keys = [k.format(m=metric) for k in VERDICT_KEYS]
    return [{**{v: p[v] for v in variant_keys}, **{k: p[k] for k in keys}} for p in pairs]


def modality_lines(pairs: list[dict], task, variant_keys=(), crossovers=(), limit: int = 3) -> list[str]:
    """One plain-language line per modality (and data variant): its verdicts against each
    partner set at the largest sample size, from which size on it helps (and, with learning
    curves, from about m* rows on), by how much, and why."""
    curves = {(c["M"], c["N"]) + tuple(c.get(v) for v in variant_keys): c for c in crossovers}
    m = task.metric
    unit = " pts" if m == "acc" else ""
    lines = []
    by_mod: dict[tuple, list[dict]] = {}
    for p in pairs:
        by_mod.setdefault((p["modality"],) + tuple(p.get(v) for v in variant_keys), []).append(p)
    for key, ps in by_mod.items():
        top = max(p["ratio"] for p in ps)
        at_top = [p for p in ps if p["ratio"] == top]
        counts = {v: sum(p["verdict"] == v for p in at_top) for v in ("helps", "hurts", "no effect", "inconclusive")}
        label = key[0] + "".join(f" ({k}={v})" for k, v in zip(variant_keys, key[1:]))
        head = (f"{label} — added to each of {len(at_top)} partner set(s) at n={at_top[0]['n_train']}: "
                + ", ".join(f"{v} {c}" for v, c in counts.items() if c))
        sign = 1 if task.higher_is_better else -1
        shown = sorted(at_top, key=lambda p: -sign * p[f"{m}_diff_mean"])
        if len(shown) > limit:
            shown = shown[:limit - 1] + shown[-1:]
        details = []
        for p in shown:
            since = _helps_from(ps, p["N"])
            ci = p[f"{m}_diff_ci"]
            details.append(f"    with {p['N']}: {p['verdict']} {p[f'{m}_diff_mean']:+.2f}{unit} "
                           f"[{ci[0]:+.2f}, {ci[1]:+.2f}]" + (f", helps from n={since} on" if since else "")
                           + _curve_phrase(curves.get((p["M"], p["N"]) + tuple(p.get(v) for v in variant_keys)))
                           + f"; {p['why']}")
        lines.append(head + "\n" + "\n".join(details))
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
