"""The run folder: results.csv, summary.json, run.json (and the layout's figures)."""
from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import OutputError


OUTPUTS = ("results.csv", "summary.json", "run.json", "outcomes.npz", "split.csv")   # plus fig_*.png


def new_run_dir(name: str, root: str | Path = "runs") -> Path:
    """A fresh folder ``runs/<name>-<timestamp>`` (suffixed if taken), created atomically so that
    two runs started in the same second never share one."""
    base = Path(root) / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    base.parent.mkdir(parents=True, exist_ok=True)
    path, i = base, 2
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            path, i = base.with_name(f"{base.name}-{i}"), i + 1


def prepare_out_dir(out: str | Path | None, name: str, overwrite: bool = False,
                    data: str | Path | None = None) -> tuple[Path, bool]:
    """The run folder, and whether this command created it.

    Refuses to write over an earlier run unless asked (nothing a user ran is silently lost),
    and never writes into the folder that holds the input data.  With ``overwrite`` the
    previous run's outputs are removed first, so no stale file survives.
    """
    if out is None:
        return new_run_dir(name), True
    path = Path(out)
    if data is not None and Path(data).exists():
        d, p = Path(data).resolve(), path.resolve()
        if d == p or p in d.parents:
            raise OutputError(f"--out {path} holds the input data ({data}); choose a folder outside it")
    if path.exists() and not path.is_dir():
        raise OutputError(f"--out {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise OutputError(f"--out {path} already holds files (an earlier run?); "
                              "choose another folder or pass --overwrite")
        for f in [path / n for n in OUTPUTS] + list(path.glob("fig_*.png")):
            f.unlink(missing_ok=True)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {path}: cannot create the run folder ({exc.strerror})") from None
    return path, created


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(_clean(obj), indent=2, default=str) + "\n")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def write_outcomes(path: Path, result) -> None:
    """Per-row outcomes of every model (compressed), so that any statistic can be recomputed:
    ``<part>_<name>`` arrays (streams × subsets × test rows) with ``part`` in test (the
    models), probe_test (the paper's probe), heldout_fit and heldout_eval (the cross-fitted
    probe, in-fold and out-of-fold), plus the stream table and the subset names."""
    import numpy as np

    arrays = {f"{part}_{name}": v for part, d in result.rows.items() for name, v in d.items()}
    np.savez_compressed(path, **arrays, subsets=np.array(["+".join(s) for s in result.subsets]),
                        control=np.array(result.controls), stream_group=result.streams.group,
                        stream_seed=result.streams.seed, stream_ratio=result.streams.ratio,
                        stream_n_train=result.streams.n_train)
