"""The IEMOCAP pickle loader against hostile files: crafted bombs and a fuzzer.

Every case must end in a clear DataError or a valid dataset, within a time and
memory budget.  The fuzzer runs in a subprocess whose address space is capped, so
a case that allocates gigabytes or crashes the interpreter fails the test instead
of the machine.
"""
import json
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
