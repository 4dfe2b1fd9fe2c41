"""The durable result store of a run folder, and the folder's lock.

``store/manifest.json`` says what the run is (spec, protocol, data fingerprint, the
streams and how they are chunked); ``store/chunk-NNNN.npz`` holds one finished chunk:
its models' metrics and per-row outcomes.  Each file is written whole or not at all
(temporary file, fsync, rename), so a crash or ``kill -9`` at any moment leaves a store
that reads back as "these chunks are done" and can be resumed.

Why files and not SQLite/DuckDB: a chunk's results are a few dense arrays (models ×
test rows), written once and never updated; one ``.npz`` per chunk with an atomic rename
gives all-or-nothing commits with no extra dependency, and any numpy can read it.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError, SpecError
from ..training.protocol import TrainingProtocol

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock
    fcntl = None

FORMAT = 1
LOCK = ".lock"


def _normal(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(obj, default=str))


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
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {json.dumps(a)} in the folder, {json.dumps(b)} now")
    return out


class ResultStore:
    """Finished chunks of one run, keyed by (data fingerprint, spec, protocol, stream)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / "store"
        self.manifest_path = self.path / "manifest.json"

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> dict:
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise OutputError(f"{self.manifest_path}: not a readable mmgain store manifest ({exc})") from None

    def chunks(self) -> list[list[int]] | None:
        """The stored chunking (a resumed run trains the same chunks), or None for a new store."""
        return self.manifest()["chunks"] if self.exists() else None

    def selection(self) -> list[dict] | None:
        """The stored forward-selection path (``--subsets forward``), so that a resume or a collect
        does not select again."""
        return self.manifest().get("selection") if self.exists() else None

    def check_spec(self, spec) -> None:
        """Refuse to continue a run with another spec or protocol; name what differs."""
        if not self.exists():
            return
        old = dict(self.manifest()["spec"])
        if "cv" not in old:            # written before cross-fitting and families existed: a fixed split
            old.update(cv=0, primary=None)
        if isinstance(old.get("resolved_protocol"), dict):   # a field added since: its default is the old behaviour
            old["resolved_protocol"] = {**_normal(TrainingProtocol().to_dict()), **old["resolved_protocol"]}
        diff = _differences(old, _normal(spec.to_dict()))
        if diff:
            raise SpecError(f"{self.folder} holds a run with another spec or protocol; it cannot be resumed "
                            f"with this one. Differences: {'; '.join(diff)}")

    def open(self, plan) -> None:
        """Start the store for ``plan``, or check that an existing one belongs to it."""
        fingerprint = plan.data_fingerprint()
        streams = plan.stream_keys()
        subsets = ["+".join(s) for s in plan.subsets]
        if not self.exists():
            self.path.mkdir(parents=True, exist_ok=True)
            manifest = {"format": FORMAT, "spec": _normal(plan.spec.to_dict()), "data_fingerprint": fingerprint,
                        "subsets": subsets, "streams": streams, "chunks": plan.chunks,
                        "device": str(plan.device), "selection": plan.selection}
            atomic_write(self.manifest_path, lambda f: f.write((json.dumps(manifest, indent=1) + "\n").encode()))
            return
        m = self.manifest()
        self.check_spec(plan.spec)
        if m.get("format") != FORMAT:
            raise OutputError(f"{self.manifest_path}: store format {m.get('format')}, this mmgain writes {FORMAT}")
        if m["data_fingerprint"] != fingerprint:
            raise SpecError(f"{self.folder} was run on other data: the data now differ from what the folder "
                            f"records (sha256 {m['data_fingerprint'][:12]}… there, {fingerprint[:12]}… now)")
        if m["subsets"] != subsets or m["streams"] != streams:
            raise SpecError(f"{self.folder}: the run's subsets or streams differ from the folder's")
        for tmp in self.path.glob(".*.tmp-*"):      # an interrupted write: never a committed chunk
            tmp.unlink(missing_ok=True)

    def _chunk_path(self, ci: int) -> Path:
        return self.path / f"chunk-{ci:04d}.npz"

    def commit(self, plan, ci: int, part: dict[str, dict[str, np.ndarray]]) -> None:
        arrays = {f"{where}/{name}": v for where, d in part.items() for name, v in d.items()}
        arrays["__streams__"] = np.asarray([plan.stream_keys()[i] for i in plan.chunks[ci]], dtype=np.float64)
        atomic_write(self._chunk_path(ci), lambda f: np.savez_compressed(f, **arrays))

    def load(self) -> dict[int, dict[str, dict[str, np.ndarray]]]:
        """Every committed chunk: ``{chunk index: part}``."""
        m = self.manifest()
        parts = {}
        for ci, chunk in enumerate(m["chunks"]):
            path = self._chunk_path(ci)
            if not path.exists():
                continue
            try:
                with np.load(path, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise OutputError(f"{path}: a stored chunk cannot be read ({exc}); delete it to train it again") \
                    from None
            keys = np.asarray([m["streams"][i] for i in chunk], dtype=np.float64)
            if not np.array_equal(arrays.pop("__streams__", None), keys):
                raise OutputError(f"{path}: holds other streams than the manifest says; delete it to train it again")
            part: dict[str, dict[str, np.ndarray]] = {}
            for key, v in arrays.items():
                where, name = key.split("/", 1)
                part.setdefault(where, {})[name] = v
            parts[ci] = part
        return parts


class FolderLock:
    """An exclusive lock on a run folder, held while a process writes it: a second run into
    the same folder is refused, not interleaved.  The OS drops it when the process dies."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK
        self._f = None

    def acquire(self) -> "FolderLock":
        try:
            f = open(self.path, "a+")
        except OSError as exc:
            raise OutputError(f"{self.path.parent}: cannot write the run folder ({exc.strerror})") from None
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                holder = f.read().strip() or "?"
                f.close()
                raise OutputError(f"{self.path.parent} is in use by another mmgain run (pid {holder}); "
                                  "wait for it to end, or choose another --out") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._f = f
        return self

    def release(self) -> None:
        if self._f is not None:
            self._f.close()       # closing drops the flock
            self._f = None
