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

from .latent import PROBE_GROUP_BYTES, Latent, block_latent, control_perms
from .lbfgs import lbfgs_steps, lockstep

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
    P = len(problems)
    out = {"fit": {}, "eval": {}}
    work = {w: torch.zeros(P, dtype=torch.float64) for w in ("evaluations", "flops", "fits", "unconverged")}
    for qs in _groups(problems, H, k, n, n_classes, max_bytes):
        res = _solve(base, H, [problems[q] for q in qs], targets[:, qs], fit_rows, perms, n_classes, l2,
                     max_iter, tol, intercept_step)
        for part in ("fit", "eval"):
            for name, v in res[part].items():
                out[part].setdefault(name, torch.zeros(P, n, dtype=torch.float64, device=dev))[qs] = v
        for name, v in res["work"].items():
            work[name][qs] = v
    return {**out, "work": work}


def solver_bytes(width: int, n_rows: int, n_classes: int) -> float:
    """Working memory of one (problem, fold) of the shared solve: L-BFGS history and vectors
    (~30 parameter vectors of its width) and its logits and gradients on every row (~6 copies);
    the blocks are shared, not counted per problem."""
    return 4.0 * (30 * (width + 1) * n_classes + 6 * n_classes * n_rows)


def _groups(problems: Sequence[Sequence[Read]], H: dict, k: int, n: int, C: int, max_bytes: float) -> list[list[int]]:
    """Problems in solves of at most ``max_bytes``: problems that read a common block (one
    stream's models, controls and blocks) are kept together as far as the cap allows, and
    a problem's folds are never split."""
    parent = list(range(len(problems)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    first: dict[tuple[str, int], int] = {}
    for q, p in enumerate(problems):
        for key, col, _ in p:
            j = first.setdefault((key, col), q)
            parent[root(q)] = root(j)
    members: dict[int, list[int]] = {}
    for q in range(len(problems)):
        members.setdefault(root(q), []).append(q)
    groups: list[list[int]] = [[]]
    used = 0.0
    for comp in sorted(members.values()):
        for q in comp:
            b = k * solver_bytes(sum(H[r[0]] for r in problems[q]), n, C)
            if groups[-1] and used + b > max_bytes:
                groups.append([])
                used = 0.0
            groups[-1].append(q)
            used += b
    return [g for g in groups if g]


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
    """One solve: every (problem, fold) is one L-BFGS problem, one solver per latent width, the
    solvers in lockstep (:func:`.lbfgs.lockstep`) so that each evaluation reads every block once;
    see the module docstring."""
    k, n = fit_rows.shape
    dev = targets.device
    Q = len(problems)
    banks, where = _bank(base, H, [r for p in problems for r in p], perms, fit_rows)
    dtype = next(iter(banks.values())).blocks.dtype
    width = [sum(H[r[0]] for r in p) for p in problems]
    ws_of = sorted(set(width))                                  # one solver per width
    qs_of = [[q for q in range(Q) if width[q] == w] for w in ws_of]
    # fold problems numbered solver by solver, problem-major within: (solver g, its problem i, fold j)
    fp_q = torch.as_tensor([q for qs in qs_of for q in qs for _ in range(k)], dtype=torch.long, device=dev)
    fp_fold = torch.arange(len(fp_q), device=dev) % k
    start = [0]
    for qs in qs_of:
        start.append(start[-1] + len(qs) * k)
    FP, Dmax = len(fp_q), max(ws_of) * C + C
    rows = {h: [] for h in banks}            # per bank: (fold problem, block, fold, offset of its weights)
    for fp in range(FP):
        q, j, off = int(fp_q[fp]), int(fp_fold[fp]), 0
        for r in problems[q]:
            h, b = where[r]
            rows[h].append((fp, b, j, off))
            off += H[r[0]] * C
    rd = {h: torch.as_tensor(v, dtype=torch.long, device=dev).reshape(-1, 4) for h, v in rows.items()}
    Y = targets.T[fp_q].contiguous()                                        # (FP, n)
    mask = fit_rows[fp_fold]                                                # (FP, n)
    weight = mask / mask.sum(1, keepdim=True)                               # mean over the fit rows
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
            idx = local[r[:, 0], None] * Dmax + r[:, 3, None] + torch.arange(h * C, device=dev)
            lay[h] = dict(B=bank.blocks if len(used) == len(bank.blocks) else bank.blocks[used],
                          mu=bank.mu[r[:, 1], r[:, 2]], sd=bank.sd[r[:, 1], r[:, 2]], blk=blk, slot=slot, R=R,
                          nb=len(used), owner=owner, local=local[r[:, 0]], idx=idx)
        cache.insert(0, (models.clone(), local, lay))
        del cache[2:]
        return models, local[models], lay

    def logits(xw: Tensor, lay: dict) -> Tensor:
        """(working set, C, n) logits on every row; ``xw`` (working set, Dmax): each row its
        weights first, its intercepts last."""
        a = len(xw)
        bias = xw[:, -C:].clone()
        acc = torch.zeros(a + 1, C, n, dtype=xw.dtype, device=dev)
        for h, L in lay.items():
            Ws = xw.reshape(-1)[L["idx"]].view(-1, h, C) / L["sd"][:, :, None]          # (reads, H, C)
            bias.index_add_(0, L["local"], -torch.einsum("rhc,rh->rc", Ws, L["mu"]))
            V = torch.zeros(L["nb"], L["R"], C, h, dtype=xw.dtype, device=dev)
            V[L["blk"], L["slot"]] = Ws.transpose(1, 2)
            O = torch.bmm(V.view(L["nb"], L["R"] * C, h), L["B"])                         # (blocks, R·C, n)
            acc.index_add_(0, L["owner"], O.view(-1, C, n))
        return acc[:a].add_(bias[:, :, None])

    def gathered(asked: list) -> tuple[Tensor, Tensor, Tensor, dict, list]:
        """The solvers' requests as one working set: its padded parameters and layout, and
        where each solver's rows and weights sit in it."""
        models = torch.cat([start[g] + ids for g, _, ids in asked])
        ws, pos, lay = working_set(models)
        xw = torch.zeros(len(ws), Dmax, dtype=dtype, device=dev)
        spans, at = [], 0
        for g, x, _ in asked:
            p, n_w = pos[at:at + len(x)], ws_of[g] * C
            xw[p, :n_w], xw[p, -C:] = x[:, :n_w], x[:, n_w:]
            spans.append((p, n_w))
            at += len(x)
        return ws, xw, pos, lay, spans

    def evaluate(asked: list) -> list[tuple[Tensor, Tensor]]:
        ws, xw, _, lay, spans = gathered(sorted(asked, key=lambda a: a[0]))
        logp = torch.log_softmax(logits(xw, lay), 1)
        target = Y[ws][:, None]
        wt = weight[ws]
        ce = -(logp.gather(1, target)[:, 0].double() * wt.double()).sum(1)   # float64: see logistic_probe
        G = logp.exp_().scatter_add_(1, target, torch.full_like(target, -1, dtype=dtype)).mul_(wt[:, None])
        gb = G.sum(2)                                                                     # (working set, C)
        grad = torch.zeros(len(ws), Dmax, dtype=dtype, device=dev)
        grad[:, -C:] = gb
        Gx = torch.cat([G, torch.zeros(1, C, n, dtype=dtype, device=dev)])
        for h, L in lay.items():
            Gv = Gx[L["owner"]].view(L["nb"], L["R"] * C, n)
            GB = torch.bmm(L["B"], Gv.transpose(1, 2)).view(L["nb"], h, L["R"], C)       # (blocks, H, R, C)
            gW = (GB[L["blk"], :, L["slot"]] - L["mu"][:, :, None] * gb[L["local"]][:, None, :]) / L["sd"][:, :, None]
            grad.view(-1)[L["idx"].view(-1)] = gW.reshape(-1)
        answers = {}
        for (g, x, _), (p, n_w) in zip(sorted(asked, key=lambda a: a[0]), spans):
            w = x[:, :n_w]
            answers[g] = (ce[p] + 0.5 * l2 * (w.double() * w).sum(1),
                          torch.cat([grad[p, :n_w] + l2 * w, grad[p, -C:]], 1))
        return [answers[g] for g, _, _ in asked]

    solvers = []
    for w, qs in zip(ws_of, qs_of):
        D = w * C + C
        h0 = torch.full((1, D), 1.0, dtype=dtype, device=dev)
        h0[:, -C:] = intercept_step
        solvers.append(lbfgs_steps(torch.zeros(len(qs) * k, D, dtype=dtype, device=dev), max_iter=max_iter, tol=tol,
                                   precondition=None if intercept_step == 1.0 else lambda v, _, h0=h0: v * h0))
    done = lockstep(solvers, evaluate)
    cache.clear()
    with torch.no_grad():          # every problem at its solution, in a fresh working set
        ws, xw, _, lay, _ = gathered([(g, x, torch.arange(len(x), device=dev)) for g, (x, _) in enumerate(done)])
        lg = logits(xw, lay)
        loss = F.cross_entropy(lg, Y, reduction="none").double()                         # (FP, n)
        correct = (lg.argmax(1) == Y).double()
    order = torch.argsort(fp_q[::k])                           # solver order -> the problems' order
    m = mask.view(Q, k, n)[order]
    fit = {name: (v.view(Q, k, n)[order] * m).sum(1) / (k - 1) for name, v in (("loss", loss), ("correct", correct))}
    ev = {name: (v.view(Q, k, n)[order] * ~m).sum(1) for name, v in (("loss", loss), ("correct", correct))}
    info = {key: torch.cat([d[key] for _, d in done]).double().cpu() for key in ("evaluations", "converged")}
    n_fit = mask.sum(1).double().cpu()
    widths = torch.as_tensor(width, dtype=torch.float64)[fp_q.cpu()]
    flops = (4 * n_fit * info["evaluations"] + 2 * n) * widths * C
    per = lambda v: v.view(Q, k).sum(1)[order.cpu()]          # noqa: E731
    return {"fit": fit, "eval": ev,
            "work": {"evaluations": per(info["evaluations"]), "flops": per(flops),
                     "fits": torch.full((Q,), float(k), dtype=torch.float64),
                     "unconverged": per(1 - info["converged"])}}
