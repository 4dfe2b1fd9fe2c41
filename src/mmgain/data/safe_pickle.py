"""A data-only pickle decoder for feature files such as IEMOCAP_features_raw.pkl.

A pickle is a program for a small stack machine, and Python's unpickler lets that
program call whatever it names.  Refusing unknown names is not enough: numpy's own
array reconstruction trusts the state it is given (a second BUILD frees a buffer that
row views still point into), so any route that hands file-supplied state to numpy is
one crafted file away from reading freed memory.  This module is therefore its own
virtual machine, in pure Python, and never calls ``pickle``'s unpickler, numpy's
``_reconstruct``/``__setstate__`` or any other class's reconstruction:

* it runs only the opcodes that lists, tuples, dicts, sets, strings, numbers and
  numpy arrays need; anything else (objects, persistent ids, extensions,
  out-of-band buffers) is refused by name;
* the few globals a numpy pickle names are tokens, not callables: the decoder
  builds each array *itself* from a validated (shape, plain numeric dtype, bytes)
  as a fresh array that owns its memory;
* an object is sealed once it is placed in another (or used as an argument); a
  sealed object is never changed again, so a second BUILD, an APPEND to a finished
  list and a container holding itself are refused;
* every allocation (a string, a container slot, an array, and a shared object each
  time it is referenced again, since it will be expanded later) is charged to one
  byte budget *before* it happens; one deadline covers decoding, and the caller
  gets the same deadline for its post-processing.
"""
from __future__ import annotations

import _compat_pickle
import codecs
import io
import math
import os
import struct
import time
from pathlib import Path

import numpy as np

from ..errors import DataError

PLAIN_DTYPES = {f"{k}{n}" for k, sizes in (("f", (2, 4, 8)), ("i", (1, 2, 4, 8)), ("u", (1, 2, 4, 8)),
                                           ("b", (1,))) for n in sizes}
_NUMPY_CODES = {np.dtype(c).char: c for c in PLAIN_DTYPES}      # 'f' → 'f4', 'd' → 'f8', …
MAX_DIMS = 4
MAX_DEPTH = 50
SAFE_INT = 2 ** 31
MAX_LINE = 1 << 16
_SLOT = 8                                                        # bytes charged per reference
_ATOMS = {bool, int, float, type(None)}
_MUTABLE = {list, dict, set}


class _Global:
    """A name a pickle asked for: a token the decoder interprets, never a callable."""

    ALLOWED = {("numpy", "ndarray"): "ndarray", ("numpy", "dtype"): "dtype",
               ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
               ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
               ("numpy.core.multiarray", "scalar"): "scalar", ("numpy._core.multiarray", "scalar"): "scalar",
               ("numpy.core.numeric", "_frombuffer"): "frombuffer", ("numpy._core.numeric", "_frombuffer"): "frombuffer",
               ("_codecs", "encode"): "encode", ("builtins", "bytes"): "bytes", ("builtins", "set"): "set", ("builtins", "frozenset"): "frozenset",
               ("collections", "OrderedDict"): "dict"}

    def __init__(self, kind: str):
        self.kind = kind


class _ArrayStub:
    """``_reconstruct(ndarray, (0,), b'b')``: an array waiting for its one BUILD."""

    array: np.ndarray | None = None


class _DtypeStub:
    """``numpy.dtype(code, align, copy)``: a plain dtype, optionally given a byte order by one BUILD."""

    def __init__(self, dtype: np.dtype):
        self.dtype, self.built = dtype, False


class _Decoder:
    def __init__(self, f, path: Path, max_bytes: float, deadline: float, max_seconds: float):
        self.f, self.path, self.max_bytes, self.deadline, self.max_seconds = f, path, max_bytes, deadline, max_seconds
        self.remaining = os.fstat(f.fileno()).st_size if hasattr(f, "fileno") else float("inf")
        self.used = 0.0
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict[int, object] = {}
        self.size: dict[int, float] = {}      # id → bytes the object occupies once expanded
        self.depth: dict[int, int] = {}       # id → nesting depth of a container
        self.sealed: set[int] = set()
        self.placed: set[int] = set()
        self.tokens: set[int] = set()         # ids of tuples that hold names or dtypes (call arguments)
        self.keep: list = []                  # keeps every tracked object alive, so ids are never reused

    # ---------------------------------------------------------------- limits
    def fail(self, what: str):
        raise DataError(f"{self.path}: refusing to load: the pickle holds {what}")

    def charge(self, n_bytes: float, what: str) -> None:
        self.used += n_bytes
        if self.used > self.max_bytes:
            raise DataError(f"{self.path}: refusing to load: {what} would bring the data past the memory cap of "
                            f"{self.max_bytes / 1e9:.1f} GB (raise it with --max-load-gb)")

    def read(self, n: int) -> bytes:
        if n > self.remaining:
            raise DataError(f"{self.path}: not a readable feature pickle (truncated: a field declares {n} bytes, "
                            f"{self.remaining} remain)")
        self.charge(n, f"a field of {n} bytes")
        data = self.f.read(n)
        if len(data) != n:
            raise DataError(f"{self.path}: not a readable feature pickle (truncated)")
        self.remaining -= n
        return data

    def readline(self) -> bytes:
        line = self.f.readline(MAX_LINE)
        self.remaining -= len(line)
        if not line.endswith(b"\n"):
            raise DataError(f"{self.path}: not a readable feature pickle (a text field is unterminated or longer "
                            f"than {MAX_LINE} bytes)")
        self.charge(len(line), "a text field")
        return line[:-1]

    def _sizeof(self, v) -> float:
        if isinstance(v, (str, bytes)):
            return len(v) + 49
        if isinstance(v, np.ndarray):
            return v.nbytes + 112
        return self.size.get(id(v), 32)

    def track(self, obj, size: float, depth: int = 0):
        self.size[id(obj)], self.depth[id(obj)] = size, depth
        self.keep.append(obj)
        return obj

    def place(self, v, in_tuple: bool = False):
        """``v`` is about to go into a container: seal it, charge a reference (and, when it is
        shared, its expanded size again), and turn a finished array stub into its array.
        Names and dtypes may only sit in tuples (the arguments and states of calls), and such
        a tuple is never data."""
        t = type(v)
        if t in _ATOMS:
            self.charge(_SLOT, "a container slot")
            return v
        if t is _ArrayStub:
            if v.array is None:
                self.fail("an array used before its data were given")
            v = v.array
        elif isinstance(v, (_DtypeStub, _Global)) or id(v) in self.tokens:
            if not in_tuple or id(v) in self.tokens:
                self.fail("a class, function or dtype reference among the data")
            if isinstance(v, _DtypeStub):
                v.built = True
            self.charge(_SLOT, "a container slot")
            return v
        key = id(v)
        if t in _MUTABLE:
            self.sealed.add(key)
        if key in self.placed:
            self.charge(_SLOT + self._sizeof(v), "a shared object referenced again")
        else:
            self.charge(_SLOT, "a container slot")
            self.placed.add(key)
            self.keep.append(v)
        return v

    def grow(self, target, values) -> None:
        if id(target) in self.sealed:
            self.fail("a container changed after it was finished (placed in another object)")
        d = max((self.depth.get(id(v), 0) for v in values), default=-1) + 1
        if d > MAX_DEPTH:
            self.fail(f"containers nested more than {MAX_DEPTH} deep")
        self.depth[id(target)] = max(self.depth.get(id(target), 0), d)
        self.size[id(target)] = self.size.get(id(target), 56) + sum(_SLOT + self._sizeof(v) for v in values)

    def key(self, k) -> None:
        if not (isinstance(k, (str, bytes)) or (type(k) is int and -SAFE_INT < k < SAFE_INT)):
            self.fail(f"a dict key or set member of type {type(k).__name__} (only strings and small integers)")

    def new_container(self, kind, values):
        values = [self.place(v, kind is tuple) for v in values]
        if kind in (set, frozenset):
            for v in values:
                self.key(v)
        obj = kind(values)
        self.track(obj, 56)
        if kind is tuple and any(isinstance(v, (_DtypeStub, _Global)) for v in values):
            self.tokens.add(id(obj))
        self.grow(obj, values) if kind is not tuple and kind is not frozenset else self._immutable(obj, values)
        return obj

    def _immutable(self, obj, values):
        d = max((self.depth.get(id(v), 0) for v in values), default=-1) + 1
        if d > MAX_DEPTH:
            self.fail(f"containers nested more than {MAX_DEPTH} deep")
        self.depth[id(obj)] = d
        self.size[id(obj)] = 56 + sum(_SLOT + self._sizeof(v) for v in values)

    def pop_mark(self) -> list:
        if not self.marks:
            raise DataError(f"{self.path}: not a readable feature pickle (no MARK on the stack)")
        k = self.marks.pop()
        items, self.stack[k:] = self.stack[k:], []
        return items

    def pop(self):
        if not self.stack or (self.marks and len(self.stack) <= self.marks[-1]):
            raise DataError(f"{self.path}: not a readable feature pickle (stack underflow)")
        return self.stack.pop()

    def top(self):
        if not self.stack or (self.marks and len(self.stack) <= self.marks[-1]):
            raise DataError(f"{self.path}: not a readable feature pickle (stack underflow)")
        return self.stack[-1]

    # ---------------------------------------------------------------- arrays
    def dtype_of(self, d) -> np.dtype:
        if isinstance(d, _DtypeStub):
            return d.dtype
        if isinstance(d, str):
            return self.plain_dtype(d)
        self.fail(f"an array dtype of type {type(d).__name__}")

    def plain_dtype(self, code) -> np.dtype:
        if not isinstance(code, str) or len(code) > 4:
            self.fail(f"an array dtype {code!r} (only plain numeric dtypes are admitted)")
        order, bare = (code[0], code[1:]) if code[:1] in "<>|=" else ("=", code)
        bare = _NUMPY_CODES.get(bare, bare)
        if bare not in PLAIN_DTYPES:
            self.fail(f"an array dtype {code!r} (only plain numeric dtypes are admitted)")
        dt = np.dtype(bare)
        return dt.newbyteorder(order) if order in "<>" and dt.itemsize > 1 else dt

    def shape_of(self, shape) -> tuple[int, ...]:
        if not isinstance(shape, tuple) or len(shape) > MAX_DIMS or \
                not all(type(s) is int and 0 <= s < 2 ** 40 for s in shape):
            self.fail(f"an array shape {shape!r}")
        return shape

    def raw_of(self, raw) -> bytes:
        if isinstance(raw, str):                      # a Python 2 str, decoded as latin-1 by the format
            self.charge(len(raw), "an array buffer")
            try:
                return raw.encode("latin1")
            except UnicodeEncodeError:
                self.fail("an array buffer that is not a byte string")
        if not isinstance(raw, bytes):
            self.fail("an array whose data are not a plain byte buffer")
        return raw

    def make_array(self, shape, dtype, raw, fortran: bool) -> np.ndarray:
        shape, dtype, raw = self.shape_of(shape), self.dtype_of(dtype), self.raw_of(raw)
        size = math.prod(shape) * dtype.itemsize
        if len(raw) != size:
            self.fail(f"an array of shape {shape} whose buffer has {len(raw)} bytes instead of {size}")
        self.charge(size, f"an array of shape {shape}")
        flat = np.frombuffer(raw, dtype=dtype)        # read-only view of an immutable bytes object ...
        out = np.empty(shape, dtype=dtype.newbyteorder("="), order="C")   # ... copied into a fresh owned array
        out[...] = flat.reshape(shape, order="F" if fortran else "C")
        return out

    # ---------------------------------------------------------------- calls
    def find(self, module: str, name: str) -> _Global:
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        kind = _Global.ALLOWED.get((module, name))
        if kind is None:
            raise DataError(f"{self.path}: refusing to load: the pickle asks for {module}.{name}, which could run "
                            "code; only containers, numbers, strings and numpy arrays are admitted")
        return _Global(kind)

    def reduce(self, fn, args):
        if not isinstance(fn, _Global) or not isinstance(args, tuple):
            self.fail("a call of something that is not an admitted name")
        k = fn.kind
        if k == "reconstruct":
            if len(args) != 3 or not (isinstance(args[0], _Global) and args[0].kind == "ndarray") \
                    or args[1] != (0,) or args[2] not in (b"b", "b"):
                self.fail("an array reconstructed in an unexpected way")
            return _ArrayStub()
        if k == "dtype":
            if not 1 <= len(args) <= 3 or not all(type(a) in (bool, int) for a in args[1:]):
                self.fail("a dtype built in an unexpected way")
            return _DtypeStub(self.plain_dtype(args[0]))
        if k == "scalar":
            if len(args) != 2 or not isinstance(args[0], _DtypeStub) or not isinstance(args[1], (bytes, str)):
                self.fail("a numpy scalar built in an unexpected way")
            dt, raw = args[0].dtype, self.raw_of(args[1])
            if len(raw) != dt.itemsize:
                self.fail("a numpy scalar with a malformed buffer")
            return np.frombuffer(raw, dtype=dt)[0].item()
        if k == "frombuffer":
            if len(args) != 4 or args[3] not in ("C", "F"):
                self.fail("an array built from a buffer in an unexpected way")
            return self.make_array(args[2], args[1], args[0], args[3] == "F")
        if k == "encode":
            if len(args) not in (1, 2) or not isinstance(args[0], str) or args[1:] not in ((), ("latin1",),
                                                                                           ("latin-1",)):
                self.fail("a byte string built in an unexpected way")
            self.charge(len(args[0]) + 33, "a byte string")
            try:
                return args[0].encode("latin1")
            except UnicodeEncodeError:
                self.fail("a byte string that is not latin-1")
        if k == "bytes":
            if args:
                self.fail("a byte string built with arguments")
            return b""
        if k in ("set", "frozenset"):
            if len(args) > 1 or (args and not isinstance(args[0], (list, tuple))):
                self.fail(f"a {k} built from something other than a list")
            return self.new_container(set if k == "set" else frozenset, list(args[0]) if args else [])
        if k == "dict":
            if args:
                self.fail("an ordered dict built with arguments")
            return self.track({}, 56)
        self.fail(f"a call of {k}")

    def build(self, obj, state) -> None:
        if isinstance(obj, _ArrayStub):
            if obj.array is not None:
                self.fail("an array given its data twice (a second BUILD)")
            if not isinstance(state, tuple) or len(state) not in (4, 5):
                self.fail("an array state of an unknown form")
            version, shape, dtype, fortran, raw = state if len(state) == 5 else (1, *state)
            if type(fortran) not in (bool, int) or type(version) is not int:
                self.fail("an array state of an unknown form")
            obj.array = self.make_array(shape, dtype, raw, bool(fortran))
            self.keep.append(obj.array)
        elif isinstance(obj, _DtypeStub):
            if obj.built:
                self.fail("a dtype given its state twice")
            ok = (isinstance(state, tuple) and len(state) in (8, 9) and state[1] in ("<", ">", "|", "=")
                  and state[2] is None and state[3] is None and state[4] is None
                  and state[5] in (-1, obj.dtype.itemsize) and state[6] in (-1, obj.dtype.alignment))
            if not ok:
                self.fail("a dtype state with fields, sub-arrays or odd sizes")
            if state[1] in "<>" and obj.dtype.itemsize > 1:
                obj.dtype = obj.dtype.newbyteorder(state[1])
            obj.built = True
        else:
            self.fail(f"state set on a {type(obj).__name__} (only arrays and dtypes take a BUILD)")

    # ---------------------------------------------------------------- the machine
    def run(self):
        ops = 0
        while True:
            ops += 1
            if ops % 1024 == 0 and time.monotonic() > self.deadline:
                raise DataError(f"{self.path}: refusing to load: unpickling took more than {self.max_seconds:g} s")
            code = self.f.read(1)
            self.remaining -= 1
            if not code:
                raise DataError(f"{self.path}: not a readable feature pickle (it ends before STOP)")
            op = _OPS.get(code)
            if op is None:
                if code in _REFUSED:
                    raise DataError(f"{self.path}: refusing to load: the pickle uses {_REFUSED[code]}, which builds "
                                    "objects; only containers, numbers, strings and numpy arrays are admitted")
                raise DataError(f"{self.path}: not a readable feature pickle (byte {code!r} at offset "
                                f"{self.f.tell() - 1} is not a pickle opcode this decoder runs)")
            if op is _stop:
                if len(self.stack) != 1 or self.marks:
                    raise DataError(f"{self.path}: not a readable feature pickle (STOP with {len(self.stack)} "
                                    "values on the stack)")
                return self.place(self.stack.pop())
            op(self)


def _unpack(fmt: str):
    n = struct.calcsize(fmt)
    return lambda d: struct.unpack(fmt, d.read(n))[0]


_u1, _u2, _u4, _i4, _u8, _f8 = (_unpack(f) for f in ("<B", "<H", "<I", "<i", "<Q", ">d"))


def _push(fn):
    return lambda d: d.stack.append(fn(d))


def _int_line(d) -> int:
    line = d.readline()
    if line in (b"00", b"01"):
        return line == b"01"
    return _parse(d, line.rstrip(b"L"), int, 40)


def _parse(d, text: bytes, kind, limit: int):
    if len(text) > limit:
        d.fail(f"a number written with more than {limit} characters")
    try:
        return kind(text)
    except ValueError:
        raise DataError(f"{d.path}: not a readable feature pickle (a malformed number {text[:40]!r})") from None


def _long(d, n: int) -> int:
    if n > 16:
        d.fail(f"an integer of {n} bytes (at most 128 bits are admitted)")
    return int.from_bytes(d.read(n), "little", signed=True)


def _text(d, raw: bytes, codec: str) -> str:
    try:
        return raw.decode(codec, "surrogatepass") if codec == "utf-8" else raw.decode(codec)
    except UnicodeDecodeError:
        raise DataError(f"{d.path}: not a readable feature pickle (a string that is not valid {codec})") from None


def _quoted(d) -> str:
    line = d.readline()
    if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
        raise DataError(f"{d.path}: not a readable feature pickle (a malformed STRING field)")
    try:
        return codecs.escape_decode(line[1:-1])[0].decode("latin1")
    except ValueError:
        raise DataError(f"{d.path}: not a readable feature pickle (a malformed STRING field)") from None


def _mark(d):
    d.marks.append(len(d.stack))


def _pop_mark(d):
    d.pop_mark()


def _dup(d):
    d.stack.append(d.top())


def _tuple_of(n):
    def op(d):
        items = d.pop_mark() if n is None else [d.pop() for _ in range(n)][::-1]
        d.stack.append(d.new_container(tuple, items))
    return op


def _empty(kind):
    return lambda d: d.stack.append(d.track(kind(), 56))


def _list(d):
    d.stack.append(d.new_container(list, d.pop_mark()))


def _append(d):
    v = d.pop()
    target = d.top()
    if not isinstance(target, list):
        d.fail(f"an item appended to a {type(target).__name__}")
    v = d.place(v)
    d.grow(target, [v])
    target.append(v)


def _appends(d):
    items = d.pop_mark()
    target = d.top()
    if not isinstance(target, list):
        d.fail(f"items appended to a {type(target).__name__}")
    items = [d.place(v) for v in items]
    d.grow(target, items)
    target.extend(items)


def _dict(d):
    items = d.pop_mark()
    out = d.track({}, 56)
    _set_items(d, out, items)
    d.stack.append(out)


def _set_items(d, target, items):
    if not isinstance(target, dict) or len(items) % 2:
        d.fail("dict items given to something that is not a dict")
    keys, values = items[0::2], [d.place(v) for v in items[1::2]]
    for k in keys:
        d.key(k)
    d.grow(target, keys + values)
    target.update(zip(keys, values))


def _setitem(d):
    v, k = d.pop(), d.pop()
    _set_items(d, d.top(), [k, v])


def _setitems(d):
    items = d.pop_mark()
    _set_items(d, d.top(), items)


def _additems(d):
    items = d.pop_mark()
    target = d.top()
    if not isinstance(target, set):
        d.fail("set items added to something that is not a set")
    items = [d.place(v) for v in items]
    for k in items:
        d.key(k)
    d.grow(target, items)
    target.update(items)


def _frozenset(d):
    d.stack.append(d.new_container(frozenset, d.pop_mark()))


def _global(d):
    module, name = _text(d, d.readline(), "utf-8"), _text(d, d.readline(), "utf-8")
    d.stack.append(d.find(module, name))


def _stack_global(d):
    name, module = d.pop(), d.pop()
    if not isinstance(module, str) or not isinstance(name, str):
        d.fail("a global named by something other than strings")
    d.stack.append(d.find(module, name))


def _reduce(d):
    args, fn = d.pop(), d.pop()
    d.stack.append(d.reduce(fn, args))


def _build(d):
    state = d.pop()
    d.build(d.top(), state)


def _put(index_of):
    def op(d):
        i = index_of(d)
        d.charge(_SLOT * 2, "a memo entry")
        d.memo[i] = d.top()
    return op


def _memoize(d):
    d.charge(_SLOT * 2, "a memo entry")
    d.memo[len(d.memo)] = d.top()


def _get(index_of):
    def op(d):
        i = index_of(d)
        if i not in d.memo:
            raise DataError(f"{d.path}: not a readable feature pickle (memo entry {i} is not defined)")
        d.stack.append(d.memo[i])
    return op


def _proto(d):
    if _u1(d) > 5:
        raise DataError(f"{d.path}: not a readable feature pickle (unsupported protocol)")


def _frame(d):
    _u8(d)


def _stop(d):  # handled in the loop
    pass


def _bytes(n_of):
    return _push(lambda d: d.read(n_of(d)))


def _unicode(n_of):
    return _push(lambda d: _text(d, d.read(n_of(d)), "utf-8"))


def _latin1(n_of):
    return _push(lambda d: _text(d, d.read(n_of(d)), "latin1"))


_OPS = {
    b"\x80": _proto, b"\x95": _frame, b".": _stop,
    b"(": _mark, b"0": lambda d: d.pop(), b"1": _pop_mark, b"2": _dup,
    b"N": _push(lambda d: None), b"\x88": _push(lambda d: True), b"\x89": _push(lambda d: False),
    b"I": _push(_int_line), b"J": _push(_i4), b"K": _push(_u1), b"M": _push(_u2),
    b"L": _push(_int_line), b"\x8a": _push(lambda d: _long(d, _u1(d))), b"\x8b": _push(lambda d: _long(d, _i4(d))),
    b"F": _push(lambda d: _parse(d, d.readline(), float, 64)), b"G": _push(_f8),
    b"S": _push(_quoted), b"T": _latin1(_i4), b"U": _latin1(_u1),
    b"B": _bytes(_u4), b"C": _bytes(_u1), b"\x8e": _bytes(_u8), b"\x96": _bytes(_u8),
    b"V": _push(lambda d: _text(d, d.readline(), "raw-unicode-escape")),
    b"X": _unicode(_u4), b"\x8c": _unicode(_u1), b"\x8d": _unicode(_u8),
    b")": _push(lambda d: ()), b"t": _tuple_of(None), b"\x85": _tuple_of(1), b"\x86": _tuple_of(2),
    b"\x87": _tuple_of(3),
    b"]": _empty(list), b"l": _list, b"a": _append, b"e": _appends,
    b"}": _empty(dict), b"d": _dict, b"s": _setitem, b"u": _setitems,
    b"\x8f": _empty(set), b"\x90": _additems, b"\x91": _frozenset,
    b"c": _global, b"\x93": _stack_global, b"R": _reduce, b"b": _build,
    b"p": _put(lambda d: _parse(d, d.readline(), int, 20)), b"q": _put(_u1), b"r": _put(_u4), b"\x94": _memoize,
    b"g": _get(lambda d: _parse(d, d.readline(), int, 20)), b"h": _get(_u1), b"j": _get(_u4),
}

_REFUSED = {b"P": "PERSID", b"Q": "BINPERSID", b"i": "INST", b"o": "OBJ", b"\x81": "NEWOBJ", b"\x92": "NEWOBJ_EX",
            b"\x82": "EXT1", b"\x83": "EXT2", b"\x84": "EXT4", b"\x97": "NEXT_BUFFER", b"\x98": "READONLY_BUFFER"}


def safe_load(path: Path, max_bytes: float = 4e9, max_seconds: float = 300.0, deadline: float | None = None):
    """Decode a pickle of plain data under the limits above; anything else is a DataError.

    ``deadline`` (a ``time.monotonic()`` value) lets a caller charge its own post-processing
    to the same clock; by default it is ``max_seconds`` from now."""
    deadline = time.monotonic() + max_seconds if deadline is None else deadline
    try:
        with open(path, "rb") as raw:
            f = io.BufferedReader(raw, 1 << 16)
            return _Decoder(f, path, max_bytes, deadline, max_seconds).run()
    except DataError:
        raise
    except struct.error:
        raise DataError(f"{path}: not a readable feature pickle (truncated)") from None
    except RecursionError:
        raise DataError(f"{path}: refusing to load: the pickle nests too deep") from None
    except MemoryError:
        raise DataError(f"{path}: refusing to load: out of memory while unpickling") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
