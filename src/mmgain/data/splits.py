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


def cv_folds(ds, k: int, seed: int = 0) -> np.ndarray:
    """A fold id 0..k−1 per row for k-fold cross-fitting: grouped when the data have groups
    (a group's rows share a fold; groups placed largest first into the emptiest fold),
    stratified by class for classification, else random."""
    if k < 2:
        raise SpecError(f"--cv needs at least 2 folds, got {k}")
    rng = np.random.default_rng([int(seed), 17])
    folds = np.zeros(ds.n, dtype=np.int64)
    if ds.groups is not None:
        uniq, inverse = np.unique(ds.groups, return_inverse=True)
        if len(uniq) < k:
            raise SpecError(f"{ds.source or ds.name}: --cv {k} needs at least {k} groups; the data have {len(uniq)}")
        sizes = np.bincount(inverse)
        order = rng.permutation(len(uniq))
        order = order[np.argsort(-sizes[order], kind="stable")]
        load = np.zeros(k, dtype=np.int64)
        where = np.zeros(len(uniq), dtype=np.int64)
        for g in order:
            f = int(np.argmin(load))
            where[g], load[f] = f, load[f] + sizes[g]
        return where[inverse]
    if ds.task == "classification":
        counts = np.bincount(ds.y)
        if counts.min() < k:
            rare = [str(ds.classes[c]) for c in np.flatnonzero(counts < k)]
            raise SpecError(f"{ds.source or ds.name}: --cv {k} puts every class in every fold's training part "
                            f"and needs ≥ {k} rows per class; class(es) {rare[:5]} have fewer. Use fewer folds "
                            "or --cv 0 (one fixed split)")
        offset = 0
        for c in range(len(counts)):
            idx = rng.permutation(np.flatnonzero(ds.y == c))
            folds[idx] = (np.arange(len(idx)) + offset) % k
            offset += len(idx)
        return folds
    folds[rng.permutation(ds.n)] = np.arange(ds.n) % k
    return folds


def fold_rows(ds, folds: np.ndarray, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per fold: (training rows, test rows), of the same sizes in every fold so that the folds
    train and score as one batched program.  The test rows are the fold's rows (the smallest
    fold's count of them; a larger fold leaves its surplus rows out of that fold altogether,
    so a group never straddles its split); the training rows are the other folds' rows,
    thinned at random to the smallest such count.  Test rows come ordered by class so that
    the probe's stratified inner folds suit every fold alike."""
    k = int(folds.max()) + 1
    rng = np.random.default_rng([int(seed), 19])
    sizes = np.bincount(folds, minlength=k)
    m, t = int(sizes.min()), int(ds.n - sizes.max())
    out = []
    for f in range(k):
        test = np.sort(rng.permutation(np.flatnonzero(folds == f))[:m])
        if ds.task == "classification":
            test = test[np.argsort(ds.y[test], kind="stable")]
        train = np.sort(rng.permutation(np.flatnonzero(folds != f))[:t])
        out.append((train, test))
    return out
