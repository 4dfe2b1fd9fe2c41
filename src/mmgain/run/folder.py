"""Run folders: a fresh one per run, or an earlier run's folder replaced (``--overwrite``) without
losing anything a user put there."""
from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from ..errors import OutputError
from ..files import OUTPUTS, is_output_name, read_json, real_folder
from .store import LOCK, FolderLock, ResultStore


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
