import warnings

import numpy as np
import pytest

from conftest import SHARED_DATA
from iemocap_fixture import write_iemocap_fixture, write_unsafe_pickle
from mmgain.data import DataError
from mmgain.data.loaders import load_mfeat, load_path
from mmgain.data.sources import load_source
from mmgain.data.splits import make_split


def write_npz(path, n=80, seed=0, **extra):
    r = np.random.default_rng(seed)
    y = np.arange(n) % 3
    np.savez(path, audio=r.standard_normal((n, 5)) + y[:, None], video=r.standard_normal((n, 4)), y=y, **extra)


def test_npz_roundtrip_and_made_split(tmp_path):
    write_npz(tmp_path / "d.npz")
    ds = load_source(str(tmp_path / "d.npz"), 0, {}, {})
    assert ds.names == ["audio", "video"] and ds.n == 80 and ds.n_classes == 3
    assert ds.notes["split"]["method"] == "stratified" and ds.notes["split"]["n_test"] == 16   # 20 % of 80
    # stratified: every class on both sides in proportion (quotas 5.4, 5.4, 5.2; the largest remainder rounds up)
    assert [(ds.y[ds.split == "test"] == c).sum() for c in range(3)] == [6, 5, 5]
    again = load_source(str(tmp_path / "d.npz"), 3, {}, {})
    np.testing.assert_array_equal(ds.split, again.split)   # the split seed, not the run seed, fixes it


def test_npz_with_split_and_groups(tmp_path):
    split = np.where(np.arange(80) < 60, "train", "test")
    write_npz(tmp_path / "d.npz", split=split, group=np.arange(80) // 4)
    ds = load_path(tmp_path / "d.npz")
    assert (ds.split == "test").sum() == 20 and ds.groups is not None and "split" not in ds.notes


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "noy.npz", a=np.ones((3, 2)))
    with pytest.raises(DataError, match="no array named 'y'"):
        load_path(tmp_path / "noy.npz")
    write_npz(tmp_path / "bad.npz", split=np.array(["train"] * 80))
    with pytest.raises(DataError, match="empty test set"):
        load_path(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="no such file"):
        load_path(tmp_path / "missing.npz")


def write_folder(folder, n=30, fmt="csv"):
    folder.mkdir()
    r = np.random.default_rng(1)
    y = np.arange(n) % 2
    mods = {"text": r.standard_normal((n, 3)) + y[:, None], "audio": r.standard_normal((n, 2))}
    for name, x in mods.items():
        if fmt == "csv":
            np.savetxt(folder / f"{name}.csv", x, delimiter=",", header=",".join(f"f{i}" for i in range(x.shape[1])),
                       comments="")
        else:
            import pandas as pd
            pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).to_parquet(folder / f"{name}.parquet")
    (folder / "labels.csv").write_text("y,group\n" + "".join(f"{v},{i // 3}\n" for i, v in enumerate(y)))
    return mods, y


def test_csv_folder(tmp_path):
    mods, y = write_folder(tmp_path / "d")
    ds = load_source(str(tmp_path / "d"), 0, {}, {})
    assert ds.names == ["audio", "text"]
    np.testing.assert_allclose(ds.modalities["text"], mods["text"], rtol=1e-6)
    assert ds.notes["split"]["method"] == "grouped"
    train_groups, test_groups = set(ds.groups[ds.split == "train"]), set(ds.groups[ds.split == "test"])
    assert train_groups.isdisjoint(test_groups)


def test_parquet_folder(tmp_path):
    pytest.importorskip("pyarrow")
    mods, _ = write_folder(tmp_path / "d", fmt="parquet")
    ds = load_path(tmp_path / "d")
    np.testing.assert_allclose(ds.modalities["audio"], mods["audio"], rtol=1e-6)


@pytest.mark.parametrize("file, line, edit, message", [
    ("text.csv", 5, lambda row: row + ",1.0", r"text\.csv: line 6 has 4 fields, expected 3 \(ragged CSV\)"),
    ("audio.csv", 3, lambda row: "abc," + row.split(",", 1)[1], r"audio\.csv: line 4, column 1: 'abc' is not a number"),
    ("audio.csv", 2, lambda row: "nan," + row.split(",", 1)[1], r"modality 'audio': non-finite value nan in row 1"),
])
def test_bad_csv_cells_are_named(tmp_path, file, line, edit, message):
    write_folder(tmp_path / "d")
    path = tmp_path / "d" / file
    lines = path.read_text().splitlines()
    lines[line] = edit(lines[line])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        load_path(tmp_path / "d")


def test_label_file_of_another_length(tmp_path):
    write_folder(tmp_path / "d")
    lab = (tmp_path / "d" / "labels.csv").read_text().splitlines()
    (tmp_path / "d" / "labels.csv").write_text("\n".join(lab[:-2]) + "\n")
    with pytest.raises(DataError, match=r"30 rows, but labels\.csv has 28 labels"):
        load_path(tmp_path / "d")


def test_iemocap_fixture(tmp_path):
    info = write_iemocap_fixture(tmp_path / "IEMOCAP_features_raw.pkl")
    ds = load_path(tmp_path / "IEMOCAP_features_raw.pkl")
    assert ds.dims == {"text": 100, "audio": 100, "visual": 512}
    assert ds.n == info["n_utterances"] and list(ds.classes) == ["hap", "sad", "neu", "ang", "exc", "fru"]
    assert set(ds.groups[ds.split == "train"]) == info["train"] and set(ds.groups[ds.split == "test"]) == info["test"]
    first = sorted(info["train"])[0]
    np.testing.assert_array_equal(ds.y[: len(info["labels"][first])], info["labels"][first])


def test_iemocap_refuses_a_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "pwned"
    write_unsafe_pickle(tmp_path / "evil.pkl", marker)
    with pytest.raises(DataError, match=r"refusing to load: the pickle asks for posix\.system"):
        load_path(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_iemocap_rejects_wrong_layout(tmp_path):
    import pickle
    (tmp_path / "x.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(DataError, match="9-tuple"):
        load_path(tmp_path / "x.pkl")
    (tmp_path / "y.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a readable feature pickle"):
        load_path(tmp_path / "y.pkl")


def test_embedded_mfeat():
    ds = load_mfeat()
    assert ds.dims == {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
    assert ds.n == 2000 and ds.n_classes == 10 and np.all(np.bincount(ds.y) == 200)
    split = make_split(ds, seed=0)
    assert split.notes["split"]["n_test"] == 400
    assert np.all(np.bincount(split.y[split.split == "test"]) == 40)


@pytest.mark.skipif(not (SHARED_DATA / "mosi_bclstm").exists(), reason="shared MOSI data not present")
def test_mosi_bclstm():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_path(SHARED_DATA / "mosi_bclstm")
    assert ds.dims == {"text": 100, "audio": 73, "video": 100}
    assert (ds.split == "train").sum() == 1447 and (ds.split == "test").sum() == 752
    assert set(ds.groups[ds.split == "train"]).isdisjoint(set(ds.groups[ds.split == "test"]))
    assert len(set(ds.groups)) == 93 and ds.n_classes == 2
