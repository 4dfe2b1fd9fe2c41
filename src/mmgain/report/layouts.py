"""Report layouts: how a run is printed and drawn, chosen by the spec's ``layout``."""
from __future__ import annotations

from pathlib import Path

from ..registry import Registry
from ..theory import bounds
from .figures import SERIES, Line, LineFigure
from ..results import PairResult
from .tables import Table, fmt_ci, fmt_g, fmt_num, fmt_p, fmt_pm, wrap_text



def _rows_ci(ci) -> str:
    lo, hi = ci or (None, None)
    return "—" if lo is None or hi is None else f"[{lo:.0f}, {hi:.0f}]"


def decision_blocks(summary: dict, vkeys=()) -> list[Table | str]:
    """Should I collect each modality?  Per modality: the question (N + k against the best N
    without k), today's verdict and gain, the forecast gain at the target rows with its interval,
    the break-even n*, and its cost; then the best subset under the budget.  The terminal and the
    report draw the same blocks."""
    fc = summary.get("forecast") or []
    if not fc:
        return []
    unit = "points" if summary.get("metric") == "acc" else "MSE"
    costs = {}
    for sel in summary.get("selection") or []:
        costs.update(sel.get("costs") or {})
    label = lambda r: ", ".join(f"{k}={r.get(k)}" for k in vkeys)       # noqa: E731
    has_forecast = any(f.get("target_n") is not None for f in fc)
    rows = []
    for f in fc:
        row = ([label(f)] if vkeys else []) + [f["modality"], f.get("N") or "—", f.get("verdict") or "—",
                                               fmt_num(f.get("gain_now")) + " " + fmt_ci(f.get("gain_now_ci") or (None, None))]
        if has_forecast:
            gain = "—" if f.get("gain") is None else f"{f['gain']:+.2f} {fmt_ci(f['gain_ci'])}"
            n_star = f"{f['n_star']:.0f} {_rows_ci(f.get('n_star_ci'))}" if f.get("n_star") is not None \
                else (f.get("n_star_status") or "—")
            row += [gain + (" (extrapolated)" if f.get("extrapolated") and f.get("gain") is not None else ""), n_star]
        rows.append(row + [fmt_g(costs.get(f["modality"]))])
    targets = sorted({f["target_n"] for f in fc if f.get("target_n") is not None})
    why = list(dict.fromkeys(f["why"] for f in fc if f.get("why")))
    table = Table((["data"] if vkeys else []) + ["modality", "N (best subset without it)", "verdict now",
                                                 f"gain now ({unit}) [deciding interval]"]
                  + ([f"forecast gain at n={'/'.join(map(str, targets))} [95% CI]", "n* (break-even) [CI]"]
                     if has_forecast else []) + ["cost"], rows,
                  title="Each modality k added to N, the best subset without it at the largest sample; + = helps; "
                        "today's interval is the one that decides the verdict (simultaneous for a primary pair, "
                        "unadjusted 95 % otherwise)"
                        + ("; the forecast comes from the learning curves (seed bootstrap: the fits' uncertainty "
                           "included)" if has_forecast else "") + ("\n  " + "\n  ".join(why) if why else ""))
    blocks: list[Table | str] = [table]
    for sel in summary.get("selection") or []:
        budget = "no budget" if sel.get("budget") is None else f"budget {sel['budget']:g}"
        given = sel.get("costs") or {}
        priced = "" if all(v == 1 for v in given.values()) else \
            "; costs " + ", ".join(f"{k}={v:g}" for k, v in given.items())
        head = (f"{label(sel)}: " if vkeys else "") + f"Best subset ({budget}{priced})"
        lines = [f"{head}: at n={sel['n_train']} (measured; paired 95 % interval, unadjusted): {sel.get('text') or '—'}"]
        t = sel.get("target") or {}
        if t.get("target_n") is not None:
            lines.append(f"  at n={t['target_n']} (forecast" + (", extrapolated" if t.get("extrapolated") else "")
                         + f"): {t.get('text') or t.get('why') or '—'}")
        elif t.get("why"):
            lines.append(f"  forecast: {t['why']}")
        blocks.append("\n".join(lines))
    return blocks


def theory_rows(records: list[dict]) -> list[dict]:
    """The theory records flattened to one CSV row each (``theorem1_bound``, …)."""
    out = []
    for r in records:
        row = {k: v for k, v in r.items() if not isinstance(v, dict)}
        for t in ("theorem1", "theorem2"):
            row.update({f"{t}_{k}": v for k, v in r[t].items()})
        out.append(row)
    return out


def theory_blocks(summary: dict, limit: int = 24) -> list[Table | str]:
    """The theorems at the largest sample size: a table per theorem, and what the numbers say."""
    records = summary.get("theory") or []
    if not records:
        return []
    top = max(r["m"] for r in records)
    rows = [r for r in records if r["m"] == top]
    vkeys = [k for k in rows[0] if k not in ("M", "N", "ratio", "m", "n_seeds") and not isinstance(rows[0][k], dict)
             and not k.startswith(("rad_", "train_", "kappa", "condition", "M_beat", "m_star"))]
    shown = rows
    if len(rows) > limit:          # many pairs: the leave-one-out pairs (M = every modality)
        widest = max(len(r["M"].split("+")) for r in rows)
        shown = [r for r in rows if len(r["M"].split("+")) == widest][:limit]
    data = lambda r: [", ".join(f"{k}={r[k]}" for k in vkeys)] if vkeys else []    # noqa: E731
    head = (["data"] if vkeys else []) + ["M", "N"]
    f = fmt_g
    add = lambda x, y: None if x is None or y is None else x + y                  # noqa: E731  (null: not computed)
    sf = lambda x: "—" if x is None or x != x else f"{x:+.3f}"                    # noqa: E731
    t1 = Table(head + ["γ", "8LR: alg | units, path", "4C/√m + conf.", "bound: alg | units, path", "observed",
                       "holds", "vacuous"],
               [data(r) + [r["M"], r["N"], f"{r['theorem1']['gamma']:+.3f}",
                           f"{f(r['theorem1']['complexity_alg'])} | {f(r['theorem1']['complexity_lower'])}, "
                           f"{f(r['theorem1']['complexity'])}",
                           f(r["theorem1"]["sample"] + r["theorem1"]["confidence"]),
                           f"{f(r['theorem1']['bound_alg'])} | {f(r['theorem1']['bound_lower'])}, "
                           f"{f(r['theorem1']['bound'])}",
                           f"{r['theorem1']['observed']:+.3f}", "yes" if r["theorem1"]["holds"] else "NO",
                           "yes" if r["theorem1"]["vacuous"] else "no"] for r in shown],
               title=f"Theorem 1 at m = {top}: r(M) − r(N) ≤ γ_S(M,N) + 8L·R(H∘G_M) + 4C/√m + 2C·√(2 ln(2/δ)/m), "
                     "in the bounded loss (C = 1), seed means. R bracketed: units = supremum over the model's "
                     "own units (lower), path = path norm (upper); alg = the label-flip fits' effective complexity "
                     "(what the bound would be if the class were only what training reaches; not proven)")
    t2 = Table(head + ["4LR_M + 4LR_[K]", "6C·conf.", "L̂_M − L̂*", "bound: alg | units, path", "η(ĝ_M) observed",
                       "condition", "M beat N", "m*_pred", "m* measured", "κ_M"],
               [data(r) + [r["M"], r["N"], f(add(r["theorem2"]["complexity_M"], r["theorem2"]["complexity_full"])),
                           f(r["theorem2"]["confidence"]), sf(r["theorem2"]["train"]),
                           f"{f(r['theorem2']['bound_alg'])} | {f(r['theorem2']['bound_lower'])}, "
                           f"{f(r['theorem2']['bound'])}",
                           sf(r["theorem2"]["observed"]), "holds" if r["condition_holds"] else "fails",
                           "yes" if r["M_beat_N"] else "no", f(r["m_star_pred"]), f(r.get("m_star")),
                           f"{r['kappa_M']:.2f}"] for r in shown],
               title=f"Theorem 2 at m = {top}: η(ĝ_M) ≤ 4L·R(H∘G_M) + 4L·R(H∘G) + 6C·√(2 ln(2/δ)/m) + L̂(ĥ_M∘ĝ_M, S) "
                     "− L̂(h*∘g*, S); the paper's condition L̂_N − L̂_M ≥ R̂_M − R̂_N (label-flip R̂) and "
                     "m*_pred = m·((R̂_M − R̂_N)/(L̂_N − L̂_M))²; κ: memorisation (0 chance, 1 fits random labels)")
    n, held1 = len(records), sum(r["theorem1"]["holds"] is True for r in records)
    held2 = sum(r["theorem2"]["holds"] is True for r in records)
    n2 = sum(r["theorem2"]["holds"] is not None for r in records)     # Theorem 2 needs the full set in the run
    vac1 = sum(r["theorem1"]["vacuous"] is True for r in records)
    vac1_lo = sum(r["theorem1"]["bound_lower"] >= 1 for r in records)
    vac1_alg = sum(r["theorem1"]["bound_alg"] >= 1 for r in records)
    held_alg = sum(r["theorem1"]["observed"] <= r["theorem1"]["bound_alg"] for r in records)
    agree = sum(r["condition_holds"] == r["M_beat_N"] for r in records)
    const = rows[0]["theorem1"]["sample"] + rows[0]["theorem1"]["confidence"]
    plain = bounds.theorem1(0.0, 0.0, top)
    plain = float(plain["sample"] + plain["confidence"])
    lines = [f"Theory over all {n} (pair, sample size) records: Theorem 1 held in {held1}, Theorem 2 in {held2}"
             f"{f' (of the {n2} with a Theorem 2 bound: the full set is needed)' if n2 < n else ''}; "
             f"Theorem 1's bound is vacuous (≥ C = 1) in {vac1} with the path-norm complexity and in {vac1_lo} "
             f"even with the lower bracket; with the algorithm-effective complexity it is vacuous in {vac1_alg} "
             f"and holds in {held_alg}. At m = {top} the constant terms 4C/√m + 2C·√(2 ln(2/δ)/m) alone are "
             f"{plain:.3f} ({const:.3f} with the union bound over the grid of norms). The paper's condition agreed with who won in {agree} of {n}.",
             f"κ_M at m = {top}: {min(r['kappa_M'] for r in rows):.2f} to {max(r['kappa_M'] for r in rows):.2f}"
             " (near 1: the class fits random labels, and the bounds say nothing there)."]
    if len(shown) < len(rows):
        lines.append(f"(showing the {len(shown)} pairs with M = every modality of {len(rows)} at m = {top}; "
                     "all pairs and sizes: theory.csv)")
    return [t1, t2, "\n".join(lines)]


class Layout:
    """How a run is shown: :meth:`blocks` gives tables (and text lines) that the terminal and the
    HTML report both draw, so the two never disagree."""

    def blocks(self, result) -> list[Table | str]:
        raise NotImplementedError

    def text(self, result) -> str:
        """The layout's blocks, then the decision table (the report draws it after the cards)."""
        decision = decision_blocks(result.summary, result.spec.variant_keys)
        blocks = self.blocks(result) + (["Should I collect it?"] + decision if decision else [])
        return "\n\n".join(b.text() if isinstance(b, Table) else wrap_text(b) for b in blocks)

    def figures(self, result, out: Path) -> list[Path]:
        return []


class SyntheticLayout(Layout):
    """Paper Table 4 (η by subset × overlap ρ) and Fig. 2b (η against number of modalities)."""

    def blocks(self, result) -> list[Table | str]:
        cells = result.summary["cells"]
        overlaps = list(dict.fromkeys(c["overlap"] for c in cells))
        subsets = list(dict.fromkeys(c["subset"] for c in cells))
        at = {(c["subset"], c["overlap"]): c for c in cells}
        header = ["subset", "quantity"] + [f"ρ={r}" for r in overlaps]
        rows = []
        for s in subsets:
            cs = [at.get((s, r)) for r in overlaps]
            rows.append([s, "η̂ paper procedure"] + [fmt_pm(c["eta_raw_mean"], c["eta_raw_std"]) for c in cs])
            rows.append(["", "paper"] + [fmt_pm(c.get("paper"), c.get("paper_std")) for c in cs])
            rows.append(["", "η_n finite n"] + [fmt_pm(c.get("finite_sample")) for c in cs])
            rows.append(["", "η̂ corrected"] + [fmt_pm(c["eta_mean"], c["eta_std"]) for c in cs])
            if any(c.get("eta_exact_mean") is not None for c in cs):
                rows.append(["", "η exact (same encoder)"] + [  # η ≥ 0: a −1e-12 is rounding, not a sign
                    fmt_pm(None if c.get("eta_exact_mean") is None else max(c["eta_exact_mean"], 0.0),
                           c.get("eta_exact_std")) for c in cs])
            rows.append(["", "η* closed form"] + [fmt_pm(c.get("closed_form")) for c in cs])
            rows.append(["", "model test MSE"] + [fmt_pm(c["test_mse_mean"], c["test_mse_std"]) for c in cs])
        n = cells[0]["n_seeds"]
        table = Table(header, rows, title=f"η (test MSE − Bayes risk 0), mean ± std over {n} seeds. The paper's "
                                           "procedure (the fitted probe's test MSE) estimates η_n and is compared "
                                           "with Huang et al. 2021 Table 4; the corrected η̂ (½ probe train + ½ "
                                           "probe test MSE) estimates the population value η*")
        return [table, self.check(cells)] + theory_blocks(result.summary)

    @staticmethod
    def check(cells) -> str:
        """How far ours lies from the paper and η_n (paper procedure), and from η* (corrected)."""
        # η_n and η* have no closed form at every size (η_n needs more rows than features): such a
        # cell is left out of the comparison that needs it
        big = [c for c in cells if c.get("paper") is not None and c["paper"] >= 1
               and c.get("finite_sample") is not None and c.get("closed_form") is not None]
        zero = [c for c in cells if c["overlap"] == 1.0 or c.get("closed_form") == 0]
        gap = lambda a, b: abs(a / b - 1) * 100  # noqa: E731
        lines = []
        if big:
            worst_p = max(big, key=lambda c: gap(c["eta_raw_mean"], c["paper"]))
            worst_n = max(big, key=lambda c: gap(c["eta_raw_mean"], c["finite_sample"]))
            worst_c = max(big, key=lambda c: gap(c["eta_mean"], c["closed_form"]))
            lines.append(f"paper procedure, cells with paper η ≥ 1: "
                         f"{sum(gap(c['eta_raw_mean'], c['paper']) <= 5 for c in big)}/{len(big)} "
                         f"within 5 % of the paper (worst {gap(worst_p['eta_raw_mean'], worst_p['paper']):.1f} %, "
                         f"{worst_p['subset']} ρ={worst_p['overlap']}), "
                         f"{sum(gap(c['eta_raw_mean'], c['finite_sample']) <= 5 for c in big)}/{len(big)} within 5 % "
                         f"of η_n (worst {gap(worst_n['eta_raw_mean'], worst_n['finite_sample']):.1f} %)")
            lines.append(f"corrected η̂, same cells: {sum(gap(c['eta_mean'], c['closed_form']) <= 5 for c in big)}"
                         f"/{len(big)} within 5 % of η* (worst {gap(worst_c['eta_mean'], worst_c['closed_form']):.1f} %, "
                         f"{worst_c['subset']} ρ={worst_c['overlap']})")
        if zero:
            lines.append(f"cells with η* = 0: {sum(abs(c['eta_raw_mean']) < 0.5 for c in zero)}/{len(zero)} below 0.5 "
                         f"(largest {max(abs(c['eta_raw_mean']) for c in zero):.2g})")
        return "\n".join(lines)

    def figures(self, result, out: Path) -> list[Path]:
        cells = result.summary["cells"]
        lines = []
        for i, r in enumerate(dict.fromkeys(c["overlap"] for c in cells)):
            cs = sorted((c for c in cells if c["overlap"] == r), key=lambda c: c["n_modalities"])
            lines.append(Line(f"ρ={r}", [c["n_modalities"] for c in cs], [c["eta_raw_mean"] for c in cs],
                              colour=SERIES[i % len(SERIES)], err=[c["eta_raw_std"] for c in cs]))
        fig = LineFigure("eta", "η̂ against the number of modalities, one line per overlap ρ",
                         "number of modalities |M|", "η̂, paper procedure (probe test MSE)", lines,
                         title="Latent quality vs. modalities (cf. Fig. 2b)",
                         xticks=sorted({c["n_modalities"] for c in cells}))
        return [fig.png(out / "fig_eta_vs_modalities.png")]


class SweepLayout(Layout):
    """The paper's IEMOCAP layouts: Table 1 (metric per subset at the full sample), Table 2
    (subset × sample-size ratio), Table 3 (pairs (M, N) with the paired difference and γ̂),
    and Fig. 2a (metric against ratio).  Paper values, when the spec has a reference, in brackets."""

    PLOT_LIMIT = 8   # more subsets than this: plot single modalities and the full set only

    @staticmethod
    def _data_name(result) -> str:
        source = getattr(result, "meta", {}).get("data", {}).get("source", result.spec.name)
        return Path(source).name if "/" in source else source

    @staticmethod
    def _metric(result) -> tuple[str, str]:
        return ("acc", "accuracy %") if "test_acc_mean" in result.summary["cells"][0] else ("mse", "MSE")

    def blocks(self, result) -> list[Table | str]:
        summary = result.summary
        cells = [c for c in summary["cells"] if not c.get("control")]
        pairs = summary.get("pairs", [])
        m, label = self._metric(result)
        risk = "ce" if m == "acc" else "mse"
        ratios = list(dict.fromkeys(c["ratio"] for c in cells))
        top = max(ratios)
        subsets = list(dict.fromkeys(c["subset"] for c in cells))
        at = {(c["subset"], c["ratio"]): c for c in cells}
        has_paper = any(c.get("paper") is not None for c in cells)
        ours = lambda c: fmt_pm(c[f"test_{m}_mean"], c[f"test_{m}_std"])  # noqa: E731
        paper = lambda c: f" ({fmt_pm(c['paper'], c.get('paper_std'))})" if c.get("paper") is not None else ""  # noqa: E731
        n = cells[0]["n_seeds"]
        design = summary.get("design") or {}
        over = (f"{n} fold models ({design['folds']} folds × {design['seeds']} seed(s); each row scored once per "
                "seed)") if design.get("folds") else f"{n} seeds"
        regression = "r2_mean" in cells[0]
        probe_cols = [f"train_{m}", f"probe_{m}", "eta", "eta_raw"]
        ref = summary.get("eta_reference", [{}])[0]
        classes = (getattr(result, "meta", {}) or {}).get("data", {}).get("classes") or []
        t1 = Table(["subset", f"test {label}"] + (["paper"] if has_paper else []) + probe_cols,
                    [[s, ours(at[s, top])] + ([fmt_pm(at[s, top].get("paper"), at[s, top].get("paper_std"))]
                                              if has_paper else [])
                     + [fmt_pm(at[s, top][f"{k}_mean"], at[s, top][f"{k}_std"], 2 if k.endswith(m) and m == "acc"
                               else 3) for k in probe_cols] for s in subsets],
                    title=f"Table 1 — test {label} at ratio {top:g} (n_train={at[subsets[0], top]['n_train']}), "
                          f"mean ± std over {over}\n  train_{m}: the model on its own full training sample; "
                          f"probe_{m}: the paper's probe (best head fitted on the training rows)\n"
                          + (f"  classes ({len(classes)}): {', '.join(classes[:12])}{' …' if len(classes) > 12 else ''}\n"
                             if classes else "")
                          + f"  eta: corrected η̂ ({risk}), {ref.get('definition', '')} = "
                          f"{ref.get('reference', float('nan')):.4f}; eta_raw: paper procedure")
        if regression:     # out-of-sample R² against predicting the training mean, and who is worse than that
            t1.header.append("R² (vs. the mean)")
            for row, s in zip(t1.rows, subsets):
                row.append(f"{at[s, top]['r2_mean']:+.3f}" + (" ⚠ worse than the mean"
                                                              if at[s, top]["worse_than_baseline"] else ""))
        base_row = [["(predict the training mean)"] + [f"{at[subsets[0], r]['baseline_mse_mean']:.4g}" for r in ratios]] \
            if regression else []
        t2 = Table(["subset"] + [f"r={r:g} (n={at[subsets[0], r]['n_train']})" for r in ratios],
                    [[s] + [ours(at[s, r]) + paper(at[s, r]) + (" ⚠" if at[s, r].get("worse_than_baseline") else "")
                            for r in ratios] for s in subsets] + base_row,
                    title=f"Table 2 — test {label} by sample-size ratio" + (" (paper in brackets)" if has_paper else ""))
        blocks: list[Table | str] = [t1, t2]
        path = summary.get("forward_selection")
        if path:
            prev: set[str] = set()
            rows = []
            for step in path:
                now = step["subset"].split("+")
                rows.append([step["stage"], step["subset"], "+".join(k for k in now if k not in prev),
                             f"{step['score']:.4g}"])
                prev = set(now)
            blocks.append(Table(["stage", "chosen subset", "added", f"held-out {path[0]['metric']}"], rows,
                                title="Forward selection (--subsets forward): at each stage the modality whose "
                                      f"addition scored best on {path[0]['scored_on']}; the test rows play no part"))
        top_pairs = [p for p in pairs if p["ratio"] == top]
        if top_pairs:
            blocks.append(self._pair_table(top_pairs, summary, m, top))
        controls = [p for p in summary.get("null_control", []) if p["ratio"] == top]
        if controls:
            blocks.append(Table(["N + perm(k)", "N", f"Δ{m}", "verdict", "γ̂ (−: M's latent better)",
                                 "interval (simultaneous over the controls)", "latent",
                                 "γ̂(N+k,N) − γ̂(N+perm k,N)", "95% CI (unadjusted)"],
                                [[p["M"], p["N"], f"{p[f'{m}_diff_mean']:+.2f}", p["verdict"], f"{p['gamma']:+.4f}",
                                  fmt_ci(p["gamma_ci"], 4), p["latent"], f"{p['gamma_vs_null']:+.4f}",
                                  fmt_ci(p["gamma_vs_null_ci"], 4)] for p in controls],
                                title=f"Null control at ratio {top:g}: k replaced by a row-permuted copy (no "
                                      "information, same width). Its γ̂ should be indistinguishable from 0; the "
                                      "last columns are k's latent gain net of the control"))
        if summary.get("modalities"):
            tests = summary["tests"]
            unit = "points" if m == "acc" else "MSE"
            blocks.append("\n".join([f"Verdicts (α={tests['alpha']}; the gain is + when the modality helps; "
                                      f"margin ±{tests['margin']:g} {unit}). Primary: {tests.get('primary', '—')}. "
                                      "Exploratory: unadjusted 95 % intervals."] + summary["modalities"]
                                     + ([f"Model class: {summary['model_class']['text']}"]
                                        if summary.get("model_class") else [])))
        return blocks + theory_blocks(summary)

    @staticmethod
    def _pair_table(pairs, summary, m: str, top: float) -> Table:
        risk = "ce" if m == "acc" else "mse"
        has_pp = any(p.get("paper_acc_diff") is not None for p in pairs)
        raw = ["gamma_acc_raw"] if m == "acc" else [f"gamma_{risk}_raw"]
        rows = []
        for rec in sorted(pairs, key=lambda p: p.get("family") != "primary"):
            p = PairResult.from_record(rec, m)
            row = [p.M, p.N, p.family or "", fmt_num(p.gain), fmt_ci(p.gain_ci or (None, None), 2),
                   fmt_p(p.p_family) if p.family == "primary" else f"q {fmt_p(p.q_by)}",
                   p.verdict, fmt_num(p.gamma, 4), fmt_ci(p.gamma_ci or (None, None), 4), p.latent]
            row += [fmt_num(p.extra.get(k), 3) for k in raw]
            if has_pp:
                row += [fmt_pm(p.extra.get("paper_acc_diff")), fmt_pm(p.extra.get("paper_gamma"))]
            rows.append(row)
        header = (["M", "N", "family", f"gain ({'acc. points' if m == 'acc' else 'MSE reduction'}, +: helps)",
                   "deciding interval", "p (Bonferroni) / q (BY)", "verdict",
                   f"γ̂ {risk} (−: M's latent better)", "interval", "latent"]
                  + [f"{raw[0]} (paper procedure, {'+' if m == 'acc' else '−'}: M better)"]
                  + (["paper Δacc", "paper γ"] if has_pp else []))
        return Table(header, rows, title=f"Table 3 — pairs N ⊂ M at ratio {top:g}: {summary['tests']['ci']}; "
                                           "primary pairs: simultaneous intervals; exploratory: unadjusted 95 %; "
                                           "γ̂ = corrected η̂_M − η̂_N")


    def figures(self, result, out: Path) -> list[Path]:
        cells = [c for c in result.summary["cells"] if not c.get("control")]
        m, label = self._metric(result)
        subsets = list(dict.fromkeys(c["subset"] for c in cells))
        if len(subsets) > self.PLOT_LIMIT:
            widest = max(c["n_modalities"] for c in cells)
            subsets = [s for s in subsets if "+" not in s] + [c["subset"] for c in cells if c["n_modalities"] == widest][:1]
        lines = []
        for i, s in enumerate(subsets):
            cs = sorted((c for c in cells if c["subset"] == s), key=lambda c: c["n_train"])
            lines.append(Line(s, [c["n_train"] for c in cs], [c[f"test_{m}_mean"] for c in cs],
                              colour=SERIES[i % len(SERIES)], err=[c[f"test_{m}_std"] for c in cs]))
        fig = LineFigure("rows", f"test {label} against training rows, one line per subset",
                         "training rows (log scale)", f"test {label} (error bars: ± 1 sd over seeds)", lines,
                         title=f"{self._data_name(result)}: test {label} vs. training rows (cf. Fig. 2a)", logx=True)
        return [fig.png(out / f"fig_{m}_vs_rows.png")]


LAYOUTS: Registry[Layout] = Registry("layout")
class OracleLayout(Layout):
    """The crossover oracle: per data variant, test MSE against rows for each subset beside the
    least-squares closed form, and m* (curve fit, seed-bootstrap CI) against the closed-form m*."""

    def blocks(self, result) -> list[Table | str]:
        summary = result.summary
        vkeys = result.spec.variant_keys
        cells = [c for c in summary["cells"] if not c.get("control")]
        label = lambda r: ", ".join(f"{k}={r[k]}" for k in vkeys)                     # noqa: E731
        blocks: list[Table | str] = []
        for variant in dict.fromkeys(label(c) for c in cells):
            mine = [c for c in cells if label(c) == variant]
            subsets = list(dict.fromkeys(c["subset"] for c in mine))
            sizes = sorted({c["n_train"] for c in mine})
            at = {(c["subset"], c["n_train"]): c for c in mine}
            rows = [[str(n)] + [f"{at[s, n]['test_mse_mean']:.2f} ({at[s, n]['ols_expected']:.2f})"
                                if at[s, n].get("ols_expected") is not None else fmt_pm(at[s, n]["test_mse_mean"])
                                for s in subsets] for n in sizes]
            blocks.append(Table(["rows"] + subsets, rows, title=f"{variant}: test MSE, mean over "
                                f"{mine[0]['n_seeds']} seeds (closed-form expected least-squares MSE in brackets)"))
        cross = summary.get("crossovers", [])
        blocks.append(Table((["data"] if vkeys else []) + ["M", "N", "status", "m* (fit)", "95% CI", "m* closed form",
                                                           "in CI", "m₊"],
                            [([label(c)] if vkeys else []) + [
                                c["M"], c["N"], c["status"], fmt_pm(c["m_star"], digits=0),
                                "—" if c["m_star_ci"][0] is None else f"[{c['m_star_ci'][0]:.0f}, {c['m_star_ci'][1]:.0f}]",
                                fmt_pm(c.get("m_star_closed_form"), digits=0),
                                {True: "yes", False: "NO", None: "—"}[c.get("closed_form_in_ci")],
                                fmt_pm(c["m_plus"], digits=0)] for c in cross],
                            title="m*: from how many rows on M beats N — the learning-curve estimate against the "
                                  "closed form s²_N(1 + p_N/(m − p_N − 1)) = s²_M(1 + p_M/(m − p_M − 1))"))
        return blocks + theory_blocks(summary)


class LinearCaseLayout(Layout):
    """The paper's linear case: the fraction of seeds with γ([K], [K−1]) ≤ 0 against m, γ exact."""

    def blocks(self, result) -> list[Table | str]:
        recs = result.summary.get("exact_gamma", [])
        table = Table(["M", "N", "rows", "seeds", "γ ≤ 0", "fraction", "95% CI (Clopper–Pearson)", "mean γ",
                       "η(ĝ_M)", "η(ĝ_N)"],
                      [[r["M"], r["N"], str(r["n_train"]), str(r["n_seeds"]), str(r["n_gamma_le_0"]),
                        f"{100 * r['fraction']:.1f} %",
                        f"[{100 * r['fraction_ci'][0]:.1f} %, {100 * r['fraction_ci'][1]:.1f} %]",
                        f"{r['gamma_mean']:+.4f}", f"{r['eta_M_mean']:.4f}", f"{r['eta_N_mean']:.4f}"] for r in recs],
                      title="The linear case: γ(M, N) = η(ĝ_M) − η(ĝ_N) per seed, η exact from the population "
                            "covariance (no probe); the paper proves γ([K], [K−1]) ≤ 0 at large m")
        return [table] + theory_blocks(result.summary)


LAYOUTS.register("synthetic", SyntheticLayout(), "tables of the overlap study: η per subset and ρ against the paper's Table 4")
LAYOUTS.register("oracle", OracleLayout(), "the crossover oracle: measured m* against its closed form")
LAYOUTS.register("linear-case", LinearCaseLayout(), "the linear case: how often γ([K], [K−1]) ≤ 0, η exact")
LAYOUTS.register("sweep", SweepLayout(), "the paper's Tables 1–3 and a verdict per modality (any data)")
