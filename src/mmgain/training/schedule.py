"""Minibatch order: one shuffled pass per epoch, keyed by (seed, sample size).

Shared by the batched trainer and by any per-model trainer, so that both see
exactly the same batches; every subset of one stream sees the same order.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np


class BatchSchedule:
    def __init__(self, seed: int, n: int, batch_size: int, epochs: int):
        if n < 1:
            raise ValueError("a training sample needs at least one row")
        self.seed, self.n, self.batch_size, self.epochs = int(seed), int(n), int(batch_size), int(epochs)
        self.steps_per_epoch = math.ceil(self.n / self.batch_size)
        self.n_steps = self.epochs * self.steps_per_epoch

    def __iter__(self) -> Iterator[np.ndarray]:
        """Positions (into the model's training sample) of each minibatch, in order."""
        rng = np.random.default_rng([self.seed, self.n, 7])
        for _ in range(self.epochs):
            perm = rng.permutation(self.n)
            for j in range(self.steps_per_epoch):
                yield perm[j * self.batch_size:(j + 1) * self.batch_size]
