"""Aggregate per-model rows into cells (mean ± std over seeds)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..data.subsets import proper_pairs, subset_name
from .spec import ExperimentSpec
from .stats import paired_stats

NON_METRICS = {"experiment", "subset", "n_modalities", "seed", "ratio", "n_train"}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else 0.0)


def cell_key(spec: ExperimentSpec, subset: str, variant: dict, ratio: float) -> tuple:
    return (subset,) + tuple(variant.get(k) for k in spec.variant_keys) + (float(ratio),)


def summarize(spec: ExperimentSpec, rows: list[dict[str, Any]], subsets) -> dict[str, Any]:
    """Cells in the order subsets × variants × ratios, each with ``<metric>_mean/_std``."""
    metrics = [k for k in rows[0] if k not in NON_METRICS and k not in spec.variant_keys]
    by_cell: dict[tuple, list[dict]] = {}
    for r in rows:
        by_cell.setdefault(cell_key(spec, r["subset"], r, r["ratio"]), []).append(r)
    cells = []
    for sub in subsets:
        for variant in spec.variants:
            for ratio in spec.ratios:
                rs = by_cell.get(cell_key(spec, subset_name(sub), variant, ratio))
                if not rs:
                    continue
                cell: dict[str, Any] = {"subset": subset_name(sub), **variant, "ratio": float(ratio),
                                        "n_train": rs[0]["n_train"], "n_modalities": len(sub)}
                for m in metrics:
                    cell[f"{m}_mean"], cell[f"{m}_std"] = mean_std([r[m] for r in rs])
                cell["n_seeds"] = len(rs)
                cells.append(cell)
    summary = {"experiment": spec.name, "cells": cells}
    if spec.pairs:
        summary["pairs"] = pair_rows(spec, rows, subsets)
    return summary


def pair_rows(spec: ExperimentSpec, rows: list[dict[str, Any]], subsets) -> list[dict[str, Any]]:
    """For each (M, N), N ⊂ M, |M| = |N| + 1, each variant and ratio: the paired test-metric
    difference M − N across seeds (mean, 95 % CI, p) and γ̂.

    Classification: ``acc_diff`` in accuracy points, ``gamma_acc`` = probe acc_M − probe acc_N
    (the paper's Table 3 sign: positive when M's latent is better), ``gamma_ce`` = η̂_M − η̂_N in
    cross-entropy (negative when M's latent is better).  Regression: ``mse_diff``, ``gamma_mse``.
    """
    classification = "test_acc" in rows[0]
    metric = "acc" if classification else "mse"
    index = {cell_key(spec, r["subset"], r, r["ratio"]) + (r["seed"],): r for r in rows}
    out = []
    for m, n in proper_pairs(subsets):
        for variant in spec.variants:
            for ratio in spec.ratios:
                km, kn = cell_key(spec, subset_name(m), variant, ratio), cell_key(spec, subset_name(n), variant, ratio)
                seeds = sorted({k[-1] for k in index if k[:-1] == km} & {k[-1] for k in index if k[:-1] == kn})
                if not seeds:
                    continue
                rm, rn = [index[km + (s,)] for s in seeds], [index[kn + (s,)] for s in seeds]
                st = paired_stats([r[f"test_{metric}"] for r in rm], [r[f"test_{metric}"] for r in rn])
                pair = {"M": subset_name(m), "N": subset_name(n), **variant, "ratio": float(ratio),
                        f"{metric}_diff_mean": st["mean"], f"{metric}_diff_ci": list(st["ci"]),
                        "p_value": st["p_value"], "n_seeds": st["n"]}
                if classification:
                    pair["gamma_acc"] = float(np.mean([a["probe_acc"] - b["probe_acc"] for a, b in zip(rm, rn)]))
                    pair["gamma_ce"] = float(np.mean([a["eta"] - b["eta"] for a, b in zip(rm, rn)]))
                else:
                    pair["gamma_mse"] = float(np.mean([a["eta"] - b["eta"] for a, b in zip(rm, rn)]))
                out.append(pair)
    return out
