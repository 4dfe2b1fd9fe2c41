"""A bounded, restricted unpickler for feature files such as IEMOCAP_features_raw.pkl.

A pickle is a program.  Refusing unknown classes stops code execution, but a
restricted unpickler can still be made to allocate gigabytes from a few bytes
(an array whose shape is 10⁹), to read memory outside a buffer (an array whose
dtype has fields at odd offsets, or whose buffer is shorter than its shape), or
to spin for minutes (dict keys whose hashes collide).  This one:

* admits only containers, numbers, strings and numpy arrays of plain numeric
  dtypes (no structured, object or sub-array dtypes);
* checks every array's dtype, shape and buffer length *before* numpy sees them,
  and charges its size to a memory budget;
* accepts as dict keys and set members only strings, bytes and small integers,
  whose hashes do not collide by construction;
* runs the pure-Python unpickler, opcode by opcode, under a deadline.
"""
from __future__ import annotations

import _compat_pickle
import math
import pickle
import time
from pathlib import Path

import numpy as np

from ..errors import DataError

PLAIN_DTYPES = {f"{k}{n}" for k, sizes in (("f", (2, 4, 8)), ("i", (1, 2, 4, 8)), ("u", (1, 2, 4, 8)),
                                           ("b", (1,))) for n in sizes}
MAX_DIMS = 4
SAFE_INT = 2 ** 31


class _Dtype:
    """Stands in for ``numpy.dtype(code)`` until its state is checked (BUILD)."""

    def __init__(self, limits: "_Limits", code, align=False, copy=True):
        if not isinstance(code, str) or code.lstrip("<>|=") not in PLAIN_DTYPES:
            limits.fail(f"an array dtype {code!r} (only plain numeric dtypes are admitted)")
        self.limits, self.dtype = limits, np.dtype(code)

    def __setstate__(self, state):
        ok = (isinstance(state, tuple) and len(state) in (8, 9) and state[1] in ("<", ">", "|", "=")
              and state[2] is None and state[3] is None and state[4] is None
              and state[5] in (-1, self.dtype.itemsize) and state[6] in (-1, self.dtype.alignment))
        if not ok:
            self.limits.fail("a dtype state with fields, sub-arrays or odd sizes")
        order = state[1]
        if order in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)


class _Limits:
    def __init__(self, path: Path, max_bytes: float, max_seconds: float):
        self.path, self.max_bytes, self.deadline = path, max_bytes, time.monotonic() + max_seconds
        self.max_seconds, self.used = max_seconds, 0

    def fail(self, what: str):
        raise DataError(f"{self.path}: refusing to load: the pickle holds {what}")

    def charge(self, n_bytes: float, what: str) -> None:
        self.used += n_bytes
        if self.used > self.max_bytes:
            raise DataError(f"{self.path}: refusing to load: {what} would bring the data past the memory cap of "
                            f"{self.max_bytes / 1e9:.1f} GB (raise it with --max-load-gb)")

    def key(self, k) -> None:
        if not (isinstance(k, (str, bytes)) or (type(k) is int and -SAFE_INT < k < SAFE_INT)):
            self.fail(f"a dict key or set member of type {type(k).__name__} (only strings and small integers)")


def _dtype_of(limits: _Limits, d) -> np.dtype:
    if isinstance(d, _Dtype):
        return d.dtype
    if isinstance(d, np.dtype) and d.fields is None and d.subdtype is None and \
            d.str.lstrip("<>|=") in PLAIN_DTYPES:
        return d
    limits.fail(f"an array dtype {d!r}")


def _shape(limits: _Limits, shape) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or len(shape) > MAX_DIMS or \
            not all(type(s) is int and 0 <= s < 2 ** 40 for s in shape):
        limits.fail(f"an array shape {shape!r}")
    return shape


class _SafeArray(np.ndarray):
    """The array class handed to numpy's reconstructor: its state is checked before numpy uses it."""

    _limits: _Limits

    def __setstate__(self, state):
        L = self._limits
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            L.fail("an array state of an unknown form")
        version, shape, dtype, fortran, raw = state if len(state) == 5 else (1, *state)
        shape, dtype = _shape(L, shape), _dtype_of(L, dtype)
        if not isinstance(raw, (bytes, bytearray)) or not isinstance(fortran, (bool, int)):
            L.fail("an array whose data are not a plain byte buffer")
        size = math.prod(shape) * dtype.itemsize
        if len(raw) != size:
            L.fail(f"an array of shape {shape} whose buffer has {len(raw)} bytes instead of {size}")
        L.charge(size, f"an array of shape {shape}")
        np.ndarray.__setstate__(self, (version, shape, dtype, bool(fortran), raw))


class SafeUnpickler(pickle._Unpickler):
    """See the module docstring.  ``load()`` returns plain Python/numpy objects or raises DataError."""

    def __init__(self, f, path: Path, max_bytes: float = 4e9, max_seconds: float = 300.0):
        super().__init__(f, encoding="latin1")
        self.limits = L = _Limits(path, max_bytes, max_seconds)
        def no_direct_arrays(cls, *args, **kwargs):
            L.fail("an array built directly from shape/buffer/offset arguments")

        array = type("_SafeArray", (_SafeArray,), {"_limits": L, "__new__": no_direct_arrays})

        def reconstruct(subtype, shape, dtype):
            if subtype is not array:
                L.fail("an array of a foreign class")
            _shape(L, shape)
            if dtype not in (b"b", "b"):
                L.fail(f"an array reconstructed with dtype {dtype!r}")
            return np.ndarray.__new__(array, (0,), "b")

        def scalar(dtype, data=None):
            dt = _dtype_of(L, dtype)
            if not isinstance(data, (bytes, bytearray)) or len(data) != dt.itemsize:
                L.fail("a numpy scalar with a malformed buffer")
            return np.frombuffer(bytes(data), dtype=dt)[0].item()

        def encode(text, encoding="latin1"):
            if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
                L.fail("a byte string built in an unexpected way")
            return text.encode("latin1")

        def keyed(kind):
            def build(items=()):
                items = list(items)
                for k in (items if kind is not dict else [kv[0] for kv in (items.items() if isinstance(items, dict)
                                                                           else items)]):
                    L.key(k)
                return kind(items)
            return build

        def number(kind):
            def build(x=0, *rest):
                if rest or not isinstance(x, (int, float, str, bytes)):
                    L.fail(f"a {kind.__name__} built from {type(x).__name__}")
                return kind(x)
            return build

        self.allowed = {
            ("numpy", "ndarray"): array, ("numpy", "dtype"): lambda *a: _Dtype(L, *a),
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy.core.multiarray", "scalar"): scalar, ("numpy._core.multiarray", "scalar"): scalar,
            ("_codecs", "encode"): encode,
            ("builtins", "set"): keyed(set), ("builtins", "frozenset"): keyed(frozenset),
            ("builtins", "dict"): keyed(dict), ("collections", "OrderedDict"): keyed(dict),
            ("builtins", "list"): lambda items=(): list(items), ("builtins", "tuple"): lambda items=(): tuple(items),
            ("builtins", "int"): number(int), ("builtins", "float"): number(float), ("builtins", "str"): number(str),
        }
        ops = 0

        def guarded(fn):
            def step(self_):
                nonlocal ops
                ops += 1
                if ops % 4096 == 0 and time.monotonic() > L.deadline:
                    raise DataError(f"{path}: refusing to load: unpickling took more than {L.max_seconds:g} s")
                return fn(self_)
            return step

        dispatch = dict(pickle._Unpickler.dispatch)
        dispatch.update({pickle.SETITEM[0]: SafeUnpickler._setitem, pickle.SETITEMS[0]: SafeUnpickler._setitems,
                         pickle.DICT[0]: SafeUnpickler._dict, pickle.ADDITEMS[0]: SafeUnpickler._additems,
                         pickle.FROZENSET[0]: SafeUnpickler._frozenset})
        self.dispatch = {k: guarded(fn) for k, fn in dispatch.items()}

    def find_class(self, module, name):
        # Python 2 pickles (like the IEMOCAP file) name builtins "__builtin__" etc.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        raise DataError(f"{self.limits.path}: refusing to load: the pickle asks for {module}.{name}, which could "
                        "run code; only containers, numbers, strings and numpy arrays are admitted")

    # Dict and set opcodes with checked keys (the rest is pickle._Unpickler's own code).
    def _setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        self.limits.key(key)
        self.stack[-1][key] = value

    def _setitems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        for i in range(0, len(items) - 1, 2):
            self.limits.key(items[i])
            target[items[i]] = items[i + 1]

    def _dict(self):
        items = self.pop_mark()
        for k in items[0::2]:
            self.limits.key(k)
        self.append({items[i]: items[i + 1] for i in range(0, len(items) - 1, 2)})

    def _additems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        for k in items:
            self.limits.key(k)
        if isinstance(target, (set, frozenset)):
            target.update(items) if isinstance(target, set) else None
        else:
            self.limits.fail("set items added to a non-set")

    def _frozenset(self):
        items = self.pop_mark()
        for k in items:
            self.limits.key(k)
        self.append(frozenset(items))


def plain(obj, limits: _Limits, depth: int = 0):
    """Safe arrays back to plain ``np.ndarray`` views, recursively; nesting is bounded."""
    if depth > 50:
        limits.fail("containers nested more than 50 deep")
    if isinstance(obj, np.ndarray):
        return obj.view(np.ndarray)
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v, limits, depth + 1) for v in obj)
    if isinstance(obj, dict):
        return {k: plain(v, limits, depth + 1) for k, v in obj.items()}
    return obj


def safe_load(path: Path, max_bytes: float = 4e9, max_seconds: float = 300.0):
    """Load a pickle under the limits above; anything malformed or over a limit is a DataError."""
    try:
        with open(path, "rb") as f:
            up = SafeUnpickler(f, path, max_bytes, max_seconds)
            return plain(up.load(), up.limits)
    except DataError:
        raise
    except RecursionError:
        raise DataError(f"{path}: refusing to load: the pickle nests too deep") from None
    except MemoryError:
        raise DataError(f"{path}: refusing to load: out of memory while unpickling") from None
    except Exception as exc:  # a truncated or foreign file
        raise DataError(f"{path}: not a readable feature pickle ({type(exc).__name__}: {exc})") from None
