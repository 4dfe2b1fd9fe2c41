"""Seeds and power: how small an accuracy difference a run of S seeds can detect.

Reads a run folder's outcomes.npz (per-row test outcomes of every model), and for
each pair (M, N) at the largest sample size splits the variance of the paired
accuracy difference into a seed part and a test-row part (the two terms of the
CI in mmgain.experiments.stats.two_level).  The minimum detectable effect at
two-sided level α with power 1−β is (z_{1−α/2} + z_{1−β})·SE(S), with
SE(S)² = σ²_seed/S + σ²_row/n_test: more seeds shrink only the first term.

    python scripts/power.py RUN_DIR [--seeds 3 5 10 20]
"""
import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10, 20])
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--power", type=float, default=0.8)
    args = ap.parse_args()
    o = np.load(args.run_dir / "outcomes.npz")
    summary = json.loads((args.run_dir / "summary.json").read_text())
    if summary.get("design", {}).get("folds"):
        raise SystemExit(f"{args.run_dir} is cross-fitted: its streams are folds on different rows, not seeds on one "
                         "test set. The run's own figure is summary.json → pairs → rows_needed (and the 'why').")
    subsets = list(o["subsets"])
    top = o["stream_ratio"].max()
    js = np.flatnonzero(o["stream_ratio"] == top)
    acc = 100.0 * o["test_correct"][js].astype(float)              # (S, A, n)
    z = stats.norm.ppf(1 - args.alpha / 2) + stats.norm.ppf(args.power)
    print(f"{args.run_dir}: ratio {top:g}, {len(js)} seeds, {acc.shape[-1]} test rows; minimum detectable "
          f"accuracy difference (points) at α={args.alpha}, power {args.power}")
    print(f"{'M':>24} {'N':>16} {'sd seed':>8} {'sd row':>8} " + " ".join(f"S={s:<5}" for s in args.seeds))
    for p in summary.get("pairs", []):
        if p["ratio"] != top:
            continue
        d = acc[:, subsets.index(p["M"])] - acc[:, subsets.index(p["N"])]     # (S, n)
        sd_seed, sd_row = d.mean(1).std(ddof=1), d.mean(0).std(ddof=1)
        mde = [z * np.sqrt(sd_seed ** 2 / s + sd_row ** 2 / d.shape[1]) for s in args.seeds]
        print(f"{p['M']:>24} {p['N']:>16} {sd_seed:8.2f} {sd_row:8.2f} " + " ".join(f"{m:<7.2f}" for m in mde))


if __name__ == "__main__":
    main()
