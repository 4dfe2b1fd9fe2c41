"""The durable result store of a run folder, and the folder's lock.

``store/manifest.json`` says what the run is (spec, protocol, data fingerprint, the
streams and how they are chunked); ``store/chunk-NNNN.npz`` holds one finished chunk:
its models' metrics and per-row outcomes.  Each file is written whole or not at all
(temporary file, fsync, rename), so a crash or ``kill -9`` at any moment leaves a store
that reads back as "these chunks are done" and can be resumed.

Why files and not SQLite/DuckDB: a chunk's results are a few dense arrays (models ×
test rows), written once and never updated; one ``.npz`` per chunk with an atomic rename
gives all-or-nothing commits with no extra dependency, and any numpy can read it.

A run folder may come from elsewhere, so it is untrusted input: files are opened only
if they are regular files (never through a symlink, never a FIFO), temporary files are
created exclusively, each chunk carries its run's id and data fingerprint and the
manifest records each chunk's SHA-256, so a chunk of another run or an edited chunk is
refused by name, and declared array sizes are checked before numpy allocates them.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..data.subsets import effective_selection
from ..errors import OutputError, SpecError
from ..files import atomic_write, open_regular, read_json, read_regular, real_folder  # noqa: F401
from ..training.protocol import ADDED_SINCE, TrainingProtocol

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock
    fcntl = None

FORMAT = 1
LOCK = ".lock"
MAX_CHUNK_BYTES = 16 * 2 ** 30          # declared (uncompressed) arrays of one chunk


def _normal(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(obj, default=str))


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
        m = read_json(self.manifest_path, "mmgain store manifest")
        ok = (isinstance(m, dict) and isinstance(m.get("spec"), dict) and isinstance(m.get("streams"), list)
              and isinstance(m.get("chunks"), list) and all(isinstance(c, list) and all(
                  type(i) is int and 0 <= i < len(m["streams"]) for i in c) for c in m["chunks"])
              and isinstance(m.get("data_fingerprint"), str) and isinstance(m.get("subsets"), list)
              and isinstance(m.get("hashes", {}), dict)
              and all(isinstance(k, list) and len(k) == len(m["streams"][0]) and all(
                  isinstance(v, (int, float)) and not isinstance(v, bool) for v in k) for k in m["streams"]))
        if not ok:
            raise OutputError(f"{self.manifest_path}: not a valid mmgain store manifest (spec, streams, chunks, "
                              "subsets and data_fingerprint are needed, streams as lists of numbers of one length, "
                              "chunks as lists of stream indices)")
        return m

    def chunks(self) -> list[list[int]] | None:
        """The stored chunking (a resumed run trains the same chunks), or None for a new store."""
        return self.manifest()["chunks"] if self.exists() else None

    def selection(self) -> list[dict] | None:
        """The stored forward-selection path (``--subsets forward``), so that a resume or a collect
        does not select again."""
        return self.manifest().get("selection") if self.exists() else None

    def layout(self, spec):
        """The run's layout as the manifest recorded it (:mod:`.layout`), or None (a store written
        before layouts were stored)."""
        from .layout import RunLayout
        m = self.manifest()
        return None if "layout" not in m else RunLayout.from_json(m["layout"], m, spec, self.manifest_path)

    def check_spec(self, spec) -> None:
        """Refuse to continue a run with another spec or protocol; name what differs."""
        if not self.exists():
            return
        m = self.manifest()
        old = dict(m["spec"])
        if "cv" not in old:            # written before cross-fitting and families existed: a fixed split
            old.update(cv=0, primary=None)
        if isinstance(old.get("resolved_protocol"), dict):   # a field added since: what the folder did
            old["resolved_protocol"] = {**_normal(TrainingProtocol().to_dict()), **ADDED_SINCE,
                                        **old["resolved_protocol"]}
        trained = m.get("subsets") or []
        names = sorted({name for sub in trained for name in str(sub).split("+")})
        if (old.get("subsets") == "all" and spec.subsets == "auto" and len(trained) == 2 ** len(names) - 1
                and effective_selection("auto", names) == "all"):
            old["subsets"] = "auto"      # a folder from before the 'auto' default: the same lattice
        diff = _differences(old, _normal(spec.to_dict()))
        if diff:
            raise SpecError(f"{self.folder} holds a run with another spec or protocol; it cannot be resumed "
                            f"with this one. Differences: {'; '.join(diff)}")

    def open(self, plan) -> None:
        """Start the store for ``plan``, or check that an existing one belongs to it."""
        fingerprint = plan.data_fingerprint()
        streams = plan.stream_keys()
        subsets = ["+".join(s) for s in plan.subsets]
        real_folder(self.path)
        if not self.exists():
            self.path.mkdir(parents=True, exist_ok=True)
            self._manifest = {"format": FORMAT, "spec": _normal(plan.spec.to_dict()),
                              "data_fingerprint": fingerprint, "run_id": uuid.uuid4().hex, "subsets": subsets,
                              "streams": streams, "chunks": plan.chunks, "device": str(plan.device),
                              "selection": plan.selection, "layout": _normal(plan.layout().to_json()),
                              "hashes": {}}
            self._write_manifest()
            return
        m = self._manifest = self.manifest()
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

    def _write_manifest(self) -> None:
        text = (json.dumps(self._manifest, indent=1) + "\n").encode()
        atomic_write(self.manifest_path, lambda f: f.write(text))

    def _chunk_path(self, ci: int) -> Path:
        return self.path / f"chunk-{ci:04d}.npz"

    def commit(self, plan, ci: int, part: dict[str, dict[str, np.ndarray]]) -> None:
        """Write chunk ``ci``: its hash goes into the manifest *before* the chunk is renamed into
        place, so a crash between the two leaves a missing chunk (trained again), never an
        unrecorded one."""
        arrays = {f"{where}/{name}": v for where, d in part.items() for name, v in d.items()}
        arrays["__streams__"] = np.asarray([plan.stream_keys()[i] for i in plan.chunks[ci]], dtype=np.float64)
        arrays["__run__"] = np.asarray([self._manifest.get("run_id", ""), self._manifest["data_fingerprint"]])
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        data = buf.getvalue()
        if "run_id" in self._manifest:
            self._manifest.setdefault("hashes", {})[str(ci)] = hashlib.sha256(data).hexdigest()
            self._write_manifest()
        atomic_write(self._chunk_path(ci), lambda f: f.write(data))

    def _read_chunk(self, path: Path, m: dict, ci: int) -> dict[str, np.ndarray]:
        data = read_regular(path, MAX_CHUNK_BYTES)
        if "run_id" in m:                   # stores written before chunk hashes existed have none to check
            want = m.get("hashes", {}).get(str(ci))
            if want is None:
                return None                  # written, then the run crashed before its hash was recorded
            if hashlib.sha256(data).hexdigest() != want:
                raise OutputError(f"{path}: its contents differ from what this run wrote (SHA-256 mismatch: edited, "
                                  "damaged, or a chunk of another run); delete it to train it again")
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                declared = 0
                for name in zf.namelist():
                    with zf.open(name) as member:
                        version = np.lib.format.read_magic(member)
                        shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                                           np.lib.format.read_array_header_2_0)(member)
                        declared += int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared > MAX_CHUNK_BYTES:
                    raise OutputError(f"{path}: declares {declared / 1e9:.3g} GB of arrays, more than a chunk may "
                                      "hold; delete it to train it again")
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except OutputError:
            raise
        except MemoryError:
            raise OutputError(f"{path}: too large to read into memory; delete it to train it again") from None
        except (OSError, ValueError, EOFError, TypeError, KeyError, zipfile.BadZipFile) as exc:
            raise OutputError(f"{path}: a stored chunk cannot be read ({exc}); delete it to train it again") \
                from None
        owner = arrays.pop("__run__", None)
        if "run_id" in m and (owner is None or owner.shape != (2,) or owner[0] != m["run_id"]
                              or owner[1] != m["data_fingerprint"]):
            raise OutputError(f"{path}: a chunk of another run (or of other data); delete it to train it again")
        return arrays

    def load(self) -> dict[int, dict[str, dict[str, np.ndarray]]]:
        """Every committed chunk: ``{chunk index: part}``."""
        m = self.manifest()
        real_folder(self.path)
        parts = {}
        for ci, chunk in enumerate(m["chunks"]):
            path = self._chunk_path(ci)
            if not os.path.lexists(path):
                continue
            arrays = self._read_chunk(path, m, ci)
            if arrays is None:
                continue
            keys = np.asarray([m["streams"][i] for i in chunk], dtype=np.float64)
            if not np.array_equal(arrays.pop("__streams__", None), keys):
                raise OutputError(f"{path}: holds other streams than the manifest says; delete it to train it again")
            part: dict[str, dict[str, np.ndarray]] = {}
            for key, v in arrays.items():
                if "/" not in key:
                    raise OutputError(f"{path}: an array named {key!r} that this mmgain does not write; delete it to "
                                      "train it again")
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
            fd = open_regular(self.path, os.O_RDWR | os.O_CREAT)
        except OutputError as exc:
            if os.path.lexists(self.path):
                raise OutputError(f"{self.path}: the run folder's lock is not a plain file ({exc}); a run folder "
                                  "from elsewhere? Remove it if it is yours") from None
            raise OutputError(f"{self.path.parent}: cannot write the run folder ({exc})") from None
        f = os.fdopen(fd, "r+")
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
