import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

# Every device this machine has: the batched program must agree with the reference on each.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def toy_modalities(n=60, dims=(3, 4, 2), seed=0):
    r = np.random.default_rng(seed)
    return {f"m{i + 1}": r.standard_normal((n, d)).astype(np.float32) for i, d in enumerate(dims)}
