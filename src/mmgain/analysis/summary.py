"""Aggregate a run's arrays into the summary: cells, pairs, verdicts, null controls."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..data.subsets import subset_name
from .attribution import attribution
from .curves import curve_summary, degenerate_size
from .forecast import forecast_records, selection_records
from .information import information_records
from .estimates import SIGNS, PairAnalysis, modality_lines, verdict_records
from .theory import closed_form_annotations, exact_gamma_summary, theory_summary

def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else 0.0)


def design_ci(design: dict, shared_rows: bool) -> str:
    """What the intervals count, in words, for the run's design."""
    if design.get("folds"):
        return (f"t interval over {design['folds']}-fold cross-fitting × {design['seeds']} seed(s) and the "
                f"{design.get('n_scored', '')} scored rows; the fold models' spread is inflated for their "
                "overlapping training rows (Nadeau–Bengio)")
    if shared_rows:
        return "t interval (Welch–Satterthwaite df) over seeds and test rows"
    return "t interval over seeds (rows are drawn anew per seed)"


def model_class(spec) -> dict[str, Any]:
    """What the trained models can express, named in every output: a late-fusion model with a
    linear head on an additive fusion is a sum of per-modality functions, so a gain that needs two
    modalities together (XOR-type synergy) is invisible to it, whatever the data hold."""
    p = spec.resolved_protocol()
    additive = p.head == "linear" and p.fusion in ("concat", "sum")
    head = "linear head" if p.head == "linear" else f"{p.head} head (one hidden layer of {p.head_width}, {p.head_activation})"
    text = f"late fusion ({p.fusion} of {p.encoder} encoders), {head}: " + (
        "additive in the modalities — cannot show synergy (an effect of two modalities together, "
        "beyond their separate effects)" if additive else "can represent interactions between modalities")
    return {"encoder": p.encoder, "fusion": p.fusion, "head": p.head, "additive": additive, "text": text}


def summarize(result) -> dict[str, Any]:
    """Cells (subset × variant × ratio, ``<metric>_mean/_std`` over seeds), and for specs with
    pairs: the pair statistics, the verdicts, the null controls and one line per modality."""
    spec, res = result.spec, result
    cells = []
    for a, sub in enumerate(res.subsets):
        for variant, _, ratio, js in res.cells():
            if len(js) == 0:
                continue
            cell: dict[str, Any] = {"subset": subset_name(sub), **variant, "ratio": float(ratio),
                                    "n_train": int(res.streams.n_train[js[0]]), "n_modalities": len(sub)}
            if res.controls[a]:
                cell["control"] = True
            ok = js[res.metrics["diverged"][js, a] == 0]          # diverged models count nowhere
            for name, v in res.metrics.items():
                if name != "diverged":
                    cell[f"{name}_mean"], cell[f"{name}_std"] = mean_std(v[ok, a]) if len(ok) else (None, None)
            cell["n_seeds"], cell["n_diverged"] = len(ok), len(js) - len(ok)
            if res.design.get("folds"):
                cell["n_folds"] = res.design["folds"]
            base = res.extras.get("baseline_mse")
            if base is not None and len(ok) and not res.controls[a]:
                # regression: against predicting the training mean (out-of-sample R²)
                cell["baseline_mse_mean"] = float(base[ok].mean())
                cell["r2_mean"] = float(np.mean(1.0 - res.metrics["test_mse"][ok, a] / base[ok]))
                cell["worse_than_baseline"] = bool(cell["test_mse_mean"] > cell["baseline_mse_mean"])
            cell["degenerate"] = degenerate_size(cell["n_train"], res.data.n_classes)
            cells.append(cell)
    summary: dict[str, Any] = {"experiment": spec.name, "design": dict(res.design), "task": res.task.name, "metric": res.task.metric,
                               "eta_reference": res.eta_reference, "cells": cells}
    if spec.pairs:
        analysis = PairAnalysis(res, spec.margin, spec.alpha, spec.primary)
        pairs, controls = analysis.pairs()
        m = res.task.metric
        summary["conventions"] = {k: v for k, v in SIGNS.items()
                                  if k in ("eta", "gamma", "gain", f"{m}_diff", f"gamma_{res.task.risk}_raw")
                                  or (m == "acc" and k.startswith("gamma_acc"))}
        n_primary = sum(p["family"] == "primary" for p in pairs)
        design = res.design
        summary["tests"] = {
            "alpha": spec.alpha, "margin": analysis.margin, "margin_unit": res.task.margin_help,
            "primary": f"{n_primary} primary comparison(s): " + ("the pairs named by --primary" if spec.primary else
                       "each modality added to its largest partner set (all the others) at the largest sample "
                       "size") + f"; simultaneous {100 * (1 - spec.alpha / max(n_primary, 1)):.4g} % intervals "
                       "(Bonferroni), which decide their verdicts",
            "exploratory": f"the other {len(pairs) - n_primary} comparisons (pairs × sample sizes): unadjusted 95 % "
                           "intervals decide their verdicts; q_by is the Benjamini–Yekutieli q-value (FDR) "
                           "among them" + (f"; {len(controls)} null-control pairs form a family of their own"
                                           if controls else ""),
            "ci": design_ci(design, analysis.shared_rows),
            "verdict": "from the deciding interval of the gain (+ = helps): helps if it lies above 0, hurts if "
                       "below 0, no effect if inside ±margin, does not help if its upper end is below +margin, "
                       "else inconclusive",
            "latent": "from γ̂'s interval at the same level: better if below 0, worse if above 0, else not resolved",
        }
        summary["pairs"] = pairs
        summary["verdicts"] = verdict_records(pairs, m, spec.variant_keys)
        if controls:
            summary["null_control"] = controls
        summary.update(curve_summary(res, pairs))
        summary["model_class"] = model_class(spec)
        summary["forecast"] = forecast_records(res, summary)
        summary["selection"] = selection_records(res, summary)
        closed_form_annotations(res, summary)
        summary["modalities"] = modality_lines(pairs, res.task, spec.variant_keys, summary["crossovers"],
                                               order=res.data.names)
    if res.extras:
        summary.update(attribution(res))
        info = information_records(res)
        if info:
            summary["information"] = info
    if spec.theory:
        summary.update(theory_summary(res, summary.get("crossovers", [])))
    exact = exact_gamma_summary(res)
    if exact:
        summary["exact_gamma"] = exact
    return summary

