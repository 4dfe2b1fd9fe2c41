"""The IEMOCAP pickle loader against hostile files: crafted bombs and a fuzzer.

Every case must end in a clear DataError or a valid dataset, within a time and
memory budget.  The fuzzer runs in a subprocess whose address space is capped, so
a case that allocates gigabytes or crashes the interpreter fails the test instead
of the machine.
"""
import json
import struct
import time
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from iemocap_fixture import write_iemocap_fixture
from mmgain.data import DataError
from mmgain.data.loaders import load_iemocap

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct


class _Reduce:
    def __init__(self, *reduced):
        self.reduced = reduced

    def __reduce__(self):
        return self.reduced


def _iemocap_tuple(text_rows, n=3):
    """A 9-tuple with one train and one test dialogue whose text rows are ``text_rows``."""
    lab = {"a": [0] * n, "b": [1] * n}
    row = lambda d: [np.zeros(d, np.float32) for _ in range(n)]  # noqa: E731
    return ({}, {}, lab, {"a": text_rows, "b": row(100)}, {"a": row(100), "b": row(100)},
            {"a": row(512), "b": row(512)}, {}, {"a"}, {"b"})


def _dump(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


CRAFTED = {
    "huge shape in the reconstructor": lambda: _Reduce(_reconstruct, (np.ndarray, (10 ** 9,), b"b")),
    "buffer shorter than the shape": lambda: _Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                                                     (1, (10 ** 6, 10 ** 3), np.dtype("f8"), False, b"")),
    "structured dtype": lambda: np.zeros(2, dtype=[("a", "f8")]),
    "dtype field outside the item": lambda: _Reduce(np.dtype, ("f8", False, True),
                                                    (3, "<", None, ("a",), {"a": (np.dtype("f8"), 10 ** 6)}, 8, 1, 0)),
    "object array": lambda: np.array([1, "x"], dtype=object),
    "negative buffer offset": lambda: _Reduce(np.ndarray, ((2,), np.dtype("f8"), b"x" * 16, -8)),
    "bytes of a huge length": lambda: _Reduce(bytes, (10 ** 10,)),
    "colliding dict keys": lambda: {k * (2 ** 61 - 1): 0 for k in range(1, 50)},
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_pickles_are_refused_before_they_allocate(tmp_path, case):
    path = _dump(tmp_path / "x.pkl", _iemocap_tuple(CRAFTED[case]()))
    with pytest.raises(DataError, match="refusing to load|not a readable|expected"):
        load_iemocap(path)


def test_a_row_repeated_by_reference_is_charged_at_its_real_size(tmp_path):
    """25 million features from a 1 KB file: one row object referenced 5000 times."""
    row = np.zeros(5000, np.float32).tolist()
    path = _dump(tmp_path / "x.pkl", _iemocap_tuple([row] * 5000))     # its size is checked before anything else
    assert path.stat().st_size < 100_000
    with pytest.raises(DataError, match="memory cap"):
        load_iemocap(path, max_load_gb=0.1)


def test_deep_nesting_and_slow_files_are_answered(tmp_path):
    deep = tmp_path / "deep.pkl"
    deep.write_bytes(b"\x80\x02" + b"]" * 20000 + b"a" * 19999 + b".")
    with pytest.raises(DataError, match="nested more than"):
        load_iemocap(deep)
    write_iemocap_fixture(tmp_path / "ok.pkl", n_train=40, n_test=10)
    with pytest.raises(DataError, match="took more than"):
        load_iemocap(tmp_path / "ok.pkl", max_seconds=0.0)


def test_wrong_inner_types_and_shared_dialogues(tmp_path):
    with pytest.raises(DataError, match="trainVid must be a collection"):
        load_iemocap(_dump(tmp_path / "a.pkl", _iemocap_tuple([np.zeros(100)] * 3)[:7] + (5, {"b"})))
    shared = list(_iemocap_tuple([np.zeros(100, np.float32)] * 3))
    shared[8] = {"a", "b"}
    with pytest.raises(DataError, match="in both trainVid and testVid"):
        load_iemocap(_dump(tmp_path / "b.pkl", tuple(shared)))


FUZZ = textwrap.dedent("""
    import json, random, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2 ** 30, 3 * 2 ** 30))
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from mmgain.data import DataError
    from mmgain.data.loaders import load_iemocap
    src = Path({src!r}).read_bytes()
    rng = random.Random(0)
    out, path = {{"ok": 0, "refused": 0, "other": [], "slowest": 0.0}}, Path({tmp!r}) / "case.pkl"
    for i in range({n}):
        b = bytearray(src)
        kind = i % 4
        if kind == 0:
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif kind == 1:
            b = b[: rng.randrange(len(b))]
        elif kind == 2:
            j = rng.randrange(len(b)); b[j:j] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            j, k = sorted(rng.randrange(len(b)) for _ in range(2)); b[j:j] = b[j:k]
        path.write_bytes(bytes(b))
        t = time.monotonic()
        try:
            load_iemocap(path, max_load_gb=0.5, max_seconds=5)
            out["ok"] += 1
        except DataError:
            out["refused"] += 1
        except BaseException as exc:
            out["other"].append(f"case {{i}} (kind {{kind}}): {{type(exc).__name__}}: {{str(exc)[:200]}}")
        out["slowest"] = max(out["slowest"], time.monotonic() - t)
    print(json.dumps(out))
""")


def test_fuzzed_pickles_end_in_a_clear_error_or_a_dataset(tmp_path):
    src = tmp_path / "src.pkl"
    write_iemocap_fixture(src, n_train=3, n_test=2)
    script = FUZZ.format(tests=str(Path(__file__).parent), src=str(src), tmp=str(tmp_path), n=300)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]           # no crash, no memory blow-up
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["other"] == [] and out["ok"] + out["refused"] == 300
    assert out["refused"] > 100 and out["slowest"] < 10


# ------------------------------------------------------------ the routes of the hostile-input campaign
def _array_ops(values, py2: bool = True, dtype: bytes = b"<f8") -> bytes:
    """Protocol-2 opcodes that build a 1-D float64 array as numpy writes it; ``py2`` sends the
    buffer as a Python 2 ``str`` (BINSTRING, read back as latin-1), as the real IEMOCAP file does."""
    raw = np.asarray(values, dtype=np.dtype(dtype.decode())).tobytes()
    n = len(values)
    buf = (b"T" + len(raw).to_bytes(4, "little") + raw) if py2 else (b"C" + bytes([len(raw)]) + raw)
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
            + b"(K\x01K" + bytes([n]) + b"\x85cnumpy\ndtype\nU\x02" + dtype[1:] + b"K\x00K\x01\x87R"
            + b"(K\x03U\x01" + dtype[:1] + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + buf + b"tb")


def test_the_decoder_builds_arrays_itself_in_every_layout(tmp_path):
    from mmgain.data.safe_pickle import safe_load
    cases = {"protocol 2": np.arange(6.0).reshape(2, 3), "protocol 5": np.arange(6.0).reshape(2, 3),
             "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "big-endian": np.arange(4, dtype=">i4"),
             "int16 + bool": [np.arange(3, dtype=np.int16), np.array([True, False])], "scalar": np.float32(2.5)}
    for name, obj in cases.items():
        path = tmp_path / "x.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=5 if name == "protocol 5" else 2))
        got = safe_load(path)
        for a, b in zip(obj if isinstance(obj, list) else [obj], got if isinstance(got, list) else [got]):
            assert np.array_equal(np.asarray(a), np.asarray(b)), name
            if isinstance(b, np.ndarray):
                assert b.flags.owndata and b.flags.writeable and b.dtype.isnative, name
    path = tmp_path / "py2.pkl"
    path.write_bytes(b"\x80\x02" + _array_ops([1.5, -2.0]) + b".")         # a Python 2 str buffer
    assert np.array_equal(safe_load(path), [1.5, -2.0])


def test_a_second_build_of_an_array_is_refused(tmp_path):
    """The use-after-free route: numpy's __setstate__ on a built array frees the buffer that row
    views still point into. The decoder never calls it, and refuses the second BUILD itself."""
    from mmgain.data.safe_pickle import safe_load
    again = _array_ops([1.0, 2.0])
    state = again[again.index(b"(K\x01"):-1]                  # the state tuple, without its BUILD
    path = tmp_path / "x.pkl"
    path.write_bytes(b"\x80\x02" + again + state + b"b.")
    with pytest.raises(DataError, match="given its data twice"):
        safe_load(path)
    path.write_bytes(b"\x80\x02c__builtin__\nlist\n(" + again + b"tR.")  # list(a): row views of a
    with pytest.raises(DataError, match="asks for builtins.list"):
        safe_load(path)


def test_a_finished_container_cannot_change_or_hold_itself(tmp_path):
    from mmgain.data.safe_pickle import safe_load
    path = tmp_path / "x.pkl"
    path.write_bytes(b"\x80\x02]q\x00(]q\x01h\x01e" + b"h\x01K\x05a" + b".")    # append to a placed list
    with pytest.raises(DataError, match="changed after it was finished"):
        safe_load(path)
    path.write_bytes(b"\x80\x02]q\x00h\x00a.")                                      # a list holding itself
    with pytest.raises(DataError, match="changed after it was finished"):
        safe_load(path)
    path.write_bytes(b"\x80\x02cnumpy\ndtype\nU\x02f8K\x00K\x01\x87Rq\x00]h\x00a.")  # a name among the data
    with pytest.raises(DataError, match="class, function or dtype reference"):
        safe_load(path)


@pytest.mark.parametrize("route", ["codecs.encode", "str", "int"])
def test_resource_bombs_through_callables_are_charged_or_refused(tmp_path, route):
    """~1 MB files that used to allocate 8–10 GB (or spin for minutes) through admitted callables."""
    from mmgain.data.safe_pickle import safe_load
    big = b"X\x00\x00\x10\x00" + b"a" * (1 << 20) + b"q\x00"          # a 1 MB string, memoized
    if route == "codecs.encode":
        body = b"c_codecs\nencode\nq\x01" + b"(" + b"h\x01h\x00U\x06latin1\x86R" * 10000 + b"l"
    elif route == "str":
        body = b"c__builtin__\nstr\n"
    else:
        body = b"c__builtin__\nint\n"
    path = tmp_path / "x.pkl"
    path.write_bytes(b"\x80\x02" + big + b"0" + body + b".")
    t = time.monotonic()
    with pytest.raises(DataError, match="memory cap|asks for builtins"):
        safe_load(path, max_bytes=1e9)
    assert time.monotonic() - t < 10


def test_shared_sub_lists_are_charged_as_expanded_and_timed_as_a_whole(tmp_path):
    """A 10 KB file of lists that share sub-lists: 10⁶ leaves once expanded."""
    from mmgain.data.safe_pickle import safe_load
    leaf = b"]q\x00(" + b"G" + struct.pack(">d", 1.0) + b"\x94" + b"h\x01" * 999 + b"e"
    mid = b"]q\x02(" + b"h\x00" * 1000 + b"e"
    path = tmp_path / "x.pkl"
    path.write_bytes(b"\x80\x02" + leaf + b"0" + mid + b".")
    assert path.stat().st_size < 20_000
    with pytest.raises(DataError, match="memory cap"):
        safe_load(path, max_bytes=5e6)                    # 10⁶ references × 8 bytes are charged
    assert len(safe_load(path, max_bytes=1e9)) == 1000


def test_numpy_reconstruction_is_never_called_with_file_state(tmp_path, monkeypatch):
    """Poison every numpy reconstruction entry point and Python's unpickler, then load the fixture;
    the positive control shows the poison would be noticed by an ordinary unpickler."""
    import numpy
    path = tmp_path / "ok.pkl"
    facts = write_iemocap_fixture(path, n_train=3, n_test=2)
    control = pickle.dumps(numpy.zeros(3), protocol=2)
    calls = []

    def poison(name):
        def hit(*a, **k):
            calls.append(name)
            raise AssertionError(f"{name} called")
        return hit
    mods = [m for m in ("numpy._core.multiarray", "numpy.core.multiarray") if m in sys.modules]
    for m in mods:
        monkeypatch.setattr(sys.modules[m], "_reconstruct", poison("_reconstruct"), raising=False)
    for m in ("numpy._core.numeric", "numpy.core.numeric"):
        if m in sys.modules:
            monkeypatch.setattr(sys.modules[m], "_frombuffer", poison("_frombuffer"), raising=False)
    monkeypatch.setattr(pickle, "Unpickler", poison("Unpickler"))
    monkeypatch.setattr(pickle, "_Unpickler", poison("_Unpickler"))
    seen = []

    def profile(frame, event, arg):                      # ndarray.__setstate__ is C: watch C calls
        if event == "c_call" and getattr(arg, "__name__", "") in ("__setstate__", "__reduce__", "_reconstruct"):
            seen.append(arg.__name__)
    sys.setprofile(profile)
    try:
        ds = load_iemocap(path)
    finally:
        sys.setprofile(None)
    assert calls == [] and seen == [] and len(ds.y) == facts["n_utterances"]
    with pytest.raises(AssertionError):                  # positive controls: an ordinary unpickler is caught ...
        pickle.loads(control)
    a = numpy.zeros(2)
    sys.setprofile(profile)
    try:
        a.__setstate__(a.__reduce__()[2])                # ... and so is a call of __setstate__ from Python
    finally:
        sys.setprofile(None)
    assert calls == ["_reconstruct"] and seen == ["__reduce__", "__setstate__"]
