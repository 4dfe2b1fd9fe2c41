"""L-BFGS over a batch of independent problems, each with its own history and step.

Minimizing the *sum* of A independent objectives with one L-BFGS couples them
through one line search and shared curvature pairs, and then the batch needs
many times the iterations of its slowest member.  Here every problem keeps its
own curvature pairs, step length (backtracking: Armijo, or the approximate
Wolfe conditions once f's decrease is below its rounding error) and stopping
test; each function evaluation is one batched computation over the problems
still running.

The state of finished problems is dropped once they are a quarter of it, so the
two-loop recursion runs on contiguous tensors (no per-iteration gathers of the
history) and never on more than 4/3 of the problems still running.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Objective = Callable[[Tensor, Tensor], Tensor]   # f(x (a, D), indices (a,)) -> values (a,)
ValueAndGrad = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]   # -> values (a,), gradients (a, D)
Preconditioner = Callable[[Tensor, Tensor], Tensor]   # P⁻¹ v for v (a, D), indices (a,) -> (a, D)


def autograd_value_and_grad(f: Objective) -> ValueAndGrad:
    """Values and gradients of ``f`` by autograd (for objectives without a closed-form gradient)."""
    def vg(x: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            x = x.detach().requires_grad_()
            v = f(x, idx)
            (g,) = torch.autograd.grad(v.sum(), x)
        return v.detach(), g
    return vg


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot products of two (A, D) tensors."""
    return torch.linalg.vecdot(a, b)


@torch.no_grad()
def batched_lbfgs(f: Objective | None, x0: Tensor, max_iter: int = 500, tol: float = 1e-5,
                  history: int = 10, max_backtracks: int = 30, value_and_grad: ValueAndGrad | None = None,
                  approx_eps: float = 1e-6, precondition: Preconditioner | None = None,
                  lazy: bool | None = None, ftol: float = 0.0, window: int = 10,
                  near: float = 10.0) -> tuple[Tensor, dict]:
    """Minimize ``f(x, idx)[i]`` over ``x[i]`` for every problem; ``x0`` is (A, D).

    ``f`` is called with the rows of the problems still running and their
    indices (original numbering); ``value_and_grad`` (same call, returning values
    and gradients) replaces it when the gradient has a closed form.  ``approx_eps``
    is the relative error of f that the approximate Wolfe test allows (0: Armijo
    only).  A problem
    stops when its largest gradient entry is below ``tol``; when ``ftol`` > 0, its objective
    fell by at most ``ftol`` over its last ``window`` iterations and its largest gradient entry
    is below ``near``·``tol``; or when its line search fails.  Returns the solution and
    per-problem ``{"iterations": (A,), "converged": (A,), "stalled": (A,), "evaluations": (A,),
    "rounds": int, "calls": int}``
    (converged: stopped by the gradient or the decrease test, not by the cap or a failed line
    search; stalled: by the decrease test; evaluations: the
    calls of ``f`` that included the problem, line-search trials too — the work the solver spent
    on it; ``rounds``: the iterations the call ran, its slowest problem's; ``calls``: its calls
    of ``f``.  Rounds and calls run one after the other whatever the number of problems, so on
    a GPU, where each costs launches and host synchronizations rather than arithmetic, they and
    not the evaluations set the time).

    ``precondition`` applies P⁻¹ of a fixed positive definite P that approximates each
    problem's curvature: the recursion then starts from H₀ = γ·P⁻¹ instead of γ·I, with
    γ = sᵀy / yᵀP⁻¹y (Nocedal and Wright, 2006, §7.2), so ill-conditioned directions that P
    knows cost no iterations.

    ``lazy`` (default: on any device but the CPU) replaces the host synchronizations that only
    skip work (is any direction not a descent direction? did every step succeed?) by masked
    updates that do it always: the same numbers; on a GPU a synchronization stalls the queue of
    launches, on the CPU the skipped passes are the cheaper side.  What is left, either way, is
    one read of the running problems at the start of a round and one per line-search trial
    (which problems still fail), besides what ``value_and_grad`` reads.

    The decrease test cuts the tail in which a problem's largest gradient entry is just above
    ``tol`` while its objective no longer falls: a batched call runs as many rounds as its
    slowest problem.  ``ftol`` is in the objective's own units, an absolute decrease.  A flat
    stretch alone is not enough: without the gate ``near``, a test that always fires moves γ̂
    past the stopping rule's criterion where the gradient tolerance alone does not
    (``tests/test_probes.py``); the gate keeps it to problems already close by the gradient's
    measure.
    """
    vg = value_and_grad or autograd_value_and_grad(f)

    def accept(v_new, g_new, v0, t, d, dg):
        """Armijo, or Hager and Zhang's approximate Wolfe conditions (CG_DESCENT, 2005): near the
        optimum the decrease Armijo asks for is below the objective's rounding error (float32
        sums over n rows), so a step is also taken when f did not rise beyond that error and the
        slope along d has flattened from dg to within [0.9·dg, −0.8·dg]."""
        armijo = v_new <= v0 + 1e-4 * t * dg
        if approx_eps <= 0:
            return armijo
        slope = (g_new * d).sum(1)
        return armijo | ((v_new <= v0 + approx_eps * v0.abs()) & (slope <= -0.8 * dg) & (slope >= 0.9 * dg))

    A, D = x0.shape
    dev, dt = x0.device, x0.dtype
    x_out, g_out = x0.detach().clone(), torch.zeros_like(x0)
    iters = torch.zeros(A, dtype=torch.long, device=dev)
    evals = torch.ones(A, dtype=torch.long, device=dev)    # function evaluations per problem
    ids = torch.arange(A, device=dev)              # original index of each state row
    x = x_out.clone()
    v, g = vg(x, ids)
    calls, rounds = 1, 0
    S = torch.zeros(history, A, D, dtype=dt, device=dev)   # curvature pairs, ring buffer
    Y = torch.zeros_like(S)
    R = torch.zeros(history, A, dtype=dt, device=dev)      # 1/(s·y); 0 marks an empty slot
    gamma = torch.ones(A, dtype=dt, device=dev)
    active = g.abs().amax(1) > tol
    stalled = torch.zeros(A, dtype=torch.bool, device=dev)
    F = torch.full((window, A), float("inf"), dtype=v.dtype, device=dev) if ftol > 0 else None   # v, last iterations
    lazy = dev.type != "cpu" if lazy is None else lazy
    for it in range(max_iter):
        running = active.nonzero().squeeze(1)     # the round's one synchronization before the line search
        n_act = len(running)
        if n_act == 0:
            break
        rounds += 1
        if n_act < 0.75 * len(ids):                # drop the finished problems from the state
            keep = running
            x_out[ids] = x
            g_out[ids] = g
            S, Y, R = S[:, keep], Y[:, keep], R[:, keep]
            F = None if F is None else F[:, keep]
            x, g, v, gamma, ids, active = x[keep], g[keep], v[keep], gamma[keep], ids[keep], active[keep]
        # the two-loop recursion on every state row (finished rows: their result is discarded)
        order = [(it - 1 - j) % history for j in range(min(it, history))]   # newest first
        q = g.clone()
        alphas = []
        for j in order:
            a = R[j] * _dot(S[j], q)
            q.addcmul_(Y[j], a[:, None], value=-1)
            alphas.append(a)
        d = (precondition(q, ids) if precondition is not None else q).mul_(gamma[:, None])
        for j, a in zip(reversed(order), reversed(alphas)):
            d.addcmul_(S[j], (a - R[j] * _dot(Y[j], d))[:, None])
        d = d.neg_()
        dg = _dot(d, g)
        bad = dg >= 0                                  # not a descent direction: steepest descent
        if lazy or bool(bad.any()):
            d = torch.where(bad[:, None], -g, d)
            dg = torch.where(bad, -_dot(g, g), dg)
        t = torch.clamp(1.0 / g.abs().sum(1), max=1.0) if it == 0 else torch.ones(v.shape, dtype=dt, device=dev)
        every = n_act == len(active)               # (after the compaction above, every row runs)
        run = slice(None) if every else running
        xa, ga, va, ta, da, dga = x[run], g[run], v[run], t[run], d[run], dg[run]
        x_new = xa + ta[:, None] * da
        ids_run = ids if every else ids[run]      # (the same tensor while the state is: f may reuse its work)
        v_new, g_new = vg(x_new, ids_run)
        calls += 1
        evals[ids_run] += 1
        ok = accept(v_new, g_new, va, ta, da, dga)
        for _ in range(max_backtracks):          # shorten the step of the problems that failed, only those
            p = (~ok).nonzero().squeeze(1)         # (one synchronization a trial)
            if len(p) == 0:
                break
            ta[p] *= 0.5
            x_new[p] = xa[p] + ta[p, None] * da[p]
            v_new[p], g_new[p] = vg(x_new[p], ids_run[p])
            calls += 1
            evals[ids_run[p]] += 1
            ok[p] = accept(v_new[p], g_new[p], va[p], ta[p], da[p], dga[p])
        s, y = x_new.sub(xa), g_new.sub(ga)
        sy = _dot(s, y)
        keep = ok & (sy > 1e-10)
        slot = it % history
        if lazy or not bool(keep.all()):           # a failed or uninformative step stores an empty pair
            s = torch.where(keep[:, None], s, torch.zeros_like(s))
            y = torch.where(keep[:, None], y, torch.zeros_like(y))
        S[slot, run], Y[slot, run] = s, y
        R[slot, run] = torch.where(keep, 1.0 / sy.clamp(min=1e-10), torch.zeros_like(sy))
        py = precondition(y, ids_run) if precondition is not None else y
        gamma[run] = torch.where(keep, sy / _dot(y, py).clamp(min=1e-30), gamma[run])
        if not every:                              # finished rows keep an empty slot
            done = ~active
            if lazy:                               # (a boolean index would synchronize)
                S[slot].masked_fill_(done[:, None], 0.0), Y[slot].masked_fill_(done[:, None], 0.0)
                R[slot].masked_fill_(done, 0.0)
            else:
                S[slot, done], Y[slot, done], R[slot, done] = 0.0, 0.0, 0.0
        if not lazy and bool(ok.all()):
            x[run], v[run], g[run] = x_new, v_new, g_new
        else:
            x[run] = torch.where(ok[:, None], x_new, xa)
            v[run] = torch.where(ok, v_new, va)
            g[run] = torch.where(ok[:, None], g_new, ga)
        iters[ids_run] += ok.long()
        gmax = g[run].abs().amax(1)
        going = ok & (gmax > tol)
        if F is not None:                                   # (inf before the window is full)
            flat = (F[it % window, run] - v[run] <= ftol) & (gmax <= near * tol)
            F[it % window, run] = v[run]
            stalled[ids_run] |= going & flat
            going &= ~flat
        active[run] = going
    x_out[ids] = x
    g_out[ids] = g
    return x_out, {"iterations": iters, "converged": (g_out.abs().amax(1) <= tol) | stalled, "stalled": stalled,
                   "evaluations": evals,
                   "rounds": rounds, "calls": calls}
