"""The coverage tables of docs/methods/curves.md (m*) and docs/methods/forecast.md (the forecast).

Least squares on m1 and m1+m2 (20 features each), each training sample's expected test MSE exact
(mmgain.theory.coverage.ols_curves), so the truth is the closed form of
mmgain.theory.closed_form: m* (ols_crossover) and the expected gain at the target (ols_risk).

    .venv/bin/python scripts/curve_coverage.py m-star   [--reps 150]
    .venv/bin/python scripts/curve_coverage.py forecast [--reps 200]
"""
import argparse

import numpy as np
from scipy import stats

from mmgain.analysis.curves import _boot_index, crossover
from mmgain.analysis.forecast import tail_difference
from mmgain.data.synthetic import make_linear_dataset
from mmgain.theory.closed_form import ols_crossover, ols_risk
from mmgain.theory.coverage import ols_curves

D = 20


def m_star(reps: int) -> None:
    for rho, s2 in ((0.5, 10.0), (0.8, 3.0), (0.9, 3.0)):
        pop = make_linear_dataset(0, 10, 10, 2, D, rho, s2).population
        truth = ols_crossover(pop, ("m1", "m2"), ("m1",))
        sizes = np.unique(np.round(np.geomspace(max(1.5 * (2 * D + 1), truth / 4), 8 * truth, 10)).astype(int))
        rng, hits = np.random.default_rng(2), np.zeros(3)
        grid_used = 0
        for r in range(reps):
            c = ols_curves(rho, s2, sizes, 6, D, rng)
            x = crossover(sizes, c["m1+m2"], c["m1"], seed=r)
            inside = lambda ci: ci[0] is not None and ci[0] <= truth <= ci[1]          # noqa: E731
            hits += [inside(x["m_star_ci"]), inside(x["empirical"]["m_last_ci"]),
                     inside(x["m_star_ci"] if x["fit_follows"] else x["m_star_fit_ci"])]
            grid_used += not x["fit_follows"]
        print(f"rho={rho} s2={s2} m*={truth:.0f}: reported {hits[0] / reps:.3f}, grid crossing {hits[1] / reps:.3f}, "
              f"power law {hits[2] / reps:.3f}; grid crossing reported in {grid_used / reps:.0%}")


def forecast(reps: int) -> None:
    rho, s2, target = 0.8, 12.0, 2400.0
    sizes = np.array([120, 170, 240, 340, 480, 680, 960, 1200], dtype=float)
    pop = make_linear_dataset(0, 10, 10, 2, D, rho, s2).population
    truth = ols_risk(pop, ("m1",), target) - ols_risk(pop, ("m1", "m2"), target)
    for seeds in (6, 10, 20):
        rng, hits, naive, done = np.random.default_rng(1), np.zeros(4), 0, 0
        for r in range(reps):
            c = ols_curves(rho, s2, sizes.astype(int), seeds, D, rng)
            idx = _boot_index(seeds, r)
            x = tail_difference(sizes, (c["m1+m2"], c["m1+m2"][idx].mean(1)), (c["m1"], c["m1"][idx].mean(1)), target)
            if x["gain"] is None:
                continue
            done += 1
            g, (lo, hi), f, spread = x["gain"], x["bootstrap_ci"], x["widening"], x["tail_spread"]
            for i, (l, h) in enumerate(((lo, hi), (g - f * (g - lo), g + f * (hi - g)), (lo - spread, hi + spread),
                                        tuple(x["gain_ci"]))):
                hits[i] += l <= truth <= h
            last = (c["m1"] - c["m1+m2"])[:, -1]
            naive += abs(last.mean() - truth) <= stats.t.ppf(0.975, seeds - 1) * last.std(ddof=1) / np.sqrt(seeds)
        print(f"{seeds} seeds ({done} studies): percentiles {hits[0] / done:.3f}, widened {hits[1] / done:.3f}, "
              f"+ tail spread {hits[2] / done:.3f}, both (reported) {hits[3] / done:.3f}; naive {naive / done:.3f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("which", choices=["m-star", "forecast"])
    p.add_argument("--reps", type=int, default=None)
    a = p.parse_args()
    (m_star if a.which == "m-star" else forecast)(a.reps or (150 if a.which == "m-star" else 200))
