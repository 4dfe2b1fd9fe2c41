"""Aggregate per-model rows into cells (mean ± std over seeds)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..data.subsets import subset_name
from .spec import ExperimentSpec

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
    return {"experiment": spec.name, "cells": cells}
