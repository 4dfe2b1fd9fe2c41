import numpy as np
import pytest

from conftest import toy_modalities
from mmgain.data import DataError, MultimodalDataset, select_subsets


def make(**kw):
    mods = kw.pop("modalities", toy_modalities(n=20))
    y = kw.pop("y", np.arange(20) % 3)
    return MultimodalDataset(mods, y, source=kw.pop("source", "toy.npz"), **kw)


def test_valid_dataset_is_normalized():
    ds = make(y=np.array(["a", "b"] * 10))
    assert ds.names == ["m1", "m2", "m3"] and ds.dims == {"m1": 3, "m2": 4, "m3": 2}
    assert ds.n_classes == 2 and list(ds.classes) == ["a", "b"] and ds.y.dtype == np.int64
    assert all(v.dtype == np.float32 for v in ds.modalities.values())


def _err(**kw) -> str:
    with pytest.raises(DataError) as e:
        make(**kw)
    return str(e.value)


def test_row_counts_differ():
    mods = toy_modalities(n=20)
    mods["m2"] = mods["m2"][:15]
    msg = _err(modalities=mods)
    assert "toy.npz" in msg and "m2" in msg and "15" in msg and "20" in msg


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_name_modality_and_row(value):
    mods = toy_modalities(n=20)
    mods["m3"][7, 1] = value
    msg = _err(modalities=mods)
    assert "'m3'" in msg and "row 7" in msg


def test_one_dimensional_and_empty_arrays():
    mods = toy_modalities(n=20)
    mods["m1"] = mods["m1"][:, 0]
    assert "2-D" in _err(modalities=mods) and "'m1'" in _err(modalities=mods)
    mods = toy_modalities(n=20)
    mods["m2"] = np.zeros((20, 0))
    assert "'m2' is empty" in _err(modalities=mods)


def test_non_numeric_data_names_the_row():
    mods = toy_modalities(n=20)
    bad = mods["m1"].astype(object)
    bad[4, 2] = "abc"
    mods["m1"] = bad
    msg = _err(modalities=mods)
    assert "'m1'" in msg and "non-numeric" in msg and "row 4" in msg


def test_target_of_wrong_length():
    assert "target has 19 rows" in _err(y=np.arange(19) % 2)


def test_fewer_than_two_classes():
    assert "at least two classes" in _err(y=np.zeros(20))


def test_unknown_modality_in_subset_request():
    ds = make()
    with pytest.raises(DataError, match="unknown modality 'm9'"):
        select_subsets("m1+m9", ds.names)


def test_split_checks():
    split = np.array(["train"] * 20)
    assert "empty test set" in _err(split=split)
    split = np.array(["train"] * 19 + ["valid"])
    assert "'valid' in row 19" in _err(split=split)
    y = np.array([0, 1] * 9 + [2, 2])
    split = np.array(["train"] * 18 + ["test"] * 2)
    assert "only in the test set" in _err(y=y, split=split)


def test_zero_variance_modality_warns():
    mods = toy_modalities(n=20)
    mods["m2"] = np.ones((20, 4))
    with pytest.warns(UserWarning, match="'m2' has zero variance"):
        make(modalities=mods)


def test_regression_target_and_bad_names():
    ds = make(task="regression", y=np.linspace(0, 1, 20))
    assert ds.task == "regression" and ds.n_outputs == 1
    assert "fractional" in _err(y=np.linspace(0, 1, 20))
    assert "without '+'" in _err(modalities={"a+b": np.ones((20, 2))})
