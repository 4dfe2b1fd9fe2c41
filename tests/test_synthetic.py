import numpy as np
import pytest

from mmgain.data import make_overlap_dataset
from mmgain.theory import eta_finite, eta_star


def _ols_test_mse(ds, subset):
    tr, te = ds.train_test_indices()
    X = np.concatenate([ds.modalities[k] for k in subset], axis=1).astype(np.float64)
    A = np.c_[np.ones(len(X)), X]
    coef = np.linalg.lstsq(A[tr], ds.y[tr], rcond=None)[0]
    return float(np.mean((A[te] @ coef - ds.y[te]) ** 2))


@pytest.mark.parametrize("overlap", [0.0, 0.5, 0.8])
def test_generator_matches_its_closed_form_on_large_n(overlap):
    # dim 20, n 20000: OLS test MSE must match η_n(M) = η*(M)(1 + p/(n-p-1)) within sampling error.
    ds = make_overlap_dataset(overlap, seed=1, n_train=20000, n_test=20000, dim=20)
    for k, subset in enumerate([["m1"], ["m1", "m2"], ["m1", "m2", "m3"]], start=1):
        got = _ols_test_mse(ds, subset)
        expect = eta_finite(overlap, k, 20000, dim=20)
        assert eta_star(overlap, k, dim=20) == pytest.approx(20 * (1 - overlap) ** 2 * (4 - k))
        assert got == pytest.approx(expect, rel=0.04), (subset, got, expect)
    assert _ols_test_mse(ds, ["m1", "m2", "m3", "m4"]) < 1e-8


def test_generator_layout_and_pairing():
    a = make_overlap_dataset(0.5, seed=3, n_train=50, n_test=20)
    b = make_overlap_dataset(0.2, seed=3, n_train=50, n_test=20)
    assert a.names == ["m1", "m2", "m3", "m4"] and a.dims["m1"] == 100 and a.task == "regression"
    assert (a.split == "train").sum() == 50 and (a.split == "test").sum() == 20
    np.testing.assert_array_equal(a.modalities["m1"], b.modalities["m1"])   # same seed, paired draws
    with pytest.raises(ValueError, match="overlap"):
        make_overlap_dataset(1.5, seed=0)
