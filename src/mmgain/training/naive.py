"""The naive loop that peers use: one :class:`LateFusion` per configuration, ``torch.optim.Adam``,
a plain minibatch loop over the same :class:`BatchSchedule` batches (under autocast for
``protocol.precision="bfloat16"``, as a peer would use mixed precision).

It is the yardstick twice: the tests check that the batched trainer gives the same weights, and
``mmgain bench`` times it against the batched trainer.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..models.late_fusion import LateFusion
from .batched import autocast
from .schedule import BatchSchedule


def train_naive(dims, subset, seed, xs, y, rows, protocol, task, n_outputs, device="cpu") -> LateFusion:
    model = LateFusion.initialized(dims, subset, seed, n_outputs, **protocol.architecture()).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=protocol.lr, betas=protocol.betas, eps=protocol.eps)
    X = {k: torch.as_tensor(np.asarray(xs[k], dtype=np.float32), device=device) for k in subset}
    Y = torch.as_tensor(np.asarray(y), device=device)
    rows = np.asarray(rows)
    for pos in BatchSchedule(seed, len(rows), protocol.batch_size, protocol.epochs):
        idx = torch.as_tensor(rows[pos], device=device)
        with autocast(torch.device(device), protocol.precision):
            out = model({k: X[k][idx] for k in subset})
            if task == "regression":
                loss = ((out[:, 0].float() - Y[idx]) ** 2).mean()
            else:
                loss = F.cross_entropy(out, Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model
