"""Training samples and train/test splits, all keyed by explicit seeds."""
from __future__ import annotations

import numpy as np


def sample_size(ratio: float, n_train: int) -> int:
    """n = max(1, round(r·n_train)), the paper's sample-size sweep."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"sample-size ratio {ratio} is outside (0, 1]")
    return max(1, int(round(ratio * n_train)))


def nested_sample(n_train: int, ratio: float, seed: int) -> np.ndarray:
    """Rows of the training sample for (ratio, seed), sorted.

    One permutation per (seed, n_train) and a prefix of it per ratio, so for one
    seed a smaller sample is always a subset of a larger one.
    """
    perm = np.random.default_rng([int(seed), int(n_train), 11]).permutation(n_train)
    return np.sort(perm[:sample_size(ratio, n_train)])
