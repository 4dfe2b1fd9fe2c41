"""L-BFGS over a batch of independent problems, each with its own history and step.

Minimizing the *sum* of A independent objectives with one L-BFGS couples them
through one line search and shared curvature pairs, and then the batch needs
many times the iterations of its slowest member.  Here every problem keeps its
own curvature pairs, step length (backtracking Armijo) and stopping test; each
function evaluation is one batched computation over the problems still running.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Objective = Callable[[Tensor, Tensor], Tensor]   # f(x (a, D), indices (a,)) -> values (a,)


def _value_and_grad(f: Objective, x: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    with torch.enable_grad():
        x = x.detach().requires_grad_()
        v = f(x, idx)
        (g,) = torch.autograd.grad(v.sum(), x)
    return v.detach(), g


@torch.no_grad()
def batched_lbfgs(f: Objective, x0: Tensor, max_iter: int = 500, tol: float = 1e-5,
                  history: int = 10, max_backtracks: int = 30) -> tuple[Tensor, dict]:
    """Minimize ``f(x, idx)[i]`` over ``x[i]`` for every problem; ``x0`` is (A, D).

    ``f`` is called with the rows of the problems still running and their
    indices.  A problem stops when its largest gradient entry is below ``tol``
    or its line search fails.  Returns the solution and per-problem
    ``{"iterations": (A,), "converged": (A,)}``.
    """
    x = x0.detach().clone()
    A, D = x.shape
    every = torch.arange(A, device=x.device)
    v, g = _value_and_grad(f, x, every)
    S = torch.zeros(history, A, D, dtype=x.dtype, device=x.device)   # curvature pairs, ring buffer
    Y = torch.zeros_like(S)
    R = torch.zeros(history, A, dtype=x.dtype, device=x.device)      # 1/(s·y); 0 marks an empty slot
    gamma = torch.ones(A, dtype=x.dtype, device=x.device)
    iters = torch.zeros(A, dtype=torch.long, device=x.device)
    active = g.abs().amax(1) > tol
    for it in range(max_iter):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        sel = slice(None) if idx.numel() == A else idx   # all running: views, no copies
        xa, ga, va = x[sel], g[sel], v[sel]
        order = [(it - 1 - j) % history for j in range(min(it, history))]   # newest first
        q = ga.clone()
        alphas = []
        for j in order:
            a = R[j, sel] * (S[j, sel] * q).sum(1)
            q -= a[:, None] * Y[j, sel]
            alphas.append(a)
        d = gamma[idx, None] * q
        for j, a in zip(reversed(order), reversed(alphas)):
            b = R[j, sel] * (Y[j, sel] * d).sum(1)
            d += S[j, sel] * (a - b)[:, None]
        d = -d
        dg = (d * ga).sum(1)
        bad = dg >= 0                                  # not a descent direction: steepest descent
        d = torch.where(bad[:, None], -ga, d)
        dg = torch.where(bad, -(ga * ga).sum(1), dg)
        t = torch.clamp(1.0 / ga.abs().sum(1), max=1.0) if it == 0 else torch.ones_like(va)
        x_new = xa + t[:, None] * d
        v_new, g_new = _value_and_grad(f, x_new, idx)
        ok = v_new <= va + 1e-4 * t * dg
        for _ in range(max_backtracks):          # halve the step of the problems that failed, only those
            if bool(ok.all()):
                break
            p = (~ok).nonzero().squeeze(1)
            t[p] *= 0.5
            x_new[p] = xa[p] + t[p, None] * d[p]
            v_new[p], g_new[p] = _value_and_grad(f, x_new[p], idx[p])
            ok[p] = v_new[p] <= va[p] + 1e-4 * t[p] * dg[p]
        s, y = x_new - xa, g_new - ga
        sy = (s * y).sum(1)
        keep = ok & (sy > 1e-10)
        slot = it % history
        S[slot, sel] = torch.where(keep[:, None], s, torch.zeros_like(s))
        Y[slot, sel] = torch.where(keep[:, None], y, torch.zeros_like(y))
        R[slot, sel] = torch.where(keep, 1.0 / sy.clamp(min=1e-10), torch.zeros_like(sy))
        gamma[sel] = torch.where(keep, sy / (y * y).sum(1).clamp(min=1e-30), gamma[sel])
        x[sel] = torch.where(ok[:, None], x_new, xa)
        v[sel] = torch.where(ok, v_new, va)
        g[sel] = torch.where(ok[:, None], g_new, ga)
        iters[idx] += ok.long()
        active[idx] = ok & (g[idx].abs().amax(1) > tol)
    return x, {"iterations": iters, "converged": g.abs().amax(1) <= tol}
