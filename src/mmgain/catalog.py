"""The registered experiments.  Adding an experiment means adding a spec here; import
``EXPERIMENTS`` from this module so that the built-in ones are registered."""
from __future__ import annotations

from .spec import EXPERIMENTS, ExperimentSpec

__all__ = ["EXPERIMENTS"]

OVERLAPS = (1.0, 0.8, 0.5, 0.2, 0.0)

EXPERIMENTS.register("synthetic", ExperimentSpec(
    name="synthetic",
    data="synthetic-overlap",
    data_args={"n_train": 7000, "n_test": 3000},
    variants=tuple({"overlap": r} for r in OVERLAPS),
    subsets=("m1", "m1+m2", "m1+m2+m3", "m1+m2+m3+m4"),
    seeds=5,
    protocol="synthetic",
    bayes_risk=0.0,               # y is a noise-free function of all four modalities
    layout="synthetic",
    reference="huang2021-table4",
    pairs=False,
), "the paper's overlap study (Table 4, Fig. 2b): 4 Gaussian modalities, overlap ρ")

RATIOS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)

# `mmgain run`: the paper's IEMOCAP protocol on any data, by default the embedded mfeat.
EXPERIMENTS.register("run", ExperimentSpec(
    name="run",
    data="mfeat",
    subsets="auto",               # every subset up to 8 modalities, sampled orderings above
    seeds=None,                   # 5 folds × 1 seed for data without a split, else 5 seeds (spec.resolve_design)
    ratios=RATIOS,
    protocol="huang2021",
    layout="sweep",
), "every subset (sampled above 8 modalities) × sample size on any data (default: the embedded mfeat digits)")

# `mmgain reproduce iemocap --data IEMOCAP_features_raw.pkl`: paper Tables 1–3, Fig. 2a.
EXPERIMENTS.register("iemocap", ExperimentSpec(
    name="iemocap",
    data="",                      # the user's IEMOCAP_features_raw.pkl (not redistributable)
    subsets="all",
    seeds=5,
    cv=0,                         # the paper's protocol: its fixed split
    ratios=RATIOS,
    protocol="huang2021",
    layout="sweep",
    reference="huang2021-iemocap",
), "the paper's IEMOCAP study (Tables 1–3, Fig. 2a) on your feature file")

# The crossover oracle (issue "From how much data on"): least squares on m1 and m1+m2 with label
# noise, where m* is known in closed form (theory.closed_form.ols_crossover): 5202 and 1702 rows.
ORACLE_N = 25_000
ORACLE_SIZES = (640, 900, 1270, 1800, 2540, 3600, 5080, 7170, 10130, 14300, 20200, ORACLE_N)
EXPERIMENTS.register("oracle", ExperimentSpec(
    name="oracle",
    data="linear-gaussian",
    data_args={"n_train": ORACLE_N, "n_test": 4000, "n_modalities": 2, "dim": 100},
    variants=({"overlap": 0.9, "noise": 50.0}, {"overlap": 0.8, "noise": 60.0}),
    subsets=("m1", "m1+m2"),
    seeds=8,
    ratios=tuple(n / ORACLE_N for n in ORACLE_SIZES),
    protocol="ols",
    layout="oracle",
), "least squares where the crossover m* is known in closed form")

# The paper's linear case (γ([K], [K−1]) ≤ 0 at large m), made non-trivial: one-unit linear
# bottlenecks trained by Adam, label noise, a weak third modality; η exact from the population.
LINEAR_N = 4000
EXPERIMENTS.register("linear-case", ExperimentSpec(
    name="linear-case",
    data="linear-gaussian",
    data_args={"n_train": LINEAR_N, "n_test": 500, "n_modalities": 3, "dim": 10, "weights": (1.0, 1.0, 0.3)},
    variants=({"overlap": 0.5, "noise": 4.0},),
    subsets=("m1+m2", "m1+m2+m3"),
    seeds=100,
    ratios=tuple(n / LINEAR_N for n in (50, 150, 500, 1500, LINEAR_N)),
    protocol="linear-bottleneck",
    layout="linear-case",
    pairs=False,
), "the paper's linear case: γ([K], [K−1]) ≤ 0 at large m, η exact")
