"""Joint-training diagnostics computed from the trained models on the test rows.

Late fusion is additive in the head's first layer, pre = c + Σ_k term_k(x_k) and output =
finish(pre) (the identity for the linear head), so removing a modality from a trained model is
exact and free: drop its term.  From one pass over the test rows:

- ``drop_<k>_<metric>`` (stream, subset): the model M with modality k missing (its term
  dropped; the paper's ⊥).  Missing-modality robustness follows from it: with k missing on a
  fraction p of the rows, the expected metric is (1 − p)·v(M) + p·v(M, k dropped).
- ``ensemble_<metric>`` (stream, subset): the uni-modal ensemble, the average of the outputs
  of the single-modality models of M (Huang et al. ICML 2022, modality competition; Du et
  al. ICML 2023, modality laziness); defined when every single of M was trained.
- ``masked_<metric>`` (stream, 2^K): the full model with every subset T of modalities kept
  (bit i of the index = modality i kept) — the masking-based values that peers' Shapley uses.
- ``baseline_<metric>`` (stream,): the best constant prediction from the stream's training
  labels (majority class, or the mean): v(∅) of the retrained lattice.
- ``prior_loss`` (stream, test row), classification: −log p̂(y) of each test row under the class
  frequencies of the stream's training labels (add-½ smoothed) — the cross-entropy of the empty
  model, from which the information game v(S) = CE(∅) − CE(S) is measured in nats
  (:mod:`mmgain.analysis.information`).
"""
from __future__ import annotations

import numpy as np
import torch

from ..tasks import Task
from ..training.batched import DeviceData, Streams

MASK_LIMIT = 10      # masked values of the full model up to 2^10 subsets


def _log_prior(train: DeviceData, streams: Streams, n_out: int, device) -> torch.Tensor:
    """(S, C): log class frequencies of each stream's training labels, add-½ smoothed."""
    out = []
    for g, r in zip(streams.groups, streams.train_rows):
        y = train.y[int(g)][torch.as_tensor(np.asarray(r), device=device)]
        counts = torch.bincount(y, minlength=n_out).double() + 0.5
        out.append((counts / counts.sum()).log())
    return torch.stack(out)


def _constant_outputs(train: DeviceData, streams: Streams, task: Task, n_out: int, device) -> torch.Tensor:
    """(S, O): the best constant output of each stream on its own training labels."""
    rows = []
    for g, r in zip(streams.groups, streams.train_rows):
        y = train.y[int(g)][torch.as_tensor(np.asarray(r), device=device)]
        if task.higher_is_better:                     # classification: the majority class
            rows.append(torch.nn.functional.one_hot(torch.bincount(y, minlength=n_out).argmax(), n_out).float())
        else:
            rows.append(y.float().mean()[None])
    return torch.stack(rows)


def _finish_columns(model, pre: torch.Tensor, a: int) -> torch.Tensor:
    """Outputs of model a for several first-layer inputs, (S, b, X, O₁) → (S, b, X, O): each
    column goes through model a's head (the identity for the linear head)."""
    if model.head == "linear":
        return pre
    S, b, X, W = pre.shape
    view = model.with_params({**model.params, "U": model.params["U"][:, [a] * X], "c2": model.params["c2"][:, [a] * X]})
    return view.finish(pre)


def _dropped(model, pre, terms, pos, drops) -> torch.Tensor:
    """Outputs of each (model a, modality k) with k's term dropped from its head's first layer."""
    cols = [_finish_columns(model, (pre[:, :, a] - terms[k][:, :, pos[k][a]])[:, :, None], a) for a, k in drops]
    return torch.cat(cols, 2)


@torch.no_grad()
def joint_diagnostics(model, train: DeviceData, test: DeviceData, streams: Streams, task: Task,
                      row_chunk: int = 512) -> dict[str, dict[str, np.ndarray]]:
    """``{"metrics": {name: (S, A)}, "extras": {name: (S, ...)}}`` for the chunk's streams."""
    names, subsets = model.names, model.subsets
    S, A, O = model.n_streams, len(subsets), model.n_outputs
    dev = test.y.device
    index = {frozenset(s): a for a, s in enumerate(subsets)}
    drops = [(a, k) for a, s in enumerate(subsets) for k in s]                     # model a without k
    ens = [a for a, s in enumerate(subsets) if len(s) > 1 and all(frozenset([k]) in index for k in s)]
    full = index.get(frozenset(names))
    masks = list(range(2 ** len(names))) if full is not None and len(names) <= MASK_LIMIT else []
    const = _constant_outputs(train, streams, task, O, dev)                       # (S, O)
    log_prior = _log_prior(train, streams, O, dev) if task.name == "classification" else None
    prior_rows: list[torch.Tensor] = []
    g = torch.as_tensor(streams.groups, device=dev)
    sums: dict[str, torch.Tensor] = {}

    def add(part: str, out: torch.Tensor, y: torch.Tensor) -> None:          # out (S, b, X, O)
        for k, v in task.row_outcomes(out, y[:, :, None].expand(-1, -1, out.shape[2])).items():
            key = f"{part}/{k}"
            sums[key] = sums.get(key, 0) + v.double().sum(1)                  # (S, X)

    for r0 in range(0, test.n, row_chunk):
        r = torch.arange(r0, min(r0 + row_chunk, test.n), device=dev)[None].expand(S, -1)
        xs, y = test.gather(g, r)
        terms = model.contributions(xs)                                        # {k: (S, b, A_k, O₁)}
        pos = {k: {a: i for i, a in enumerate(model.members[k])} for k in terms}
        pre = model.params["c"][:, None].expand(S, r.shape[1], -1, -1)        # the head's first layer
        for k, t in terms.items():
            pre = pre.index_add(2, model._members_t[k], t)
        out = model.finish(pre)                                                # (S, b, A, O)
        if drops:
            add("drop", torch.stack([pre[:, :, a] - terms[k][:, :, pos[k][a]] for a, k in drops], 2)
                if model.head == "linear" else _dropped(model, pre, terms, pos, drops), y)
        if ens:
            add("ensemble", torch.stack([torch.stack([out[:, :, index[frozenset([k])]] for k in subsets[a]]).mean(0)
                                         for a in ens], 2), y)
        if masks:
            c = model.params["c"][:, None, full]                                 # (S, 1, O₁)
            kept = [c.expand(-1, r.shape[1], -1) + sum((terms[k][:, :, pos[k][full]] for i, k in enumerate(names)
                                                        if m >> i & 1), torch.zeros_like(c))
                    for m in masks]
            add("masked", _finish_columns(model, torch.stack(kept, 2), full), y)
        add("baseline", const[:, None, None].expand(-1, r.shape[1], 1, -1), y)
        if log_prior is not None:
            prior_rows.append(-log_prior.gather(1, y.long()))                      # (S, b)

    def metric(part: str) -> dict[str, np.ndarray]:          # {metric: (S, X)} from summed per-row outcomes
        rows = {key.split("/", 1)[1]: (v / test.n).cpu().numpy()[..., None] for key, v in sums.items()
                if key.startswith(part + "/")}
        return task.metrics(rows) if rows else {}

    out_metrics: dict[str, np.ndarray] = {}
    for name, v in metric("drop").items():
        for k in names:
            col = np.full((S, A), np.nan)
            for j, (a, kk) in enumerate(drops):
                if kk == k:
                    col[:, a] = v[:, j]
            out_metrics[f"drop_{k}_{name}"] = col
    for name, v in metric("ensemble").items():
        col = np.full((S, A), np.nan)
        col[:, ens] = v
        out_metrics[f"ensemble_{name}"] = col
    extras = {f"baseline_{name}": v[:, 0] for name, v in metric("baseline").items()}
    extras.update({f"masked_{name}": v for name, v in metric("masked").items()})
    if prior_rows:
        extras["prior_loss"] = torch.cat(prior_rows, 1).cpu().numpy()
    return {"metrics": out_metrics, "extras": extras}
