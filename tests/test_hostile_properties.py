"""Property-based tests: generated hostile inputs end in a clear error or a correct result.

Hypothesis generates pickles (opcode soup and mutations of the real format), npz files and
CSV folders, edited summary/run.json files and edited store manifests and chunks.  Each
case must end in a DataError/OutputError (the message names the file) or a valid object:
never another exception, a crash, a hang, or a run folder left 'running'.

CI runs the counts below (1,240 cases in all); ``MMGAIN_HYPOTHESIS_SCALE=20``
multiplies them for a longer campaign (docs/untrusted-input.md records its count).
"""
import io
import json
import hashlib
import os
import shutil
import string
import zipfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from iemocap_fixture import write_iemocap_fixture  # noqa: E402
from mmgain.cli import main  # noqa: E402
from mmgain.data.loaders import load_path  # noqa: E402
from mmgain.data.safe_pickle import safe_load  # noqa: E402
from mmgain.errors import DataError, UserError  # noqa: E402
from mmgain.run.store import ResultStore  # noqa: E402
from mmgain.report.html import build_report  # noqa: E402
from toy_data import label_noise_npz  # noqa: E402

SCALE = int(os.environ.get("MMGAIN_HYPOTHESIS_SCALE", "1"))


def cases(n):
    return settings(max_examples=n * SCALE, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


# ------------------------------------------------------------------ pickles
_OPS = [b"(", b")", b"]", b"}", b"\x8f", b"N", b"\x88", b"K\x05", b"J\xff\xff\xff\x7f", b"G" + b"\x3f\xf0" + b"\0" * 6,
        b"U\x01b", b"C\x08" + b"\0" * 8, b"T\x10\x00\x00\x00" + b"a" * 16, b"X\x02\x00\x00\x00hi", b"\x8c\x01x",
        b"t", b"\x85", b"\x86", b"\x87", b"l", b"a", b"e", b"d", b"s", b"u", b"\x90", b"\x91", b"0", b"1", b"2",
        b"q\x00", b"q\x01", b"h\x00", b"h\x01", b"\x94", b"R", b"b", b"\x8a\x02\xff\x7f", b"\x8b\xff\xff\xff\x7f",
        b"cnumpy\nndarray\n", b"cnumpy\ndtype\n", b"cnumpy.core.multiarray\n_reconstruct\n",
        b"cnumpy.core.multiarray\nscalar\n", b"c_codecs\nencode\n", b"c__builtin__\nset\n", b"cos\nsystem\n",
        b"c__builtin__\neval\n", b"\x81", b"o", b"i", b"P", b"\x97", b"\x93", b"K\x00\x85", b"U\x02f8K\x00K\x01\x87R",
        b"T\xff\xff\xff\x7f", b"B\x00\x00\x00\x10", b"\x8e" + b"\xff" * 8, b"I99999999999999999999999\n", b"F1e999\n"]


@cases(400)
@given(st.lists(st.sampled_from(_OPS), max_size=60), st.booleans())
def test_pickle_opcode_soup(tmp_path_factory, ops, proto):
    path = tmp_path_factory.getbasetemp() / "soup.pkl"
    path.write_bytes((b"\x80\x02" if proto else b"") + b"".join(ops) + b".")
    try:
        safe_load(path, max_bytes=5e7, max_seconds=5)
    except DataError as exc:
        assert str(path) in str(exc)


@pytest.fixture(scope="module")
def fixture_pickle(tmp_path_factory):
    p = tmp_path_factory.mktemp("pk") / "src.pkl"
    write_iemocap_fixture(p, n_train=2, n_test=1)
    return p.read_bytes()


@cases(200)
@given(st.data())
def test_mutated_feature_pickles(tmp_path_factory, fixture_pickle, data):
    b = bytearray(fixture_pickle)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(b) - 1))
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        if kind == "flip":
            b[i] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del b[i: i + data.draw(st.integers(1, 64))]
        elif kind == "insert":
            b[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif len(b) > 2:
            j = data.draw(st.integers(i, min(len(b), i + 200)))
            b[i:i] = b[i:j]
    path = tmp_path_factory.getbasetemp() / "mut.pkl"
    path.write_bytes(bytes(b))
    try:
        ds = load_path(path, max_load_gb=0.2)
        assert ds.n > 0
    except DataError as exc:
        assert str(path) in str(exc)


# ------------------------------------------------------------------ data files
_cells = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 20, 10 ** 20),
                   st.sampled_from(["", "NA", "x", "1e39", "-0", "nan", "1,2", "\"", "é", "\x00"]))


@cases(200)
@given(st.data())
def test_hostile_npz(tmp_path_factory, data):
    n = data.draw(st.integers(0, 12))
    arrays = {}
    for name in data.draw(st.lists(st.sampled_from(["a", "b", "y", "split", "group", "c"]), min_size=1, max_size=5,
                                   unique=True)):
        kind = data.draw(st.sampled_from(["f8", "f4", "i8", "c16", "M8[s]", "U3", "O", "b1", "f2"]))
        shape = data.draw(st.sampled_from([(n,), (n, 2), (n, 0), (0, 3), (n, 2, 2), (max(n - 1, 0), 2)]))
        if kind == "O":
            arr = np.array([data.draw(_cells) for _ in range(int(np.prod(shape)))], dtype=object).reshape(shape)
        elif kind == "U3":
            arr = np.array([data.draw(st.sampled_from(["train", "test", "x", ""])) for _ in
                            range(int(np.prod(shape)))], dtype="U5").reshape(shape)
        else:
            vals = data.draw(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32),
                                      min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
            with np.errstate(all="ignore"):
                arr = np.nan_to_num(np.array(vals), nan=0, posinf=1e30, neginf=-1e30).astype(
                    "M8[s]" if kind.startswith("M") else "f8").astype(kind).reshape(shape) if kind != "c16" \
                    else (np.array(vals) + 1j).reshape(shape)
        arrays[name] = arr
    path = tmp_path_factory.getbasetemp() / "d.npz"
    np.savez(path, **arrays)
    task = data.draw(st.sampled_from(["classification", "regression"]))
    try:
        ds = load_path(path, task=task)
        assert ds.n > 0 and all(np.isfinite(x).all() for x in ds.modalities.values())
    except DataError as exc:
        assert str(path) in str(exc) or "modality" in str(exc) or "target" in str(exc) or "label" in str(exc)


@cases(200)
@given(st.data())
def test_hostile_csv_folders(tmp_path_factory, data):
    d = tmp_path_factory.getbasetemp() / "csvdir"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    n = data.draw(st.integers(0, 8))
    text = st.text(alphabet=string.printable + "é\u2028", max_size=6)

    def write(name, header, rows):
        lines = [",".join(header)] if header is not None else []
        lines += [",".join(str(c) for c in r) for r in rows]
        raw = "\n".join(lines).encode("utf-8")
        if data.draw(st.booleans()) and data.draw(st.booleans()):
            raw = raw.replace(b"1", b"\xff", 1)            # not UTF-8
        (d / name).write_bytes(raw)

    for m in data.draw(st.lists(st.sampled_from(["a", "b"]), min_size=0, max_size=2, unique=True)):
        width = data.draw(st.integers(1, 3))
        header = data.draw(st.one_of(st.none(), st.just([f"f{i}" for i in range(width)]),
                                     st.lists(text, min_size=1, max_size=3)))
        rows = [[data.draw(st.one_of(_cells, text)) for _ in range(data.draw(st.sampled_from([width, width, 1])))]
                for _ in range(n + data.draw(st.integers(-1, 1)))]
        write(f"{m}.csv", header, rows)
    if data.draw(st.booleans()) or n:
        cols = data.draw(st.sampled_from([["y"], ["y", "split"], ["y", "group"], ["label"]]))
        rows = [[data.draw(st.one_of(st.integers(0, 2), st.sampled_from(["", "NA", "cat", "1.5"]))) if c != "split"
                 else data.draw(st.sampled_from(["train", "test", "x"])) for c in cols]
                for _ in range(n + data.draw(st.integers(-1, 1)))]
        write("labels.csv", cols, rows)
    try:
        ds = load_path(d)
        assert ds.n > 0
    except DataError as exc:
        assert str(d) in str(exc) or "modality" in str(exc) or "label" in str(exc) or "target" in str(exc)


# ------------------------------------------------------------------ run folders
@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    data = label_noise_npz(d / "a.npz")
    assert main(["run", "--data", str(data), "--out", str(d / "run"), "--cv", "0", "--ratios", "1", "--seeds", "2",
                 "--epochs", "3", "--quiet", "--memory-gb", "0.000001"]) == 0
    return d / "run"


_json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30),
                                      st.floats(allow_nan=False), st.text(max_size=5)),
                            lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                    st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                            max_leaves=6)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:4]):
            yield from _paths(v, prefix + (i,))


def _edit(obj, data):
    """Replace or delete a few nodes of a JSON document."""
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(obj) if p]
        if not paths:
            return data.draw(_json_values)
        path = data.draw(st.sampled_from(paths))
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(_json_values)
    return obj


@cases(120)
@given(st.data(), st.sampled_from(["summary.json", "run.json"]))
def test_edited_summaries_give_a_report_or_an_error_naming_the_file(tmp_path_factory, run_folder, data, name):
    folder = tmp_path_factory.getbasetemp() / "edited"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(run_folder, folder)
    doc = _edit(json.loads((folder / name).read_text()), data)
    (folder / name).write_text(json.dumps(doc))
    try:
        build_report(folder)
    except UserError as exc:
        assert str(folder) in str(exc)


@cases(120)
@given(st.data())
def test_edited_stores_are_read_or_refused_by_name(tmp_path_factory, run_folder, data):
    folder = tmp_path_factory.getbasetemp() / "store"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(run_folder, folder)
    target = data.draw(st.sampled_from(["manifest", "chunk", "chunk-zip"]))
    store = ResultStore(folder)
    if target == "manifest":
        store.manifest_path.write_text(json.dumps(_edit(json.loads(store.manifest_path.read_text()), data)))
    else:
        chunk = folder / "store" / "chunk-0000.npz"
        raw = bytearray(chunk.read_bytes())
        if target == "chunk":
            for _ in range(data.draw(st.integers(1, 4))):
                raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        else:                                              # a valid zip of hostile arrays, hash updated
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                for i in range(data.draw(st.integers(0, 3))):
                    hdr = io.BytesIO()
                    shape = tuple(data.draw(st.lists(st.integers(0, 10 ** 12), max_size=3)))
                    np.lib.format.write_array_header_1_0(hdr, {"descr": data.draw(st.sampled_from(["<f8", "|O", "<U3"])),
                                                               "fortran_order": False, "shape": shape})
                    z.writestr(data.draw(st.sampled_from(["test/acc.npy", "x.npy", "__run__.npy"])),
                               hdr.getvalue() + data.draw(st.binary(max_size=64)))
            raw = bytearray(buf.getvalue())
            m = json.loads(store.manifest_path.read_text())
            m["hashes"]["0"] = hashlib.sha256(bytes(raw)).hexdigest()
            store.manifest_path.write_text(json.dumps(m))
        chunk.write_bytes(bytes(raw))
    try:
        store.manifest()
        store.load()
    except UserError as exc:
        assert str(folder) in str(exc)

