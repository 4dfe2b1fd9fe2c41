"""``report.html``: one self-contained page that answers the question, built from a run folder's
files alone (``summary.json``, ``run.json``), so old runs and runs from other machines can be
reported.  Drawn with Jinja2; figures are inline SVG; no network, no external asset."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

from ..analysis.stats import interval
from ..errors import OutputError
from .layouts import LAYOUTS, decision_blocks
from ..files import atomic_write, is_output_name, read_json
from .schema import validate_folder_files
from ..results import PairResult
from .sections import produce_sections
from .figures import (SERIES, VERDICT_COLOURS, BarFigure, HeatmapFigure, LatticeFigure, Line, LineFigure, Rule,
                      esc as _esc)
from .tables import Table, fmt_ci, fmt_g, fmt_num

FULL_LATTICE_K = 6            # up to this many modalities the whole lattice is drawn at once
LATTICE_ROW = 10              # at most this many subsets side by side; a wider level takes several rows


def _top_ratio(summary: dict) -> float:
    return max(c["ratio"] for c in summary["cells"]) if "ratio" in summary["cells"][0] else None


def _metric(summary: dict) -> tuple[str, str, bool]:
    m = summary.get("metric", "acc" if "test_acc_mean" in summary["cells"][0] else "mse")
    return m, ("accuracy %" if m == "acc" else "MSE"), m == "acc"


def _in(row: dict, variant: dict | None) -> bool:
    return all(row.get(k) == v for k, v in (variant or {}).items())


def _band(c: dict, m: str) -> tuple[float, float] | None:
    """mean ± t₀.₉₇₅·sd/√n over a cell's n models (seeds, and folds when cross-fitted), or None
    with fewer than 2: a descriptive band of the model-to-model spread.  It is not the interval
    of a verdict (those account for shared rows and overlapping folds; see the cards)."""
    n, sd, mean = c.get("n_seeds") or 0, c.get(f"test_{m}_std"), c.get(f"test_{m}_mean")
    if n < 2 or sd is None or mean is None:
        return None
    return interval({"mean": mean, "se": sd / math.sqrt(n), "df": n - 1}, 0.95)


def hasse_svg(summary: dict, names: list[str], levels: list[int] | None = None, variant: dict | None = None) -> str:
    """The subset lattice at the largest ratio (of one data variant): nodes shaded by the test
    metric, edges "add k" coloured by verdict."""
    m, label, higher = _metric(summary)
    top = _top_ratio(summary)
    cells = {c["subset"]: c for c in summary["cells"]
             if not c.get("control") and c.get("ratio", top) == top and _in(c, variant)}
    verdict = {(p["M"], p["N"]): p["verdict"] for p in summary.get("pairs", [])
               if p["ratio"] == top and _in(p, variant)}
    by_level: dict[int, list[str]] = {}
    for s, c in cells.items():
        by_level.setdefault(c["n_modalities"], []).append(s)
    shown = sorted(by_level) if levels is None else [lv for lv in sorted(by_level) if lv in levels]
    if not shown:
        return ""
    values = [c[f"test_{m}_mean"] for c in cells.values() if c.get(f"test_{m}_mean") is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    rows = [by_level[lv][i:i + LATTICE_ROW] for lv in reversed(shown)     # the full set on top
            for i in range(0, len(by_level[lv]), LATTICE_ROW)]
    drawn = {s for r in rows for s in r}
    shades, titles = {}, {}
    for s in drawn:
        val = cells[s].get(f"test_{m}_mean")
        t = 0.5 if val is None or hi == lo else (val - lo) / (hi - lo)
        shades[s] = t if higher else 1 - t
        titles[s] = f"{s}: test {label} {'—' if val is None else f'{val:.2f}'}"
    edges = [(M, N, VERDICT_COLOURS.get(v, "#999"), 3 if v in ("helps", "hurts") else 1.5,
              f"add {', '.join(sorted(set(M.split('+')) - set(N.split('+'))))} to {N}: {v}")
             for (M, N), v in verdict.items() if M in drawn and N in drawn]
    alt = (f"Subset lattice: {len(drawn)} modality subsets as boxes shaded by test {label} (darker is better), "
           f"{len(edges)} edges 'add one modality' coloured by verdict")
    return LatticeFigure(alt, rows, shades, titles, edges).svg()


def curves_svg(summary: dict, highlight: list[str], variant: dict | None = None) -> str:
    """Learning curves: test metric against training rows (log scale), one line per subset;
    single modalities and the full set in colour with their bands (:func:`_band`), the others
    thin grey (hover for names); fitted curves dashed and m* dotted where the run has them."""
    m, label, _ = _metric(summary)
    cells = [c for c in summary["cells"] if not c.get("control") and c.get(f"test_{m}_mean") is not None
             and _in(c, variant)]
    if not cells or len({c["n_train"] for c in cells}) < 2:
        return ""
    subsets = list(dict.fromkeys(c["subset"] for c in cells))
    colours = {s: SERIES[i % len(SERIES)] for i, s in enumerate(s for s in subsets if s in highlight)}
    lines = []
    for s in sorted(subsets, key=lambda s: s in colours):           # highlighted lines on top
        mine = sorted((c for c in cells if c["subset"] == s), key=lambda c: c["n_train"])
        xs, ys = [c["n_train"] for c in mine], [c[f"test_{m}_mean"] for c in mine]
        bands = [_band(c, m) for c in mine]
        on = s in colours
        lines.append(Line(s, xs, ys, colour=colours.get(s, "#bbb"), width=2.2 if on else 0.8, legend=on,
                          filled=[True] * len(xs) if on else None,
                          point_titles=[f"{s}: n={n}, {v:.2f}" for n, v in zip(xs, ys)],
                          band=([b[0] for b in bands], [b[1] for b in bands]) if on and all(bands) else None))
    fits = {c["subset"]: c for c in summary.get("curves", []) if _in(c, variant)}
    top_n, low_n = max(c["n_train"] for c in cells), max(1, min(c["n_train"] for c in cells))
    for s, col in colours.items():                                   # the fitted a + b·m^(−c), dashed
        f = fits.get(s)
        if f is None:
            continue
        start = max(low_n, min(f["points"]["n_train"]))
        grid = [start * (top_n / start) ** (i / 60) for i in range(61)]
        vals = [f["a"] + f["b"] * n ** -f["c"] for n in grid]
        lines.append(Line(f"{s}: fit", grid, [100.0 - e if m == "acc" else e for e in vals], colour=col, width=1.2,
                          dash="4 3", css="fit", legend=False, scale=False,
                          title=f"{s}: fit a + b·m^(−c), a={f['a']:.3g}, b={f['b']:.3g}, c={f['c']:.2f}"))
    rules = [Rule(c["m_star"], "x", colours[c["M"]], "2 2", 1.0, "mstar",
                  f"m*({c['M']}, {c['N']}) ≈ {c['m_star']:.0f} rows")
             for c in summary.get("crossovers", [])                 # m* of pairs drawn in colour
             if _in(c, variant) and c["M"] in colours and c["N"] in colours and c["status"] == "crossover"
             and c["m_star"] is not None]
    alt = (f"Learning curves: test {label} against training rows (log scale) for {len(subsets)} subsets; "
           f"{', '.join(colours)} in colour with bands of their models' spread")
    return LineFigure("curves", alt, "training rows (log scale)", f"test {label}", lines, logx=True,
                      ybounds=(0.0, 100.0) if m == "acc" else None, rules=rules).svg()


def variants_svg(summary: dict, vkeys: list[str]) -> tuple[str, str]:
    """Every data variant in one figure (the synthetic study's overlaps): per variant, a line
    through the subsets in their order, of η where the run measured it, else the test metric."""
    m, label, _ = _metric(summary)
    top = _top_ratio(summary)
    cells = [c for c in summary["cells"] if not c.get("control") and c.get("ratio", top) == top]
    key = "eta_mean" if any(c.get("eta_mean") is not None for c in cells) else f"test_{m}_mean"
    what = "η (latent excess risk; lower is better)" if key == "eta_mean" else f"test {label}"
    subsets = list(dict.fromkeys(c["subset"] for c in cells))
    variants = list(dict.fromkeys(tuple(c.get(k) for k in vkeys) for c in cells))
    if len(subsets) < 2 or not any(c.get(key) is not None for c in cells):
        return "", ""
    lines = []
    for j, v in enumerate(variants):
        tag = ", ".join(f"{k}={x}" for k, x in zip(vkeys, v))
        pts = [(i, c[key]) for i, s in enumerate(subsets) for c in cells
               if c["subset"] == s and tuple(c.get(k) for k in vkeys) == v and c.get(key) is not None]
        lines.append(Line(tag, [i for i, _ in pts], [y for _, y in pts], colour=SERIES[j % len(SERIES)], width=2,
                          filled=[True] * len(pts),
                          point_titles=[f"{tag}, {subsets[i]}: {y:.4g}" for i, y in pts]))
    name = ", ".join(vkeys)
    alt = f"{what} of {len(subsets)} subsets, one line per {name} ({len(variants)} values)"
    fig = LineFigure("variants", alt, "subset", what, lines, categories=subsets, margins=(60, 130, 20, 70))
    caption = (f"{what} at the largest sample size, one line per {name}: how the value of more modalities "
               f"depends on the data variant (mean over seeds; every value is in the tables below).")
    return fig.svg(), caption


def theory_svg(records: list[dict], theorem: str = "theorem1") -> str:
    """Bound against observed gap as m grows (log–log): per pair, the bound's bracket (upper
    dashed, lower dotted), the algorithm-effective version (solid) and |observed| (filled: M
    worse, hollow: M better), with the vacuous level C = 1."""
    if len({r["m"] for r in records}) < 2:
        return ""
    vals = [v for r in records for v in (r[theorem]["bound"], r[theorem]["bound_lower"], r[theorem]["bound_alg"],
                                         abs(r[theorem]["observed"]))
            if v and v == v and v > 0]
    if not vals:
        return ""
    ylim = (10 ** (math.log10(max(min(vals), 1e-4)) - 0.1), 10 ** (math.log10(max(max(vals), 1.0)) + 0.1))
    lines = []
    for i, pair in enumerate(dict.fromkeys((r["M"], r["N"]) for r in records)):
        col = SERIES[i % len(SERIES)]
        pts = sorted((r["m"], r[theorem]) for r in records if (r["M"], r["N"]) == pair)
        name = f"{pair[0]} vs {pair[1]}"
        for key, dash, what in (("bound", "5 3", "path-norm (upper)"), ("bound_lower", "1 3", "units (lower)"),
                                ("bound_alg", "", "algorithm-effective")):
            kept = [(n, t[key]) for n, t in pts if t[key] == t[key]]
            lines.append(Line(name, [n for n, _ in kept], [v for _, v in kept], colour=col, width=1.4, dash=dash,
                              css="bound", legend=key == "bound", title=f"{name}: {what} bound"))
        seen = [(n, t) for n, t in pts if t["observed"] == t["observed"] and t["observed"] != 0]
        lines.append(Line(f"{name}: observed", [n for n, _ in seen], [abs(t["observed"]) for _, t in seen],
                          colour=col, css="observed", line=False, legend=False, filled=[t["observed"] > 0 for _, t in seen],
                          point_titles=[f"{name}, m={n}: observed {t['observed']:+.4f}, bound {t['bound']:.3g}"
                                        for n, t in seen]))
    rule = Rule(1.0, "y", "#d73027", "", 1.2, "vacuous", "C = 1: a bound above this line says nothing",
                "vacuous above")
    return LineFigure("theory", "bound against observed gap", "training rows m (log scale)",
                      "bounded loss (log scale)", lines, logx=True, logy=True, ylim=ylim, rules=[rule],
                      margins=(60, 170, 20, 45)).svg()


def verdict_heatmap_svg(summary: dict, names: list[str], variant: dict | None = None) -> str:
    """The verdicts at a glance: a row per modality, a column per sample size; each cell is
    coloured by the verdict of adding the modality to all the others (the primary question at
    the largest size) and says in how many of its partner sets it helps there."""
    m = _metric(summary)[0]
    recs = [v for v in summary.get("verdicts", []) if _in(v, variant)]
    if not recs:
        return ""
    ratios = sorted({v["ratio"] for v in recs})
    n_at = {v["ratio"]: v["n_train"] for v in recs}
    rows = [k for k in names if any(v["modality"] == k for v in recs)]
    unit = "points" if m == "acc" else "MSE"
    cells = {}
    for i, k in enumerate(rows):
        for j, r in enumerate(ratios):
            here = [v for v in recs if v["modality"] == k and v["ratio"] == r]
            if not here:
                continue
            widest = max(here, key=lambda v: len(v["N"].split("+")))
            helps = sum(v["verdict"] == "helps" for v in here)
            gain = fmt_num(PairResult.from_record(widest, m).gain)
            cells[i, j] = (VERDICT_COLOURS.get(widest["verdict"], "#ccc"), widest["verdict"],
                           f"{gain} · helps {helps}/{len(here)}",
                           f"{k} added to {widest['N']} at n={n_at[r]}: {widest['verdict']} {gain} {unit}; it helps "
                           f"in {helps} of its {len(here)} partner set(s) at this size")
    alt = (f"Verdict heat map: {len(rows)} modalities × {len(ratios)} sample sizes, each cell coloured by the "
           "verdict of adding the modality to all the others")
    return HeatmapFigure(alt, "training rows n", [str(n_at[r]) for r in ratios], rows, cells, VERDICT_COLOURS).svg()


def _cards(summary: dict, names: list[str]) -> list[dict]:
    """One card per modality: the answer first."""
    m, label, _ = _metric(summary)
    top = _top_ratio(summary)
    verdicts = summary.get("verdicts", [])
    lines = {line.split(" — ", 1)[0]: line for line in summary.get("modalities", [])}
    shap = [s for s in summary.get("shapley", []) if s["ratio"] == top]
    gaps = [g for g in summary.get("ensemble_gap", []) if g["ratio"] == top and g["ensemble_better"]]
    missing = [x for x in summary.get("missing_modality", []) if x["ratio"] == top]
    cards = []
    for k in names:
        mine = [v for v in verdicts if v["modality"] == k]
        at_top = [v for v in mine if v["ratio"] == top]
        counts: dict[str, int] = {}
        for v in at_top:
            counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
        ratios = sorted({v["ratio"] for v in mine})
        grid = {}
        for v in mine:
            grid.setdefault(v["N"], {})[v["ratio"]] = v
        prim = [v for v in mine if v.get("family") == "primary"]
        widest = prim[0] if prim else max(at_top, key=lambda v: len(v["N"].split("+")), default=None)
        card = {"name": k, "counts": counts, "ratios": ratios, "grid": grid,
                "n_train": {v["ratio"]: v["n_train"] for v in mine}, "line": lines.get(k, ""),
                "headline": None, "shapley": None, "warnings": [], "missing": None, "crossover": None}
        cross = {(c["M"], c["N"]): c for c in summary.get("crossovers", [])}
        if widest is not None:
            pair = PairResult.from_record(widest, m)
            cx = cross.get((widest["M"], widest["N"]))
            card["crossover"] = None if cx is None else (
                f"Learning curves: {cx['status']}" + (f", from about m* ≈ {cx['m_star']:.0f} rows"
                                                       + (f" [{cx['m_star_ci'][0]:.0f}, {cx['m_star_ci'][1]:.0f}]"
                                                          if cx["m_star_ci"][0] is not None else "")
                                                       if cx["m_star"] is not None and cx["status"] == "crossover"
                                                       else "") + ".")
            unit = "points" if m == "acc" else "MSE"
            gain, ci = pair.gain, pair.gain_ci or [None, None]
            card["headline"] = {"N": pair.N, "verdict": pair.verdict, "family": pair.family or "",
                                "diff": fmt_num(gain), "ci": fmt_ci(ci), "unit": unit,
                                "interval": pair.ci or "95 % interval",
                                "bound": (f"It adds at most {ci[1]:+.2f} {unit} (upper end of that interval)."
                                          if pair.verdict in ("does not help", "no effect", "hurts")
                                          and ci[1] is not None else ""),
                                "note": (f"It costs {label.split()[0]} through extra inputs at this n (complexity), "
                                         "not harmful information: its latent is not shown to be worse."
                                         if pair.verdict == "hurts" and pair.latent == "not resolved"
                                         else ""),
                                "latent": pair.latent, "gamma": fmt_num(pair.gamma, 4),
                                "gamma_ci": fmt_ci(pair.gamma_ci or [None, None], 4), "why": pair.why,
                                "n_train": pair.n_train}
            full = [c for c in summary["cells"] if not c.get("control") and c.get("ratio") == top
                    and c["subset"] == widest["M"]]
            singles = [c for c in summary["cells"] if not c.get("control") and c.get("ratio") == top
                       and "+" not in c["subset"] and c.get(f"test_{m}_mean") is not None]
            if full and singles and m == "acc" and full[0].get("train_acc_mean") is not None:
                best = max(singles, key=lambda c: c["test_acc_mean"])
                if full[0]["test_acc_mean"] < best["test_acc_mean"] and full[0]["train_acc_mean"] > 99:
                    card["warnings"].append(
                        f"{widest['M']} scores below the best single modality ({best['subset']}, "
                        f"{best['test_acc_mean']:.1f} vs {full[0]['test_acc_mean']:.1f} %) while fitting its training "
                        f"rows at {full[0]['train_acc_mean']:.1f} %: overfitting. The training protocol, not the "
                        "data, may be what limits the joint model.")
        for s in shap:
            i = s["modalities"].index(k)
            card["shapley"] = {"phi": fmt_num(s["phi"][i]), "ci": fmt_ci([s["phi_ci"][0][i], s["phi_ci"][1][i]]),
                               "masked": fmt_num(s["masked_phi"][i]) if s.get("masked_phi") else "—"}
        mine_gaps = [g for g in gaps if k in g["M"].split("+")]
        if mine_gaps:
            g = max(mine_gaps, key=lambda g: g["gap"])
            card["warnings"].append(f"On {len(mine_gaps)} subset(s) with {k}, the average of the single-modality "
                                    f"models beats the joint model (largest: {g['M']}, {g['gap']:+.2f} {label} "
                                    f"{fmt_ci(g['gap_ci'])}). Where adding {k} does not help there, suspect joint "
                                    "training (modality competition), not the data.")
        lazy = [d for d in summary.get("deficit", []) if d["ratio"] == top and d["modality"] == k
                and d["deficit_ci"][1] is not None and d["deficit_ci"][1] < 0]
        if lazy:
            worst = min(lazy, key=lambda d: d["deficit"])
            card["warnings"].append(f"{k}'s encoder learns less inside joint models ({len(lazy)} subset(s); worst "
                                    f"{worst['M']}: {worst['deficit']:+.2f} {label} {fmt_ci(worst['deficit_ci'])} "
                                    f"against the {k}-only model): modality laziness.")
        full = [x for x in missing if x["missing"] == k and len(x["M"].split("+")) == len(names)]
        if full:
            x = full[0]
            card["missing"] = (f"If {k} is missing at test time for the full model: {x['value'][0]:.2f} with it, "
                               f"{x['value'][-1]:.2f} without it; "
                               + (f"the model trained without {k} ({x['N']}, {x['N_value']:.2f}) is better even "
                                  f"with {k} present." if x["p_star"] == 0 else
                                  f"the model without {k} ({x['N']}, {x['N_value']:.2f}) is better from p ≈ "
                                  f"{x['p_star']:.2f} missing on." if x["p_star"] is not None
                                  else f"the full model stays ahead of {x['N']} even when {k} is always missing."))
        cards.append(card)
    return cards


def _theory_figures(summary: dict, variants: list[dict], vlabel) -> list[tuple[str, object]]:
    """Bound-vs-observed figures for both theorems, per data variant; with many pairs, those
    with M = every modality (the others are in the table and theory.csv)."""
    import jinja2
    records = summary.get("theory") or []
    out = []
    for variant in variants:
        mine = [r for r in records if _in(r, variant)]
        if not mine:
            continue
        widest = max(len(r["M"].split("+")) for r in mine)
        if len({(r["M"], r["N"]) for r in mine}) > len(SERIES):
            mine = [r for r in mine if len(r["M"].split("+")) == widest]
        for theorem, what in (("theorem1", "Theorem 1: r(M) − r(N)"), ("theorem2", "Theorem 2: η(ĝ_M)")):
            svg = theory_svg(mine, theorem)
            if svg:
                title = what + (f" ({vlabel(variant)})" if vlabel else "")
                out.append((title, jinja2.utils.markupsafe.Markup(svg)))
    return out


def _folder_result(folder: Path) -> SimpleNamespace:
    from ..spec import ExperimentSpec
    for name in ("summary.json", "run.json"):
        if not os.path.lexists(folder / name):
            raise OutputError(f"{folder}: not a finished run folder ({name} is missing)")
    summary = read_json(folder / "summary.json", "summary.json")
    run = read_json(folder / "run.json", "run.json")
    validate_folder_files(folder, summary, run)
    return SimpleNamespace(summary=summary, meta=run, spec=ExperimentSpec.from_dict(run["spec"], source=str(folder / "run.json")))


def build_report(folder: str | Path) -> Path:
    """Write ``report.html`` into a run folder from its files alone; returns its path.

    The files are checked against :mod:`.schema` first; content that passes the schema
    but still cannot be drawn (a hand-edited value the schema does not describe) is an
    OutputError naming the two files, not a traceback."""
    import jinja2

    folder = Path(folder)
    res = _folder_result(folder)
    try:
        return _render(folder, res)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError, OverflowError,
            jinja2.TemplateError) as exc:
        raise OutputError(f"{folder}: summary.json or run.json holds content the report cannot draw "
                          f"({type(exc).__name__}: {str(exc)[:200]}); hand-edited, or written by another version "
                          "of mmgain?") from None


def _render(folder: Path, res: SimpleNamespace) -> Path:
    import jinja2

    if res.meta.get("status") == "diverged":
        raise OutputError(f"{folder}: every model of this run diverged; there is nothing to report")
    summary, run = res.summary, res.meta
    m, label, _ = _metric(summary)
    names = list((run.get("data") or {}).get("modalities") or []) or \
        sorted({k for c in summary["cells"] for k in c["subset"].split("+")})
    layout = LAYOUTS.get(res.spec.layout)
    blocks = layout.blocks(res)
    tables = [b for b in blocks if isinstance(b, Table)]
    notes = [b for b in blocks if isinstance(b, str)]
    K = len(names)
    full_levels = list(range(1, K + 1))
    variants = [dict(v) for v in res.spec.variants]
    first = variants[0]
    vkeys = res.spec.variant_keys
    shown_variants = variants if K <= FULL_LATTICE_K and len(variants) <= 6 else [first]
    lattices = [(", ".join(f"{k}={v}" for k, v in variant.items()),
                 hasse_svg(summary, names, None if K <= FULL_LATTICE_K else full_levels[-3:], variant))
                for variant in shown_variants]
    lattices = [(t if len(shown_variants) > 1 else "", jinja2.utils.markupsafe.Markup(svg)) for t, svg in lattices
                if svg and summary.get("pairs")]          # without pairs a lattice has no edges: nothing to read
    lattice_all = hasse_svg(summary, names, None, first) if K > FULL_LATTICE_K else ""
    variants_fig, variants_caption = variants_svg(summary, vkeys) if len(variants) > 1 else ("", "")
    vlabel = lambda row: ", ".join(f"{k}={row.get(k)}" for k in vkeys)  # noqa: E731
    singles_full = list(dict.fromkeys(c["subset"] for c in summary["cells"] if c["n_modalities"] in (1, K)))
    if len(singles_full) < 2:           # e.g. leave-one-out: the full set and the sets without one modality
        singles_full = list(dict.fromkeys(c["subset"] for c in summary["cells"]
                                          if c["n_modalities"] >= K - 1))[:len(SERIES)]
    curves = [(", ".join(f"{k}={v}" for k, v in variant.items()), curves_svg(summary, singles_full, variant))
              for variant in variants]
    top = _top_ratio(summary)
    shap = [s for s in summary.get("shapley", []) if s["ratio"] == top]
    shapley = None
    if shap:
        s = shap[0]
        shapley = {"ratio": top, "n_train": s["n_train"], "svg": BarFigure(
            s["modalities"], s["phi"], [[a, b] for a, b in zip(*s["phi_ci"])],
            f"Shapley value φ_k (retrained lattice, {'points' if m == 'acc' else '−MSE'})").svg(),
            "estimator": s.get("estimator"),
            "rows": [[k, fmt_num(s["phi"][i]) + (f" ± {s['phi_se'][i]:.2f}" if s.get("phi_se") else ""),
                      fmt_ci([s["phi_ci"][0][i], s["phi_ci"][1][i]]),
                      fmt_num(s["masked_phi"][i]) if s.get("masked_phi") else "—",
                      fmt_ci([s["masked_phi_ci"][0][i], s["masked_phi_ci"][1][i]]) if s.get("masked_phi") else "—"]
                     for i, k in enumerate(s["modalities"])],
            "total": f"Σφ = v(full) − v(∅) = {s['v_full']:.2f} − {s['v_empty']:.2f}"}
    inter = [x for x in summary.get("interactions", []) if x["ratio"] == top]
    interactions = [[p["i"], p["j"], fmt_num(p["value"]), fmt_ci(p["ci"]),
                     "redundant" if p["ci"][1] is not None and p["ci"][1] < 0 else
                     "synergistic" if p["ci"][0] is not None and p["ci"][0] > 0 else "—"]
                    for x in inter[:1] for p in x["pairs"]]
    ens = [([vlabel(g)] if vkeys else []) + [g["M"], f"{g['joint']:.2f}", f"{g['ensemble']:.2f}", fmt_num(g["gap"]), fmt_ci(g["gap_ci"]),
            "ensemble better" if g["ensemble_better"] else ""]
           for g in summary.get("ensemble_gap", []) if g["ratio"] == top]
    deficit = [([vlabel(d)] if vkeys else []) + [d["M"], d["modality"], f"{d['joint_block']:.2f}", f"{d['alone']:.2f}",
                                                fmt_num(d["deficit"]), fmt_ci(d["deficit_ci"]),
                                                "learns less" if d["deficit_ci"][1] is not None and d["deficit_ci"][1] < 0
                                                else ""]
               for d in summary.get("deficit", []) if d["ratio"] == top]
    miss = [([vlabel(x)] if vkeys else []) + [x["M"], x["missing"], *[f"{v:.2f}" for v in x["value"]], x["N"], f"{x['N_value']:.2f}",
             "—" if x["p_star"] is None else f"{x['p_star']:.2f}"]
            for x in summary.get("missing_modality", []) if x["ratio"] == top]
    crossings = [([vlabel(c)] if vkeys else []) + [
        c["M"], c["N"], c["status"], "—" if c["m_star"] is None else f"{c['m_star']:.0f}",
        "—" if c["m_star_ci"][0] is None else f"[{c['m_star_ci'][0]:.0f}, {c['m_star_ci'][1]:.0f}]",
        "—" if c["m_plus"] is None else f"{c['m_plus']:.0f}", fmt_num(c["asymptotic_gain"]), fmt_ci(c["asymptotic_gain_ci"])]
        for c in summary.get("crossovers", [])]
    theory = _theory_figures(summary, variants, vlabel if vkeys else None)
    g3 = fmt_g
    theory_rows = [([vlabel(r)] if vkeys else []) + [
        r["M"], r["N"], r["m"], *[g3(r[t][k]) for t in ("theorem1", "theorem2")
                                  for k in ("observed", "bound_alg", "bound_lower", "bound")],
        "holds" if r["condition_holds"] else "fails", "yes" if r["M_beat_N"] else "no", g3(r["m_star_pred"]),
        f"{r['kappa_M']:.2f}"] for r in summary.get("theory") or []]
    data = ["data"] if vkeys else []
    missing_p = [f"p={p:g}" for p in (summary.get("missing_modality") or [{"p": []}])[0]["p"]]
    # Every table of the page is a Table drawn by table.html.j2 (the headers live here, not in the template).
    grids = {
        "crossings": Table(data + ["M", "N", "status", "m*", "95% CI", "m₊", "asymptotic gain", "95% CI"], crossings),
        "shapley": shapley and Table(["modality", "φ (retrained)", "95% CI", "φ (masking)", "95% CI"], shapley["rows"]),
        "interactions": Table(["i", "j", "I_ij", "95% CI", ""], interactions),
        "ensemble": Table(data + ["M", "joint", "ensemble", "gap", "95% CI", ""], ens),
        "deficit": Table(data + ["M", "k", "k's block in M", "k alone", "deficit", "95% CI", ""], deficit),
        "missing": Table(data + ["M", "missing", *missing_p, "N", "N's value", "p*"], miss),
        "theory": Table(data + ["M", "N", "m", "Thm 1 observed", "bound: alg", "units", "path", "Thm 2 observed",
                                "bound: alg", "units", "path", "condition", "M beat N", "m*_pred", "κ_M"], theory_rows),
    }
    decision = decision_blocks(summary, vkeys)
    files = [f for f in run.get("files", []) if is_output_name(f) and (folder / f).is_file()
             and not (folder / f).is_symlink()]
    page = _templates().get_template("report.html.j2").render(
        title=f"mmgain — {summary.get('experiment', '')} on {_data_title(run, len(variants))}",
        summary=summary, run=run, names=names, cards=_cards(summary, names), label=label, metric=m,
        sections=produce_sections(summary, run), grids=grids,
        decision_tables=[b for b in decision if isinstance(b, Table)],
        decision_notes=[b for b in decision if isinstance(b, str)], model_class=summary.get("model_class"),
        heatmap=jinja2.utils.markupsafe.Markup(verdict_heatmap_svg(summary, names, first)),
        verdict_colours=VERDICT_COLOURS, lattices=lattices,
        lattice_all=jinja2.utils.markupsafe.Markup(lattice_all), full_lattice_k=FULL_LATTICE_K,
        curves=[(t, jinja2.utils.markupsafe.Markup(svg)) for t, svg in curves if svg], top=top,
        fits_drawn=any('class="fit"' in svg for _, svg in curves),
        variants_fig=jinja2.utils.markupsafe.Markup(variants_fig), variants_caption=variants_caption,
        shapley=shapley and {**shapley, "svg": jinja2.utils.markupsafe.Markup(shapley["svg"])},
        shapley_note=summary.get("shapley_note"), interactions=interactions, ensemble=ens, missing=miss, deficit=deficit, crossings=crossings,
        curve_note=summary.get("note"), err_label="100 − accuracy %" if m == "acc" else "MSE",
        tables=tables, notes=notes, theory=theory, theory_notes=summary.get("theory_notes"), vkeys=vkeys,
        files=files, partial=summary.get("partial"),
        spec_json=json.dumps(run.get("spec", {}), indent=1, default=str))
    path = folder / "report.html"
    atomic_write(path, lambda f: f.write(page.encode()))
    return path


def _data_title(run: dict, n_variants: int) -> str:
    """The data's name for the page title: the file's name, without a variant's settings when
    the run has several variants (the first one's would misname the others)."""
    name = Path(str((run.get("data") or {}).get("source", ""))).name
    return name.split("(", 1)[0] if n_variants > 1 else name


def cards_html(summary: dict, names: list[str]) -> str:
    """The answer cards alone, as an HTML fragment with their styles (a notebook's view of a run)."""
    env = _templates()
    css = env.get_template("cards.css.j2").render()
    body = env.get_template("cards.html.j2").render(cards=_cards(summary, names))
    return f'<div class="mmgain-cards"><style>{css}</style>{body}</div>'


def _templates():
    """The report's Jinja2 templates: autoescaped, and an unknown name is an error, not blank."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("mmgain.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    env.filters["breakable"] = _breakable
    return env


def _breakable(x) -> "object":
    """A cell's text with a line-break opportunity after every '+' of a subset name, so that a
    table of long subset names wraps instead of growing wider than the page."""
    import jinja2

    text = _esc(x)
    return jinja2.utils.markupsafe.Markup(text.replace("+", "+<wbr>")) if "+" in text else text
