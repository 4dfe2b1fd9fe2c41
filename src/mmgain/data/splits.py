"""Training samples and train/test splits, all keyed by explicit seeds."""
from __future__ import annotations

import numpy as np

from ..errors import SpecError


def sample_size(ratio: float, n_train: int) -> int:
    """n = max(1, round(r·n_train)), the paper's sample-size sweep."""
    if not 0.0 < ratio <= 1.0:
        raise SpecError(f"sample-size ratio {ratio} is outside (0, 1]")
    return max(1, int(round(ratio * n_train)))


def nested_sample(n_train: int, ratio: float, seed: int) -> np.ndarray:
    """Rows of the training sample for (ratio, seed), sorted.

    One permutation per (seed, n_train) and a prefix of it per ratio, so for one
    seed a smaller sample is always a subset of a larger one.
    """
    perm = np.random.default_rng([int(seed), int(n_train), 11]).permutation(n_train)
    return np.sort(perm[:sample_size(ratio, n_train)])


def make_split(ds, seed: int = 0, test_fraction: float = 0.2):
    """A train/test split for data that came without one, recorded in ``ds.notes["split"]``.

    Grouped when the data have groups (a group never straddles the split),
    otherwise stratified by class (classification) or plain random (regression).
    """
    from dataclasses import replace

    if not 0.0 < test_fraction < 1.0:
        raise SpecError(f"test fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng([int(seed), 5])
    test = np.zeros(ds.n, dtype=bool)
    if ds.groups is not None:
        method = "grouped"
        uniq, inverse = np.unique(ds.groups, return_inverse=True)
        order = rng.permutation(len(uniq))
        sizes = np.bincount(inverse)[order]
        take = order[:max(1, int(np.searchsorted(np.cumsum(sizes), test_fraction * ds.n)) + 1)]
        take = take[:len(uniq) - 1] if len(take) == len(uniq) else take
        test = np.isin(inverse, take)
    elif ds.task == "classification":
        method = "stratified"
        test[_stratified_test_rows(ds.y, test_fraction, rng)] = True
    else:
        method = "random"
        test[rng.permutation(ds.n)[:max(1, int(round(test_fraction * ds.n)))]] = True
    split = np.where(test, "test", "train")
    note = {"method": method, "seed": int(seed), "test_fraction": test_fraction,
            "n_train": int((~test).sum()), "n_test": int(test.sum())}
    return replace(ds, split=split, notes={**ds.notes, "split": note})


def _stratified_test_rows(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Test rows drawn class by class so that the test share is ``fraction`` of all rows
    (largest remainders decide which classes get the rounding), while every class keeps at
    least one training row.  Rounding each class on its own would give a class of 2 rows a
    50 % test share, and many such classes a test set far larger than asked for."""
    classes, counts = np.unique(y, return_counts=True)
    quota = fraction * counts
    k = np.minimum(np.floor(quota).astype(int), counts - 1)
    room = counts - 1 - k
    short = int(round(fraction * len(y))) - int(k.sum())
    for c in np.argsort(-(quota - np.floor(quota)), kind="stable"):
        if short <= 0:
            break
        if room[c] > 0:
            k[c] += 1
            room[c] -= 1
            short -= 1
    rows = [rng.permutation(np.flatnonzero(y == c))[:k[i]] for i, c in enumerate(classes)]
    return np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
