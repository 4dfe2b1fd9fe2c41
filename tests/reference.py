"""A small, obviously-correct per-model trainer: the yardstick for the batched one.

One :class:`LateFusion` per (seed, subset), built with only the subset's
modalities, trained with ``torch.optim.Adam`` in a plain loop over the same
:class:`BatchSchedule` batches.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mmgain.models.late_fusion import LateFusion
from mmgain.training.schedule import BatchSchedule


def train_reference(dims, subset, seed, xs, y, rows, protocol, task, n_outputs) -> LateFusion:
    model = LateFusion.initialized(dims, subset, seed, n_outputs, protocol.hidden, protocol.activation)
    opt = torch.optim.Adam(model.parameters(), lr=protocol.lr, betas=protocol.betas, eps=protocol.eps)
    X = {k: torch.from_numpy(np.asarray(xs[k], dtype=np.float32)) for k in subset}
    Y = torch.from_numpy(np.asarray(y))
    rows = np.asarray(rows)
    for pos in BatchSchedule(seed, len(rows), protocol.batch_size, protocol.epochs):
        idx = torch.from_numpy(rows[pos])
        out = model({k: X[k][idx] for k in subset})
        if task == "regression":
            loss = ((out[:, 0] - Y[idx]) ** 2).mean()
        else:
            loss = F.cross_entropy(out, Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model
