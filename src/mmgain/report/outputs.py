"""The run folder's result files: results.csv, outcomes.npz, summary.json, run.json, the figures
and the report, written from a result."""
from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

import numpy as np

from ..files import atomic_write, write_csv, write_json


def write_run_folder(out: Path, result, status: dict, notes: list[str], figures: bool) -> list[str]:
    """results.csv, outcomes.npz, split.csv or folds.csv, theory.csv, summary.json (and figures) of
    an analysed result; run.json last (``status`` and ``result.meta``), then report.html from the
    files just written.  Returns the names written besides run.json."""
    from .html import build_report
    from .layouts import LAYOUTS, theory_rows

    write_csv(out / "results.csv", result.table())
    write_outcomes(out / "outcomes.npz", result)
    files = ["results.csv", "summary.json", "outcomes.npz"]
    if result.data.row_file is not None:      # a split or folds that mmgain made: which row went where
        name, rows = result.data.row_file
        write_csv(out / name, rows)
        files.append(name)
    if result.summary.get("theory"):
        write_csv(out / "theory.csv", theory_rows(result.summary["theory"]))
        files.append("theory.csv")
    summary = dict(result.summary)
    if "partial" in result.meta:
        summary["partial"] = result.meta["partial"]
    write_json(out / "summary.json", summary)
    if figures:
        files += [f.name for f in LAYOUTS.get(result.spec.layout).figures(result, out)]
    write_json(out / "run.json", {**status, **result.meta, "warnings": notes,
                                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files})
    try:                                          # from the files just written, as `mmgain report` does
        if figures or "partial" in result.meta:   # not when every model diverged: nothing to show
            files.append(build_report(out).name)
    except Exception:                             # a bug in the report must not cost the run: say so, go on
        traceback.print_exc()
        print(f"mmgain: warning: report.html could not be written (a bug; the results above are complete). "
              f"Rebuild it with: mmgain report {out}", file=sys.stderr)
    return files


def write_outcomes(path: Path, result) -> None:
    """Per-row outcomes of every model (compressed), so that any statistic can be recomputed:
    ``<part>_<name>`` arrays (streams × subsets × test rows) with ``part`` in test (the
    models), probe_test (the paper's probe), heldout_fit and heldout_eval (the cross-fitted
    probe, in-fold and out-of-fold), ``prior_loss`` (streams × test rows: the empty model's
    cross-entropy per row, classification), plus the stream table and the subset names."""
    arrays = {f"{part}_{name}": v for part, d in result.rows.items() for name, v in d.items()}
    if "prior_loss" in result.extras:
        arrays["prior_loss"] = result.extras["prior_loss"]
    arrays.update(subsets=np.array(["+".join(s) for s in result.subsets]), control=np.array(result.controls),
                  stream_group=result.streams.group, stream_seed=result.streams.seed,
                  stream_ratio=result.streams.ratio, stream_n_train=result.streams.n_train)
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
