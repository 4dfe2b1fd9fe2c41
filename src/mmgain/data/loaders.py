"""Loaders: every file format ends in a validated :class:`MultimodalDataset`.

``load_path`` picks the loader from the path: an ``.npz`` file, a ``.pkl``
(IEMOCAP bc-LSTM features), a CMU-MOSI bc-LSTM folder, or a folder of one
CSV/Parquet file per modality plus ``labels.csv``/``labels.parquet``.
Loaders report bad input by file and line; the dataset validates the rest.
"""
from __future__ import annotations

import _compat_pickle
import csv
import io
import pickle
from importlib import resources
from pathlib import Path

import numpy as np

from .dataset import DataError, MultimodalDataset

# ------------------------------------------------------------------ CSV / Parquet


def read_numeric_csv(path: Path, header: bool) -> tuple[list[str] | None, np.ndarray]:
    """A numeric CSV as a float64 matrix; ragged lines and non-numbers are named by line."""
    with open(path, newline="") as f:
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
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        data = list(reader)
        if reader.fieldnames is None:
            raise DataError(f"{path}: empty file")
        return {c: np.array([r[c] for r in data], dtype=object) for c in reader.fieldnames}


def _read_modality(path: Path) -> np.ndarray:
    if path.suffix == ".csv":
        return read_numeric_csv(path, header=True)[1]
    cols = _read_table(path)
    for c, v in cols.items():
        if v.dtype.kind not in "biuf":
            raise DataError(f"{path}: column {c!r} is not numeric (dtype {v.dtype})")
    return np.column_stack(list(cols.values())).astype(np.float64)


def load_folder(path: Path, task: str = "classification") -> MultimodalDataset:
    """One ``<modality>.csv|.parquet`` per modality (header row, rows aligned) plus
    ``labels.csv|.parquet`` with column ``y`` and optional ``split``, ``group``."""
    labels = [p for p in (path / "labels.csv", path / "labels.parquet") if p.exists()]
    if not labels:
        raise DataError(f"{path}: no labels.csv or labels.parquet (column 'y', optional 'split', 'group')")
    files = sorted(p for p in path.iterdir() if p.suffix in (".csv", ".parquet") and p.stem != "labels")
    if not files:
        raise DataError(f"{path}: no modality files (<name>.csv or <name>.parquet)")
    lab = _read_table(labels[0])
    if "y" not in lab:
        raise DataError(f"{labels[0]}: no column 'y' (columns: {', '.join(lab)})")
    mods = {}
    for f in files:
        mods[f.stem] = _read_modality(f)
        if len(mods[f.stem]) != len(lab["y"]):
            raise DataError(f"{f}: {len(mods[f.stem])} rows, but {labels[0].name} has {len(lab['y'])} labels")
    y = lab["y"]
    if y.dtype == object:
        y = np.array([_maybe_number(v) for v in y])
    return MultimodalDataset(mods, y, task=task, split=lab.get("split"), groups=lab.get("group"),
                             name=path.name, source=str(path))


def _maybe_number(v):
    try:
        f = float(v)
        return int(f) if f.is_integer() else f
    except (TypeError, ValueError):
        return v


# ---------------------------------------------------------------------- npz


def load_npz(path: Path, task: str = "classification") -> MultimodalDataset:
    """One 2-D array per modality plus ``y``; optional ``split`` (train/test) and ``group``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:
        raise DataError(f"{path}: cannot read as .npz without pickles ({exc})") from None
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


class _SafeUnpickler(pickle.Unpickler):
    """Admits only containers, numbers, strings and numpy arrays: a pickle can run code."""

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "list"), ("builtins", "dict"),
        ("builtins", "tuple"), ("builtins", "int"), ("builtins", "float"), ("builtins", "str"),
        ("builtins", "bytes"), ("collections", "OrderedDict"), ("_codecs", "encode"),
    }

    def __init__(self, f, path: Path):
        super().__init__(f, encoding="latin1")
        self.path = path

    def find_class(self, module, name):
        # Python 2 pickles (like the IEMOCAP file) name builtins "__builtin__" etc.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"{self.path}: refusing to load: the pickle asks for {module}.{name}, which could run "
                        "code; only containers, numbers, strings and numpy arrays are admitted")


def load_iemocap(path: Path) -> MultimodalDataset:
    """IEMOCAP bc-LSTM features (``IEMOCAP_features_raw.pkl``), real utterances only.

    A latin-1 pickle of ``(videoIDs, videoSpeakers, videoLabels, videoText, videoAudio,
    videoVisual, videoSentence, trainVid, testVid)``; dicts keyed by dialogue id hold
    per-utterance lists.  The paper padded dialogues to 110 utterances; its numbers
    imply only real utterances were scored, so padding is not reproduced.
    """
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as exc:  # a truncated or foreign file
        raise DataError(f"{path}: not a readable IEMOCAP feature pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, (tuple, list)) or len(obj) != 9:
        raise DataError(f"{path}: expected a 9-tuple (videoIDs, videoSpeakers, videoLabels, videoText, "
                        "videoAudio, videoVisual, videoSentence, trainVid, testVid)")
    _, _, labels, text, audio, visual, _, train_vid, test_vid = obj
    mods = {"text": [], "audio": [], "visual": []}
    y, split, groups = [], [], []
    for part, vids in (("train", train_vid), ("test", test_vid)):
        for vid in sorted(vids):
            lab = np.asarray(labels[vid])
            for name, src in (("text", text), ("audio", audio), ("visual", visual)):
                try:
                    arr = np.asarray(src[vid], dtype=np.float64)
                except (ValueError, KeyError) as exc:
                    raise DataError(f"{path}: dialogue {vid!r}, modality '{name}': {exc}") from None
                if arr.ndim != 2 or len(arr) != len(lab):
                    raise DataError(f"{path}: dialogue {vid!r}, modality '{name}': shape {arr.shape}, "
                                    f"expected ({len(lab)}, d) — one row per labelled utterance")
                mods[name].append(arr)
            y.append(lab)
            split += [part] * len(lab)
            groups += [vid] * len(lab)
    return MultimodalDataset({k: np.concatenate(v) for k, v in mods.items()}, np.concatenate(y).astype(np.int64),
                             task="classification", split=np.array(split), groups=np.array(groups),
                             name="iemocap", source=str(path), classes=np.array(IEMOCAP_CLASSES))


# ------------------------------------------------------------------- dispatch


def load_path(path: str | Path, task: str = "classification") -> MultimodalDataset:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if p.is_dir():
        return load_mosi_bclstm(p) if is_mosi_folder(p) else load_folder(p, task)
    if p.suffix == ".npz":
        return load_npz(p, task)
    if p.suffix in (".pkl", ".pickle"):
        return load_iemocap(p)
    raise DataError(f"{p}: unknown data format; expected an .npz, an IEMOCAP .pkl, or a folder (see README)")
