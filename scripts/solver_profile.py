"""Where a run's probe time goes, solver call by solver call (issue 20, item 6).

Runs ``mmgain run`` with the given arguments while counting every :func:`batched_lbfgs` call:
its problems, iterations, evaluations and wall time (synchronized on cuda), and the time spent
in its objective.  On a GPU the difference between the solver's time and its objective's is
the per-iteration bookkeeping and host synchronization that a sync-free solver would remove.

    PYTHONPATH=src python3 scripts/solver_profile.py run --device cuda --quick --quiet --out /tmp/x

A first argument ``--one-solve on`` or ``--one-solve off`` forces the chunk's probe layout
(:func:`mmgain.run.chunk._probe_chunk`; default: one solve on a GPU, call by call on the CPU), so
the sequential rounds of both can be counted on either device.
"""
import sys
import time

import torch

from mmgain.probes import latent

calls = []


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def counted(f, x0, **kw):
    vg = kw["value_and_grad"]
    spent = [0.0, 0]

    def timed(x, idx):
        _sync()
        t = time.perf_counter()
        out = vg(x, idx)
        _sync()
        spent[0] += time.perf_counter() - t
        spent[1] += 1
        return out

    _sync()
    t0 = time.perf_counter()
    x, info = solver(f, x0, **{**kw, "value_and_grad": timed})
    _sync()
    calls.append({"problems": x0.shape[0], "width": x0.shape[1], "s": time.perf_counter() - t0,
                  "objective_s": spent[0], "objective_calls": spent[1],
                  "iterations": int(info["iterations"].max()), "evaluations": int(info["evaluations"].sum())})
    return x, info


solver = latent.batched_lbfgs
latent.batched_lbfgs = counted

if __name__ == "__main__":
    import functools

    from mmgain.cli import main
    from mmgain.run import chunk

    argv = sys.argv[1:]
    if argv[:1] == ["--one-solve"]:
        chunk._probe_chunk = functools.partial(chunk._probe_chunk, one_solve={"on": True, "off": False}[argv[1]])
        argv = argv[2:]
    t0 = time.perf_counter()
    rc = main(argv)
    wall = time.perf_counter() - t0
    total = sum(c["s"] for c in calls)
    obj = sum(c["objective_s"] for c in calls)
    n_obj = sum(c["objective_calls"] for c in calls)
    iters = sum(c["iterations"] for c in calls)
    print(f"run: exit {rc}, {wall:.1f} s; {len(calls)} solver calls, {sum(c['problems'] for c in calls)} problems, "
          f"{iters} iterations (the longest problem's, summed over calls), {n_obj} objective calls, "
          f"{sum(c['evaluations'] for c in calls)} problem-evaluations")
    print(f"solver {total:.1f} s ({100 * total / wall:.0f} % of the run): objective {obj:.1f} s, the rest {total - obj:.1f} s; "
          f"per objective call {1e3 * obj / max(n_obj, 1):.3f} ms, bookkeeping per iteration "
          f"{1e3 * (total - obj) / max(iters, 1):.3f} ms")
    big = sorted(calls, key=lambda c: -c["s"])[:5]
    print("slowest calls:", big)
