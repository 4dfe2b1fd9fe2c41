"""Reading and writing a run folder's files safely: a run folder may come from elsewhere (untrusted
input), and a crash must never leave a half-written file.  Used by the run (its store) and the
report alike."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from .errors import OutputError

MAX_JSON_BYTES = 256 * 2 ** 20
OUTPUTS = ("results.csv", "summary.json", "run.json", "outcomes.npz", "split.csv", "folds.csv", "theory.csv",
           "report.html")   # plus fig_*.png


def is_output_name(name) -> bool:
    """A file name an mmgain run writes into its folder (no path, nothing hidden)."""
    return isinstance(name, str) and (name in OUTPUTS or (name.startswith("fig_") and name.endswith(".png")
                                                          and "/" not in name and "\\" not in name
                                                          and name.isprintable()))


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """A file descriptor for ``path`` if it is a regular file reached without a symlink
    (O_NOFOLLOW; O_NONBLOCK so that a FIFO cannot block the open); an OutputError otherwise."""
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), mode)
    except OSError as exc:
        if os.path.islink(path):
            raise OutputError(f"{path} is a symbolic link; a run folder's files must be plain files "
                              "(refusing to follow it)") from None
        raise OutputError(f"{path}: cannot be opened ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OutputError(f"{path} is not a regular file (a FIFO, device or folder); refusing to read it")
    return fd


def read_regular(path: Path, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of a run-folder file, if it is a regular file of at most ``max_bytes``."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise OutputError(f"{path}: {size} bytes, more than the {max_bytes} a run folder's file may have")
        return f.read(max_bytes + 1)


def read_json(path: Path, what: str = "file") -> Any:
    """A run-folder JSON file (regular, bounded, not absurdly nested) or an OutputError naming it."""
    try:
        return json.loads(read_regular(path))
    except (ValueError, RecursionError) as exc:
        raise OutputError(f"{path}: not a readable {what} ({type(exc).__name__}: {str(exc)[:200]})") from None


def real_folder(path: Path) -> None:
    """Refuse a run folder's sub-folder that is a symlink (writing into it would write elsewhere)."""
    if os.path.islink(path):
        raise OutputError(f"{path} is a symbolic link; refusing to write through it")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Write ``path`` whole or not at all: ``write(file)`` into a temporary file beside it,
    fsync, rename over ``path``, fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)                      # never write through something left there
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


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
