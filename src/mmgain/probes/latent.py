"""The latent-quality probe η̂(ĝ_M): the best head on a frozen encoder.

η(g) = inf_h r(h∘g) − r(h*∘g*).  We freeze the trained encoder, fit the best
head on its latent over the full training set, and measure that head's test
risk.  The probes return per-row losses on the training and the test rows;
:mod:`mmgain.analysis.estimates` turns them into the bias-corrected η̂ and
γ̂_S(M, N) = η̂(ĝ_M) − η̂(ĝ_N).

Each probe fits the A models of one stream at once.  A latent comes as
per-modality blocks ``{k: (n, A_k, H)}`` for the subsets that contain k
(``members[k]``): a modality outside M has no block, so the probe of a subset
is the probe of the model built without the other modalities.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.late_fusion import dense_latent
from .lbfgs import batched_lbfgs


@dataclass
class Latent:
    """Frozen latents of A models on n rows, as per-modality blocks."""

    blocks: dict[str, Tensor]          # k -> (n, A_k, H)
    members: dict[str, Sequence[int]]  # k -> the models (0..A-1) whose subset contains k
    names: list[str]
    n_models: int

    def take(self, rows: Tensor) -> "Latent":
        """The same models on a subset of the rows."""
        return Latent({k: v[rows] for k, v in self.blocks.items()}, self.members, self.names, self.n_models)

    def dense(self) -> Tensor:
        """(n, A, Σ_k H_k), zero blocks for absent modalities."""
        return dense_latent(self.blocks, self.members, self.names, self.n_models)

    def models(self, chosen: Sequence[int]) -> "Latent":
        """The models ``chosen`` (ascending) alone, renumbered 0..len(chosen)-1."""
        new = {m: i for i, m in enumerate(chosen)}
        blocks, members = {}, {}
        for k, blk in self.blocks.items():
            cols = [j for j, m in enumerate(self.members[k]) if m in new]
            if cols:
                blocks[k] = blk if len(cols) == blk.shape[1] else blk[:, cols]
                members[k] = [new[self.members[k][j]] for j in cols]
        return Latent(blocks, members, [k for k in self.names if k in blocks], len(chosen))

    def join(self, other: "Latent") -> "Latent":
        """These models, then ``other``'s (on the same rows), as one Latent: a modality's blocks
        are stacked where their widths agree, and ``other``'s block is kept under a key of its
        own where they do not (an encoder's output beside a latent of another width)."""
        blocks, members = dict(self.blocks), {k: list(v) for k, v in self.members.items()}
        names = list(self.names)
        for k in other.names:
            if k not in other.blocks:
                continue
            blk, owned = other.blocks[k], [self.n_models + m for m in other.members[k]]
            key = k
            if k in blocks and blocks[k].shape[2:] != blk.shape[2:]:
                key = k + "\u2032"                       # k′
                while key in blocks:
                    key += "\u2032"
            if key in blocks:
                blocks[key] = torch.cat([blocks[key], blk], 1)
                members[key] += owned
            else:
                blocks[key], members[key] = blk, owned
                names.append(key)
        return Latent(blocks, members, names, self.n_models + other.n_models)

    def model_widths(self) -> list[int]:
        """Each model's latent width."""
        width = [0] * self.n_models
        for k, blk in self.blocks.items():
            for m in self.members[k]:
                width[m] += blk.shape[-1]
        return width

    def widest(self) -> int:
        """The widest model's latent width."""
        return max(self.model_widths(), default=0)


def probe_bytes_per_model(n_rows: int, width: int, n_out: int, dense: bool) -> float:
    """Working memory of one model's probe: for L-BFGS (``dense`` False) its history and
    vectors (~30 parameter vectors) and its standardized latent with the compacted working
    sets (~4 copies); for least squares (``dense``) the float64 design, its centred copy and
    test rows, and the Gram matrix and its factor."""
    if dense:
        return 8.0 * (3 * n_rows * width + 2 * width * width)
    return 4.0 * (30 * (width + 1) * n_out + 4 * n_rows * width)


PROBE_GROUP_BYTES = 2e9      # the most one probe group holds


def one_solve_group_bytes(device: torch.device) -> float:
    """The most one probe group holds when a chunk's probes run as one solve (a GPU's layout,
    :mod:`mmgain.run.chunk`): 40 % of the card's memory, a constant of the card (like
    ``PROBE_GROUP_BYTES``, not of ``--memory-gb``), so that a large chunk's cross-fitted
    problems stay one call; 16 GB on the CPU, where the layout is only forced for tests."""
    if device.type == "cuda":
        return max(PROBE_GROUP_BYTES, 0.4 * torch.cuda.get_device_properties(device).total_memory)
    return 16e9


SEQUENTIAL_WORK = ("solves", "rounds", "objective_calls")   # per solver call, shared by its models


def solver_work(res: dict) -> dict[str, Tensor]:
    """A probe result's solver work per model (A,), for run.json and the bench: ``evaluations``
    and their ``flops``, the ``fits`` made and how many of them stopped short of the tolerance
    (``unconverged``: an iteration cap or a failed line search), and, shared equally by the
    models of one solver call so that sums are totals, the calls (``solves``) with their
    sequential ``rounds`` and ``objective_calls`` (:func:`batched_lbfgs`).  A probe that reports
    none of these (a registered probe of another kind) counts nothing."""
    out = {k: res[k].double().cpu() for k in ("evaluations", "flops", *SEQUENTIAL_WORK) if k in res}
    if "converged" in res:
        out["fits"] = torch.ones_like(res["converged"], dtype=torch.float64).cpu()
        out["unconverged"] = 1 - res["converged"].double().cpu()
    return out


def in_model_groups(probe: Callable[..., dict], n_out: int, dense: bool,
                    max_bytes: float = PROBE_GROUP_BYTES) -> Callable[..., dict]:
    """``probe`` fitted on groups of models that fit ``max_bytes``, results concatenated: a
    lattice of thousands of models is probed in pieces instead of exhausting memory.  Each
    model's fit is its own problem, but a group's stopping bookkeeping can move a model's
    numbers at the solver's tolerance, so the cap is a
    constant, not ``--memory-gb``: the memory budget changes speed, never a number."""
    def run(Z: Latent, y: Tensor, Zt: Latent, yt: Tensor, row_weight: Tensor | None = None) -> dict:
        width = sum(b.shape[-1] for b in Z.blocks.values()) if dense else Z.widest()
        per = probe_bytes_per_model(len(y), width, n_out, dense)
        size = max(1, int(max_bytes // max(per, 1.0)))
        kw = lambda ms: {} if row_weight is None else {"row_weight": _targets_of(row_weight, ms)}   # noqa: E731
        if Z.n_models <= size:
            return probe(Z, y, Zt, yt, **kw(range(Z.n_models)))
        parts = []
        for start in range(0, Z.n_models, size):
            ms = list(range(start, min(start + size, Z.n_models)))
            parts.append(probe(Z.models(ms), _targets_of(y, ms), Zt.models(ms), _targets_of(yt, ms), **kw(ms)))
        return _concat_models(parts)
    return run


def _by_width(probe: Callable[..., dict], widths: Sequence[int], Z: Latent, y: Tensor, Z_test: Latent,
              y_test: Tensor, row_weight: Tensor | None = None) -> dict:
    """``probe`` fitted on the models of each latent width apart, results in the models' order:
    a solver state padded to the widest model would spend most of its passes on zeros."""
    order, parts = [], []
    for w in sorted(set(widths)):
        ms = [m for m, wm in enumerate(widths) if wm == w]
        kw = {} if row_weight is None else {"row_weight": _targets_of(row_weight, ms)}
        parts.append(probe(Z.models(ms), _targets_of(y, ms), Z_test.models(ms), _targets_of(y_test, ms), **kw))
        order += ms
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.as_tensor(order)] = torch.arange(len(order))
    return _reorder(_concat_models(parts), inverse)


def _targets_of(y: Tensor, models: Sequence[int]) -> Tensor:
    """The targets of ``models``: their columns of a per-model (n, A) target, or the shared (n,)."""
    return y[:, list(models)] if y.dim() == 2 else y


def _reorder(res, index: Tensor):
    if isinstance(res, dict):
        return {k: _reorder(v, index) for k, v in res.items()}
    return res[index.to(res.device)]


def _concat_models(parts: list) -> dict:
    """Per-model results of model groups joined along the model axis (nested dicts of tensors)."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: _concat_models([p[k] for p in parts]) for k in first}
    return torch.cat(parts, 0)


@torch.no_grad()
def least_squares_probe(Z: Latent, y: Tensor, Z_test: Latent, y_test: Tensor, ridge: float = 1e-8) -> dict[str, Tensor]:
    """Least squares with intercept on the frozen latent (closed form, float64).

    ``y`` is (n,), or (n, A) when the models have different targets.
    ``ridge`` is relative to the mean feature variance and is there only to make
    collinear latents solvable; the zero columns of absent modalities get zero
    coefficients.  Returns per-row squared errors ``{"train": {"loss"}, "test": {"loss"}}``,
    each (A, n).
    """
    X, Xt = Z.dense().double(), Z_test.dense().double()
    y, y_test = per_model(y, Z.n_models).double(), per_model(y_test, Z.n_models).double()
    mu = X.mean(0)                                        # (A, P)
    Xc = X - mu
    yc = y - y.mean(0)
    G = torch.einsum("nap,naq->apq", Xc, Xc)              # (A, P, P)
    rhs = torch.einsum("nap,na->ap", Xc, yc)
    lam = ridge * G.diagonal(dim1=1, dim2=2).mean(1).clamp(min=1e-12)
    G = G + lam[:, None, None] * torch.eye(G.shape[-1], dtype=G.dtype, device=G.device)
    beta = _spd_solve(G, rhs)                             # (A, P)
    fit = lambda Xs: torch.einsum("nap,ap->na", Xs - mu, beta) + y.mean(0)   # noqa: E731
    n, P = X.shape[0], X.shape[2]
    flops = 2.0 * n * P * P + 2.0 * n * P + P ** 3 / 3 + 2.0 * (n + len(Xt)) * P   # Gram, rhs, Cholesky, fits
    A = Z.n_models
    return {"train": {"loss": ((fit(X) - y) ** 2).T}, "test": {"loss": ((fit(Xt) - y_test) ** 2).T},
            "evaluations": torch.ones(A, dtype=torch.float64), "flops": torch.full((A,), flops, dtype=torch.float64)}


def _spd_solve(G: Tensor, rhs: Tensor) -> Tensor:
    """Solve G β = rhs for symmetric positive definite G (a ridge Gram matrix) by Cholesky; a
    matrix that is numerically not positive definite falls back to least squares.  (Cholesky
    also sidesteps an MKL fault of the batched LU solve in torch 2.13's CPU build after
    ``torch.set_num_threads(n ≥ 2)``.)"""
    L, info = torch.linalg.cholesky_ex(G)
    beta = torch.cholesky_solve(rhs[..., None], L)[..., 0]
    bad = info != 0
    if bool(bad.any()):
        beta[bad] = torch.linalg.lstsq(G[bad], rhs[bad][..., None]).solution[..., 0]
    return beta


def per_model(y: Tensor, n_models: int) -> Tensor:
    """Targets as (n, A): one column per model (a 1-D target is shared by all)."""
    return y[:, None].expand(-1, n_models) if y.dim() == 1 else y


def _standardize(Z: Latent, Z_test: Latent, rows: Tensor | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Z-scored blocks, rows last (A_k, H, n): the probe's GEMMs then stream each model's rows as
    the long operand (logitsᵀ = Wᵀ·Z, gradientᵀ = G·Zᵀ), and the softmax over the classes runs
    along contiguous rows.  ``rows`` (n, A), if given, marks each model's own rows: the moments
    are theirs, and the other rows are set to zero."""
    train, test = {}, {}
    for k, blk in Z.blocks.items():
        blk = blk.permute(1, 2, 0).contiguous()
        if rows is None:
            mu, sd = blk.mean(2, keepdim=True), blk.std(2, unbiased=False, keepdim=True)
        else:
            m = rows[:, list(Z.members[k])].T[:, None, :].to(blk.dtype)            # (A_k, 1, n)
            cnt = m.sum(2, keepdim=True)
            mu = (blk * m).sum(2, keepdim=True) / cnt
            sd = (((blk - mu) ** 2 * m).sum(2, keepdim=True) / cnt).sqrt()
        sd = torch.where(sd > 1e-8, sd, torch.ones_like(sd))   # dead units stay zero
        train[k] = blk.sub_(mu).div_(sd) if rows is None else blk.sub_(mu).div_(sd).mul_(m)
        test[k] = (Z_test.blocks[k].permute(1, 2, 0) - mu) / sd
    return train, test


def logistic_probe(Z: Latent, y: Tensor, Z_test: Latent, y_test: Tensor, n_classes: int,
                   l2: float = 1e-3, max_iter: int = 500, tol: float = 1e-5,
                   intercept_step: float = 10.0, history: int = 10, row_weight: Tensor | None = None,
                   by_width: bool = True, ftol: float = 0.0) -> dict[str, Tensor]:
    """Multinomial logistic regression on the frozen latent, full-batch L-BFGS to convergence.

    ``y`` is (n,), or (n, A) when the models have different targets.  Features
    are standardized on the training rows; a small L2 term (on the weights, not
    the intercepts) keeps the problem strictly convex when classes are separable.
    Every model has its own L-BFGS state (:func:`batched_lbfgs`), its own
    parameter vector of exactly its latent's width (its blocks one after the
    other, then the intercepts; zero-padded to the widest model; models of one width are
    evaluated as one block, :func:`_one_block`), the gradient
    in closed form, and the objective summed in float64.  A model's numbers do
    not depend on which others share its batch.  Returns per-row outcomes of the
    fitted heads, ``{"train": {"loss", "correct"}, "test": {...}}`` each (A, n),
    plus the ``iterations`` used, whether the gradient tolerance was reached (``converged``,
    1/0), the solver's ``evaluations`` and their counted ``flops`` (the logits and gradient
    GEMMs, 4·n·width·C per evaluation, and the outcomes), per model (A,).

    ``intercept_step`` sets where L-BFGS starts its inverse curvature for the intercepts:
    ``intercept_step`` times the weights' (:func:`batched_lbfgs`, ``precondition``).  The solver
    scales its steps to the curvature it last saw, which the weights' correlated directions
    dominate (many units of one encoder move together), so intercepts that start at the
    weights' scale crawl and are the last to converge.  It changes the path, not the optimum;
    the default is measured (docs/benchmarks.md, "The probes' stopping rule").  ``history``: the
    curvature pairs L-BFGS keeps per model.

    ``row_weight`` (n, A), if given, replaces the mean over the training rows by each model's
    weighted sum (weights ≥ 0 that sum to 1 per model): rows of weight 0 take no part, not even
    in the standardization.  :func:`cross_fitted_probe` fits all its folds in one call this way.
    ``by_width`` (default) solves the models of each latent width apart; False solves them all
    in one call, padded to the widest: more arithmetic, fewer solver calls one after the other
    (what a GPU, bound by launches and synchronizations, wants).
    """
    widths = Z.model_widths()
    if by_width and len(set(widths)) > 1:
        return _by_width(lambda Z_, y_, Zt_, yt_, **kw: logistic_probe(Z_, y_, Zt_, yt_, n_classes, l2, max_iter,
                                                                       tol, intercept_step, history, ftol=ftol,
                                                                       **kw),
                         widths, Z, y, Z_test, y_test, row_weight)
    X, Xt = _standardize(Z, Z_test, None if row_weight is None else row_weight > 0)
    A, C = Z.n_models, n_classes
    dev = y.device
    dtype = next(iter(X.values())).dtype
    layout = head_layout(Z, C)
    if len(X) > 1 and len(set(widths)) == 1:          # (by width: every call but a GPU's one solve)
        X, Xt, layout = _one_block(X, layout, C), _one_block(Xt, layout, C), _whole(layout)
    n_w = layout.n_w
    whole = layout.unit == n_w        # one block, every model's whole latent: its weights are a view
    cache: list[tuple[int, Tensor, Tensor, dict]] = []   # the two latest working sets

    def working_set(models: Tensor, blocks: Mapping[str, Tensor]) -> tuple[int, Tensor, dict]:
        """Latent blocks compacted to a working set of models ⊇ ``models``.

        Compacting copies those models' latents, so a working set is reused while
        the models asked for are at least 3/4 of it (the others ride along with
        zero weights and their outputs are dropped).  Two are kept: the models
        still running and those in a line search.
        """
        fits = [c for c in cache if c[0] == id(blocks) and len(models) >= 0.75 * len(c[1])]
        for _, working, local, parts in fits:
            if working is models:        # the solver's own index tensor, unchanged: no need to look
                return len(working), local[models], parts
        if fits:      # one host synchronization for both candidates (a GPU's queue stalls at each)
            held = torch.stack([(local[models] >= 0).all() for _, _, local, _ in fits]).tolist()
            for (_, working, local, parts), ok in zip(fits, held):
                if ok:
                    return len(working), local[models], parts
        local = torch.full((A,), -1, dtype=torch.long, device=dev)
        local[models] = torch.arange(len(models), device=dev)
        parts = {}
        keeps = {k: local[layout.members[k]] >= 0 for k in blocks}
        counts = torch.stack([keep.sum() for keep in keeps.values()]).tolist()   # (one synchronization)
        for (k, blk), n_keep in zip(blocks.items(), counts):
            mk, keep = layout.members[k], keeps[k]
            if n_keep:
                every = n_keep == len(mk)
                cols = layout.slots[k] if every else layout.slots[k][keep]
                part = blk if every else blk[keep]
                parts[k] = (part, local[mk if every else mk[keep]], cols)
        cache.insert(0, (id(blocks), models, local, parts))
        del cache[2:]
        return len(models), local[models], parts

    def logits(x: Tensor, models: Tensor, blocks: Mapping[str, Tensor]) -> tuple[Tensor, int, Tensor, dict]:
        """Transposed logits (working set, C, n).  ``models`` ascend, so a working set of their
        size is exactly them, in order: then no row moves."""
        width, rows, parts = working_set(models, blocks)
        xw = x.contiguous() if width == len(rows) else \
            torch.zeros(width, x.shape[1], dtype=x.dtype, device=dev).index_copy(0, rows, x)
        n = next(iter(blocks.values())).shape[-1]
        out = xw[:, n_w:, None].expand(-1, -1, n).contiguous()
        for k, (blk, loc, cols) in parts.items():                         # (m_k, H_k, n), (m_k,), (m_k, H_k·C/unit)
            W = xw[:, :n_w].view(width, -1, C) if whole else \
                layout.units(xw)[loc[:, None], cols].view(len(loc), blk.shape[1], C)
            if len(loc) == width:            # loc ascends: the block is in every model of the working set
                out.add_(_bmm(W.transpose(1, 2), blk))
            else:
                out.index_add_(0, loc, _bmm(W.transpose(1, 2), blk))
        return out, width, rows, parts

    Y, Yt = per_model(y, A).T.contiguous(), per_model(y_test, A).T.contiguous()   # (A, n)
    RW = None if row_weight is None else row_weight.T.to(dtype).contiguous()        # (A, n)
    weights = torch.zeros(1, layout.n_w + C, dtype=dtype, device=dev)
    weights[:, :n_w] = 1.0                                  # the L2 term: weights, not intercepts

    def value_and_grad(x: Tensor, models: Tensor) -> tuple[Tensor, Tensor]:
        out, width, rows, parts = logits(x, models, X)
        same = width == len(rows)                                          # the working set is the models
        lg = out if same else out[rows]                                    # (models, C, n)
        n = lg.shape[2]
        logp = torch.log_softmax(lg, 1)
        target = Y[models][:, None]
        ll = logp.gather(1, target)[:, 0].double()    # summed in float64: the line search compares
                                                       # decreases far below float32's resolution
        G = logp.exp_().scatter_add_(1, target, torch.full_like(target, -1, dtype=x.dtype))   # n·∂ce/∂logits
        if RW is None:
            ce = -ll.mean(1)
            G.div_(n)
        else:
            rw = RW[models]
            ce = -(ll * rw.double()).sum(1)
            G.mul_(rw[:, None])
        Gw = G if same else torch.zeros(width, C, n, dtype=x.dtype, device=dev).index_copy_(0, rows, G)
        grad = torch.zeros(width, x.shape[1], dtype=x.dtype, device=dev)
        grad[:, n_w:] = Gw.sum(2)
        for k, (blk, loc, cols) in parts.items():
            Gk = Gw if len(loc) == width else Gw[loc]
            # the gradient as G·Zᵀ, (C, n)·(n, H), transposed: MKL runs Z·Gᵀ, whose output has
            # C columns, slower (benchmarks/2026-12-07-probe-gradient.md)
            gk = _bmm(Gk, blk.transpose(1, 2)).transpose(1, 2)                    # (m_k, H_k, C)
            if whole:
                grad[:, :n_w].view(width, -1, C).copy_(gk)
            else:
                layout.units(grad)[loc[:, None], cols] = gk.reshape(len(loc), -1, layout.unit)
        wx = x * weights
        return ce + 0.5 * l2 * (wx.double() * x).sum(1), (grad if same else grad[rows]) + l2 * wx

    h0 = torch.where(weights > 0, 1.0, intercept_step)     # H₀'s shape: 1 on the weights, the step on the intercepts
    x0 = torch.zeros(A, n_w + C, device=dev, dtype=dtype)
    x, info = batched_lbfgs(None, x0, max_iter=max_iter, tol=tol, history=history, value_and_grad=value_and_grad,
                            precondition=None if intercept_step == 1.0 else lambda v, _: v * h0, ftol=ftol)
    every = torch.arange(A, device=dev)
    with torch.no_grad():
        out = {}
        for part, blocks, target in (("train", X, Y), ("test", Xt, Yt)):
            lg = logits(x, every, blocks)[0]
            out[part] = {"loss": F.cross_entropy(lg, target, reduction="none"),
                         "correct": (lg.argmax(1) == target).float()}
    evals = info["evaluations"].double()
    width = torch.as_tensor(widths, dtype=torch.float64, device=dev)
    n, n_test = len(Y[0]), len(Yt[0])
    if RW is not None:             # the rows of weight 0, and test rows of target -100 (padding), are not work
        n, n_test = (RW > 0).sum(1).double(), (Yt != -100).sum(1).double()
    flops = (4 * n * evals + 2 * (n + n_test)) * width * C    # logits and gradient per evaluation; outcomes
    share = torch.full((A,), 1.0 / A, dtype=torch.float64, device=dev)   # the call's counts, shared by its models
    return {**out, "iterations": info["iterations"].double(), "converged": info["converged"].double(),
            "evaluations": evals, "flops": flops,
            "solves": share, "rounds": share * info["rounds"], "objective_calls": share * info["calls"]}


def _bmm(a: Tensor, b: Tensor) -> Tensor:
    """``torch.bmm`` whose rounding does not depend on the batch: a batch of one runs as a batch
    of two (the same item, by stride 0), since MKL's single-matrix path rounds differently from
    its batched one at some shapes, and a lone problem (a width of its own, the solver's tail)
    would then not reproduce its fit beside other models (``tests/test_probes.py``)."""
    if a.shape[0] != 1:
        return torch.bmm(a, b)
    return torch.bmm(a.expand(2, -1, -1), b.expand(2, -1, -1))[:1]


def _one_block(X: Mapping[str, Tensor], layout: "HeadLayout", n_classes: int) -> dict[str, Tensor]:
    """Blocks (A_k, H_k, n) of models of one width as one block (A, width, n), each model's in the
    order of its weights: a probe evaluation is then one GEMM for the logits and one for the
    gradient, with the weights read as a view, instead of a gather, a GEMM and a scatter per
    modality (the same products, summed in one pass)."""
    first = next(iter(X.values()))
    A, n, g = len(layout.width), first.shape[-1], layout.unit // n_classes
    out = first.new_empty(A, layout.n_w // n_classes, n)
    units = out.view(A, -1, g, n)
    for k, blk in X.items():
        units[layout.members[k][:, None], layout.slots[k]] = blk.view(len(blk), -1, g, n)
    return {"": out}


def _whole(layout: "HeadLayout") -> "HeadLayout":
    """The layout of :func:`_one_block`: one block, read whole by every model."""
    A = len(layout.width)
    every = torch.arange(A, device=layout.width.device)
    return HeadLayout({"": every}, {"": torch.zeros(A, 1, dtype=torch.long, device=every.device)}, layout.n_w,
                      layout.width, layout.n_w)


@dataclass
class HeadLayout:
    """Where each model's head weights sit in its parameter vector: model a's blocks in the order
    of ``Z.names``, each H_k·C weights, then the intercepts.  The weights are read in units of
    ``unit`` = C·gcd(H_k) columns: ``slots[k]`` (A_k, H_k·C / unit) are the units of block k for
    the models ``members[k]``, so a block's weights are gathered as whole rows of units, not
    column by column.  ``n_w`` is the widest model's weight count."""

    members: dict[str, Tensor]
    slots: dict[str, Tensor]
    unit: int
    width: Tensor
    n_w: int

    def units(self, v: Tensor) -> Tensor:
        """The weights of parameter vectors ``v`` (a, n_w + C) as (a, n_w / unit, unit), a view."""
        return v[:, :self.n_w].view(len(v), self.n_w // self.unit, self.unit)


def head_layout(Z: Latent, n_classes: int) -> HeadLayout:
    dev = next(iter(Z.blocks.values())).device
    names = [k for k in Z.names if k in Z.blocks]
    unit = n_classes * math.gcd(*(Z.blocks[k].shape[-1] for k in names))
    width = torch.zeros(Z.n_models, dtype=torch.long, device=dev)
    members, slots = {}, {}
    for k in names:
        mk = torch.as_tensor(list(Z.members[k]), dtype=torch.long, device=dev)
        h = Z.blocks[k].shape[-1] * n_classes
        members[k], slots[k] = mk, width[mk][:, None] // unit + torch.arange(h // unit, device=dev)
        width[mk] += h
    return HeadLayout(members, slots, unit, width, int(width.max()))


def probe_folds(y: np.ndarray, k: int, seed: int = 0, stratify: bool = True) -> np.ndarray:
    """A fold id 0..k−1 per row, stratified by class when asked (each class spread over the folds)."""
    rng = np.random.default_rng([int(seed), 31])
    folds = np.zeros(len(y), dtype=np.int64)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
    offset = 0
    for idx in groups:
        folds[rng.permutation(idx)] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return folds


def cross_fitted_probe(probe: Callable[..., dict], Z: Latent, y: Tensor, folds: np.ndarray,
                       stacked: bool = False) -> dict[str, dict]:
    """The probe fitted on rows no encoder has seen, by cross-fitting over them.

    For each fold, the probe is fitted on the other folds and scored on this one
    (``eval``: every row's out-of-fold outcome), and each row's in-sample
    outcomes are averaged over the fits that used it (``fit``).  Both are
    (A, n); ``work`` sums the probe's :func:`solver_work` over the folds, per model (A,).
    ½(fit + eval) is the bias-corrected risk of the best head
    (:mod:`mmgain.analysis.estimates`).

    ``stacked`` (a probe that takes ``row_weight``, :func:`logistic_probe`): every fold's fit is
    one more model of a single call, on the fold's rows padded to the longest fold with rows of
    weight 0, so the solver runs the folds together instead of one after the other (the same
    problems; the sums over rows in another order).
    """
    k = int(folds.max()) + 1
    if k < 2:
        raise ValueError("cross-fitting needs at least two folds")
    f = torch.as_tensor(folds, device=y.device)
    split = [((f != j).nonzero().squeeze(1), (f == j).nonzero().squeeze(1)) for j in range(k)]
    fits = _stacked_folds(probe, Z, y, split) if stacked else \
        [probe(Z.take(tr), y[tr], Z.take(ev), y[ev]) for tr, ev in split]
    fit_sum: dict[str, Tensor] = {}
    evals: dict[str, Tensor] = {}
    work: dict[str, Tensor] = {}
    for (tr, ev), res in zip(split, fits):
        for name, v in solver_work(res).items():
            work[name] = work.get(name, 0) + v
        for name, v in res["train"].items():
            fit_sum.setdefault(name, torch.zeros(v.shape[0], len(y), dtype=torch.float64, device=v.device))
            fit_sum[name][:, tr] += v.double()
        for name, v in res["test"].items():
            evals.setdefault(name, torch.zeros(v.shape[0], len(y), dtype=torch.float64, device=v.device))
            evals[name][:, ev] = v.double()
    return {"fit": {name: v / (k - 1) for name, v in fit_sum.items()}, "eval": evals, "work": work}


def _stacked_folds(probe: Callable[..., dict], Z: Latent, y: Tensor, split: list[tuple[Tensor, Tensor]]
                   ) -> list[dict]:
    """The fits of every fold from one call of ``probe``: fold j's models are models j·A … of a
    Latent of the folds' rows, each fold padded to the longest (repeating its first row: weight 0
    on the fit rows, target -100 on the held-out rows); returned per fold, as the per-fold calls
    return them."""
    A, k = Z.n_models, len(split)
    n_tr, n_ev = max(len(tr) for tr, _ in split), max(len(ev) for _, ev in split)
    pad = lambda idx, m: torch.cat([idx, idx[:1].expand(m - len(idx))])   # noqa: E731

    def stack(rows: list[Tensor], m: int) -> Latent:
        blocks = {key: torch.cat([blk[pad(r, m)] for r in rows], 1) for key, blk in Z.blocks.items()}
        members = {key: [j * A + a for j in range(k) for a in Z.members[key]] for key in Z.blocks}
        return Latent(blocks, members, Z.names, k * A)
    yy = per_model(y, A)
    ys = torch.cat([yy[pad(tr, n_tr)] for tr, _ in split], 1)
    yts = torch.full((n_ev, k * A), -100, dtype=yy.dtype, device=y.device)     # padding: cross_entropy's ignore
    for j, (_, ev) in enumerate(split):
        yts[:len(ev), j * A:(j + 1) * A] = yy[ev]
    weight = torch.zeros(n_tr, k * A, dtype=torch.float32, device=y.device)
    for j, (tr, _) in enumerate(split):
        weight[:len(tr), j * A:(j + 1) * A] = 1.0 / len(tr)
    res = probe(stack([tr for tr, _ in split], n_tr), ys, stack([ev for _, ev in split], n_ev), yts,
                row_weight=weight)
    return [_fold_part(res, slice(j * A, (j + 1) * A), len(tr), len(ev)) for j, (tr, ev) in enumerate(split)]


def _fold_part(res, models: slice, n_tr: int, n_ev: int):
    """One fold's models of a stacked result, its padded rows dropped."""
    if isinstance(res, dict):
        return {key: _fold_part(v, models, n_tr, n_ev) if key not in ("train", "test") else
                {name: t[models, :n_tr if key == "train" else n_ev] for name, t in v.items()} for key, v in res.items()}
    return res[models]


def block_latent(Z: Latent, models: set[int] | None = None) -> tuple[Latent, list[tuple[int, str]]]:
    """One model per (model, modality) block of ``Z`` (of ``models`` only, if given): each block
    alone, to probe what one modality's encoder carries inside a joint model.  Returns the
    Latent and, per new model, its origin (model index in ``Z``, modality)."""
    blocks, members, origin = {}, {}, []
    for k, blk in Z.blocks.items():
        cols = [i for i, m in enumerate(Z.members[k]) if models is None or m in models]
        if not cols:
            continue
        blocks[k] = blk if len(cols) == blk.shape[1] else blk[:, cols]
        members[k] = list(range(len(origin), len(origin) + len(cols)))
        origin += [(Z.members[k][i], k) for i in cols]
    return Latent(blocks, members, list(blocks), len(origin)), origin


def with_matched_controls(Z: Latent, matches: Sequence[tuple[int, int, str]],
                          perms: Sequence[Tensor]) -> Latent:
    """``Z`` plus one model per match ``(n_model, m_model, k)``: the latent of model ``n_model``
    joined by model ``m_model``'s block of modality k with its rows permuted (``perms[i]``).

    M = N + k and this control have heads of exactly the same size, and the permuted block
    has the distribution of M's block but no link to y or to N's blocks.  In the population
    an independent block does not change the best head's risk, so R(M) − R(control) is
    γ(M, N); on finite data both sides pay the same estimation cost, which cancels.
    """
    blocks = {k: [v] for k, v in Z.blocks.items()}
    members = {k: list(v) for k, v in Z.members.items()}
    for i, (n_model, m_model, k) in enumerate(matches):
        new = Z.n_models + i
        for j, blk in Z.blocks.items():
            if j == k:
                col = blk[:, members[k].index(m_model)]
                blocks[j].append(col[perms[i]][:, None])
            elif n_model in Z.members[j]:
                blocks[j].append(blk[:, list(Z.members[j]).index(n_model)][:, None])
            else:
                continue
            members[j].append(new)
    return Latent({k: torch.cat(v, 1) for k, v in blocks.items()}, members, Z.names, Z.n_models + len(matches))


def latent_gap_probe(probe: Callable[..., dict], Z: Latent, y: Tensor, folds: np.ndarray,
                     pairs: Sequence[tuple[int, int, str]], perm_seeds: Sequence[int],
                     stacked: bool = False, extra: tuple[Latent, Tensor] | None = None) -> dict[str, dict]:
    """The probe behind the corrected γ̂: cross-fitted on rows no encoder has seen (``Z``,
    ``y``), for the A models of ``Z`` and one width-matched control per pair
    ``(m_model, n_model, k)`` (N's latent + M's k block, rows permuted with a generator
    seeded by ``perm_seeds[i]``).

    Returns ``{"models": {"fit", "eval"}, "controls": {"fit", "eval"}}`` of per-row outcomes,
    (A, n) and (len(pairs), n); ``stacked`` as in :func:`cross_fitted_probe`.  Per row, γ̂(M, N) =
    ½(fit + eval)[M] − ½(fit + eval)[control].  ``extra`` (a Latent on the same rows and its
    targets) is cross-fitted in the same calls and returned as ``"extra"``: one solve instead of two.
    """
    n = len(folds)
    perms = [torch.randperm(n, generator=torch.Generator().manual_seed(int(s))).to(y.device) for s in perm_seeds]
    Zm = with_matched_controls(Z, [(nm, mm, k) for mm, nm, k in pairs], perms)
    ym = torch.cat([y, y[:, [mm for mm, _, _ in pairs]]], 1) if y.dim() == 2 else y
    A, P = Z.n_models, len(pairs)
    parts = {"models": slice(0, A), "controls": slice(A, A + P)}
    if extra is not None:
        Zx, yx = extra
        ym = torch.cat([per_model(ym, Zm.n_models), per_model(yx, Zx.n_models)], 1)
        Zm = Zm.join(Zx)
        parts["extra"] = slice(A + P, None)
    held = cross_fitted_probe(probe, Zm, ym, folds, stacked)
    return {part: {w: {k: v[rows] for k, v in d.items()} for w, d in held.items()} for part, rows in parts.items()}


def fit_probe(task, Z: Latent, y: Tensor, Z_test: Latent, y_test: Tensor, n_outputs: int, protocol,
              heldout: bool = False, row_weight: Tensor | None = None, by_width: bool = True) -> dict:
    """The best head on a frozen latent for ``task`` (its ``probe_kind``): ``{"train": rows,
    "test": rows, **diagnostics}``; ``heldout`` selects the cross-fitted probe's stopping rule;
    ``row_weight`` and ``by_width`` (logistic only) as in :func:`logistic_probe`."""
    if task.probe_kind == "least_squares":
        if row_weight is not None:
            raise ValueError("the least-squares probe takes no row weights (cross-fit it fold by fold)")
        return least_squares_probe(Z, y, Z_test, y_test, ridge=protocol.probe_ridge)
    if task.probe_kind == "logistic":
        return logistic_probe(Z, y, Z_test, y_test, n_outputs, l2=protocol.probe_l2,
                              max_iter=protocol.heldout_max_iter if heldout else protocol.probe_max_iter,
                              tol=protocol.heldout_tol if heldout else protocol.probe_tol,
                              ftol=protocol.heldout_ftol if heldout else protocol.probe_ftol, row_weight=row_weight,
                              by_width=by_width)
    raise ValueError(f"no probe of kind {task.probe_kind!r}")
