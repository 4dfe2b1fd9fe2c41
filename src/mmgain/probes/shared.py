"""The cross-fitted logistic probe over shared blocks: every test-row problem of a stream in
one batched L-BFGS, each latent block read once per evaluation.

The cross-fitted probe behind γ̂ fits, on the test rows, each model, one width-matched control
per pair and each modality's block alone, once per fold.  All of them read one of a few
distinct (model, modality) blocks: a model reads its own blocks, a control reads model N's
blocks and one permuted block of model M, a deficit problem one block, and every fold reads
the same blocks on other rows.  Here a *problem* is a list of *reads* (modality, block column,
permutation) and its target; the solver stacks the heads of every problem and fold that read a
block into one matrix, so a block meets all its readers in one GEMM (logits) and one more
(gradient), instead of one small GEMM per problem on a copy of its rows.

What it changes is the summation order, not the problem: each fold's head is fitted on that
fold's fit rows, its features standardized on them (the standardization is folded into the
weights: W/σ on the block, −Wᵀμ/σ on the intercept), with the same loss, L2 term, stopping rule
and intercept step as :func:`.latent.logistic_probe`.  The logits are computed on every row
(a fold's held-out rows too: its outcomes come from the same pass), so the GEMMs do k/(k−1)
times the fit rows' work; the counted ``flops`` are the fit rows' only, as for the per-fold
probe.  A permuted block is copied once per control (not once per fold and problem).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .latent import PROBE_GROUP_BYTES, Latent, block_latent, control_perms, probe_bytes_per_model
from .lbfgs import batched_lbfgs

Read = tuple[str, int, int]      # (modality, column of its block, permutation index or -1)


def model_reads(Z: Latent, a: int) -> list[Read]:
    """The reads of model ``a`` of ``Z``: its blocks in the order of ``Z.names``."""
    return [(k, list(Z.members[k]).index(a), -1) for k in Z.names if a in Z.members[k]]


def control_reads(Z: Latent, n_model: int, m_model: int, k: str, perm: int) -> list[Read]:
    """The width-matched control of :func:`.latent.with_matched_controls`: model ``n_model``'s
    blocks plus model ``m_model``'s block of ``k`` with its rows permuted (``perm``), in the
    order of ``Z.names``."""
    return [(j, list(Z.members[j]).index(m_model), perm) if j == k else (j, list(Z.members[j]).index(n_model), -1)
            for j in Z.names if j == k or n_model in Z.members[j]]


def gap_and_deficit_probe(Z: Latent, y: Tensor, folds: np.ndarray, pairs: Sequence[tuple[int, int, str]],
                          perm_seeds: Sequence[int], n_classes: int, deficit_of: set[int] | None = None,
                          Z_blocks: Latent | None = None, **solver) -> tuple[dict, dict | None]:
    """:func:`.latent.latent_gap_probe` (the models of ``Z`` and one width-matched control per
    pair ``(m_model, n_model, k)``) and, for the models ``deficit_of``, each of their blocks of
    ``Z_blocks`` (default ``Z``) alone (:func:`.latent.block_latent`), all in one
    :func:`shared_logistic_probe`.  Returns the gap probe's ``{"models", "controls"}`` and the
    blocks' ``{"fit", "eval", "work", "origin"}`` (None without ``deficit_of``)."""
    A = Z.n_models
    y = y[:, None].expand(-1, A) if y.dim() == 1 else y
    problems = [model_reads(Z, a) for a in range(A)]
    problems += [control_reads(Z, nm, mm, k, i) for i, (mm, nm, k) in enumerate(pairs)]
    targets = [*range(A), *(mm for mm, _, _ in pairs)]
    perms = control_perms(len(folds), perm_seeds, y.device)
    spans = {"models": slice(0, A), "controls": slice(A, len(problems))}
    origin = None
    same = Z_blocks is None or Z_blocks is Z
    if deficit_of:
        source = Z if same else Z_blocks            # block_latent's order, without its copies
        origin = [(m, k) for k in source.blocks for m in source.members[k] if m in deficit_of]
        if same:                                    # the blocks are the models' own: read once
            problems += [[(k, list(Z.members[k]).index(m), -1)] for m, k in origin]
            targets += [m for m, _ in origin]
            spans["blocks"] = slice(len(targets) - len(origin), len(targets))
    res = shared_logistic_probe(Z, y[:, targets], folds, problems, perms, n_classes, **solver)
    part = lambda span: {w: {k: v[span] for k, v in res[w].items()} for w in ("fit", "eval", "work")}  # noqa: E731
    held = {name: part(spans[name]) for name in ("models", "controls")}
    if origin is None:
        return held, None
    if "blocks" in spans:
        return held, {**part(spans["blocks"]), "origin": origin}
    blocks, _ = block_latent(Z_blocks, deficit_of)
    alone = shared_logistic_probe(blocks, y[:, [m for m, _ in origin]], folds,
                                  [model_reads(blocks, a) for a in range(blocks.n_models)], [], n_classes, **solver)
    return held, {**alone, "origin": origin}


@dataclass
class _Bank:
    """The distinct blocks one group of problems reads, of one width H: ``blocks`` (B, H, n),
    globally standardized, rows last; their fold moments ``mu``/``sd`` (B, folds, H)."""

    blocks: Tensor
    mu: Tensor
    sd: Tensor


def shared_logistic_probe(Z: Latent, targets: Tensor, folds: np.ndarray, problems: Sequence[Sequence[Read]],
                          perms: Sequence[Tensor], n_classes: int, l2: float = 1e-3, max_iter: int = 500,
                          tol: float = 1e-5, intercept_step: float = 10.0,
                          max_bytes: float = PROBE_GROUP_BYTES) -> dict[str, dict]:
    """Cross-fitted multinomial logistic probes of ``problems`` on the rows of ``Z``.

    ``targets`` is (n, len(problems)) (each problem's labels), ``folds`` a fold id per row,
    ``perms`` the row permutations the reads name.  Returns what :func:`.latent.cross_fitted_probe`
    returns: ``{"fit": {"loss", "correct"}, "eval": {...}}`` per problem and row (P, n), and
    ``work`` ({"evaluations", "flops", "fits", "unconverged"}, summed over the folds, (P,)).

    Problems are solved in groups of one latent width (L-BFGS state of that width, not the
    widest), each group cut to ``max_bytes`` of solver state (a constant, so that the memory
    budget never moves a number); a problem's folds stay in one group."""
    n, k = len(folds), int(folds.max()) + 1
    if k < 2:
        raise ValueError("cross-fitting needs at least two folds")
    dev = targets.device
    f = torch.as_tensor(folds, device=dev)
    fit_rows = torch.stack([f != j for j in range(k)])                        # (k, n)
    base = {}
    for key, blk in Z.blocks.items():               # every distinct block standardized once, rows last
        b = blk.permute(1, 2, 0).contiguous()
        sd = b.std(2, unbiased=False, keepdim=True)
        sd = torch.where(sd > 1e-8, sd, torch.ones_like(sd))
        base[key] = (b.sub_(b.mean(2, keepdim=True)).div_(sd), sd[..., 0])
    H = {key: blk.shape[-1] for key, blk in Z.blocks.items()}
    widths = [sum(H[r[0]] for r in p) for p in problems]
    P = len(problems)
    out = {"fit": {}, "eval": {}}
    work = {w: torch.zeros(P, dtype=torch.float64) for w in ("evaluations", "flops", "fits", "unconverged")}
    for w in sorted(set(widths)):
        same = [q for q in range(P) if widths[q] == w]
        per = k * probe_bytes_per_model(n, w, n_classes, False)
        size = max(1, int(max_bytes // max(per, 1.0)))
        for start in range(0, len(same), size):
            qs = same[start:start + size]
            res = _solve(base, H, [problems[q] for q in qs], targets[:, qs], fit_rows, perms, n_classes, l2,
                         max_iter, tol, intercept_step)
            for part in ("fit", "eval"):
                for name, v in res[part].items():
                    out[part].setdefault(name, torch.zeros(P, n, dtype=torch.float64, device=dev))[qs] = v
            for name, v in res["work"].items():
                work[name][qs] = v
    return {**out, "work": work}


def _bank(base: dict, H: dict, reads: list[Read], perms: Sequence[Tensor], fit_rows: Tensor
          ) -> tuple[dict[int, _Bank], dict[Read, tuple[int, int]]]:
    """The distinct blocks of ``reads``, banked by width: ``{H: _Bank}`` and, per read, its
    (H, index in that bank).  A permuted block is one copy, its rows in the problem's order."""
    where: dict[Read, tuple[int, int]] = {}
    parts: dict[int, list[Tensor]] = {}
    raw_sd: dict[int, list[Tensor]] = {}
    for r in dict.fromkeys(reads):
        key, col, perm = r
        blk, sd = base[key][0][col], base[key][1][col]
        parts.setdefault(H[key], []).append(blk if perm < 0 else blk[:, perms[perm]])
        raw_sd.setdefault(H[key], []).append(sd)
        where[r] = (H[key], len(parts[H[key]]) - 1)
    banks = {}
    for h, blocks in parts.items():
        B = torch.stack(blocks)                                            # (B, H, n)
        m = fit_rows.to(B.dtype)
        cnt = m.sum(1)                                                     # (k,)
        mu = torch.einsum("bhn,jn->bjh", B, m) / cnt[:, None]              # (B, k, H)
        var = torch.stack([((B - mu[:, j, :, None]) ** 2 * m[j]).sum(2) / cnt[j] for j in range(len(m))], 1)
        sd = var.sqrt()
        g = torch.stack(raw_sd[h])[:, None, :]                             # (B, 1, H): the block's global sd
        # as the per-fold probe: a unit whose fit rows have (raw) sd ≤ 1e-8 is centred, not scaled
        sd = torch.where(sd * g > 1e-8, sd, 1.0 / g)
        banks[h] = _Bank(B, mu, sd)
    return banks, where


def _solve(base, H, problems, targets, fit_rows, perms, C, l2, max_iter, tol, intercept_step) -> dict:
    """One width group: every (problem, fold) is one L-BFGS problem; see the module docstring."""
    k, n = fit_rows.shape
    dev = targets.device
    Q = len(problems)
    reads = [r for p in problems for r in p]
    banks, where = _bank(base, H, reads, perms, fit_rows)
    # (problem, fold) pairs, problem-major; per read of each: its bank, block, fold, parameter offset
    FP = Q * k
    n_w = sum(H[r[0]] for r in problems[0]) * C
    D = n_w + C
    rows = {h: [] for h in banks}            # per bank: (fold problem, block, fold, offset)
    for q, p in enumerate(problems):
        for j in range(k):
            off = 0
            for r in p:
                h, b = where[r]
                rows[h].append((q * k + j, b, j, off))
                off += H[r[0]] * C
    rd = {h: torch.as_tensor(v, dtype=torch.long, device=dev).reshape(-1, 4) for h, v in rows.items()}
    fold_of = torch.arange(FP, device=dev) % k
    Y = targets.T.repeat_interleave(k, 0).contiguous()                     # (FP, n)
    mask = fit_rows[fold_of]                                               # (FP, n)
    weight = mask / mask.sum(1, keepdim=True)            # mean over the fit rows
    cache: list[tuple[Tensor, Tensor, dict]] = []     # the two latest working sets

    def working_set(models: Tensor) -> tuple[Tensor, Tensor, dict]:
        """A working set ⊇ ``models`` (ascending fold problems), their positions in it, and its
        layout: per bank, the working set's reads, each block's readers in slots 0..R−1 (R: the
        most readers of one block), and the blocks read.  As in the per-fold probe, a working set
        is reused while ``models`` are at least 3/4 of it (the others ride along with zero
        weights); two are kept, the problems still running and those in a line search."""
        for ws, local, lay in cache:
            pos = local[models]
            if bool((pos >= 0).all()) and len(models) >= 0.75 * len(ws):
                return ws, pos, lay
        local = torch.full((FP,), -1, dtype=torch.long, device=dev)
        local[models] = torch.arange(len(models), device=dev)
        lay = {}
        for h, r in rd.items():
            r = r[local[r[:, 0]] >= 0]
            if not len(r):
                continue
            used, blk = torch.unique(r[:, 1], return_inverse=True)
            order = torch.argsort(blk, stable=True)
            r, blk = r[order], blk[order]
            counts = torch.bincount(blk, minlength=len(used))
            slot = torch.arange(len(r), device=dev) - (torch.cumsum(counts, 0) - counts)[blk]
            R = int(counts.max())
            owner = torch.full((len(used) * R,), len(models), dtype=torch.long, device=dev)   # empty: a spare row
            owner[blk * R + slot] = local[r[:, 0]]
            bank = banks[h]
            idx = local[r[:, 0], None] * D + r[:, 3, None] + torch.arange(h * C, device=dev)
            lay[h] = dict(B=bank.blocks if len(used) == len(bank.blocks) else bank.blocks[used],
                          mu=bank.mu[r[:, 1], r[:, 2]], sd=bank.sd[r[:, 1], r[:, 2]], blk=blk, slot=slot, R=R,
                          nb=len(used), owner=owner, local=local[r[:, 0]], idx=idx)
        cache.insert(0, (models.clone(), local, lay))
        del cache[2:]
        return models, local[models], lay

    def logits(x: Tensor, models: Tensor) -> tuple[Tensor, Tensor, Tensor, dict]:
        """(working set, C, n) logits on every row for the parameters ``x`` of ``models``; the
        working set, the models' positions in it, and its layout."""
        ws, pos, lay = working_set(models)
        a = len(ws)
        xw = x if a == len(models) else torch.zeros(a, D, dtype=x.dtype, device=dev).index_copy_(0, pos, x)
        bias = xw[:, n_w:].clone()
        acc = torch.zeros(a + 1, C, n, dtype=x.dtype, device=dev)
        for h, L in lay.items():
            Ws = xw.reshape(-1)[L["idx"]].view(-1, h, C) / L["sd"][:, :, None]          # (reads, H, C)
            bias.index_add_(0, L["local"], -torch.einsum("rhc,rh->rc", Ws, L["mu"]))
            V = torch.zeros(L["nb"], L["R"], C, h, dtype=x.dtype, device=dev)
            V[L["blk"], L["slot"]] = Ws.transpose(1, 2)
            O = torch.bmm(V.view(L["nb"], L["R"] * C, h), L["B"])                         # (blocks, R·C, n)
            acc.index_add_(0, L["owner"], O.view(-1, C, n))
        return acc[:a].add_(bias[:, :, None]), ws, pos, lay

    def value_and_grad(x: Tensor, models: Tensor) -> tuple[Tensor, Tensor]:
        lg, ws, pos, lay = logits(x, models)
        logp = torch.log_softmax(lg, 1)
        target = Y[ws][:, None]
        wt = weight[ws]
        ce = -(logp.gather(1, target)[:, 0].double() * wt.double()).sum(1)   # float64: see logistic_probe
        G = logp.exp_().scatter_add_(1, target, torch.full_like(target, -1, dtype=x.dtype)).mul_(wt[:, None])
        gb = G.sum(2)                                                                     # (working set, C)
        grad = torch.zeros(len(ws), D, dtype=x.dtype, device=dev)
        grad[:, n_w:] = gb
        Gx = torch.cat([G, torch.zeros(1, C, n, dtype=x.dtype, device=dev)])
        for h, L in lay.items():
            Gv = Gx[L["owner"]].view(L["nb"], L["R"] * C, n)
            GB = torch.bmm(L["B"], Gv.transpose(1, 2)).view(L["nb"], h, L["R"], C)       # (blocks, H, R, C)
            gW = (GB[L["blk"], :, L["slot"]] - L["mu"][:, :, None] * gb[L["local"]][:, None, :]) / L["sd"][:, :, None]
            grad.view(-1)[L["idx"].view(-1)] = gW.reshape(-1)
        if len(ws) != len(models):
            ce, grad = ce[pos], grad[pos]
        wx = x * l2_mask
        return ce + 0.5 * l2 * (wx.double() * x).sum(1), grad + l2 * wx

    dtype = next(iter(banks.values())).blocks.dtype
    l2_mask = torch.zeros(1, D, dtype=dtype, device=dev)
    l2_mask[:, :n_w] = 1.0
    h0 = torch.where(l2_mask > 0, 1.0, intercept_step)
    x, info = batched_lbfgs(None, torch.zeros(FP, D, dtype=dtype, device=dev), max_iter=max_iter, tol=tol,
                            value_and_grad=value_and_grad,
                            precondition=None if intercept_step == 1.0 else lambda v, _: v * h0)
    cache.clear()
    with torch.no_grad():
        lg = logits(x, torch.arange(FP, device=dev))[0]       # a fresh working set: every problem
        loss = F.cross_entropy(lg, Y, reduction="none").double()                         # (FP, n)
        correct = (lg.argmax(1) == Y).double()
    m = mask.view(Q, k, n)
    fit = {name: (v.view(Q, k, n) * m).sum(1) / (k - 1) for name, v in (("loss", loss), ("correct", correct))}
    ev = {name: (v.view(Q, k, n) * ~m).sum(1) for name, v in (("loss", loss), ("correct", correct))}
    evals = info["evaluations"].double().cpu()
    width = n_w / C
    n_fit = mask.sum(1).double().cpu()
    flops = (4 * n_fit * evals + 2 * n) * width * C
    per = lambda v: v.view(Q, k).sum(1)                    # noqa: E731
    return {"fit": fit, "eval": ev,
            "work": {"evaluations": per(evals), "flops": per(flops), "fits": torch.full((Q,), float(k), dtype=torch.float64),
                     "unconverged": per(1 - info["converged"].double().cpu())}}
