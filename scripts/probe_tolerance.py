"""How the cross-fitted probe's stopping tolerance moves γ̂, η̂ and the deficit (issue 20, item 3).

Trains one stream of every subset on a dataset's fixed split (``--cv 0``), then fits the
cross-fitted probe behind γ̂ (models, width-matched controls, each modality's block) to the
same test-row latents at several tolerances, and against the tightest one reports, per
statistic, how far each estimate moved in units of its own 95 % half-width (per-row paired:
1.96·sd/√n, narrower than any interval mmgain prints, so the criterion is strict), the share
of fits that stopped short of the tolerance, and the time.

    .venv/bin/python scripts/probe_tolerance.py [--data mfeat] [--ratio 1.0] [--tols 1e-3 1e-4 1e-5 1e-6]
        [--max-iter 500] [--ref-max-iter 3000] [--intercept-steps 1 10] [--histories 10 5]
        [--ftols 0 1e-7 1e-6] [--one-solve]
"""
import argparse
import inspect
import time

import numpy as np
import torch

from mmgain.probes.latent import (PROBE_GROUP_BYTES, block_latent, cross_fitted_probe, in_model_groups,
                                  latent_gap_probe, logistic_probe, one_solve_group_bytes, probe_folds)
from mmgain.run.chunk import _stacked_latent
from mmgain.run.runner import plan_run
from mmgain.spec import ExperimentSpec
from mmgain.tasks import get_task
from mmgain.training.batched import BatchedTrainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="mfeat")
    ap.add_argument("--ratio", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tols", type=float, nargs="+", default=[1e-3, 1e-4, 1e-5, 1e-6])
    ap.add_argument("--max-iter", type=int, default=500, help="the iteration cap of every fit but the reference (mmgain's)")
    ap.add_argument("--intercept-steps", type=float, nargs="+", default=[10.0],
                    help="the solver's intercept steps to try with every tolerance but the reference's "
                         "(the reference: mmgain's default)")
    ap.add_argument("--histories", type=int, nargs="+", default=[10],
                    help="L-BFGS history sizes to try with every tolerance but the reference's (the reference: 10)")
    ap.add_argument("--ftols", type=float, nargs="+", default=[0.0],
                    help="objective-decrease tests (nats over 10 iterations; 0: none) to try with every tolerance "
                         "but the reference's (the reference: none)")
    ap.add_argument("--paper", action="store_true",
                    help="also fit the paper's probe (training rows → test rows) and report its test losses' moves")
    ap.add_argument("--one-solve", action="store_true",
                    help="every fit but the reference in a GPU run's layout: folds stacked, widths padded, blocks "
                         "joined (one solver call; rounds are what a GPU's time follows)")
    ap.add_argument("--ref-max-iter", type=int, default=None, help="the reference fit's cap (default: --max-iter)")
    args = ap.parse_args()
    spec = ExperimentSpec(name="tolerance", data=args.data, seeds=1, ratios=(args.ratio,), cv=0)
    plan = plan_run(spec, "cpu", progress=False, allow_large=True)
    task, protocol = get_task(plan.task.name), plan.protocol
    job = plan.job(0)
    cs = job.streams.subset([0])
    t0 = time.perf_counter()
    trainer = BatchedTrainer(protocol, job.dims, job.subsets, job.n_outputs, task, "cpu").fit(plan.train, cs)
    print(f"{args.data}, ratio {args.ratio}: {len(job.subsets)} models trained in {time.perf_counter() - t0:.0f} s")
    model = trainer.probe_model_
    g = torch.as_tensor(cs.groups)
    Zt, yt = _stacked_latent(model, plan.test, g)
    Z, y = _stacked_latent(model, plan.train, g)
    folds = probe_folds(plan.test.y[0].numpy(), protocol.probe_folds, stratify=task.stratified)
    subsets = [tuple(s) for s in job.subsets]
    pairs = [(a, subsets.index(tuple(x for x in M if x != k)), k)
             for a, M in enumerate(subsets) if len(M) > 1 for k in M]
    seeds = [int(model.seeds[0]) * 1009 + model.names.index(k) for _, _, k in pairs]
    multi = {a for a, M in enumerate(subsets) if len(M) > 1}
    results = {}
    default_step = inspect.signature(logistic_probe).parameters["intercept_step"].default
    rules = [(min(args.tols), default_step, 10, 0.0)] + [(tol, c, h, f) for tol in sorted(args.tols)[1:]
                                                         for c in args.intercept_steps for h in args.histories
                                                         for f in args.ftols]
    for i, (tol, step, hist, ftol) in enumerate(rules):
        one = args.one_solve and i > 0
        cap = (args.ref_max_iter or args.max_iter) if i == 0 else args.max_iter
        fit = in_model_groups(lambda Z, y, Z2, y2, tol=tol, step=step, cap=cap, hist=hist, ftol=ftol, **kw:
                              logistic_probe(Z, y, Z2, y2, job.n_outputs, l2=protocol.probe_l2, max_iter=cap, tol=tol,
                                             intercept_step=step, history=hist, ftol=ftol, by_width=not one, **kw),
                              job.n_outputs, False,
                              one_solve_group_bytes(torch.device("cpu")) if one else PROBE_GROUP_BYTES)
        t0 = time.perf_counter()
        blocks, origin = block_latent(Zt, multi)
        yb = yt[:, [m for m, _ in origin]]
        held = latent_gap_probe(fit, Zt, yt, folds, pairs, seeds, stacked=one, extra=(blocks, yb) if one else None)
        deficit = held["extra"] if one else cross_fitted_probe(fit, blocks, yb, folds)
        seconds = time.perf_counter() - t0
        paper = fit(Z, y, Zt, yt)["test"]["loss"].numpy() if args.paper else None     # the paper's probe
        risk = lambda d: 0.5 * (d["fit"]["loss"] + d["eval"]["loss"]).numpy()      # noqa: E731  (problems, n)
        m, c = risk(held["models"]), risk(held["controls"])
        works = (held["models"]["work"], held["controls"]["work"], deficit["work"])
        fits = sum(float(w["unconverged"].sum()) for w in works)
        evals = sum(float(w["evaluations"].sum()) for w in works)
        rounds = sum(float(w["rounds"].sum()) for w in works)
        n_fits = (len(m) + len(c) + len(origin)) * protocol.probe_folds
        print(f"  tolerance {tol:g}, intercept step {step:g}, history {hist}, decrease test {ftol:g}: "
              f"{seconds:.1f} s", flush=True)
        results[i] = {"paper": paper, "eta": m, "gamma": np.stack([m[a] - c[j] for j, (a, _, _) in enumerate(pairs)]),
                        "deficit": deficit["eval"]["loss"].numpy(), "short": fits / n_fits, "s": seconds,
                        "evals": evals, "rounds": rounds}
    ref = results[0]
    n = ref["eta"].shape[1]
    print(f"reference: tolerance {rules[0][0]:g}; {len(pairs)} pairs, {len(subsets)} models, {len(origin)} blocks, "
          f"{n} test rows, {protocol.probe_folds} folds, cap {args.ref_max_iter or args.max_iter} iterations; "
          f"the others: cap {args.max_iter}")
    print("| tolerance | intercept step | history | decrease test | max |Δγ̂|/hw | median | pairs > 10 % | max |Δη̂|/hw | "
          "max |Δdeficit|/hw | max |Δpaper|/hw | fits short of the rule | evaluations | solver rounds | probe s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, r in sorted(results.items(), reverse=True):
        tol, step, hist, ftol = rules[i]
        moved = {"paper": np.full(1, np.nan)}
        for key in ("gamma", "eta", "deficit", "paper")[:4 if args.paper else 3]:
            hw = 1.96 * ref[key].std(1, ddof=1) / np.sqrt(n)
            moved[key] = np.abs(r[key].mean(1) - ref[key].mean(1)) / np.where(hw > 0, hw, np.inf)
        print(f"| {tol:g} | {step:g} | {hist} | {ftol:g} | {moved['gamma'].max():.3f} | {np.median(moved['gamma']):.4f} | "
              f"{int((moved['gamma'] > 0.1).sum())} of {len(pairs)} | {moved['eta'].max():.3f} | "
              f"{moved['deficit'].max():.3f} | {moved['paper'].max():.3f} | {100 * r['short']:.1f} % | {r['evals']:.3g} | "
              f"{r['rounds']:.0f} | {r['s']:.1f} |")


if __name__ == "__main__":
    main()
