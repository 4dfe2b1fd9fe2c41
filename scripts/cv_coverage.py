"""The coverage table of the cross-fitted interval (docs/decisions.md, "Why this interval").

Runs mmgain.theory.coverage (a K-fold study with a closed-form truth) for several designs and
prints, per candidate interval, how often its 95 % interval holds the truth and its mean
half-width.  Candidates: mmgain's (rows + Nadeau–Bengio-corrected model part), the naive CV
interval (rows independent), rows + uncorrected model part, and Nadeau–Bengio on the fold means.

    .venv/bin/python scripts/cv_coverage.py [--reps 400]
"""
import argparse
import math

import numpy as np

from mmgain.analysis.stats import _t_result, cross_fitted, naive_cross_fitted
from mmgain.theory.coverage import coverage


def rows_plus_units(D):
    S, K, m = D.shape
    rows = D.mean(0)
    within = ((rows - rows.mean(1, keepdims=True)) ** 2).sum() / (K * (m - 1))
    tau2 = max(0.0, D.mean(2).reshape(-1).var(ddof=1) - within / m)
    parts = [(within / (K * m), K * (m - 1)), (tau2 / (S * K), S * K - 1)]
    return _t_result(float(D.mean()), [p for p in parts if p[0] > 0], 0.95, {})


def nb_fold_means(D):
    S, K, _ = D.shape
    units = D.mean(2).reshape(-1)
    return _t_result(float(D.mean()), [((1 / (S * K) + 1 / (K - 1)) * units.var(ddof=1), S * K - 1)], 0.95, {})


CANDIDATES = {"mmgain (rows + NB model part)": cross_fitted, "naive (rows independent)": naive_cross_fitted,
              "rows + model part, uncorrected": rows_plus_units, "NB on fold means": nb_fold_means}
DESIGNS = [("null", 300, 1, 0.0), ("null", 1000, 1, 0.0), ("null", 600, 1, 0.3), ("null", 600, 1, 0.8),
           ("null", 1500, 1, 0.3), ("null", 600, 2, 0.5), ("null", 600, 3, 0.3),
           ("effect", 300, 1, 0.0), ("effect", 1000, 1, 0.0), ("effect", 600, 1, 0.3)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=400)
    args = ap.parse_args()
    se = math.sqrt(0.95 * 0.05 / args.reps)
    print(f"K = 5 folds; {args.reps} studies per design (a coverage of 0.95 has sd {se:.3f})")
    print("| case | n | seeds | seed noise | truth (points) | " + " | ".join(CANDIDATES) + " |")
    print("|---|---|---|---|---|" + "---|" * len(CANDIDATES))
    for case, n, S, noise in DESIGNS:
        res, truth = coverage(case, CANDIDATES, reps=args.reps, n=n, S=S, seed_noise=noise, seed=n + S)
        cells = [f"{r['coverage']:.3f} (±{r['half_width']:.2f})" for r in res.values()]
        print(f"| {case} | {n} | {S} | {noise} | {truth:+.2f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
