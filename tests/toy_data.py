"""Small data files shared by the tests."""
import numpy as np


def label_noise_npz(path, n=400, seed=0):
    """'label' carries y (3 classes); 'noise' is independent of everything."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    np.savez(path, label=rng.normal(size=(n, 6)) + 1.5 * np.eye(3)[y] @ rng.normal(size=(3, 6)),
             noise=rng.normal(size=(n, 6)), y=y)
    return path
