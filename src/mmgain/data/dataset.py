"""The one data model of mmgain: named modalities, a target, a task kind.

Every loader and generator ends by building a :class:`MultimodalDataset`, and
all input validation happens in :func:`MultimodalDataset.__post_init__`, so a
bad file is answered the same way whatever format it came in.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError, DataWarning

MISSING = {"", "na", "n/a", "nan", "none", "null", "?"}   # label text read as "missing", case-insensitive

TASKS = ("classification", "regression")
SPLIT_VALUES = ("train", "test")




@dataclass
class MultimodalDataset:
    """Modalities keyed by name (each an ``n × d_k`` float array) plus a target.

    ``split`` (optional) holds ``"train"``/``"test"`` per row; ``groups``
    (optional) holds a group id per row, used for grouped splits.  For
    classification, labels are re-encoded to ``0..C-1``; the original labels
    are kept in ``classes``.
    """

    modalities: dict[str, np.ndarray]
    y: np.ndarray
    task: str = "classification"
    split: np.ndarray | None = None
    groups: np.ndarray | None = None
    name: str = "data"
    source: str | None = None
    classes: np.ndarray | None = field(default=None)
    notes: dict = field(default_factory=dict)   # provenance, e.g. how the split was made
    population: Any = None                      # generated data: the known distribution (data.synthetic.Population)

    def __post_init__(self) -> None:
        _validate(self)

    # ------------------------------------------------------------------ views
    @property
    def names(self) -> list[str]:
        return list(self.modalities)

    @property
    def dims(self) -> dict[str, int]:
        return {k: int(v.shape[1]) for k, v in self.modalities.items()}

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_classes(self) -> int:
        return 0 if self.task == "regression" else int(len(self.classes))

    @property
    def n_outputs(self) -> int:
        return 1 if self.task == "regression" else self.n_classes

    def rows(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[idx] for k, v in self.modalities.items()}

    def take(self, rows: np.ndarray, split: np.ndarray | None = None, note: dict | None = None) -> "MultimodalDataset":
        """These rows (in this order) as a dataset of their own, with a new ``split`` if given."""
        return MultimodalDataset({k: v[rows] for k, v in self.modalities.items()}, self.y[rows], self.task,
                                 split if split is not None else (None if self.split is None else self.split[rows]),
                                 None if self.groups is None else self.groups[rows], self.name, self.source,
                                 self.classes, {**self.notes, **(note or {})})

    def update_hash(self, h) -> None:
        """Feed the data as trained on (features, target, split, groups) into the hasher ``h``: the
        fingerprint a resumed run checks, and the name of data given in memory."""
        for name in self.names:
            x = np.ascontiguousarray(self.modalities[name])
            h.update(f"{name}:{x.dtype}:{x.shape}".encode())
            h.update(x.tobytes())
        for arr in (self.y, self.split, self.groups):
            if arr is not None:
                h.update(np.asarray(arr).astype(str if arr.dtype == object else arr.dtype).tobytes())

    def train_test_indices(self) -> tuple[np.ndarray, np.ndarray]:
        if self.split is None:
            raise DataError(f"{self._where()}: no train/test split; make one with mmgain.data.splits")
        return np.flatnonzero(self.split == "train"), np.flatnonzero(self.split == "test")

    def _where(self) -> str:
        return self.source or self.name


def _fail(ds: MultimodalDataset, msg: str) -> None:
    raise DataError(f"{ds._where()}: {msg}")


def _as_float_matrix(ds: MultimodalDataset, name: str, arr) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind in "cmM":
        _fail(ds, f"modality '{name}': {'complex' if a.dtype.kind == 'c' else 'date/time'} values (dtype {a.dtype}); "
                  "features must be real numbers")
    if a.dtype.kind not in "biuf":
        # Find the first row that cannot be read as numbers, to name it.
        flat = a.reshape(a.shape[0], -1) if a.ndim >= 1 and a.shape[0] else a.reshape(1, -1)
        for i, row in enumerate(flat):
            try:
                np.asarray(row, dtype=np.float64)
            except (TypeError, ValueError):
                _fail(ds, f"modality '{name}': non-numeric value in row {i} ({[str(x) for x in row[:5]]}...)")
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError):
            _fail(ds, f"modality '{name}': non-numeric data (dtype {a.dtype})")
    if a.ndim != 2:
        hint = " (for one feature use x[:, None])" if a.ndim == 1 else ""
        _fail(ds, f"modality '{name}' must be 2-D rows × features, got shape {a.shape}{hint}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        _fail(ds, f"modality '{name}' is empty (shape {a.shape})")
    bad = ~np.isfinite(a)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        _fail(ds, f"modality '{name}': non-finite value {a[r, c]} in row {r}, column {c} "
                  f"({int(bad.any(axis=1).sum())} rows affected)")
    with np.errstate(over="ignore"):
        a32 = np.ascontiguousarray(a, dtype=np.float32)     # the working dtype: checked after the cast
    bad = ~np.isfinite(a32)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        _fail(ds, f"modality '{name}': value {a[r, c]:g} in row {r}, column {c} is beyond the float32 range "
                  f"(±3.4e38) the models compute in ({int(bad.any(axis=1).sum())} rows affected); scale the features")
    return a32


def _validate(ds: MultimodalDataset) -> None:
    if ds.task not in TASKS:
        _fail(ds, f"task must be one of {TASKS}, got {ds.task!r}")
    if not isinstance(ds.modalities, dict) or not ds.modalities:
        _fail(ds, "needs at least one modality (a dict name -> 2-D array)")
    mods: dict[str, np.ndarray] = {}
    for name, arr in ds.modalities.items():
        if not isinstance(name, str) or not name or "+" in name or "," in name:
            _fail(ds, f"modality name {name!r} must be a non-empty string without '+' or ','")
        mods[name] = _as_float_matrix(ds, name, arr)
    ds.modalities = mods
    counts = {k: v.shape[0] for k, v in mods.items()}
    if len(set(counts.values())) > 1:
        _fail(ds, f"modalities have different row counts: {counts}")
    n = next(iter(counts.values()))
    for name, a in mods.items():
        if np.all(a.std(axis=0) == 0):
            warnings.warn(f"{ds._where()}: modality '{name}' has zero variance in every feature; "
                          "it carries no information", DataWarning, stacklevel=3)

    y = np.asarray(ds.y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        _fail(ds, f"target must be 1-D, got shape {y.shape}")
    if y.shape[0] != n:
        _fail(ds, f"target has {y.shape[0]} rows but the modalities have {n}")
    missing = _missing_rows(y)
    if len(missing):
        _fail(ds, f"{len(missing)} missing label(s) (empty, NA, nan, None) in row(s) {_rows(missing)}; "
                  "fill or remove those rows")
    if ds.task == "regression":
        try:
            y = y.astype(np.float32)
        except (TypeError, ValueError):
            _fail(ds, f"regression target is not numeric (dtype {y.dtype})")
        if not np.isfinite(y).all():
            _fail(ds, f"target: non-finite value in row {int(np.flatnonzero(~np.isfinite(y))[0])}")
        big = float(np.abs(y).max())
        if big > 1e15:
            _fail(ds, f"the regression target reaches {big:.3g}: its squared errors overflow the float32 the "
                      "models compute in. Scale the target (e.g. standardize it, or change its unit)")
        y64 = y.astype(np.float64)
        if np.std(y64) <= 1e-6 * max(float(np.abs(y64).mean()), 1e-30):
            _fail(ds, f"the regression target is constant (every row {float(y64[0]):g}, up to float32 rounding): "
                      "there is nothing to predict")
        ds.classes = None
    else:
        if y.dtype.kind == "f":
            if not np.isfinite(y).all():
                _fail(ds, f"target: non-finite label in row {int(np.flatnonzero(~np.isfinite(y))[0])}")
            if np.any(y != np.round(y)):
                _fail(ds, "classification labels are fractional; use task='regression' for real targets")
            y = y.astype(np.int64)
        if ds.classes is not None:
            # A loader that knows the class names passes codes 0..C-1 and the names.
            classes = np.asarray(ds.classes)
            if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= len(classes):
                _fail(ds, f"labels must be codes 0..{len(classes) - 1} when class names are given")
        else:
            classes, y = np.unique(y, return_inverse=True)
        if len(np.unique(y)) < 2:
            _fail(ds, f"classification needs at least two classes, found {len(np.unique(y))}")
        ds.classes = classes
        y = y.astype(np.int64)
    ds.y = y

    if ds.groups is not None:
        g = np.asarray(ds.groups)
        if g.shape != (n,):
            _fail(ds, f"groups must have one entry per row ({n}), got shape {g.shape}")
        bad = _missing_rows(g)
        if len(bad):
            _fail(ds, f"{len(bad)} missing group id(s) in row(s) {_rows(bad)}: rows without a group would be "
                      "merged into one group")
        ds.groups = g
    if ds.split is not None:
        s = np.asarray(ds.split).astype(str)
        if s.shape != (n,):
            _fail(ds, f"split must have one entry per row ({n}), got shape {s.shape}")
        bad = ~np.isin(s, SPLIT_VALUES)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            _fail(ds, f"split value {str(s[i])!r} in row {i}; allowed values are 'train' and 'test'")
        for part in SPLIT_VALUES:
            if not (s == part).any():
                _fail(ds, f"the split has an empty {part} set")
        if ds.task == "classification":
            only_test = np.setdiff1d(np.unique(y[s == "test"]), np.unique(y[s == "train"]))
            if len(only_test):
                _fail(ds, f"class(es) {ds.classes[only_test].tolist()} occur only in the test set")
        ds.split = s


def _missing_rows(v: np.ndarray) -> np.ndarray:
    """Rows of a label/group column that hold no value: NaN, None, or text such as '' / 'NA' / 'nan'."""
    v = np.asarray(v)
    if v.dtype.kind == "f":
        return np.flatnonzero(np.isnan(v))
    if v.dtype.kind in "OUS":
        return np.array([i for i, x in enumerate(v.tolist())
                         if x is None or (isinstance(x, float) and x != x)
                         or (isinstance(x, (str, bytes)) and (x.decode() if isinstance(x, bytes) else x)
                             .strip().lower() in MISSING)], dtype=np.int64)
    return np.zeros(0, dtype=np.int64)


def _rows(idx: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:limit])
    return shown + (f", … ({len(idx) - limit} more)" if len(idx) > limit else "")
