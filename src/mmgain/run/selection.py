"""``--subsets forward``: greedy forward selection of modalities, decided on rows the test never sees.

Stage j trains every "best so far ∪ {k}" candidate on each stream at the largest sample size —
on 80 % of that stream's training sample — and scores it on the other 20 %; the best mean score
over the streams is kept.  The run then trains and probes all K(K+1)/2 subsets scored, at every
sample size, as for any other policy.  The test rows play no part in the choice, so the run's
comparisons of the chosen path are not selected on the numbers they report.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np

from ..data.subsets import Subset, forward_path, subset_name
from ..training.batched import BatchedTrainer, DeviceData, Streams

VALIDATION = 0.2     # share of each stream's training sample that scores the candidates


def split_streams(streams: Streams, validation: float = VALIDATION) -> tuple[Streams, Streams]:
    """Each stream's sample split into fitting and scoring rows (a permutation keyed by its seed;
    at least one row on each side when the sample has two)."""
    fit, score = [], []
    for seed, rows in zip(streams.seeds, streams.train_rows):
        rows = np.asarray(rows)
        perm = np.random.default_rng([int(seed), 4242]).permutation(len(rows))
        n_val = min(len(rows) - 1, max(1, int(round(validation * len(rows))))) if len(rows) > 1 else 0
        score.append(rows[perm[:n_val]] if n_val else rows)
        fit.append(rows[perm[n_val:]])
    return (Streams(streams.groups, streams.seeds, fit), Streams(streams.groups, streams.seeds, score))


def forward_subsets(names, protocol, dims, n_outputs, task, train: DeviceData, streams: Streams, device,
                    progress: bool = True) -> tuple[list[Subset], list[dict]]:
    """The subsets of greedy forward selection and its path (``[{"stage", "subset", "score",
    "metric"}]``), scored by ``task.metric`` on held-out training rows (see module doc)."""
    fit, held = split_streams(streams)
    key = f"train_{task.metric}"

    def score(cands: list[Subset]) -> np.ndarray:
        trainer = BatchedTrainer(protocol, dims, cands, n_outputs, task, device).fit(train, fit)
        values = trainer.train_metrics(train, held)[key]                  # (S, A): on the held-out rows
        values = np.where(np.isfinite(values), values, np.nan)          # a diverged model scores worst
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)                # a candidate that diverged everywhere
            out = np.nanmean(values, axis=0)
        if progress:
            best = (np.nanargmax if task.higher_is_better else np.nanargmin)(out) if np.isfinite(out).any() else 0
            print(f"mmgain: forward selection, stage {len(cands[0])}/{len(names)}: {len(cands)} candidates, "
                  f"best {subset_name(cands[best])} ({task.metric} {out[best]:.4g} on {VALIDATION:.0%} of the "
                  "training rows held out)", file=sys.stderr)
        return out

    subsets, path = forward_path(names, score, task.higher_is_better)
    return subsets, [{"stage": i + 1, "subset": subset_name(s), "score": v, "metric": task.metric,
                      "scored_on": f"{VALIDATION:.0%} of each training sample at the largest ratio, held out"}
                     for i, (s, v) in enumerate(path)]
