"""Loaders: every file format ends in a validated :class:`MultimodalDataset`.

``load_path`` picks the loader from the path: an ``.npz`` file, a ``.pkl``
(IEMOCAP bc-LSTM features), a CMU-MOSI bc-LSTM folder, or a folder of one
CSV/Parquet file per modality plus ``labels.csv``/``labels.parquet``.
Loaders report bad input by file and line; the dataset validates the rest.
"""
from __future__ import annotations

import csv
import io
import time
import warnings
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DataWarning
from .dataset import DataError, MultimodalDataset
from .safe_pickle import safe_load

# ------------------------------------------------------------------ CSV / Parquet


@contextmanager
def _reading(path: Path):
    """An OSError while reading ``path`` (EIO, permissions) becomes a DataError naming the file:
    a read error, unlike an open error, carries no file name of its own."""
    try:
        yield
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at offset "
                        f"{exc.start}); save the file as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None


def read_numeric_csv(path: Path, header: bool) -> tuple[list[str] | None, np.ndarray]:
    """A numeric CSV as a float64 matrix; ragged lines and non-numbers are named by line."""
    with _reading(path), open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        names = next(reader, None) if header else None
        rows, width = [], None
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if width is None:
                width = len(row)
            elif len(row) != width:
                raise DataError(f"{path}: line {line} has {len(row)} fields, expected {width} (ragged CSV)")
            try:
                rows.append([float(x) for x in row])
            except ValueError:
                col = next(i for i, x in enumerate(row) if not _is_float(x))
                raise DataError(f"{path}: line {line}, column {col + 1}: {row[col]!r} is not a number") from None
    if names is not None and width is not None and len(names) != width:
        raise DataError(f"{path}: the header has {len(names)} fields but the rows have {width}")
    if not rows:
        raise DataError(f"{path}: no data rows")
    return names, np.asarray(rows, dtype=np.float64)


def _is_float(x: str) -> bool:
    try:
        float(x)
        return True
    except ValueError:
        return False


def _read_table(path: Path):
    """A CSV (with header) or Parquet file as {column: array}."""
    if path.suffix == ".parquet":
        try:
            import pandas as pd
            frame = pd.read_parquet(path)
        except ImportError:
            raise DataError(f"{path}: reading Parquet needs pandas and pyarrow "
                            "(pip install 'mmgain[parquet]')") from None
        return {str(c): frame[c].to_numpy() for c in frame.columns}
    with _reading(path), open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        data = list(reader)
        if reader.fieldnames is None:
            raise DataError(f"{path}: empty file")
        return {c: np.array([r[c] for r in data], dtype=object) for c in reader.fieldnames}


def _read_modality(path: Path, n_labels: int) -> np.ndarray:
    if path.suffix == ".csv":
        names, arr = read_numeric_csv(path, header=True)
        if names is not None and all(_is_float(x) for x in names) and len(arr) + 1 == n_labels:
            # Line 1 is numbers and the labels count it as a row: a CSV without a header.
            warnings.warn(f"{path}: line 1 holds only numbers and the file has one row fewer than the labels "
                          "without it: read as a data row (the file has no header)", DataWarning)
            arr = np.vstack([np.asarray([float(x) for x in names])[None], arr])
        elif names is not None and all(_is_float(x) for x in names) and names != [str(i) for i in range(len(names))]:
            # Numbers in line 1 that are not pandas' 0,1,2,… header: a CSV without a header whose labels
            # file is short by one too would otherwise lose its first row without a word.
            raise DataError(f"{path}: line 1 holds only numbers ({', '.join(names[:3])}{', …' if len(names) > 3 else ''})"
                            f", so it looks like data, not a header; the labels have {n_labels} rows, as many as the "
                            "file without line 1. Add a header line (column names) to the file, and check that the "
                            "labels file has one row per data row")
        return arr
    cols = _read_table(path)
    for c, v in cols.items():
        if v.dtype.kind not in "biuf":
            raise DataError(f"{path}: column {c!r} is not numeric (dtype {v.dtype})")
    return np.column_stack(list(cols.values())).astype(np.float64)


def load_folder(path: Path, task: str = "classification") -> MultimodalDataset:
    """One ``<modality>.csv|.parquet`` per modality (header row, rows aligned) plus
    ``labels.csv|.parquet`` with column ``y`` and optional ``split``, ``group``.

    The modalities' order (it decides the models' initial weights) is the one listed in an
    optional ``modalities.txt`` (one name per line), else alphabetical: list them in your .npz's
    key order and both formats give identical numbers."""
    labels = [p for p in (path / "labels.csv", path / "labels.parquet") if p.exists()]
    if not labels:
        raise DataError(f"{path}: no labels.csv or labels.parquet (column 'y', optional 'split', 'group')")
    if len(labels) > 1:
        raise DataError(f"{path}: both labels.csv and labels.parquet; keep one")
    files = sorted(p for p in path.iterdir() if p.suffix in (".csv", ".parquet") and p.stem != "labels")
    for p in files + labels:
        if p.is_symlink() and not p.exists():
            raise DataError(f"{p}: a broken or looping symbolic link")
        if p.is_dir():
            raise DataError(f"{p}: a folder where a data file was expected")
    if not files:
        raise DataError(f"{path}: no modality files (<name>.csv or <name>.parquet)")
    stems = [f.stem for f in files]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise DataError(f"{path}: modality {', '.join(map(repr, twice))} has both a .csv and a .parquet file; "
                        "keep one")
    order = path / "modalities.txt"
    if order.exists():
        files = _ordered(files, order)
    lab = _read_table(labels[0])
    if "y" not in lab:
        raise DataError(f"{labels[0]}: no column 'y' (columns: {', '.join(lab)})")
    mods = {}
    for f in files:
        mods[f.stem] = _read_modality(f, len(lab["y"]))
        if len(mods[f.stem]) != len(lab["y"]):
            raise DataError(f"{f}: {len(mods[f.stem])} rows, but {labels[0].name} has {len(lab['y'])} labels "
                            "(blank lines in a CSV are skipped: write a missing label as NA to have it named)")
    y = lab["y"]
    if y.dtype == object:
        y = np.array([_maybe_number(v) for v in y])
    return MultimodalDataset(mods, y, task=task, split=lab.get("split"), groups=lab.get("group"),
                             name=path.name, source=str(path))


def _ordered(files: list[Path], listing: Path) -> list[Path]:
    """The modality files in the order ``modalities.txt`` lists them (every file, each once)."""
    with _reading(listing):
        names = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_stem = {f.stem: f for f in files}
    unknown = [n for n in names if n not in by_stem]
    twice = sorted({n for n in names if names.count(n) > 1})
    left = [s for s in by_stem if s not in names]
    if unknown or twice or left:
        raise DataError(f"{listing}: must list every modality file once (files: {', '.join(by_stem)})"
                        + (f"; no file for {', '.join(unknown)}" if unknown else "")
                        + (f"; listed twice: {', '.join(twice)}" if twice else "")
                        + (f"; not listed: {', '.join(left)}" if left else ""))
    return [by_stem[n] for n in names]


def _maybe_number(v):
    try:
        f = float(v)
        return int(f) if f.is_integer() else f
    except (TypeError, ValueError):
        return v


# ---------------------------------------------------------------------- npz


def load_npz(path: Path, task: str = "classification") -> MultimodalDataset:
    """One 2-D array per modality plus ``y``; optional ``split`` (train/test) and ``group``."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    try:
        z = np.load(path, allow_pickle=False)
        if not hasattr(z, "files"):          # a .npy saved under an .npz name
            raise DataError(f"{path}: a single array (.npy), not an .npz archive of named arrays")
        with z:
            arrays = {}
            for k in z.files:
                try:
                    arrays[k] = z[k]
                except ValueError as exc:
                    raise DataError(f"{path}: array {k!r} cannot be read without pickles ({exc})") from None
                except Exception as exc:     # bad CRC, truncated member, bad zlib stream
                    raise DataError(f"{path}: array {k!r} is corrupt ({type(exc).__name__}: {exc})") from None
    except DataError:
        raise
    except Exception as exc:                 # not a zip archive, truncated central directory, …
        raise DataError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    if "y" not in arrays:
        raise DataError(f"{path}: no array named 'y' (arrays: {', '.join(arrays)})")
    y, split, groups = arrays.pop("y"), arrays.pop("split", None), arrays.pop("group", None)
    return MultimodalDataset(arrays, y, task=task, split=split, groups=groups, name=path.stem, source=str(path))


# ------------------------------------------------------------- embedded mfeat

MFEAT_VIEWS = ("fou", "fac", "kar", "pix", "zer", "mor")


def load_mfeat() -> MultimodalDataset:
    """UCI Multiple Features (6 views, 2000 digits), embedded in the package.

    van Breukelen et al., Kybernetika 34(4), 1998; UCI ML Repository, CC BY 4.0.
    See ``mmgain/datasets/ATTRIBUTION.md``.
    """
    blob = resources.files("mmgain.datasets").joinpath("mfeat.npz").read_bytes()
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        mods = {v: z[v] for v in MFEAT_VIEWS}
        y = z["y"]
    return MultimodalDataset(mods, y, task="classification", name="mfeat", source="mfeat (embedded)")


# ------------------------------------------------------------------ CMU-MOSI


def is_mosi_folder(path: Path) -> bool:
    return path.is_dir() and (path / "text_train0.csv").exists()


def load_mosi_bclstm(path: Path) -> MultimodalDataset:
    """CMU-MOSI bc-LSTM features: ``{text,audio,video}_{train,test}0.csv`` (features, label last),
    the speaker-independent split, groups = video ids from ``transcripts.csv``."""
    mods, y, split, groups = {}, None, [], []
    tid = {}
    with open(path / "transcripts.csv", newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            tid[i] = row[0].rsplit("_", 1)[0]
    for part in ("train", "test"):
        labels = None
        for m in ("text", "audio", "video"):
            arr = read_numeric_csv(path / f"{m}_{part}0.csv", header=False)[1]
            mods.setdefault(m, []).append(arr[:, :-1])
            if labels is None:
                labels = arr[:, -1]
            elif len(arr) != len(labels) or np.any(arr[:, -1] != labels):
                raise DataError(f"{path / f'{m}_{part}0.csv'}: rows or labels do not line up with text_{part}0.csv")
        index = read_numeric_csv(path / f"text_{part}.csv", header=False)[1][:, 0].astype(int)
        if len(index) != len(labels):
            raise DataError(f"{path / f'text_{part}.csv'}: {len(index)} rows, expected {len(labels)}")
        groups += [tid[i] for i in index]
        split += [part] * len(labels)
        y = labels if y is None else np.concatenate([y, labels])
    return MultimodalDataset({m: np.concatenate(v) for m, v in mods.items()}, y.astype(np.int64),
                             task="classification", split=np.array(split), groups=np.array(groups),
                             name="mosi_bclstm", source=str(path))


# ------------------------------------------------------------------- IEMOCAP

IEMOCAP_CLASSES = ("hap", "sad", "neu", "ang", "exc", "fru")


def load_iemocap(path: Path, max_load_gb: float = 4.0, max_seconds: float = 300.0) -> MultimodalDataset:
    """IEMOCAP bc-LSTM features (``IEMOCAP_features_raw.pkl``), real utterances only.

    A latin-1 pickle of ``(videoIDs, videoSpeakers, videoLabels, videoText, videoAudio,
    videoVisual, videoSentence, trainVid, testVid)``; dicts keyed by dialogue id hold
    per-utterance lists.  The paper padded dialogues to 110 utterances; its numbers
    imply only real utterances were scored, so padding is not reproduced.  The file is
    read by :func:`safe_load`, a data-only decoder (no code runs, no reconstruction sees
    file state, every size is charged before it is allocated, at most ``max_load_gb`` of data,
    one deadline for decoding and these checks).
    """
    deadline = time.monotonic() + max_seconds        # one clock for decoding and for the checks below
    obj = safe_load(path, max_bytes=max_load_gb * 1e9, max_seconds=max_seconds, deadline=deadline)
    if not isinstance(obj, (tuple, list)) or len(obj) != 9:
        raise DataError(f"{path}: expected a 9-tuple (videoIDs, videoSpeakers, videoLabels, videoText, "
                        "videoAudio, videoVisual, videoSentence, trainVid, testVid)")
    _, _, labels, text, audio, visual, _, train_vid, test_vid = obj
    for name, part in (("videoLabels", labels), ("videoText", text), ("videoAudio", audio), ("videoVisual", visual)):
        if not isinstance(part, dict):
            raise DataError(f"{path}: {name} must be a dict keyed by dialogue id, got {type(part).__name__}")
    for name, part in (("trainVid", train_vid), ("testVid", test_vid)):
        if not isinstance(part, (set, frozenset, list, tuple)) or not all(isinstance(v, str) for v in part):
            raise DataError(f"{path}: {name} must be a collection of dialogue ids (strings), "
                            f"got {type(part).__name__}")
    both = sorted(set(train_vid) & set(test_vid))
    if both:
        raise DataError(f"{path}: {len(both)} dialogue(s) are in both trainVid and testVid "
                        f"({', '.join(both[:5])}{' …' if len(both) > 5 else ''}): the test set must be unseen")
    budget = [max_load_gb * 1e9]
    mods = {"text": [], "audio": [], "visual": []}
    y, split, groups = [], [], []
    for part, vids in (("train", train_vid), ("test", test_vid)):
        for vid in sorted(vids):
            if time.monotonic() > deadline:
                raise DataError(f"{path}: refusing to load: reading the features took more than {max_seconds:g} s")
            if any(vid not in d for d in (labels, text, audio, visual)):
                raise DataError(f"{path}: dialogue {vid!r} is listed in {part}Vid but missing from the feature dicts")
            lab = _matrix(labels[vid], path, vid, "labels", budget, vector=True)
            if not np.all(np.isin(lab, np.arange(len(IEMOCAP_CLASSES)))):
                raise DataError(f"{path}: dialogue {vid!r}: labels must be codes 0..{len(IEMOCAP_CLASSES) - 1}")
            for name, src in (("text", text), ("audio", audio), ("visual", visual)):
                arr = _matrix(src[vid], path, vid, name, budget)
                if len(arr) != len(lab):
                    raise DataError(f"{path}: dialogue {vid!r}, modality '{name}': shape {arr.shape}, "
                                    f"expected ({len(lab)}, d) — one row per labelled utterance")
                mods[name].append(arr)
            y.append(lab.astype(np.int64))
            split += [part] * len(lab)
            groups += [vid] * len(lab)
    if not y:
        raise DataError(f"{path}: no dialogues in trainVid/testVid")
    widths = {k: {a.shape[1] for a in v} for k, v in mods.items()}
    for k, w in widths.items():
        if len(w) > 1:
            raise DataError(f"{path}: modality '{k}' has rows of different widths {sorted(w)}")
    return MultimodalDataset({k: np.concatenate(v) for k, v in mods.items()}, np.concatenate(y),
                             task="classification", split=np.array(split), groups=np.array(groups),
                             name="iemocap", source=str(path), classes=np.array(IEMOCAP_CLASSES))


def _matrix(seq, path: Path, vid, name: str, budget: list[float], vector: bool = False) -> np.ndarray:
    """A dialogue's rows (a list of 1-D arrays/lists of numbers, or a 2-D array) as float64,
    checked for type and size *before* anything is allocated (a list may hold the same row
    many times: its size is what it will occupy, not what the file held)."""
    where = f"{path}: dialogue {vid!r}, {'labels' if vector else f'modality {name!r}'}"
    if isinstance(seq, np.ndarray):
        rows, shape = None, seq.shape
    elif isinstance(seq, (list, tuple)):
        rows = seq
        first = seq[0] if seq else None
        width = None if vector else (len(first) if isinstance(first, (list, tuple, np.ndarray)) else -1)
        shape = (len(seq),) if vector else (len(seq), width)
    else:
        raise DataError(f"{where}: expected a list of rows, got {type(seq).__name__}")
    if len(shape) != (1 if vector else 2) or any(s < 0 for s in shape):
        raise DataError(f"{where}: expected {'a 1-D sequence' if vector else 'rows × features'}, got shape {shape}")
    size = float(np.prod(shape)) * 8
    budget[0] -= size
    if budget[0] < 0:
        raise DataError(f"{where}: the data would exceed the memory cap (raise it with --max-load-gb)")
    if rows is not None:
        kinds = (int, float, np.integer, np.floating) if vector else (list, tuple, np.ndarray)
        if not all(isinstance(r, kinds) for r in rows):
            raise DataError(f"{where}: rows must be {'numbers' if vector else 'sequences of numbers'}")
        if not vector and any(len(r) != shape[1] or (isinstance(r, np.ndarray) and r.ndim != 1) for r in rows):
            raise DataError(f"{where}: rows of different lengths")
    try:
        return np.asarray(seq, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: not numeric ({exc})") from None


# ------------------------------------------------------------------- dispatch


def load_path(path: str | Path, task: str = "classification", max_load_gb: float = 4.0) -> MultimodalDataset:
    """The dataset at ``path``; an unreadable file (permissions, a link loop, …) is a DataError."""
    try:
        return _load_path(Path(path), task, max_load_gb)
    except (DataError, MemoryError):
        raise
    except OSError as exc:
        raise DataError(f"{exc.filename or path}: cannot read ({exc.strerror or exc})") from None


def _load_path(p: Path, task: str, max_load_gb: float) -> MultimodalDataset:
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    fixed = is_mosi_folder(p) or p.suffix in (".pkl", ".pickle")
    if fixed and task != "classification":
        raise DataError(f"{p}: this is a {'CMU-MOSI' if p.is_dir() else 'IEMOCAP'} classification dataset; "
                        f"--task {task} does not apply to it")
    if p.is_dir():
        return load_mosi_bclstm(p) if is_mosi_folder(p) else load_folder(p, task)
    if p.suffix == ".npz":
        return load_npz(p, task)
    if p.suffix in (".pkl", ".pickle"):
        return load_iemocap(p, max_load_gb=max_load_gb)
    raise DataError(f"{p}: unknown data format; expected an .npz, an IEMOCAP .pkl, or a folder (formats: docs/guide/your-data.md)")
