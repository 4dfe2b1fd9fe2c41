"""The run folder: results.csv, summary.json, run.json (and the layout's figures)."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..experiments.store import LOCK, FolderLock, ResultStore, atomic_write, read_json, real_folder  # noqa: F401


OUTPUTS = ("results.csv", "summary.json", "run.json", "outcomes.npz", "split.csv", "folds.csv", "theory.csv",
           "report.html")   # plus fig_*.png


def new_run_dir(name: str, root: str | Path = "runs") -> Path:
    """A fresh folder ``runs/<name>-<timestamp>`` (suffixed if taken), created atomically so that
    two runs started in the same second never share one."""
    base = Path(root) / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 2
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:          # unwritable, or 'runs' is a file
        raise OutputError(f"cannot create the folder {base.parent} for runs ({exc.strerror or exc}); run from a "
                          "folder you can write to, or choose one with --out") from None
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            path, i = base.with_name(f"{base.name}-{i}"), i + 1
        except OSError as exc:
            raise OutputError(f"cannot create the run folder {path} ({exc.strerror}); run from a folder you can "
                              "write to, or choose one with --out") from None


def prepare_out_dir(out: str | Path | None, name: str, overwrite: bool = False,
                    data: str | Path | None = None) -> tuple[Path, bool, FolderLock]:
    """The run folder, whether this command created it, and the folder's lock (held).

    Refuses to write over an earlier run unless asked (nothing a user ran is silently lost),
    never writes into the folder that holds the input data, and never into a folder another
    run is writing.  With ``overwrite`` the previous run's outputs and store are removed
    first, so no stale file survives; only what the previous run records (and mmgain's own
    output names) is removed, and a folder that is not an mmgain run is refused.
    """
    if out is None:
        path = new_run_dir(name)
        return path, True, FolderLock(path).acquire()
    path = Path(out)
    if data is not None and Path(data).exists():
        d, p = Path(data).resolve(), path.resolve()
        if d == p or p in d.parents:
            raise OutputError(f"--out {path} holds the input data ({data}); choose a folder outside it")
    if path.exists() and not path.is_dir():
        raise OutputError(f"--out {path} exists and is not a folder")
    held = path.is_dir() and any(f.name != LOCK for f in path.iterdir())
    if held and not overwrite:
        hint = f", or continue it with 'mmgain resume {path}'" if ResultStore(path).exists() else ""
        raise OutputError(f"--out {path} already holds files (an earlier run?); "
                          f"choose another folder or pass --overwrite{hint}")
    previous = _previous_run_files(path) if held else []
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {path}: cannot create the run folder ({exc.strerror})") from None
    lock = FolderLock(path).acquire()
    for f in previous:
        f.unlink(missing_ok=True)
    store = ResultStore(path).path
    if held and store.is_dir():
        kept = sorted(f.name for f in store.iterdir())
        if kept:
            print(f"mmgain: warning: kept {len(kept)} file(s) in {store} that mmgain did not write: "
                  f"{', '.join(kept[:5])}{' …' if len(kept) > 5 else ''}", file=sys.stderr)
        else:
            store.rmdir()
    return path, created, lock


def is_output_name(name) -> bool:
    """A file name an mmgain run writes into its folder (no path, nothing hidden)."""
    return isinstance(name, str) and (name in OUTPUTS or (name.startswith("fig_") and name.endswith(".png")
                                                          and "/" not in name and "\\" not in name
                                                          and name.isprintable()))


def _previous_run_files(path: Path) -> list[Path]:
    """What an earlier mmgain run wrote into ``path``, from its own records (run.json's file list,
    the store manifest's chunks), for --overwrite; a folder that is not an mmgain run is refused."""
    store = ResultStore(path)
    run = None
    if os.path.lexists(path / "run.json"):
        try:
            run = read_json(path / "run.json", "run.json")
        except OutputError:
            run = None
    if not (isinstance(run, dict) and "spec" in run) and not os.path.lexists(store.manifest_path):
        raise OutputError(f"--out {path} holds files that no mmgain run wrote (no readable run.json, no "
                          "store/manifest.json); --overwrite only replaces an earlier mmgain run. Choose another "
                          "folder")
    real_folder(store.path)
    names = {"run.json", "report.html", *OUTPUTS}          # mmgain's own names in an mmgain run folder
    listed = run.get("files") if isinstance(run, dict) else None
    names |= {f for f in listed if is_output_name(f)} if isinstance(listed, list) else set()
    files = [path / n for n in sorted(names)]
    if os.path.lexists(store.manifest_path):
        try:
            n_chunks = len(store.manifest()["chunks"])
        except OutputError:
            n_chunks = 0
        files += [store.manifest_path] + [store.path / f"chunk-{i:04d}.npz" for i in range(n_chunks)]
    if store.path.is_dir():
        files += [f for f in store.path.iterdir() if f.name.startswith(".") and ".tmp-" in f.name]
    return [f for f in files if os.path.lexists(f)]


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def write_json(path: Path, obj: Any) -> None:
    """Written whole or not at all: a crash never leaves a truncated run.json."""
    text = json.dumps(_clean(obj), indent=2, default=str) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, lambda f: f.write(buf.getvalue().encode()))


def write_outcomes(path: Path, result) -> None:
    """Per-row outcomes of every model (compressed), so that any statistic can be recomputed:
    ``<part>_<name>`` arrays (streams × subsets × test rows) with ``part`` in test (the
    models), probe_test (the paper's probe), heldout_fit and heldout_eval (the cross-fitted
    probe, in-fold and out-of-fold), plus the stream table and the subset names."""
    import numpy as np

    arrays = {f"{part}_{name}": v for part, d in result.rows.items() for name, v in d.items()}
    arrays.update(subsets=np.array(["+".join(s) for s in result.subsets]), control=np.array(result.controls),
                  stream_group=result.streams.group, stream_seed=result.streams.seed,
                  stream_ratio=result.streams.ratio, stream_n_train=result.streams.n_train)
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
