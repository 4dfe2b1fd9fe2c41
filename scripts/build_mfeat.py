"""Rebuild the embedded mfeat.npz from ../shared/data/mfeat (UCI Multiple Features).

    python scripts/build_mfeat.py [SOURCE_DIR]

Rows are kept in the source order (label order); features as float32.
"""
import sys
from pathlib import Path

import numpy as np

VIEWS = ("fou", "fac", "kar", "pix", "zer", "mor")
src = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/mfeat")
out = Path(__file__).resolve().parents[1] / "src/mmgain/datasets/mfeat.npz"
arrays, y = {}, None
for v in VIEWS:
    X = np.loadtxt(src / f"mfeat-{v}.csv", delimiter=",", skiprows=1)
    feats, labels = X[:, :-1], X[:, -1].astype(np.int64)
    if y is not None and not np.array_equal(y, labels):
        sys.exit(f"mfeat-{v}.csv: labels do not line up with the other views")
    arrays[v], y = feats.astype(np.float32), labels
np.savez_compressed(out, y=y, **arrays)
print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): " + ", ".join(f"{k} {a.shape}" for k, a in arrays.items()))
